"""What a width ladder's points say, in the order a reader can trust it: first the gate (does the reference
model's excess validation loss fall with width by more than its seed noise?), then, only if it passes, the
scaling fits of the excess loss L − H, and beside them the test-time curves (loss against inference loops).

The reference model is the one N_eq is measured in: the standard transformer of the RDT's distinct layers
(`reference_loops` None), or the looped model's own r = 1 point (`reference_loops` 1: the standard comparison
with the same unique layers). H is each point's `loss_floor` (the task's exact Bayes loss, `Task.loss_floor`),
so a law's E is the excess that more parameters would still remove, not the task's noise. Everything here is
a function of the stored points, so `mythbench fit` recomputes it without training.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from mythbench.analysis import fits
from mythbench.core.errors import ConfigError

LEVEL, FIT_SEED = 0.95, 0
PROJECT_TO = (770e6, 1.3e9)  # Parcae's sizes: its 770M RDT matches a 1.3B standard transformer (ratio ~1.69)
GATE_STANDARD_ERRORS = 2.0  # a width step must lower the reference's excess loss by more than this many SEs


def complete(points: list[dict]) -> list[dict]:
    return [p for p in points if p["status"] == "complete" and p["loss"] is not None]


def is_reference(point: dict, reference_loops: int | None) -> bool:
    """Whether `point` is of the model N_eq is counted in (see the module docstring)."""
    if reference_loops is None:
        return point["family"] == "standard"
    return point["family"] == "rdt" and point["loops"] == reference_loops


def reference_label(reference_loops: int | None) -> str:
    return "standard" if reference_loops is None else f"rdt r={reference_loops}"


def excess(point: dict, key: str = "loss") -> float:
    """L − H: the point's loss above the task's exact floor (0 for files written before floors were stored)."""
    return point[key] - point.get("loss_floor", 0.0)


def gate(points: list[dict], reference_loops: int | None) -> dict[str, Any]:
    """Whether the reference model's seed-mean excess validation loss falls by more than GATE_STANDARD_ERRORS
    standard errors of the difference at every step up in width. A law fitted to a ladder its seeds do not
    order reads noise as N_eq/N and φ. `passed` is None when it cannot be decided (fewer than two widths, or
    a width with fewer than two seeds, which gives no standard error). Files without validation losses are
    gated on their test loss, and the result says so."""
    ref = [p for p in complete(points) if is_reference(p, reference_loops)]
    key = "validation_loss" if ref and all("validation_loss" in p for p in ref) else "loss"
    widths = []
    for w in sorted({p["width"] for p in ref}):
        values = np.array([excess(p, key) for p in ref if p["width"] == w])
        se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
        widths.append({"width": w, "seeds": len(values), "mean": float(values.mean()), "se": se})
    steps = []
    for a, b in itertools.pairwise(widths):
        se = math.hypot(a["se"], b["se"]) if a["se"] is not None and b["se"] is not None else None
        drop = a["mean"] - b["mean"]
        steps.append({"from": a["width"], "to": b["width"], "drop": drop, "se": se,
                      "passed": None if se is None else bool(drop > GATE_STANDARD_ERRORS * se)})
    verdicts = [s["passed"] for s in steps]
    passed = None if not steps or None in verdicts else all(verdicts)
    which = f"{reference_label(reference_loops)} excess {'validation' if key != 'loss' else 'test'} loss (L − H)"
    listed = "; ".join(f"w{s['from']}→w{s['to']} drop {s['drop']:.3g}" + (f" vs 2 SE {2 * s['se']:.3g}"
                                                                          if s["se"] is not None else "")
                       for s in steps)
    if passed is None:
        why = ("fewer than two widths" if not steps else "a width has fewer than two seeds (no standard error)")
        summary = f"gate undecided: {why}; no fit is reported ({which}: {listed or 'no step'})"
    elif passed:
        summary = f"gate passed: the {which} falls by more than 2 standard errors at every width step ({listed})"
    else:
        failed = ", ".join(f"w{s['from']}→w{s['to']}" for s in steps if not s["passed"])
        summary = (f"gate FAILED at {failed}: the {which} does not fall by more than 2 standard errors there "
                   f"({listed}); no fit is reported, since a law fitted to points the seeds do not order reads "
                   "noise as N_eq/N and φ")
    return {"reference": reference_label(reference_loops), "loss": "validation" if key != "loss" else "test",
            "widths": widths, "steps": steps, "passed": passed, "summary": summary}


def _fit_or_error(points: list[dict], **kw: Any) -> dict:
    try:
        return fits.fit_results(points, level=LEVEL, seed=FIT_SEED, **kw)
    except ConfigError as e:
        return {"comparison": kw["comparison"], "error": e.problems}


def loop_curve(pts: list[dict], n_bootstrap: int) -> dict:
    """The saturating test-time law fitted over the falling part of one (r, width)'s loss-vs-inference-loops
    curve (T up to the loop count of lowest mean loss, at least 3 points): past it the loss may rise again
    (overthinking), which the law cannot describe, so that rise is reported beside the fit instead."""
    loops = [t for t, _ in pts[0]["loss_by_loops"]]
    mean = np.mean([[v for _, v in p["loss_by_loops"]] for p in pts], axis=0)
    best = int(np.argmin(mean))
    t_fit = loops[min(max(best, 2), len(loops) - 1)]
    entry = {"width": pts[0]["width"], "params": pts[0]["params"]["unique"], "train_loops": pts[0]["loops"],
             "fit_loops": [loops[0], t_fit], "best_loops": loops[best], "loss_best": float(mean[best]),
             "max_loops": loops[-1], "loss_max_loops": float(mean[-1])}
    keep = [(t, v) for p in pts for t, v in p["loss_by_loops"] if t <= t_fit]
    try:
        entry["fit"] = fits.fit_test_time([t for t, _ in keep], [v for _, v in keep], n_bootstrap=n_bootstrap,
                                          level=LEVEL, seed=FIT_SEED).to_dict()
    except ConfigError as e:
        entry["error"] = e.problems
    return entry


def _at_or_below_floor(points: list[dict]) -> list[str]:
    return [f"{p['name']} seed {p['seed']}: loss {p['loss']:.6g} is not above the task's floor "
            f"{p.get('loss_floor', 0.0):.6g}, so its excess loss has no logarithm" for p in points if excess(p) <= 0]


def compute_fits(points: list[dict], n_bootstrap: int, headline: int, reference_loops: int | None = None) -> dict:
    """The gate, both comparisons (withheld unless the gate passes) and the test-time curve of every (r, width),
    from stored points alone (what `mythbench fit` reruns). The reference points are fitted as the law N_eq
    is read from; with reference_loops = 1 they are also the loop-worth law's r = 1 points."""
    ok = complete(points)
    rdt = [p for p in ok if p["family"] == "rdt"]
    curves = [loop_curve([p for p in rdt if (p["loops"], p["width"]) == key], n_bootstrap)
              for key in sorted({(p["loops"], p["width"]) for p in rdt})]
    checked = gate(ok, reference_loops)
    refused = ([f"withheld: {checked['summary']}"] if not checked["passed"] else []) + _at_or_below_floor(ok)
    if refused:
        comparisons = {"matched_tokens": {"comparison": "matched-tokens", "error": refused},
                       "matched_flops": {"comparison": "matched-FLOPs", "error": refused}}
    else:
        comparisons = fit_comparisons(ok, n_bootstrap, headline, reference_loops)
    return {"gate": checked, **comparisons, "test_time": curves}


