"""The results.json schema: path-qualified messages, every problem at once, and properties over documents."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hostile.factory import DELETE, TOY, as_version_2, make_results, mutated
from hostile.paths import all_paths, dotted, leaf, required_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mythbench.analysis.stats import with_derived
from mythbench.core.errors import ConfigError
from mythbench.results.leaderboard import TaskIdentity
from mythbench.results.results_model import Model, RunFileV3, Text, rules
from mythbench.results.safejson import (
    canonical_json,
    content_hash,
    json_depth,
    parse_json_bytes,
    read_json_file,
    walk_problems,
)
from mythbench.results.schema import (
    check_schema,
    check_submittable,
    leaderboard_difficulties,
    model_problems,
    validate,
)

BASE = make_results()
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "results-schema.md"


REQUIRED = required_paths(RunFileV3, BASE)
# one representative path per schema field (first array element), for an exhaustive check
FIELDS = list({re.sub(r"\[\d+\]", "[]", dotted(p)): p for p in REQUIRED}.values())
NUMERIC = [p for p in all_paths(BASE) if p and isinstance(leaf(BASE, p), (int, float))
           and not isinstance(leaf(BASE, p), bool)]
PATHS = all_paths(BASE)[1:]
REQUIRED_SET = set(REQUIRED)


def test_the_base_document_is_valid_and_submittable() -> None:
    assert check_schema(BASE) == [] and check_submittable(BASE) == []
    validate(BASE)
    assert len(FIELDS) > 50 and len(NUMERIC) > 500


def test_messages_name_the_exact_place() -> None:
    doc = mutated(BASE, ("models", 0, "runs", 1, "cells", 3, "n"), 0)
    assert "models[0].runs[1].cells[3].n: 0 is not >= 1" in check_schema(doc)
    with pytest.raises(ConfigError) as err:
        validate(doc)
    assert err.value.problems == check_schema(doc)


def test_every_problem_is_reported_at_once() -> None:
    doc = mutated(BASE, ("wall_time_s",), -1)
    doc = mutated(doc, ("git", "commit"), "nope")
    doc = mutated(doc, ("models", 1, "runs", 2, "cells", 0, "correct"), 99)
    doc = mutated(doc, ("models", 0, "params", "unique"), 1.5)
    doc = mutated(doc, ("environment",), DELETE)
    problems = check_schema(doc)
    for start in ("wall_time_s: -1 is not >= 0", "git.commit: 'nope' does not match",
                  "models[1].runs[2].cells[0].correct: 99 is more than n = 32",
                  "models[0].params.unique: expected an integer, got 1.5", "environment: required field is missing"):
        assert any(p.startswith(start) for p in problems), start


@pytest.mark.parametrize("path", FIELDS, ids=dotted)
def test_deleting_each_schema_field_is_reported_by_name(path: tuple) -> None:
    name = dotted(path)
    assert any(p.startswith(f"{name}: ") and "missing" in p for p in check_schema(mutated(BASE, path, DELETE)))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(REQUIRED))
def test_any_document_with_a_required_field_deleted_is_rejected_naming_it(path: tuple) -> None:
    name = dotted(path)
    assert any(p.startswith(f"{name}: ") and "missing" in p for p in check_schema(mutated(BASE, path, DELETE)))


@st.composite
def tasks(draw: st.DrawFn) -> TaskIdentity:
    train = sorted(draw(st.lists(st.integers(1, 40), min_size=1, max_size=3, unique=True)))
    test = sorted(draw(st.lists(st.integers(1, 80), min_size=1, max_size=4, unique=True)))
    return TaskIdentity("t" + draw(st.text("abcxyz0123_-", max_size=8)), draw(st.integers(1, 99)), TOY.fingerprint,
                        tuple(train), tuple(test))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeds=st.lists(st.integers(0, 2**31), min_size=1, max_size=4, unique=True), n=st.integers(1, 300),
       rng_seed=st.integers(0, 2**32 - 1), train_loops=st.integers(1, 3), task=tasks(), data=st.data())
def test_valid_documents_with_random_values_are_accepted(seeds, n, rng_seed, train_loops, task, data) -> None:
    diverged = data.draw(st.lists(st.sampled_from(seeds), unique=True))
    doc = make_results(seeds, task=task, n=n, rng_seed=rng_seed, train_loops=train_loops, diverged=diverged)
    assert check_schema(doc) == []
    assert check_schema(parse_json_bytes(json.dumps(doc, indent=1).encode())) == []
    submittable = len(seeds) - len(diverged) >= 3
    assert (check_submittable(doc) == []) == submittable


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(NUMERIC), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_finite_numeric_leaf_is_rejected_in_python_and_in_json_text(path: tuple, value: float) -> None:
    doc = mutated(BASE, path, value)
    assert f"{dotted(path)}: {value!r} is not allowed; every number must be finite" in check_schema(doc)
    literal = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    parsed = parse_json_bytes(json.dumps(doc).encode())
    assert f"{dotted(path)}: {literal} is not allowed; every number must be finite" in check_schema(parsed)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), json_values)
def test_any_replacement_is_reported_never_raised(path: tuple, value: Any) -> None:
    doc = mutated(BASE, path, value)
    assert isinstance(check_submittable(doc), list)
    old = leaf(BASE, path)
    retyped = type(value) is not type(old) and not (isinstance(value, int) and isinstance(old, float))
    if path in REQUIRED_SET and value is not None and retyped and not isinstance(old, (dict, list)):
        assert check_schema(doc), f"{dotted(path)} = {value!r} accepted"  # a typed field of another type


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_parse_or_raise_config_error(data: bytes) -> None:
    try:
        doc = parse_json_bytes(data)
    except ConfigError as e:
        assert e.problems
    else:
        assert isinstance(check_submittable(doc), list)


def test_kinds_and_versions_dispatch() -> None:
    assert check_schema({**BASE, "kind": "sweep"}) == ["kind: 'sweep' is not a known kind for schema_version 3 "
                                                       "(known: 'run')"]
    old = {**BASE, "schema_version": 1}
    assert "points: required field is missing" in check_schema({**old, "kind": "scale"})  # the scale schema
    assert check_schema({**BASE, "schema_version": 7}) == [
        "schema_version: 7 is not a known schema version (known: 1, 2, 3); upgrade mythbench or regenerate the file"]
    assert check_schema({k: v for k, v in BASE.items() if k != "schema_version"}) == [
        "schema_version: required field is missing"]
    assert check_schema({k: v for k, v in BASE.items() if k != "kind"}) == [
        "kind: missing for schema_version 3 (known: 'run')"]
    assert check_schema({**BASE, "kind": 3}) == ["kind: 3 is not a known kind for schema_version 3 (known: 'run')"]
    assert check_schema({**BASE, "schema_version": True})[0].startswith("schema_version: true is not a known")
    assert check_schema([BASE]) == ["top level: expected a JSON object, got an array"]


def test_one_seed_reference_results_pass_the_schema_but_are_not_submittable() -> None:
    doc = make_results(seeds=(0,), preset="quick")
    assert check_schema(doc) == []
    assert any("mythbench run toy --preset standard" in p for p in check_submittable(doc))


@pytest.mark.parametrize("path, value, message", [
    (("models", 0, "train_loops"), 9, "models[0].train_loops: 9 is not in eval_loops"),
    (("models", 0, "eval_loops"), None, "models[0].eval_loops: required for a looped model (train_loops is set)"),
    (("models", 1, "eval_loops"), [1, 2], "models[1].eval_loops: must be null for a model that does not loop"),
    (("models", 1, "runs", 0, "cells", 0, "loops"), 2, "cells[0].loops: must be null for a model that does not"),
    (("models", 1, "runs", 0, "early_exit"), BASE["models"][0]["runs"][0]["early_exit"], "must be empty for a model"),
    (("models", 0, "runs", 0, "early_exit", 0, "mean_loops"), 5.5, "mean_loops: 5.5 exceeds the largest eval loop"),
    (("models", 0, "runs", 0, "cells", 0, "token_correct"), 10**6, "token_correct: 1000000 is more than tokens"),
    (("models", 0, "runs", 0, "cells", 0, "tokens"), DELETE, "cells[0].tokens: required field is missing"),
    (("models", 0, "role"), "ablation:../x", "models[0].role: 'ablation:../x' does not match"),
    (("task", "train_difficulties"), [2, 4, 4], "task.train_difficulties: duplicate difficulty 4"),
    (("models", 1, "twin_of"), "nope", "models[1].twin_of: 'nope' is not the name of a looped model"),
    (("models", 1, "twin_of"), "std-iso-param", "is not the name of a looped model in this file"),
    (("models", 0, "twin_of"), "rdt", "models[0].twin_of: a twin does not loop"),
    (("models", 0, "summary"), [], "models[0].summary: version 3 stores counts only"),
    (("models", 0, "runs", 1, "cells", 3, "accuracy"), 0.5, "cells[3].accuracy: version 3 stores counts only"),
    (("models", 0, "runs", 1, "cells", 3, "ci_low"), 0.5, "cells[3].ci_low: version 3 stores counts only"),
])
def test_semantic_rules(path: tuple, value: Any, message: str) -> None:
    problems = check_schema(mutated(BASE, path, value))
    assert any(message in p for p in problems), problems


def test_derived_numbers_are_computed_from_the_counts_when_read() -> None:
    cell = BASE["models"][0]["runs"][0]["cells"][0]
    derived = with_derived(BASE)
    got = derived["models"][0]["runs"][0]["cells"][0]
    assert got["accuracy"] == cell["correct"] / cell["n"]
    assert got["token_accuracy"] == cell["token_correct"] / cell["tokens"]
    assert 0 <= got["ci_low"] <= got["accuracy"] <= got["ci_high"] <= 1
    entry = derived["models"][1]["summary"][0]  # the twin: one cell per difficulty and seed
    seeds = [next(c for c in r["cells"] if c["difficulty"] == entry["difficulty"])
             for r in derived["models"][1]["runs"]]
    assert entry["headline"]["mean"] == pytest.approx(sum(c["accuracy"] for c in seeds) / len(seeds), abs=1e-12)
    assert "summary" not in BASE["models"][0]  # the document read is left as it was


def test_older_versions_are_read_through_the_same_models() -> None:
    """A version 2 file stored rates and summaries beside the counts: still valid, and its stored numbers are
    never what a reader uses (with_derived computes them from the counts)."""
    old = as_version_2(BASE)
    assert check_schema(old) == []
    old["models"][0]["runs"][0]["cells"][0]["accuracy"] = 0.999
    assert with_derived(old)["models"][0]["runs"][0]["cells"][0]["accuracy"] != 0.999


def test_leaderboard_difficulties() -> None:
    assert leaderboard_difficulties([2, 4, 8, 16], [16, 24, 32, 48, 64]) == (16, 32, 64)
    assert leaderboard_difficulties([4], [6, 10]) == (4, 10, 10)  # a tie goes to the harder one
    assert leaderboard_difficulties([6], [8, 12, 16, 24, 32]) == (6, 12, 32)


def test_json_safety_helpers() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [[1]], "c": "\\"[["}') == 3
    assert json_depth("[]" * 10) == 1
    doc = {"b": [1, 2.5, "é"], "a": None}
    assert content_hash(doc) == content_hash(json.loads(json.dumps(doc, indent=3)))
    assert canonical_json(doc) == '{"a":null,"b":[1,2.5,"é"]}'.encode()
    with pytest.raises(ValueError, match="not JSON compliant"):  # no NaN: a hash is of standard JSON only
        canonical_json({"a": float("nan")})
    assert walk_problems({"a": {1, 2}}) == ["a: a set is not a JSON value"]
    assert walk_problems(parse_json_bytes(b'{"x": {"k": 1, "k": 2}}')) == ["x: duplicate key 'k'"]
    assert parse_json_bytes(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 byte-order mark is tolerated


def test_untrusted_bytes_are_refused_saying_what_they_are(tmp_path: Path) -> None:
    cases = [(b" \n", "the file is empty; expected a JSON results document"),
             (b"\x80\x04K\x01.", "this looks like a Python pickle (binary, protocol 4), not JSON; results must be "
                                  "JSON text, and submitted files are never unpickled"),
             (b'{"a": "\x00"}', "the file contains NUL bytes: it is binary, not JSON text"),
             (b'{"a": "\xff"}', "the file is not UTF-8 text (invalid byte 0xff at offset 7); results must be JSON "
                                "text"),
             (b"[" * 3 + b"]" * 3, "JSON nesting is 3 levels deep; the limit is 2"),
             (b'{"a": }', "not valid JSON: Expecting value (line 1, column 7)")]
    for data, message in cases:
        with pytest.raises(ConfigError) as err:
            parse_json_bytes(data, max_depth=2)
        assert err.value.problems == [message], data
    assert parse_json_bytes(b"[[1]]", max_depth=2) == [[1]]  # at the limit
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"1," * 10 + b"1]")
    with pytest.raises(ConfigError) as err:
        read_json_file(big, max_bytes=20)
    assert err.value.problems == ["the file is 23 bytes; the limit for a results file is 20 bytes"]
    assert read_json_file(big, max_bytes=23) == [1] * 11  # at the limit
    for path, message in ((tmp_path, f"{tmp_path} is not a regular file"),
                          (tmp_path / "missing.json", f"cannot open {tmp_path / 'missing.json'}: No such file or "
                                                      "directory")):
        with pytest.raises(ConfigError) as err:
            read_json_file(path)
        assert err.value.problems == [message]


def test_the_schema_document_names_every_field() -> None:
    doc = DOC_PATH.read_text()
    schema = RunFileV3.model_json_schema()
    names = {k for spec in [schema, *schema["$defs"].values()] for k in spec["properties"]}
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/results-schema.md does not mention {missing}"


def test_the_loop_rule_never_decreases_and_a_looped_model_needs_one() -> None:
    rule = BASE["models"][0]["loop_rule"]["loops"]
    decreasing = {**rule, str(max(map(int, rule))): 1}
    problems = check_schema(mutated(BASE, ("models", 0, "loop_rule", "loops"), decreasing))
    assert any("loop_rule.loops: must not decrease" in p for p in problems)
    problems = check_schema(mutated(BASE, ("models", 0, "loop_rule"), None))
    assert any("loop_rule: required for a looped model" in p for p in problems)


def test_version_1_files_still_validate() -> None:
    """The leaderboard keeps schema-1 submissions (task versions 1) as history: they must still verify."""
    stored = sorted((Path(__file__).resolve().parent.parent / "results" / "submissions").rglob("*.json"))
    assert stored
    versions = []
    for path in stored:
        doc = json.loads(path.read_text())
        versions.append(doc["schema_version"])
        assert check_schema(doc) == [], path
    assert 1 in versions  # the v1 history is among them


class _Inner(Model):
    n: int
    name: Text(max_len=8) = "x"
    code: Text("[a-z]+|0", 4) = "a"
    check_n = rules(lambda d: [f"n: {d.n} is odd", f"n: {d.n} is not even"] if d.n % 2 else [])


class _Outer(Model):
    inner: _Inner
    pair: tuple[int, int] = (0, 0)


def test_pydantic_errors_become_path_and_message_lines() -> None:
    assert model_problems(_Outer, "text") == ["top level: expected an object, got 'text'"]
    assert model_problems(_Outer, {"inner": {"n": 3}}) == ["inner.n: 3 is odd", "inner.n: 3 is not even"]
    assert model_problems(_Outer, {"inner": {"n": 2, "name": "a\x00"}}) == [
        "inner.name: 'a\\x00' contains control characters"]
    assert model_problems(_Outer, {"inner": {"n": 2}, "pair": 5}) == ["pair: Input should be a valid tuple"]
    assert model_problems(_Outer, {"inner": {"n": 2, "name": "a" * 9, "code": "A"}}) == [
        "inner.name: string of 9 characters is longer than 8", "inner.code: 'A' does not match [a-z]+|0"]


def test_a_file_that_cannot_be_submitted_says_why_in_full() -> None:
    assert check_submittable(make_results() | {"status": "incomplete"}) == [
        "status: 'incomplete'; only complete runs can be submitted (rerun the same command: it resumes where it "
        "stopped)"]
    problems = check_submittable(make_results(diverged=(0, 1, 2)))
    assert [p for p in problems if p.startswith("models[0].summary")] == [
        f"models[0].summary: no headline accuracy for difficulty {d}, which the leaderboard reports"
        for d in (4, 8, 12)]
