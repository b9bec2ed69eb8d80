"""Whole models: the shared torchvision exports (vs the interpreter and onnxruntime's stored
output), the zoo, and onnx's ``light/`` architectures; plus the arena figures on mobilenet_v2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llvm_helpers import assert_close, check_graph

import lwc
from lwc.backends.llvm import compile as llvm_compile

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "models"
SHARED_MODELS = sorted(p.stem for p in SHARED.glob("*.onnx")) if SHARED.exists() else []


def _import(path: Path) -> lwc.Graph:
    from lwc.frontend.onnx.importer import import_onnx

    return import_onnx(str(path))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_matches_interpreter_and_onnxruntime(name: str) -> None:
    g = _import(SHARED / f"{name}.onnx")
    io = np.load(SHARED / f"{name}.io.npz")
    x = io[io.files[0]]
    batch = {s: x.shape[i] for i, s in enumerate(g.inputs[0].type.shape) if isinstance(s, str)}
    m = check_graph(g, {g.inputs[0].name: x}, bindings=batch)
    out = m.run({g.inputs[0].name: x})
    assert_close(next(iter(out.values())), io[io.files[1]], f"{name} vs onnxruntime")


def test_mobilenet_v2_arena_at_most_60_percent_of_intermediates(capsys: pytest.CaptureFixture) -> None:
    g = lwc.zoo.build("mobilenet_v2") if hasattr(lwc, "zoo") else None
    if g is None:
        import lwc.zoo as zoo

        g = zoo.build("mobilenet_v2")
    m = llvm_compile(g)
    r = m.memory_report()
    with capsys.disabled():
        print(f"\nmobilenet_v2 arena {r['arena_bytes'] / 2**20:.2f} MiB, sum of intermediates "
              f"{r['sum_intermediates_bytes'] / 2**20:.2f} MiB, largest "
              f"{r['largest_intermediate_bytes'] / 2**20:.2f} MiB")
    assert r["arena_bytes"] <= 0.6 * r["sum_intermediates_bytes"]
    assert r["arena_bytes"] >= r["largest_intermediate_bytes"]
    x = lwc.random_inputs(g, seed=3)
    assert_close(m.run(x)[g.outputs[0].name], lwc.interpret(g, x)[g.outputs[0].name], "mnv2")


def _zoo_names() -> list[str]:
    import lwc.zoo as zoo

    return list(zoo.names())


@pytest.mark.slow
@pytest.mark.parametrize("name", _zoo_names())
def test_zoo_model(name: str) -> None:
    import lwc.zoo as zoo

    g = zoo.build(name)
    check_graph(g, lwc.random_inputs(g, seed=4))


def _light_models() -> list[Path]:
    try:
        import onnx
    except ImportError:
        return []
    d = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    return sorted(d.glob("light_*.onnx"))


def _onnxruntime(path: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    # the importer sanitises names ("gpu_0/data_0" -> "gpu_0_data_0"): feed by position
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs.values())})


@pytest.mark.slow
@pytest.mark.parametrize("path", _light_models(), ids=lambda p: p.stem)
def test_onnx_light_model(path: Path) -> None:
    """Small models against the interpreter; the three over 30M parameters (alexnet, vgg19,
    zfnet512: minutes in the numpy interpreter on 2 cores) against onnxruntime instead."""
    g = _import(path)
    x = lwc.random_inputs(g, seed=5)
    if sum(v.data.size for v in g.constants.values()) <= 30_000_000:
        check_graph(g, x)
        return
    out = llvm_compile(g).run(x)
    ref = _onnxruntime(path, x)
    assert len(out) == len(ref)
    for (k, v), r in zip(out.items(), ref):
        assert_close(v, r, f"{path.stem} {k} vs onnxruntime")


@pytest.mark.parametrize("pipeline", ["O3", "O3,convert-layout{layout=NHWC}",
                                      "O3,convert-layout{layout=NCHW8c}"])
def test_pass_pipelines_output_lowers(pipeline: str) -> None:
    """Graphs the pass pipeline already fused (act/residual attrs) or converted to conv_nhwc /
    conv_nchwc compile and still match the interpreter on the original graph."""
    import lwc.zoo as zoo
    from lwc.pass_manager import PassManager

    g = zoo.build("mobilenet_v2", resolution=64)
    x = lwc.random_inputs(g, seed=6)
    ref = lwc.interpret(g, x)
    opt = g.copy()
    PassManager(pipeline).run(opt)
    out = llvm_compile(opt).run(x)
    for k, v in zip(ref, out.values()):
        assert_close(v, ref[k], f"{pipeline}: {k}")


@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_rewritten_graph_lowers(tile: int) -> None:
    """The winograd pass's output compiles (as the conv it computes) and matches the interpreter
    running the winograd_conv nodes."""
    import lwc.zoo as zoo
    from lwc.pass_manager import PassManager

    g = zoo.build("resnet18", resolution=32)
    PassManager(f"O3,winograd{{tile={tile}}}").run(g)
    assert any(n.op == "winograd_conv" for n in g.nodes)
    check_graph(g, lwc.random_inputs(g, seed=7))