def fit_comparisons(points: list[dict], n_bootstrap: int, headline: int,
                    reference_loops: int | None = None) -> dict[str, dict]:
    """The matched-token and matched-FLOPs fits of the complete `points`' excess losses, gate or no gate
    (`compute_fits` asks the gate first)."""
    ok = complete(points)
    rdt = [p for p in ok if p["family"] == "rdt"]
    ref = [{**p, "family": "standard", "loops": None} for p in ok if is_reference(p, reference_loops)]
    tokens = [{"family": p["family"], "params": p["params"]["unique"], "loops": p["loops"], "seed": p["seed"],
               "loss": excess(p), **({"n_once": p["params"]["once"], "n_rec": p["params"]["recurrent"]}
                                     if p["family"] == "rdt" else {})} for p in ref + rdt]
    flops = [{"family": p["family"], "params": p["train_flops"], "loops": p["loops"], "seed": p["seed"],
              "loss": excess(p)} for p in ref + [p for p in rdt if p["loops"] == headline]]
    return {"matched_tokens": _fit_or_error(tokens, n_bootstrap=n_bootstrap, comparison="matched-tokens",
                                            rdt_loops=headline, project_to=PROJECT_TO),
            "matched_flops": _fit_or_error(flops, n_bootstrap=n_bootstrap, comparison="matched-FLOPs",
                                           rdt_loops=headline, project_to=())}


def ladder_notes(points: list[dict], headline: int, reference_loops: int | None = None) -> list[str]:
    bad = [f"{p['name']} seed {p['seed']}" for p in points if p["status"] != "complete" or p["loss"] is None]
    notes = [f"fits are of the excess loss L − H (H: the task's exact per-token floor, each point's loss_floor); "
             f"N_eq is counted in the {reference_label(reference_loops)} law; the RDT law and both comparisons "
             f"use the RDT at r = {headline} training loops (the largest of scale.loop_counts)",
             "the 'L(T)' rows of the matched-token fits are loss against *training* loops at fixed N (points "
             "of the loop sweep); the test-time curves against *inference* loops are the separate table"]
    if bad:
        notes.append(f"diverged, recorded and excluded from every fit: {', '.join(bad)}")
    return [*notes, gate(points, reference_loops)["summary"]]


__all__ = ["GATE_STANDARD_ERRORS", "LEVEL", "compute_fits", "excess", "fit_comparisons", "gate", "is_reference",
           "ladder_notes", "loop_curve", "reference_label"]
