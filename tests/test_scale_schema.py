"""The `kind: "scale"` results schema, and how verify and submit treat scale files.

The scale document is built the way `mythbench scale` builds one: points with every field scale.py's `_point`
writes, and fits computed from them by the real `compute_fits`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile.factory import DELETE, fake_lookup, make_results, mutated
from hostile.paths import all_paths, dotted, leaf, required_paths
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench.analysis.ladder import compute_fits
from mythbench.analysis.stats import wilson_interval
from mythbench.core.errors import ConfigError
from mythbench.results.leaderboard import submit, verify
from mythbench.results.results_model import Provenance
from mythbench.results.safejson import content_hash, parse_json_bytes
from mythbench.results.scale_model import ScaleFileV1
from mythbench.results.schema import check_schema, check_submittable

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "results-schema.md"
TRAIN_D, TEST_D = (2, 4), (6, 8)
WIDTHS, LOOPS = (8, 16, 24, 32, 40), (1, 2, 4)
E, A, ALPHA, PHI, ONCE = 0.2, 20.0, 0.4, 0.5, 0.3  # synthetic laws, so that every fit succeeds


def _accuracy(rng: np.random.Generator, looped: bool) -> list[dict]:
    out = []
    for d in TRAIN_D + TEST_D:
        k = int(rng.integers(0, 65))
        low, high = wilson_interval(k, 64)
        entry = {"difficulty": d, "split": "train" if d in TRAIN_D else "test", "accuracy": k / 64,
                 "ci_low": low, "ci_high": high}
        if looped:
            entry["accuracy_max_loops"] = int(rng.integers(0, 65)) / 64
        out.append(entry)
    return out


def make_point(rng: np.random.Generator, width: int, loops: int | None, seed: int = 0,
               diverged: bool = False) -> dict[str, Any]:
    """One ladder point with the fields and the arithmetic of scale.py's `_point`."""
    n = 60 * width * width
    once, rec = (round(ONCE * n), n - round(ONCE * n)) if loops else (n, 0)
    per_token = 6.0 * once + 6.0 * (loops or 1) * rec
    tokens = 12800
    train = {"steps": 100, "tokens": tokens, "final_loss": None if diverged else 0.5, "wall_time_s": 1.5}
    point = {"name": f"rdt-w{width}-r{loops}" if loops else f"standard-w{width}",
             "family": "rdt" if loops else "standard", "width": width, "loops": loops, "seed": seed,
             "status": "diverged" if diverged else "complete", "n_heads": width // 8,
             "params": {"unique": n, "once": once, "recurrent": rec}, "flops_train_per_token": per_token,
             "tokens": tokens, "train_flops": per_token * tokens, "train": train, "loss": None,
             "loss_by_loops": None, "accuracy": []}
    if diverged:
        return point
    noise = float(np.exp(rng.normal(0, 0.01)))
    point["loss"] = (E + A * (once + (loops or 1) ** PHI * rec) ** -ALPHA) * noise
    if loops:  # falls with inference loops, equal to `loss` at the training loop count
        point["loss_by_loops"] = [[t, point["loss"] * (1 + 0.5 * math.exp(-t)) / (1 + 0.5 * math.exp(-loops))]
                                  for t in range(1, 2 * loops + 1)]
    point["accuracy"] = _accuracy(rng, loops is not None)
    return point


def make_scale_results(widths: tuple[int, ...] = WIDTHS, n_bootstrap: int = 20) -> dict[str, Any]:
    """A complete scale results document: every point at seed 0, one diverged point at seed 2, then every point
    at seed 1 (two seeds per point, so that the gate can pass and the fits are computed)."""
    rng = np.random.default_rng(0)
    points = [make_point(rng, w, r) for w in widths for r in (None, *LOOPS)]
    points.append(make_point(rng, widths[-1], LOOPS[-1], seed=2, diverged=True))
    points += [make_point(rng, w, r, seed=1) for w in widths for r in (None, *LOOPS)]
    return {
        "schema_version": 1, "kind": "scale", "mythbench_version": "0.1.0",
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True},
        "command": "mythbench scale toy --preset quick", "created_at": "2026-11-29T06:00:00Z",
        "wall_time_s": 1242.8, "status": "complete", "preset": "quick",
        "config": {"task": "toy", "scale": {"widths": list(widths)}},
        "task": {"name": "toy", "version": 3, "fingerprint": hashlib.sha256(b"toy").hexdigest(),
                 "train_difficulties": list(TRAIN_D), "test_difficulties": list(TEST_D)},
        "environment": {"python": "3.11.7", "torch": "2.13.0+cpu", "numpy": "2.4.6", "platform": "Linux",
                        "device": "cpu", "cpu_count": 2, "cuda": None},
        "seeds": [0, 1, 2],
        "scale": {"headline_loops": max(LOOPS), "n_bootstrap": n_bootstrap, "level": 0.95,
                  "train": {"steps": 100, "batch_size": 128, "recipe": "fixed"}, "eval": {"loops_factor": 2}},
        "points": points, "fits": compute_fits(points, n_bootstrap, max(LOOPS)),
        "notes": ["every point trains 100 steps (scale.steps; warmup 7)",
                  f"diverged, recorded and excluded from every fit: rdt-w{widths[-1]}-r{max(LOOPS)} seed 2"],
    }


