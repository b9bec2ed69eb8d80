"""Safe file handling: every output is written atomically, every input is treated as untrusted."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from lwc.errors import ModelFormatError

MAX_ARRAY_BYTES = 4 << 30
"""Refuse to allocate a single tensor larger than this from a file (4 GiB)."""


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; rename it over ``path`` only if the block succeeds,
    so a failure never leaves a half-written output behind."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to an ``.npz`` atomically (no pickled objects: object arrays are refused)."""
    for k, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise ModelFormatError(f"{path}: array {k} has dtype object, which cannot be stored safely")
    with atomic_open(path, "wb") as f:
        # What np.savez does, minus its keyword API: keys "file" and "allow_pickle" would clash.
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for k, v in arrays.items():
                with zf.open(f"{k}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(v), allow_pickle=False)


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read an ``.npz`` (all arrays) or ``.npy`` (key = file stem) without ever unpickling."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such file")
    try:
        if p.suffix == ".npy":
            return {p.stem: np.load(p, allow_pickle=False)}
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise ModelFormatError(f"{p}: not a readable numpy archive ({e})") from None
