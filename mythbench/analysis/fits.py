"""Scaling-law fits: per-family power laws, the loop-worth law, the test-time curve, and the N_eq ratio.

The recipe is Chinchilla "approach 3" as replicated by Besiroglu et al. (2024): Huber loss on log-loss
residuals (robust to a bad run, and no single large-loss point dominates), positivity through exp(), L-BFGS-B
from a grid of starts (the E/A/alpha trade-off has local minima), and bootstrap percentile intervals.
An interval the bootstrap cannot support is reported as unavailable with a reason, never as NaN or inf.
The engine (robust fit, bootstrap, result types and their stored form) is mythbench/fit_engine.py; this
module defines the laws, the N_eq comparison, what `mythbench scale` fits, and its Markdown table.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mythbench.analysis.fit_engine import (
    HUBER_DELTA,
    LOG_BOUND,
    Equivalence,
    FitResult,
    Interval,
    Law,
    check_inputs,
    fit_law,
    percentile_interval,
    span,
    start_grid,
)
from mythbench.analysis.tables import interval, markdown, num
from mythbench.core.errors import ConfigError

__all__ = ["Equivalence", "FitResult", "Interval", "equivalence", "extrapolate_equivalence", "fit_loop_worth",
           "fit_power_law", "fit_results", "fit_test_time", "format_fit_table"]


def fit_power_law(n: Sequence[float], loss: Sequence[float], *, n_bootstrap: int = 200, level: float = 0.95,
                  seed: int = 0, delta: float = HUBER_DELTA) -> FitResult:
    """L(N) = E + A*N^-alpha. N is divided by its geometric mean inside the fit for conditioning."""
    nv, lv = check_inputs({"N": n, "loss": loss}, {"N", "loss"}, 3, len(set(np.ravel(n).tolist())), "power law")
    ref = float(np.exp(np.mean(np.log(nv))))  # geometric mean

    def model(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pred = np.logaddexp(t[0], t[1] - t[2] * x)
        w = np.exp(t[0] - pred)
        return pred, np.stack([w, 1 - w, -(1 - w) * x], axis=1)

    grid = start_grid(np.log(lv.min() * np.array([0.05, 0.35, 0.65, 0.9])),
                 np.log(np.median(lv) * np.array([0.02, 0.1, 0.3, 1.0])), [0.05, 0.2, 0.5, 1.0, 2.0])
    law = Law("power_law", ("E", "A", "alpha"), model, grid, [LOG_BOUND, LOG_BOUND, (0.0, 5.0)],
               lambda t: np.array([np.exp(t[0]), np.exp(t[1] + t[2] * math.log(ref)), t[2]]))
    return fit_law(law, np.log(nv / ref), lv, [(v,) for v in nv], {"N": span(nv)},
                n_bootstrap, level, seed, delta)


def fit_loop_worth(n_once: Sequence[float], n_rec: Sequence[float], loops: Sequence[float],
                   loss: Sequence[float], *, n_bootstrap: int = 200, level: float = 0.95, seed: int = 0,
                   delta: float = HUBER_DELTA) -> FitResult:
    """L = E + A*(N_once + r^phi*N_rec)^-alpha: phi says how many unique-parameter copies a loop is worth."""
    rows = set(zip(*(np.ravel(v).tolist() for v in (n_once, n_rec, loops)), strict=False))  # lengths: check_inputs
    no, nr, r, lv = check_inputs({"n_once": n_once, "n_rec": n_rec, "loops": loops, "loss": loss},
                           {"n_rec", "loops", "loss"}, 4, len(rows), "loop-worth law")
    if len(set(r.tolist())) < 2:
        raise ConfigError("the loop-worth law needs at least 2 distinct loop counts to identify phi")
    ref = float(np.exp(np.mean(np.log(no + nr))))

    def model(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rp = np.exp(t[3] * x[:, 2])
        neff = x[:, 0] + rp * x[:, 1]
        pred = np.logaddexp(t[0], t[1] - t[2] * np.log(neff))
        w = 1 - np.exp(t[0] - pred)
        dphi = -w * t[2] * rp * x[:, 1] * x[:, 2] / neff
        return pred, np.stack([1 - w, w, -w * np.log(neff), dphi], axis=1)

    grid = start_grid(np.log(lv.min() * np.array([0.05, 0.35, 0.65, 0.9])),
                 np.log(np.median(lv) * np.array([0.02, 0.1, 0.3, 1.0])), [0.05, 0.2, 0.5, 1.0],
                 [0.1, 0.5, 1.0])
    law = Law("loop_worth", ("E", "A", "alpha", "phi"), model, grid,
               [LOG_BOUND, LOG_BOUND, (0.0, 5.0), (0.0, 3.0)],
               lambda t: np.array([np.exp(t[0]), np.exp(t[1] + t[2] * math.log(ref)), t[2], t[3]]))
    x = np.stack([no / ref, nr / ref, np.log(r)], axis=1)
    domain = {"N_once": span(no), "N_rec": span(nr), "loops": span(r)}
    return fit_law(law, x, lv, [tuple(v) for v in x], domain, n_bootstrap, level, seed, delta)


def fit_test_time(loops: Sequence[float], loss: Sequence[float], *, n_bootstrap: int = 200,
                  level: float = 0.95, seed: int = 0, delta: float = HUBER_DELTA) -> FitResult:
    """L(T) = L_inf + (L_0 - L_inf)*exp(-T/tau) (Parcae): assumes loss falls with loops, L_0 > L_inf."""
    tv, lv = check_inputs({"loops": loops, "loss": loss}, {"loss"}, 3, len(set(np.ravel(loops).tolist())),
                    "test-time curve")
    ref = float(tv.max())

    def model(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = x * np.exp(-t[2])
        pred = np.logaddexp(t[0], t[1] - k)
        w = np.exp(t[0] - pred)
        return pred, np.stack([w, 1 - w, (1 - w) * k], axis=1)

    grid = start_grid(np.log(lv.min() * np.array([0.5, 0.8, 0.95])),
                 np.log(lv.max() * np.array([0.01, 0.1, 0.5])), np.log([0.05, 0.2, 0.5, 1.5]))
    law = Law("test_time", ("L_inf", "L_0", "tau"), model, grid, [LOG_BOUND, LOG_BOUND, (-15.0, 15.0)],
               lambda t: np.array([np.exp(t[0]), np.exp(t[0]) + np.exp(t[1]), np.exp(t[2]) * ref]))
    return fit_law(law, tv / ref, lv, [(v,) for v in tv], {"loops": span(tv)},
                n_bootstrap, level, seed, delta)


def _n_eq(e: np.ndarray, a: np.ndarray, alpha: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Invert L = E + A*N^-alpha; inf where L <= E (no standard size reaches that loss)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = (a / (loss - e)) ** (1.0 / alpha)
    return np.where(loss > e, out, np.inf)


def _power(p: np.ndarray, n: float) -> np.ndarray:
    return p[..., 0] + p[..., 1] * n ** (-p[..., 2])


def equivalence(rdt: FitResult, std: FitResult, n_rdt: float) -> Equivalence:
    """N_eq with the fitted standard loss equal to the RDT law's loss at n_rdt; replicates paired by index."""
    problems = [f"{name} fit is a {f.law}, not a power_law" for name, f in (("rdt", rdt), ("std", std))
                if f.law != "power_law"]
    if not (math.isfinite(n_rdt) and n_rdt > 0):
        problems.append(f"n_rdt must be a positive finite size; got {n_rdt}")
    if problems:
        raise ConfigError(problems)
    pr, ps = (np.array([f.params[k] for k in ("E", "A", "alpha")]) for f in (rdt, std))
    loss = float(_power(pr, n_rdt))
    n_eq = float(_n_eq(ps[0], ps[1], ps[2], np.array(loss)))
    pairs = min(len(rdt.replicates), len(std.replicates))
    rr, rs = rdt.replicates[:pairs], std.replicates[:pairs]
    ratios = _n_eq(rs[:, 0], rs[:, 1], rs[:, 2], _power(rr, n_rdt)) / n_rdt
    n_boot = min(rdt.n_bootstrap, std.n_bootstrap)
    interval = percentile_interval(ratios, rdt.level, n_boot, n_boot - pairs)
    lo_r, hi_r = rdt.domain["N"]
    lo_s, hi_s = std.domain["N"]
    notes = []
    if not math.isfinite(n_eq):
        notes.append(f"unbounded: the RDT's fitted loss {loss:.4g} is at or below the standard law's "
                     f"irreducible loss E={ps[0]:.4g}, so no standard size reaches it under the fitted law")
    extrapolated = not lo_r <= n_rdt <= hi_r or (math.isfinite(n_eq) and not lo_s <= n_eq <= hi_s)
    if extrapolated:
        notes.append(f"extrapolation: fitted on RDT N in [{lo_r:.3g}, {hi_r:.3g}] and standard N in "
                     f"[{lo_s:.3g}, {hi_s:.3g}]; the laws need not hold outside those ranges")
    finite = math.isfinite(n_eq)
    return Equivalence(n_rdt=float(n_rdt), loss_rdt=loss, n_eq=n_eq if finite else None,
                       ratio=n_eq / n_rdt if finite else None, ratio_interval=interval,
                       extrapolated=extrapolated, note="; ".join(notes))


