"""The model zoo: published MAC/parameter figures, torchvision's exact structure (checked by running
the zoo graph with the weights of the shared torchvision exports), symbolic batch, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import lwc
from lwc import zoo
from lwc.cost import PAPER_OPS, graph_cost, node_cost
from lwc.errors import InputError
from lwc.ir.core import Graph

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "models"
SMALL = {"xception": {"resolution": 71, "middle_blocks": 2}}
FAST = {name: {"resolution": 64} for name in zoo.names() if name not in ("lenet5", "mlp")} | SMALL
"""Low-resolution variants for the tests that run a model several times (weights are the same)."""


def bn_affine_params(g: Graph) -> int:
    """BN scale + shift count (what torch's ``parameters()`` adds on top of conv/fc weights)."""
    return sum(2 * int(n.inputs[1].type.shape[0]) for n in g.nodes_of("batch_norm"))


def test_names_describe_and_bad_requests() -> None:
    assert zoo.names() == sorted(["lenet5", "mlp", "mobilenet_v1", "mobilenet_v2", "resnet18",
                                  "squeezenet", "shufflenet", "inception", "xception"])
    text = zoo.describe("mobilenet_v1")
    assert "alpha=1.0" in text and "resolution=224" in text and "569M" in text
    with pytest.raises(InputError, match="no model 'vgg'"):
        zoo.build("vgg")
    with pytest.raises(InputError, match="no option width"):
        zoo.build("mlp", width=3)
    with pytest.raises(InputError, match="groups"):
        zoo.build("shufflenet", groups=5)
    with pytest.raises(InputError, match="batch"):
        zoo.build("mlp", batch=0)


@pytest.mark.parametrize("name", zoo.names())
def test_builds_verified_unfused_and_deterministic(name: str) -> None:
    opts = FAST.get(name, {})
    g = zoo.build(name, **opts)
    assert [v.name for v in g.inputs] == ["input"] and [v.name for v in g.outputs] == ["output"]
    assert g.inputs[0].type.shape[0] == 1
    for n in g.nodes_of("conv", "gemm"):
        assert not n.attrs.get("act") and not n.attrs.get("residual"), n.label
    same, other = zoo.build(name, **opts), zoo.build(name, seed=1, **opts)
    for key, v in g.constants.items():
        assert np.array_equal(v.data, same.constants[key].data), key
    assert any(not np.array_equal(v.data, other.constants[k].data)
               for k, v in g.constants.items())


@pytest.mark.parametrize("name", zoo.names())
def test_symbolic_batch_runs_per_sample(name: str) -> None:
    """batch="N": the same weights as batch 1, and a batch of 2 gives each sample's own output."""
    g = zoo.build(name, batch="N", **FAST.get(name, {}))
    assert g.inputs[0].type.shape[0] == "N" and g.outputs[0].type.shape[0] == "N"
    x = lwc.random_inputs(g, seed=3, batch=2)["input"]
    both = lwc.interpret(g, {"input": x})["output"]
    one = lwc.interpret(g, {"input": x[1:]})["output"]
    scale = max(1.0, float(np.abs(both).max()))
    np.testing.assert_allclose(both[1:], one, rtol=0, atol=1e-5 * scale)
    assert np.all(np.isfinite(both))
    assert float(np.abs(both[0] - both[1]).max()) > 1e-3 * scale  # inputs matter
    assert float(both[0].std()) > 1e-3 * scale  # classes differ: not a degenerate output


def test_mobilenet_v1_paper_figures() -> None:
    """Paper Table 1/6/7 (mult-adds and parameters of conv and fc layers; BN excluded)."""
    for alpha, res, macs_m, params_m in ((1.0, 224, 569, 4.2), (0.75, 224, 325, 2.6),
                                         (0.5, 224, 149, 1.3), (1.0, 192, 418, 4.2),
                                         (1.0, 160, 290, 4.2), (1.0, 128, 186, 4.2)):
        c = graph_cost(zoo.build("mobilenet_v1", alpha=alpha, resolution=res), PAPER_OPS)
        assert c.macs / 1e6 == pytest.approx(macs_m, rel=0.02), (alpha, res)
        assert c.params / 1e6 == pytest.approx(params_m, rel=0.02), (alpha, res)


def test_mobilenet_v2_figures() -> None:
    """Paper: 300M mult-adds; torchvision: 3,504,872 parameters (its count includes BN affine)."""
    g = zoo.build("mobilenet_v2")
    c = graph_cost(g, PAPER_OPS)
    assert c.macs / 1e6 == pytest.approx(300, rel=0.03)
    assert c.params + bn_affine_params(g) == 3_504_872
    assert len(g.nodes_of("add")) == 10 and len(g.nodes_of("conv")) == 52
    clips = g.nodes_of("clip")
    assert len(clips) == 35 and all(n.attrs == {"min": 0.0, "max": 6.0} for n in clips)


def test_other_published_figures() -> None:
    """torchvision / Keras / paper parameter counts and MACs of the remaining architectures."""
    r18 = zoo.build("resnet18")
    assert graph_cost(r18, PAPER_OPS).params + bn_affine_params(r18) == 11_689_512
    assert graph_cost(r18, PAPER_OPS).macs / 1e9 == pytest.approx(1.82, rel=0.02)
    sq = graph_cost(zoo.build("squeezenet"))
    assert sq.params == 1_235_496 and sq.macs / 1e6 == pytest.approx(352, rel=0.02)
    assert graph_cost(zoo.build("lenet5")).params == 61_706
    assert graph_cost(zoo.build("mlp")).params == 50_610
    assert graph_cost(zoo.build("shufflenet"), PAPER_OPS).macs / 1e6 == pytest.approx(140, rel=0.03)
    assert graph_cost(zoo.build("inception"), PAPER_OPS).macs / 1e9 == pytest.approx(1.5, rel=0.06)
    assert graph_cost(zoo.build("xception")).params == 22_910_480  # Keras, BN statistics included


def test_cost_helpers_follow_the_registry_rule() -> None:
    g = zoo.build("lenet5")
    c1 = g.nodes_of("conv")[0]
    cost = node_cost(c1)
    assert cost.macs == 28 * 28 * 6 * 25 and cost.params == 6 * 25 + 6
    total = graph_cost(g)
    assert total.macs == sum(node_cost(n).macs for n in g.nodes)
    assert graph_cost(g, ("conv",)).params == 156 + 2416 + 48120


def test_shufflenet_uses_the_reshape_transpose_idiom() -> None:
    g = zoo.build("shufflenet", batch="N", resolution=64)
    assert not g.nodes_of("channel_shuffle")
    transposes = g.nodes_of("transpose")
    assert len(transposes) == 16  # one per unit (4 + 8 + 4)
    for t in transposes:
        pre, post = t.inputs[0].producer, t.output.users[0]
        assert pre is not None and pre.op == "reshape" and post.op == "reshape"
        assert t.attrs["perm"] == (0, 2, 1, 3, 4)
    # the idiom computes exactly the channel_shuffle op
    x = lwc.random_inputs(g, seed=1, batch=2)["input"]
    vals = lwc.interpret(g, {"input": x}, keep_all=True)
    from lwc.ops import get_op

    t = transposes[0]
    src = t.inputs[0].producer.inputs[0]
    want = get_op("channel_shuffle").compute([vals[src.name]], {"groups": 3})[0]
    np.testing.assert_array_equal(vals[t.output.users[0].output.name], want)
    assert len(g.nodes_of("concat")) == 3 and len(g.nodes_of("avg_pool")) == 3


def test_inception_and_xception_structure() -> None:
    g = zoo.build("inception")
    concats = g.nodes_of("concat")
    assert len(concats) == 9 and all(len(n.inputs) == 4 for n in concats)
    assert concats[-1].output.type.shape[1] == 1024
    x = zoo.build("xception", **SMALL["xception"])
    convs = x.nodes_of("conv")
    depthwise = [n for n in convs if n.attrs.get("group", 1) > 1]
    for dw in depthwise:  # depthwise -> pointwise directly: no nonlinearity between
        (user,) = dw.output.users
        assert user.op == "conv" and user.inputs[1].type.shape[2:] == (1, 1)
    adds = x.nodes_of("add")
    assert len(adds) == 3 + 2 + 1
    for a in adds[:-1]:  # linear residuals: the next shortcut reads the add, not a ReLU of it
        assert any(u.op in ("add", "conv") for u in a.output.users), a.label


def _onnx_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers plus Constant outputs, and names that alias them through Identity."""
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input[0] in out:
            out[n.output[0]] = out[n.input[0]]
    return out


def _onnx_weights(model: onnx.ModelProto) -> Iterator[tuple[str, list[np.ndarray]]]:
    tensors = _onnx_tensors(model)
    kinds = {"Conv": "conv", "BatchNormalization": "batch_norm", "Gemm": "gemm"}
    for n in model.graph.node:
        if n.op_type in kinds:
            yield kinds[n.op_type], [tensors[i] for i in n.input[1:] if i]


@pytest.mark.parametrize(("name", "file"), [("mobilenet_v2", "mobilenet_v2"),
                                            ("resnet18", "resnet18"),
                                            ("squeezenet", "squeezenet1_1"),
                                            ("mlp", "digits_mlp")])
def test_same_function_as_torchvision_export(name: str, file: str) -> None:
    """Load the shared torchvision export's weights into the zoo graph layer by layer (shapes must
    line up in order) and reproduce onnxruntime's recorded output: same architecture, exactly."""
    if not (SHARED / f"{file}.onnx").is_file():
        pytest.fail(f"shared model {SHARED / file}.onnx is missing")
    model = onnx.load(str(SHARED / f"{file}.onnx"))
    io = np.load(SHARED / f"{file}.io.npz")
    g = zoo.build(name, batch="N")
    layers = [n for n in g.nodes if n.op in ("conv", "batch_norm", "gemm")]
    source = list(_onnx_weights(model))
    assert [op for op, _ in source] == [n.op for n in layers]
    for node, (_, arrays) in zip(layers, source):
        consts = [v for v in node.inputs[1:] if v.is_constant]
        assert [c.type.shape for c in consts] == [a.shape for a in arrays], node.label
        for c, a in zip(consts, arrays):
            g.set_constant(c, a.astype(np.float32))
    got = lwc.interpret(g, {"input": io["input"]})["output"]
    ref = io["output"]
    assert float(np.abs(got - ref).max()) <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_calibrated_batch_norm_keeps_deep_models_unit_scale() -> None:
    """Random BN statistics let residual sums grow (ShuffleNet's logits explode); calibrated ones
    follow the measured activations, change only BN mean/var, and keep outputs near unit scale."""
    raw = zoo.build("shufflenet", batch="N", resolution=64)
    cal = zoo.build("shufflenet", batch="N", resolution=64, calibrate=True)
    x = {"input": np.random.default_rng(7).standard_normal((2, 3, 64, 64)).astype(np.float32)}
    raw_out, cal_out = lwc.interpret(raw, x)["output"], lwc.interpret(cal, x)["output"]
    assert float(np.abs(raw_out).max()) > 1e3
    assert float(np.abs(cal_out).max()) < 1e-2 * float(np.abs(raw_out).max())
    assert 0.1 < float(cal_out.std()) < 100
    stats = {n.inputs[i].name for n in cal.nodes_of("batch_norm") for i in (3, 4)}
    for key, v in raw.constants.items():
        assert np.array_equal(v.data, cal.constants[key].data) == (key not in stats), key
    first = cal.nodes_of("batch_norm")[0]
    acts = lwc.interpret(cal, lwc.random_inputs(cal, seed=0, batch=2), keep_all=True)
    pre = acts[first.inputs[0].name].astype(np.float64)
    mu, sd = pre.mean(axis=(0, 2, 3)), pre.std(axis=(0, 2, 3))
    assert np.all(np.abs(first.inputs[3].data - mu) < 0.5 * sd + 1e-3)
    var = first.inputs[4].data
    assert np.all((var > 0.4 * sd**2) & (var < 1.6 * (sd + 1e-3) ** 2))
