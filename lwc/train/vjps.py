"""Vector-Jacobian products of the ops CNNs and MLPs train through.

Each VJP receives the forward inputs and outputs, the output gradient and the completed
attributes, and returns one gradient per input (None where an input is not differentiable).
They are checked against central finite differences in ``tests/train/test_gradcheck.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ops.conv import apply_activation, conv_reference, sliding_windows, spatial_attrs
from lwc.train.autodiff import VjpArgs, register_train_forward, register_vjp

Grads = list[np.ndarray | None]


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast gradient back down to ``shape``."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


# ---- activations ------------------------------------------------------------------------------
def activation_grad(act: str, pre: np.ndarray | None, y: np.ndarray, gy: np.ndarray,
                    attrs: Mapping[str, Any]) -> np.ndarray:
    """d act / d pre-activation times gy; ``pre`` is only needed by smooth activations."""
    if act == "":
        return gy
    if act == "relu":
        return gy * (y > 0)
    if act == "relu6":
        return gy * ((y > 0) & (y < 6))
    if act == "clip":
        return gy * ((y > attrs.get("clip_min", attrs.get("min"))) &
                     (y < attrs.get("clip_max", attrs.get("max"))))
    if act == "leaky_relu":
        assert pre is not None
        return gy * np.where(pre >= 0, 1.0, attrs["alpha"]).astype(gy.dtype)
    if act == "sigmoid":
        return gy * y * (1 - y)
    if act == "tanh":
        return gy * (1 - y * y)
    if act == "hard_swish":
        assert pre is not None
        d = np.where(pre <= -3, 0.0, np.where(pre >= 3, 1.0, pre / 3 + 0.5))
        return gy * d.astype(gy.dtype)
    if act == "hard_sigmoid":
        assert pre is not None
        a, b = attrs["alpha"], attrs["beta"]
        z = a * pre + b
        return gy * (a * ((z > 0) & (z < 1))).astype(gy.dtype)
    raise NotImplementedError(f"no gradient for activation {act!r}")


def _unary(act: str, needs_pre: bool = False) -> None:
    @register_vjp(act)
    def vjp(a: VjpArgs) -> Grads:
        return [activation_grad(act, a.xs[0] if needs_pre else None, a.ys[0], a.gy, a.attrs)]


for _act, _pre in [("relu", False), ("sigmoid", False), ("tanh", False), ("leaky_relu", True),
                   ("hard_swish", True), ("hard_sigmoid", True)]:
    _unary(_act, _pre)


@register_vjp("clip")
def _clip(a: VjpArgs) -> Grads:
    x = a.xs[0]
    return [a.gy * ((x >= a.attrs["min"]) & (x <= a.attrs["max"]))]


@register_vjp("identity")
@register_vjp("dropout")
def _identity(a: VjpArgs) -> Grads:
    return [a.gy]


# ---- arithmetic -------------------------------------------------------------------------------
@register_vjp("add")
def _add(a: VjpArgs) -> Grads:
    return [unbroadcast(a.gy, a.xs[0].shape), unbroadcast(a.gy, a.xs[1].shape)]


@register_vjp("sub")
def _sub(a: VjpArgs) -> Grads:
    return [unbroadcast(a.gy, a.xs[0].shape), unbroadcast(-a.gy, a.xs[1].shape)]


@register_vjp("mul")
def _mul(a: VjpArgs) -> Grads:
    x, y = a.xs
    return [unbroadcast(a.gy * y, x.shape), unbroadcast(a.gy * x, y.shape)]


@register_vjp("div")
def _div(a: VjpArgs) -> Grads:
    x, y = a.xs
    return [unbroadcast(a.gy / y, x.shape), unbroadcast(-a.gy * x / (y * y), y.shape)]


# ---- shape ops --------------------------------------------------------------------------------
@register_vjp("reshape")
@register_vjp("flatten")
@register_vjp("squeeze")
@register_vjp("unsqueeze")
def _reshape(a: VjpArgs) -> Grads:
    return [a.gy.reshape(a.xs[0].shape)] + [None] * (len(a.xs) - 1)


@register_vjp("transpose")
def _transpose(a: VjpArgs) -> Grads:
    perm = a.attrs["perm"] or tuple(reversed(range(a.xs[0].ndim)))
    return [np.transpose(a.gy, np.argsort(perm))]


@register_vjp("concat")
def _concat(a: VjpArgs) -> Grads:
    axis = a.attrs["axis"] % a.ys[0].ndim
    cuts = np.cumsum([x.shape[axis] for x in a.xs])[:-1]
    return list(np.split(a.gy, cuts, axis=axis))


@register_vjp("softmax")
def _softmax(a: VjpArgs) -> Grads:
    y, g = a.ys[0], a.gy
    axis = a.attrs["axis"]
    return [y * (g - (g * y).sum(axis=axis, keepdims=True))]


# ---- linear algebra ---------------------------------------------------------------------------
def _fused_pre_grad(a: VjpArgs, recompute: Any) -> np.ndarray:
    """Gradient w.r.t. the pre-activation of an op with a fused ``act`` epilogue."""
    act = a.attrs.get("act", "")
    pre = recompute() if act in ("leaky_relu", "hard_swish") else None
    return activation_grad(act, pre, a.ys[0], a.gy, a.attrs)


@register_vjp("gemm")
def _gemm(a: VjpArgs) -> Grads:
    at = a.attrs
    A, B = a.xs[0], a.xs[1]
    Am = A.T if at["trans_a"] else A
    Bm = B.T if at["trans_b"] else B
    has_c = len(a.xs) > (3 if at.get("residual") else 2)

    def pre() -> np.ndarray:
        y = at["alpha"] * (Am @ Bm)
        if has_c:
            y = y + at["beta"] * a.xs[2]
        return y + a.xs[-1] if at.get("residual") else y

    g = _fused_pre_grad(a, pre)
    gAm = at["alpha"] * (g @ Bm.T)
    gBm = at["alpha"] * (Am.T @ g)
    grads: Grads = [gAm.T if at["trans_a"] else gAm, gBm.T if at["trans_b"] else gBm]
    if has_c:
        grads.append(unbroadcast(at["beta"] * g, a.xs[2].shape))
    if at.get("residual"):
        grads.append(g)
    return grads


@register_vjp("matmul")
def _matmul(a: VjpArgs) -> Grads:
    x, w = a.xs
    g = a.gy
    x2 = x[None, :] if x.ndim == 1 else x
    w2 = w[:, None] if w.ndim == 1 else w
    g2 = g.reshape(*g.shape[:-1], 1, g.shape[-1]) if x.ndim == 1 else g
    g2 = g2[..., None] if w.ndim == 1 else g2
    gx = g2 @ np.swapaxes(w2, -1, -2)
    gw = np.swapaxes(x2, -1, -2) @ g2
    gx = unbroadcast(gx, x2.shape).reshape(x.shape)
    gw = unbroadcast(gw, w2.shape).reshape(w.shape)
    return [gx, gw]


# ---- convolution ------------------------------------------------------------------------------
def conv_grads(x: np.ndarray, w: np.ndarray, gy: np.ndarray,
               attrs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dx, dL/dw) of a grouped, strided, dilated, padded convolution (no bias, no act)."""
    nsp = x.ndim - 2
    strides, dil, pads = spatial_attrs(attrs, nsp)
    g = attrs["group"]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)])
    win = sliding_windows(xp, w.shape[2:], strides, dil)  # N, C, *out, *k
    cout, cg = w.shape[0], w.shape[1]
    og = cout // g
    sp = "defghi"[:nsp]
    kl = "uvw"[:nsp]
    gw = np.empty_like(w)
    gwin = np.empty(win.shape, dtype=x.dtype)
    for gi in range(g):
        xs = win[:, gi * cg:(gi + 1) * cg]
        gys = gy[:, gi * og:(gi + 1) * og]
        gw[gi * og:(gi + 1) * og] = np.einsum(f"nc{sp}{kl},no{sp}->oc{kl}", xs, gys, optimize=True)
        gwin[:, gi * cg:(gi + 1) * cg] = np.einsum(f"no{sp},oc{kl}->nc{sp}{kl}", gys,
                                                   w[gi * og:(gi + 1) * og], optimize=True)
    gxp = np.zeros_like(xp)
    out_sp = gy.shape[2:]
    for kidx in np.ndindex(*w.shape[2:]):
        dst = [slice(None), slice(None)]
        for i in range(nsp):
            start = kidx[i] * dil[i]
            dst.append(slice(start, start + strides[i] * (out_sp[i] - 1) + 1, strides[i]))
        gxp[tuple(dst)] += gwin[(Ellipsis, *kidx)]
    crop = [slice(None), slice(None)] + [slice(pads[i], pads[i] + x.shape[2 + i])
                                         for i in range(nsp)]
    return gxp[tuple(crop)], gw


