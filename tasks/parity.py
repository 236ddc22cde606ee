"""Prefix parity (DT-nets' prefix sums mod 2): the simplest sequential state, one bit carried per step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tasks.base import PAD, Batch, Family, Solution


class Parity(Family):
    """n random bits; the target at position i is the XOR of bits 0..i. Difficulty = n = sequence length."""

    name = "parity"
    MAX_BITS = 4096

    def build_vocab(self) -> list[str]:
        return [PAD, "0", "1"]

    def difficulty_range(self) -> tuple[int, int]:
        return 1, self.MAX_BITS

    def seq_len(self, difficulty: int) -> int:
        return difficulty

    def sample(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        bits = rng.integers(0, 2, size=(n, difficulty), dtype=np.int64)
        prefix = np.bitwise_xor.accumulate(bits, axis=1)
        zero = self.id("0")  # ids of "0" and "1" are consecutive
        return Batch(bits + zero, prefix + zero, np.ones_like(bits, dtype=bool))

    def solve(self, tokens: Sequence[str]) -> Solution:
        """Loop over the bits, flipping a running parity at every 1."""
        running = 0
        states: list[str] = []
        for tok in tokens:
            if tok not in ("0", "1"):
                raise ValueError(f"parity: unexpected token {tok!r}")
            if tok == "1":
                running = 1 - running
            states.append(str(running))
        # Every position is scored, and the state after each bit is the hint as well as the target.
        return Solution(targets=list(states), difficulty=len(tokens), hints=states)
