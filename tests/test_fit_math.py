"""The arithmetic under the fits and intervals, checked from outside: every law's analytic Jacobian against
finite differences (a wrong one still converges, to a worse optimum, so only this sees it), and every
percentile interval at the level it is asked for."""

from __future__ import annotations

import numpy as np
import pytest

from mythbench.analysis import fits
from mythbench.analysis.fit_engine import Interval, Law, check_inputs, percentile_interval
from mythbench.analysis.stats import bootstrap_mean_interval
from mythbench.core.errors import ConfigError

N = [1e4, 3e4, 1e5, 3e5, 1e6]
LOSS = [3.1, 2.7, 2.4, 2.25, 2.15]
N_ONCE, N_REC, R = np.array([2e3, 2e3, 5e3, 5e3, 9e3]), np.array([1e4, 1e4, 3e4, 3e4, 6e4]), np.array([1, 4, 2, 8, 3])
T = np.array([1, 2, 4, 8, 16])
LAWS = {  # law name -> a call of its fit function on data it accepts
    "power_law": lambda: fits.fit_power_law(N, LOSS, n_bootstrap=0),
    "loop_worth": lambda: fits.fit_loop_worth(N_ONCE, N_REC, R, [3.0, 2.6, 2.5, 2.2, 2.1], n_bootstrap=0),
    "test_time": lambda: fits.fit_test_time(T, [3.0, 2.6, 2.3, 2.2, 2.18], n_bootstrap=0),
}
FORMULAS = {  # law name -> its loss at the raw inputs above, from its parameters in natural units
    "power_law": lambda e, a, alpha: e + a * np.array(N) ** -alpha,
    "loop_worth": lambda e, a, alpha, phi: e + a * (N_ONCE + R**phi * N_REC) ** -alpha,
    "test_time": lambda l_inf, l_0, tau: l_inf + (l_0 - l_inf) * np.exp(-T / tau),
}


