"""Prefix parity (DT-nets' prefix sums mod 2): the simplest sequential state, one bit carried per step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mythbench.tasks.base import Batch, Family, Param, Solution, count_left_blanks, pad_left
from mythbench.tasks.registry import register_task_family

BLANK = "_"  # the fixed-context variant's left padding: it leaves the parity unchanged, like a 0 bit


@register_task_family
class Parity(Family):
    """n random bits; the target at bit i is the XOR of bits 1..i. Difficulty = n.

    With `context` = 0 the instance is the n bits (depth and length grow together). With `context` = C
    every instance is C tokens: C - n blanks, then the n bits, and only the bits are scored, so a harder
    instance needs more sequential steps in the same context.

    With `bits` = "biased" each instance first draws its own probability p ~ U(0, 1) of a 1, which makes
    the number of ones among the first i bits uniform on 0..i at every i. Fair bits put it near i/2: a
    model that maps the count of ones to a bit then sees counts like 12 of 16 (2.8%) too rarely to learn
    them reliably, and its held-out loss measures which rare counts a seed happened to learn, not capacity.
    """

    name = "parity"
    MAX_BITS = 4096
    params_schema = {
        "context": Param(0, "fixed body length (blanks, then the bits); 0 = as long as the bits", minimum=0,
                         maximum=MAX_BITS),
        "bits": Param("fair", "fair: each bit is 1 with probability 1/2; biased: each instance draws its own "
                      "probability p ~ U(0, 1), so every count of ones is equally likely", choices=("fair", "biased")),
        "train_near_constant": Param(-1, "at a training length that is also a test length, strings with at "
                                     "most this many bits unlike their majority bit lie in the training half "
                                     "whatever their hash (-1: none)", minimum=-1, maximum=MAX_BITS),
    }

    def build_vocab(self) -> list[str]:
        return ["0", "1", BLANK] if self.params["context"] else ["0", "1"]

    def difficulty_range(self) -> tuple[int, int]:
        return 1, self.params["context"] or self.MAX_BITS

    def body_len(self, difficulty: int) -> int:
        return self.params["context"] or difficulty

    def kept_for_training(self, tokens: np.ndarray) -> np.ndarray:
        """Near-constant strings: with biased bits the string with k of n bits unlike the rest has probability
        1 / ((n + 1) C(n, k)), so a test set drawn like training data holds them often, yet a hash split puts
        half of them where no training batch reaches (version 3: 1^20 0 was 3 of 512 test rows at n = 21)."""
        ones = (tokens == self.id("1")).sum(axis=1)
        bits = ones + (tokens == self.id("0")).sum(axis=1)
        return np.minimum(ones, bits - ones) <= self.params["train_near_constant"]

    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        if self.params["bits"] == "biased":
            bits = (rng.random((n, difficulty)) < rng.random((n, 1))).astype(np.int64)
        else:
            bits = rng.integers(0, 2, size=(n, difficulty), dtype=np.int64)
        prefix = np.bitwise_xor.accumulate(bits, axis=1)
        zero = self.id("0")  # ids of "0" and "1" are consecutive
        blank = self.id(BLANK) if self.params["context"] else 0
        return pad_left(bits + zero, prefix + zero, self.body_len(difficulty), blank)

    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """Skip the blanks, then loop over the bits, flipping a running parity at every 1."""
        blanks = count_left_blanks(self.name, tokens, BLANK, self.params["context"])
        running = 0
        states: list[str] = []
        for tok in tokens[blanks:]:
            if tok not in ("0", "1"):
                raise ValueError(f"parity: unexpected token {tok!r}")
            if tok == "1":
                running = 1 - running
            states.append(str(running))
        # Every bit is scored, and the state after each bit is the hint as well as the target.
        return Solution(targets=[None] * blanks + states, difficulty=len(states), hints=states)
