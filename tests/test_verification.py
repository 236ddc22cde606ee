"""What verification must hold however small or however timed: a stored summary number moved by less than 1e-3
never reaches the board, and the same file submitted twice at the same moment lands once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from hostile.factory import as_version_2, fake_lookup, make_results, mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench.core.errors import ConfigError
from mythbench.results import leaderboard
from mythbench.results.board import board_rows, read_board
from mythbench.results.schema import check_schema

BASE = make_results(rng_seed=3)  # three seeds: every summary statistic is over seeds
OLD = as_version_2(BASE)  # a version 2 file stored its summaries
STATS = ("headline", "acc_at_train_loops", "acc_at_max_loops", "oracle_best")
FIELDS = ("mean", "std", "ci_low", "ci_high", "token_accuracy")


def _summary_numbers(doc: dict) -> list[tuple]:
    """The path of every number in every model's summary."""
    paths = []
    for m, model in enumerate(doc["models"]):
        for s, entry in enumerate(model["summary"]):
            paths += [("models", m, "summary", s, stat, f) for stat in STATS if isinstance(entry.get(stat), dict)
                      for f in FIELDS if isinstance(entry[stat].get(f), float)]
            if isinstance(entry.get("overthinking_drop"), float):
                paths.append(("models", m, "summary", s, "overthinking_drop"))
    return paths


NUMBERS = _summary_numbers(OLD)
ROWS = board_rows(OLD, "hash", "alice", "2026-12-01")


def test_the_base_document_is_valid_and_has_multi_seed_summaries():
    assert check_schema(BASE) == [] and check_schema(OLD) == [] and len(BASE["seeds"]) == 3
    assert {p[-1] for p in NUMBERS} == {*FIELDS, "overthinking_drop"}


@settings(max_examples=40, deadline=None)
@given(path=st.sampled_from(NUMBERS), shift=st.floats(1e-8, 1e-3), sign=st.sampled_from([-1, 1]))
def test_a_stored_summary_number_moved_by_less_than_1e_3_never_reaches_the_board(path, shift, sign):
    """Down to 1e-8: the board's numbers are computed from the counts, whatever a file stored beside them."""
    parent = OLD
    for key in path:
        parent = parent[key]
    tampered = mutated(OLD, path, parent + sign * shift)
    assert check_schema(tampered) == [] and board_rows(tampered, "hash", "alice", "2026-12-01") == ROWS


def test_the_same_file_submitted_twice_at_once_lands_once(tmp_path, monkeypatch):
    """Both submits read the board before either writes (a barrier holds them there): the second to take
    the board's lock must see the first one's rows and refuse."""
    src = tmp_path / "results.json"
    src.write_text(json.dumps(BASE))
    results = tmp_path / "board"
    unlocked_reads = threading.Barrier(2, timeout=60)
    real_read = leaderboard.read_board
    first_read_done = threading.local()

    def read_in_step(results_dir: Path) -> list:
        rows = real_read(results_dir)
        if not getattr(first_read_done, "value", False):
            first_read_done.value = True
            unlocked_reads.wait()
        return rows

    monkeypatch.setattr(leaderboard, "read_board", read_in_step)
    outcomes: list[object] = []

    def submit(name: str) -> None:
        try:
            outcomes.append(leaderboard.submit(src, results, name, fake_lookup))
        except ConfigError as e:
            outcomes.append(e)

    workers = [threading.Thread(target=submit, args=(name,)) for name in ("alice", "bob")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    refused = [o for o in outcomes if isinstance(o, ConfigError)]
    assert len(outcomes) == 2 and len(refused) == 1, outcomes
    assert "already on the leaderboard" in str(refused[0])
    monkeypatch.undo()
    rows = read_board(results)
    assert len(rows) == len(BASE["models"]) and len({r["submitter"] for r in rows}) == 1
    assert leaderboard.verify(results, fake_lookup) == []


def test_read_board_is_what_submit_reads():
    """The race test above steps submit through `leaderboard.read_board`; it must be the board's reader."""
    assert leaderboard.read_board is read_board
