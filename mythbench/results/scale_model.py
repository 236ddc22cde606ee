"""The results model of `kind: "scale"` files (schema_version 1), the ones `mythbench scale` writes.

The same provenance as a run file (results_model.Provenance), then the ladder's `points`
(experiments/scale.py's `_point`), the scaling `fits` (analysis/fits.py's `to_dict()`) and `notes`. Points
are checked strictly, since every table and fit is computed from them; the fits are derived numbers that
`mythbench fit` recomputes, so they are checked for shape and internal consistency only.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field

from mythbench.results.results_model import (
    FAMILY_RE,
    MODEL_NAME_RE,
    Count,
    Fraction,
    Model,
    NonNegative,
    Positive,
    Provenance,
    Split,
    Text,
    Train,
    duplicates,
    repeats,
    rules,
)

SCALE_SCHEMA_VERSION = 1  # what `mythbench scale` writes
REL_TOL = 1e-9  # numbers the writer derives from others with one float operation
PositiveFloat = Annotated[float, Field(gt=0)]
Level = Annotated[float, Field(gt=0, lt=1)]
LongText = Text(max_len=16384)  # notes and fit errors, which may name every diverged point
LAWS = {"power_law": ("E", "A", "alpha"), "loop_worth": ("E", "A", "alpha", "phi"),
        "test_time": ("L_inf", "L_0", "tau")}


class Interval(Model):
    low: float | None
    high: float | None
    reason: LongText | None = Field(description="why an end is null (the bootstrap could not support it)")
    check_interval = rules(lambda v: (
        [f"low: {v.low!r} is above high {v.high!r}"] if None not in (v.low, v.high) and v.low > v.high else [])
        + (["reason: null, but an end of the interval is null"] if v.reason is None and None in (v.low, v.high)
           else []))


class Band(Model):
    x: list[NonNegative] = Field(min_length=1, description="the input grid the band is drawn over")
    low: list[float] = Field(description="the lower percentile of the replicate curves at each x")
    high: list[float]


class Law(Model):
    """A FitResult.to_dict(): its parameters (>= 0, natural units), percentile intervals, the observed range of
    each input (`domain`), and (newer files) the bootstrap replicates and, for a power law, its band."""

    law: Literal["power_law", "loop_worth", "test_time"]
    params: dict[str, NonNegative]
    intervals: dict[str, Interval]
    level: Level
    n_points: Positive
    n_bootstrap: Count
    n_failed: Count
    rmse_log: NonNegative = Field(description="RMSE of log L")
    domain: dict[str, list[float]]
    replicates: dict[str, list[NonNegative]] | None = None
    band: Band | None = None
    check_law = rules(lambda f: law_problems(f))


class Equivalence(Model):
    n_rdt: PositiveFloat
    loss_rdt: NonNegative = Field(description="the RDT law's loss at `n_rdt`")
    n_eq: NonNegative | None = Field(description="the standard size whose fitted loss equals `loss_rdt`")
    ratio: NonNegative | None = Field(description="`n_eq / n_rdt`; null exactly when `n_eq` is")
    ratio_interval: Interval
    extrapolated: bool
    note: LongText
    unbounded: bool = Field(description="true exactly when `n_eq` is null")
    check_ratio = rules(lambda e: (
        [f"unbounded: {str(e.unbounded).lower()}, but n_eq is {e.n_eq!r} (null exactly when unbounded)"]
        if e.unbounded != (e.n_eq is None) else [])
        + ([f"ratio: {e.ratio!r}, but n_eq is {e.n_eq!r} (both null or both numbers)"]
           if (e.ratio is None) != (e.n_eq is None) else [])
        + ([f"ratio: {e.ratio!r} is not n_eq / n_rdt = {e.n_eq / e.n_rdt!r}"] if None not in (e.ratio, e.n_eq)
           and not math.isclose(e.ratio, e.n_eq / e.n_rdt, rel_tol=REL_TOL) else []))


class TimeFit(Model):
    params: NonNegative
    fit: Law


class Comparison(Model):
    """Either the fits of one comparison (`matched-tokens`, `matched-flops`) or, in `error`, why there are none."""

    comparison: Text(max_len=64)
    error: list[LongText] | None = Field(None, min_length=1, description="why there is no fit")
    level: Level | None = None
    rdt_loops: Positive | None = None
    families: dict[Literal["rdt", "standard"], Law] | None = Field(None, description="a power law per family")
    loop_worth: Law | None = None
    test_time: list[TimeFit] | None = None
    equivalence: list[Equivalence] | None = Field(None, description="the standard size matching each RDT size")
    projections: list[Equivalence] | None = None
    notes: list[LongText] | None = None
    check_fit = rules(lambda c: [] if c.error is not None else [
        f"{k}: required field is missing" for k in ("level", "families", "test_time", "equivalence", "projections",
                                                    "notes") if getattr(c, k) is None]
        + [f"families.{k}.law: {f.law!r} is not 'power_law'" for k, f in (c.families or {}).items()
           if f.law != "power_law"])


class Curve(Model):
    """Loss against inference loops of one (training loop count, width), and its fitted law or an error."""

    width: Positive
    params: Count
    train_loops: Positive
    fit_loops: list[Positive] = Field(min_length=2, max_length=2, description="[first, last] loop counts fitted")
    best_loops: Positive
    loss_best: PositiveFloat
    max_loops: Positive
    loss_max_loops: PositiveFloat
    fit: Law | None = None
    error: list[LongText] | None = Field(None, min_length=1)
    check_curve = rules(lambda c: (
        ["fit: needs exactly one of `fit` (the fitted curve) and `error` (why there is none)"]
        if (c.fit is None) == (c.error is None) else [])
        + ([f"best_loops: {c.best_loops} is above max_loops = {c.max_loops}"] if c.best_loops > c.max_loops else [])
        + ([f"fit_loops: {c.fit_loops} is not ordered or ends above max_loops = {c.max_loops}"]
           if not c.fit_loops[0] <= c.fit_loops[1] <= c.max_loops else []))


class Accuracy(Model):
    difficulty: Positive
    split: Split
    accuracy: Fraction
    ci_low: Fraction
    ci_high: Fraction
    accuracy_max_loops: Fraction | None = Field(None, description="looped points: at the largest loop count")
    check_accuracy = rules(lambda a: [] if a.ci_low - 1e-9 <= a.accuracy <= a.ci_high + 1e-9 else [
        f"accuracy: {a.accuracy!r} is outside its Wilson interval [{a.ci_low!r}, {a.ci_high!r}]"])


class PointParams(Model):
    unique: Count = Field(description="`once + recurrent`")
    once: Count
    recurrent: Count


class Point(Model):
    name: Text(MODEL_NAME_RE, 64, doc="e.g. `standard-w32`, `rdt-w32-r4`; a (`name`, `seed`) pair occurs once")
    family: Text(FAMILY_RE, 64)
    width: Positive
    loops: Positive | None = Field(description="the training loop count r; null for a model that does not loop")
    seed: Count
    status: Literal["complete", "diverged"]
    n_heads: Positive
    params: PointParams
    flops_train_per_token: NonNegative
    tokens: Count = Field(description="training tokens, equal to `train.tokens`")
    train_flops: NonNegative = Field(description="`flops_train_per_token × tokens`")
    train: Train
    loss: PositiveFloat | None = Field(description="held-out cross-entropy at the training difficulties")
    loss_by_loops: list[list[float]] | None = Field(min_length=1, description="[loops, loss] per loop count")
    accuracy: list[Accuracy] = Field(description="per evaluated difficulty; empty when diverged")
    lr: PositiveFloat | None = None
    validation_loss: PositiveFloat | None = None
    loss_floor: NonNegative | None = Field(None, description="the task's exact per-token floor H")


class ScaleSettings(Model):
    headline_loops: Positive = Field(description="the largest training loop count of the ladder")
    n_bootstrap: Count
    level: Level
    train: dict[str, Any]
    eval: dict[str, Any]
    reference_loops: Positive | None = Field(None, description="null: the standard transformer is the reference")


class GateWidth(Model):
    width: Positive
    seeds: Positive
    mean: float
    se: NonNegative | None


class GateStep(Model):
    from_: Positive = Field(alias="from")
    to: Positive
    drop: float
    se: NonNegative | None
    passed: bool | None


class Gate(Model):
    reference: Text(max_len=64)
    loss: Literal["validation", "test"]
    widths: list[GateWidth]
    steps: list[GateStep]
    passed: bool | None
    summary: LongText


class Fits(Model):
    matched_tokens: Comparison
    matched_flops: Comparison
    test_time: list[Curve]
    gate: Gate | None = None


class LRCandidate(Model):
    family: Text(FAMILY_RE, 64)
    width: Positive
    loops: Positive | None
    lr: PositiveFloat
    seeds: list[Count]
    validation_loss: NonNegative | None
    chosen: bool


class ScaleFileV1(Provenance):
    scale: ScaleSettings
    points: list[Point] = Field(min_length=1, description="one per (model, seed)")
    fits: Fits
    notes: list[LongText]
    lr_selection: list[LRCandidate] | None = None
    check_points = rules(lambda doc: scale_problems(doc))


def law_problems(f: Law) -> list[str]:
    """Its parameters, intervals and domain; replicates of the successful bootstrap fits; an ordered band."""
    out = [f"params.{k}: required field is missing" for k in LAWS[f.law] if k not in f.params]
    out += [f"domain.{k}: {v} is not an ordered [low, high] pair" for k, v in f.domain.items()
            if len(v) != 2 or v[0] > v[1]]
    if f.n_failed > f.n_bootstrap:
        out.append(f"n_failed: {f.n_failed} is more than n_bootstrap = {f.n_bootstrap}")
    out += [f"replicates.{k}: {len(v)} values, not n_bootstrap - n_failed = {f.n_bootstrap - f.n_failed}"
            for k, v in (f.replicates or {}).items() if len(v) != f.n_bootstrap - f.n_failed]
    if f.band and len({len(f.band.x), len(f.band.low), len(f.band.high)}) > 1:
        out.append("band: x, low and high differ in length")
    elif f.band and any(lo > hi for lo, hi in zip(f.band.low, f.band.high, strict=True)):
        out.append("band: low is above high somewhere")
    return out


def point_problems(p: Point, path: str, doc: ScaleFileV1) -> list[str]:
    """What scale.py's `_point` guarantees: loops and family agree, counts add up, a diverged point has no
    numbers, and accuracies sit at the task's difficulties under the right split."""
    out = [f"{path}.seed: {p.seed} is not listed in the top-level seeds"] if p.seed not in doc.seeds else []
    if p.params.unique != p.params.once + p.params.recurrent:
        out.append(f"{path}.params.unique: {p.params.unique} is not once + recurrent = "
                   f"{p.params.once + p.params.recurrent}")
    if p.loops is None and (p.params.recurrent or p.loss_by_loops is not None):
        out.append(f"{path}.loops: null, but the point has a looped part (params.recurrent or loss_by_loops)")
    if p.tokens != p.train.tokens:
        out.append(f"{path}.tokens: {p.tokens} is not train.tokens = {p.train.tokens}")
    if not math.isclose(p.train_flops, p.flops_train_per_token * p.tokens, rel_tol=REL_TOL):
        out.append(f"{path}.train_flops: {p.train_flops!r} is not flops_train_per_token * tokens = "
                   f"{p.flops_train_per_token * p.tokens!r}")
    if p.status == "diverged":
        out += [f"{path}.{k}: must be null for a diverged point" for k in ("loss", "loss_by_loops")
                if getattr(p, k) is not None]
        out += [f"{path}.accuracy: must be empty for a diverged point"] if p.accuracy else []
    elif p.loops is not None and p.loss is not None and p.loss_by_loops is None:
        out.append(f"{path}.loss_by_loops: null, but a looped point with a loss has its loss-vs-loops curve")
    curve = p.loss_by_loops or []
    if any(len(e) != 2 or e[0] != int(e[0]) or e[0] < 1 or e[1] <= 0 for e in curve):
        out.append(f"{path}.loss_by_loops: every entry is [loops >= 1, loss > 0]")
    elif any(a[0] >= b[0] for a, b in zip(curve, curve[1:], strict=False)):
        out.append(f"{path}.loss_by_loops: loop counts are not strictly increasing")
    elif curve and p.loops is not None and p.loss is not None:
        at = {int(e[0]): e[1] for e in curve}
        if p.loops not in at:
            out.append(f"{path}.loss_by_loops: no entry at the training loop count {p.loops}")
        elif not math.isclose(at[p.loops], p.loss, rel_tol=REL_TOL):
            out.append(f"{path}.loss: {p.loss!r} is not loss_by_loops at the training loops {p.loops}, {at[p.loops]!r}")
    out += repeats([(a.difficulty, f"{path}.accuracy[{i}]") for i, a in enumerate(p.accuracy)],
                   "difficulty", "difficulty")
    for i, a in enumerate(p.accuracy):
        ap = f"{path}.accuracy[{i}]"
        if a.difficulty not in doc.task.train_difficulties + doc.task.test_difficulties:
            out.append(f"{ap}.difficulty: {a.difficulty} is not one of the task's difficulties")
        elif a.split != doc.task.split(a.difficulty):
            out.append(f"{ap}.split: {a.split!r}, but difficulty {a.difficulty} is a "
                       f"{doc.task.split(a.difficulty)} difficulty of the task")
        if p.loops is None and a.accuracy_max_loops is not None:
            out.append(f"{ap}.accuracy_max_loops: a model that does not loop has no loop counts")
    return out


