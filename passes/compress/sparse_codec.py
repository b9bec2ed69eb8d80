"""Deep Compression's storage: relative-index sparse format plus Huffman coding (Han et al. 2016).

A layer's weights, flattened, become a list of entries ``(gap, symbol)``:

- ``symbol`` is the weight's codebook index (``0`` is reserved for an exact zero);
- ``gap`` is the number of zeros skipped since the previous entry, stored in ``gap_bits`` bits
  (8 for conv, 5 for fc in the paper), so one entry advances the position by ``gap + 1`` and by at
  most ``2**gap_bits``. When the run of zeros before a nonzero is longer than that, *filler*
  entries with symbol 0 are inserted: a run needing an advance of ``d`` positions costs
  ``floor((d - 1) / 2**gap_bits)`` fillers.

Both streams (gaps and symbols) are Huffman coded with canonical codes (``bitarray.util``),
so a table is just the count of codes per length plus the symbols in code order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bitarray import bitarray
from bitarray.util import canonical_decode, canonical_huffman

from lwc.errors import ModelFormatError


@dataclass(frozen=True)
class SparseEntries:
    """The relative-index form of one flattened layer."""

    gaps: np.ndarray
    symbols: np.ndarray
    size: int
    """Number of weights in the layer (positions after the last entry are zeros)."""

    @property
    def fillers(self) -> int:
        return int(np.count_nonzero(self.symbols == 0))


def to_entries(symbols_flat: np.ndarray, gap_bits: int) -> SparseEntries:
    """Relative indices of the nonzero symbols, with filler entries where gaps overflow."""
    if not 1 <= gap_bits <= 16:
        raise ValueError(f"gap_bits must be in 1..16, got {gap_bits}")
    flat = np.asarray(symbols_flat, dtype=np.int64).ravel()
    span = 1 << gap_bits
    pos = np.flatnonzero(flat)
    advance = np.diff(np.concatenate([[-1], pos]))  # >= 1
    n_fill = (advance - 1) // span
    total = len(pos) + int(n_fill.sum())
    gaps = np.empty(total, dtype=np.int64)
    syms = np.zeros(total, dtype=np.int64)
    # every filler advances by a full span (gap = span - 1); the real entry takes the remainder
    ends = np.cumsum(n_fill + 1) - 1
    gaps[:] = span - 1
    gaps[ends] = advance - 1 - n_fill * span
    syms[ends] = flat[pos]
    return SparseEntries(gaps, syms, flat.size)


def from_entries(entries: SparseEntries) -> np.ndarray:
    """Inverse of ``to_entries``: the flattened symbol array."""
    positions = np.cumsum(entries.gaps + 1) - 1
    if len(positions) and (positions[-1] >= entries.size or np.any(entries.gaps < 0)):
        raise ModelFormatError("sparse stream points past the end of its tensor")
    out = np.zeros(entries.size, dtype=np.int64)
    out[positions] = entries.symbols
    return out


@dataclass(frozen=True)
class HuffmanStream:
    """A canonical Huffman code (``count`` per length, ``symbols`` in code order) and the bits."""

    count: list[int]
    symbols: list[int]
    bits: bitarray
    n: int

    def mean_length(self) -> float:
        return len(self.bits) / self.n if self.n else 0.0


def huffman_encode(values: np.ndarray) -> HuffmanStream:
    vals = [int(v) for v in np.asarray(values).ravel()]
    if not vals:
        return HuffmanStream([0], [], bitarray(), 0)
    uniq, freq = np.unique(np.asarray(vals), return_counts=True)
    if len(uniq) == 1:  # a one-symbol alphabet still needs one bit per symbol to be decodable
        return HuffmanStream([0, 1], [int(uniq[0])], bitarray(len(vals)), len(vals))
    code, count, symbols = canonical_huffman({int(u): int(f) for u, f in zip(uniq, freq)})
    bits = bitarray()
    bits.encode(code, vals)
    return HuffmanStream(list(count), [int(s) for s in symbols], bits, len(vals))


def huffman_decode(stream: HuffmanStream) -> np.ndarray:
    if stream.n == 0:
        return np.zeros(0, dtype=np.int64)
    if sum(stream.count) != len(stream.symbols):
        raise ModelFormatError("Huffman table: code counts do not match the symbol list")
    if len(stream.symbols) == 1:
        return np.full(stream.n, stream.symbols[0], dtype=np.int64)
    out = np.fromiter(canonical_decode(stream.bits, stream.count, stream.symbols),
                      dtype=np.int64, count=-1)
    if len(out) < stream.n:
        raise ModelFormatError(f"Huffman stream ends after {len(out)} of {stream.n} symbols")
    return out[:stream.n]


def entropy_bits(values: np.ndarray) -> float:
    """Shannon entropy of the empirical symbol distribution, bits per symbol."""
    _, freq = np.unique(np.asarray(values).ravel(), return_counts=True)
    p = freq / freq.sum()
    return float(-(p * np.log2(p)).sum())