@register_vjp("conv")
def _conv(a: VjpArgs) -> Grads:
    at = a.attrs
    x, w = a.xs[0], a.xs[1]
    has_bias = len(a.xs) > (3 if at["residual"] else 2)

    def pre() -> np.ndarray:
        y = conv_reference(x, w, a.xs[2] if has_bias else None, at)
        return y + a.xs[-1] if at["residual"] else y

    g = _fused_pre_grad(a, pre)
    gx, gw = conv_grads(x, w, g, at)
    grads: Grads = [gx, gw]
    if has_bias:
        grads.append(g.sum(axis=(0, *range(2, g.ndim))))
    if at["residual"]:
        grads.append(g)
    return grads


# ---- pooling ----------------------------------------------------------------------------------
def _pool_geometry(x: np.ndarray, attrs: Mapping[str, Any], out_shape: tuple[int, ...]):
    nsp = x.ndim - 2
    kernel = attrs["kernel"]
    strides = attrs["strides"] or (1,) * nsp
    dil = attrs.get("dilations") or (1,) * nsp
    pads = attrs["pads"] or (0,) * (2 * nsp)
    # right padding large enough for ceil_mode windows
    hi = [max(pads[nsp + i], (out_shape[2 + i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1
              - x.shape[2 + i] - pads[i]) for i in range(nsp)]
    return nsp, kernel, strides, dil, pads, hi


def _scatter_windows(gwin: np.ndarray, xp_shape: tuple[int, ...], kernel: Sequence[int],
                     strides: Sequence[int], dil: Sequence[int], out_sp: Sequence[int]) -> np.ndarray:
    gxp = np.zeros(xp_shape, dtype=gwin.dtype)
    for kidx in np.ndindex(*kernel):
        dst = [slice(None), slice(None)]
        for i in range(len(kernel)):
            s = kidx[i] * dil[i]
            dst.append(slice(s, s + strides[i] * (out_sp[i] - 1) + 1, strides[i]))
        gxp[tuple(dst)] += gwin[(Ellipsis, *kidx)]
    return gxp


@register_vjp("max_pool")
def _max_pool(a: VjpArgs) -> Grads:
    x, y = a.xs[0], a.ys[0]
    nsp, kernel, strides, dil, pads, hi = _pool_geometry(x, a.attrs, y.shape)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], hi[i]) for i in range(nsp)],
                constant_values=-np.inf)
    win = sliding_windows(xp, kernel, strides, dil)[(slice(None), slice(None)) +
                                                    tuple(slice(0, s) for s in y.shape[2:])]
    flat = win.reshape(*win.shape[:2 + nsp], -1)
    arg = flat.argmax(axis=-1)  # first maximum: one winner per window, even on ties
    onehot = (np.arange(flat.shape[-1]) == arg[..., None]).astype(x.dtype)
    gwin = (onehot * a.gy[..., None]).reshape(win.shape)
    gxp = _scatter_windows(gwin, xp.shape, kernel, strides, dil, y.shape[2:])
    crop = [slice(None), slice(None)] + [slice(pads[i], pads[i] + x.shape[2 + i])
                                         for i in range(nsp)]
    return [gxp[tuple(crop)]]


