"""The PNG plots of one run's report (mythbench/reports/report.py), drawn from results.json alone.

Every figure says which run it shows (task, preset and training budget, seeds: `run_caption`), draws each
looped model beside its own twins in one colour scheme, and puts difficulties on a numeric axis at their
values, so the gap between the training and the test difficulties is as wide on the page as it is.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from io import BytesIO
from typing import Any, NamedTuple

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import offset_copy

from mythbench.analysis.stats import summarize_seeds
from mythbench.analysis.tables import DASH
from mythbench.results.board import budget
from mythbench.results.results_frame import complete_runs, is_looped, twin_groups

LOOPED_COLOR = "C0"  # a looped model; its twins take C1, C2, ... in file order, in every figure
PANEL_COLUMNS = 4  # accuracy-against-loops panels per row
PLAIN_TEXT = {"text.parse_math": False}  # names from a results file are drawn as text, never parsed as math


class Plot(NamedTuple):
    """One PNG of the report: its file name in the run directory, what it shows (its alt text) and its bytes."""

    file: str
    caption: str
    png: bytes


def png(fig: Figure) -> bytes:
    """Render with the Agg canvas directly: no pyplot state, no display needed."""
    FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def run_caption(results: dict[str, Any]) -> str:
    """What a figure of this run shows: task and version, preset and training budget, seeds."""
    task = results.get("task") or {}
    seeds = ", ".join(str(s) for s in results.get("seeds") or []) or DASH
    return (f"{task.get('name', DASH)} v{task.get('version', DASH)}, preset {results.get('preset') or DASH}, "
            f"budget {budget(results.get('config'))}, seeds {seeds}")


def model_label(model: dict[str, Any]) -> str:
    """A model's name, with its role only where the name does not already say it."""
    role = model.get("role") or ""
    return model["name"] if role in model["name"] else f"{model['name']} ({role})"


def _and_twins(name: str, twins: list[dict[str, Any]]) -> str:
    return f"{name} and its twins" if twins else name


