"""The schema of `kind: "scale"` results files (schema_version 1), the ones `mythbench scale` writes.

A scale file carries the same provenance fields as a run file (the very nodes of the results model,
mythbench/results_model.py, so the two kinds cannot drift apart), then the ladder's `points`
(mythbench/scale.py's `_point`), the scaling `fits` (mythbench/fits.py's `to_dict()` / `fit_results`) and
`notes`. Points are checked strictly, because every table and fit is computed from them; the fits are derived
numbers, so they are checked for shape only: the keys each law has, finite numbers or null, intervals with
low <= high, replicate counts and bands that add up. The nodes below are the scale part of the results model;
docs/results-schema.md is generated from them (mythbench/results_doc.py).
"""

from __future__ import annotations

import math

from mythbench.results.jsonshape import (
    Arr,
    Bool,
    Either,
    Enum,
    Int,
    Node,
    Nullable,
    Num,
    Obj,
    Open,
    Pair,
    Ruled,
    Str,
    dicts,
    ints,
    is_int,
    is_num,
    show,
)
from mythbench.results.results_model import FAMILIES, MODEL_NAME_RE, PROVENANCE, PROVENANCE_DOC, TRAIN, check_provenance
from mythbench.results.summary_checks import ACC_TOL

__all__ = ["SCALE_V1", "Either", "Open", "Pair", "Ruled", "check_scale_v1"]
REL_TOL = 1e-9  # numbers the writer derives from others with one float operation


def _interval_rule(v: dict, path: str, out: list[str]) -> None:
    """`low ≤ high`; `reason` is not null when an end is null (the bootstrap could not support it)."""
    low, high = v.get("low"), v.get("high")
    if is_num(low) and is_num(high) and low > high:
        out.append(f"{path}: low {show(low)} is above high {show(high)}")
    if "reason" in v and v["reason"] is None and (low is None or high is None):
        out.append(f"{path}.reason: null, but an end of the interval is null (an unavailable end has a reason)")


def _bootstrap_rule(v: dict, path: str, out: list[str]) -> None:
    """`n_failed ≤ n_bootstrap`; each `replicates` list holds the n_bootstrap − n_failed successful fits, and
    the `band` lists are equally long with `low ≤ high` at each `x`."""
    n_boot, n_failed = v.get("n_bootstrap"), v.get("n_failed")
    if is_int(n_boot) and is_int(n_failed) and n_failed > n_boot:
        out.append(f"{path}.n_failed: {n_failed} is more than n_bootstrap = {n_boot}")
    reps = v.get("replicates") if isinstance(v.get("replicates"), dict) else {}
    for key, values in reps.items():
        if is_int(n_boot) and is_int(n_failed) and isinstance(values, list) and len(values) != n_boot - n_failed:
            out.append(f"{path}.replicates.{key}: {len(values)} values, not n_bootstrap - n_failed = "
                       f"{n_boot - n_failed}")
    band = v.get("band") if isinstance(v.get("band"), dict) else {}
    cols = [band.get(k) for k in ("x", "low", "high")]
    if all(isinstance(c, list) for c in cols):
        if len({len(c) for c in cols}) > 1:  # type: ignore[arg-type]
            out.append(f"{path}.band: x, low and high differ in length")
        elif any(is_num(lo) and is_num(hi) and lo > hi for lo, hi in zip(cols[1], cols[2], strict=True)):
            out.append(f"{path}.band: low is above high somewhere")


