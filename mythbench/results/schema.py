"""Validating a parsed results document against the results model: every problem at once, each with its path.

Pydantic checks the types and bounds and runs the models' rules; this module picks the model by
(schema_version, kind), words pydantic's errors the way the project's messages read
(`models[0].runs[1].cells[3].n: 0 is not >= 1`), and adds what a leaderboard submission needs on top.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from mythbench.core.errors import ConfigError
from mythbench.results.results_model import (
    HEADLINE_KEY,
    TASK_NAME_RE,
    RunFileV1,
    RunFileV2,
    RunFileV3,
)
from mythbench.analysis.stats import with_derived
from mythbench.results.safejson import INT_LIMIT, NonFinite, walk_problems
from mythbench.results.scale_model import ScaleFileV1

__all__ = ["TASK_NAME_RE", "check_schema", "check_submittable", "leaderboard_difficulties", "validate"]

MODELS: dict[tuple[int, str], type[BaseModel]] = {
    (1, "run"): RunFileV1, (2, "run"): RunFileV2, (3, "run"): RunFileV3, (1, "scale"): ScaleFileV1}
MIN_SEEDS = 3
SCALE_REFUSAL = ("kind: 'scale' is a `mythbench scale` results file, which is never a leaderboard submission; "
                 "only run results (kind 'run', from `mythbench run`) go on the board")
_TYPES = {"int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
          "list": "an array", "dict": "an object", "model": "an object", "model_attributes": "an object"}


def show(v: Any) -> str:
    """A value as a message may show it: JSON type words, bounded length, control characters escaped."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "an array"
    text = v.literal if isinstance(v, NonFinite) else repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def dotted(loc: tuple) -> str:
    """('models', 0, 'runs') -> 'models[0].runs', the form every message uses."""
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _reported(v: Any) -> bool:
    """Values walk_problems already names (non-finite numbers, integers beyond int64)."""
    return isinstance(v, NonFinite) or (isinstance(v, float) and not math.isfinite(v)) or (
        isinstance(v, int) and not isinstance(v, bool) and not -INT_LIMIT < v < INT_LIMIT)


def _message(error: dict) -> list[str]:
    """One pydantic error as the project's `path: message` lines (a rule's error may hold several)."""
    path, kind, value, ctx = dotted(error["loc"]), error["type"], error.get("input"), error.get("ctx") or {}
    where = path or "top level"
    if kind == "value_error":  # a model's rules: `relative.path: message` lines
        return [f"{path}.{line}" if path else line for line in str(ctx.get("error", error["msg"])).split("\n")]
    if kind == "text":  # a field's own check, e.g. control characters
        return [f"{where}: {show(value)} {error['msg']}"]
    if kind == "missing":
        return [f"{where}: required field is missing"]
    if kind.endswith("_type") and kind[:-5] in _TYPES:
        return [f"{where}: expected {_TYPES[kind[:-5]]}, got {show(value)}"]
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return [f"{where}: {show(value)} is not {op} {bound:g}"]
    if kind == "string_pattern_mismatch":
        return [f"{where}: {show(value)} does not match {ctx['pattern'][4:-2]}"]
    if kind == "literal_error":
        return [f"{where}: {show(value)} is not one of {ctx['expected']}"]
    if kind == "string_too_long":
        return [f"{where}: string of {len(value)} characters is longer than {ctx['max_length']}"]
    if kind == "too_short":
        return [f"{where}: has {ctx['actual_length']} entries, needs at least {ctx['min_length']}"]
    return [f"{where}: {error['msg']}"]


def model_problems(model: type[BaseModel], doc: Any) -> list[str]:
    """Every problem pydantic finds validating doc with model, in the project's wording."""
    try:
        model.model_validate(doc)
    except ValidationError as e:
        return [line for err in e.errors(include_url=False) if not _reported(err.get("input"))
                for line in _message(err)]
    return []


def check_schema(doc: Any) -> list[str]:
    """Every problem with a parsed results document, for any known (schema_version, kind); [] if valid."""
    out = walk_problems(doc)
    if not isinstance(doc, dict):
        return out + [f"top level: expected a JSON object, got {show(doc)}"]
    version, kind = doc.get("schema_version"), doc.get("kind")
    if "schema_version" not in doc:
        return out + ["schema_version: required field is missing"]
    versions = sorted({v for v, _ in MODELS})
    if not (type(version) is int and version in versions):
        return out + [f"schema_version: {show(version)} is not a known schema version (known: "
                      f"{', '.join(map(str, versions))}); upgrade mythbench or regenerate the file"]
    if not isinstance(kind, str) or (version, kind) not in MODELS:
        known = ", ".join(repr(k) for v, k in sorted(MODELS) if v == version)
        got = "missing" if "kind" not in doc else f"{show(kind)} is not a known kind"
        return out + [f"kind: {got} for schema_version {version} (known: {known})"]
    return out + model_problems(MODELS[version, kind], doc)


def validate(doc: Any) -> None:
    """Raise ConfigError listing every schema problem."""
    problems = check_schema(doc)
    if problems:
        raise ConfigError(problems)


def leaderboard_difficulties(train: list[int], test: list[int]) -> tuple[int, int, int]:
    """The three difficulties a leaderboard row reports: the largest train one, the test one nearest to twice
    that (ties go to the harder), and the largest test one."""
    d_train = max(train)
    d_2x = min(test, key=lambda d: (abs(d - 2 * d_train), -d))
    return d_train, d_2x, max(test)


def check_submittable(doc: Any) -> list[str]:
    """check_schema plus what a leaderboard entry needs: a complete run (never a scale file) with >= 3
    distinct complete seeds per model and a headline at each of the leaderboard's difficulties. Reference
    results the project produced itself (quick one-seed runs, scale ladders) only need check_schema."""
    out = check_schema(doc)
    if isinstance(doc, dict) and doc.get("kind") == "scale":
        return [SCALE_REFUSAL] + out
    if out or doc.get("kind") != "run":
        return out
    name = doc["task"]["name"]
    hint = f"run `mythbench run {name} --preset standard` (5 seeds) and submit its results.json"
    if doc["status"] != "complete":
        out.append(f"status: {doc['status']!r}; only complete runs can be submitted (rerun the same command: it "
                   "resumes where it stopped)")
    seeds = set(doc["seeds"])
    if len(seeds) < MIN_SEEDS:
        out.append(f"seeds: {len(seeds)} distinct seed(s) {sorted(seeds)}; a submission needs at least "
                   f"{MIN_SEEDS} (a quick-preset run has one); {hint}")
    wanted = leaderboard_difficulties(doc["task"]["train_difficulties"], doc["task"]["test_difficulties"])
    headline = HEADLINE_KEY[doc["schema_version"]]
    for i, m in enumerate(with_derived(doc)["models"]):
        done = sorted(r["seed"] for r in m["runs"] if r["status"] == "complete")
        if len(seeds) >= MIN_SEEDS and len(done) < MIN_SEEDS:
            out.append(f"models[{i}]: {len(done)} complete seed(s) {done}, the others diverged; a submission needs "
                       f"at least {MIN_SEEDS} complete seeds per model")
        summary = {s["difficulty"]: s for s in m["summary"]}
        for d in dict.fromkeys(wanted):
            if summary.get(d, {}).get(headline) is None:
                out.append(f"models[{i}].summary: no {headline} accuracy for difficulty {d}, which the "
                           "leaderboard reports")
    return out
