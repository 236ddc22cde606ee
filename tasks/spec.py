"""Reading and validating task specs, reporting every problem at once (never only the first)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mythbench.tasks.base import Family
from mythbench.tasks.task import TaskSpec

from mythbench.core.errors import ConfigError, known_hint

ATTENTION = ("causal", "bidirectional")
METRICS = ("exact_match",)
SPLITS = ("train", "test")
CONTEXT = ("fixed", "grows")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

# field -> (python type, required); `params` may be omitted when the family's defaults are wanted.
FIELDS: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "version": (int, True),
    "family": (str, True),
    "params": (dict, False),
    "train_difficulties": (list, True),
    "test_difficulties": (list, True),
    "examples": (dict, True),
    "seeds": (list, True),
    "attention": (str, True),
    "context_length": (str, True),
    "depth_per_difficulty": (int, True),
    "metric": (str, True),
    "description": (str, True),
    "token_format": (str, True),
}


def parse_spec(raw: Any, families: Mapping[str, type[Family]], source: str) -> tuple[TaskSpec, Family]:
    """Validate a loaded YAML document and build its spec and family; ConfigError lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a task spec must be a mapping of fields, got {type(raw).__name__}")
    problems: list[str] = []
    for key in raw:
        if key not in FIELDS:
            problems.append(f"unknown field {key!r} (allowed: {', '.join(FIELDS)})")
    for key, (kind, required) in FIELDS.items():
        if key not in raw:
            if required:
                problems.append(f"missing field {key!r}")
        elif not _has_type(raw[key], kind):
            problems.append(f"{key}: expected {_type_name(kind)}, got {type(raw[key]).__name__}")
    ok = {k: v for k, v in raw.items() if k in FIELDS and _has_type(v, FIELDS[k][0])}
    problems += _check_values(ok, families)

    family = None
    if ok.get("family") in families:
        try:
            family = families[ok["family"]](ok.get("params", {}))
        except ConfigError as exc:
            problems += exc.problems
    if family is not None:
        lo, hi = family.difficulty_range()
        for key in ("train_difficulties", "test_difficulties"):
            for d in _int_list(ok.get(key)):
                if not lo <= d <= hi:
                    problems.append(
                        f"{key}: {d} is outside the supported range [{lo}, {hi}] of family {family.name!r}"
                    )
        problems += _context_problems(ok, family)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    assert family is not None
    spec = TaskSpec(
        name=ok["name"],
        version=ok["version"],
        family=ok["family"],
        params=dict(family.params),
        train_difficulties=list(ok["train_difficulties"]),
        test_difficulties=list(ok["test_difficulties"]),
        examples={s: ok["examples"][s] for s in SPLITS},
        seeds=list(ok["seeds"]),
        attention=ok["attention"],
        context_length=ok["context_length"],
        depth_per_difficulty=ok["depth_per_difficulty"],
        metric=ok["metric"],
        description=ok["description"].strip(),
        token_format=ok["token_format"].strip(),
    )
    return spec, family


def _check_values(spec: dict[str, Any], families: Mapping[str, type[Family]]) -> list[str]:
    problems = []
    name = spec.get("name")
    if name is not None and not _NAME.match(name):
        problems.append(f"name: {name!r} must be lowercase letters, digits, '-' or '_', starting with a letter")
    version = spec.get("version")
    if version is not None and version < 1:
        problems.append(f"version: must be at least 1, got {version}")
    family = spec.get("family")
    if family is not None and family not in families:
        problems.append(f"family: unknown family {family!r}{known_hint(family, sorted(families))}")
    for key in ("train_difficulties", "test_difficulties", "seeds"):
        values = spec.get(key)
        if values is None:
            continue
        if not values:
            problems.append(f"{key}: must not be empty")
        bad = [v for v in values if not _has_type(v, int)]
        if bad:
            problems.append(f"{key}: expected integers, got {', '.join(map(repr, bad))}")
        elif key == "seeds" and any(v < 0 for v in values):
            problems.append("seeds: must be non-negative")
        elif any(b <= a for a, b in zip(values, values[1:], strict=False)):
            problems.append(f"{key}: must be strictly increasing (no repeats), got {values}")
    examples = spec.get("examples")
    if examples is not None:
        for key in examples:
            if key not in SPLITS:
                problems.append(f"examples: unknown split {key!r} (allowed: train, test)")
        for split in SPLITS:
            count = examples.get(split)
            if count is None:
                problems.append(f"examples: missing {split!r}")
            elif not _has_type(count, int) or count < 1:
                problems.append(f"examples.{split}: expected a positive integer, got {count!r}")
    depth = spec.get("depth_per_difficulty")
    if depth is not None and depth < 1:
        problems.append(f"depth_per_difficulty: must be at least 1, got {depth}")
    for key, allowed in (("attention", ATTENTION), ("metric", METRICS), ("context_length", CONTEXT)):
        value = spec.get(key)
        if value is not None and value not in allowed:
            problems.append(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    for key in ("description", "token_format"):
        if key in spec and not spec[key].strip():
            problems.append(f"{key}: must not be empty")
    return problems


def _context_problems(spec: dict[str, Any], family: Family) -> list[str]:
    """`context_length` must say truthfully whether the difficulty changes the sequence length."""
    declared = spec.get("context_length")
    lo, hi = family.difficulty_range()
    shortest, longest = family.seq_len(lo), family.seq_len(hi)
    actual = "fixed" if shortest == longest else "grows"
    if declared in CONTEXT and declared != actual:
        return [f"context_length: declared {declared!r}, but family {family.name!r} with these params has "
                f"{shortest} tokens at difficulty {lo} and {longest} at {hi}"]
    return []


def _has_type(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _type_name(kind: type) -> str:
    return {dict: "a mapping", list: "a list", int: "an integer", str: "a string"}[kind]


def _int_list(values: Any) -> list[int]:
    return [v for v in values or [] if _has_type(v, int)]
