"""The PNG plots of one run's report (mythbench/report.py), drawn from results.json alone."""

from __future__ import annotations

import re
from collections import defaultdict
from io import BytesIO
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mythbench.analysis.stats import summarize_seeds
from mythbench.results.results_frame import complete_runs, is_looped, twin_groups


def _png(fig: Figure) -> bytes:
    """Render with the Agg canvas directly: no pyplot state, no display needed."""
    FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _loop_grid(model: dict[str, Any]) -> dict[int, dict[int, dict[str, float]]]:
    """Per (difficulty, loops) stats over complete seeds, only where every complete seed has the cell."""
    runs = complete_runs(model)
    cells: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for c in run.get("cells", []):
            if c["loops"] is not None:
                cells[c["difficulty"]][c["loops"]].append(c)
    return {d: {k: summarize_seeds([c["accuracy"] for c in v], [(c["correct"], c["n"]) for c in v])
                for k, v in sorted(by_loops.items()) if len(v) == len(runs)}
            for d, by_loops in sorted(cells.items())}


def _plot_acc_vs_loops(name: str, grid: dict, train: set[int], train_loops: int | None) -> bytes:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for i, (d, by_loops) in enumerate(grid.items()):
        loops = list(by_loops)
        color = matplotlib.colormaps["viridis"](i / max(1, len(grid) - 1))
        mean = [s["mean"] for s in by_loops.values()]
        ax.plot(loops, mean, "-" if d in train else "--", marker="o", ms=3, color=color,
                label=f"d={d}" + (" (train)" if d in train else ""))
        low, high = ([s[k] for s in by_loops.values()] for k in ("ci_low", "ci_high"))
        ax.fill_between(loops, low, high, color=color, alpha=0.15, linewidth=0)
    if train_loops is not None:
        ax.axvline(train_loops, color="0.4", ls=":", label=f"training loops ({train_loops})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="loops at test time", ylabel="exact-match accuracy", ylim=(-0.02, 1.02),
           title=f"{name}: accuracy against loops (solid: training difficulties, dashed: test)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def _plot_heatmap(name: str, grid: dict, train: set[int], train_loops: int | None) -> bytes:
    difficulties = list(grid)
    loops = sorted({k for by_loops in grid.values() for k in by_loops})
    acc = np.full((len(difficulties), len(loops)), np.nan)
    for i, d in enumerate(difficulties):
        for j, k in enumerate(loops):
            if k in grid[d]:
                acc[i, j] = grid[d][k]["mean"]
    fig = Figure(figsize=(max(5.0, 0.35 * len(loops) + 2), max(3.0, 0.4 * len(difficulties) + 1.5)))
    ax = fig.add_subplot()
    image = ax.imshow(acc, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="viridis")
    fig.colorbar(image, ax=ax, label="exact-match accuracy (mean over seeds)")
    if acc.size <= 300:
        for (i, j), v in np.ndenumerate(acc):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
    if train_loops in loops:
        j = loops.index(train_loops)
        for x in (j - 0.5, j + 0.5):
            ax.axvline(x, color="red", lw=1)
    ax.set_xticks(range(len(loops)), [str(k) for k in loops], fontsize=7)
    ax.set_yticks(range(len(difficulties)), [f"{d} (train)" if d in train else str(d) for d in difficulties])
    ax.set(xlabel="loops at test time (red: training loop count)", ylabel="difficulty",
           title=f"{name}: accuracy over difficulty × loops")
    return _png(fig)


def _plot_vs_twins(rdt: dict[str, Any], twins: list[dict[str, Any]], summaries: dict[str, list],
                   train: set[int]) -> bytes:
    name = rdt["name"]
    series = [(f"{name} at the loop rule's count", name, "headline"),
              (f"{name} at training loops ({rdt.get('train_loops')})", name, "acc_at_train_loops"),
              (f"{name} ORACLE best over loops (chosen on test labels)", name, "oracle_best")]
    series += [(f"{t['name']} ({t.get('role')})", t["name"], "headline") for t in twins if summaries[t["name"]]]
    difficulties = sorted({e["difficulty"] for _, model, _ in series for e in summaries[model]})
    pos = {d: i for i, d in enumerate(difficulties)}
    fig = Figure(figsize=(max(6.0, 0.7 * len(difficulties) + 3), 4.5))
    ax = fig.add_subplot()
    for i, d in enumerate(d for d in difficulties if d in train):
        ax.axvspan(pos[d] - 0.5, pos[d] + 0.5, color="0.9", zorder=0,
                   label="training difficulty" if i == 0 else None)
    width = 0.6 / max(1, len(series))
    for k, (label, model, key) in enumerate(series):
        points = [(pos[e["difficulty"]], e[key]) for e in summaries[model] if e.get(key)]
        if not points:
            continue
        x = np.array([p for p, _ in points]) + (k - (len(series) - 1) / 2) * width
        mean = np.array([s["mean"] for _, s in points])
        err = np.array([[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]] for _, s in points]).T
        ax.errorbar(x, mean, yerr=np.clip(err, 0, None), fmt="o-", ms=4, capsize=3, label=label)
    ax.set_xticks(range(len(difficulties)), [str(d) for d in difficulties])
    ax.set(xlabel="difficulty", ylabel="exact-match accuracy", ylim=(-0.02, 1.02),
           xlim=(-0.5, len(pos) - 0.5), title=f"{name} against its twins (bars: 95% interval)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def plots(results: dict[str, Any], summaries: dict[str, list]) -> dict[str, bytes]:
    """One plot set per recurrent-depth model with loop cells, the last against its own twins; the role 'rdt'
    model gets unsuffixed names."""
    train = set(results.get("task", {}).get("train_difficulties", []))
    plots: dict[str, bytes] = {}
    for m, *twins in twin_groups(results):
        if not is_looped(m):
            continue
        grid = {d: v for d, v in _loop_grid(m).items() if v}
        if not grid:
            continue
        suffix = "" if m.get("role") == "rdt" and "heatmap.png" not in plots else "_" + re.sub(
            r"[^A-Za-z0-9_.-]+", "_", m["name"])
        plots[f"acc_vs_loops{suffix}.png"] = _plot_acc_vs_loops(m["name"], grid, train, m.get("train_loops"))
        plots[f"heatmap{suffix}.png"] = _plot_heatmap(m["name"], grid, train, m.get("train_loops"))
        plots[f"vs_twins{suffix}.png"] = _plot_vs_twins(m, twins, summaries, train)
    return plots