def _equivalence_rule(v: dict, path: str, out: list[str]) -> None:
    """`n_eq` and `ratio` are both null exactly when `unbounded` is true; `ratio = n_eq / n_rdt`."""
    n_rdt, n_eq, ratio, unbounded = (v.get(k) for k in ("n_rdt", "n_eq", "ratio", "unbounded"))
    if isinstance(unbounded, bool) and "n_eq" in v and unbounded != (n_eq is None):
        out.append(f"{path}.unbounded: {show(unbounded)}, but n_eq is {show(n_eq)} (null exactly when unbounded)")
    if "n_eq" in v and "ratio" in v and (ratio is None) != (n_eq is None):
        out.append(f"{path}.ratio: {show(ratio)}, but n_eq is {show(n_eq)} (both null or both numbers)")
    elif is_num(ratio) and is_num(n_eq) and is_num(n_rdt) and n_rdt > 0 and not math.isclose(
            ratio, n_eq / n_rdt, rel_tol=REL_TOL):
        out.append(f"{path}.ratio: {show(ratio)} is not n_eq / n_rdt = {n_eq / n_rdt!r}")


def _test_time_rule(v: dict, path: str, out: list[str]) -> None:
    """Exactly one of `fit` and `error`; `best_loops` and the end of `fit_loops` are at most `max_loops`."""
    if ("fit" in v) == ("error" in v):
        out.append(f"{path}: needs exactly one of `fit` (the fitted curve) and `error` (why there is none)")
    top, best, span = v.get("max_loops"), v.get("best_loops"), v.get("fit_loops")
    if is_int(top) and is_int(best) and best > top:
        out.append(f"{path}.best_loops: {best} is above max_loops = {top}")
    if is_int(top) and isinstance(span, list) and len(span) == 2 and is_int(span[1]) and span[1] > top:
        out.append(f"{path}.fit_loops: ends at {span[1]}, above max_loops = {top}")


def _accuracy_rule(v: dict, path: str, out: list[str]) -> None:
    """`accuracy` lies inside its Wilson interval [`ci_low`, `ci_high`]."""
    acc, low, high = v.get("accuracy"), v.get("ci_low"), v.get("ci_high")
    if is_num(acc) and is_num(low) and is_num(high) and not low - ACC_TOL <= acc <= high + ACC_TOL:
        out.append(f"{path}: accuracy {show(acc)} is outside its Wilson interval [{show(low)}, {show(high)}]")


TEXT = Str(max_len=16384)  # notes and fit errors, which may name every diverged point
LEVEL = Open(0, 1)
INTERVAL = Ruled(Obj({"low": Nullable(Num()), "high": Nullable(Num()), "reason": Nullable(TEXT)}), _interval_rule)
BAND = Obj({"x": Arr(Num(0), 1), "low": Arr(Num()), "high": Arr(Num())},
           doc={"x": "the input grid the band is drawn over (a plot reads it; it never refits)",
                "low": "the lower percentile of the replicate curves at each x", "high": "the upper one"})
LAWS = {"power_law": (("E", "A", "alpha"), ("N",), "L = E + A·N^−α"),
        "loop_worth": (("E", "A", "alpha", "phi"), ("N_once", "N_rec", "loops"), "L = E + A·(N_once + r^φ·N_rec)^−α"),
        "test_time": (("L_inf", "L_0", "tau"), ("loops",), "L = L∞ + (L₀ − L∞)·e^(−T/τ)")}


def _law(law: str) -> Node:
    """A FitResult.to_dict() of one law: its parameters (all >= 0 in natural units) and observed inputs, and
    (files written since the results model) the bootstrap replicates and, for a power law, its band."""
    params, inputs, formula = LAWS[law]
    optional: dict[str, Node] = {"replicates": Obj({k: Arr(Num(0)) for k in params})}
    if law == "power_law":
        optional["band"] = BAND
    return Ruled(Obj({"law": Enum((law,)), "params": Obj({k: Num(0) for k in params}),
                      "intervals": Obj({k: INTERVAL for k in params}), "level": LEVEL, "n_points": Int(1),
                      "n_bootstrap": Int(0), "n_failed": Int(0), "rmse_log": Num(0),
                      "domain": Obj({k: Pair(Num(), Num(), ordered=True) for k in inputs})}, optional,
                     doc={"law": formula, "params": "natural units", "intervals": "percentile intervals",
                          "rmse_log": "RMSE of log L", "domain": "observed [low, high] range of each input",
                          "replicates": "each parameter's successful bootstrap fits, in order",
                          "band": "the pointwise bootstrap band of the fitted curve"}), _bootstrap_rule)


