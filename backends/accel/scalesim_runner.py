"""Run the real SCALE-Sim on a config + topology and report its COMPUTE_REPORT numbers as JSON.

This file is executed by another interpreter (a venv that has ``scalesim`` 3.0.0 installed), so it
imports nothing from lwc. Usage::

    python scalesim_runner.py CFG TOPO OUTDIR [--gemm] [--lean] [--jsonl FILE]

Default mode is SCALE-Sim's own top level (``scalesim(save_disk_space=True).run_scale``, i.e. the
CLI without traces) and reads ``COMPUTE_REPORT.csv`` back. ``--lean`` runs the same per-layer
simulator objects (``single_layer_sim``: compute demand matrices, then the memory system) one layer
at a time and frees each, so a whole network does not sit in RAM; it reads the same report items
(``get_compute_report_items``) that the CLI writes to COMPUTE_REPORT.csv. ``--jsonl`` appends one
line per finished layer (so long runs can be watched and partially used). The last line on stdout is
``{"layers": [...], "cpu_s": ..., "wall_s": ...}``.
"""

import csv
import json
import os
import sys
import time

LAYOUT_HEADER = ("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, "
                 "Filter Height Intraline Factor, Filter Width Intraline Factor, "
                 "Channel Intraline Factor, Num Filter Intraline Factor, IFMAP Height Intraline "
                 "Order, IFMAP Width Intraline Order, Channel Intraline Order, IFMAP Height "
                 "Interline Order, IFMAP Width Interline Order, Channel Interline Order,\n")


def _row(name, items):
    return {"name": name, "total_cycles_incl_prefetch": int(float(items[0])),
            "total_cycles": int(float(items[1])), "stall_cycles": int(float(items[2])),
            "overall_util": float(items[3]), "mapping_eff": float(items[4]),
            "compute_util": float(items[5])}


def main(argv):
    cfg, topo, out = argv[0], argv[1], argv[2]
    gemm = "--gemm" in argv
    lean = "--lean" in argv
    jsonl = argv[argv.index("--jsonl") + 1] if "--jsonl" in argv else None
    from scalesim.scale_sim import scalesim

    os.makedirs(out, exist_ok=True)
    layout = os.path.join(out, "layout.csv")
    with open(layout, "w") as f:  # -l must exist even with custom layouts off
        f.write(LAYOUT_HEADER)
    t0, w0 = time.process_time(), time.perf_counter()
    sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                   layout=layout, input_type_gemm=gemm)
    names = sim.topo.get_layer_names()
    rows = []
    if lean:
        from scalesim.single_layer_sim import single_layer_sim

        for i, name in enumerate(names):
            lt0 = time.process_time()
            layer = single_layer_sim()
            layer.set_params(layer_id=i, config_obj=sim.config, topology_obj=sim.topo,
                             layout_obj=sim.layout, verbose=False)
            layer.run()
            row = _row(name, layer.get_compute_report_items())
            row["cpu_s"] = time.process_time() - lt0
            rows.append(row)
            del layer
            if jsonl:
                with open(jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")
    else:
        sim.run_scale(top_path=out)
        run_dir = os.path.join(out, sim.config.get_run_name())
        with open(os.path.join(run_dir, "COMPUTE_REPORT.csv")) as f:
            reader = csv.reader(f)
            next(reader)
            for i, r in enumerate(reader):
                vals = [v.strip() for v in r if v.strip() != ""]
                rows.append(_row(names[i], vals[1:7]))
    print(json.dumps({"layers": rows, "cpu_s": time.process_time() - t0,
                      "wall_s": time.perf_counter() - w0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