def cell_edges(values: list[int]) -> np.ndarray:
    """Boundaries of cells centred on sorted `values`: halfway between neighbours, half a gap past each end."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    middle = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - middle[0]], middle, [2 * v[-1] - middle[-1]]])


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


def _by_difficulty(summary: list[dict[str, Any]], key: str) -> dict[int, dict[str, Any]]:
    return {e["difficulty"]: e[key] for e in summary if e.get(key)}


def _split(d: int, train: set[int]) -> str:
    return "train" if d in train else "test"


def _plot_acc_vs_loops(model: dict[str, Any], twins: list[dict[str, Any]], grid: dict, summaries: dict[str, list],
                       train: set[int], caption: str) -> bytes:
    """One panel per difficulty: the looped model's accuracy at every loop count (band: 95% interval), its
    twins (evaluated once) as horizontal lines, the training loop count and the loop rule's count."""
    name, train_loops = model["name"], model.get("train_loops")
    rule = _by_difficulty(summaries[name], "headline")
    twin_stats = {t["name"]: _by_difficulty(summaries[t["name"]], "headline") for t in twins}
    columns = min(PANEL_COLUMNS, len(grid))
    rows = math.ceil(len(grid) / columns)
    fig = Figure(figsize=(3.2 * columns + 0.6, 2.4 * rows + 1.4), layout="constrained")
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, (d, by_loops) in zip(axes, grid.items(), strict=False):
        loops, stats = list(by_loops), list(by_loops.values())
        ax.plot(loops, [s["mean"] for s in stats], color=LOOPED_COLOR, label=f"{model_label(model)}, mean over seeds")
        ax.fill_between(loops, [s["ci_low"] for s in stats], [s["ci_high"] for s in stats], color=LOOPED_COLOR,
                        alpha=0.2, linewidth=0)
        for i, twin in enumerate(twins, 1):
            stat = twin_stats[twin["name"]].get(d)
            if stat:
                ax.axhline(stat["mean"], color=f"C{i}", ls="--", label=model_label(twin))
                ax.axhspan(stat["ci_low"], stat["ci_high"], color=f"C{i}", alpha=0.12, linewidth=0)
        if train_loops is not None:
            ax.axvline(train_loops, color="0.4", ls=":", label=f"training loops ({train_loops})")
        chosen = (rule.get(d) or {}).get("loops")
        if chosen in by_loops:
            ax.plot(chosen, by_loops[chosen]["mean"], "o", color=LOOPED_COLOR, mfc="white",
                    label="loop rule's count (headline)")
        ax.set_title(f"difficulty {d} ({_split(d, train)})", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    for ax in axes[len(grid):]:
        ax.set_axis_off()
    fig.supxlabel("loops at test time")
    fig.supylabel("exact-match accuracy")
    fig.suptitle(f"{_and_twins(name, twins)}: accuracy against loops (bands: 95% interval)\n{caption}", fontsize=10)
    labelled = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(labelled.values(), labelled.keys(), loc="outside right upper",
               fontsize=8)
    return png(fig)


def _plot_heatmap(name: str, grid: dict, train: set[int], train_loops: int | None, caption: str) -> bytes:
    """Accuracy over (loops, difficulty), each cell centred on its values on two numeric axes."""
    difficulties = list(grid)
    loops = sorted({k for by_loops in grid.values() for k in by_loops})
    acc = np.full((len(difficulties), len(loops)), np.nan)
    for i, d in enumerate(difficulties):
        for j, k in enumerate(loops):
            if k in grid[d]:
                acc[i, j] = grid[d][k]["mean"]
    fig = Figure(figsize=(min(12.0, max(5.0, 0.35 * len(loops) + 2)), max(3.5, 0.4 * len(difficulties) + 2)))
    ax = fig.add_subplot()
    image = ax.pcolormesh(cell_edges(loops), cell_edges(difficulties), acc, vmin=0, vmax=1, cmap="viridis")
    fig.colorbar(image, ax=ax, label="exact-match accuracy (mean over seeds)")
    if len(loops) <= 24 and acc.size <= 300:  # room for the numbers
        for (i, j), v in np.ndenumerate(acc):
            if not np.isnan(v):
                ax.text(loops[j], difficulties[i], f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if v < 0.6 else "k")
    if train_loops in loops:
        for x in (train_loops - 0.5, train_loops + 0.5):
            ax.axvline(x, color="red", lw=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks(difficulties, [f"{d} (train)" if d in train else str(d) for d in difficulties], fontsize=7)
    ax.set(xlabel="loops at test time (red: training loop count)", ylabel="difficulty")
    ax.set_title(f"{name}: accuracy over difficulty × loops\n{caption}", fontsize=10)
    return png(fig)


def _plot_vs_twins(model: dict[str, Any], twins: list[dict[str, Any]], summaries: dict[str, list],
                   train: set[int], caption: str) -> bytes:
    """Accuracy against difficulty: the looped model at the rule's, the training and the oracle loop count,
    and each twin, with their 95% intervals, the training difficulties shaded."""
    name = model["name"]
    series = [(f"{name} at the loop rule's count", name, "headline", LOOPED_COLOR, "o-"),
              (f"{name} at training loops ({model.get('train_loops')})", name, "acc_at_train_loops", LOOPED_COLOR,
               "s:"),
              (f"{name} ORACLE best over loops (chosen on test labels)", name, "oracle_best", "0.5", "^--")]
    series += [(model_label(t), t["name"], "headline", f"C{i}", "o-") for i, t in enumerate(twins, 1)]
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    if train:
        ax.axvspan(min(train), max(train), color="0.92", zorder=0,
                   label=f"training difficulties ({min(train)} to {max(train)})")
    difficulties: set[int] = set()
    for k, (label, owner, key, color, style) in enumerate(series):
        points = sorted(_by_difficulty(summaries[owner], key).items())
        if not points:
            continue
        difficulties.update(d for d, _ in points)
        shift = offset_copy(ax.transData, fig=fig, x=3 * (k - (len(series) - 1) / 2), units="points")
        mean = np.array([s["mean"] for _, s in points])
        err = np.array([[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]] for _, s in points]).T
        ax.errorbar([d for d, _ in points], mean, yerr=np.clip(err, 0, None), fmt=style, color=color, ms=4,
                    capsize=3, label=label, transform=shift)
    ax.set_xticks(sorted(difficulties))
    ax.set(xlabel="difficulty", ylabel="exact-match accuracy", ylim=(-0.02, 1.02))
    ax.set_title(f"{_and_twins(name, twins)} by difficulty (bars: 95% interval)\n{caption}", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png(fig)


def plots(results: dict[str, Any], summaries: dict[str, list]) -> dict[str, list[Plot]]:
    """Per looped model with loop cells, its plots: accuracy against loops beside its twins, against its twins
    by difficulty, and the heatmap. The role 'rdt' model gets unsuffixed file names, the others their name."""
    train = set(results.get("task", {}).get("train_difficulties", []))
    caption = run_caption(results)
    by_model: dict[str, list[Plot]] = {}
    unsuffixed_taken = False
    with rc_context(PLAIN_TEXT):
        for m, *twins in twin_groups(results):
            grid = {d: v for d, v in _loop_grid(m).items() if v} if is_looped(m) else {}
            if not grid:
                continue
            name = m["name"]
            suffix = "" if m.get("role") == "rdt" and not unsuffixed_taken else "_" + re.sub(r"[^A-Za-z0-9_.-]+",
                                                                                           "_", name)
            unsuffixed_taken = unsuffixed_taken or not suffix
            by_model[name] = [
                Plot(f"acc_vs_loops{suffix}.png", f"{_and_twins(name, twins)}: accuracy against loops",
                     _plot_acc_vs_loops(m, twins, grid, summaries, train, caption)),
                Plot(f"vs_twins{suffix}.png", f"{_and_twins(name, twins)} by difficulty",
                     _plot_vs_twins(m, twins, summaries, train, caption)),
                Plot(f"heatmap{suffix}.png", f"{name}: accuracy over difficulty × loops",
                     _plot_heatmap(name, grid, train, m.get("train_loops"), caption)),
            ]
    return by_model
