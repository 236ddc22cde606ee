"""Variable binding: follow a chain of assignments (x7 = x3, x3 = x9, x9 = 5) to the query's value.

Pointer chasing with a fixed point: once the value is reached nothing changes, so extra loops cannot
overshoot. By default the context always holds the same number of statements; the query's chain uses
`difficulty` of them and distractor chains fill the rest, so the benchmark varies depth, not length.
With `statements_per_hop` the number of statements grows with the difficulty instead, so easy instances
are short and hold few trivially copied targets next to their lookups (chain itself was never learned,
not even its one-hop lookup; docs/tuning.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mythbench.tasks.base import Batch, Family, Param, Solution
from mythbench.tasks.registry import register_task_family

ASSIGN, QUERY = "=", "?"


@register_task_family
class Chain(Family):
    """Shuffled statements `lhs = rhs`, then `? q =`, or statements `lhs rhs`, then `? q`; only the last
    position is scored (q's value). Without the assign token the query is one more statement (`?` is
    assigned q), so answering it is the same lookup as resolving any statement's rhs.

    Every variable is assigned exactly once and every chain ends in a value, so q has one answer,
    reached after exactly `difficulty` hops. Distractor chains break after each statement with
    probability 1/difficulty, so their lengths resemble the query chain's and chain length is no cue.

    Training is densely supervised: the rhs of every statement whose lhs reaches its value within
    `difficulty` hops is a training target too (that value). One scored position per 195 tokens gave
    too little signal to leave chance; the cap keeps training examples no deeper than their difficulty.
    With `copy_targets` false, statements whose rhs is already a value are not targets (nothing to look up).
    """

    name = "chain"
    params_schema = {
        "statements": Param(64, "assignments per instance (the fixed context)", minimum=1),
        "variables": Param(80, "distinct variable names x0..x{variables-1}", minimum=1),
        "values": Param(10, "distinct values 0..values-1", minimum=2),
        "statements_per_hop": Param(
            0, "if > 0: an instance of difficulty d holds statements_per_hop * d statements (the context "
            "grows with d) and `statements` is not used", minimum=0),
        "assign_token": Param(True, 'write each statement "lhs = rhs" (true) or "lhs rhs" (false)'),
        "copy_targets": Param(
            True, "supervise in training statements whose rhs is already a value too (a copy of the input); "
            "false keeps only the lookups, whose gradient the copies otherwise dilute"),
    }

    def check_combination(self) -> list[str]:
        if self.params["statements_per_hop"] == 0 and self.params["variables"] < self.params["statements"]:
            return [
                f"params: variables ({self.params['variables']}) must be at least statements "
                f"({self.params['statements']}): every statement assigns a different variable"
            ]
        return []

    def statements(self, difficulty: int) -> int:
        """Statements in an instance of this difficulty."""
        per_hop = self.params["statements_per_hop"]
        return per_hop * difficulty if per_hop else self.params["statements"]

    @property
    def width(self) -> int:
        """Tokens per statement."""
        return 3 if self.params["assign_token"] else 2

    def build_vocab(self) -> list[str]:
        names = [f"x{i}" for i in range(self.params["variables"])]
        values = [str(v) for v in range(self.params["values"])]
        return [ASSIGN, QUERY, *names, *values]

    def difficulty_range(self) -> tuple[int, int]:
        per_hop = self.params["statements_per_hop"]
        return 1, self.params["variables"] // per_hop if per_hop else self.params["statements"]

    def body_len(self, difficulty: int) -> int:
        return self.width * (self.statements(difficulty) + 1)

    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        m, v, d, w = self.statements(difficulty), self.params["variables"], difficulty, self.width
        first_var, first_value = self.id("x0"), self.id("0")
        # Slot s assigns variable names[s]; slots 0..d-1 are the query chain, the rest distractors.
        names = rng.permuted(np.broadcast_to(np.arange(v), (n, v)), axis=1)[:, :m]
        ends = np.zeros((n, m), dtype=bool)  # slot s ends its chain: its rhs is a value, not names[s+1]
        ends[:, d:] = rng.random((n, m - d)) < 1.0 / d
        ends[:, d - 1] = True
        ends[:, m - 1] = True
        values = rng.integers(0, self.params["values"], size=(n, m), dtype=np.int64) + first_value
        next_name = np.concatenate([names[:, 1:], names[:, :1]], axis=1) + first_var
        rhs = np.where(ends, values, next_name)
        lhs = names + first_var

        order = rng.permuted(np.broadcast_to(np.arange(m), (n, m)), axis=1)
        tokens = np.empty((n, w * (m + 1)), dtype=np.int64)
        tokens[:, 0 : w * m : w] = np.take_along_axis(lhs, order, axis=1)
        if w == 3:
            tokens[:, 1 : w * m : w] = self.id(ASSIGN)
        tokens[:, w - 1 : w * m : w] = np.take_along_axis(rhs, order, axis=1)
        tokens[:, w * m] = self.id(QUERY)
        tokens[:, w * m + 1] = lhs[:, 0]
        if w == 3:
            tokens[:, w * m + 2] = self.id(ASSIGN)
        targets = np.zeros_like(tokens)
        targets[:, -1] = values[:, d - 1]
        mask = np.zeros(tokens.shape, dtype=bool)
        mask[:, -1] = True

        # Slot s's chain ends at the first end slot t >= s: hops = t - s + 1, resolved value = values[t].
        slot = np.arange(m)
        end_at = np.minimum.accumulate(np.where(ends, slot, m)[:, ::-1], axis=1)[:, ::-1]
        hops = np.take_along_axis(end_at - slot, order, axis=1) + 1
        resolved = np.take_along_axis(np.take_along_axis(values, end_at, axis=1), order, axis=1)
        supervised = mask.copy()
        trained = (hops <= d) & (hops >= (1 if self.params["copy_targets"] else 2))
        supervised[:, w - 1 : w * m : w] = trained
        targets[:, w - 1 : w * m : w] = np.where(trained, resolved, 0)
        return Batch(tokens, targets, mask, supervised)

    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """Read the assignments into a dict, then follow them from the query; hints = variables visited."""
        w = self.width
        body, (query_mark, query, *last) = tokens[:-w], tokens[-w:]
        if query_mark != QUERY or last != [ASSIGN] * (w - 2) or len(body) % w:
            raise ValueError("chain: expected statements followed by the query '? q =' ('? q' without '=')")
        binding: dict[str, str] = {}
        for i in range(0, len(body), w):
            lhs, rhs = body[i], body[i + w - 1]
            if (w == 3 and body[i + 1] != ASSIGN) or lhs in binding or ASSIGN in (lhs, rhs):
                raise ValueError(f"chain: malformed or repeated assignment {' '.join(body[i : i + w])}")
            binding[lhs] = rhs
        visited = _follow(binding, query)
        depth = len(visited) - 1
        targets: list[str | None] = [None] * (len(tokens) - 1) + [visited[-1]]
        supervision = list(targets)
        shortest = 1 if self.params["copy_targets"] else 2
        for i in range(0, len(body), w):
            path = _follow(binding, body[i])
            if shortest <= len(path) - 1 <= depth:
                supervision[i + w - 1] = path[-1]
        return Solution(targets=targets, difficulty=depth, hints=visited, supervision=supervision)


def _follow(binding: dict[str, str], start: str) -> list[str]:
    """The variables visited from `start` to its value, both included."""
    visited = [start]
    current = start
    while current in binding:
        current = binding[current]
        if current in visited:
            raise ValueError(f"chain: cycle through {current}")
        visited.append(current)
    if not current.isdigit():
        raise ValueError(f"chain: {current} is never assigned")
    return visited