def extrapolate_equivalence(rdt: FitResult, std: FitResult, n_target: float) -> Equivalence:
    """The ratio the fitted laws imply at a size outside the RDT's fitted range (e.g. Parcae's 770M)."""
    lo, hi = rdt.domain["N"]
    if lo <= n_target <= hi:
        raise ConfigError(f"N={n_target:.3g} is inside the fitted range [{lo:.3g}, {hi:.3g}]: "
                          "not an extrapolation; use equivalence()")
    return equivalence(rdt, std, n_target)


def _check_points(points: Sequence[dict[str, Any]]) -> list[str]:
    """Every problem in the point list, each naming its point index."""
    problems: list[str] = [] if points else ["no points to fit"]
    seen: set[tuple] = set()
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            problems.append(f"point {i}: expected a dict, got {type(p).__name__}")
            continue
        if p.get("family") not in ("rdt", "standard"):
            problems.append(f"point {i}: family must be 'rdt' or 'standard'; got {p.get('family')!r}")
        problems += [f"point {i}: missing {k!r}" for k in ("params", "loss", "seed") if p.get(k) is None]
        for k in ("params", "loss", "loops", "n_once", "n_rec"):
            v, floor = p.get(k), 0 if k == "n_once" else math.ulp(0)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v < floor):
                sign = "non-negative" if k == "n_once" else "positive"
                problems.append(f"point {i}: {k} must be a finite {sign} number; got {v!r}")
        key = (p.get("family"), p.get("params"), p.get("loops"), p.get("seed"))
        if key in seen:
            problems.append(f"point {i}: duplicates an earlier (family, params, loops, seed) = {key}")
        seen.add(key)
    return problems


