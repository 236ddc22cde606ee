"""k-hop induction heads (Sanford, Hsu & Telgarsky 2024, "Transformers, parallel computation, and
logarithmic depth"): composing k induction-head lookups needs depth that grows with k (log k for a
transformer), which makes k a direct depth knob at a fixed sequence length.

Definition (as in the authors' code, chsanford/hop-induction-heads): X is a random string with no
immediate repeats. One hop from position i: find the most recent earlier position j < i with
X[j] = X[i] and move to j + 1. hop_k(X)_i is the character reached after k hops from i, or "does not
exist" as soon as a hop finds no earlier occurrence. The input is [k, X_1..X_N] and the target at
every character position is hop_k; the paper's experiments use 4 characters, N around 100 and k up to
16 (the authors' code feeds k + 98 characters; the default here is k + 99 = 100 positions).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
from mythbench.tasks.base import Batch, Family, Param, Solution
from mythbench.tasks.registry import register_task_family

NONE = "~"  # "does not exist": the paper's own symbol
UNARY_ON, UNARY_OFF = "H", "."


@register_task_family
class KHop(Family):
    """Input: k (one token "k<k>", or a unary prefix of max_k slots), then `length` characters.

    The target at every character position is hop_k there (a character or NONE); the k prefix is not
    scored. Sequence length does not depend on k. Tasks built on it train on every k they test, so
    every k token is seen in training (see khop.yaml for the question that answers).
    """

    name = "khop"
    params_schema = {
        "alphabet": Param(4, "number of distinct characters", minimum=2, maximum=26),
        "length": Param(99, "characters per instance (the paper's 100 positions = k token + 99)", minimum=2),
        "max_k": Param(16, "largest k the vocabulary can express", minimum=1),
        "k_encoding": Param(
            "token",
            'how k is given: "token" (one token per k, as in the paper) or "unary" '
            "(max_k slots, the first k of them marked), whose tokens are all seen in training at any k",
            choices=("token", "unary"),
        ),
    }

    def build_vocab(self) -> list[str]:
        letters = list(string.ascii_lowercase[: self.params["alphabet"]])
        if self.params["k_encoding"] == "token":
            k_tokens = [f"k{k}" for k in range(1, self.params["max_k"] + 1)]
        else:
            k_tokens = [UNARY_ON, UNARY_OFF]
        return [*letters, NONE, *k_tokens]

    def difficulty_range(self) -> tuple[int, int]:
        return 1, self.params["max_k"]

    def prefix_len(self) -> int:
        return 1 if self.params["k_encoding"] == "token" else self.params["max_k"]

    def body_len(self, difficulty: int) -> int:
        return self.prefix_len() + self.params["length"]

    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        a, length = self.params["alphabet"], self.params["length"]
        # Uniform first character, then each next one uniform over the a-1 others: no immediate repeats.
        steps = rng.integers(1, a, size=(n, length), dtype=np.int64)
        steps[:, 0] = rng.integers(0, a, size=n, dtype=np.int64)
        chars = np.cumsum(steps, axis=1) % a

        # prev[t] = most recent j < t with chars[j] == chars[t], else -1 (one running max per character).
        pos = np.arange(length, dtype=np.int64)
        prev = np.full((n, length), -1, dtype=np.int64)
        for c in range(a):
            is_c = chars == c
            last = np.maximum.accumulate(np.where(is_c, pos, -1), axis=1)
            before = np.concatenate([np.full((n, 1), -1, dtype=np.int64), last[:, :-1]], axis=1)
            prev = np.where(is_c, before, prev)
        # One hop as a pointer table with an absorbing sentinel `length` for "does not exist".
        hop = np.concatenate([np.where(prev >= 0, prev + 1, length), np.full((n, 1), length)], axis=1)
        where = np.broadcast_to(pos, (n, length))
        for _ in range(difficulty):
            where = np.take_along_axis(hop, where, axis=1)

        first_char = self.id("a")
        chars_ext = np.concatenate([chars + first_char, np.full((n, 1), self.id(NONE))], axis=1)
        answers = np.take_along_axis(chars_ext, where, axis=1)

        prefix = self.prefix_len()
        tokens = np.empty((n, prefix + length), dtype=np.int64)
        if self.params["k_encoding"] == "token":
            tokens[:, 0] = self.id(f"k{difficulty}")
        else:
            tokens[:, :prefix] = self.id(UNARY_OFF)
            tokens[:, :difficulty] = self.id(UNARY_ON)
        tokens[:, prefix:] = chars + first_char
        targets = np.zeros_like(tokens)
        targets[:, prefix:] = answers
        mask = np.zeros(tokens.shape, dtype=bool)
        mask[:, prefix:] = True
        return Batch.scored(tokens, targets, mask)

    def read_k(self, tokens: Sequence[str]) -> int:
        """k as written in the instance's prefix."""
        if self.params["k_encoding"] == "token":
            if not tokens or not tokens[0].startswith("k"):
                raise ValueError("khop: the first token must give k")
            return int(tokens[0][1:])
        prefix = list(tokens[: self.prefix_len()])
        k = prefix.count(UNARY_ON)
        if prefix != [UNARY_ON] * k + [UNARY_OFF] * (len(prefix) - k):
            raise ValueError(f"khop: malformed unary prefix {''.join(prefix)!r}")
        return k

    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """Hop one step at a time, scanning backwards for the previous occurrence; hints = hop_1..hop_k."""
        k = self.read_k(tokens)
        text = list(tokens[self.prefix_len() :])
        prefix: list[str | None] = [None] * self.prefix_len()
        where: list[int | None] = list(range(len(text)))
        hints = []
        for _ in range(k):
            for i, p in enumerate(where):
                if p is None:
                    continue
                j = p - 1
                while j >= 0 and text[j] != text[p]:
                    j -= 1
                where[i] = j + 1 if j >= 0 else None
            hints.append("".join(NONE if p is None else text[p] for p in where))
        answers: list[str | None] = [NONE if p is None else text[p] for p in where]
        return Solution(targets=prefix + answers, difficulty=k, hints=hints)
