"""Tables, Markdown and plots of one run, rebuilt from results.json alone.

Everything here reads only the results file, so any run directory (or a submission) can be
re-reported without checkpoints, and the report can never disagree with the numbers it shows. The file is
read by mythbench/results/results_frame.py; every table is a DataFrame, written as CSV or Markdown by
mythbench/analysis/tables.py; the plots are mythbench/reports/report_plots.py, and report.html
(mythbench/reports/html_page.py) is report.md rendered with its plots embedded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mythbench.analysis.metrics import secondary
from mythbench.analysis.stats import (
    LEARNED,
    seed_verdict,
    seeds_learned,
    summarize_model,
    summarize_seeds,
    with_derived,
)
from mythbench.analysis.tables import DASH, csv_text, markdown, num, plain
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_bytes, atomic_write_text
from mythbench.reports.html_page import render_page
from mythbench.reports.report_plots import Plot, plots
from mythbench.results.board import budget, md_escape
from mythbench.results.results_frame import (
    cells_frame,
    complete_runs,
    early_exit_frame,
    is_looped,
    read_results,
    summary_frame,
    twin_groups,
    twin_of,
)


def load_results(run_dir: Path) -> dict[str, Any]:
    """Read `run_dir/results.json` (as untrusted data); a missing or unreadable file is a user error."""
    results = read_results(Path(run_dir) / "results.json", validate=False)
    problems = []
    if not isinstance(results, dict):
        raise ConfigError(f"{Path(run_dir) / 'results.json'} must hold a JSON object")
    if results.get("schema_version") not in (2, 3):
        problems.append(f"schema_version must be 2 or 3, got {results.get('schema_version')!r} (reports of older "
                        "files: use the mythbench version that wrote them)")
    if results.get("kind", "run") != "run":
        problems.append(f"report builds run reports; this file has kind {results.get('kind')!r}")
    if not isinstance(results.get("models"), list):
        problems.append("'models' must be a list")
    if problems:
        raise ConfigError(problems)
    try:
        return with_derived(results)  # rates and summaries, from the counts
    except ValueError as err:  # an inconsistent file is bad input, reported like any other
        raise ConfigError(str(err)) from err


def build_report(run_dir: Path, html: bool = False) -> list[Path]:
    """Write cells/summary/early-exit CSVs, report.md and PNG plots into `run_dir`, and with `html` report.html
    (report.md with its plots embedded: one file that opens from disk); return the paths."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    summaries = _summaries(results)
    figures = plots(results, summaries)
    pngs = {plot.file: plot.png for drawn in figures.values() for plot in drawn}
    report_md = _markdown(results, summaries, figures)
    files: dict[str, str | bytes] = {
        "cells.csv": csv_text(cells_frame(results)),
        "summary.csv": csv_text(summary_frame(results, summaries)),
        "early_exit.csv": csv_text(early_exit_frame(results)),
        "report.md": report_md,
        **pngs,
    }
    if html:
        task = results.get("task") or {}
        files["report.html"] = render_page(f"mythbench report: {task.get('name', DASH)}", report_md, pngs)
    written = []
    for name, data in files.items():
        write = atomic_write_bytes if isinstance(data, bytes) else atomic_write_text
        write(run_dir / name, data)  # type: ignore[operator]
        written.append(run_dir / name)
    return written


def format_summary_table(results: dict[str, Any]) -> str:
    """Compact plain-text headline tables for the terminal at the end of `mythbench run`: each looped model with
    its twins (the document as the harness wrote it: rates and summaries are computed from its counts)."""
    results = with_derived(results)
    summaries = _summaries(results)
    return "\n\n".join(plain(pd.DataFrame(rows, columns=pd.Index(header, dtype=object), dtype=object))
                        for header, rows in (_headline(results, summaries, g) for g in twin_groups(results)))


# ---------------------------------------------------------------- data access


