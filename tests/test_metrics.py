"""Metrics as plugins: a registered metric is counted by every evaluation, checked by the results model, and
shown beside exact match in summaries, frames, reports and the leaderboard; bad registrations are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hostile.factory import fake_lookup, make_results
from test_eval_counts import MASK, TARGETS, _Predicts

import mythbench
from mythbench.analysis.metrics import METRICS, register_metric
from mythbench.analysis.stats import summarize_model, with_derived
from mythbench.config import EvalConfig
from mythbench.core.errors import ConfigError
from mythbench.results.board import board_rows, columns, read_board, render_markdown
from mythbench.results.leaderboard import submit, verify
from mythbench.results.results_frame import cell_columns, cells_frame
from mythbench.results.schema import check_schema
from mythbench.training.evaluate import evaluate_plain


def _wrong_tokens(pred, targets, mask):
    return int(((pred != targets) & mask).sum()), int(mask.sum())


@pytest.fixture
def token_errors():
    """A plugin metric, registered for one test: scored positions predicted wrong."""
    metric = mythbench.register_metric("token_error", "token_wrong", "token_scored", _wrong_tokens, "err",
                             "scored positions predicted wrong")
    yield metric
    del METRICS[metric.name]


def _written(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _with_counts(doc: dict, hits: int, total: int) -> dict:
    doc = copy.deepcopy(doc)
    for m in doc["models"]:
        for run in m["runs"]:
            for cell in run["cells"]:
                cell |= {"token_wrong": hits, "token_scored": total}
    return doc


def test_a_registered_metric_is_counted_by_the_evaluation_against_a_hand_count(token_errors):
    tokens = np.repeat(np.arange(3)[:, None], 4, axis=1)
    arrays = (tokens, np.array(TARGETS), np.array(MASK, dtype=bool))
    for chunk_size in (1, 2, 3):  # by hand (test_eval_counts): 1 of the 7 scored positions is wrong
        (cell,) = evaluate_plain(_Predicts(), lambda d: arrays, [5], EvalConfig(chunk_size=chunk_size))["cells"]
        assert (cell["token_wrong"], cell["token_scored"]) == (1, 7)
        assert (cell["correct"], cell["n"]) == (2, 3)  # the built-in metrics are still counted


def test_a_registered_metric_is_summarized_tabled_and_put_on_the_board(token_errors):
    doc = _with_counts(make_results(), 3, 12)
    assert check_schema(doc) == []
    derived = with_derived(doc)
    cell = derived["models"][0]["runs"][0]["cells"][0]
    assert cell["token_error"] == 3 / 12
    summary = summarize_model(doc["models"][0], doc["task"]["train_difficulties"], doc["task"]["test_difficulties"])
    assert {s["headline"]["token_error"] for s in summary} == {0.25}
    frame = cells_frame(derived)
    assert "token_error" in cell_columns() and set(frame["token_error"]) == {0.25}
    assert {"err_train", "err_2x", "err_max"} <= set(columns())
    rows = board_rows(doc, "0" * 64, "someone", "2026-12-03")
    assert {r["err_max"] for r in rows} == {"0.25"}
    page = render_markdown(rows, {})
    assert ", err 0.250)" in page  # after tok's value
    assert "*tok* scored positions predicted right, *err* scored positions predicted wrong)" in page


@pytest.mark.parametrize(("hits", "total", "message"), [
    (13, 12, "token_wrong: 13 is more than token_scored = 12"),
    (True, 12, "token_wrong: expected a count"),
    (3, -1, "token_scored: expected a count"),
    (3, None, "token_scored: required field is missing (token_error counts token_wrong of token_scored)"),
])
def test_a_plugin_metrics_counts_are_checked(token_errors, hits, total, message):
    problems = check_schema(_with_counts(make_results(), hits, total))
    assert problems and all(message in p for p in problems), problems


def test_a_version_3_file_storing_a_plugin_metrics_rate_is_refused(token_errors):
    doc = _with_counts(make_results(), 3, 12)
    doc["models"][0]["runs"][0]["cells"][0]["token_error"] = 0.25
    assert check_schema(doc) == ["models[0].runs[0].cells[0].token_error: version 3 stores counts only; it is "
                                 "computed when read"]


def test_a_board_written_before_a_metric_was_registered_still_verifies_and_takes_submissions(tmp_path,
                                                                                          token_errors):
    results = tmp_path / "results"
    del METRICS[token_errors.name]
    old = submit(_written(tmp_path / "old.json", make_results(rng_seed=1)), results, "alice", fake_lookup)
    METRICS[token_errors.name] = token_errors
    before = {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()}
    assert verify(results, fake_lookup) == []  # registering a metric changes nothing on a board without it
    assert all(row["err_max"] == "" for row in read_board(results))

    new = submit(_written(tmp_path / "new.json", _with_counts(make_results(rng_seed=2), 3, 12)), results, "bob",
                 fake_lookup)
    rows = {(r["content_hash"], r["model"]): r for r in read_board(results)}
    assert {r["err_max"] for (digest, _), r in rows.items() if digest == old.content_hash} == {""}
    assert {r["err_max"] for (digest, _), r in rows.items() if digest == new.content_hash} == {"0.25"}
    assert "*err* scored positions predicted wrong" in (results / "LEADERBOARD.md").read_text()
    assert "*err*" not in before["LEADERBOARD.md"].decode()
    assert verify(results, fake_lookup) == []


def test_a_board_missing_part_of_a_metric_or_another_column_is_refused(tmp_path, token_errors):
    for dropped, message in (("err_2x", "missing err_2x"), ("acc_max", "missing acc_max")):
        header = [c for c in columns() if c != dropped]
        (tmp_path / "leaderboard.csv").write_text(",".join(header) + "\n")
        with pytest.raises(ConfigError, match=message):
            read_board(tmp_path)


def test_bad_registrations_are_refused_naming_every_problem():
    before = dict(METRICS)
    with pytest.raises(ConfigError) as err:
        register_metric("accuracy", "correct", "Bad Key", _wrong_tokens, "tok", "clashes everywhere")
    text = "\n".join(err.value.problems)
    for part in ("'Bad Key' is not a lowercase key", "'accuracy' is already used", "'correct' is already used",
                 "short: 'tok' is already the short name of 'token_accuracy'"):
        assert part in text
    with pytest.raises(ConfigError, match="three different keys"):
        register_metric("same", "same", "other", _wrong_tokens, "sm", "name and hits alike")
    with pytest.raises(ConfigError) as err:  # each bad key named by its role; a cell's own fields are taken
        register_metric("Name", "loss", "Tot", _wrong_tokens, "S-", "every key wrong")
    assert err.value.problems == [f"register_metric('Name'): {p}" for p in (
        *(f"{role}: {key!r} is not a lowercase key (letters, digits, _)"
          for role, key in (("name", "Name"), ("total", "Tot"), ("short", "S-"))),
        "'loss' is already used by 'the cell'")]
    for field in ("difficulty", "loops", "loss", "ci_low", "ci_high"):  # every field a cell has
        with pytest.raises(ConfigError) as err:
            register_metric("m", field, "t", _wrong_tokens, "m", "a cell's field as hits")
        assert err.value.problems == [f"register_metric('m'): {field!r} is already used by 'the cell'"]
    with pytest.raises(ConfigError) as err:
        register_metric("m", "Hits", "t", _wrong_tokens, "m", "a bad hits key")
    assert err.value.problems == ["register_metric('m'): hits: 'Hits' is not a lowercase key (letters, digits, _)"]
    assert before == METRICS  # nothing half-registered
