"""The versioned schema of results.json and a validator that reports every problem at once.

Why hand-written rather than JSON Schema: results files arrive from strangers, so the messages must name the
exact place (`models[0].runs[1].cells[3].accuracy: 1.2 is not in [0, 1]`), and the checks that matter most
are semantic (Wilson intervals recomputed from the counts, summaries consistent with the cells), which a
JSON Schema cannot express. The shapes are the results model (mythbench/results_model.py), from which
docs/results-schema.md is generated; this module adds the semantic checks and dispatches on (version, kind).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mythbench.core.errors import ConfigError
from mythbench.results.jsonshape import Obj, dicts, ints, is_int, is_num, show
from mythbench.results.results_model import (
    HEADLINE_KEY,
    LOOP_RULES,
    MODEL_NAME_RE,
    PROVENANCE,
    RUN,
    RUN_V1,
    RUN_V2,
    SCHEMA_VERSIONS,
    TASK_NAME_RE,
    TRAIN,
    check_provenance,
    duplicates,
)
from mythbench.results.safejson import walk_problems
from mythbench.results.scale_schema import check_scale_v1
from mythbench.analysis.stats import wilson_interval
from mythbench.results.summary_checks import ACC_TOL, CI_TOL, ModelFacts, check_summary

# names other modules and tests import from here
__all__ = ["ACC_TOL", "LOOP_RULES", "MODEL_NAME_RE", "PROVENANCE", "RUN", "RUN_V1", "RUN_V2", "TASK_NAME_RE",
           "TRAIN", "check_provenance", "check_schema", "check_submittable", "leaderboard_difficulties", "validate"]


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


def _check_model(m: dict, path: str, doc: dict, out: list[str]) -> None:
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    difficulties = set(ints(task.get("train_difficulties"))) | set(ints(task.get("test_difficulties")))
    seeds = set(ints(doc.get("seeds")))
    seeds_listed = isinstance(doc.get("seeds"), list)
    fam = m.get("family")
    info = ModelFacts(path, fam, m.get("train_loops") if is_int(m.get("train_loops")) else None,
                      ints(m.get("eval_loops")), doc.get("schema_version"))
    if info.version >= 2:
        info.rule_loops = _check_loop_rule(m, path, difficulties, info, out)
    if fam == "rdt":
        for key in ("train_loops", "eval_loops"):
            if m.get(key) is None:
                out.append(f"{path}.{key}: required for family 'rdt', got null")
        duplicates(info.eval_loops, f"{path}.eval_loops", "loop count", out)
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
        table, tokens, cis, keys = _check_cells(run.get("cells"), f"{rp}.cells", difficulties, allowed_loops,
                                                fam, out)
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
        info.token_tables.append(tokens)
        info.cis.append(cis)
    if doc.get("status") == "complete" and isinstance(m.get("runs"), list):
        for s in sorted(seeds - set(run_seeds)):
            out.append(f"{path}.runs: no run for seed {s} although status is 'complete'")
    # Summary values derive from the runs: once those are wrong, what the summary should say is unknown.
    check_summary(m.get("summary"), info, task, out, check_values=values_ok and len(out) == before)


def _check_loop_rule(m: dict, path: str, difficulties: set[int], info: ModelFacts, out: list[str]) -> dict[int, int]:
    """Schema 2: a looped model names its headline loop count at each evaluated difficulty, inside the
    evaluated range, by a rule that cannot have looked at the labels (constant, or growing with d)."""
    rule = m.get("loop_rule")
    if info.family != "rdt":
        if rule is not None:
            out.append(f"{path}.loop_rule: must be null for family {show(info.family)}")
        return {}
    if not isinstance(rule, dict) or not isinstance(rule.get("loops"), dict):
        if rule is None:
            out.append(f"{path}.loop_rule: required for family 'rdt', got null")
        return {}
    loops: dict[int, int] = {}
    for key, value in rule["loops"].items():
        where = f"{path}.loop_rule.loops.{key}"
        if not (re.fullmatch(r"[1-9][0-9]{0,5}", key) and int(key) in difficulties):
            out.append(f"{where}: {show(key)} is not one of the task's difficulties")
        elif not (is_int(value) and value in info.eval_loops):
            out.append(f"{where}: {show(value)} is not an evaluated loop count")
        else:
            loops[int(key)] = value
    ordered = [loops[d] for d in sorted(loops)]
    if rule.get("name") == "train" and set(ordered) - {info.train_loops}:
        out.append(f"{path}.loop_rule: rule 'train' must give train_loops = {show(info.train_loops)} everywhere")
    if any(b < a for a, b in zip(ordered, ordered[1:], strict=False)):
        out.append(f"{path}.loop_rule.loops: must not decrease as the difficulty grows, got {ordered}")
    return loops


def _check_cells(cells: Any, path: str, difficulties: set[int], allowed_loops: set[int | None], fam: Any,
                 out: list[str]) -> tuple[dict, dict, dict, set]:
    table: dict[tuple[int, int | None], float] = {}
    tokens: dict[tuple[int, int | None], float] = {}
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
        if is_num(c.get("token_accuracy")):
            tokens[d, loops] = c["token_accuracy"]
    return table, tokens, cis, set(first)


def _check_run(doc: dict, shape: Obj) -> list[str]:
    out: list[str] = []
    shape.check(doc, "", out)
    check_provenance(doc, out)
    names: dict[str, str] = {}
    for mp, m in dicts(doc.get("models"), "models"):
        name = m.get("name")
        if isinstance(name, str) and name in names:
            out.append(f"{mp}.name: {show(name)} is also the name of {names[name]}")
        elif isinstance(name, str):
            names[name] = mp
        _check_model(m, mp, doc, out)
    _check_twins(doc, out)
    return out


def _check_twins(doc: dict, out: list[str]) -> None:
    """A twin names a looped model of the same file, and is itself a model that does not loop."""
    families = {m.get("name"): m.get("family") for _, m in dicts(doc.get("models"), "models")}
    for mp, m in dicts(doc.get("models"), "models"):
        owner = m.get("twin_of")
        if not isinstance(owner, str):
            continue
        if m.get("family") != "standard":
            out.append(f"{mp}.twin_of: only a 'standard' model is a twin, this one is {show(m.get('family'))}")
        if families.get(owner) != "rdt":
            out.append(f"{mp}.twin_of: {show(owner)} is not the name of a looped model in this file")


# (schema_version, kind) -> validator
VALIDATORS: dict[tuple[int, str], Callable[[dict], list[str]]] = {
    (1, "run"): lambda doc: _check_run(doc, RUN_V1), (2, "run"): lambda doc: _check_run(doc, RUN_V2),
    (1, "scale"): check_scale_v1}


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
    hint = f"run `mythbench run {name} --preset standard` (5 seeds) and submit its results.json"
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
        headline = HEADLINE_KEY[1 if doc.get("schema_version") == 1 else 2]
        for d in dict.fromkeys(wanted):
            if not isinstance(summary.get(d, {}).get(headline), dict):
                out.append(f"{mp}.summary: no {headline} accuracy for difficulty {d}, which the leaderboard "
                           "reports")
    return out