def _law_and_inputs(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Law, np.ndarray]:
    """The Law object and transformed inputs a fit function hands to the engine."""
    seen: list[tuple[Law, np.ndarray]] = []
    monkeypatch.setattr(fits, "fit_law", lambda law, x, *args: seen.append((law, x)))
    LAWS[name]()
    ((law, x),) = seen
    return law, x


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_laws_jacobian_matches_finite_differences(name, monkeypatch):
    law, x = _law_and_inputs(name, monkeypatch)
    rng = np.random.default_rng(0)
    thetas = [*law.grid[:: max(1, len(law.grid) // 8)], *(g + rng.normal(0, 0.3, g.shape) for g in law.grid[:4])]
    eps = 1e-6
    for theta in thetas:
        _, jac = law.model(theta, x)
        for j in range(len(theta)):
            step = np.zeros_like(theta)
            step[j] = eps
            numeric = (law.model(theta + step, x)[0] - law.model(theta - step, x)[0]) / (2 * eps)
            np.testing.assert_allclose(jac[:, j], numeric, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{name}: d/d{law.names[j]} at {theta}")


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_laws_prediction_is_its_formula_in_natural_units(name, monkeypatch):
    """The engine fits log L in its own coordinates (log-scale parameters, inputs divided by a reference size);
    mapped back by the law's `natural`, each point of the start grid predicts the documented formula."""
    law, x = _law_and_inputs(name, monkeypatch)
    for theta in law.grid[:: max(1, len(law.grid) // 10)]:
        np.testing.assert_allclose(law.model(theta, x)[0], np.log(FORMULAS[name](*law.natural(theta))),
                                   rtol=1e-10, err_msg=f"{name} at {theta}")


def _central(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central percentile interval at `level`, by its definition."""
    tail = (1 - level) / 2
    return float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail))


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_a_percentile_interval_is_at_its_level(level):
    samples = np.arange(1001.0)  # the q-quantile of 0..1000 is 1000 q
    got = percentile_interval(samples, level, n_boot=1001, n_failed=0)
    assert (got.low, got.high) == pytest.approx((500 * (1 - level), 1000 - 500 * (1 - level)))


def test_a_percentile_interval_says_why_it_has_no_end():
    """No bootstrap; too few successes (fewer than 10, or than 80% of the replicates); an infinite share of the
    replicates at an end (read from the samples, not interpolated towards inf); every replicate the same."""
    values = np.arange(40.0)
    assert percentile_interval(values, 0.9, 0, 0) == Interval(None, None, "no bootstrap requested")
    assert percentile_interval(values[:9], 0.9, 9, 0) == Interval(
        None, None, "only 9 of 9 bootstrap fits succeeded (need 80% and at least 10)")
    assert percentile_interval(values[:31], 0.9, 40, 9) == Interval(
        None, None, "only 31 of 40 bootstrap fits succeeded (need 80% and at least 10)")
    assert percentile_interval(values[:32], 0.9, 40, 8).available  # 32 of 40 is 80%
    assert percentile_interval(values[:10], 0.9, 10, 0).available  # 10 of 10
    tail = np.concatenate([values[:30], np.full(10, np.inf)])  # a quarter infinite: the 95% quantile is inf
    assert percentile_interval(tail, 0.9, 40, 0) == Interval(1.0, None, "high end unbounded: 25% of replicates "
                                                                        "are infinite")
    both = np.concatenate([np.full(10, -np.inf), values[:20], np.full(10, np.inf)])
    assert percentile_interval(both, 0.9, 40, 0) == Interval(None, None, "low and high end unbounded: 50% of "
                                                                         "replicates are infinite")
    assert percentile_interval(np.full(20, 2.5), 0.9, 20, 0) == Interval(
        None, None, "degenerate: every bootstrap replicate gives 2.5 (parameter at a bound, or resamples "
        "identical to the data)")


def test_check_inputs_names_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        check_inputs({"N": [1.0, 0.0, np.nan], "L": [2.0, -1.0], "r": [-1.0, 0.0, 1.0]}, {"N", "L"}, 3, 1, "law")
    assert err.value.problems == [
        "mismatched lengths: {'N': 3, 'L': 2, 'r': 3}", "N contains NaN or inf", "N must be positive; got [0.0]",
        "L must be positive; got [-1.0]", "r must be non-negative; got [-1.0]",
        "2 points, fewer than the 3 parameters of the law"]
    with pytest.raises(ConfigError) as err:
        check_inputs({"N": [1.0, 1.0, 2.0], "r": [0.0, 0.0, 0.0]}, {"N"}, 3, 2, "law")
    assert err.value.problems == ["only 2 distinct inputs; the law needs at least 3"]
    assert [list(a) for a in check_inputs({"N": [3, 4, 5]}, {"N"}, 3, 3, "law")] == [[3.0, 4.0, 5.0]]


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_fitted_intervals_bands_and_the_n_eq_interval_are_at_the_fit_level(level):
    rdt = fits.fit_power_law(N, [3.0, 2.6, 2.35, 2.2, 2.1], n_bootstrap=40, level=level, seed=1)
    std = fits.fit_power_law(N, LOSS, n_bootstrap=40, level=level, seed=2)
    for j, name in enumerate(std.params):
        assert (std.intervals[name].low, std.intervals[name].high) == pytest.approx(
            _central(std.replicates[:, j], level))
    band = std.band()
    assert fits.fit_power_law(N, LOSS, n_bootstrap=0).band() is None  # no replicates, no band
    grid = np.asarray(band["x"])
    low_n, high_n = std.domain["N"]  # 100 sizes from 1.5x below the smallest fitted to 1.5x above the largest
    assert grid == pytest.approx(np.geomspace(low_n / 1.5, high_n * 1.5, 100), rel=1e-12)
    curves = std.replicates[:, :1] + std.replicates[:, 1:2] * grid ** -std.replicates[:, 2:3]
    low, high = zip(*(_central(curves[:, i], level) for i in range(len(grid))), strict=True)
    assert band["low"] == pytest.approx(low) and band["high"] == pytest.approx(high)
    eq = fits.equivalence(rdt, std, 1e5)
    pairs = min(len(rdt.replicates), len(std.replicates))  # replicates are paired by index
    ratios = fits._n_eq(*std.replicates[:pairs].T, fits._power(rdt.replicates[:pairs], 1e5)) / 1e5
    assert (eq.ratio_interval.low, eq.ratio_interval.high) == pytest.approx(_central(ratios, level))


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.95])
def test_the_seed_bootstrap_interval_holds_its_confidence_share_of_resampled_means(confidence):
    """Resampled means (drawn here, with another generator) fall inside the interval at its confidence."""
    values = np.array([0.12, 0.35, 0.41, 0.58, 0.66, 0.71, 0.83, 0.97])
    low, high = bootstrap_mean_interval(values, n_resamples=20000, confidence=confidence, seed=0)
    means = values[np.random.default_rng(1).integers(0, len(values), (20000, len(values)))].mean(1)
    assert np.mean((means >= low) & (means <= high)) == pytest.approx(confidence, abs=0.01)