@register_vjp("avg_pool")
def _avg_pool(a: VjpArgs) -> Grads:
    x, y = a.xs[0], a.ys[0]
    nsp, kernel, strides, dil, pads, hi = _pool_geometry(x, a.attrs, y.shape)
    pad_w = [(0, 0), (0, 0)] + [(pads[i], hi[i]) for i in range(nsp)]
    ones = np.pad(np.ones((1, 1, *x.shape[2:]), x.dtype), pad_w)
    if a.attrs["count_include_pad"]:
        # padding counts, but the ceil_mode overhang beyond the declared pads does not
        lim = [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)]
        ones = np.pad(np.pad(np.ones((1, 1, *x.shape[2:]), x.dtype), lim, constant_values=1),
                      [(0, 0), (0, 0)] + [(0, hi[i] - pads[nsp + i]) for i in range(nsp)])
    cwin = sliding_windows(ones, kernel, strides, dil)[(slice(None), slice(None)) +
                                                       tuple(slice(0, s) for s in y.shape[2:])]
    count = cwin.reshape(*cwin.shape[:2 + nsp], -1).sum(-1)
    share = a.gy / np.maximum(count, 1)
    gwin = np.broadcast_to(share[(Ellipsis,) + (None,) * nsp],
                           (*a.gy.shape, *kernel)) * cwin
    gxp = _scatter_windows(np.ascontiguousarray(gwin), tuple(x.shape[:2]) + ones.shape[2:],
                           kernel, strides, dil, y.shape[2:])
    crop = [slice(None), slice(None)] + [slice(pads[i], pads[i] + x.shape[2 + i])
                                         for i in range(nsp)]
    return [gxp[tuple(crop)]]


