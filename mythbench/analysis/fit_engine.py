"""The fitting engine behind mythbench/fits.py: robust (Huber) fits from a grid of starts, a bootstrap that
refits each resample, and the result types with their JSON form.

scipy does the optimisation (L-BFGS-B with the analytic gradient). The bootstrap stays hand-written: it
resamples repeated seeds within their input group and *refits the law* on every resample, warm-started at
the full-data fit; scipy.stats.bootstrap resamples a statistic of the data, so it would either refit from
scratch (the grid, ~20x slower) or lose the grouping. Percentiles come from numpy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import product
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber
from threadpoolctl import threadpool_limits

from mythbench.core.errors import ConfigError

HUBER_DELTA = 1e-3
MIN_SUCCESS_FRACTION = 0.8  # when more replicates fail, the survivors are a biased sample: no interval
MIN_SUCCESSES = 10
N_STARTS = 5  # L-BFGS-B runs from the best grid points; every grid point costs ~20x for the same optimum
TOLERANCES = {"ftol": 1e-12, "gtol": 1e-8}  # scipy's defaults stop ~1e-4 short on the L1-like Huber surface
LOG_BOUND = (-40.0, 40.0)  # bounds on log-scale parameters; wide, only there to keep exp() finite
BAND_POINTS = 100  # grid points of a stored power-law band

Domain = dict[str, tuple[float, float]]
Model = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Interval:
    """A percentile interval; an end is None, with `reason`, when the bootstrap cannot support it."""

    low: float | None
    high: float | None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitResult:
    """One fitted law. `replicates` (successful bootstrap fits, natural units) feed the N_eq interval."""

    law: str
    params: dict[str, float]
    intervals: dict[str, Interval]
    level: float
    n_points: int
    n_bootstrap: int
    n_failed: int
    rmse_log: float  # RMSE of log(L_pred) - log(L_obs), the scale the fit minimises on
    domain: Domain  # observed input ranges: outside them a prediction extrapolates
    replicates: np.ndarray = field(repr=False, compare=False)

    def band(self, n_grid: int = BAND_POINTS) -> dict[str, list[float]] | None:
        """A power law's pointwise bootstrap band: percentiles of the replicate curves over a log grid
        reaching a factor 1.5 beyond the observed N (None without replicates or for another law)."""
        if self.law != "power_law" or not len(self.replicates):
            return None
        lo, hi = self.domain["N"]
        grid = np.geomspace(lo / 1.5, hi * 1.5, n_grid)
        r = self.replicates
        curves = r[:, :1] + r[:, 1:2] * grid[None, :] ** -r[:, 2:3]
        q = (1 - self.level) / 2
        low, high = np.quantile(curves, [q, 1 - q], axis=0)
        return {"x": grid.tolist(), "low": low.tolist(), "high": high.tolist()}

    def to_dict(self) -> dict[str, Any]:
        """The stored form: everything a report draws, so no report ever refits (replicates and the band)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "replicates"}
        out |= {"intervals": {k: v.to_dict() for k, v in self.intervals.items()},
                "domain": {k: list(v) for k, v in self.domain.items()},
                "replicates": {k: self.replicates[:, j].tolist() for j, k in enumerate(self.params)}}
        band = self.band()
        return out | ({"band": band} if band is not None else {})


@dataclass(frozen=True)
class Equivalence:
    """The standard size whose fitted loss equals the RDT's; n_eq/ratio are None when unbounded."""

    n_rdt: float
    loss_rdt: float
    n_eq: float | None
    ratio: float | None
    ratio_interval: Interval
    extrapolated: bool
    note: str

    @property
    def unbounded(self) -> bool:
        return self.n_eq is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unbounded": self.unbounded}


@dataclass(frozen=True)
class Law:
    name: str
    names: tuple[str, ...]
    model: Model  # (theta, x) -> (log L_pred, d log L_pred / d theta)
    grid: list[np.ndarray]
    bounds: list[tuple[float, float]]
    natural: Callable[[np.ndarray], np.ndarray]


def _huber(theta: np.ndarray, model: Model, x: np.ndarray, logy: np.ndarray,
           delta: float) -> tuple[float, np.ndarray]:
    """Mean Huber loss (scipy.special.huber) scaled by 1/delta^2, so L-BFGS-B's relative tolerance is not met
    at the first step, and its gradient (the Huber derivative is the residual clipped to [-delta, delta])."""
    pred, jac = model(theta, x)
    r = pred - logy
    scale = 1.0 / (len(r) * delta**2)
    return float(huber(delta, r).sum() * scale), jac.T @ np.clip(r, -delta, delta) * scale


def _minimise(law: Law, x: np.ndarray, logy: np.ndarray, starts: Sequence[np.ndarray],
              delta: float) -> np.ndarray | None:
    best, best_f = None, math.inf
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for s in starts:
            res = minimize(_huber, s, args=(law.model, x, logy, delta), jac=True, method="L-BFGS-B",
                           bounds=law.bounds, options=TOLERANCES)
            if np.isfinite(res.fun) and np.all(np.isfinite(res.x)) and res.fun < best_f:
                best, best_f = res.x, float(res.fun)
    return best


