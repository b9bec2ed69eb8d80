"""The importer treats files as untrusted, keeps ONNX names, folds constants and shape maths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_builders import const, model, run_ort, vinfo

import lwc
from lwc.errors import ModelFormatError, UnsupportedOpError
from lwc.frontend.onnx.importer import import_model, import_onnx
from lwc.frontend.onnx.registry import supported_ops


def _relu_model() -> onnx.ModelProto:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    return model([helper.make_node("MatMul", ["x", "w"], ["y"])] if "MatMul" in supported_ops()
                 else [helper.make_node("Add", ["x", "w"], ["y"])],
                 [vinfo("x", [3, 4])], [vinfo("y", [3, 4])], {"w": w})


def _save(m: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(m.SerializeToString())
    return path


# ----- untrusted files --------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="nope.onnx: no such model file"):
        import_onnx(tmp_path / "nope.onnx")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file(tmp_path: Path, cut: float) -> None:
    data = _relu_model().SerializeToString()
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelFormatError) as e:
        import_onnx(p)
    assert "trunc.onnx" in str(e.value) and "\n" not in str(e.value)


def test_garbage_and_graphless_files(tmp_path: Path) -> None:
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\xff\xfe not a protobuf at all \x00\x01" * 10)
    with pytest.raises(ModelFormatError, match="junk.onnx"):
        import_onnx(p)
    q = _save(onnx.ModelProto(ir_version=8), tmp_path / "empty.onnx")
    with pytest.raises(ModelFormatError, match="empty.onnx.*no graph"):
        import_onnx(q)


def _external_model(location: str, length: int | None = None) -> onnx.ModelProto:
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [vinfo("x", [4])], [vinfo("y", [4])])
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": "0"}
    if length is not None:
        entries["length"] = str(length)
    for k, v in entries.items():
        t.external_data.add(key=k, value=v)
    m.graph.initializer.append(t)
    return m


def test_external_data_inside_folder_loads(tmp_path: Path) -> None:
    w = np.array([1, 2, 3, 4], dtype=np.float32)
    (tmp_path / "w.bin").write_bytes(w.tobytes())
    g = import_onnx(_save(_external_model("w.bin", 16), tmp_path / "m.onnx"))
    x = np.ones(4, np.float32)
    np.testing.assert_array_equal(lwc.interpret(g, {"x": x})["y"], x + w)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin",
                                      "link.bin"])
def test_external_data_escaping_folder_is_rejected(tmp_path: Path, location: str) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 16)
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "link.bin")
    with pytest.raises(ModelFormatError, match="external data"):
        import_onnx(_save(_external_model(location, 16), folder / "m.onnx"))


def test_external_data_length_must_match_shape(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"\0" * 64)
    with pytest.raises(ModelFormatError, match="declares 64 bytes"):
        import_onnx(_save(_external_model("w.bin", 64), tmp_path / "m.onnx"))
    (tmp_path / "short.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ModelFormatError, match="shorter"):
        import_onnx(_save(_external_model("short.bin"), tmp_path / "m2.onnx"))


def test_huge_declared_tensor_is_rejected_before_allocation(tmp_path: Path) -> None:
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [vinfo("x", [4])], [vinfo("y", [4])])
    m.graph.initializer.append(TensorProto(name="w", data_type=TensorProto.FLOAT,
                                           dims=[1 << 20, 1 << 20], raw_data=b"\0" * 16))
    with pytest.raises(ModelFormatError, match="larger than"):
        import_onnx(_save(m, tmp_path / "huge.onnx"))
    m.graph.initializer[0].dims[:] = [8]
    with pytest.raises(ModelFormatError, match="holds 16 bytes, expected 32"):
        import_onnx(_save(m, tmp_path / "short.onnx"))


# ----- refusals ---------------------------------------------------------------------------------
def test_unsupported_op_lists_supported_ops(tmp_path: Path) -> None:
    node = helper.make_node("NonMaxSuppression", ["b", "s"], ["sel"], name="conv_17")
    m = model([node], [vinfo("b", [1, 4, 4]), vinfo("s", [1, 1, 4])],
              [vinfo("sel", [None, 3], TensorProto.INT64)], opset=13)
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(_save(m, tmp_path / "model.onnx"))
    msg = str(e.value)
    assert "model.onnx: node 'conv_17' (op NonMaxSuppression, opset 13) is not supported" in msg
    assert "supported ONNX ops: Abs, Add," in msg and "Relu" in msg and "\n" not in msg


def test_other_domain_opset_and_dtype_refused() -> None:
    n = helper.make_node("Custom", ["x"], ["y"], domain="com.example")
    with pytest.raises(UnsupportedOpError, match="domain 'com.example'"):
        import_model(model([n], [vinfo("x", [2])], [vinfo("y", [2])]))
    relu = helper.make_node("Relu", ["x"], ["y"])
    for bad in (3, 22):
        with pytest.raises(UnsupportedOpError, match=f"opset {bad} is not supported"):
            import_model(model([relu], [vinfo("x", [2])], [vinfo("y", [2])], opset=bad))
    with pytest.raises(UnsupportedOpError, match="element type STRING"):
        import_model(model([relu], [vinfo("x", [2], TensorProto.STRING)], [vinfo("y", [2])]))


def test_dropout_mask_output_refused() -> None:
    n = helper.make_node("Dropout", ["x"], ["y", "mask"])
    m = model([n], [vinfo("x", [2])], [vinfo("y", [2]), vinfo("mask", [2], TensorProto.BOOL)])
    with pytest.raises(UnsupportedOpError, match="output 'mask'"):
        import_model(m)


def test_clip_with_runtime_bounds_refused() -> None:
    n = helper.make_node("Clip", ["x", "lo"], ["y"])
    m = model([n], [vinfo("x", [2]), vinfo("lo", [])], [vinfo("y", [2])], opset=13)
    with pytest.raises(UnsupportedOpError, match="min must be a constant"):
        import_model(m)


# ----- names, folding, symbolic shapes ----------------------------------------------------------
def test_names_are_kept_or_sanitized() -> None:
    nodes = [helper.make_node("Relu", ["input:0"], ["relu out"]),
             helper.make_node("Neg", ["relu out"], ["logits"])]
    m = model(nodes, [vinfo("input:0", [2])], [vinfo("logits", [2]), vinfo("relu out", [2])])
    g = import_model(m)
    assert [v.name for v in g.inputs] == ["input_0"]
    assert [v.name for v in g.outputs] == ["logits", "relu_out"]
    out = lwc.interpret(g, {"input_0": np.array([-1, 2], np.float32)})
    np.testing.assert_array_equal(out["logits"], [0, -2])


def test_output_that_is_an_input_constant_or_alias_gets_its_name() -> None:
    nodes = [helper.make_node("Identity", ["x"], ["y"]), const("c", np.ones(2, np.float32)),
             helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["r2"])]
    m = model(nodes, [vinfo("x", [2])],
              [vinfo("y", [2]), vinfo("c", [2]), vinfo("r", [2]), vinfo("r2", [2])])
    g = import_model(m)
    assert [v.name for v in g.outputs] == ["y", "c", "r", "r2"]
    out = lwc.interpret(g, {"x": np.array([-1, 1], np.float32)})
    np.testing.assert_array_equal(out["c"], [1, 1])
    np.testing.assert_array_equal(out["r2"], [0, 1])


def test_constant_subgraphs_fold() -> None:
    nodes = [const("s", np.array([1, 4], np.int64)),
             helper.make_node("ConstantOfShape", ["s"], ["z"],
                              value=numpy_helper.from_array(np.array([2.0], np.float32))),
             helper.make_node("Mul", ["z", "w"], ["zw"]),
             helper.make_node("Add", ["x", "zw"], ["y"])]
    w = np.arange(4, dtype=np.float32)
    m = model(nodes, [vinfo("x", [3, 4])], [vinfo("y", [3, 4])], {"w": w})
    g = import_model(m)
    assert [n.op for n in g.nodes] == ["add"]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(lwc.interpret(g, {"x": x})["y"], run_ort(m, {"x": x})[0])


def _flatten_idiom(batch: str | int) -> onnx.ModelProto:
    """torchvision's flatten: Shape -> Gather(0) -> Unsqueeze -> Concat([.., -1]) -> Reshape."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Shape", ["r"], ["shp"]),
             const("zero", np.array(0, np.int64)),
             helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
             const("ax", np.array([0], np.int64)),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             const("minus1", np.array([-1], np.int64)),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["r", "target"], ["y"])]
    return model(nodes, [vinfo("x", [batch, 2, 3, 4])], [vinfo("y", [batch, 24])])