POWER_LAW, LOOP_WORTH, TEST_TIME = _law("power_law"), _law("loop_worth"), _law("test_time")
EQUIVALENCE = Ruled(Obj({"n_rdt": Open(0), "loss_rdt": Num(0), "n_eq": Nullable(Num(0)), "ratio": Nullable(Num(0)),
                         "ratio_interval": INTERVAL, "extrapolated": Bool(), "note": TEXT, "unbounded": Bool()},
                        doc={"loss_rdt": "the RDT law's loss at `n_rdt`",
                             "n_eq": "the standard size whose fitted loss equals `loss_rdt`"}),
                    _equivalence_rule)
COMPARISON = Either(
    "error", Obj({"comparison": Str(max_len=64), "error": Arr(TEXT, 1)}, doc={"error": "why there is no fit"}),
    Obj({"comparison": Str(max_len=64), "level": LEVEL, "rdt_loops": Nullable(Int(1)),
         "families": Obj(optional={"rdt": POWER_LAW, "standard": POWER_LAW}), "loop_worth": Nullable(LOOP_WORTH),
         "test_time": Arr(Obj({"params": Num(0), "fit": TEST_TIME})), "equivalence": Arr(EQUIVALENCE),
         "projections": Arr(EQUIVALENCE), "notes": Arr(TEXT)},
        doc={"comparison": "the label, e.g. `matched-tokens`", "rdt_loops": "the loop count of the rdt law",
             "families": "a power-law fit per family", "test_time": "loss against *training* loops at fixed N",
             "equivalence": "the standard size matching the RDT's fitted loss, per RDT size",
             "projections": "the same, extrapolated to sizes outside the fitted range"}))
CURVE = Ruled(Obj({"width": Int(1), "params": Int(0), "train_loops": Int(1),
                   "fit_loops": Pair(Int(1), Int(1), ordered=True), "best_loops": Int(1), "loss_best": Open(0),
                   "max_loops": Int(1), "loss_max_loops": Open(0)},
                  optional={"fit": TEST_TIME, "error": Arr(TEXT, 1)},
                  doc={"params": "unique parameters", "train_loops": "a training loop count of the rdt points",
                       "fit_loops": "[first, last] loop counts fitted", "best_loops": "loop count of lowest mean loss",
                       "fit": "the fitted test-time law", "error": "why there is no fit"}), _test_time_rule)
ACCURACY = Ruled(Obj({"difficulty": Int(1), "split": Enum(("train", "test")), "accuracy": Num(0, 1),
                      "ci_low": Num(0, 1), "ci_high": Num(0, 1)}, optional={"accuracy_max_loops": Num(0, 1)},
                     doc={"difficulty": "one of the task's; at most one entry per difficulty",
                          "split": "`train` exactly when the difficulty is a train difficulty of the task",
                          "accuracy_max_loops": "rdt only: the accuracy at the largest loop count"}), _accuracy_rule)
