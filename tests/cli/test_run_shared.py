"""``lwc run`` on the shared torchvision exports reproduces onnxruntime's stored outputs."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import SHARED

MODELS = ["digits_mlp", "digits_lenet5", "squeezenet1_1", "resnet18", "mobilenet_v2"]


@pytest.mark.parametrize("name", MODELS)
def test_run_reproduces_stored_output(cli, tmp_path, name):
    model, io = SHARED / "models" / f"{name}.onnx", SHARED / "models" / f"{name}.io.npz"
    assert model.is_file() and io.is_file(), f"shared model {name} missing under {SHARED}"
    out = tmp_path / "y.npz"
    r = cli("run", model, "--input", io, "--output", out)  # the .io.npz's "output" key is ignored
    assert r.code == 0, r.err
    with np.load(io) as ref, np.load(out) as got:
        want = ref["output"]
        assert got["output"].shape == want.shape and got["output"].dtype == want.dtype
        err = float(np.max(np.abs(got["output"].astype(np.float64) - want)))
        assert err <= 1e-4 * max(1.0, float(np.max(np.abs(want)))), f"{name}: max abs error {err}"


def test_info_on_shared_mlp_counts_gemm_weights(cli):
    import json

    import onnx
    from onnx import numpy_helper

    path = SHARED / "models" / "digits_mlp.onnx"
    r = cli("info", path, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    inits = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    weights = [w for w in inits if w.ndim == 2]  # Gemm B matrices: one MAC each at batch 1
    assert doc["total"]["params"] == sum(w.size for w in inits)
    assert doc["total"]["macs"] == sum(w.size for w in weights)
