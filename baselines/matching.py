"""A looped model's twins: standard transformers built from its own config and matched to it, iso-param
(unique parameters) and iso-FLOP (forward FLOPs).

A twin keeps every block hyper-parameter of the looped model (attention, FFN, positions, convolution, widths:
`as_standard`), so a twin differs from its looped model in the loop only. The layer plan follows the Parcae
pairing: iso-param keeps the looped model's distinct layers (P/R/C = 1/2/1 against 4 layers), iso-FLOP
unrolls the loop (P + R*T + C layers). What the layer plan leaves over —
injection, per-loop LoRA, ACT head, router loop tables — is closed by tuning the FFN hidden width, the one
knob that moves the count smoothly. The result must land within tolerance or matching fails loudly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mythbench.baselines.standard import as_standard

from mythbench.core.errors import ConfigError
from mythbench.models.accounting import count_config
from mythbench.models.rdt_config import UPPER_BOUNDS, RDTConfig

PARAM_TOLERANCE = 0.02
FLOP_TOLERANCE = 0.05


def _ffn_knob(cfg: RDTConfig) -> str:
    """The width that sets most of the FFN parameters: dense hidden if any dense layer exists, else experts'."""
    has_dense = cfg.ffn == "dense" or cfg.prelude_layers + cfg.coda_layers > 0
    return "ffn_hidden" if has_dense else "expert_hidden"


def _closest_width(make: Callable[[int], RDTConfig], measure: Callable[[RDTConfig], float], target: float,
                   start: int, limit: int) -> RDTConfig:
    """Smallest |measure - target| over the knob in [1, limit]; measure grows with the knob, so bisect, then
    compare."""
    lo, hi = 1, min(max(2, start), limit)
    while measure(make(hi)) < target and hi < limit:
        hi = min(2 * hi, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if measure(make(mid)) < target else (lo, mid)
    return min((make(lo), make(hi)), key=lambda c: abs(measure(c) - target))


def _match(rdt: RDTConfig, layers: tuple[int, int, int], measure: Callable[[RDTConfig], float],
           target: float, tolerance: float, kind: str) -> RDTConfig:
    knob = _ffn_knob(rdt)
    make = lambda w: as_standard(rdt, *layers, **{knob: w})  # noqa: E731
    best = _closest_width(make, measure, target, getattr(rdt, knob), UPPER_BOUNDS[knob])
    error = abs(measure(best) - target) / target
    if error > tolerance:
        raise ConfigError(f"{kind}: cannot match within {tolerance:.0%} by {knob} alone (best "
                          f"{measure(best):.4g} vs {target:.4g}, {error:.1%} off); change the model's widths")
    return best


def iso_param(family: str, rdt: RDTConfig) -> RDTConfig:
    """Same unique (non-embedding) parameter count as the looped model (`family` at config `rdt`), within 2%,
    with its distinct layers."""
    target = count_config(family, rdt).params_unique
    measure = lambda c: count_config("standard", c).params_unique  # noqa: E731
    return _match(rdt, (rdt.prelude_layers, rdt.recurrent_layers, rdt.coda_layers), measure, target,
                  PARAM_TOLERANCE, "iso-param")


def iso_flop(family: str, rdt: RDTConfig) -> RDTConfig:
    """Same forward FLOPs per token as the looped model at its training loop count, within 5%: the loop
    unrolled."""
    target = count_config(family, rdt).flops_forward
    measure = lambda c: count_config("standard", c).flops_forward  # noqa: E731
    layers = (rdt.prelude_layers, rdt.recurrent_layers * rdt.train_loops, rdt.coda_layers)
    return _match(rdt, layers, measure, target, FLOP_TOLERANCE, "iso-flop")


def ablation(**changes: object) -> Callable[[RDTConfig], RDTConfig]:
    """An RDT variant differing from the reference in the given fields only."""
    return lambda rdt: dataclasses.replace(rdt, **changes)
