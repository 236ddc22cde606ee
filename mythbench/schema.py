"""The versioned schema of results.json and a validator that reports every problem at once.

Why hand-written rather than JSON Schema: results files arrive from strangers, so the messages must name the
exact place (`models[0].runs[1].cells[3].accuracy: 1.2 is not in [0, 1]`), and the checks that matter most
are semantic (Wilson intervals recomputed from the counts, summaries consistent with the cells), which a
JSON Schema cannot express. The documented form of this schema is docs/results-schema.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mythbench.errors import ConfigError
from mythbench.jsonshape import (
    Arr,
    Bool,
    Enum,
    Int,
    Node,
    Nullable,
    Num,
    Obj,
    Str,
    dicts,
    ints,
    is_int,
    is_num,
    join,
    show,
)
from mythbench.safejson import walk_problems
from mythbench.stats import wilson_interval

SCHEMA_VERSIONS = (1,)
ACC_TOL = 1e-9  # accuracy == correct / n, and summary means == means of the cells
CI_TOL = 1e-6  # stored Wilson bounds == bounds recomputed from (correct, n)
TASK_NAME_RE = r"[a-z][a-z0-9_-]{0,63}"
MODEL_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}"
ROLE_RE = r"rdt|iso-param|iso-flop|ablation:[a-z0-9][a-z0-9_-]{0,47}"
PARAM_KEYS = ("total", "unique", "active", "once", "recurrent")

_STAT = {"mean": Num(0, 1), "std": Num(0), "ci_low": Num(0, 1), "ci_high": Num(0, 1)}
_COUNTS = {"n": Int(1), "correct": Int(0), "accuracy": Num(0, 1), "ci_low": Num(0, 1), "ci_high": Num(0, 1)}
CELL = Obj({"difficulty": Int(1), "loops": Nullable(Int(1)), **_COUNTS, "token_accuracy": Num(0, 1),
            "loss": Num(0)})
EARLY_EXIT = Obj({"difficulty": Int(1), "rule": Str(r"[a-z][a-z0-9_]{0,31}"), "threshold": Nullable(Num()),
                  **_COUNTS, "mean_loops": Num(0)})
SUMMARY = Obj({"difficulty": Int(1), "split": Enum(("train", "test")),
               "acc_at_train_loops": Nullable(Obj(_STAT)),
               "best": Obj({**_STAT, "loops": Nullable(Int(1))}), "acc_at_max_loops": Nullable(Obj(_STAT)),
               "overthinking_drop": Num(-1, 1)})
# a training outcome; a scale point stores the same one
TRAIN = Obj({"steps": Int(0), "tokens": Int(0), "final_loss": Nullable(Num(0)), "wall_time_s": Num(0)})
RUN = Obj({"seed": Int(0), "status": Enum(("complete", "diverged")), "train": TRAIN, "cells": Arr(CELL)},
          optional={"early_exit": Arr(EARLY_EXIT),
                    "diagnostics": Obj(optional={"spectral_radius": Nullable(Num(0, None))})})
MODEL = Obj({"name": Str(MODEL_NAME_RE, 64), "family": Enum(("rdt", "standard")), "role": Str(ROLE_RE),
             "model_config": Obj(), "params": Obj({k: Int(0) for k in PARAM_KEYS}),
             "flops_per_token": Obj({"forward": Num(0), "train": Num(0)}),
             "train_loops": Nullable(Int(1)), "eval_loops": Nullable(Arr(Int(1), 1)),
             "runs": Arr(RUN, 1), "summary": Arr(SUMMARY)})
# The top-level fields every kind of results file carries: what was run, from which code, where and on what.
PROVENANCE: dict[str, Node] = {
    "schema_version": Int(), "kind": Str(), "mythbench_version": Str(max_len=64),
    "git": Obj({"commit": Nullable(Str(r"[0-9a-f]{40}|[0-9a-f]{64}")), "dirty": Nullable(Bool())}),
    "command": Str(max_len=4096), "created_at": Str(timestamp=True), "wall_time_s": Num(0),
    "status": Enum(("complete", "incomplete")), "preset": Nullable(Str(max_len=64)), "config": Obj(),
    "task": Obj({"name": Str(TASK_NAME_RE, 64), "version": Int(1), "fingerprint": Str(r"[0-9a-f]{64}"),
                 "train_difficulties": Arr(Int(1), 1), "test_difficulties": Arr(Int(1), 1)}),
    "environment": Obj({"python": Str(), "torch": Str(), "device": Str()},
                       optional={"numpy": Str(), "platform": Str(), "cpu_count": Nullable(Int(1))}),
    "seeds": Arr(Int(0), 1),
}
RUN_V1 = Obj({**PROVENANCE, "models": Arr(MODEL, 1)})


def _duplicates(values: list[int], path: str, what: str, out: list[str]) -> None:
    seen: set[int] = set()
    for x in values:
        if x in seen:
            out.append(f"{path}: duplicate {what} {x}")
        seen.add(x)


def _check_counts(c: dict, path: str, out: list[str]) -> None:
    """correct <= n, accuracy == correct/n, and the stored 95% Wilson interval recomputed from the counts."""
    n, k = c.get("n"), c.get("correct")
    if not (is_int(n) and is_int(k) and n >= 1 and k >= 0):
        return
    if k > n:
        out.append(f"{path}.correct: {k} is more than n = {n}")
        return
    acc = c.get("accuracy")
    if is_num(acc) and abs(acc - k / n) > ACC_TOL:
        out.append(f"{path}.accuracy: {acc!r} is not correct/n = {k}/{n} = {k / n!r}")
    low, high = wilson_interval(k, n)
    for key, want in (("ci_low", low), ("ci_high", high)):
        got = c.get(key)
        if is_num(got) and abs(got - want) > CI_TOL:
            out.append(f"{path}.{key}: {got!r} does not match the 95% Wilson interval of {k}/{n}, "
                       f"[{low:.6f}, {high:.6f}]")


@dataclass
class _Model:
    """What the semantic checks of one model need, read defensively from a possibly malformed entry."""

    path: str
    family: Any
    train_loops: int | None
    eval_loops: list[int]
    # accuracy per (difficulty, loops) for each complete run, in run order
    tables: list[dict[tuple[int, int | None], float]] = field(default_factory=list)
    cis: list[dict[tuple[int, int | None], tuple[Any, Any]]] = field(default_factory=list)


def _check_model(m: dict, path: str, doc: dict, out: list[str]) -> None:
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    difficulties = set(ints(task.get("train_difficulties"))) | set(ints(task.get("test_difficulties")))
    seeds = set(ints(doc.get("seeds")))
    seeds_listed = isinstance(doc.get("seeds"), list)
    fam = m.get("family")
    info = _Model(path, fam, m.get("train_loops") if is_int(m.get("train_loops")) else None,
                  ints(m.get("eval_loops")))
    if fam == "rdt":
        for key in ("train_loops", "eval_loops"):
            if m.get(key) is None:
                out.append(f"{path}.{key}: required for family 'rdt', got null")
        _duplicates(info.eval_loops, f"{path}.eval_loops", "loop count", out)
        if info.train_loops is not None and info.eval_loops and info.train_loops not in info.eval_loops:
            out.append(f"{path}.train_loops: {info.train_loops} is not in eval_loops")
    elif fam == "standard":
        for key in ("train_loops", "eval_loops"):
            if m.get(key) is not None:
                out.append(f"{path}.{key}: must be null for family 'standard'")
    allowed_loops: set[int | None] = set(info.eval_loops) if fam == "rdt" else {None}
    run_seeds: dict[int, str] = {}
    grid: tuple[str, set] | None = None
    before, values_ok = len(out), True
    for rp, run in dicts(m.get("runs"), f"{path}.runs"):
        seed = run.get("seed")
        if is_int(seed):
            if seed in run_seeds:
                out.append(f"{rp}.seed: duplicate seed {seed} (also {run_seeds[seed]})")
            elif seeds_listed and seed not in seeds:
                out.append(f"{rp}.seed: {seed} is not listed in the top-level seeds")
            run_seeds.setdefault(seed, rp)
        table, cis, keys = _check_cells(run.get("cells"), f"{rp}.cells", difficulties, allowed_loops, fam,
                                        out)
        for ep, e in dicts(run.get("early_exit"), f"{rp}.early_exit"):
            _check_counts(e, ep, out)
            if is_int(e.get("difficulty")) and e["difficulty"] not in difficulties:
                out.append(f"{ep}.difficulty: {e['difficulty']} is not one of the task's difficulties")
            if is_num(e.get("mean_loops")) and info.eval_loops and e["mean_loops"] > max(info.eval_loops):
                out.append(f"{ep}.mean_loops: {e['mean_loops']!r} exceeds the largest eval loop count")
        if fam == "standard" and run.get("early_exit"):
            out.append(f"{rp}.early_exit: must be empty for family 'standard'")
        if run.get("status") != "complete":
            continue
        if isinstance(run.get("cells"), list) and not run["cells"]:
            out.append(f"{rp}.cells: a complete run has no cells")
        values_ok &= isinstance(run.get("cells"), list) and set(table) == keys
        if not isinstance(run.get("cells"), list):
            continue
        if grid is None:
            grid = (rp, keys)
        elif keys != grid[1]:
            diff = sorted(grid[1] ^ keys, key=repr)[:3]
            out.append(f"{rp}.cells: evaluated on a different (difficulty, loops) grid than {grid[0]}, "
                       f"e.g. {', '.join(map(str, diff))}")
        info.tables.append(table)
        info.cis.append(cis)
    if doc.get("status") == "complete" and isinstance(m.get("runs"), list):
        for s in sorted(seeds - set(run_seeds)):
            out.append(f"{path}.runs: no run for seed {s} although status is 'complete'")
    # Summary values derive from the runs: once those are wrong, what the summary should say is unknown.
    _check_summary(m.get("summary"), info, task, out, check_values=values_ok and len(out) == before)


def _check_cells(cells: Any, path: str, difficulties: set[int], allowed_loops: set[int | None], fam: Any,
                 out: list[str]) -> tuple[dict, dict, set]:
    table: dict[tuple[int, int | None], float] = {}
    cis: dict[tuple[int, int | None], tuple[Any, Any]] = {}
    first: dict[tuple, str] = {}
    for cp, c in dicts(cells, path):
        _check_counts(c, cp, out)
        d, loops = c.get("difficulty"), c.get("loops")
        if is_int(d) and d not in difficulties:
            out.append(f"{cp}.difficulty: {d} is not one of the task's difficulties")
        if fam == "standard" and loops is not None:
            out.append(f"{cp}.loops: must be null for family 'standard'")
        elif fam == "rdt" and is_int(loops) and loops not in allowed_loops:
            out.append(f"{cp}.loops: {loops} is not in eval_loops")
        if not (is_int(d) and (loops is None or is_int(loops))):
            continue
        if (d, loops) in first:
            out.append(f"{cp}: duplicate cell for difficulty {d}, loops {show(loops)} "
                       f"(also {first[d, loops]})")
            continue
        first[d, loops] = cp
        if is_num(c.get("accuracy")):
            table[d, loops] = c["accuracy"]
            cis[d, loops] = (c.get("ci_low"), c.get("ci_high"))
    return table, cis, set(first)


def _check_summary(summary: Any, info: _Model, task: dict, out: list[str], check_values: bool) -> None:
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
        # loops -> accuracy of each complete run, where every complete run evaluated that point
        points = {loops: [t[d, loops] for t in info.tables]
                  for (dd, loops) in info.tables[0] if dd == d and all((d, loops) in t for t in info.tables)}
        if not points:
            out.append(f"{sp}.difficulty: the complete runs have no cells at difficulty {d}")
        else:
            _check_summary_entry(s, sp, d, points, info, out)


def _check_summary_entry(s: dict, sp: str, d: int, points: dict, info: _Model, out: list[str]) -> None:
    rdt = info.family == "rdt"
    means = {loops: sum(v) / len(v) for loops, v in points.items()}
    top = max(means.values())
    best = s["best"] if isinstance(s.get("best"), dict) else {}
    best_loops = best.get("loops")
    targets = {"acc_at_train_loops": info.train_loops if rdt else None,
               "acc_at_max_loops": max(means, key=lambda k: k or 0) if rdt else None}
    if rdt and is_int(best_loops):
        if best_loops not in means:
            out.append(f"{sp}.best.loops: {best_loops} is not an evaluated loop count at difficulty {d}")
        elif means[best_loops] < top - ACC_TOL:
            out.append(f"{sp}.best.loops: {best_loops} is not the best loop count at difficulty {d} "
                       f"(mean {means[best_loops]!r} < {top!r})")
        else:
            targets["best"] = best_loops
    elif rdt and "loops" in best and best_loops is None:
        out.append(f"{sp}.best.loops: required for family 'rdt', got null")
    elif not rdt:
        if best_loops is not None:
            out.append(f"{sp}.best.loops: must be null for family 'standard'")
        targets["best"] = None
    for key, loops in targets.items():
        stat = s.get(key)
        if isinstance(stat, dict) and loops in points:
            _check_stat(stat, f"{sp}.{key}", points[loops], info.cis[0].get((d, loops)), out)
        elif stat is None and key in s and loops in points and (rdt or key == "acc_at_train_loops"):
            out.append(f"{sp}.{key}: null, but the cells at difficulty {d}, loops {show(loops)} exist")
    max_stat = s.get("acc_at_max_loops")
    drop, b = s.get("overthinking_drop"), best.get("mean")
    mx = max_stat.get("mean") if isinstance(max_stat, dict) else (b if max_stat is None else None)
    if is_num(drop) and is_num(b) and is_num(mx) and abs(drop - (b - mx)) > ACC_TOL:
        out.append(f"{sp}.overthinking_drop: {drop!r} is not best.mean - acc_at_max_loops.mean = {b - mx!r}")


def _check_stat(stat: dict, path: str, accs: list[float], one_ci: tuple | None, out: list[str]) -> None:
    """mean over seeds, std with ddof=1, and an interval that a bootstrap over these seeds could produce."""
    mean, std, lo, hi = (stat.get(k) for k in ("mean", "std", "ci_low", "ci_high"))
    want = sum(accs) / len(accs)
    if is_num(mean) and abs(mean - want) > ACC_TOL:
        out.append(f"{path}.mean: {mean!r} is not the mean over complete runs of the cells, {want!r}")
    sd = math.sqrt(sum((a - want) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
    if is_num(std) and abs(std - sd) > ACC_TOL:
        out.append(f"{path}.std: {std!r} is not the standard deviation (ddof=1) over complete runs, {sd!r}")
    if is_num(lo) and is_num(hi) and lo > hi:
        out.append(f"{path}: ci_low {lo!r} is above ci_high {hi!r}")
    if len(accs) == 1 and one_ci is not None:  # one seed: the summary interval is that cell's Wilson one
        for name, got, cell in (("ci_low", lo, one_ci[0]), ("ci_high", hi, one_ci[1])):
            if is_num(got) and is_num(cell) and abs(got - cell) > CI_TOL:
                out.append(f"{path}.{name}: {got!r} is not the single seed's cell interval ({cell!r})")
    elif len(accs) > 1 and is_num(lo) and is_num(hi) and not (
            min(accs) - ACC_TOL <= lo and hi <= max(accs) + ACC_TOL):
        out.append(f"{path}: interval [{lo!r}, {hi!r}] reaches outside the seeds' accuracies "
                   f"[{min(accs)!r}, {max(accs)!r}], which no bootstrap of their mean can")


def check_provenance(doc: dict, out: list[str]) -> None:
    """The rules on PROVENANCE beyond its shape, for every kind: no seed or difficulty listed twice."""
    _duplicates(ints(doc.get("seeds")), "seeds", "seed", out)
    task = doc.get("task")
    if isinstance(task, dict):
        for key in ("train_difficulties", "test_difficulties"):
            _duplicates(ints(task.get(key)), f"task.{key}", "difficulty", out)


def _check_run_v1(doc: dict) -> list[str]:
    out: list[str] = []
    RUN_V1.check(doc, "", out)
    check_provenance(doc, out)
    names: dict[str, str] = {}
    for mp, m in dicts(doc.get("models"), "models"):
        name = m.get("name")
        if isinstance(name, str) and name in names:
            out.append(f"{mp}.name: {show(name)} is also the name of {names[name]}")
        elif isinstance(name, str):
            names[name] = mp
        _check_model(m, mp, doc, out)
    return out


def _check_scale_v1(doc: dict) -> list[str]:
    from mythbench.scale_schema import check_scale_v1  # it builds on this module's nodes: imported on use

    return check_scale_v1(doc)


# (schema_version, kind) -> validator
VALIDATORS: dict[tuple[int, str], Callable[[dict], list[str]]] = {(1, "run"): _check_run_v1,
                                                                   (1, "scale"): _check_scale_v1}


def check_schema(doc: Any) -> list[str]:
    """Every problem with a parsed results document, for any known (schema_version, kind); [] if valid."""
    out = walk_problems(doc)
    if not isinstance(doc, dict):
        return out + [f"top level: expected a JSON object, got {show(doc)}"]
    version, kind = doc.get("schema_version"), doc.get("kind")
    if "schema_version" not in doc:
        return out + ["schema_version: required field is missing"]
    if not is_int(version) or version not in SCHEMA_VERSIONS:
        known_versions = ", ".join(map(str, SCHEMA_VERSIONS))
        return out + [f"schema_version: {show(version)} is not a known schema version "
                      f"(known: {known_versions}); upgrade mythbench or regenerate the file"]
    known = sorted(k for v, k in VALIDATORS if v == version)
    if not isinstance(kind, str) or (version, kind) not in VALIDATORS:
        got = "missing" if "kind" not in doc else f"{show(kind)} is not a known kind"
        return out + [f"kind: {got} for schema_version {version} (known: {', '.join(map(repr, known))})"]
    return out + VALIDATORS[version, kind](doc)


def validate(doc: Any) -> None:
    """Raise ConfigError listing every schema problem."""
    problems = check_schema(doc)
    if problems:
        raise ConfigError(problems)


MIN_SEEDS = 3
SCALE_REFUSAL = ("kind: 'scale' is a `mythbench scale` results file, which is never a leaderboard submission; "
                 "only run results (kind 'run', from `mythbench run`) go on the board")


def leaderboard_difficulties(train: list[int], test: list[int]) -> tuple[int, int, int]:
    """The three difficulties a leaderboard row reports: the largest train one, the test one nearest to twice
    that (ties go to the harder), and the largest test one."""
    d_train = max(train)
    d_2x = min(test, key=lambda d: (abs(d - 2 * d_train), -d))
    return d_train, d_2x, max(test)


def check_submittable(doc: Any) -> list[str]:
    """check_schema plus what a leaderboard entry needs: a run (never a scale file) that is complete with >= 3
    distinct complete seeds per model and summaries at the leaderboard's difficulties. Reference results the
    project produced itself (quick one-seed runs, scale ladders) only need check_schema."""
    out = check_schema(doc)
    if isinstance(doc, dict) and doc.get("kind") == "scale":
        return [SCALE_REFUSAL] + out
    if not isinstance(doc, dict) or doc.get("kind") != "run":
        return out
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    name = task.get("name")
    name = name if isinstance(name, str) and re.fullmatch(TASK_NAME_RE, name) else "TASK"
    hint = f"run `mythbench run {name} --preset standard` (3 seeds) and submit its results.json"
    if "status" in doc and doc["status"] != "complete":
        out.append(f"status: {show(doc['status'])}; only complete runs can be submitted (rerun the same "
                   "command: it resumes where it stopped)")
    seeds = set(ints(doc.get("seeds")))
    if isinstance(doc.get("seeds"), list) and len(seeds) < MIN_SEEDS:
        out.append(f"seeds: {len(seeds)} distinct seed(s) {sorted(seeds)}; a submission needs at least "
                   f"{MIN_SEEDS} (a quick-preset run has one); {hint}")
    train, test = ints(task.get("train_difficulties")), ints(task.get("test_difficulties"))
    wanted = leaderboard_difficulties(train, test) if train and test else ()
    for mp, m in dicts(doc.get("models"), "models"):
        runs = [r for _, r in dicts(m.get("runs"), "")]
        done = {r["seed"] for r in runs if r.get("status") == "complete" and is_int(r.get("seed"))}
        if len(seeds) >= MIN_SEEDS and len(done) < MIN_SEEDS:
            out.append(f"{mp}: {len(done)} complete seed(s) {sorted(done)}, the others diverged; a "
                       f"submission needs at least {MIN_SEEDS} complete seeds per model")
        entries = [s for _, s in dicts(m.get("summary"), "")]
        summary = {s["difficulty"]: s for s in entries if is_int(s.get("difficulty"))}
        for d in dict.fromkeys(wanted):
            if not isinstance(summary.get(d, {}).get("acc_at_train_loops"), dict):
                out.append(f"{mp}.summary: no accuracy at train loops for difficulty {d}, which the "
                           "leaderboard reports")
    return out