def scale_problems(doc: ScaleFileV1) -> list[str]:
    """The points one by one and against each other, the headline loop count, one chosen rate per group."""
    out = duplicates(doc.seeds, "seeds", "seed")
    names: dict[tuple[str, int], str] = {}
    for i, p in enumerate(doc.points):
        out += point_problems(p, f"points[{i}]", doc)
        if (p.name, p.seed) in names:
            out.append(f"points[{i}]: duplicate point {p.name!r} at seed {p.seed} (also {names[p.name, p.seed]})")
        names.setdefault((p.name, p.seed), f"points[{i}]")
    looped = {p.loops for p in doc.points if p.loops is not None}
    section = doc.config.get("scale")  # config is free-form: a section may be anything
    configured = section.get("loop_counts") if isinstance(section, dict) else None
    headline = doc.scale.headline_loops
    if isinstance(configured, list) and configured and all(type(x) is int for x in configured):
        if headline != max(configured):
            out.append(f"scale.headline_loops: {headline} is not the largest of config.scale.loop_counts, "
                       f"{max(configured)}")
    elif looped and headline < max(looped):
        out.append(f"scale.headline_loops: {headline} is below the largest training loop count of the looped "
                   f"points, {max(looped)}")
    chosen: dict[tuple, str] = {}
    for i, c in enumerate(doc.lr_selection or []):
        group = (c.family, c.width, c.loops)
        if c.chosen and group in chosen:
            out.append(f"lr_selection[{i}]: a second chosen learning rate for {list(group)} (also {chosen[group]})")
        if c.chosen:
            chosen.setdefault(group, f"lr_selection[{i}]")
    out += [f"fits.test_time[{i}].train_loops: {c.train_loops} is not a training loop count of the looped points, "
            f"{sorted(looped)}" for i, c in enumerate(doc.fits.test_time) if looped and c.train_loops not in looped]
    return out