DOC = make_scale_results()
RDT_LAW = DOC["fits"]["matched_tokens"]["families"]["rdt"]


REQUIRED = required_paths(ScaleFileV1, DOC)
NUMERIC = [p for p in all_paths(DOC) if p and isinstance(leaf(DOC, p), (int, float))
           and not isinstance(leaf(DOC, p), bool)]


def test_a_document_as_mythbench_scale_writes_it_is_valid() -> None:
    assert check_schema(DOC) == []
    assert check_schema(parse_json_bytes(json.dumps(DOC, indent=1).encode())) == []
    tokens = DOC["fits"]["matched_tokens"]  # the fixture reaches every part of the fits
    assert tokens["loop_worth"] and tokens["test_time"] and tokens["equivalence"] and tokens["projections"]
    assert DOC["fits"]["gate"]["passed"] is True
    assert all("fit" in c for c in DOC["fits"]["test_time"] if c["train_loops"] > 1)
    assert len(DOC["fits"]["test_time"]) == len(WIDTHS) * len(LOOPS)
    assert len(REQUIRED) > 500 and len(NUMERIC) > 500


def test_fits_that_failed_and_intervals_without_a_bootstrap_are_valid() -> None:
    doc = make_scale_results(widths=WIDTHS[:2], n_bootstrap=0)  # too few widths for any power law
    assert "error" in doc["fits"]["matched_tokens"] and "error" in doc["fits"]["matched_flops"]
    assert doc["fits"]["test_time"][-1]["fit"]["intervals"]["tau"]["low"] is None
    assert check_schema(doc) == []


def test_the_provenance_fields_are_the_run_files() -> None:
    assert issubclass(ScaleFileV1, Provenance)


