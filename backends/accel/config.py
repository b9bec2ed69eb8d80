"""Accelerator descriptions: a validated, frozen dataclass read from TOML or JSON.

One description drives the lowering (tile sizes come from buffer sizes), the timing model (array
shape, dataflow, bandwidth, clock) and the energy model (per-access energies). Two kinds exist:
``systolic`` (a rows x cols MAC array, TPU style) and ``vpu`` (vector cores sharing a scratchpad,
Movidius style, optionally with a non-systolic MAC block). See docs/accelerator.md for the format.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lwc.errors import LwcError

PRESET_DIR = Path(__file__).parent / "presets"
DATAFLOWS = ("ws", "os", "is")
MAC_TYPES = {"int8": 1, "int16": 2, "bf16": 2}
"""MAC operand type -> bytes per operand word."""
VECTOR_OPS = ("bias", "requant", "relu", "relu6", "clip", "max_pool", "avg_pool", "add",
              "concat", "depthwise")


class AccelConfigError(LwcError):
    """An accelerator description that is missing a key, has a bad value or an unknown field."""


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = 16
    cols: int = 16
    dataflow: str = "ws"
    mac: str = "int8"
    acc: str = "int32"


@dataclass(frozen=True)
class BufferConfig:
    """On-chip buffer sizes in bytes. Each is split in two halves for double buffering."""

    activations: int = 64 * 1024
    weights: int = 64 * 1024
    accumulators: int = 32 * 1024


@dataclass(frozen=True)
class DramConfig:
    bandwidth: float = 16.0
    """Bytes per cycle."""
    latency: int = 0
    """Fixed cycles added to every DMA transfer."""


@dataclass(frozen=True)
class VectorConfig:
    lanes: int = 16
    """Elements processed per cycle."""
    ops: tuple[str, ...] = VECTOR_OPS


@dataclass(frozen=True)
class EnergyConfig:
    """Energy per access in picojoules (per MAC, per byte for memories)."""

    mac: float = 0.2
    register: float = 0.03
    buffer: float = 1.0
    dram: float = 100.0
    vector: float = 0.5


@dataclass(frozen=True)
class VpuConfig:
    """A vector processor: ``cores`` vector cores of ``lanes`` int8 MACs per cycle each, one shared
    scratchpad sliced evenly among them, and an optional MAC block for dense convolutions."""

    cores: int = 16
    lanes: int = 16
    scratchpad: int = 2_500_000
    mac_block: int = 0
    """int8 MACs per cycle of the dense-convolution block (0: none, all work on the cores)."""
    scratchpad_bandwidth: float = 512.0
    """Bytes per cycle between the scratchpad and the cores (not modelled as a limit yet)."""

    @property
    def slice_bytes(self) -> int:
        return self.scratchpad // self.cores


@dataclass(frozen=True)
class AccelConfig:
    name: str = "custom"
    kind: str = "systolic"
    clock_mhz: float = 1000.0
    array: ArrayConfig = field(default_factory=ArrayConfig)
    buffers: BufferConfig = field(default_factory=BufferConfig)
    dram: DramConfig = field(default_factory=DramConfig)
    vector: VectorConfig = field(default_factory=VectorConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    vpu: VpuConfig | None = None
    depthwise: str = "array"
    """Where depthwise convs run on a systolic accelerator: ``array`` (one GEMM per channel,
    poor mapping efficiency, reported) or ``vector`` (the vector unit)."""

    @property
    def is_vpu(self) -> bool:
        return self.kind == "vpu"

    @property
    def peak_macs_per_cycle(self) -> int:
        if self.vpu is not None:
            return self.vpu.cores * self.vpu.lanes + self.vpu.mac_block
        return self.array.rows * self.array.cols

    @property
    def peak_tops(self) -> float:
        """2 ops per MAC per cycle at the clock (tpu-v1: 2 * 65536 * 700 MHz = 91.75 TOPS)."""
        return 2 * self.peak_macs_per_cycle * self.clock_mhz * 1e6 / 1e12

    def replace(self, **changes: Any) -> AccelConfig:
        """A copy with top-level fields or dotted sub-fields (``{"array.rows": 8}``) changed."""
        top = {k: v for k, v in changes.items() if "." not in k}
        cfg = dataclasses.replace(self, **top)
        for key, val in changes.items():
            if "." in key:
                sect, sub = key.split(".", 1)
                cfg = dataclasses.replace(cfg, **{sect: dataclasses.replace(getattr(cfg, sect),
                                                                            **{sub: val})})
        validate(cfg)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMG]i?B|B)?\s*$", re.I)
_UNITS = {"b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3}


def parse_size(value: Any, where: str) -> int:
    """Bytes from an int or a string such as ``"24MiB"`` / ``"2.5MB"``."""
    if isinstance(value, bool):
        raise AccelConfigError(f"{where}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])
    raise AccelConfigError(f"{where}: bad size {value!r} (use bytes or e.g. \"24MiB\", \"2.5MB\")")


_SIZE_FIELDS = {("buffers", "activations"), ("buffers", "weights"), ("buffers", "accumulators"),
                ("vpu", "scratchpad")}


def _build(cls: type, data: dict[str, Any], where: str, section: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise AccelConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in "
                               f"[{section}]; known: {', '.join(names)}")
    kwargs: dict[str, Any] = {}
    for key, val in data.items():
        loc = f"{where}: {section}.{key}"
        if (section, key) in _SIZE_FIELDS:
            kwargs[key] = parse_size(val, loc)
            continue
        default = getattr(cls(), key) if key != "ops" else ()
        if isinstance(default, bool) or default is None:
            kwargs[key] = val
        elif isinstance(default, int) and not isinstance(val, bool) and isinstance(val, int):
            kwargs[key] = val
        elif isinstance(default, float) and isinstance(val, (int, float)) \
                and not isinstance(val, bool):
            kwargs[key] = float(val)
        elif isinstance(default, str) and isinstance(val, str):
            kwargs[key] = val
        elif isinstance(default, tuple) and isinstance(val, list):
            kwargs[key] = tuple(str(v) for v in val)
        else:
            raise AccelConfigError(f"{loc}: expected {type(default).__name__}, got {val!r}")
    return cls(**kwargs)


def from_dict(data: dict[str, Any], where: str = "<dict>") -> AccelConfig:
    """Build and validate a description from parsed TOML/JSON."""
    sections = {"array": ArrayConfig, "buffers": BufferConfig, "dram": DramConfig,
                "vector": VectorConfig, "energy": EnergyConfig, "vpu": VpuConfig}
    top: dict[str, Any] = {}
    for key, val in data.items():
        if key in sections:
            if not isinstance(val, dict):
                raise AccelConfigError(f"{where}: [{key}] must be a table")
            top[key] = _build(sections[key], val, where, key)
        elif key in ("name", "kind", "depthwise"):
            if not isinstance(val, str):
                raise AccelConfigError(f"{where}: {key} must be a string, got {val!r}")
            top[key] = val
        elif key == "clock_mhz":
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                raise AccelConfigError(f"{where}: clock_mhz must be a number, got {val!r}")
            top[key] = float(val)
        else:
            raise AccelConfigError(f"{where}: unknown key {key!r}; known: name, kind, clock_mhz, "
                                   f"depthwise, {', '.join(sections)}")
    cfg = AccelConfig(**top)
    validate(cfg, where)
    return cfg


def validate(cfg: AccelConfig, where: str = "") -> None:
    """Raise ``AccelConfigError`` naming the first inconsistent field."""
    w = f"{where or cfg.name}: "
    a = cfg.array

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise AccelConfigError(w + msg)

    need(cfg.kind in ("systolic", "vpu"), f"kind must be systolic or vpu, got {cfg.kind!r}")
    need(cfg.clock_mhz > 0, f"clock_mhz must be > 0, got {cfg.clock_mhz}")
    need(a.rows >= 1 and a.cols >= 1, f"array must be at least 1x1, got {a.rows}x{a.cols}")
    need(a.dataflow in DATAFLOWS, f"array.dataflow must be one of ws, os, is, got {a.dataflow!r}")
    need(a.mac in MAC_TYPES, f"array.mac must be one of {', '.join(MAC_TYPES)}, got {a.mac!r}")
    need(a.acc in ("int32", "fp32"), f"array.acc must be int32 or fp32, got {a.acc!r}")
    b = cfg.buffers
    for nm in ("activations", "weights", "accumulators"):
        need(getattr(b, nm) >= 256, f"buffers.{nm} must be >= 256 bytes, got {getattr(b, nm)}")
    need(cfg.dram.bandwidth > 0, f"dram.bandwidth must be > 0 bytes/cycle, got {cfg.dram.bandwidth}")
    need(cfg.vector.lanes >= 1, f"vector.lanes must be >= 1, got {cfg.vector.lanes}")
    bad = [o for o in cfg.vector.ops if o not in VECTOR_OPS]
    need(not bad, f"vector.ops has unknown op(s) {', '.join(bad)}; known: {', '.join(VECTOR_OPS)}")
    for f in dataclasses.fields(cfg.energy):
        need(getattr(cfg.energy, f.name) >= 0, f"energy.{f.name} must be >= 0")
    need(cfg.depthwise in ("array", "vector"), f"depthwise must be array or vector, got "
         f"{cfg.depthwise!r}")
    if cfg.kind == "vpu":
        need(cfg.vpu is not None, "kind = vpu needs a [vpu] table")
        assert cfg.vpu is not None
        need(cfg.vpu.cores >= 1 and cfg.vpu.lanes >= 1, "vpu.cores and vpu.lanes must be >= 1")
        need(cfg.vpu.slice_bytes >= 4096, f"vpu.scratchpad slice per core must be >= 4096 bytes, "
             f"got {cfg.vpu.slice_bytes}")
        need(cfg.vpu.mac_block >= 0, "vpu.mac_block must be >= 0")
    else:
        need(cfg.vpu is None, "a [vpu] table needs kind = \"vpu\"")


def load_file(path: str | Path) -> AccelConfig:
    """Read a TOML (``.toml``) or JSON (``.json``) description."""
    p = Path(path)
    if not p.is_file():
        raise AccelConfigError(f"{p}: no such accelerator description")
    try:
        if p.suffix == ".json":
            data = json.loads(p.read_text())
        else:
            data = tomllib.loads(p.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AccelConfigError(f"{p}: cannot parse: {e}") from None
    if not isinstance(data, dict):
        raise AccelConfigError(f"{p}: top level must be a table/object")
    data.setdefault("name", p.stem)
    return from_dict(data, str(p))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_accel(spec: str | Path | AccelConfig) -> AccelConfig:
    """A preset name (``tpu-v1``), a description file, or an already built config."""
    if isinstance(spec, AccelConfig):
        return spec
    s = str(spec)
    if (PRESET_DIR / f"{s}.toml").is_file():
        return load_file(PRESET_DIR / f"{s}.toml")
    if Path(s).suffix in (".toml", ".json") or Path(s).exists():
        return load_file(s)
    raise AccelConfigError(f"unknown accelerator {s!r}: not a file and not a preset "
                           f"({', '.join(preset_names())})")