def test_dynamic_batch_stays_symbolic_and_runs_at_batch_3() -> None:
    m = _flatten_idiom("batch")
    g = import_model(m)
    assert g.inputs[0].type.shape == ("batch", 2, 3, 4)
    assert g.outputs[0].type.shape == ("batch", 24)
    assert {n.op for n in g.nodes} == {"relu", "reshape"}
    x = np.random.default_rng(1).standard_normal((3, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(lwc.interpret(g, {"x": x})["y"], run_ort(m, {"x": x})[0])


def test_static_shape_computation_folds_to_constants() -> None:
    g = import_model(_flatten_idiom(5))
    assert [n.op for n in g.nodes] == ["relu", "reshape"]
    assert g.nodes[1].attrs["shape"] == (5, -1)


def test_missing_dims_get_symbols() -> None:
    m = model([helper.make_node("Relu", ["x"], ["y"])], [vinfo("x", [None, 3, None])],
              [vinfo("y", [None, 3, None])])
    shape = import_model(m).inputs[0].type.shape
    assert shape[0] == "N" and shape[1] == 3 and isinstance(shape[2], str) and shape[2] != "N"


def test_symbolic_shape_used_at_runtime_is_refused() -> None:
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["y"])]
    m = model(nodes, [vinfo("x", ["N", 2])], [vinfo("y", ["N", 2])])
    with pytest.raises(UnsupportedOpError, match="run-time shape"):
        import_model(m)