@register_vjp("global_avg_pool")
def _gap(a: VjpArgs) -> Grads:
    x = a.xs[0]
    n = int(np.prod(x.shape[2:]))
    return [np.broadcast_to(a.gy / n, x.shape).copy()]


# ---- batch normalisation ----------------------------------------------------------------------
def _bn_shape(x: np.ndarray) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


@register_train_forward("batch_norm")
def _bn_train(xs: Sequence[np.ndarray], attrs: Mapping[str, Any],
              saved: dict[str, Any]) -> list[np.ndarray]:
    """Training-mode batch_norm normalises with the batch's statistics."""
    x, scale, bias = xs[0], xs[1], xs[2]
    axes = (0, *range(2, x.ndim))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    inv = 1.0 / np.sqrt(var + attrs["epsilon"])
    xhat = (x - mean.reshape(_bn_shape(x))) * inv.reshape(_bn_shape(x))
    saved.update(mean=mean, var=var, inv=inv, xhat=xhat)
    y = xhat * scale.reshape(_bn_shape(x)) + bias.reshape(_bn_shape(x))
    return [y.astype(x.dtype)]


@register_vjp("batch_norm")
def _bn(a: VjpArgs) -> Grads:
    x, scale = a.xs[0], a.xs[1]
    g = a.gy
    axes = (0, *range(2, x.ndim))
    shp = _bn_shape(x)
    if "xhat" in a.saved:  # training mode: statistics depend on x
        xhat, inv = a.saved["xhat"], a.saved["inv"]
        m = x.size / x.shape[1]
        gxhat = g * scale.reshape(shp)
        gx = (inv.reshape(shp) / m) * (m * gxhat - gxhat.sum(axis=axes, keepdims=True)
                                       - xhat * (gxhat * xhat).sum(axis=axes, keepdims=True))
        return [gx, (g * xhat).sum(axis=axes), g.sum(axis=axes), None, None]
    mean, var = a.xs[3], a.xs[4]
    inv = 1.0 / np.sqrt(var + a.attrs["epsilon"])
    xhat = (x - mean.reshape(shp)) * inv.reshape(shp)
    gs = g * scale.reshape(shp)
    gmean = -(gs * inv.reshape(shp)).sum(axis=axes)
    gvar = (gs * (x - mean.reshape(shp))).sum(axis=axes) * -0.5 * inv ** 3
    return [gs * inv.reshape(shp), (g * xhat).sum(axis=axes), g.sum(axis=axes), gmean, gvar]


__all__ = ["activation_grad", "conv_grads", "unbroadcast", "apply_activation"]
