"""Metrics as plugins: what every evaluated cell counts, and the rate each count gives when read.

A metric counts `hits` of `total` from a chunk's predictions (argmax token ids), targets and mask of scored
positions, all [batch, seq]. The evaluation stores the two counts in each cell under the metric's keys;
readers compute the rate (`name`) from them, so results files hold raw counts only. Exact match is the
headline metric (it gets a Wilson interval and decides the tables' verdicts); every other registered metric
is shown beside it in summaries, tables, the leaderboard's markdown and the report. Register a plugin's
metric at import time, before the runs that should count it:

    register_metric("answer_accuracy", "answer_correct", "answers", count=first_scored_position_right,
                    short="ans", description="the first scored position right")
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mythbench.core.errors import ConfigError

if TYPE_CHECKING:  # readers of results files never import torch
    from torch import Tensor

Counter = Callable[["Tensor", "Tensor", "Tensor"], tuple[int, int]]
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Metric:
    name: str  # the rate's key in read cells and summaries, e.g. `token_accuracy`
    hits: str  # the count keys a cell stores: hits of total
    total: str
    count: Counter  # (predictions, targets, mask) -> (hits, total) for one chunk
    short: str  # its column tag on the leaderboard and in compact tables
    description: str

    def rate(self, cell: dict) -> float | None:
        """hits / total of a cell that counted this metric (None if it did not: an older file or metric)."""
        if cell.get(self.hits) is None or cell.get(self.total) is None:
            return None
        return cell[self.hits] / max(1, cell[self.total])


METRICS: dict[str, Metric] = {}


def register_metric(name: str, hits: str, total: str, count: Counter, short: str, description: str) -> Metric:
    """Add a metric every later evaluation counts; ConfigError naming every clash or bad key."""
    problems = [f"{what}: {key!r} is not a lowercase key (letters, digits, _)" for what, key in
                (("name", name), ("hits", hits), ("total", total), ("short", short)) if not _KEY.fullmatch(key)]
    taken = {k: m.name for m in METRICS.values() for k in (m.name, m.hits, m.total)}
    taken |= dict.fromkeys(("difficulty", "loops", "loss", "ci_low", "ci_high"), "the cell")
    problems += [f"{key!r} is already used by {taken[key]!r}" for key in dict.fromkeys((name, hits, total))
                 if key in taken]
    problems += [f"short: {short!r} is already the short name of {m.name!r}" for m in METRICS.values()
                 if m.short == short]
    if len({name, hits, total}) < 3:
        problems.append(f"name, hits and total must be three different keys, got {name!r}, {hits!r}, {total!r}")
    if problems:
        raise ConfigError([f"register_metric({name!r}): {p}" for p in problems])
    METRICS[name] = Metric(name, hits, total, count, short, description)
    return METRICS[name]


def _exact_match(pred: Tensor, targets: Tensor, mask: Tensor) -> tuple[int, int]:
    return int(((pred == targets) | ~mask).all(-1).sum()), len(pred)


def _token_accuracy(pred: Tensor, targets: Tensor, mask: Tensor) -> tuple[int, int]:
    return int(((pred == targets) & mask).sum()), int(mask.sum())


EXACT = register_metric("accuracy", "correct", "n", _exact_match, "acc",
                        "exact match: every scored position of the sequence right (the headline)")
register_metric("token_accuracy", "token_correct", "tokens", _token_accuracy, "tok",
                "scored positions predicted right")


def secondary() -> list[Metric]:
    """Every registered metric but exact match, in registration order: what is shown beside the headline."""
    return [m for m in METRICS.values() if m is not EXACT]
