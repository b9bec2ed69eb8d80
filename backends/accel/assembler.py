"""Assembly listing <-> instructions. One instruction per line::

    matmul acc=0 a=0 w=0 m=196 k=144 n=16 accumulate=0 -prev +next @3:0   ; comment

``-prev``/``-next`` pop a token from that neighbour queue, ``+prev``/``+next`` push one, ``@L:C``
gives the layer index and the core. Directives: ``.accel NAME`` and ``.layer INDEX KIND NAME``.
"""

from __future__ import annotations

import numpy as np

from lwc.backends.accel.isa import BY_NAME, Dep, Instr, IsaError
from lwc.backends.accel.program import LayerInfo, Program

_FLAG_TEXT = ((Dep.POP_PREV, "-prev"), (Dep.POP_NEXT, "-next"), (Dep.PUSH_PREV, "+prev"),
              (Dep.PUSH_NEXT, "+next"))
_TEXT_FLAG = {t: f for f, t in _FLAG_TEXT}


def format_instr(ins: Instr) -> str:
    fields = " ".join(f"{k}={v}" for k, v in zip(ins.spec.fields, ins.args))
    flags = " ".join(t for f, t in _FLAG_TEXT if ins.flags & f)
    parts = [f"{ins.op:<8}", fields, flags, f"@{ins.layer}:{ins.core}"]
    return " ".join(p for p in parts if p)


def parse_instr(line: str, where: str = "<asm>") -> Instr:
    toks = line.split()
    if not toks:
        raise IsaError(f"{where}: empty instruction")
    op = toks[0]
    spec = BY_NAME.get(op)
    if spec is None:
        raise IsaError(f"{where}: unknown mnemonic {op!r}; known: {', '.join(BY_NAME)}")
    vals: dict[str, int] = {}
    flags = Dep.NONE
    layer = core = 0
    for t in toks[1:]:
        if t in _TEXT_FLAG:
            flags |= _TEXT_FLAG[t]
        elif t.startswith("@"):
            try:
                ls, cs = t[1:].split(":")
                layer, core = int(ls), int(cs)
            except ValueError:
                raise IsaError(f"{where}: bad placement {t!r}, expected @LAYER:CORE") from None
        elif "=" in t:
            k, v = t.split("=", 1)
            if k not in spec.fields:
                raise IsaError(f"{where}: {op} has no field {k!r}; fields: "
                               f"{', '.join(spec.fields)}")
            try:
                vals[k] = int(v, 0)
            except ValueError:
                raise IsaError(f"{where}: field {k}={v!r} is not an integer") from None
        else:
            raise IsaError(f"{where}: unexpected token {t!r}")
    missing = [f for f in spec.fields if f not in vals]
    if missing:
        raise IsaError(f"{where}: {op} lacks field(s) {', '.join(missing)}")
    return Instr(op, tuple(vals[f] for f in spec.fields), flags, layer, core)


def disassemble(prog: Program) -> str:
    lines = ["; lwc accelerator program", f".accel {prog.accel}"]
    for i, lyr in enumerate(prog.layers):
        lines.append(f".layer {i} {lyr.kind} {lyr.name}")
    lines += [format_instr(ins) for ins in prog.instrs]
    return "\n".join(lines) + "\n"


def assemble(text: str, where: str = "<asm>") -> Program:
    """Parse a listing; data, tensor tables and layer details come from the sidecar, if any."""
    instrs: list[Instr] = []
    layers: list[LayerInfo] = []
    accel = "unknown"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        loc = f"{where}:{lineno}"
        if line.startswith(".accel"):
            accel = line.split(maxsplit=1)[1] if len(line.split()) > 1 else accel
        elif line.startswith(".layer"):
            parts = line.split(maxsplit=3)
            if len(parts) != 4:
                raise IsaError(f"{loc}: expected '.layer INDEX KIND NAME'")
            layers.append(LayerInfo(name=parts[3], kind=parts[2]))
        elif line.startswith("."):
            raise IsaError(f"{loc}: unknown directive {line.split()[0]!r}")
        else:
            instrs.append(parse_instr(line, loc))
    return Program(accel, instrs, layers, np.zeros(0, np.uint8), [], [])
