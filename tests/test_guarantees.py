"""Guarantees that small deliberate bugs once slipped past (issue 15, point 6): each test states the
guarantee from first principles, never from the code under test (the schema's own list of fields, the
accounting's own formula), so weakening the code fails it."""

from __future__ import annotations

import json

import pytest
from hostile.factory import DELETE, fake_lookup, make_results, mutated
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.baselines import matching

from mythbench.core.errors import ConfigError
from mythbench.models.accounting import count_config
from mythbench.models.model import RDTConfig
from mythbench.results.board import budget, columns, read_board, render_markdown
from mythbench.results.leaderboard import submit, verify
from mythbench.results.schema import check_schema

RDT = RDTConfig(vocab_size=8, d_model=32, n_heads=4, train_loops=8)


@pytest.mark.parametrize("ratio", [0.7, 0.97, 1.03, 1.3])
def test_a_baseline_off_its_target_by_more_than_the_tolerance_either_way_is_refused(ratio):
    """The best width reachable still misses: 30% short must fail like 30% over (a signed error passes it)."""
    with pytest.raises(ConfigError, match="cannot match within 2%"):
        matching._match(RDT, (1, 2, 1), lambda cfg: ratio * 1e6, 1e6, matching.PARAM_TOLERANCE, "iso-param")


@pytest.mark.parametrize("ratio", [0.99, 1.01])
def test_a_baseline_within_the_tolerance_is_accepted(ratio):
    assert matching._match(RDT, (1, 2, 1), lambda cfg: ratio * 1e6, 1e6, matching.PARAM_TOLERANCE, "iso-param")


@pytest.mark.parametrize("loops, grad_loops", [(8, 2), (8, 8), (5, 1), (3, 2)])
def test_training_flops_are_a_forward_through_every_loop_and_a_backward_through_the_gradient_loops(loops,
                                                                                                  grad_loops):
    forward = {t: count_config("rdt", RDT, loops=t).flops_forward for t in (1, 2)}
    per_loop = forward[2] - forward[1]
    once = forward[1] - per_loop  # prelude, coda and head: run once per token whatever the loops
    acc = count_config("rdt", RDT, loops=loops, grad_loops=grad_loops)
    assert acc.flops_forward == pytest.approx(once + loops * per_loop)
    backward = 2 * (once + grad_loops * per_loop)  # backward costs twice the forward it differentiates
    assert acc.flops_train == pytest.approx(acc.flops_forward + backward)


# Fields a run's results must have, listed here rather than read from the schema (which could weaken).
MUST_HAVE = [("schema_version",), ("kind",), ("status",), ("task",), ("task", "fingerprint"), ("seeds",),
             ("models",), ("models", 0, "name"), ("models", 0, "family"), ("models", 0, "params"),
             ("models", 0, "runs"), ("models", 0, "runs", 0, "seed"),
             ("models", 0, "runs", 0, "status"), ("models", 0, "runs", 0, "train"),
             ("models", 0, "runs", 0, "cells"), ("models", 0, "runs", 0, "cells", 0, "correct"),
             ("models", 0, "runs", 0, "cells", 0, "n"), ("models", 0, "runs", 0, "cells", 0, "tokens"),
             ("models", 0, "runs", 0, "cells", 0, "token_correct"), ("models", 0, "loop_rule"), ("evaluation",)]


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@pytest.mark.parametrize("path", MUST_HAVE, ids=_dotted)
def test_results_missing_a_required_field_fail_the_schema_verify_and_submit(path, tmp_path):
    doc = mutated(make_results(), path, DELETE)
    problems = check_schema(doc)
    assert any(p.startswith(f"{_dotted(path)}: ") and "missing" in p for p in problems), problems
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_text(json.dumps(doc))
    assert verify(results)
    with pytest.raises(ConfigError):
        submit(results / "results.json", tmp_path / "board", "alice", fake_lookup)


def test_the_leaderboard_lists_the_best_model_at_the_largest_difficulty_first(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(make_results()))
    submit(path, tmp_path / "board", "alice", fake_lookup)
    template = read_board(tmp_path / "board")[0]
    accuracies = {"middling": ("0.5", "0.5"), "worst": ("0.1", "0.9"), "best": ("0.9", "0.2"),
                  "tie-lower-2x": ("0.5", "0.4")}
    rows = [{**template, "model": name, "acc_max": acc_max, "acc_2x": acc_2x, "content_hash": name}
            for name, (acc_max, acc_2x) in accuracies.items()]
    table = [line.split("|")[1].strip() for line in render_markdown(rows, {}).splitlines()
             if line.startswith("| ") and not line.startswith("| model")]
    assert table == ["best", "middling", "tie-lower-2x", "worst"]


def test_the_stored_leaderboard_is_in_that_order_too(tmp_path):
    for seed in (0, 1, 2):
        path = tmp_path / f"r{seed}.json"
        path.write_text(json.dumps(make_results(rng_seed=seed)))
        submit(path, tmp_path / "board", "alice", fake_lookup)
    rows = read_board(tmp_path / "board")
    order = [float(r["acc_max"]) for r in rows]
    lines = (tmp_path / "board" / "LEADERBOARD.md").read_text().splitlines()
    column = next(line for line in lines if line.startswith("| model")).split("|").index(f" d={rows[0]['d_max']} ")
    shown = [line for line in lines if line.startswith("| ") and not line.startswith("| model")]
    assert [f"{a:.3f}" for a in sorted(order, reverse=True)] == [line.split("|")[column].split()[0] for line in shown]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["quick", "standard"]), st.sampled_from([900, 1500]),
                          st.floats(0, 1)), min_size=1, max_size=8))
def test_the_leaderboard_never_ranks_two_budgets_in_one_table(entries):
    """Rows of one test set at different presets or budgets (a quick run, a standard one, a quick run with more
    steps) land in different tables, one per (preset, budget), however their accuracies would rank."""
    template = {c: "" for c in columns()} | {
        "task": "toy", "task_version": "3", "fingerprint": "f" * 64, "d_train": "2", "d_2x": "4", "d_max": "5"}
    rows = [template | {"preset": preset, "budget": budget({"train": {"steps": steps, "batch_size": 64},
                                                           "model": {"d_model": 64}}),
                        "model": f"m{i}", "acc_max": repr(acc), "content_hash": f"h{i}"}
            for i, (preset, steps, acc) in enumerate(entries)]
    tables = render_markdown(rows, {"toy": 3}).split("\n## ")[1:]
    spent = {(preset, steps) for preset, steps, _ in entries}
    assert len(tables) == len(spent)
    for table in tables:
        heading = table.splitlines()[0]
        models = [line.split("|")[1].strip() for line in table.splitlines()
                  if line.startswith("| m") and not line.startswith("| model")]
        assert {(entries[int(m[1:])][0], entries[int(m[1:])][1]) for m in models} == {
            (p, s) for p, s in spent if f"preset {p}: {s} steps" in heading}


def test_a_budget_is_read_from_the_stored_config_and_never_guessed():
    assert budget({"train": {"steps": 900, "batch_size": 64}, "model": {"d_model": 64}}) == (
        "900 steps x 64 batch, d_model 64")
    for config in (None, {}, {"train": {"steps": "900", "batch_size": 64}, "model": {"d_model": 64}},
                   {"train": {"steps": 900, "batch_size": 64}}):
        assert budget(config) == "unrecorded"
