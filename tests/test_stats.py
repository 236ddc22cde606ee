"""Intervals and summaries: known values, edge cells at 0% and 100%, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mythbench.analysis.stats import (
    bootstrap_mean_interval,
    seed_verdict,
    seeds_learned,
    summarize_model,
    summarize_seeds,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (score interval)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (5, 10, 0.2366, 0.7634),
    ],
)
def test_wilson_known_values(correct: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(correct, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_at_zero_and_full() -> None:
    low, high = wilson_interval(0, 100)
    assert low == 0.0
    assert high == pytest.approx(0.0370, abs=1e-4)
    low, high = wilson_interval(100, 100)
    assert high == 1.0
    assert low == pytest.approx(1 - 0.0370, abs=1e-4)


@pytest.mark.parametrize(("correct", "n"), [(-1, 10), (11, 10), (0, 0), (1, -3), (2.5, 10)])
def test_wilson_rejects_bad_counts(correct: float, n: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(correct, n)  # type: ignore[arg-type]


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_proportion_and_mirrors(cn: tuple[int, int]) -> None:
    c, n = cn
    low, high = wilson_interval(c, n)
    assert 0.0 <= low <= c / n <= high <= 1.0
    assert low < high
    mlow, mhigh = wilson_interval(n - c, n)
    assert mlow == pytest.approx(1 - high, abs=1e-12)
    assert mhigh == pytest.approx(1 - low, abs=1e-12)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))), st.integers(2, 20))
def test_wilson_narrows_with_n(cn: tuple[int, int], k: int) -> None:
    c, n = cn
    low, high = wilson_interval(c, n)
    low_k, high_k = wilson_interval(k * c, k * n)
    assert high_k - low_k < high - low


def test_bootstrap_is_deterministic_and_needs_two_values() -> None:
    values = [0.2, 0.5, 0.9, 0.4]
    assert bootstrap_mean_interval(values, seed=3) == bootstrap_mean_interval(values, seed=3)
    assert bootstrap_mean_interval([0.7, 0.7, 0.7]) == (0.7, 0.7)
    for bad in ([], [0.5]):
        with pytest.raises(ValueError):
            bootstrap_mean_interval(bad)
    with pytest.raises(ValueError):
        bootstrap_mean_interval([0.1, math.nan])
    with pytest.raises(ValueError):
        bootstrap_mean_interval(values, confidence=1.0)


@given(st.lists(st.floats(0, 1), min_size=2, max_size=8), st.integers(0, 2**31))
def test_bootstrap_interval_within_data_and_monotone_in_confidence(values: list[float], seed: int) -> None:
    low, high = bootstrap_mean_interval(values, n_resamples=400, seed=seed)
    assert min(values) <= low <= high <= max(values)
    low90, high90 = bootstrap_mean_interval(values, n_resamples=400, confidence=0.90, seed=seed)
    assert low <= low90 <= high90 <= high


def test_bootstrap_covers_mean_of_spread_data() -> None:
    values = list(np.linspace(0.1, 0.9, 9))
    low, high = bootstrap_mean_interval(values)
    assert low < 0.5 < high


def test_summarize_seeds_single_seed_uses_wilson() -> None:
    stats = summarize_seeds([0.5], [(5, 10)])
    assert stats["mean"] == 0.5
    assert stats["std"] == 0.0
    assert (stats["ci_low"], stats["ci_high"]) == wilson_interval(5, 10)
    with pytest.raises(ValueError):
        summarize_seeds([], [])


def test_summarize_seeds_many_seeds_bootstraps() -> None:
    stats = summarize_seeds([0.9, 1.0], [(9, 10), (10, 10)])
    assert stats["mean"] == pytest.approx(0.95)
    assert stats["std"] == pytest.approx(math.sqrt(0.005))
    assert (stats["ci_low"], stats["ci_high"]) == bootstrap_mean_interval([0.9, 1.0])


def _cell(d: int, loops: int | None, correct: int, n: int = 10) -> dict:
    low, high = wilson_interval(correct, n)
    return {"difficulty": d, "loops": loops, "n": n, "correct": correct, "accuracy": correct / n,
            "ci_low": low, "ci_high": high, "token_accuracy": 1.0, "loss": 0.1}


def _rdt_entry() -> dict:
    table = {  # correct (of 10) per difficulty -> loops -> per seed
        2: {1: (5, 7), 2: (9, 10), 3: (8, 8)},
        4: {1: (1, 1), 2: (3, 5), 3: (4, 4)},
    }
    runs = [{"seed": s, "status": "complete",
             "cells": [_cell(d, k, c[i]) for d, by in table.items() for k, c in by.items()]}
            for i, s in enumerate((0, 1))]
    runs.append({"seed": 2, "status": "diverged", "cells": [_cell(2, 2, 0), _cell(4, 2, 0)]})
    return {"name": "rdt", "family": "rdt", "train_loops": 2, "runs": runs[::-1]}


def test_summarize_model_hand_computed() -> None:
    summary = summarize_model(_rdt_entry(), [2], [4])
    assert [e["difficulty"] for e in summary] == [2, 4]
    d2, d4 = summary
    assert d2["split"] == "train" and d4["split"] == "test"
    assert d2["acc_at_train_loops"]["mean"] == pytest.approx(0.95)
    assert d2["acc_at_train_loops"]["std"] == pytest.approx(math.sqrt(0.005))
    assert d2["oracle_best"]["loops"] == 2 and d2["oracle_best"]["mean"] == pytest.approx(0.95)
    assert d2["acc_at_max_loops"]["mean"] == pytest.approx(0.8)
    assert d2["overthinking_drop"] == pytest.approx(0.15)
    # ties go to the smaller loop count; the diverged seed's zeros are ignored
    assert d4["oracle_best"]["loops"] == 2 and d4["oracle_best"]["mean"] == pytest.approx(0.4)
    assert d4["overthinking_drop"] == pytest.approx(0.0)
    assert (d4["oracle_best"]["ci_low"], d4["oracle_best"]["ci_high"]) == bootstrap_mean_interval([0.3, 0.5])


def test_summarize_model_standard_and_single_seed() -> None:
    entry = {"name": "std", "family": "standard", "train_loops": None,
             "runs": [{"seed": 0, "status": "complete", "cells": [_cell(2, None, 7), _cell(5, None, 0)]}]}
    summary = summarize_model(entry, [2, 5], [5, 8])
    assert [(e["difficulty"], e["split"]) for e in summary] == [(2, "train"), (5, "train")]
    low, high = wilson_interval(0, 10)
    assert summary[1]["acc_at_train_loops"] == {"mean": 0.0, "std": 0.0, "ci_low": low, "ci_high": high,
                                             "token_accuracy": 1.0}
    assert summary[1]["oracle_best"]["loops"] is None
    assert summary[1]["overthinking_drop"] == 0.0


def test_summarize_model_ignores_loop_counts_missing_for_some_seed() -> None:
    entry = _rdt_entry()
    entry["runs"][-1]["cells"].append(_cell(2, 5, 10))  # only seed 0 has loops=5
    d2 = summarize_model(entry, [2], [4])[0]
    assert d2["oracle_best"]["loops"] == 2
    assert d2["acc_at_max_loops"]["mean"] == pytest.approx(0.8)


def test_summarize_model_rejects_undeclared_difficulty() -> None:
    with pytest.raises(ValueError, match="undeclared"):
        summarize_model(_rdt_entry(), [2], [8])


def test_summarize_model_all_diverged_is_empty() -> None:
    entry = {"name": "x", "train_loops": 2, "runs": [{"seed": 0, "status": "diverged", "cells": []}]}
    assert summarize_model(entry, [2], [4]) == []


def test_the_headline_is_the_loop_rules_count_at_each_difficulty() -> None:
    entry = {**_rdt_entry(), "loop_rule": {"name": "difficulty", "loops": {"2": 3, "4": 1}}}
    d2, d4 = summarize_model(entry, [2], [4])
    assert d2["headline"] == {**d2["acc_at_max_loops"], "loops": 3}  # 3 is also the largest loop count
    assert d2["headline"]["mean"] == pytest.approx(0.8)
    assert (d4["headline"]["loops"], d4["headline"]["mean"]) == (1, pytest.approx(0.1))
    assert summarize_model(_rdt_entry(), [2], [4])[0]["headline"] is None  # no rule: no headline


def _seeds(*rows: tuple[int, str, dict[tuple[int, int], int]]) -> list[dict]:
    """Runs from (seed, status, {(difficulty, loops): correct of 10})."""
    return [{"seed": seed, "status": status, "cells": [_cell(d, k, c) for (d, k), c in cells.items()]}
            for seed, status, cells in rows]


def test_a_seed_learned_when_it_reaches_0_9_at_the_hardest_evaluated_training_difficulty_under_the_rule() -> None:
    runs = _seeds((2, "complete", {(1, 2): 0, (3, 4): 9, (3, 2): 0, (5, 4): 0}),  # 0.9 at the rule's 4: learned
                  (0, "complete", {(1, 2): 10, (3, 4): 8, (3, 2): 10}),  # 0.8 at 4 (1.0 at d = 1 or 2 loops: no)
                  (1, "diverged", {(3, 4): 10}))  # a diverged seed did not learn, whatever it stored
    entry = {"train_loops": 2, "loop_rule": {"name": "difficulty", "loops": {"3": 4}}, "runs": runs}
    # training difficulties 1-4, of which 3 is the hardest evaluated; 5 is a test difficulty
    assert list(seeds_learned(entry, [1, 2, 3, 4]).items()) == [(0, False), (1, False), (2, True)]
    without_rule = {"train_loops": 2, "runs": runs}  # schema 1: at the training loop count
    assert seeds_learned(without_rule, [1, 2, 3, 4]) == {0: True, 1: False, 2: False}
    assert seeds_learned(entry, [7]) == {}  # no training difficulty evaluated


@pytest.mark.parametrize(("learned", "verdict"), [
    ({}, ""), ({0: True}, "learned"), ({0: False}, "not learned"), ({0: True, 1: True}, "every seed learned"),
    ({0: False, 1: False}, "no seed learned"), ({0: True, 1: False, 2: True}, "seed-fragile (2 of 3 seeds learned)"),
])
def test_the_seed_verdict_names_how_many_seeds_learned(learned: dict[int, bool], verdict: str) -> None:
    assert seed_verdict(learned) == verdict


def _wilson_formula(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The hand-written formula stats.py used before scipy computed the interval."""
    p, z2 = correct / n, z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (0.0 if correct == 0 else max(0.0, center - half)), (1.0 if correct == n else min(1.0, center + half))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 64, 100, 257, 1000, 4096])
def test_scipy_wilson_gives_the_numbers_of_the_former_formula(n: int) -> None:
    for correct in range(0, n + 1, max(1, n // 50)):
        got, want = wilson_interval(correct, n), _wilson_formula(correct, n)
        assert got == pytest.approx(want, abs=1e-12), (correct, n)
    assert wilson_interval(3, 10, z=1.0) == pytest.approx(_wilson_formula(3, 10, z=1.0), abs=1e-12)


@pytest.mark.parametrize("values", [[0.1, 0.5, 0.9], [0.3, 0.3], [0.2, 0.4, 0.6, 0.8, 1.0], [0.0, 1.0, 0.5]])
def test_the_seed_bootstrap_is_scipys_percentile_bootstrap(values: list[float]) -> None:
    from scipy.stats import bootstrap

    for seed in (0, 1, 7):
        ci = bootstrap((np.asarray(values),), np.mean, n_resamples=2000, method="percentile", vectorized=True,
                       rng=np.random.default_rng(seed)).confidence_interval
        assert bootstrap_mean_interval(values, seed=seed) == pytest.approx((ci.low, ci.high), abs=1e-12)
