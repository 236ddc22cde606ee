"""The zipf family: queries follow the declared Zipf law, the loss floor is the Bayes-optimal loss, and
the two tasks query one table (the label checks against the solver are in test_tasks_labels.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.tasks import FAMILIES, get_task, list_tasks
from mythbench.tasks.zipf import ZipfFacts
from scipy import stats

from mythbench.core.errors import ConfigError

SMALL = {"alphabet": 4, "key_len": 2, "queries": 8, "max_k": 3}  # 16 keys: every rank is drawn often


def query_ranks(family: ZipfFacts, n: int, seed: int) -> np.ndarray:
    """The frequency rank (1 = most frequent) of every query key in `n` instances, decoded from the tokens."""
    batch = family.sample(np.random.default_rng(seed), 1, n)
    a, width = family.params["alphabet"], family.params["key_len"]
    body = batch.tokens[:, 1 + family.params["max_k"] :].reshape(n, family.params["queries"], 2 * width)
    symbols = body[:, :, :width] - family.id("c0")
    keys = (symbols * a ** np.arange(width - 1, -1, -1)).sum(axis=2).ravel()
    rank_of_key = np.empty(family.keys(), dtype=np.int64)
    rank_of_key[family.key_of_rank] = np.arange(1, family.keys() + 1)
    return rank_of_key[keys]


def zipf_chi_square_p(ranks: np.ndarray, keys: int, alpha: float) -> float:
    """Chi-square goodness of fit of the ranks to p_r ∝ r^-alpha, the tail pooled so each bin expects >= 20."""
    expected = np.arange(1, keys + 1, dtype=np.float64) ** -alpha
    expected *= len(ranks) / expected.sum()
    observed = np.bincount(ranks, minlength=keys + 1)[1:].astype(np.float64)
    cut = int(np.argmax(expected < 20)) if (expected < 20).any() else keys
    observed = np.append(observed[:cut], observed[cut:].sum())
    expected = np.append(expected[:cut], expected[cut:].sum())
    return float(stats.chisquare(observed[observed + expected > 0], expected[observed + expected > 0]).pvalue)


@pytest.mark.parametrize("name", ["zipf-recall", "zipf-hops"])
def test_query_keys_follow_the_declared_zipf_exponent(name):
    """The packaged tasks' queries fit rank^-1.5 (chi-square), and the test tells 1.4 and 1.6 from it."""
    family = get_task(name).family
    alpha = family.params["alpha"]
    ranks = query_ranks(family, 20_000, seed=0)  # 320,000 queries
    assert zipf_chi_square_p(ranks, family.keys(), alpha) > 1e-3
    for wrong in (alpha - 0.1, alpha + 0.1):
        assert zipf_chi_square_p(ranks, family.keys(), wrong) < 1e-6


@settings(max_examples=10, deadline=None)
@given(alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0]), seed=st.integers(0, 2**32 - 1))
def test_zipf_law_holds_for_any_exponent(alpha, seed):
    family = ZipfFacts(SMALL | {"alpha": alpha, "table_seed": seed % 1000})
    ranks = query_ranks(family, 2_000, seed)
    assert zipf_chi_square_p(ranks, family.keys(), alpha) > 1e-6  # a false alarm once in a million draws


def bayes_loss_per_token(family: ZipfFacts, difficulty: int, n: int, seed: int) -> tuple[float, float]:
    """Monte Carlo estimate (mean, standard error) of the Bayes predictor's loss per scored token: it knows
    the table (the solver's answer) and the noise rate, and nothing about which symbols the noise hit."""
    noise, a = family.params["noise"], family.params["alphabet"]
    batch = family.sample(np.random.default_rng(seed), difficulty, n)
    losses = []
    for row in range(n):
        solution = family.solve([family.vocab[t] for t in batch.tokens[row]])
        for position in np.flatnonzero(batch.mask[row]):
            right = family.vocab[batch.targets[row, position]] == solution.targets[position]
            losses.append(-math.log(1 - noise + noise / a if right else noise / a))
    values = np.asarray(losses)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