POINT = Obj({"name": Str(MODEL_NAME_RE, 64), "family": Enum(FAMILIES), "width": Int(1),
             "loops": Nullable(Int(1)), "seed": Int(0), "status": Enum(("complete", "diverged")), "n_heads": Int(1),
             "params": Obj({"unique": Int(0), "once": Int(0), "recurrent": Int(0)}),
             "flops_train_per_token": Num(0), "tokens": Int(0), "train_flops": Num(0), "train": TRAIN,
             "loss": Nullable(Open(0)), "loss_by_loops": Nullable(Arr(Pair(Int(1), Open(0)), 1)),
             "accuracy": Arr(ACCURACY)}, optional={"lr": Open(0), "validation_loss": Open(0), "loss_floor": Num(0)},
            doc={"name": "as a model name, e.g. `standard-w32`, `rdt-w32-r4`; a (`name`, `seed`) pair occurs once",
                 "width": "`d_model` of the point", "loops": "the training loop count r; required for `rdt`, "
                 "null for `standard`", "seed": "listed in the top-level `seeds`",
                 "params": "`unique = once + recurrent`; `recurrent` 0 for `standard`",
                 "tokens": "training tokens, equal to `train.tokens`",
                 "lr": "the peak learning rate the point trained with (`scale.lr_width_exponent` sets it per "
                       "width); absent in files written before it was recorded",
                 "validation_loss": "token cross-entropy on the task's validation split at the evaluated training "
                                    "difficulties (an RDT at r loops): what `scale.lr_grid` chooses on",
                 "loss_floor": "the task's exact per-token floor H (`Task.loss_floor`) averaged over the difficulties "
                               "`loss` averages over: the fits are of L − H; absent (0) in older files",
                 "train_flops": "`flops_train_per_token × tokens` (relative tolerance 1e-9)",
                 "train": "the training outcome, as a run's `train`",
                 "loss": "held-out token cross-entropy at the training difficulties (an RDT at r loops); null when "
                         "diverged",
                 "loss_by_loops": "rdt only: [loops, loss] per inference loop count, strictly increasing; its entry "
                                  "at r equals `loss`; required when an rdt point has a `loss`",
                 "accuracy": "per evaluated difficulty; empty when diverged"})
SCALE = Obj({"headline_loops": Int(1), "n_bootstrap": Int(0), "level": LEVEL, "train": Obj(), "eval": Obj()},
            optional={"reference_loops": Nullable(Int(1))},
            doc={"headline_loops": "the largest training loop count of the rdt points (the RDT law and both "
                                   "comparisons use it)", "level": "the interval level",
                 "reference_loops": "the model N_eq is counted in and the gate reads: null (or absent) the "
                                    "standard transformer, 1 the looped model's own r = 1 points (dense ladder)",
                 "train": "the training config every point used (free-form)", "eval": "the evaluation config"})
GATE_STEP = Obj({"from": Int(1), "to": Int(1), "drop": Num(), "se": Nullable(Num(0)), "passed": Nullable(Bool())},
                doc={"drop": "seed-mean excess loss at `from` minus that at `to`",
                     "se": "standard error of that difference; null with one seed at either width",
                     "passed": "`drop` > 2 `se`; null without a standard error"})
GATE = Obj({"reference": Str(max_len=64), "loss": Enum(("validation", "test")),
            "widths": Arr(Obj({"width": Int(1), "seeds": Int(1), "mean": Num(), "se": Nullable(Num(0))})),
            "steps": Arr(GATE_STEP), "passed": Nullable(Bool()), "summary": TEXT},
           doc={"reference": "the model the gate reads (`standard` or `rdt r=1`)",
                "loss": "which excess loss L − H: the validation split's (test only in files without it)",
                "widths": "per width: seeds, seed-mean excess loss and its standard error",
                "passed": "every step passed; null when undecided (under two widths or two seeds)"})
FITS = Obj({"matched_tokens": COMPARISON, "matched_flops": COMPARISON, "test_time": Arr(CURVE)},
           optional={"gate": GATE},
           doc={"matched_tokens": "N = unique parameters; an `error` saying `withheld` when the gate did not pass",
                "matched_flops": "N = training FLOPs", "gate": "the check before any fit (absent in older files)",
                "test_time": "one curve per training loop count and width: loss against *inference* loops "
                             "(older files: at r = `scale.headline_loops` only)"})
