"""Discovery and scoping of the ONNX backend test data shipped in the ``onnx`` wheel.

A case is *in scope* when every op it uses has an lwc converter and it is not listed in
``OUT_OF_SCOPE`` (reviewed by hand: each entry says why lwc does not aim to run it). In-scope cases
must import and reproduce the stored outputs; out-of-scope cases must be refused with an
``UnsupportedOpError`` rather than imported wrongly.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
SUITES = ("simple", "pytorch-converted", "pytorch-operator")

OUT_OF_SCOPE: dict[str, str] = {
    **{f"test_expand_shape_model{i}": "Expand target is a run-time graph input (data-dependent "
       "shape; lwc needs shapes known at import time)" for i in range(1, 5)},
    **{f"test_sequence_model{i}": "ONNX sequence types (lwc values are tensors)"
       for i in range(1, 9)},
    "test_gradient_of_add": "training: Gradient op of the ai.onnx.preview.training domain",
    "test_gradient_of_add_and_mul": "training: Gradient op of the ai.onnx.preview.training domain",
    **{n: "string tensors (StringNormalizer)" for n in (
        "test_strnorm_model_monday_casesensintive_lower",
        "test_strnorm_model_monday_casesensintive_nochangecase",
        "test_strnorm_model_monday_casesensintive_upper",
        "test_strnorm_model_monday_empty_output",
        "test_strnorm_model_monday_insensintive_upper_twodim",
        "test_strnorm_model_nostopwords_nochangecase")},
}

ILL_CONDITIONED: dict[str, str] = {
    "light_squeezenet": "its constant weights drive the logits to ~9.5e9, where float32 steps are "
    "1024 apart; the stored softmax is uniform only because that runtime's logits came out "
    "bit-identical. A one-ulp difference in summation order changes the softmax completely, so "
    "the logits themselves are compared with onnxruntime instead.",
}

LIGHT_RTOL = 1e-3
"""Light models are compared to stored outputs of other runtimes over dozens of layers (the onnx
runner itself uses rtol 1e-3 for them)."""


@dataclass(frozen=True)
class Case:
    name: str
    suite: str
    model: Path
    datasets: tuple[tuple[tuple[Path, ...], tuple[Path, ...]], ...]
    """(input files, output files) per data set; empty input files means "generate" (light)."""

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"


def discover() -> list[Case]:
    cases: list[Case] = []
    for suite in SUITES:
        for d in sorted(glob.glob(str(DATA / suite / "*"))):
            sets = []
            for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
                ins = tuple(Path(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb"))))
                outs = tuple(Path(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb"))))
                sets.append((ins, outs))
            cases.append(Case(os.path.basename(d), suite, Path(d) / "model.onnx", tuple(sets)))
    for m in sorted(glob.glob(str(DATA / "light" / "light_*.onnx"))):
        outs = tuple(Path(p) for p in sorted(glob.glob(m[:-5] + "_output_*.pb")))
        cases.append(Case(Path(m).stem, "light", Path(m), (((), outs),)))
    return cases


def op_types(case: Case) -> set[str]:
    model = onnx.load(str(case.model), load_external_data=False)
    return {n.op_type for n in model.graph.node}


def scope(case: Case, supported: set[str]) -> str | None:
    """None when in scope, else the reason it is not."""
    if case.name in OUT_OF_SCOPE:
        return OUT_OF_SCOPE[case.name]
    if case.name in ILL_CONDITIONED:
        return "ill-conditioned: " + ILL_CONDITIONED[case.name]
    missing = sorted(op_types(case) - supported)
    return f"ops without a converter: {', '.join(missing)}" if missing else None


def read_tensor(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def light_inputs(model: onnx.ModelProto) -> list[np.ndarray]:
    """The inputs the onnx runner feeds light models: arange(n)/n in the declared shape."""
    inits = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        out.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    return out


def max_scaled_error(got: np.ndarray, want: np.ndarray) -> float:
    """max|got - want| / max(1, max|want|); NaNs must coincide (they count as equal)."""
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    nan_want, nan_got = np.isnan(want), np.isnan(got)
    if np.any(nan_want != nan_got):
        return float("inf")
    ok = ~nan_want
    if not ok.any():
        return 0.0
    diff = np.abs(got[ok].astype(np.float64) - want[ok].astype(np.float64))
    return float(diff.max() / max(1.0, float(np.abs(want[ok]).max())))
