"""Scaling fits: parameter recovery with honest intervals, loud rejection of bad input, and N_eq algebra."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench.analysis.fits import (
    FitResult,
    equivalence,
    extrapolate_equivalence,
    fit_loop_worth,
    fit_power_law,
    fit_results,
    fit_test_time,
    format_fit_table,
)
from mythbench.core.errors import ConfigError

NOISE = 0.015  # multiplicative lognormal noise, like seed-to-seed spread of small runs


def _noisy(loss: np.ndarray, seed: int) -> np.ndarray:
    return loss * np.exp(np.random.default_rng(seed).normal(0.0, NOISE, loss.shape))


def _power_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.repeat(np.logspace(4, 7, 8), 3)  # 3 seeds per size: the bootstrap resamples within sizes
    return n, _noisy(1.8 + 400.0 * n**-0.3, seed)


def _loop_data(seed: int) -> tuple[np.ndarray, ...]:
    once, loops = np.meshgrid([2e4, 5e4, 1e5, 3e5, 1e6], [1, 2, 4, 8, 16])
    once, loops = once.ravel(), loops.ravel().astype(float)
    rec = 2 * once
    return once, rec, loops, _noisy(1.5 + 300.0 * (once + loops**0.46 * rec) ** -0.3, seed)


def _hand_law(e: float, a: float, alpha: float, reps: np.ndarray | None = None) -> FitResult:
    """A power-law result with chosen parameters, to test the N_eq algebra without fitting noise."""
    reps = np.empty((0, 3)) if reps is None else reps
    return FitResult("power_law", {"E": e, "A": a, "alpha": alpha}, {}, 0.95, 10, len(reps), 0, 0.0,
                     {"N": (1e4, 1e7)}, reps)


def _coverage_and_error(fits: list[FitResult], key: str, true: float) -> tuple[float, float]:
    ivs = [f.intervals[key] for f in fits]
    inside = [iv.available and iv.low <= true <= iv.high for iv in ivs]
    return float(np.mean(inside)), float(np.median([abs(f.params[key] - true) / true for f in fits]))


def test_power_law_recovers_parameters_with_covering_intervals() -> None:
    fits = [fit_power_law(*_power_data(s), n_bootstrap=100, seed=s) for s in range(20)]
    coverage, err = _coverage_and_error(fits, "alpha", 0.3)
    assert coverage >= 0.7
    assert err < 0.05
    e_coverage, e_err = _coverage_and_error(fits, "E", 1.8)  # the floor is the least constrained parameter
    assert e_coverage >= 0.7 and e_err < 0.15
    assert all(f.n_failed == 0 and f.n_points == 24 and f.rmse_log < 3 * NOISE for f in fits)


def test_loop_worth_recovers_phi() -> None:
    fits = [fit_loop_worth(*_loop_data(s), n_bootstrap=100, seed=s) for s in range(10)]
    coverage, err = _coverage_and_error(fits, "phi", 0.46)
    assert coverage >= 0.7
    assert err < 0.1
    assert _coverage_and_error(fits, "alpha", 0.3)[1] < 0.1


def test_test_time_curve_recovers_tau_and_endpoints() -> None:
    loops = np.repeat(np.arange(1.0, 17.0), 2)
    fits = [fit_test_time(loops, _noisy(1.2 + 1.8 * np.exp(-loops / 3.0), s), n_bootstrap=100, seed=s)
            for s in range(15)]
    coverage, err = _coverage_and_error(fits, "tau", 3.0)
    assert coverage >= 0.7
    assert err < 0.1
    assert _coverage_and_error(fits, "L_inf", 1.2)[1] < 0.03
    assert _coverage_and_error(fits, "L_0", 3.0)[1] < 0.05


def test_degenerate_input_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as exc:
        fit_power_law([1e3, -5.0, float("nan")], [1.0, 0.0])
    text = " | ".join(exc.value.problems)
    assert len(exc.value.problems) == 5, text
    for fragment in ("mismatched lengths", "N contains NaN", "N must be positive", "loss must be positive",
                     "fewer than the 3 parameters"):
        assert fragment in text
    with pytest.raises(ConfigError, match="only 1 distinct inputs"):
        fit_power_law([1e4] * 5, [2.0, 2.1, 2.2, 2.3, 2.4])
    with pytest.raises(ConfigError, match="2 distinct loop counts"):
        fit_loop_worth([1e4, 2e4, 3e4, 4e4], [1e4, 2e4, 3e4, 4e4], [4, 4, 4, 4], [3.0, 2.8, 2.7, 2.6])
    with pytest.raises(ConfigError) as exc:
        fit_power_law([1e4, 1e5, 1e6], [3.0, 2.5, 2.2], level=1.5, n_bootstrap=-1)
    assert len(exc.value.problems) == 2
    with pytest.raises(ConfigError, match="loss contains NaN or inf"):
        fit_test_time([1, 2, 3, 4], [3.0, 2.5, float("inf"), 2.0])


def test_too_many_failed_bootstrap_fits_make_intervals_unavailable() -> None:
    n = np.array([1e4, 1e5, 1e6])  # exactly as many points as parameters: most resamples cannot be fitted
    fit = fit_power_law(n, 1.8 + 400.0 * n**-0.3, n_bootstrap=50)
    assert fit.n_failed > 10
    for iv in fit.intervals.values():
        assert not iv.available and iv.low is None and iv.high is None
        assert "bootstrap fits succeeded" in iv.reason
    json.dumps(fit.to_dict(), allow_nan=False)


def test_identical_resamples_report_degenerate_interval_not_zero_width() -> None:
    n = np.repeat(np.logspace(4, 7, 5), 2)
    fit = fit_power_law(n, 1.8 + 400.0 * n**-0.3, n_bootstrap=20)  # exact duplicates: resample = data
    assert fit.n_failed == 0
    assert all(not iv.available and iv.reason.startswith("degenerate") for iv in fit.intervals.values())
    no_boot = fit_power_law(n, 1.8 + 400.0 * n**-0.3, n_bootstrap=0)
    assert all(iv.reason == "no bootstrap requested" for iv in no_boot.intervals.values())


def test_identical_laws_give_ratio_one() -> None:
    n, loss = _power_data(0)
    rdt = fit_power_law(n, loss, n_bootstrap=100, seed=1)
    std = fit_power_law(n, loss, n_bootstrap=100, seed=2)  # other resamples, so the interval has width
    eq = equivalence(rdt, std, 1e5)
    assert eq.ratio == pytest.approx(1.0, rel=1e-9)
    assert eq.ratio_interval.available and eq.ratio_interval.low <= 1.0 <= eq.ratio_interval.high
    assert not eq.extrapolated and not eq.unbounded


def test_known_shift_gives_analytic_ratio() -> None:
    n = np.logspace(4, 7, 10)
    k, e, a, alpha = 1.7, 1.8, 400.0, 0.3
    std = fit_power_law(n, e + a * n**-alpha, n_bootstrap=0)
    rdt = fit_power_law(n, e + a * (k * n) ** -alpha, n_bootstrap=0)  # the RDT at N does what std does at kN
    assert equivalence(rdt, std, 3e5).ratio == pytest.approx(k, rel=1e-3)
    # different exponents: compare with the closed form N_eq = (A_s / (L_r(N) - E_s))^(1/alpha_s)
    rdt_h, std_h = _hand_law(1.9, 250.0, 0.35), _hand_law(1.8, 400.0, 0.3)
    loss = 1.9 + 250.0 * 2e5**-0.35
    eq = equivalence(rdt_h, std_h, 2e5)
    assert eq.loss_rdt == pytest.approx(loss)
    assert eq.n_eq == pytest.approx((400.0 / (loss - 1.8)) ** (1 / 0.3), rel=1e-12)
    assert eq.ratio == pytest.approx(eq.n_eq / 2e5)


def test_rdt_loss_below_standard_floor_is_unbounded_and_says_so() -> None:
    rng = np.random.default_rng(0)
    # some replicates put the RDT's loss above the standard floor (finite N_eq), most below it (infinite)
    reps_r = np.column_stack([rng.uniform(1.0, 1.85, 100), np.full(100, 4.0), np.full(100, 0.3)])
    reps_s = np.column_stack([np.full(100, 1.8), np.full(100, 400.0), np.full(100, 0.3)])
    eq = equivalence(_hand_law(1.2, 4.0, 0.3, reps_r), _hand_law(1.8, 400.0, 0.3, reps_s), 1e7)
    assert eq.unbounded and eq.n_eq is None and eq.ratio is None
    assert "unbounded" in eq.note and "irreducible" in eq.note
    iv = eq.ratio_interval
    assert iv.low is not None and math.isfinite(iv.low)
    assert iv.high is None and "high end unbounded" in iv.reason
    json.dumps(eq.to_dict(), allow_nan=False)


def test_extrapolation_is_flagged_and_refused_inside_range() -> None:
    rdt, std = _hand_law(1.8, 300.0, 0.3), _hand_law(1.8, 400.0, 0.3)
    eq = extrapolate_equivalence(rdt, std, 770e6)
    assert eq.extrapolated and "extrapolation" in eq.note
    assert eq.ratio == pytest.approx((400.0 / 300.0) ** (1 / 0.3))
    with pytest.raises(ConfigError, match="inside the fitted range"):
        extrapolate_equivalence(rdt, std, 1e5)
    with pytest.raises(ConfigError, match="positive finite"):
        equivalence(rdt, std, float("nan"))


def test_equivalence_notes_and_refusals_by_hand() -> None:
    rdt, std = _hand_law(1.8, 300.0, 0.3), _hand_law(1.8, 400.0, 0.3)  # N_eq = (4/3)^(1/0.3) N = 2.61 N
    wide = dataclasses.replace(std, domain={"N": (1e4, 1e8)})
    for n in (1e4, 1e7):  # both ends of the RDT's fitted range, N_eq inside the standard's: no note
        eq = equivalence(rdt, wide, n)
        assert (eq.extrapolated, eq.note) == (False, "") and eq.ratio == pytest.approx((4 / 3) ** (1 / 0.3))
        for domain in ((1e3, eq.n_eq), (eq.n_eq, 1e9)):  # N_eq at either end of the standard's range
            assert not equivalence(rdt, dataclasses.replace(std, domain={"N": domain}), n).extrapolated
    beyond = equivalence(rdt, std, 1e7)  # N_eq = 2.6e7, past the standard's largest fitted size
    assert beyond.extrapolated and beyond.note == ("extrapolation: fitted on RDT N in [1e+04, 1e+07] and standard "
                                                   "N in [1e+04, 1e+07]; the laws need not hold outside those ranges")
    below = equivalence(_hand_law(1.2, 4.0, 0.3), std, 1e7)
    assert not below.extrapolated and below.note == (
        f"unbounded: the RDT's fitted loss {below.loss_rdt:.4g} is at or below the standard law's irreducible "
        "loss E=1.8, so no standard size reaches it under the fitted law")
    curve = dataclasses.replace(rdt, law="test_time")
    with pytest.raises(ConfigError) as err:
        equivalence(curve, std, 0.0)
    assert err.value.problems == ["rdt fit is a test_time, not a power_law",
                                  "n_rdt must be a positive finite size; got 0.0"]


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 1000))
def test_fitted_alpha_is_invariant_to_the_unit_of_n(scale: float, seed: int) -> None:
    n, loss = _power_data(seed)
    base, scaled = fit_power_law(n, loss, n_bootstrap=0), fit_power_law(n * scale, loss, n_bootstrap=0)
    assert scaled.params["alpha"] == pytest.approx(base.params["alpha"], rel=1e-6)
    assert scaled.params["E"] == pytest.approx(base.params["E"], rel=1e-6)
    assert scaled.params["A"] == pytest.approx(base.params["A"] * scale ** base.params["alpha"], rel=1e-5)


@settings(max_examples=200, deadline=None)
@given(laws=st.tuples(*[st.floats(0.1, 3.0), st.floats(1.0, 1e3), st.floats(0.05, 1.0)] * 2),
       sizes=st.tuples(st.floats(1e3, 1e9), st.floats(1e3, 1e9)))
def test_equivalent_size_grows_with_rdt_size(laws: tuple[float, ...], sizes: tuple[float, float]) -> None:
    rdt, std = _hand_law(*laws[:3]), _hand_law(*laws[3:])
    small, large = (equivalence(rdt, std, n).n_eq for n in sorted(sizes))
    small, large = (math.inf if v is None else v for v in (small, large))
    assert small <= large * (1 + 1e-9)


def _points() -> list[dict]:
    pts = []
    for n in np.logspace(4, 6.5, 6):
        for s in range(3):
            rng = np.random.default_rng([int(n), s])
            pts.append({"family": "standard", "params": float(n), "seed": s,
                        "loss": float((2.0 + 300.0 * n**-0.3) * np.exp(rng.normal(0, NOISE)))})
            for r in (1, 2, 4, 8):
                loss = (2.0 + 300.0 * (0.4 * n + r**0.46 * 0.6 * n) ** -0.3) * np.exp(rng.normal(0, NOISE))
                pts.append({"family": "rdt", "params": float(n), "seed": s, "loops": r, "loss": float(loss),
                            "n_once": 0.4 * n, "n_rec": 0.6 * n})
    return pts


def test_fit_results_end_to_end_is_json_safe_and_formats() -> None:
    result = fit_results(_points(), n_bootstrap=30)
    json.dumps(result, allow_nan=False)
    assert result["rdt_loops"] == 8 and any("loops=8" in n for n in result["notes"])
    assert set(result["families"]) == {"rdt", "standard"}
    assert result["loop_worth"]["params"]["phi"] == pytest.approx(0.46, abs=0.1)
    assert len(result["test_time"]) == 6 and len(result["equivalence"]) == 6
    expected = 0.4 + 8**0.46 * 0.6  # N_eff / N at 8 loops under the generating law
    assert np.median([row["ratio"] for row in result["equivalence"]]) == pytest.approx(expected, rel=0.15)
    (proj,) = result["projections"]
    assert proj["n_rdt"] == 770e6 and proj["extrapolated"]
    table = format_fit_table(result)
    assert "matched-token" in table and "EXTRAPOLATION" in table and "| L(N) rdt |" in table


def test_fit_results_lists_every_bad_point() -> None:
    bad = [{"family": "moe", "params": -1, "loss": float("nan"), "seed": 0},
           {"family": "rdt", "params": 1e4, "loss": 2.0},
           {"family": "standard", "params": 1e4, "loss": 2.0, "seed": 0, "loops": 0},
           {"family": "standard", "params": 1e4, "loss": 2.1, "seed": 0, "loops": 0},
           ["not", "a", "dict"],
           {"family": "rdt", "params": True, "loss": 2.0, "seed": 1, "loops": 2, "n_once": 0, "n_rec": 0},
           {"family": "rdt", "params": 1e4, "loss": 2.0, "seed": 1, "loops": 2, "n_once": -1, "n_rec": "5"}]
    with pytest.raises(ConfigError) as exc:
        fit_results(bad)
    assert exc.value.problems == [  # n_once may be 0 (a standard model's), every other number must be > 0
        "point 0: family must be 'rdt' or 'standard'; got 'moe'",
        "point 0: params must be a finite positive number; got -1",
        "point 0: loss must be a finite positive number; got nan",
        "point 1: missing 'seed'",
        "point 2: loops must be a finite positive number; got 0",
        "point 3: loops must be a finite positive number; got 0",
        "point 3: duplicates an earlier (family, params, loops, seed) = ('standard', 10000.0, 0, 0)",
        "point 4: expected a dict, got list",
        "point 5: params must be a finite positive number; got True",
        "point 5: n_rec must be a finite positive number; got 0",
        "point 6: n_once must be a finite non-negative number; got -1",
        "point 6: n_rec must be a finite positive number; got '5'"]
    with pytest.raises(ConfigError) as exc:
        fit_results([])
    assert exc.value.problems == ["no points to fit"]
    with pytest.raises(ConfigError, match="standard law: only 2 distinct"):
        fit_results([{"family": "standard", "params": n, "loss": 3.0 - i / 10, "seed": i % 2}
                     for i, n in enumerate([1e4, 1e4, 1e5, 1e5])])


def test_fit_results_refuses_rdt_points_whose_loop_counts_do_not_add_up() -> None:
    point = {"family": "rdt", "params": 1e4, "loss": 2.0, "seed": 0, "loops": 2, "n_once": 4e3, "n_rec": 6e3}
    mixed = [point, {**point, "seed": 1, "loops": None}]
    two = [point, {**point, "loops": 4}]
    for points, kw, problem in (
            (mixed, {}, "rdt points mix entries with and without 'loops'"),
            (two, {"rdt_loops": 3}, "rdt_loops=3 but the rdt points have loops [2, 4]"),
            ([point, {**point, "loops": 4, "n_rec": None}], {},
             "the loop-worth law needs 'n_once' and 'n_rec' on every rdt point")):
        with pytest.raises(ConfigError) as exc:
            fit_results(points, **kw)
        assert exc.value.problems == [problem]


def test_fit_results_says_what_it_could_not_fit() -> None:
    standard = [p for p in _points() if p["family"] == "standard"]
    alone = fit_results(standard, n_bootstrap=0)
    assert (set(alone["families"]), alone["equivalence"], alone["projections"]) == ({"standard"}, [], [])
    assert alone["notes"] == ["no rdt points: no rdt law and no equivalence table",
                              "rdt points at fewer than 2 loop counts: no loop-worth law"]
    one_loop_count = standard + [p for p in _points() if p.get("loops") == 4]
    smallest, largest = min(p["params"] for p in standard), max(p["params"] for p in standard)
    inside = fit_results(one_loop_count, n_bootstrap=0, project_to=(smallest, 1e5, largest, 1e9))
    assert inside["rdt_loops"] is None and inside["loop_worth"] is None and inside["test_time"] == []
    assert inside["notes"] == ["rdt points at fewer than 2 loop counts: no loop-worth law",
                               *(f"no projection to N={n:.3g}: inside the fitted range" for n in (1e4, 1e5, largest))]
    assert [p["n_rdt"] for p in inside["projections"]] == [1e9]


def _law(params: dict[str, float], n_points: int, n_failed: int, rmse: float) -> dict:
    """A fitted law as fit_results stores it, with intervals of +-10% (one with an end it could not give)."""
    intervals = {k: {"low": 0.9 * v, "high": 1.1 * v, "reason": None} for k, v in params.items()}
    intervals[next(iter(params))] = {"low": None, "high": 2.0, "reason": "3 of 30 fits failed"}
    return {"params": params, "intervals": intervals, "n_points": n_points, "n_failed": n_failed, "n_bootstrap": 30,
            "rmse_log": rmse}


def test_the_fit_tables_are_the_reviewed_ones() -> None:
    """Every section of the fits' markdown (the laws, the matched sizes, the extrapolations headed as such, the
    notes), from a hand-made result, against tests/golden/fit_table.md: reviewed by hand once; a change of
    wording or layout changes that file in the same commit."""
    equivalence = [{"n_rdt": 12736.0, "loss_rdt": 1.234567, "n_eq": 25000.0, "ratio": 1.963,
                    "ratio_interval": {"low": 1.5, "high": 2.5, "reason": None}, "note": ""},
                   {"n_rdt": 113472.0, "loss_rdt": 0.9, "n_eq": None, "ratio": None,
                    "ratio_interval": {"low": None, "high": None, "reason": "beyond the standard law's range"},
                    "note": "unbounded"}]
    result = {"comparison": "matched-token", "level": 0.95,
              "families": {"standard": _law({"E": 0.2, "A": 20.0, "alpha": 0.4}, 12, 0, 0.0123),
                           "rdt": _law({"E": 0.25, "A": 18.5, "alpha": 0.38}, 48, 3, 0.0456)},
              "loop_worth": _law({"E": 0.22, "A": 19.0, "alpha": 0.39, "phi": 0.46}, 48, 1, 0.05),
              "test_time": [{"params": 12736.0, "fit": _law({"L_inf": 0.7, "B": 1.5, "k": 0.9}, 8, 0, 0.001)}],
              "equivalence": equivalence,
              "projections": [{**equivalence[0], "n_rdt": 770e6, "note": "extrapolated 6,800x | a pipe"}],
              "notes": ["first note", "second note"]}
    golden = Path(__file__).parent / "golden" / "fit_table.md"
    assert format_fit_table(result) == golden.read_text(encoding="utf-8")
    laws_only = format_fit_table(result | {"loop_worth": None, "equivalence": [], "projections": [], "notes": []})
    heading_and_laws = golden.read_text(encoding="utf-8").split("\n\n### Standard")[0].splitlines()
    assert laws_only == "\n".join(line for line in heading_and_laws if not line.startswith("| loop worth")) + "\n"