@pytest.mark.parametrize("path, value, message", [
    (("points",), DELETE, "points: required field is missing"),
    (("fits",), DELETE, "fits: required field is missing"),
    (("notes",), DELETE, "notes: required field is missing"),
    (("scale", "headline_loops"), DELETE, "scale.headline_loops: required field is missing"),
    (("points", 0, "loss"), DELETE, "points[0].loss: required field is missing"),
    (("points", 3, "loss_by_loops"), DELETE, "points[3].loss_by_loops: required field is missing"),
    (("fits", "matched_tokens", "families", "rdt", "params", "alpha"), DELETE,
     "fits.matched_tokens.families.rdt.params.alpha: required field is missing"),
    (("fits", "test_time", 5, "fit"), DELETE, "fits.test_time[5].fit: needs exactly one of `fit`"),
    (("points", 1, "loss"), math.nan, "points[1].loss: nan is not allowed; every number must be finite"),
    (("fits", "matched_tokens", "equivalence", 0, "ratio"), math.inf,
     "fits.matched_tokens.equivalence[0].ratio: inf is not allowed"),
    (("points", 1, "loss"), -0.5, "points[1].loss: -0.5 is not > 0"),
    (("points", 1, "loss"), 0, "points[1].loss: 0 is not > 0"),
    (("points", 1, "loss_by_loops", 0, 1), -1.0, "points[1].loss_by_loops: every entry is [loops >= 1, loss > 0]"),
    (("points", 1, "loss_by_loops", 0), [1], "points[1].loss_by_loops: every entry is [loops >= 1, loss > 0]"),
    (("fits", "test_time", 5, "loss_best"), 0.0, "fits.test_time[5].loss_best: 0.0 is not > 0"),
    (("points", 0, "accuracy", 0, "accuracy"), 1.5, "points[0].accuracy[0].accuracy: 1.5 is not <= 1"),
    (("points", 2, "accuracy", 1, "accuracy_max_loops"), -0.1, "accuracy_max_loops: -0.1 is not >= 0"),
    (("points", 0, "accuracy", 2, "ci_high"), 0.0, "points[0].accuracy[2].accuracy: 0.3125 is outside its Wilson"),
    (("points", 0, "params", "unique"), 1.5, "points[0].params.unique: expected an integer, got 1.5"),
    (("points", 0, "params", "recurrent"), -1, "points[0].params.recurrent: -1 is not >= 0"),
    (("points", 0, "status"), "exploded", "points[0].status: 'exploded' is not one of 'complete' or 'diverged'"),
    (("points", 0, "name"), "../x", "points[0].name: '../x' does not match"),
    (("scale", "level"), 1.0, "scale.level: 1.0 is not < 1"),
    (("notes",), [1], "notes[0]: expected a string, got 1"),
    (("fits", "matched_tokens", "families", "rdt"), {**RDT_LAW, "law": "loop_worth", "params": {
        **RDT_LAW["params"], "phi": 0.5}}, "fits.matched_tokens.families.rdt.law: 'loop_worth' is not 'power_law'"),
    (("fits", "matched_tokens", "families", "rdt", "n_failed"), 999, "n_failed: 999 is more than n_bootstrap"),
    (("fits", "matched_tokens", "families", "rdt", "domain", "N"), [2.0, 1.0],
     "domain.N: [2.0, 1.0] is not an ordered [low, high] pair"),
    (("fits", "matched_tokens", "equivalence", 0, "ratio_interval"), {"low": 2.0, "high": 1.0, "reason": None},
     "equivalence[0].ratio_interval.low: 2.0 is above high 1.0"),
    (("fits", "matched_tokens", "equivalence", 0, "ratio_interval"), {"low": None, "high": 1.0, "reason": None},
     "ratio_interval.reason: null, but an end of the interval is null"),
    (("fits", "matched_tokens", "equivalence", 0, "unbounded"), True, "equivalence[0].unbounded: true, but n_eq"),
    (("fits", "matched_tokens", "equivalence", 0, "ratio"), 123.0, "equivalence[0].ratio: 123.0 is not n_eq / n_rdt"),
    (("fits", "matched_flops"), {"comparison": "matched-FLOPs", "error": []}, "matched_flops.error: has 0 entries"),
    (("fits", "test_time", 5, "best_loops"), 99, "fits.test_time[5].best_loops: 99 is above max_loops"),
    (("fits", "test_time", 5, "train_loops"), 3, "fits.test_time[5].train_loops: 3 is not a training loop count"),
    (("fits", "gate", "passed"), "yes", "fits.gate.passed: expected"),
    (("points", 0, "loss_floor"), -0.1, "points[0].loss_floor: -0.1 is not >= 0"),
])
def test_a_broken_field_is_reported_with_its_path(path: tuple, value: Any, message: str) -> None:
    problems = check_schema(mutated(DOC, path, value))
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize("path, value, message", [
    (("points", 0, "params", "unique"), 7, "points[0].params.unique: 7 is not once + recurrent"),
    (("points", 1, "params", "unique"), 7, "points[1].params.unique: 7 is not once + recurrent = "
     f"{DOC['points'][1]['params']['once'] + DOC['points'][1]['params']['recurrent']}"),
    (("points", 0, "params", "recurrent"), 5, "points[0].loops: null, but the point has a looped part"),
    (("points", 0, "tokens"), 5, "points[0].tokens: 5 is not train.tokens = 12800"),
    (("points", 0, "train_flops"), 1.0, "points[0].train_flops: 1.0 is not flops_train_per_token * tokens = "
     f"{DOC['points'][0]['flops_train_per_token'] * DOC['points'][0]['tokens']!r}"),
    (("points", 0, "loops"), 2, "points[0].loss_by_loops: null, but a looped point with a loss"),
    (("points", 1, "loops"), None, "points[1].loops: null, but the point has a looped part"),
    (("points", 1, "loss_by_loops"), None, "points[1].loss_by_loops: null, but a looped point with a loss"),
    (("points", 2, "loss"), 9.0, "points[2].loss: 9.0 is not loss_by_loops at the training loops 2"),
    (("points", 2, "loss_by_loops", 1, 0), 9, "points[2].loss_by_loops: loop counts are not strictly increasing"),
    (("points", 2, "loss_by_loops", 1, 0), 3, "points[2].loss_by_loops: loop counts are not strictly increasing"),
    (("points", 2, "loss_by_loops"), [[1, 0.5], [3, 0.4]], "points[2].loss_by_loops: no entry at the training loop "
     "count 2"),
    (("points", 1, "loss_by_loops", 0, 0), 1.5, "points[1].loss_by_loops: every entry is [loops >= 1, loss > 0]"),
    (("points", 1, "loss_by_loops", 0, 1), 0.0, "points[1].loss_by_loops: every entry is [loops >= 1, loss > 0]"),
    (("points", 0, "accuracy", 0, "split"), "test", "points[0].accuracy[0].split: 'test', but difficulty 2 is a train"),
    (("points", 0, "accuracy", 0, "difficulty"), 99, "points[0].accuracy[0].difficulty: 99 is not one of the task's"),
    (("points", 0, "accuracy", 1, "difficulty"), 2, "points[0].accuracy[1].difficulty: duplicate difficulty 2"),
    (("points", 0, "accuracy", 0, "accuracy_max_loops"), 0.5, "a model that does not loop has no loop counts"),
    (("points", 20, "loss"), 1.0, "points[20].loss: must be null for a diverged point"),
    (("points", 20, "accuracy"), DOC["points"][1]["accuracy"], "points[20].accuracy: must be empty for a diverged"),
    (("points", 20, "seed"), 0, "points[20]: duplicate point 'rdt-w40-r4' at seed 0 (also points[19])"),
    (("points", 0, "seed"), 5, "points[0].seed: 5 is not listed in the top-level seeds"),
    (("scale", "headline_loops"), 2, "scale.headline_loops: 2 is below the largest training loop count"),
    (("config", "scale", "loop_counts"), [1, 2], "scale.headline_loops: 4 is not the largest of config.scale"),
    (("seeds",), [0, 1, 2, 2], "seeds: duplicate seed 2"),
    (("task", "fingerprint"), "abc", "task.fingerprint: 'abc' does not match"),
    (("environment", "python"), DELETE, "environment.python: required field is missing"),
])
def test_semantic_rules(path: tuple, value: Any, message: str) -> None:
    problems = check_schema(mutated(DOC, path, value))
    assert any(message in p for p in problems), problems