LR_CANDIDATE = Obj({"family": Enum(FAMILIES), "width": Int(1), "loops": Nullable(Int(1)), "lr": Open(0),
                    "seeds": Arr(Int(0)), "validation_loss": Nullable(Num(0)), "chosen": Bool()},
                   doc={"lr": "one candidate peak learning rate of (`family`, `width`, `loops`)",
                        "seeds": "the seeds every candidate of the group has trained; the mean is over them",
                        "validation_loss": "seed-mean validation loss; null when a seed diverged",
                        "chosen": "the candidate whose points are in `points`; at most one per group"})
SCALE_V1 = Obj({**PROVENANCE, "scale": SCALE, "points": Arr(POINT, 1), "fits": FITS, "notes": Arr(TEXT)},
               optional={"lr_selection": Arr(LR_CANDIDATE)},
               doc={**PROVENANCE_DOC, "points": "one per (model, seed)", "fits": "derived from the points",
                    "notes": "how to read the fits",
                    "lr_selection": "`scale.lr_grid` with several multipliers: every candidate learning rate"})


def _check_point(p: dict, path: str, train: set[int], test: set[int], out: list[str]) -> None:
    """What scale.py's `_point` guarantees beyond the shape: family and loops agree, counts add up, a diverged
    point has no numbers, and accuracies sit at the task's difficulties under the right split."""
    fam, loops, loss, curve = p.get("family"), p.get("loops"), p.get("loss"), p.get("loss_by_loops")
    if fam == "rdt" and "loops" in p and loops is None:
        out.append(f"{path}.loops: required for family 'rdt', got null")
    for key in ("loops", "loss_by_loops"):
        if fam == "standard" and p.get(key) is not None:
            out.append(f"{path}.{key}: must be null for family 'standard'")
    params = p.get("params") if isinstance(p.get("params"), dict) else {}
    unique, once, rec = (params.get(k) for k in ("unique", "once", "recurrent"))
    if is_int(unique) and is_int(once) and is_int(rec) and unique != once + rec:
        out.append(f"{path}.params.unique: {unique} is not once + recurrent = {once + rec}")
    if fam == "standard" and is_int(rec) and rec != 0:
        out.append(f"{path}.params.recurrent: {rec}, but a standard transformer has no looped part")
    tokens, per_token, flops = p.get("tokens"), p.get("flops_train_per_token"), p.get("train_flops")
    trained = p["train"].get("tokens") if isinstance(p.get("train"), dict) else None
    if is_int(tokens) and is_int(trained) and tokens != trained:
        out.append(f"{path}.tokens: {tokens} is not train.tokens = {trained}")
    if is_int(tokens) and is_num(per_token) and is_num(flops) and not math.isclose(
            flops, per_token * tokens, rel_tol=REL_TOL):
        out.append(f"{path}.train_flops: {show(flops)} is not flops_train_per_token * tokens = {per_token * tokens!r}")
    if p.get("status") == "diverged":
        for key in ("loss", "loss_by_loops"):
            if p.get(key) is not None:
                out.append(f"{path}.{key}: must be null for a diverged point")
        if p.get("accuracy"):
            out.append(f"{path}.accuracy: must be empty for a diverged point")
    elif fam == "rdt" and loss is not None and "loss_by_loops" in p and curve is None:
        out.append(f"{path}.loss_by_loops: null, but an rdt point with a loss has its loss-vs-loops curve")
    if isinstance(curve, list):
        counts = [e[0] for e in curve if isinstance(e, list) and len(e) == 2 and is_int(e[0])]
        if any(a >= b for a, b in zip(counts, counts[1:], strict=False)):
            out.append(f"{path}.loss_by_loops: loop counts {counts[:8]} are not strictly increasing")
        at = {e[0]: e[1] for e in curve if isinstance(e, list) and len(e) == 2 and is_int(e[0]) and is_num(e[1])}
        if is_int(loops) and is_num(loss) and loops in at and not math.isclose(at[loops], loss, rel_tol=REL_TOL):
            out.append(f"{path}.loss: {show(loss)} is not loss_by_loops at the training loops {loops}, {at[loops]!r}")
        elif is_int(loops) and is_num(loss) and len(at) == len(curve) and loops not in at:
            out.append(f"{path}.loss_by_loops: no entry at the training loop count {loops}")
    seen: dict[int, str] = {}
    for ap, a in dicts(p.get("accuracy"), f"{path}.accuracy"):
        d, split = a.get("difficulty"), a.get("split")
        if not is_int(d):
            continue
        if d in seen:
            out.append(f"{ap}.difficulty: duplicate difficulty {d} (also {seen[d]})")
        seen.setdefault(d, ap)
        if d not in train | test:
            out.append(f"{ap}.difficulty: {d} is not one of the task's difficulties")
        elif split in ("train", "test") and split != ("train" if d in train else "test"):
            out.append(f"{ap}.split: {show(split)}, but difficulty {d} is a "
                       f"{'train' if d in train else 'test'} difficulty of the task")
        if fam == "standard" and "accuracy_max_loops" in a:
            out.append(f"{ap}.accuracy_max_loops: a standard transformer has no loop counts")