def _summaries(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Stored per-model summary, or one recomputed from the cells when the file lacks it."""
    task = results.get("task", {})
    train, test = task.get("train_difficulties", []), task.get("test_difficulties", [])
    try:
        return {m["name"]: m.get("summary") or summarize_model(m, train, test) for m in results["models"]}
    except ValueError as err:  # an inconsistent file is bad input, reported like any other
        raise ConfigError(str(err)) from err


def _diverged_seeds(model: dict[str, Any]) -> list[int]:
    return [r["seed"] for r in model.get("runs", []) if r.get("status") == "diverged"]


# ---------------------------------------------------------------- Markdown


def _acc(stats: dict[str, Any] | None) -> str:
    """Exact match [95% interval], then each other registered metric the file counted, by its short name."""
    if not stats:
        return DASH
    text = f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
    return " ".join([text, *(f"{m.short} {stats[m.name]:.3f}" for m in secondary() if m.name in stats)])


def _seed_values(model: dict[str, Any], difficulty: int, loops: int | None, spec: str) -> dict[int, str]:
    """Each seed's exact match at this cell, in seed order; a seed that did not complete shows its status."""
    values = {}
    for run in sorted(model["runs"], key=lambda r: r["seed"]):
        cell = next((c for c in run.get("cells", []) if c["difficulty"] == difficulty and c.get("loops") == loops),
                    None)
        values[run["seed"]] = (run["status"] if run["status"] != "complete" else DASH if cell is None
                               else format(cell["accuracy"], spec))
    return values


def _per_seed(model: dict[str, Any], difficulty: int, loops: int | None) -> str:
    """Each seed's exact match at this cell when there is more than one seed: a failing seed is visible next to
    the mean, never averaged away (a diverged seed is named)."""
    if len(model["runs"]) < 2:
        return ""
    return " (seeds " + " / ".join(_seed_values(model, difficulty, loops, ".2f").values()) + ")"


def _seed_status(run: dict[str, Any], learned: dict[int, bool]) -> str:
    """`seed: status`, and for a complete seed whether it learned in distribution."""
    mark = "" if run.get("status") != "complete" or run["seed"] not in learned else (
        " (learned)" if learned[run["seed"]] else " (not learned)")
    return f"{run['seed']}: {run.get('status')}{mark}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    return markdown(pd.DataFrame(rows, columns=pd.Index(header, dtype=object), dtype=object))


def _column(model: dict[str, Any], train: list[int]) -> str:
    """A model's column header: its name, `@loops` if it loops, and the flag of a seed-fragile model."""
    verdict = seed_verdict(seeds_learned(model, train))
    flag = f" [{verdict}]" if verdict.startswith("seed-fragile") else ""
    return model["name"] + (" @loops" if is_looped(model) else "") + flag


def _headline(results: dict[str, Any], summaries: dict[str, list],
              models: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per difficulty: each of `models` (a looped model and its twins) under the pre-registered loop
    rule (looped models: at the loop count shown), plus the looped model's oracle (best loop count chosen on
    the test labels) and drop."""
    looped = [m for m in models if is_looped(m)]
    by_diff = {m["name"]: {e["difficulty"]: e for e in summaries[m["name"]]} for m in models}
    difficulties = sorted({d for entries in by_diff.values() for d in entries})
    train = results.get("task", {}).get("train_difficulties", [])
    header = ["difficulty", "split", *(_column(m, train) for m in models)]
    for m in looped:
        header += [f"{m['name']} ORACLE best over loops", f"{m['name']} overthinking drop"]
    rows = []
    for d in difficulties:
        row = [str(d), "train" if d in train else "test"]
        for m in models:
            headline = by_diff[m["name"]].get(d, {}).get("headline")
            if not complete_runs(m):
                row.append("diverged" if _diverged_seeds(m) else DASH)
            elif headline and headline.get("loops"):
                row.append(f"{_acc(headline)} @{headline['loops']}{_per_seed(m, d, headline['loops'])}")
            else:
                row.append(_acc(headline) + (_per_seed(m, d, None) if headline else ""))
        for m in looped:
            entry = by_diff[m["name"]].get(d)
            if entry is None:
                row += ["diverged" if _diverged_seeds(m) else DASH, DASH]
            else:
                oracle = entry["oracle_best"]
                row += [f"{_acc(oracle)} @{oracle['loops']}", num(entry["overthinking_drop"], ".3f")]
        rows.append(row)
    return header, rows


def _per_seed_table(results: dict[str, Any], summaries: dict[str, list]) -> str:
    """Every seed's exact match at the headline loop count: one row per model and difficulty, a column per seed."""
    seeds = sorted({r["seed"] for m in results["models"] for r in m.get("runs", [])})
    rows = []
    for model in (m for group in twin_groups(results) for m in group):
        for entry in summaries[model["name"]]:
            loops = (entry.get("headline") or {}).get("loops")
            values = _seed_values(model, entry["difficulty"], loops, ".3f")
            rows.append([model["name"], str(entry["difficulty"]), DASH if loops is None else str(loops),
                         *(values.get(seed, DASH) for seed in seeds)])
    if not rows:
        return "_No complete seed in this file._"
    return _md_table(["model", "difficulty", "loops", *(f"seed {seed}" for seed in seeds)], rows)


def _early_exit_table(results: dict[str, Any]) -> str:
    exits = early_exit_frame(results)
    if exits.empty:
        return "_No early-exit results in this file._"
    rows = []
    keys = ["model", "difficulty", "rule", "threshold"]
    for (model, difficulty, rule, threshold), group in exits.groupby(keys, sort=False, dropna=False):
        stats = summarize_seeds(group.accuracy.tolist(), list(zip(group.correct, group.n, strict=True)))
        rows.append([model, str(difficulty), rule, DASH if pd.isna(threshold) else f"{threshold:g}",
                     _acc(stats), f"{group.mean_loops.mean():.2f}", str(len(group))])
    return _md_table(["model", "difficulty", "rule", "threshold", "accuracy [95% CI]", "mean loops", "seeds"],
                     rows)


def _diagnostic_cells(diag: dict[str, Any]) -> list[str]:
    """Scalars a reader can scan: contraction, convergence at the last loop, expert balance, halting."""
    rho = diag.get("spectral_radius")
    changes = [v[-1] for v in (diag.get("state_change") or {}).values() if v]
    loads = [max(r) / (sum(r) / len(r)) for r in diag.get("expert_load") or [] if r and sum(r) > 0]
    halting = [h["mean"] for h in (diag.get("halting") or {}).values() if h and h.get("mean") is not None]
    return [num(rho, ".3f"), num(max(changes) if changes else None, ".4f"),
            num(max(loads) if loads else None, ".2f"), num(float(np.mean(halting)) if halting else None, ".2f")]


def _diagnostics_table(results: dict[str, Any]) -> str:
    rows = []
    for m in filter(is_looped, results["models"]):
        for run in sorted(m.get("runs", []), key=lambda r: r["seed"]):
            complete = run.get("status") == "complete"
            values = _diagnostic_cells(run.get("diagnostics") or {}) if complete else [DASH] * 4
            rows.append([m["name"], str(run["seed"]), run.get("status", DASH), *values])
    if not rows:
        return "_No recurrent-depth models in this file._"
    return _md_table(["model", "seed", "status", "max ρ(Ā)", "‖Δh‖/‖h‖ at last loop (max over difficulties)",
                      "expert load max/mean", "halting mean loop"], rows)


def _figure_links(model: str, figures: dict[str, list[Plot]]) -> list[str]:
    """Markdown images of a looped model's plots (files beside report.md; report.html embeds them)."""
    return [f"![{md_escape(plot.caption)}]({plot.file})\n" for plot in figures.get(model, [])]


def _markdown(results: dict[str, Any], summaries: dict[str, list], figures: dict[str, list[Plot]]) -> str:
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
        ["budget", budget(results.get("config"))],
        ["seeds", ", ".join(str(s) for s in results.get("seeds", []))],
        ["environment", ", ".join(f"{k} {v}" for k, v in env.items()) or DASH],
        ["created", str(results.get("created_at", DASH))],
        ["wall time", DASH if wall is None else f"{wall:.1f} s"],
        ["status", str(results.get("status", DASH))],
    ]
    model_rows = []
    train = task.get("train_difficulties", [])
    for m in results["models"]:
        p, f = m.get("params") or {}, m.get("flops_per_token") or {}
        learned = seeds_learned(m, train)
        seeds = ", ".join(_seed_status(r, learned) for r in sorted(m.get("runs", []), key=lambda r: r["seed"]))
        model_rows.append([m["name"], m.get("role", DASH), twin_of(m, results["models"]) or DASH,
                           m.get("family", DASH), f"{p.get('unique', 0):,} / {p.get('active', 0):,}",
                           f"{f.get('forward', 0):.3g} / {f.get('train', 0):.3g}",
                           str(m.get("train_loops") or DASH), seeds or DASH, seed_verdict(learned) or DASH])
    notes = [f"- `{m['name']}`: seed(s) {', '.join(map(str, _diverged_seeds(m)))} diverged; numbers are "
             f"over the {len(complete_runs(m))} complete seed(s)."
             for m in results["models"] if _diverged_seeds(m)]
    groups = []
    for group in twin_groups(results):
        header, rows = _headline(results, summaries, group)
        twins = ", ".join(f"`{t['name']}`" for t in group[1:])
        groups += [f"### {group[0]['name']}" + (f" and its twins {twins}" if twins else ""), "",
                   _md_table(header, rows), "", *_figure_links(group[0]["name"], figures)]
    parts = [
        f"# mythbench report: {task.get('name', DASH)}", "",
        _md_table(["field", "value"], provenance), "",
        "## Models", "",
        _md_table(["model", "role", "twin of", "family", "params unique / active", "FLOPs/token fwd / train",
                   "train loops", "seeds", "in distribution"], model_rows), "",
        f"A seed has learned in distribution when its headline exact match at the largest evaluated training "
        f"difficulty is at least {LEARNED}; a model on which some seeds learned and others did not is "
        "**seed-fragile**: its mean averages seeds that learned with seeds that did not.", "",
        "## Accuracy by difficulty", "",
        f"Exact match under the pre-registered loop rule `{evaluation.get('loop_rule', DASH)}` (looped "
        "models: at the loop count after @, fixed before scoring): mean over complete seeds [95% interval: "
        "bootstrap over seeds, Wilson for a single seed], then the mean per-token accuracy (tok), then, with "
        "several seeds, each seed's exact match in seed order. "
        f"Loops evaluated: 1 to {max_loops}. The ORACLE column picks the best loop count on the test labels "
        "themselves: an upper bound no user can apply, never a result. The overthinking drop is the oracle "
        "minus the accuracy at the largest loop count. One table per looped model, beside its own twins.", "",
        *groups, *notes, *([""] if notes else []),
        "## Per seed", "",
        "Each seed's exact match at the headline loop count (the loop rule's; a model evaluated once: its one "
        "value), in seed order; a seed that did not complete shows its status.", "",
        _per_seed_table(results, summaries), "",
        "## Adaptive early exit", "", _early_exit_table(results), "",
        "## Diagnostics", "", _diagnostics_table(results), "",
    ]
    return "\n".join(parts)


