"""Tensor ops: data movement without arithmetic (reshape, transpose, concat, slice, gather, ...).

All of them cost zero MACs. Symbolic dims (a dynamic batch ``N``) pass through wherever the op
does not need their size; where it would (a ``-1`` in a reshape that must absorb a symbol, slicing
a symbolic axis), inference raises ``ValueError`` with the shapes involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import Dim, DType, TensorType, broadcast_shapes
from lwc.ops.registry import Attr, Op, register_op

INT64_MAX = 2**63 - 1


def norm_axis(axis: int, rank: int) -> int:
    """A possibly negative axis as an index in ``range(rank)``."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def _prod(dims: Sequence[Dim]) -> Dim:
    """Product of dims; a single symbol times 1s stays that symbol, other symbolic products fail."""
    syms = [d for d in dims if isinstance(d, str)]
    static = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
    if not syms:
        return static
    if len(syms) == 1 and static == 1:
        return syms[0]
    raise ValueError(f"cannot multiply symbolic dims {list(dims)}")


def reshape_shape(src: Sequence[Dim], target: Sequence[int]) -> tuple[Dim, ...]:
    """ONNX Reshape: 0 copies the input dim at that position, one -1 takes the rest."""
    out: list[Dim] = [src[i] if t == 0 else t for i, t in enumerate(target)]
    if any(isinstance(t, int) and t < -1 for t in out) or out.count(-1) > 1:
        raise ValueError(f"invalid reshape target {list(target)}")
    if -1 not in out:
        return tuple(out)
    rest = [d for d in out if d != -1]
    src_syms = [d for d in src if isinstance(d, str)]
    if any(s not in rest for s in src_syms) or len(set(src_syms)) != len(src_syms):
        raise ValueError(f"reshape of {list(src)} to {list(target)} needs the size of a symbol")
    known = int(np.prod([d for d in rest if isinstance(d, int)], dtype=np.int64))
    total = int(np.prod([d for d in src if isinstance(d, int)], dtype=np.int64))
    if known == 0 or total % known:
        raise ValueError(f"cannot reshape {list(src)} to {list(target)}")
    out[out.index(-1)] = total // known
    return tuple(out)