def percentile_interval(samples: np.ndarray, level: float, n_boot: int, n_failed: int) -> Interval:
    """Percentile interval, or the reason there is none (too few fits, degenerate, unbounded)."""
    if n_boot == 0:
        return Interval(None, None, "no bootstrap requested")
    n_ok = n_boot - n_failed
    if n_ok < max(MIN_SUCCESSES, MIN_SUCCESS_FRACTION * n_boot):
        return Interval(None, None, f"only {n_ok} of {n_boot} bootstrap fits succeeded "
                        f"(need {MIN_SUCCESS_FRACTION:.0%} and at least {MIN_SUCCESSES})")
    q = (1.0 - level) / 2.0
    method = "inverted_cdf" if np.isinf(samples).any() else "linear"  # never interpolate towards inf
    lo, hi = (float(v) for v in np.quantile(samples, [q, 1.0 - q], method=method))
    unbounded = [end for end, v in (("low", lo), ("high", hi)) if not math.isfinite(v)]
    if unbounded:
        share = float(np.mean(np.isinf(samples)))
        return Interval(lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None,
                        f"{' and '.join(unbounded)} end unbounded: {share:.0%} of replicates are infinite")
    if math.isclose(lo, hi, rel_tol=1e-9):
        return Interval(None, None, f"degenerate: every bootstrap replicate gives {lo:.6g} "
                        "(parameter at a bound, or resamples identical to the data)")
    return Interval(lo, hi)


# one BLAS thread: L-BFGS-B's tiny BLAS calls run ~100x slower when threads contend for busy cores
@threadpool_limits.wrap(limits=1, user_api="blas")
def fit_law(law: Law, x: np.ndarray, loss: np.ndarray, keys: list[tuple], domain: Domain,
         n_bootstrap: int, level: float, seed: int, delta: float) -> FitResult:
    """Grid-started fit plus bootstrap. Repeated seeds at one input are resampled within that group."""
    problems = [msg for bad, msg in ((not 0 < level < 1, f"level must be in (0, 1); got {level}"),
                                     (n_bootstrap < 0, f"n_bootstrap must be >= 0; got {n_bootstrap}"),
                                     (not delta > 0, f"Huber delta must be positive; got {delta}")) if bad]
    if problems:
        raise ConfigError(problems)
    logy = np.log(loss)
    scores = np.array([_huber(g, law.model, x, logy, delta)[0] for g in law.grid])
    grid_best = [law.grid[i] for i in np.argsort(np.nan_to_num(scores, nan=np.inf))[:N_STARTS]]
    theta = _minimise(law, x, logy, grid_best, delta)
    if theta is None:
        raise ConfigError(f"{law.name}: no start gave a finite fit; check the data spans the law")
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    within = max(len(g) for g in groups.values()) > 1
    rng = np.random.default_rng(seed)
    reps, n_failed = [], 0
    for _ in range(n_bootstrap):
        if within:
            idx = np.concatenate([rng.choice(g, size=len(g)) for g in groups.values()])
        else:
            idx = rng.integers(0, len(loss), len(loss))
        fit = None
        if len({keys[i] for i in idx}) >= len(law.names):  # fewer distinct inputs than parameters: unfit
            fit = _minimise(law, x[idx], logy[idx], [theta], delta)
        nat = None if fit is None else law.natural(fit)
        if nat is None or not np.all(np.isfinite(nat)):
            n_failed += 1
        else:
            reps.append(nat)
    rep = np.array(reps).reshape(len(reps), len(law.names))
    params = law.natural(theta)
    pred, _ = law.model(theta, x)
    return FitResult(
        law=law.name, params={n: float(v) for n, v in zip(law.names, params, strict=True)},
        intervals={n: percentile_interval(rep[:, j], level, n_bootstrap, n_failed) for j, n in enumerate(law.names)},
        level=level, n_points=len(loss), n_bootstrap=n_bootstrap, n_failed=n_failed,
        rmse_log=float(np.sqrt(np.mean((pred - logy) ** 2))), domain=domain, replicates=rep)


def check_inputs(columns: dict[str, Sequence[float]], positive: set[str], n_params: int, n_distinct: int,
           what: str) -> list[np.ndarray]:
    """Every problem with the inputs at once: lengths, NaN/inf, signs, too few (distinct) points."""
    problems: list[str] = []
    arrays = {k: np.asarray(v, dtype=float).ravel() for k, v in columns.items()}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        problems.append(f"mismatched lengths: {lengths}")
    for k, v in arrays.items():
        if not np.all(np.isfinite(v)):
            problems.append(f"{k} contains NaN or inf")
        bad = v[np.isfinite(v) & ((v <= 0) if k in positive else (v < 0))]
        if bad.size:
            sign = "positive" if k in positive else "non-negative"
            problems.append(f"{k} must be {sign}; got {bad.tolist()}")
    n = min(lengths.values())
    if n < n_params:
        problems.append(f"{n} points, fewer than the {n_params} parameters of the {what}")
    elif n_distinct < n_params:
        problems.append(f"only {n_distinct} distinct inputs; the {what} needs at least {n_params}")
    if problems:
        raise ConfigError(problems)
    return list(arrays.values())


def start_grid(*axes: Sequence[float]) -> list[np.ndarray]:
    return [np.array(p, dtype=float) for p in product(*axes)]


def span(v: np.ndarray) -> tuple[float, float]:
    return float(v.min()), float(v.max())