def test_every_problem_of_a_point_is_reported_and_only_those() -> None:
    """A diverged point with numbers and an unknown seed has both problems; a standard point with a loss-vs-loops
    curve has one (its loops are null), not a second about a missing entry at loop count null."""
    diverged = mutated(mutated(DOC, ("points", 20, "seed"), 5), ("points", 20, "loss_by_loops"), [[1, 0.5]])
    assert [p for p in check_schema(diverged) if p.startswith("points[20]")] == [
        "points[20].seed: 5 is not listed in the top-level seeds",
        "points[20].loss_by_loops: must be null for a diverged point"]
    curved = mutated(DOC, ("points", 0, "loss_by_loops"), [[1, DOC["points"][0]["loss"]]])
    assert [p for p in check_schema(curved) if p.startswith("points[0]")] == [
        "points[0].loops: null, but the point has a looped part (params.recurrent or loss_by_loops)"]


def test_a_partial_ladder_without_points_at_its_largest_loop_count_is_valid() -> None:
    """An interrupted ladder may hold rdt points at r = 2 only; its headline is still the configured largest."""
    doc = copy.deepcopy(DOC)
    doc["config"]["scale"]["loop_counts"] = list(LOOPS)
    doc["points"] = [p for p in doc["points"] if p["loops"] != max(LOOPS)]
    doc["fits"] = compute_fits(doc["points"], 20, max(LOOPS))
    doc["notes"], doc["status"] = [], "incomplete"
    assert check_schema(doc) == []


def test_kind_and_version_are_checked_first() -> None:
    assert check_schema({**DOC, "kind": "sweep"}) == [
        "kind: 'sweep' is not a known kind for schema_version 1 (known: 'run', 'scale')"]
    assert check_schema({**DOC, "schema_version": 7})[0].startswith("schema_version: 7 is not a known schema")
    assert check_schema({**DOC, "schema_version": 2}) == [
        "kind: 'scale' is not a known kind for schema_version 2 (known: 'run')"]
    assert "models: required field is missing" in check_schema({**DOC, "kind": "run"})


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(REQUIRED))
def test_any_required_field_deleted_is_reported_by_name(path: tuple) -> None:
    name = dotted(path)
    assert any(p.startswith(f"{name}: ") and "missing" in p for p in check_schema(mutated(DOC, path, DELETE)))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(NUMERIC), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_non_finite_number_anywhere_is_rejected_with_its_path(path: tuple, value: float) -> None:
    literal = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    parsed = parse_json_bytes(json.dumps(mutated(DOC, path, value)).encode())
    assert f"{dotted(path)}: {literal} is not allowed; every number must be finite" in check_schema(parsed)


def test_the_schema_document_names_every_scale_field() -> None:
    doc = DOC_PATH.read_text()
    schema = ScaleFileV1.model_json_schema()
    names = {k for spec in [schema, *schema["$defs"].values()] for k in spec["properties"]}
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"docs/results-schema.md does not mention {missing}"