def fit_results(points: Sequence[dict[str, Any]], *, n_bootstrap: int = 200, level: float = 0.95,
                seed: int = 0, comparison: str = "matched-token", rdt_loops: int | None = None,
                project_to: Sequence[float] = (770e6,)) -> dict[str, Any]:
    """Fit what `mythbench scale` reports; `comparison` labels what N is matched on (tokens or FLOPs)."""
    problems = _check_points(points)
    if problems:
        raise ConfigError(problems)
    kw = {"n_bootstrap": n_bootstrap, "level": level, "seed": seed}
    rdt = [p for p in points if p["family"] == "rdt"]
    counts = Counter(p.get("loops") for p in rdt)
    loop_counts = sorted(r for r in counts if r is not None)
    notes: list[str] = []
    if None in counts and loop_counts:
        problems.append("rdt points mix entries with and without 'loops'")
    if rdt_loops is not None and rdt_loops not in counts:
        problems.append(f"rdt_loops={rdt_loops} but the rdt points have loops {loop_counts}")
    if rdt_loops is None and len(loop_counts) > 1:
        rdt_loops = max(loop_counts, key=lambda r: (counts[r], r))
        notes.append(f"rdt points span loops {loop_counts}; the rdt law and N_eq use loops={rdt_loops} "
                     "(the most common, ties to the largest); pass rdt_loops to choose")
    if len(loop_counts) > 1 and any(p.get(k) is None for p in rdt for k in ("n_once", "n_rec")):
        problems.append("the loop-worth law needs 'n_once' and 'n_rec' on every rdt point")
    if problems:
        raise ConfigError(problems)
    fits: dict[str, FitResult] = {}
    rdt_law = [p for p in rdt if rdt_loops in (None, p.get("loops"))]
    for fam, pts in (("rdt", rdt_law),
                     ("standard", [p for p in points if p["family"] == "standard"])):
        if not pts:
            notes.append(f"no {fam} points: no {fam} law and no equivalence table")
            continue
        try:
            fits[fam] = fit_power_law([p["params"] for p in pts], [p["loss"] for p in pts], **kw)
        except ConfigError as err:
            problems += [f"{fam} law: {m}" for m in err.problems]
    loop_worth = None
    if len(loop_counts) > 1:
        try:
            cols = ([p[k] for p in rdt] for k in ("n_once", "n_rec", "loops", "loss"))
            loop_worth = fit_loop_worth(*cols, **kw)
        except ConfigError as err:
            problems += [f"loop-worth law: {m}" for m in err.problems]
    else:
        notes.append("rdt points at fewer than 2 loop counts: no loop-worth law")
    if problems:
        raise ConfigError(problems)
    test_time = []
    for n in sorted({p["params"] for p in rdt}):
        pts = [p for p in rdt if p["params"] == n]
        if len({p.get("loops") for p in pts} - {None}) >= 3:
            fit = fit_test_time([p["loops"] for p in pts], [p["loss"] for p in pts], **kw)
            test_time.append({"params": n, "fit": fit.to_dict()})
    table, projections = [], []
    if len(fits) == 2:
        table = [equivalence(fits["rdt"], fits["standard"], n).to_dict()
                 for n in sorted({p["params"] for p in rdt_law})]
        lo, hi = fits["rdt"].domain["N"]
        notes += [f"no projection to N={n:.3g}: inside the fitted range" for n in project_to if lo <= n <= hi]
        projections = [extrapolate_equivalence(fits["rdt"], fits["standard"], n).to_dict()
                       for n in project_to if not lo <= n <= hi]
    return {"comparison": comparison, "level": level, "rdt_loops": rdt_loops,
            "families": {k: v.to_dict() for k, v in fits.items()},
            "loop_worth": None if loop_worth is None else loop_worth.to_dict(), "test_time": test_time,
            "equivalence": table, "projections": projections, "notes": notes}


