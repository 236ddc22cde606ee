"""Semantic checks of a results model's per-difficulty summary against its cells (used by mythbench.results.schema).

A summary is derived data: every mean, standard deviation and interval in it must be what the cells of the
complete runs give, so a tampered or stale summary is caught even where its shape is valid. Schema version 1
calls the oracle `best` and has no headline; version 2 calls it `oracle_best`, adds the headline (the loop
count a pre-registered rule gives) and the mean per-token accuracy beside every exact-match statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mythbench.analysis.stats import bootstrap_mean_interval
from mythbench.results.jsonshape import dicts, ints, is_int, is_num, join, show
from mythbench.results.results_model import ORACLE_KEY

ACC_TOL = 1e-9  # accuracy == correct / n, summary means and seed-bootstrap bounds == those of the cells
CI_TOL = 1e-6  # stored Wilson bounds == bounds recomputed from (correct, n)
Point = tuple[int, int | None]  # (difficulty, loops)


@dataclass
class ModelFacts:
    """What the semantic checks of one model need, read defensively from a possibly malformed entry."""

    path: str
    family: Any
    train_loops: int | None
    eval_loops: list[int]
    version: int
    rule_loops: dict[int, int] = field(default_factory=dict)  # v2 looped models: headline loops per difficulty
    # per complete run, in run order: exact match, token accuracy and the stored interval of each cell
    tables: list[dict[Point, float]] = field(default_factory=list)
    token_tables: list[dict[Point, float]] = field(default_factory=list)
    cis: list[dict[Point, tuple[Any, Any]]] = field(default_factory=list)

    @property
    def oracle_key(self) -> str:
        return ORACLE_KEY[1 if self.version == 1 else 2]


def check_summary(summary: Any, info: ModelFacts, task: dict, out: list[str], check_values: bool) -> None:
    """Summary means must equal the means of the cells over complete runs; one seed: its Wilson interval."""
    split_of = {"train": set(ints(task.get("train_difficulties"))),
                "test": set(ints(task.get("test_difficulties")))}
    seen: dict[int, str] = {}
    for sp, s in dicts(summary, join(info.path, "summary")):
        d, split = s.get("difficulty"), s.get("split")
        if not is_int(d):
            continue
        if isinstance(split, str) and split in split_of and d not in split_of[split]:
            out.append(f"{sp}.split: difficulty {d} is not a {split} difficulty of the task")
        if d in seen:
            out.append(f"{sp}: duplicate summary for difficulty {d} (also {seen[d]})")
            continue
        seen[d] = sp
        if not check_values:
            continue
        if not info.tables:
            out.append(f"{sp}: a summary entry but no complete run to summarise")
            continue
        # loops -> the cells of each complete run, where every complete run evaluated that point
        points = [loops for (dd, loops) in info.tables[0] if dd == d and all((d, loops) in t for t in info.tables)]
        if not points:
            out.append(f"{sp}.difficulty: the complete runs have no cells at difficulty {d}")
        else:
            _check_entry(s, sp, d, points, info, out)


def _check_entry(s: dict, sp: str, d: int, points: list[int | None], info: ModelFacts, out: list[str]) -> None:
    rdt = info.family == "rdt"
    means = {loops: sum(t[d, loops] for t in info.tables) / len(info.tables) for loops in points}
    top = max(means.values())
    key = info.oracle_key
    best = s[key] if isinstance(s.get(key), dict) else {}
    best_loops = best.get("loops")
    targets = {"acc_at_train_loops": info.train_loops if rdt else None,
               "acc_at_max_loops": max(means, key=lambda k: k or 0) if rdt else None}
    if info.version >= 2:
        targets["headline"] = info.rule_loops.get(d) if rdt else None
        _check_headline_loops(s.get("headline"), f"{sp}.headline", targets["headline"], out)
    if rdt and is_int(best_loops):
        if best_loops not in means:
            out.append(f"{sp}.{key}.loops: {best_loops} is not an evaluated loop count at difficulty {d}")
        elif means[best_loops] < top - ACC_TOL:
            out.append(f"{sp}.{key}.loops: {best_loops} is not the best loop count at difficulty {d} "
                       f"(mean {means[best_loops]!r} < {top!r})")
        else:
            targets[key] = best_loops
    elif rdt and "loops" in best and best_loops is None:
        out.append(f"{sp}.{key}.loops: required for family 'rdt', got null")
    elif not rdt:
        if best_loops is not None:
            out.append(f"{sp}.{key}.loops: must be null for family 'standard'")
        targets[key] = None
    for name, loops in targets.items():
        stat = s.get(name)
        if isinstance(stat, dict) and loops in means:
            _check_stat(stat, f"{sp}.{name}", info, (d, loops), out)
        elif stat is None and name in s and loops in means and (rdt or name in ("acc_at_train_loops", "headline")):
            out.append(f"{sp}.{name}: null, but the cells at difficulty {d}, loops {show(loops)} exist")
    max_stat = s.get("acc_at_max_loops")
    drop, b = s.get("overthinking_drop"), best.get("mean")
    mx = max_stat.get("mean") if isinstance(max_stat, dict) else (b if max_stat is None else None)
    if is_num(drop) and is_num(b) and is_num(mx) and abs(drop - (b - mx)) > ACC_TOL:
        out.append(f"{sp}.overthinking_drop: {drop!r} is not {key}.mean - acc_at_max_loops.mean = {b - mx!r}")


def _check_headline_loops(headline: Any, path: str, want: int | None, out: list[str]) -> None:
    """The headline sits at the loop count the model's pre-registered rule gives, never another."""
    if isinstance(headline, dict) and "loops" in headline and headline["loops"] != want:
        out.append(f"{path}.loops: {show(headline['loops'])}, but the model's loop_rule gives {show(want)}")