def test_the_scale_schema_imports_on_its_own() -> None:
    code = ("import mythbench.results.scale_model as s, mythbench.results.schema as r; "
            "assert r.check_schema([]) and s.ScaleFileV1")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- verify and submit


def _write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_verify_accepts_scale_results_beside_run_results(tmp_path: Path) -> None:
    _write(tmp_path / "reference" / "scale" / "toy" / "results.json", DOC)
    _write(tmp_path / "reference" / "toy" / "results.json", make_results(seeds=(0,), preset="quick"))
    assert verify(tmp_path) == []
    assert verify(tmp_path / "reference" / "scale" / "toy" / "results.json") == []
    _write(tmp_path / "reference" / "scale" / "toy" / "results.json", mutated(DOC, ("points", 0, "loss"), -1.0))
    assert verify(tmp_path) == ["reference/scale/toy/results.json: points[0].loss: -1.0 is not > 0"]


def test_submit_refuses_a_valid_scale_file_and_writes_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path / "results.json", DOC)
    asked: list[str] = []

    def lookup(name: str):
        asked.append(name)
        return fake_lookup(name)

    with pytest.raises(ConfigError) as err:
        submit(path, tmp_path / "results", "alice", lookup)
    assert len(err.value.problems) == 1 and "only run results" in err.value.problems[0]
    assert re.match(r"kind: 'scale' is a `mythbench scale` results file", err.value.problems[0])
    assert not (tmp_path / "results").exists() and asked == []
    assert check_submittable(DOC) == err.value.problems


def test_verify_refuses_a_scale_file_stored_as_a_submission(tmp_path: Path) -> None:
    _write(tmp_path / "submissions" / "toy" / f"{content_hash(DOC)}.json", DOC)
    assert any("only run results" in p for p in verify(tmp_path))


@pytest.mark.parametrize("section", ["abc", {"loop_counts": "abc"}, {"loop_counts": ["a"]}, None])
def test_a_config_scale_section_that_is_not_a_loop_list_falls_back_to_the_points(section: Any) -> None:
    """config is free-form: a section of any shape is no crash, and the headline is checked against the points."""
    doc = mutated(DOC, ("config", "scale"), section)
    assert check_schema(doc) == []
    assert check_schema(mutated(doc, ("scale", "headline_loops"), 2)) == [
        "scale.headline_loops: 2 is below the largest training loop count of the looped points, 4"]


def test_a_learning_rate_is_chosen_once_per_family_width_and_loop_count() -> None:
    row = {"family": "rdt", "width": 16, "loops": 2, "lr": 0.01, "seeds": [0], "validation_loss": 0.5, "chosen": True}
    table = [row, {**row, "lr": 0.02, "chosen": False}, {**row, "loops": 4}, {**row, "width": 32},
             {**row, "family": "standard", "loops": None}]
    assert check_schema({**DOC, "lr_selection": table}) == []
    assert check_schema({**DOC, "lr_selection": [*table, {**row, "lr": 0.03}, {**row, "lr": 0.04}]}) == [
        f"lr_selection[{i}]: a second chosen learning rate for ['rdt', 16, 2] (also lr_selection[0])" for i in (5, 6)]


def test_a_laws_domain_replicates_and_band_are_checked_at_their_edges() -> None:
    law = ("fits", "matched_tokens", "families", "rdt")
    edges = copy.deepcopy(DOC)
    rdt = edges["fits"]["matched_tokens"]["families"]["rdt"]
    rdt["domain"]["N"] = [5000.0, 5000.0]  # a one-point domain is ordered
    rdt["n_failed"] = 2  # the replicates are of the fits that succeeded
    rdt["replicates"] = {k: v[:18] for k, v in rdt["replicates"].items()}
    rdt["band"]["low"] = list(rdt["band"]["high"])  # an interval of zero width
    assert check_schema(edges) == []
    where = "fits.matched_tokens.families.rdt"
    short = mutated(edges, (*law, "replicates", "alpha"), rdt["replicates"]["alpha"][:17])
    assert check_schema(short) == [f"{where}.replicates.alpha: 17 values, not n_bootstrap - n_failed = 18"]
    ragged = mutated(edges, (*law, "band", "high"), [*rdt["band"]["high"], 1.0])  # x and low agree, high does not
    assert check_schema(ragged) == [f"{where}.band: x, low and high differ in length"]
    crossed = mutated(edges, (*law, "band", "low"), [h + 1.0 for h in rdt["band"]["high"]])
    assert check_schema(crossed) == [f"{where}.band: low is above high somewhere"]