def _fit_row(label: str, fit: dict[str, Any]) -> list[str]:
    ps = "; ".join(f"{k}={v:.4g} {interval(fit['intervals'][k])}" for k, v in fit["params"].items())
    return [label, ps, str(fit["n_points"]), f"{fit['n_failed']}/{fit['n_bootstrap']}", f"{fit['rmse_log']:.3g}"]


def format_fit_table(result: dict[str, Any]) -> str:
    """Markdown for a fit_results() dict, from DataFrames; projections are headed as extrapolations."""
    pct = f"{result['level']:.0%}"
    rows = [_fit_row(f"L(N) {fam}", fit) for fam, fit in result["families"].items()]
    rows += [_fit_row("loop worth (rdt)", result["loop_worth"])] if result["loop_worth"] is not None else []
    rows += [_fit_row(f"L(T) rdt N={t['params']:.4g}", t["fit"]) for t in result["test_time"]]
    laws = pd.DataFrame(rows, columns=["law", "parameters [interval]", "points", "failed/bootstrap", "RMSE log L"])
    lines = [f"### Scaling fits ({result['comparison']} comparison; {pct} bootstrap intervals)", "",
             markdown(laws)]
    for title, eq in ((f"Standard size matching the RDT's fitted loss ({result['comparison']})",
                       result["equivalence"]),
                      ("EXTRAPOLATION: ratio the fitted laws imply far outside the fitted sizes",
                       result["projections"])):
        if eq:
            table = pd.DataFrame({"N rdt": [f"{r['n_rdt']:.4g}" for r in eq],
                                  "fitted L rdt": [f"{r['loss_rdt']:.4g}" for r in eq],
                                  "N_eq standard": [num(r["n_eq"]) for r in eq],
                                  "N_eq/N": [num(r["ratio"]) for r in eq],
                                  f"{pct} interval": [interval(r["ratio_interval"]) for r in eq],
                                  "note": [r["note"] for r in eq]})
            lines += ["", f"### {title}", "", markdown(table)]
    if result["notes"]:
        lines += ["", *(f"- {n}" for n in result["notes"])]
    return "\n".join(lines) + "\n"
