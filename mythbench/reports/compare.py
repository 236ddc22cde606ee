"""`mythbench compare`: the looped models of several runs side by side, per seed, at chosen difficulties.

An ablation study is several runs (a model ablation is one more looped model in a run; a recipe ablation
needs a run of its own), and its verdicts are about loop behaviour: does accuracy hold as loops grow past
the trained depth, do extra loops help, where does ACT halt. This table puts, for every model of every
run, exact match under the pre-registered loop rule (mean, interval and each seed: a failed seed is
shown, never dropped, and a model whose seeds disagree on learning the task is flagged seed-fragile), at
the model's training loop count and at the largest loop count evaluated (for the hardest difficulty
shown), and the mean ACT halting step where there is one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mythbench.analysis.stats import LEARNED, seed_verdict, seeds_learned, summarize_model
from mythbench.core.errors import ConfigError
from mythbench.reports.report import load_results
from mythbench.results.results_frame import model_train, recipe_text


def _seed_accuracy(run: dict[str, Any], difficulty: int, loops: int | None) -> float | None:
    for cell in run.get("cells", []):
        if cell["difficulty"] == difficulty and cell.get("loops") == loops:
            return cell["correct"] / cell["n"]
    return None


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def model_rows(results: dict[str, Any], label: str, difficulties: list[int]) -> list[list[str]]:
    """One row per model: rule accuracy (mean [interval], per seed) at each difficulty, then at the most loops."""
    rows = []
    task = results["task"]
    for model in results["models"]:
        rule = (model.get("loop_rule") or {}).get("loops", {})
        max_loops = max(model["eval_loops"]) if model.get("eval_loops") else None
        complete = [r for r in model["runs"] if r["status"] == "complete"]
        failed = [f"s{r['seed']} {r['status']}" for r in model["runs"] if r["status"] != "complete"]
        summary = {e["difficulty"]: e for e in model.get("summary") or summarize_model(
            model, task["train_difficulties"], task["test_difficulties"])}
        row = [label, model["name"], model["role"], recipe_text(model_train(results, model["name"])[0])]
        for d in difficulties:
            loops = rule.get(str(d)) if max_loops else None
            seeds = [_seed_accuracy(r, d, loops) for r in complete]
            stats = summary.get(d, {}).get("headline")
            mean = f"{_fmt(stats['mean'])} [{_fmt(stats['ci_low'])}, {_fmt(stats['ci_high'])}]" if stats else "—"
            where = f" @{loops}" if loops else ""
            row.append(f"{mean}{where} ({' / '.join(map(_fmt, seeds))})" if seeds else "—")
        hardest = difficulties[-1]
        for loops in (model.get("train_loops"), max_loops):  # do extra loops help, and do they hold?
            accs = [_seed_accuracy(r, hardest, loops) for r in complete] if max_loops else []
            row.append(f"{' / '.join(map(_fmt, accs))} @{loops}" if accs else "—")
        halting = [r["diagnostics"].get("halting", {}).get(str(hardest), {}).get("mean") for r in complete]
        row.append(" / ".join(_fmt(h) for h in halting) if any(h is not None for h in halting) else "—")
        row.append(seed_verdict(seeds_learned(model, task["train_difficulties"])) or "—")
        row.append(", ".join(failed) or "")
        rows.append(row)
    return rows


def compare(run_dirs: list[Path], difficulties: list[int] | None = None) -> str:
    """A Markdown table over the runs; difficulties default to those every run evaluated."""
    runs = [(Path(d), load_results(d)) for d in run_dirs]
    tasks = {(r["task"]["name"], r["task"]["version"]) for _, r in runs}
    if len(tasks) != 1:
        raise ConfigError(f"compare needs runs of one task version, got {sorted(tasks)}")
    evaluated = [{c["difficulty"] for m in r["models"] for run in m["runs"] for c in run.get("cells", [])}
                 for _, r in runs]
    shared = sorted(set.intersection(*evaluated))
    wanted = sorted(difficulties) if difficulties else shared
    missing = [d for d in wanted if d not in shared]
    if missing or not wanted:
        raise ConfigError(f"difficulties {missing or wanted} are not evaluated by every run (shared: {shared})")
    header = ["run", "model", "role", "recipe", *(f"n = {d}" for d in wanted),
              f"n = {wanted[-1]} at the training loop count (per seed)", f"n = {wanted[-1]} at most loops (per seed)",
              f"ACT mean halting loop at n = {wanted[-1]}", f"in distribution (>= {LEARNED})", "failed seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path, results in runs:
        lines += ["| " + " | ".join(row) + " |" for row in model_rows(results, path.name, wanted)]
    name, version = tasks.pop()
    note = (f"{name} v{version}. Exact match under each run's pre-registered loop rule (@loops): mean over "
            "seeds [95% interval], then each seed in order. A model is seed-fragile when some of its seeds learned "
            f"in distribution (headline >= {LEARNED} at the largest training difficulty) and others did not.")
    return note + "\n\n" + "\n".join(lines) + "\n"