@pytest.mark.parametrize("noise, alphabet", [(0.05, 4), (0.3, 4), (0.2, 16), (0.9, 2)])
def test_loss_floor_is_the_monte_carlo_bayes_loss(noise, alphabet):
    family = ZipfFacts(SMALL | {"alphabet": alphabet, "noise": noise})
    for k in (1, 3):
        mean, error = bayes_loss_per_token(family, k, 1_500, seed=k)
        assert abs(mean - family.loss_floor(k)) < 4 * error, (noise, alphabet, k, mean, family.loss_floor(k))


def test_noise_hits_the_declared_share_of_labels():
    """A label equals the solver's answer with probability 1 - noise + noise / alphabet, and noise changes
    nothing but the scored labels."""
    clean, noisy = ZipfFacts(SMALL), ZipfFacts(SMALL | {"noise": 0.3})
    a, b = clean.sample(np.random.default_rng(5), 2, 4_000), noisy.sample(np.random.default_rng(5), 2, 4_000)
    assert (a.tokens == b.tokens).all() and (a.mask == b.mask).all()
    agree = (a.targets == b.targets)[a.mask].mean()
    assert abs(agree - (1 - 0.3 + 0.3 / 4)) < 0.01  # 96,000 labels: standard error 0.0014


def test_noiseless_floor_is_zero_and_the_bayes_loss_is_zero():
    family = ZipfFacts(SMALL)
    assert family.loss_floor(2) == 0.0 and bayes_loss_per_token(family, 2, 200, seed=0) == (0.0, 0.0)
    assert ZipfFacts(SMALL | {"noise": 0.999999}).loss_floor(1) == pytest.approx(math.log(4), rel=1e-4)


@pytest.mark.parametrize("name", list_tasks())
def test_every_packaged_task_states_its_floor(name):
    """Every packaged task's labels are a function of its input: the floor is 0 at every difficulty."""
    task = get_task(name)
    assert all(task.loss_floor(d) == 0.0 for d in task.spec.train_difficulties + task.spec.test_difficulties)
    with pytest.raises(ConfigError, match="outside the supported range"):
        task.loss_floor(0)


def test_recall_and_hops_query_one_table():
    """zipf-hops composes the facts zipf-recall stores: the same keys, frequencies and table, so at k = 1
    the two tasks label every query alike."""
    recall, hops = get_task("zipf-recall").family, get_task("zipf-hops").family
    assert (recall.table == hops.table).all() and (recall.key_of_rank == hops.key_of_rank).all()
    assert sorted(recall.table.tolist()) == list(range(recall.keys()))  # a permutation: f^k never collapses
    r, h = recall.sample(np.random.default_rng(3), 1, 200), hops.sample(np.random.default_rng(3), 1, 200)
    assert (r.targets[:, 2:] == h.targets[:, 1 + hops.params["max_k"] :]).all()


def test_every_hop_changes_the_answer_almost_always():
    """k really is the number of lookups: f^(k+1)(key) = f^k(key) only at f's fixed points, which a random
    permutation of 4096 keys has about one of."""
    task = get_task("zipf-hops")
    for k in task.spec.test_difficulties[:-1]:
        after = task.family.sample(np.random.default_rng(0), k + 1, 100)
        this = task.family.sample(np.random.default_rng(0), k, 100)
        same = (this.targets == after.targets)[this.mask].reshape(-1, task.family.params["key_len"]).all(axis=1)
        assert same.mean() < 0.01


def test_bad_params_are_all_reported():
    with pytest.raises(ConfigError) as err:
        FAMILIES["zipf"]({"alphabet": 64, "key_len": 8, "alpha": -1.0, "noise": 1.0, "queries": 0})
    text = "\n".join(err.value.problems)
    assert "params.queries: 0 is below the minimum 1" in text
    with pytest.raises(ConfigError) as err:
        FAMILIES["zipf"]({"alphabet": 64, "key_len": 8, "alpha": -1.0, "noise": 1.0})
    text = "\n".join(err.value.problems)
    for needle in ("keys, more than the", "params.alpha: -1.0 is outside [0, 8]",
                   "params.noise: 1.0 is outside [0, 1)"):
        assert needle in text
    with pytest.raises(ConfigError, match="params.noise: expected float, got int"):
        FAMILIES["zipf"]({"noise": 0})
