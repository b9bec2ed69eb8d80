"""Pipeline text: ``"canonicalize,fold-bn,fuse,factorize-depthwise{multiplier=1,max_error=0.01}"``.

Grammar (xDSL-like): ``pipeline := item ("," item)*``, ``item := NAME ["{" opt ("," opt)* "}"]``,
``opt := KEY "=" VALUE``, where a value may be a bracketed list ``[a,b]``. Names are passes or named
pipelines (``O0``..``O3``, ``canonicalize``); option values are checked against the pass's field
types (int, float, bool, str, unions such as ``int | str``, ``X | None``, ``tuple[X, ...]``,
``Literal[...]``), and every error names the pass and lists what it accepts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from lwc.errors import PassError

if typing.TYPE_CHECKING:
    from lwc.pass_manager import Pass

PIPELINES: dict[str, str] = {
    "O0": "",
    "canonicalize": "remove-identity,simplify-reshape,const-fold,cse,dce",
    "O1": "canonicalize",
    "O2": "canonicalize,fold-bn,fuse,canonicalize",
    "O3": "canonicalize,fold-bn,fuse,canonicalize",
}
"""Named pipelines; a name here may be used anywhere a pass name may (no options)."""


def register_pipeline(name: str, text: str) -> None:
    """Add or replace a named pipeline (e.g. a plugin extending ``O3``)."""
    PIPELINES[name] = text


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside braces and brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth < 0:
                raise PassError(f"pipeline {text!r}: unbalanced {ch!r}")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise PassError(f"pipeline {text!r}: unclosed brace or bracket")
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_item(item: str) -> tuple[str, dict[str, str]]:
    """``name{a=1,b=[x,y]}`` -> ("name", {"a": "1", "b": "[x,y]"})."""
    if "{" not in item:
        return item.strip(), {}
    if not item.endswith("}"):
        raise PassError(f"pipeline item {item!r}: text after the closing brace")
    name, body = item[:-1].split("{", 1)
    opts: dict[str, str] = {}
    for part in split_top(body):
        if not part:
            continue
        if "=" not in part:
            raise PassError(f"pass {name.strip()}: option {part!r} needs the form key=value")
        key, val = part.split("=", 1)
        opts[key.strip().replace("-", "_")] = val.strip()
    return name.strip(), opts


def parse_pipeline(pipeline: str | Sequence[Pass | str], _depth: int = 0) -> list[Pass]:
    """Pass instances for a pipeline string or a list of passes / pipeline strings."""
    from lwc.pass_manager import Pass

    if _depth > 16:
        raise PassError("named pipelines nest too deeply (a cycle?)")
    if not isinstance(pipeline, str):
        out: list[Pass] = []
        for p in pipeline:
            out += [p] if isinstance(p, Pass) else parse_pipeline(p, _depth + 1)
        return out
    passes: list[Pass] = []
    for item in split_top(pipeline):
        if not item:
            continue
        name, opts = parse_item(item)
        if name in PIPELINES:
            if opts:
                raise PassError(f"named pipeline {name} takes no options")
            passes += parse_pipeline(PIPELINES[name], _depth + 1)
            continue
        passes.append(make_pass(name, opts))
    return passes


def make_pass(name: str, opts: dict[str, Any]) -> Pass:
    """Instantiate pass ``name`` with options given as text (or Python values)."""
    from lwc.pass_manager import get_pass

    cls = get_pass(name)
    fields = {f.name: f for f in cls.options()}
    hints = typing.get_type_hints(cls) if fields else {}
    kwargs: dict[str, Any] = {}
    for key, raw in opts.items():
        if key not in fields:
            accepted = ", ".join(f"{f}: {_type_name(hints.get(f))}" for f in fields) or "none"
            raise PassError(f"pass {name} has no option {key!r}; options: {accepted}")
        kwargs[key] = coerce_option(name, key, raw, hints.get(key, str))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise PassError(f"pass {name}: {e}") from None


def coerce_option(pname: str, key: str, raw: Any, tp: Any) -> Any:
    """Convert ``raw`` (text or a value) to type ``tp``, or raise a PassError naming the option."""
    try:
        return _coerce(raw, tp)
    except (TypeError, ValueError):
        raise PassError(f"pass {pname}: option {key}={raw!r} is not a valid "
                        f"{_type_name(tp)}") from None


def _coerce(raw: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return raw
    if origin in (typing.Union, types.UnionType):
        if raw in (None, "none", "None") and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(raw, a)
            except (TypeError, ValueError):
                continue
        raise ValueError(raw)
    if origin is typing.Literal:
        for a in args:
            if str(a) == str(raw):
                return a
        raise ValueError(raw)
    if origin in (tuple, list):
        items = _as_list(raw)
        elem = args[0] if args else str
        vals = [_coerce(x, elem) for x in items]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in ("1", "true", "yes", "on"):
            return True
        if str(raw).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if tp is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        return int(raw)
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError(raw)
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise TypeError(raw)
        return raw
    raise TypeError(f"unsupported option type {tp}")


def _as_list(raw: Any) -> list[Any]:
    if isinstance(raw, (list, tuple)):
        return list(raw)
    text = str(raw).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [t for t in split_top(text) if t]


def _type_name(tp: Any) -> str:
    if tp is None:
        return "?"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def format_pass(p: Pass) -> str:
    """Pipeline text of one pass instance; options equal to their defaults are left out."""
    parts = []
    for f in p.options():
        val = getattr(p, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        if val != default:
            text = f"[{','.join(map(str, val))}]" if isinstance(val, (tuple, list)) else str(val)
            parts.append(f"{f.name}={text}")
    return f"{p.name}{{{','.join(parts)}}}" if parts else p.name


def describe_options(cls: type[Pass]) -> list[tuple[str, str, Any]]:
    """(name, type, default) for every option of a pass class (for ``lwc passes``)."""
    hints = typing.get_type_hints(cls) if cls.options() else {}
    out = []
    for f in cls.options():
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        out.append((f.name, _type_name(hints.get(f.name)), default))
    return out


__all__ = ["PIPELINES", "coerce_option", "describe_options", "format_pass", "make_pass",
           "parse_pipeline", "register_pipeline", "split_top"]