@register_op
class Reshape(Op):
    """Same elements, new shape (``shape`` as in ONNX: 0 copies, -1 infers)."""

    name = "reshape"
    attrs = {"shape": Attr("ints")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        out = reshape_shape(ins[0].shape, attrs["shape"])
        if ins[0].is_static and _prod(out) != ins[0].numel():
            raise ValueError(f"cannot reshape {ins[0]} to {list(out)}")
        return [ins[0].with_shape(out)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        shape = [x.shape[i] if t == 0 else t for i, t in enumerate(attrs["shape"])]
        return [x.reshape(shape)]


@register_op
class Flatten(Op):
    """Collapse to 2-D: dims before ``axis`` form the rows, the rest the columns."""

    name = "flatten"
    attrs = {"axis": Attr("int", 1)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        axis = attrs["axis"] % (x.rank + 1) if attrs["axis"] < 0 else attrs["axis"]
        if axis > x.rank:
            raise ValueError(f"flatten axis {attrs['axis']} out of range for {x}")
        return [x.with_shape((_prod(x.shape[:axis]), _prod(x.shape[axis:])))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        axis = attrs["axis"] % (x.ndim + 1) if attrs["axis"] < 0 else attrs["axis"]
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        return [x.reshape(rows, -1) if rows else x.reshape(0, int(np.prod(x.shape[axis:])))]


@register_op
class Transpose(Op):
    """Permute axes (empty ``perm`` reverses them, as in ONNX)."""

    name = "transpose"
    attrs = {"perm": Attr("ints", ())}

    @staticmethod
    def _perm(rank: int, perm: tuple[int, ...]) -> tuple[int, ...]:
        p = perm or tuple(reversed(range(rank)))
        if sorted(p) != list(range(rank)):
            raise ValueError(f"perm {list(perm)} is not a permutation of {rank} axes")
        return p

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        p = self._perm(ins[0].rank, attrs["perm"])
        return [ins[0].with_shape(ins[0].shape[i] for i in p)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.ascontiguousarray(np.transpose(xs[0], self._perm(xs[0].ndim, attrs["perm"])))]


@register_op
class Concat(Op):
    """Join along ``axis``; the other dims must agree."""

    name = "concat"
    num_inputs = (1, None)
    attrs = {"axis": Attr("int", 0)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        first = ins[0]
        axis = norm_axis(attrs["axis"], first.rank)
        for t in ins[1:]:
            if t.rank != first.rank or t.dtype != first.dtype:
                raise ValueError(f"cannot concat {first} and {t}")
        size = _sum([t.shape[axis] for t in ins])
        shape = list(broadcast_shapes(*[t.shape[:axis] + (1,) + t.shape[axis + 1:] for t in ins]))
        shape[axis] = size
        return [first.with_shape(shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.concatenate(xs, axis=attrs["axis"])]


def _sum(dims: Sequence[Dim]) -> Dim:
    if all(isinstance(d, int) for d in dims):
        return sum(dims)  # type: ignore[arg-type]
    nonzero = [d for d in dims if d != 0]
    if len(nonzero) == 1:
        return nonzero[0]
    raise ValueError(f"cannot add symbolic dims {list(dims)}")


@register_op
class Split(Op):
    """Cut along ``axis`` into pieces of the given ``sizes``: one result per piece."""

    name = "split"
    attrs = {"axis": Attr("int", 0), "sizes": Attr("ints")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        axis = norm_axis(attrs["axis"], x.rank)
        if isinstance(x.shape[axis], int) and sum(attrs["sizes"]) != x.shape[axis]:
            raise ValueError(f"split sizes {list(attrs['sizes'])} do not add up to {x} axis {axis}")
        if isinstance(x.shape[axis], str):
            raise ValueError(f"cannot split symbolic axis {axis} of {x}")
        out = []
        for s in attrs["sizes"]:
            shape = list(x.shape)
            shape[axis] = s
            out.append(x.with_shape(shape))
        return out

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        cuts = np.cumsum(attrs["sizes"])[:-1]
        return list(np.split(xs[0], cuts, axis=attrs["axis"]))


def slice_params(shape: Sequence[Dim], attrs: Mapping[str, Any]) -> list[tuple[int, slice]]:
    """(axis, python slice) per sliced axis with ONNX clamping; symbolic axes must be untouched."""
    starts, ends = attrs["starts"], attrs["ends"]
    axes = attrs["axes"] or tuple(range(len(starts)))
    steps = attrs["steps"] or (1,) * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("slice starts/ends/axes/steps differ in length")
    out = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = norm_axis(a, len(shape))
        if st == 0:
            raise ValueError("slice step 0")
        dim = shape[a]
        if isinstance(dim, str):
            if (s, st) == (0, 1) and e >= INT64_MAX // 2:
                continue  # the whole symbolic axis
            raise ValueError(f"cannot slice symbolic axis {a} ({dim})")
        out.append((a, slice(*_clamp(s, e, st, dim))))
    return out


def _clamp(start: int, end: int, step: int, dim: int) -> tuple[int, int | None, int]:
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim), step
    start = min(max(start, -1), dim - 1)
    end = min(max(end, -1), dim - 1)
    return start, (None if end < 0 else end), step


@register_op
class Slice(Op):
    """Strided slice, ONNX semantics: negative indices count from the end, out of range clamps."""

    name = "slice"
    attrs = {"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints", ()),
             "steps": Attr("ints", ())}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        shape: list[Dim] = list(ins[0].shape)
        for a, sl in slice_params(shape, attrs):
            shape[a] = len(range(*sl.indices(shape[a])))  # type: ignore[arg-type]
        return [ins[0].with_shape(shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        idx = [slice(None)] * xs[0].ndim
        for a, sl in slice_params(xs[0].shape, attrs):
            idx[a] = sl
        return [np.ascontiguousarray(xs[0][tuple(idx)])]


@register_op
class Squeeze(Op):
    """Drop size-1 axes (all of them when ``axes`` is empty)."""

    name = "squeeze"
    attrs = {"axes": Attr("ints", ())}

    @staticmethod
    def _axes(shape: Sequence[Dim], axes: tuple[int, ...]) -> set[int]:
        if not axes:
            return {i for i, d in enumerate(shape) if d == 1}
        out = {norm_axis(a, len(shape)) for a in axes}
        for a in out:
            if shape[a] != 1 and isinstance(shape[a], int):
                raise ValueError(f"cannot squeeze axis {a} of size {shape[a]}")
        return out

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        drop = self._axes(ins[0].shape, attrs["axes"])
        return [ins[0].with_shape(d for i, d in enumerate(ins[0].shape) if i not in drop)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        drop = self._axes(xs[0].shape, attrs["axes"])
        return [xs[0].reshape([d for i, d in enumerate(xs[0].shape) if i not in drop])]


@register_op
class Unsqueeze(Op):
    """Insert size-1 axes at ``axes`` (positions in the output, as in ONNX)."""

    name = "unsqueeze"
    attrs = {"axes": Attr("ints")}

    @staticmethod
    def _shape(shape: Sequence[Dim], axes: tuple[int, ...]) -> list[Dim]:
        rank = len(shape) + len(axes)
        ins = sorted(norm_axis(a, rank) for a in axes)
        if len(set(ins)) != len(ins):
            raise ValueError(f"repeated unsqueeze axes {list(axes)}")
        it = iter(shape)
        return [1 if i in ins else next(it) for i in range(rank)]

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        return [ins[0].with_shape(self._shape(ins[0].shape, attrs["axes"]))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [xs[0].reshape(self._shape(xs[0].shape, attrs["axes"]))]  # type: ignore[arg-type]


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge"}


@register_op
class Pad(Op):
    """Pad with ``pads`` = [lo_0, ..., hi_0, ...] over all axes; negative pads crop."""

    name = "pad"
    attrs = {"pads": Attr("ints"), "mode": Attr("str", "constant"), "value": Attr("float", 0.0)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, pads = ins[0], attrs["pads"]
        if len(pads) != 2 * x.rank or attrs["mode"] not in PAD_MODES:
            raise ValueError(f"pads {list(pads)} / mode {attrs['mode']!r} do not fit {x}")
        shape: list[Dim] = []
        for i, d in enumerate(x.shape):
            lo, hi = pads[i], pads[x.rank + i]
            if isinstance(d, str):
                if lo or hi:
                    raise ValueError(f"cannot pad symbolic axis {i} of {x}")
                shape.append(d)
            else:
                shape.append(d + lo + hi)
        return [x.with_shape(shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, pads, r = xs[0], attrs["pads"], xs[0].ndim
        width = [(max(pads[i], 0), max(pads[r + i], 0)) for i in range(r)]
        mode = PAD_MODES[attrs["mode"]]
        kw: dict[str, Any] = {}
        if mode == "constant":
            kw["constant_values"] = np.asarray(attrs["value"]).astype(x.dtype)
        y = np.pad(x, width, mode=mode, **kw)  # type: ignore[call-overload]
        crop = tuple(slice(-min(pads[i], 0), y.shape[i] + min(pads[r + i], 0)) for i in range(r))
        return [np.ascontiguousarray(y[crop])]


@register_op
class Gather(Op):
    """``take(data, indices, axis)``; negative indices count from the end (ONNX Gather)."""

    name = "gather"
    num_inputs = (2, 2)
    attrs = {"axis": Attr("int", 0)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        data, idx = ins
        if not idx.dtype.is_int:
            raise ValueError(f"gather indices must be integers, got {idx}")
        a = norm_axis(attrs["axis"], data.rank)
        return [data.with_shape(data.shape[:a] + idx.shape + data.shape[a + 1:])]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        data, idx = xs
        a = norm_axis(attrs["axis"], data.ndim)
        idx = np.where(idx < 0, idx + data.shape[a], idx)
        return [np.take(data, idx, axis=a)]


class _PassThrough(Op):
    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [xs[0]]


@register_op
class Identity(_PassThrough):
    """The input itself (kept where a graph output must have its own name)."""

    name = "identity"


@register_op
class Dropout(_PassThrough):
    """Inference-time dropout: the identity (removed by the cleanup passes)."""

    name = "dropout"


@register_op
class Cast(Op):
    """Convert elements to dtype ``to`` (an lwc dtype string such as ``"f32"``)."""

    name = "cast"
    attrs = {"to": Attr("str")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        return [TensorType(DType(attrs["to"]), ins[0].shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [xs[0].astype(DType(attrs["to"]).numpy)]


@register_op
class Expand(Op):
    """Broadcast to ``shape`` (bidirectional, as ONNX Expand: a 1 in ``shape`` keeps the dim)."""

    name = "expand"
    attrs = {"shape": Attr("ints")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        return [ins[0].with_shape(broadcast_shapes(ins[0].shape, tuple(attrs["shape"])))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        shape = np.broadcast_shapes(x.shape, tuple(attrs["shape"]))
        return [np.ascontiguousarray(np.broadcast_to(x, shape))]


@register_op
class Tile(Op):
    """Repeat the whole tensor ``repeats[i]`` times along axis i."""

    name = "tile"
    attrs = {"repeats": Attr("ints")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, reps = ins[0], attrs["repeats"]
        if len(reps) != x.rank:
            raise ValueError(f"repeats {list(reps)} do not fit {x}")
        shape: list[Dim] = []
        for d, r in zip(x.shape, reps):
            if isinstance(d, str) and r != 1:
                raise ValueError(f"cannot tile symbolic dim {d} of {x}")
            shape.append(d * r if isinstance(d, int) else d)
        return [x.with_shape(shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.tile(xs[0], attrs["repeats"])]


@register_op
class ChannelShuffle(Op):
    """ShuffleNet's shuffle on NC...: view C as (groups, C/groups), swap, flatten back."""

    name = "channel_shuffle"
    attrs = {"groups": Attr("int")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        c = ins[0].shape[1] if ins[0].rank >= 2 else None
        if not isinstance(c, int) or c % attrs["groups"]:
            raise ValueError(f"channels of {ins[0]} do not divide into {attrs['groups']} groups")
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, g = xs[0], attrs["groups"]
        n, c, rest = x.shape[0], x.shape[1], x.shape[2:]
        y = x.reshape(n, g, c // g, *rest).swapaxes(1, 2)
        return [np.ascontiguousarray(y).reshape(x.shape)]


@register_op
class DepthToSpace(Op):
    """NCHW depth-to-space (PixelShuffle) in ONNX's DCR or CRD order."""

    name = "depth_to_space"
    attrs = {"blocksize": Attr("int"), "mode": Attr("str", "DCR")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, b = ins[0], attrs["blocksize"]
        if x.rank != 4 or not isinstance(x.shape[1], int) or x.shape[1] % (b * b):
            raise ValueError(f"depth_to_space needs NCHW with C divisible by {b * b}, got {x}")
        h, w = (d * b if isinstance(d, int) else d for d in x.shape[2:])
        if isinstance(h, str) or isinstance(w, str):
            raise ValueError(f"depth_to_space on symbolic spatial dims of {x}")
        return [x.with_shape((x.shape[0], x.shape[1] // (b * b), h, w))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, b = xs[0], attrs["blocksize"]
        n, c, h, w = x.shape
        if attrs["mode"] == "DCR":
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return [np.ascontiguousarray(y).reshape(n, c // (b * b), h * b, w * b)]
