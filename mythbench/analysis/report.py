"""Tables, Markdown and plots of one run, rebuilt from results.json alone.

Everything here reads only the results file, so any run directory (or a submission) can be
re-reported without checkpoints, and the report can never disagree with the numbers it shows.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mythbench.analysis.stats import summarize_model, summarize_seeds
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_bytes, atomic_write_text

DASH = "—"
CELL_FIELDS = ["model", "role", "seed", "difficulty", "loops", "n", "correct", "accuracy",
               "ci_low", "ci_high", "token_accuracy", "loss"]
EARLY_EXIT_FIELDS = ["model", "role", "seed", "difficulty", "rule", "threshold", "n", "correct",
                     "accuracy", "ci_low", "ci_high", "mean_loops"]
_SUMMARY_BLOCKS = [("headline", "headline"), ("acc_train", "acc_at_train_loops"), ("oracle", "oracle_best"),
                   ("acc_max", "acc_at_max_loops")]
_STAT_FIELDS = ("mean", "std", "ci_low", "ci_high", "token_accuracy")
SUMMARY_FIELDS = (["model", "role", "difficulty", "split", "headline_loops"]
                  + [f"{p}_{s}" for p, _ in _SUMMARY_BLOCKS for s in _STAT_FIELDS]
                  + ["oracle_loops", "overthinking_drop"])


def load_results(run_dir: Path) -> dict[str, Any]:
    """Read `run_dir/results.json`; a missing or unreadable file is a user error, not a crash."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {run_dir} a run directory?")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from err
    problems = []
    if not isinstance(results, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    if results.get("schema_version") != 2:
        problems.append(f"schema_version must be 2, got {results.get('schema_version')!r} (reports of older "
                        "files: use the mythbench version that wrote them)")
    if results.get("kind", "run") != "run":
        problems.append(f"report builds run reports; this file has kind {results.get('kind')!r}")
    if not isinstance(results.get("models"), list):
        problems.append("'models' must be a list")
    if problems:
        raise ConfigError(problems)
    return results


def build_report(run_dir: Path) -> list[Path]:
    """Write cells/summary/early-exit CSVs, report.md and PNG plots into `run_dir`; return the paths."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    summaries = _summaries(results)
    files: dict[str, str | bytes] = {
        "cells.csv": _csv(CELL_FIELDS, _cell_rows(results)),
        "summary.csv": _csv(SUMMARY_FIELDS, _summary_rows(results, summaries)),
        "early_exit.csv": _csv(EARLY_EXIT_FIELDS, _early_exit_rows(results)),
        "report.md": _markdown(results, summaries),
    }
    files.update(_plots(results, summaries))
    written = []
    for name, data in files.items():
        write = atomic_write_bytes if isinstance(data, bytes) else atomic_write_text
        write(run_dir / name, data)  # type: ignore[operator]
        written.append(run_dir / name)
    return written


def format_summary_table(results: dict[str, Any]) -> str:
    """Compact plain-text headline table for the terminal at the end of `mythbench run`."""
    header, rows = _headline(results, _summaries(results))
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- data access


def _complete_runs(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs with numbers worth showing, in seed order; diverged runs carry none."""
    runs = [r for r in model.get("runs", []) if r.get("status") == "complete"]
    return sorted(runs, key=lambda r: r["seed"])


def _summaries(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Stored per-model summary, or one recomputed from the cells when the file lacks it."""
    task = results.get("task", {})
    train, test = task.get("train_difficulties", []), task.get("test_difficulties", [])
    try:
        return {m["name"]: m.get("summary") or summarize_model(m, train, test) for m in results["models"]}
    except ValueError as err:  # an inconsistent file is bad input, reported like any other
        raise ConfigError(str(err)) from err


def _is_looped(model: dict[str, Any]) -> bool:
    """Looped (recurrent-depth) models carry train_loops; single-pass baselines carry null."""
    return model.get("train_loops") is not None


def _diverged_seeds(model: dict[str, Any]) -> list[int]:
    return [r["seed"] for r in model.get("runs", []) if r.get("status") == "diverged"]


def _cell_rows(results: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for m in results["models"]:
        for run in _complete_runs(m):
            for cell in run.get("cells", []):
                yield {"model": m["name"], "role": m.get("role"), "seed": run["seed"], **cell}


def _early_exit_rows(results: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for m in results["models"]:
        for run in _complete_runs(m):
            for row in run.get("early_exit") or []:
                yield {"model": m["name"], "role": m.get("role"), "seed": run["seed"], **row}


def _summary_rows(results: dict[str, Any], summaries: dict[str, list]) -> Iterable[dict[str, Any]]:
    for m in results["models"]:
        for entry in summaries[m["name"]]:
            row = {"model": m["name"], "role": m.get("role"), "difficulty": entry["difficulty"],
                   "split": entry["split"], "headline_loops": (entry.get("headline") or {}).get("loops"),
                   "oracle_loops": entry["oracle_best"].get("loops"), "overthinking_drop": entry["overthinking_drop"]}
            for prefix, key in _SUMMARY_BLOCKS:
                stats = entry.get(key) or {}
                row.update({f"{prefix}_{s}": stats.get(s) for s in _STAT_FIELDS})
            yield row


def _csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------- Markdown


def _fixed(x: float | None, digits: int = 3) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def _acc(stats: dict[str, Any] | None) -> str:
    """Exact match [95% interval], then the per-token accuracy where the file has it."""
    if not stats:
        return DASH
    text = f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
    return text + (f" tok {stats['token_accuracy']:.3f}" if "token_accuracy" in stats else "")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def _headline(results: dict[str, Any], summaries: dict[str, list]) -> tuple[list[str], list[list[str]]]:
    """One row per difficulty: every model under the pre-registered loop rule (looped models: at the loop
    count shown), plus each looped model's oracle (best loop count chosen on the test labels) and drop."""
    models = results["models"]
    looped = [m for m in models if _is_looped(m)]
    by_diff = {m["name"]: {e["difficulty"]: e for e in summaries[m["name"]]} for m in models}
    difficulties = sorted({d for entries in by_diff.values() for d in entries})
    train = set(results.get("task", {}).get("train_difficulties", []))
    header = ["difficulty", "split", *(m["name"] + (" @loops" if _is_looped(m) else "") for m in models)]
    for m in looped:
        header += [f"{m['name']} ORACLE best over loops", f"{m['name']} overthinking drop"]
    rows = []
    for d in difficulties:
        row = [str(d), "train" if d in train else "test"]
        for m in models:
            headline = by_diff[m["name"]].get(d, {}).get("headline")
            if not _complete_runs(m):
                row.append("diverged" if _diverged_seeds(m) else DASH)
            elif headline and headline.get("loops"):
                row.append(f"{_acc(headline)} @{headline['loops']}")
            else:
                row.append(_acc(headline))
        for m in looped:
            entry = by_diff[m["name"]].get(d)
            if entry is None:
                row += ["diverged" if _diverged_seeds(m) else DASH, DASH]
            else:
                oracle = entry["oracle_best"]
                row += [f"{_acc(oracle)} @{oracle['loops']}", _fixed(entry["overthinking_drop"])]
        rows.append(row)
    return header, rows


def _early_exit_table(results: dict[str, Any]) -> str:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in _early_exit_rows(results):
        groups[(row["model"], row["difficulty"], row["rule"], row.get("threshold"))].append(row)
    if not groups:
        return "_No early-exit results in this file._"
    rows = []
    for (model, difficulty, rule, threshold), entries in groups.items():
        stats = summarize_seeds([e["accuracy"] for e in entries], [(e["correct"], e["n"]) for e in entries])
        mean_loops = float(np.mean([e["mean_loops"] for e in entries]))
        rows.append([model, str(difficulty), rule, DASH if threshold is None else f"{threshold:g}",
                     _acc(stats), f"{mean_loops:.2f}", str(len(entries))])
    return _md_table(["model", "difficulty", "rule", "threshold", "accuracy [95% CI]", "mean loops", "seeds"],
                     rows)


def _diagnostic_cells(diag: dict[str, Any]) -> list[str]:
    """Scalars a reader can scan: contraction, convergence at the last loop, expert balance, halting."""
    rho = diag.get("spectral_radius")
    changes = [v[-1] for v in (diag.get("state_change") or {}).values() if v]
    loads = [max(r) / (sum(r) / len(r)) for r in diag.get("expert_load") or [] if r and sum(r) > 0]
    halting = [h["mean"] for h in (diag.get("halting") or {}).values() if h and h.get("mean") is not None]
    return [_fixed(rho), _fixed(max(changes) if changes else None, 4), _fixed(max(loads) if loads else None, 2),
            _fixed(float(np.mean(halting)) if halting else None, 2)]


def _diagnostics_table(results: dict[str, Any]) -> str:
    rows = []
    for m in filter(_is_looped, results["models"]):
        for run in sorted(m.get("runs", []), key=lambda r: r["seed"]):
            complete = run.get("status") == "complete"
            values = _diagnostic_cells(run.get("diagnostics") or {}) if complete else [DASH] * 4
            rows.append([m["name"], str(run["seed"]), run.get("status", DASH), *values])
    if not rows:
        return "_No recurrent-depth models in this file._"
    return _md_table(["model", "seed", "status", "max ρ(Ā)", "‖Δh‖/‖h‖ at last loop (max over difficulties)",
                      "expert load max/mean", "halting mean loop"], rows)


def _markdown(results: dict[str, Any], summaries: dict[str, list]) -> str:
    task, git, env = results.get("task", {}), results.get("git") or {}, results.get("environment") or {}
    evaluation = results.get("evaluation") or {}
    max_loops = max((max(m.get("eval_loops") or [1]) for m in results["models"]), default=1)
    commit = git.get("commit") or "unknown"
    wall = results.get("wall_time_s")
    provenance = [
        ["task", f"{task.get('name', DASH)} v{task.get('version', DASH)}"],
        ["test-set fingerprint", f"`{task.get('fingerprint', DASH)}`"],
        ["command", f"`{results.get('command', DASH)}`"],
        ["git commit", f"`{commit}`" + (" (dirty tree)" if git.get("dirty") else "")],
        ["mythbench version", str(results.get("mythbench_version", DASH))],
        ["preset", str(results.get("preset") or DASH)],
        ["seeds", ", ".join(str(s) for s in results.get("seeds", []))],
        ["environment", ", ".join(f"{k} {v}" for k, v in env.items()) or DASH],
        ["created", str(results.get("created_at", DASH))],
        ["wall time", DASH if wall is None else f"{wall:.1f} s"],
        ["status", str(results.get("status", DASH))],
    ]
    model_rows = []
    for m in results["models"]:
        p, f = m.get("params") or {}, m.get("flops_per_token") or {}
        seeds = ", ".join(f"{r['seed']}: {r.get('status')}" for r in sorted(m.get("runs", []),
                                                                            key=lambda r: r["seed"]))
        model_rows.append([m["name"], m.get("role", DASH), m.get("family", DASH),
                           f"{p.get('unique', 0):,} / {p.get('active', 0):,}",
                           f"{f.get('forward', 0):.3g} / {f.get('train', 0):.3g}",
                           str(m.get("train_loops") or DASH), seeds or DASH])
    notes = [f"- `{m['name']}`: seed(s) {', '.join(map(str, _diverged_seeds(m)))} diverged; numbers are "
             f"over the {len(_complete_runs(m))} complete seed(s)."
             for m in results["models"] if _diverged_seeds(m)]
    header, rows = _headline(results, summaries)
    parts = [
        f"# mythbench report: {task.get('name', DASH)}", "",
        _md_table(["field", "value"], provenance), "",
        "## Models", "",
        _md_table(["model", "role", "family", "params unique / active", "FLOPs/token fwd / train",
                   "train loops", "seeds"], model_rows), "",
        "## Accuracy by difficulty", "",
        f"Exact match under the pre-registered loop rule `{evaluation.get('loop_rule', DASH)}` (looped "
        "models: at the loop count after @, fixed before scoring): mean over complete seeds [95% interval: "
        "bootstrap over seeds, Wilson for a single seed], then the mean per-token accuracy (tok). "
        f"Loops evaluated: 1 to {max_loops}. The ORACLE column picks the best loop count on the test labels "
        "themselves: an upper bound no user can apply, never a result. The overthinking drop is the oracle "
        "minus the accuracy at the largest loop count.", "",
        _md_table(header, rows), "", *notes, *([""] if notes else []),
        "## Adaptive early exit", "", _early_exit_table(results), "",
        "## Diagnostics", "", _diagnostics_table(results), "",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- plots


def _png(fig: Figure) -> bytes:
    """Render with the Agg canvas directly: no pyplot state, no display needed."""
    FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _loop_grid(model: dict[str, Any]) -> dict[int, dict[int, dict[str, float]]]:
    """Per (difficulty, loops) stats over complete seeds, only where every complete seed has the cell."""
    runs = _complete_runs(model)
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


def _plot_vs_baselines(rdt: dict[str, Any], baselines: list[dict[str, Any]], summaries: dict[str, list],
                       train: set[int]) -> bytes:
    name = rdt["name"]
    series = [(f"{name} at the loop rule's count", name, "headline"),
              (f"{name} at training loops ({rdt.get('train_loops')})", name, "acc_at_train_loops"),
              (f"{name} ORACLE best over loops (chosen on test labels)", name, "oracle_best")]
    series += [(f"{b['name']} ({b.get('role')})", b["name"], "headline") for b in baselines]
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
           xlim=(-0.5, len(pos) - 0.5), title=f"{name} against baselines (bars: 95% interval)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def _plots(results: dict[str, Any], summaries: dict[str, list]) -> dict[str, bytes]:
    """One plot set per recurrent-depth model with loop cells; the role 'rdt' model gets unsuffixed names."""
    train = set(results.get("task", {}).get("train_difficulties", []))
    baselines = [m for m in results["models"] if not _is_looped(m) and summaries[m["name"]]]
    plots: dict[str, bytes] = {}
    for m in filter(_is_looped, results["models"]):
        grid = {d: v for d, v in _loop_grid(m).items() if v}
        if not grid:
            continue
        suffix = "" if m.get("role") == "rdt" and "heatmap.png" not in plots else "_" + re.sub(
            r"[^A-Za-z0-9_.-]+", "_", m["name"])
        plots[f"acc_vs_loops{suffix}.png"] = _plot_acc_vs_loops(m["name"], grid, train, m.get("train_loops"))
        plots[f"heatmap{suffix}.png"] = _plot_heatmap(m["name"], grid, train, m.get("train_loops"))
        plots[f"rdt_vs_baselines{suffix}.png"] = _plot_vs_baselines(m, baselines, summaries, train)
    return plots