def _check_stat(stat: dict, path: str, info: ModelFacts, point: Point, out: list[str]) -> None:
    """mean over seeds, std with ddof=1, an interval that a bootstrap over these seeds could produce, and
    (schema 2) the mean token accuracy."""
    accs = [t[point] for t in info.tables]
    mean, std, lo, hi = (stat.get(k) for k in ("mean", "std", "ci_low", "ci_high"))
    want = sum(accs) / len(accs)
    if is_num(mean) and abs(mean - want) > ACC_TOL:
        out.append(f"{path}.mean: {mean!r} is not the mean over complete runs of the cells, {want!r}")
    sd = math.sqrt(sum((a - want) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
    if is_num(std) and abs(std - sd) > ACC_TOL:
        out.append(f"{path}.std: {std!r} is not the standard deviation (ddof=1) over complete runs, {sd!r}")
    if is_num(lo) and is_num(hi) and lo > hi:
        out.append(f"{path}: ci_low {lo!r} is above ci_high {hi!r}")
    one_ci = info.cis[0].get(point)
    if len(accs) == 1 and one_ci is not None:  # one seed: the summary interval is that cell's Wilson one
        for name, got, cell in (("ci_low", lo, one_ci[0]), ("ci_high", hi, one_ci[1])):
            if is_num(got) and is_num(cell) and abs(got - cell) > CI_TOL:
                out.append(f"{path}.{name}: {got!r} is not the single seed's cell interval ({cell!r})")
    elif len(accs) > 1 and is_num(lo) and is_num(hi):  # the bootstrap is seeded: its interval is reproducible
        want_lo, want_hi = bootstrap_mean_interval(accs)
        if abs(lo - want_lo) > ACC_TOL or abs(hi - want_hi) > ACC_TOL:
            out.append(f"{path}: interval [{lo!r}, {hi!r}] is not the bootstrap interval of the seeds' mean, "
                       f"[{want_lo!r}, {want_hi!r}]")
    tokens = [t.get(point) for t in info.token_tables]
    got = stat.get("token_accuracy")
    if info.version >= 2 and is_num(got) and all(is_num(x) for x in tokens) and tokens:
        want_tokens = sum(tokens) / len(tokens)
        if abs(got - want_tokens) > ACC_TOL:
            out.append(f"{path}.token_accuracy: {got!r} is not the mean over complete runs of the cells' "
                       f"token accuracy, {want_tokens!r}")