def check_scale_v1(doc: dict) -> list[str]:
    """Every problem with a `kind: "scale"` document; [] if valid."""
    out: list[str] = []
    SCALE_V1.check(doc, "", out)
    check_provenance(doc, out)
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    train, test = set(ints(task.get("train_difficulties"))), set(ints(task.get("test_difficulties")))
    seeds, listed = set(ints(doc.get("seeds"))), isinstance(doc.get("seeds"), list)
    names: dict[tuple[str, int], str] = {}
    rdt_loops: set[int] = set()
    for pp, p in dicts(doc.get("points"), "points"):
        _check_point(p, pp, train, test, out)
        name, seed = p.get("name"), p.get("seed")
        if is_int(seed) and listed and seed not in seeds:
            out.append(f"{pp}.seed: {seed} is not listed in the top-level seeds")
        if isinstance(name, str) and is_int(seed):
            if (name, seed) in names:
                out.append(f"{pp}: duplicate point {show(name)} at seed {seed} (also {names[name, seed]})")
            names.setdefault((name, seed), pp)
        if p.get("family") == "rdt" and is_int(p.get("loops")):
            rdt_loops.add(p["loops"])
    scale = doc.get("scale") if isinstance(doc.get("scale"), dict) else {}
    headline = scale.get("headline_loops")
    # the ladder's largest loop count: a partial ladder may not have trained any point at it yet
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    configured = ints(config.get("scale", {}).get("loop_counts")) if isinstance(config.get("scale"), dict) else []
    if is_int(headline) and configured and headline != max(configured):
        out.append(f"scale.headline_loops: {headline} is not the largest of config.scale.loop_counts, "
                   f"{max(configured)}")
    elif is_int(headline) and rdt_loops and headline < max(rdt_loops):
        out.append(f"scale.headline_loops: {headline} is below the largest training loop count of the rdt "
                   f"points, {max(rdt_loops)}")
    chosen: dict[tuple, str] = {}
    for cp, c in dicts(doc.get("lr_selection"), "lr_selection"):
        group = (c.get("family"), c.get("width"), c.get("loops"))
        if c.get("chosen") is True and group in chosen:
            out.append(f"{cp}: a second chosen learning rate for {show(list(group))} (also {chosen[group]})")
        elif c.get("chosen") is True:
            chosen[group] = cp
    fits = doc.get("fits") if isinstance(doc.get("fits"), dict) else {}
    for cp, c in dicts(fits.get("test_time"), "fits.test_time"):
        if rdt_loops and is_int(c.get("train_loops")) and c["train_loops"] not in rdt_loops:
            out.append(f"{cp}.train_loops: {c['train_loops']} is not a training loop count of the rdt points, "
                       f"{sorted(rdt_loops)}")
    return out
