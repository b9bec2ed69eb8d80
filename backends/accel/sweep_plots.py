"""PNG plots of a design-space sweep (matplotlib, headless Agg backend).

- ``cycles_energy.png``: total cycles and energy against PE count, one line per dataflow (and buffer
  size when several were swept);
- ``utilization_heatmap.png``: per-layer utilisation (MACs / (cycles x peak MACs)), layers x
  configs;
- ``roofline.png``: attained ops/cycle against arithmetic intensity (ops per DRAM byte), one roof
  per array size, each config's total and the layers of the fastest config.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _save(fig: Any, path: Path) -> Path:
    from lwc.fileio import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_plots(rows: Sequence[dict[str, Any]], outdir: Path, title: str = "") -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    buffers = sorted({r["buffer_bytes"] for r in rows})
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataflow"], r["buffer_bytes"]), []).append(r)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (df, buf), grp in sorted(groups.items()):
        grp = sorted(grp, key=lambda r: r["pes"])
        label = df if len(buffers) == 1 else f"{df}, {buf // 1024} KiB"
        x = [r["pes"] for r in grp]
        axes[0].plot(x, [r["cycles"] for r in grp], marker="o", label=label)
        axes[1].plot(x, [r["energy_pj"] / 1e6 for r in grp], marker="o", label=label)
    for ax, ylab in zip(axes, ("total cycles", "energy (uJ)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("PEs (rows x cols)")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: cycles and energy vs array size")
    paths["cycles_energy"] = _save(fig, outdir / "cycles_energy.png")
    plt.close(fig)

    names = [lyr["name"] for lyr in rows[0]["layers"] if lyr["macs"]]
    util = np.array([[lyr["utilization"] for lyr in r["layers"] if lyr["macs"]] for r in rows]).T
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows) + 3), max(4, 0.16 * len(names) + 1.5)))
    im = ax.imshow(util, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(rows)), [r["config"] for r in rows], rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), [n[-40:] for n in names], fontsize=6)
    fig.colorbar(im, ax=ax, label="utilisation")
    ax.set_title(f"{title}: per-layer utilisation")
    paths["utilization_heatmap"] = _save(fig, outdir / "utilization_heatmap.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    ai_all = [lyr["arith_intensity"] for r in rows for lyr in r["layers"]
              if lyr["arith_intensity"] > 0] + [1.0]
    xs = np.logspace(np.log10(max(min(ai_all) / 2, 1e-3)), np.log10(max(ai_all) * 2), 200)
    for pes in sorted({r["pes"] for r in rows}):
        bw = next(r["dram_bandwidth"] for r in rows if r["pes"] == pes)
        ax.plot(xs, np.minimum(2 * pes, bw * xs), lw=1, alpha=0.6, label=f"roof {pes} PEs")
    best = min(rows, key=lambda r: r["cycles"])
    pts = [(lyr["arith_intensity"], 2 * lyr["macs"] / lyr["total_cycles"])
           for lyr in best["layers"] if lyr["macs"] and lyr["total_cycles"] and
           lyr["arith_intensity"] > 0]
    if pts:
        ax.scatter(*zip(*pts), s=12, c="k", label=f"layers of {best['config']}")
    for r in rows:
        if r["dram_bytes"]:
            ai = 2 * sum(lyr["macs"] for lyr in r["layers"]) / r["dram_bytes"]
            ax.scatter([ai], [2 * sum(lyr["macs"] for lyr in r["layers"]) / r["cycles"]],
                       marker="*", s=60)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops / DRAM byte)")
    ax.set_ylabel("attained ops / cycle")
    ax.set_title(f"{title}: roofline (stars: config totals)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    paths["roofline"] = _save(fig, outdir / "roofline.png")
    plt.close(fig)
    return paths
