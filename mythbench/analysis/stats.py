"""Intervals and per-difficulty summaries: the numbers every table, plot and submission check rests on."""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import binomtest, norm

from mythbench.analysis.metrics import secondary

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for `correct/n`.

    Wilson rather than Wald because cells often sit at exactly 0% or 100%, where the Wald
    interval collapses to a point and claims certainty that n examples cannot give. Computed by
    scipy (`binomtest(...).proportion_ci(method="wilson")`); tests/test_stats.py pins it to the formula.
    """
    if isinstance(correct, bool) or isinstance(n, bool) or int(correct) != correct or int(n) != n:
        raise ValueError(f"correct and n must be integers, got correct={correct!r}, n={n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must lie in [0, n={n}], got {correct}")
    if not (z > 0 and math.isfinite(z)):
        raise ValueError(f"z must be a positive finite number, got {z}")
    low, high = _wilson(int(correct), int(n), float(z))
    # The exact endpoints at 0 and n are 0 and 1; pin them so rounding cannot leave e.g. 1e-17.
    return (0.0 if correct == 0 else max(0.0, low)), (1.0 if correct == n else min(1.0, high))


@lru_cache(maxsize=65536)
def _wilson(correct: int, n: int, z: float) -> tuple[float, float]:
    """scipy's Wilson interval at the confidence level of z. The interval depends on (correct, n) only, not on
    the test's null p; p = correct/n makes the p-value binomtest computes on construction cheap (one pmf
    instead of a search), which matters when the validator checks every cell of a large hostile file.
    Cached: a results file repeats its counts."""
    test = binomtest(correct, n, p=correct / n)
    ci = test.proportion_ci(confidence_level=1.0 - 2.0 * float(norm.sf(z)), method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_mean_interval(
    values: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds; deterministic given `seed`.

    The same resamples as scipy.stats.bootstrap(method="percentile") with this generator, kept in numpy:
    scipy's percentile arithmetic differs in the last bit, which breaks the exact nesting of intervals
    across confidence levels and would change stored summaries; it is also ~4x slower per call. A test
    (tests/test_stats.py) pins the two to each other.

    Needs at least two values: one value carries no between-seed spread, so the caller uses the
    Wilson interval of that seed's cell instead (see `summarize_seeds`).
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"bootstrap needs at least 2 values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("bootstrap values must be finite")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))
    # Clip away float rounding so identical seeds give exactly (v, v), never an interval off the data.
    means = np.clip(arr[idx].mean(axis=1), arr.min(), arr.max())
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize_seeds(
    accuracies: Sequence[float], fallback_cells: Sequence[tuple[int, int]]
) -> dict[str, float]:
    """Mean, std (ddof=1) and interval over seeds.

    With two or more seeds the interval is a bootstrap over seeds; with one seed it is the Wilson
    interval of that seed's (correct, n) cell, the only uncertainty one run can show.
    """
    accs = [float(a) for a in accuracies]
    if not accs:
        raise ValueError("summarize_seeds needs at least one accuracy")
    mean = float(np.mean(accs))
    if len(accs) >= 2:
        std = float(np.std(accs, ddof=1))
        low, high = bootstrap_mean_interval(accs)
    else:
        if len(fallback_cells) != 1:
            raise ValueError(f"one seed needs exactly one fallback cell, got {len(fallback_cells)}")
        std = 0.0
        low, high = wilson_interval(*fallback_cells[0])
    return {"mean": mean, "std": std, "ci_low": low, "ci_high": high}


def _stats_at(per_seed: list[dict[str, Any]]) -> dict[str, float]:
    """Summarize the cells of one (difficulty, loops) point across seeds (already in seed order): exact match
    with its interval, and beside it the mean of every other registered metric all of them counted."""
    rates = [{**c, **cell_rates(c)} for c in per_seed]  # from the counts, whatever a file stored beside them
    stats = summarize_seeds([r["accuracy"] for r in rates], [(int(c["correct"]), int(c["n"])) for c in per_seed])
    return {**stats, **{m.name: float(np.mean([r[m.name] for r in rates])) for m in secondary()
                        if all(r.get(m.name) is not None for r in rates)}}


def summarize_model(
    model_entry: dict[str, Any], train_difficulties: Sequence[int], test_difficulties: Sequence[int]
) -> list[dict[str, Any]]:
    """Per-difficulty summary of one results.json model entry, over its complete runs only.

    `headline` is the accuracy at the loop count the entry's pre-registered loop rule gives for that
    difficulty (`loop_rule.loops`), fixed before any test label is seen. `oracle_best` is the best loop
    count chosen on the test labels themselves: an upper bound no user can apply, kept for diagnosis.
    Diverged runs carry no trustworthy numbers, so they are left out. A loop count is compared only where
    every complete run evaluated it, so the oracle never compares means over different seeds; its ties go
    to the smaller count. A cell at a difficulty the task does not declare means the file is inconsistent,
    so it raises ValueError.
    """
    runs = sorted((r for r in model_entry.get("runs", []) if r.get("status") == "complete"),
                  key=lambda r: r["seed"])
    train_set = set(train_difficulties)
    declared = train_set | set(test_difficulties)
    # grid[difficulty][loops] -> cells in seed order
    grid: dict[int, dict[int | None, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for cell in run.get("cells", []):
            grid[int(cell["difficulty"])][cell["loops"]].append(cell)
    train_loops = model_entry.get("train_loops")
    rule = model_entry.get("loop_rule") or {}
    summary = []
    undeclared = sorted(set(grid) - declared)
    if undeclared:
        name = model_entry.get("name")
        raise ValueError(f"model {name!r} has cells at undeclared difficulties {undeclared}")
    for difficulty in sorted(grid):
        by_loops = {k: v for k, v in grid[difficulty].items() if len(v) == len(runs)}
        if not by_loops:
            continue
        split = "train" if difficulty in train_set else "test"
        if None in by_loops:  # standard transformer: one cell per difficulty, no loop axis
            stats = _stats_at(by_loops[None])
            summary.append({"difficulty": difficulty, "split": split, "headline": {**stats, "loops": None},
                            "acc_at_train_loops": dict(stats), "oracle_best": {**stats, "loops": None},
                            "acc_at_max_loops": dict(stats), "overthinking_drop": 0.0})
            continue
        stats_by_loops = {k: _stats_at(v) for k, v in sorted(by_loops.items())}
        best_loops = max(stats_by_loops, key=lambda k: (stats_by_loops[k]["mean"], -k))
        max_loops = max(stats_by_loops)
        at_train = stats_by_loops.get(train_loops)
        rule_loops = rule.get("loops", {}).get(str(difficulty))
        at_rule = stats_by_loops.get(rule_loops)
        summary.append({
            "difficulty": difficulty,
            "split": split,
            "headline": {**at_rule, "loops": rule_loops} if at_rule is not None else None,
            "acc_at_train_loops": dict(at_train) if at_train is not None else None,
            "oracle_best": {**stats_by_loops[best_loops], "loops": best_loops},
            "acc_at_max_loops": dict(stats_by_loops[max_loops]),
            "overthinking_drop": stats_by_loops[best_loops]["mean"] - stats_by_loops[max_loops]["mean"],
        })
    return summary


# headline exact match at the largest evaluated training difficulty from which a seed counts as having learned
# the task in distribution (the README's parity target: every seed >= 0.9)
LEARNED = 0.9


def seeds_learned(model_entry: dict[str, Any], train_difficulties: Sequence[int]) -> dict[int, bool]:
    """Per seed, in seed order: did it learn the task in distribution, i.e. reach LEARNED exact match under the
    model's headline rule (schema 1: at its training loop count) at the largest training difficulty its cells
    cover? A diverged seed did not. Empty when no training difficulty was evaluated."""
    runs = sorted(model_entry.get("runs", []), key=lambda r: r["seed"])
    evaluated = {c["difficulty"] for r in runs for c in r.get("cells", [])} & set(train_difficulties)
    if not evaluated:
        return {}
    hardest = max(evaluated)
    rule = (model_entry.get("loop_rule") or {}).get("loops") or {}
    loops = rule.get(str(hardest), model_entry.get("train_loops"))
    learned = {}
    for run in runs:
        cell = next((c for c in run.get("cells", []) if c["difficulty"] == hardest and c.get("loops") == loops),
                    None)
        learned[run["seed"]] = (run.get("status") == "complete" and cell is not None
                                and cell["correct"] / cell["n"] >= LEARNED)
    return learned


def seed_verdict(learned: dict[int, bool]) -> str:
    """What a table says of a model's seeds: `seed-fragile` when some seeds learned in distribution and others
    did not, so its mean averages the two; otherwise how many learned."""
    k, n = sum(learned.values()), len(learned)
    if n == 0:
        return ""
    if 0 < k < n:
        return f"seed-fragile ({k} of {n} seeds learned)"
    if n == 1:
        return "learned" if k else "not learned"
    return "every seed learned" if k else "no seed learned"


def cell_rates(counts: dict[str, Any]) -> dict[str, float]:
    """What a cell's (or early exit's) counts give: exact match with its 95% Wilson interval, and the rate of
    every other registered metric the cell counted (a version 1-2 file's stored token accuracy is kept)."""
    low, high = wilson_interval(counts["correct"], counts["n"])
    out = {"accuracy": counts["correct"] / counts["n"], "ci_low": low, "ci_high": high}
    for metric in secondary():
        rate = metric.rate(counts)
        if rate is not None:
            out[metric.name] = rate
    return out


def with_derived(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a valid run document with every derived number computed from its counts: each cell's and early
    exit's rates, and each model's `summary` (summarize_model). Numbers an older file stored are
    replaced by these, so a reader never uses a stored rate or summary."""
    doc = copy.deepcopy(doc)
    for m in doc["models"]:
        for run in m["runs"]:
            for counts in [*run["cells"], *run.get("validation", []), *run.get("early_exit", [])]:
                counts.update(cell_rates(counts))
        m["summary"] = summarize_model(m, doc["task"]["train_difficulties"], doc["task"]["test_difficulties"])
    return doc
