"""SCALE-Sim 3.0.0 and lwc side by side on the same topology and config: cycles, match, speed.

    .venv/bin/python benchmarks/bench_scalesim.py          # resnet18: 6 convs + fc, 32x32 ws
    .venv/bin/python benchmarks/bench_scalesim.py --model mobilenet_v2 --array 8 --dataflow os
    .venv/bin/python benchmarks/bench_scalesim.py --topology T.csv --cfg C.cfg [--gemm]
    .venv/bin/python benchmarks/bench_scalesim.py --golden # speed over the golden.csv layers

SCALE-Sim runs in its own venv (``--scalesim-venv``, env ``LWC_SCALESIM_VENV``, default
/tmp/scalesim-venv; created with ``pip install scalesim "numpy<2.4"`` if missing) through
``backends/accel/scalesim_runner.py``: by default SCALE-Sim's own top level without traces
(``scalesim(save_disk_space=True).run_scale``, what ``python -m scalesim.scale`` does minus the
trace files), or ``--lean`` for its per-layer objects freed one at a time. lwc runs
``simulate_topology`` in ``--scalesim-compat`` mode (and its own model) on the same files, timed
over ``--repeat`` calls. With ``--model`` the topology comes from lwc's importer (padding folded
in, depthwise as SCALE-Sim ``DP`` rows unless ``--no-depthwise``) and lwc's timing-only model-mode
simulation of the whole network (compile + time, ``simulate(..., functional=False)``) is timed too.

Prints one row per layer (SCALE-Sim cycles, lwc compat cycles, match, lwc's own cycles), the wall
times and the speed ratios; exits 1 if any layer's cycles differ. ``--golden`` instead compares
SCALE-Sim's recorded per-layer CPU seconds in golden.csv with lwc's time for the same layers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lwc.backends.accel.scalesim_compat import (ScaleSimConfig, TopoLayer, graph_to_topology,
                                                read_topology, simulate_topology,
                                                write_gemm_topology, write_topology)

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "backends" / "accel" / "scalesim_runner.py"
GOLDEN = REPO / "tests" / "data" / "scalesim" / "golden.csv"
SRAM_KB = {8: (64, 64, 32), 32: (256, 256, 128), 128: (1024, 1024, 512), 256: (6144, 6144, 2048)}
"""ifmap/filter/ofmap SRAM kB per array size (those of ../shared/docs/scalesim.md)."""


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.is_file():
        print(f"creating {venv} (pip install scalesim 'numpy<2.4') ...", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "scalesim", "numpy<2.4"],
                       check=True)
    return py


def run_scalesim(py: Path, cfg: Path, topo: Path, out: Path, gemm: bool, lean: bool) -> dict:
    cmd = [str(py), str(RUNNER), str(cfg), str(topo), str(out)]
    cmd += (["--gemm"] if gemm else []) + (["--lean"] if lean else [])
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"SCALE-Sim failed: {res.stderr[-2000:]}")
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    doc["process_wall_s"] = time.perf_counter() - t0
    return doc


def time_lwc(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def golden_speed(repeat: int) -> int:
    """SCALE-Sim CPU seconds recorded per layer in golden.csv vs lwc compat time, same layers."""
    from lwc.backends.accel.scalesim_compat import compat_layer

    with open(GOLDEN, newline="") as f:
        rows = list(csv.DictReader(f))
    layers = [(TopoLayer(r["layer"], *(int(r[k]) for k in ("ifmap_h", "ifmap_w", "filt_h",
                                                          "filt_w", "channels", "num_filters",
                                                          "stride"))), int(r["array"]),
               r["dataflow"], int(r["total_cycles"])) for r in rows]

    def lwc_all() -> list[int]:
        return [compat_layer(x.name, *x.mnk, a, a, df).compute_cycles for x, a, df, _ in layers]

    got = lwc_all()
    ok = sum(g == w for g, (_, _, _, w) in zip(got, layers))
    t_lwc = time_lwc(lwc_all, repeat)
    t_ss = sum(float(r["scalesim_cpu_s"]) for r in rows)
    cyc = sum(w for *_, w in layers)
    print(f"golden.csv: {len(rows)} layer runs, {cyc:,} simulated cycles; cycles equal in "
          f"{ok}/{len(rows)}")
    print(f"SCALE-Sim {t_ss:.1f} CPU-s (sum of per-layer process_time) vs lwc {t_lwc * 1e3:.2f} ms "
          f"for all of them: {t_ss / t_lwc:,.0f}x")
    return 0 if ok == len(rows) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet18",
                   help="a model under ../shared/models (or any lwc MODEL) to build the topology")
    p.add_argument("--topology", type=Path, help="a SCALE-Sim topology CSV instead of --model")
    p.add_argument("--gemm", action="store_true", help="--topology is SCALE-Sim's GEMM format")
    p.add_argument("--cfg", type=Path, help="a SCALE-Sim .cfg (default: from --array/--dataflow)")
    p.add_argument("--array", type=int, default=32, help="square array size (default 32)")
    p.add_argument("--dataflow", choices=("ws", "os", "is"), default="ws")
    p.add_argument("--layers", type=int, default=6,
                   help="first N conv layers of --model (0: all; default 6) and its GEMMs")
    p.add_argument("--no-depthwise", action="store_true", help="drop depthwise layers of --model")
    p.add_argument("--lean", action="store_true", help="SCALE-Sim's per-layer objects, freed")
    p.add_argument("--repeat", type=int, default=20, help="lwc timing: best of N (default 20)")
    p.add_argument("--scalesim-venv", type=Path,
                   default=Path(os.environ.get("LWC_SCALESIM_VENV", "/tmp/scalesim-venv")))
    p.add_argument("--golden", action="store_true", help="speed over golden.csv, no SCALE-Sim run")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.golden:
        return golden_speed(args.repeat)
    py = ensure_venv(args.scalesim_venv)
    con = Console(width=160)
    work = Path(tempfile.mkdtemp(prefix="bench_scalesim_"))
    if args.cfg:
        cfg = args.cfg
    else:
        ifk, fk, ok = SRAM_KB.get(args.array, (256, 256, 128))
        cfg = work / "bench.cfg"
        cfg.write_text(ScaleSimConfig(f"bench{args.array}{args.dataflow}", args.array, args.array,
                                      args.dataflow, ifk, fk, ok, 10).cfg_text())
    jobs: list[tuple[Path, bool]] = []
    graph = None
    if args.topology:
        jobs.append((args.topology, args.gemm))
    else:
        from lwc.model_io import load_model

        spec = str(REPO.parent / "shared" / "models" / f"{args.model}.onnx")
        graph = load_model(spec if Path(spec).is_file() else args.model)
        topo = graph_to_topology(graph)
        convs = [c for c in topo.convs if not (args.no_depthwise and "DP" in c.name)]
        convs = convs[:args.layers] if args.layers else convs
        write_topology(convs, work / "conv.csv")
        jobs.append((work / "conv.csv", False))
        if topo.gemms:
            write_gemm_topology(topo.gemms, work / "gemm.csv")
            jobs.append((work / "gemm.csv", True))
    table = Table(title=f"SCALE-Sim vs lwc on {cfg.name}: {args.array}x{args.array} "
                  f"{args.dataflow}" if not args.cfg else f"SCALE-Sim vs lwc on {cfg}")
    for col in ("layer", "SCALE-Sim cycles", "lwc --scalesim-compat", "match", "lwc own model"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    results, mismatches = [], 0
    t_ss = t_ss_proc = t_lwc = t_own = 0.0
    for topo_path, gemm in jobs:
        ss = run_scalesim(py, cfg, topo_path, work / f"out_{topo_path.stem}", gemm, args.lean)
        rep = simulate_topology(topo_path, cfg, gemm=gemm, compat=True)
        own = simulate_topology(topo_path, cfg, gemm=gemm, compat=False)
        t_lwc += time_lwc(lambda: simulate_topology(topo_path, cfg, gemm=gemm, compat=True),
                          args.repeat)
        t_own += time_lwc(lambda: simulate_topology(topo_path, cfg, gemm=gemm, compat=False),
                          args.repeat)
        t_ss += ss["wall_s"]
        t_ss_proc += ss["process_wall_s"]
        assert len(ss["layers"]) == len(rep.layers) == len(read_topology(topo_path, gemm))
        for s, x, o in zip(ss["layers"], rep.layers, own.layers):
            same = s["total_cycles"] == x.total_cycles
            mismatches += not same
            results.append({"layer": x.name, "scalesim": s["total_cycles"],
                            "lwc_compat": x.total_cycles, "match": same,
                            "lwc_own": o.total_cycles})
            table.add_row(x.name[-50:], f"{s['total_cycles']:,}", f"{x.total_cycles:,}",
                          "yes" if same else "NO", f"{o.total_cycles:,}")
    con.print(table)
    summary = {"layers": len(results), "mismatches": mismatches, "scalesim_wall_s": t_ss,
               "scalesim_process_wall_s": t_ss_proc, "lwc_compat_s": t_lwc, "lwc_own_s": t_own,
               "ratio_compat": t_ss / t_lwc, "ratio_own": t_ss / t_own}
    con.print(f"{len(results)} layers, {mismatches} mismatches. SCALE-Sim {t_ss:.2f} s "
              f"({t_ss_proc:.2f} s with interpreter start); lwc --scalesim-compat "
              f"{t_lwc * 1e3:.3f} ms ({t_ss / t_lwc:,.0f}x faster), lwc own model "
              f"{t_own * 1e3:.3f} ms ({t_ss / t_own:,.0f}x)")
    if graph is not None and args.layers == 0:
        from lwc.backends.accel import simulate
        from lwc.backends.accel.scalesim_compat import read_cfg

        acc = read_cfg(cfg).to_accel()
        t0 = time.perf_counter()
        simulate(graph, acc, functional=False)
        t_model = time.perf_counter() - t0
        summary.update(lwc_model_timing_s=t_model, ratio_model=t_ss / t_model)
        con.print(f"lwc sim --timing-only of the whole model (quantise, compile, time): "
                  f"{t_model:.2f} s ({t_ss / t_model:,.0f}x faster than SCALE-Sim)")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "layers": results}, indent=1))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
