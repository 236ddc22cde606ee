"""Zipfian facts for scaling laws: a fixed random table queried at power-law frequencies.

The quantization model (Michaud et al. 2023): if skills are used at frequencies p_r ∝ r^-alpha and a model
learns them in order of use, its loss falls as a power law in its size, with exponent set by alpha. Here a
skill is one fact of a fixed random table: a permutation f of the K = alphabet^key_len keys, drawn once
from `table_seed` (so every split and every seed queries the same facts), and each query's key is drawn
with probability ∝ rank^-alpha over a random order of the keys. Keys are written with `key_len` symbols,
so a fact must be stored in the network's weights rather than in one embedding row per key.

Two tasks share the table. zipf-recall asks for f(key): storage only, whose capacity should scale with
unique parameters, so loops should not help (phi ≈ 0 is the expected control). zipf-hops asks for
f^k(key): k lookups of the same table in sequence, composition that a looped model can do one hop per
loop. Instances are drawn afresh for every training step.

The loss floor is exact: every label is a function of the input, so the Bayes-optimal loss is 0, unless
`noise` replaces each answer symbol with a uniform one with that probability; the floor is then the
entropy of that noise (`loss_floor`), so a scaling fit can be of the excess loss L - H with H known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property

import numpy as np
from mythbench.tasks.base import Batch, Family, Param, Solution
from mythbench.tasks.registry import register_task_family

UNARY_ON, UNARY_OFF = "H", "."  # k written in unary, as in khop: every prefix token is seen at every k
MAX_KEYS = 1 << 20


@register_task_family
class ZipfFacts(Family):
    """Input: k in unary (max_k slots, the first k marked), then `queries` queries, each a key's `key_len`
    symbols followed by `key_len` answer slots "?0".."?{key_len-1}"; the target at slot j is symbol j of
    f^k(key). Only the slots are scored; the sequence length does not depend on k.
    """

    name = "zipf"
    params_schema = {
        "alphabet": Param(16, "symbols a key is written with", minimum=2, maximum=64),
        "key_len": Param(3, "symbols per key: the table has alphabet ** key_len keys", minimum=1, maximum=8),
        "alpha": Param(1.5, "Zipf exponent: the key of frequency rank r is queried with probability ∝ r^-alpha"),
        "queries": Param(16, "queries per instance", minimum=1),
        "max_k": Param(8, "largest number of hops (the unary prefix's length)", minimum=1),
        "table_seed": Param(0, "seed of the fixed table and of the keys' frequency order", minimum=0),
        "noise": Param(0.0, "probability that an answer symbol is replaced by a uniform random symbol"),
    }

    def check_combination(self) -> list[str]:
        problems = []
        if self.keys() > MAX_KEYS:
            problems.append(f"params: alphabet ** key_len = {self.keys()} keys, more than the {MAX_KEYS} allowed")
        if not 0.0 <= self.params["alpha"] <= 8.0:
            problems.append(f"params.alpha: {self.params['alpha']} is outside [0, 8]")
        if not 0.0 <= self.params["noise"] < 1.0:
            problems.append(f"params.noise: {self.params['noise']} is outside [0, 1)")
        return problems

    def keys(self) -> int:
        return self.params["alphabet"] ** self.params["key_len"]

    def build_vocab(self) -> list[str]:
        symbols = [f"c{i}" for i in range(self.params["alphabet"])]
        slots = [f"?{j}" for j in range(self.params["key_len"])]
        return [*symbols, *slots, UNARY_ON, UNARY_OFF]

    def difficulty_range(self) -> tuple[int, int]:
        return 1, self.params["max_k"]

    def body_len(self, difficulty: int) -> int:
        return self.params["max_k"] + 2 * self.params["key_len"] * self.params["queries"]

    @cached_property
    def rank_probabilities(self) -> np.ndarray:
        """P(query key has frequency rank r), r = 1..K: r^-alpha, normalised."""
        weights = np.arange(1, self.keys() + 1, dtype=np.float64) ** -self.params["alpha"]
        return weights / weights.sum()

    @cached_property
    def key_of_rank(self) -> np.ndarray:
        """The key of each frequency rank: a random order, so key names say nothing about frequency."""
        return np.random.default_rng([self.params["table_seed"], 0]).permutation(self.keys())

    @cached_property
    def table(self) -> np.ndarray:
        """f as an array, table[key] = f(key): a random permutation, so f^k never collapses onto a cycle's
        few keys and every hop count has answers as varied as the first."""
        return np.random.default_rng([self.params["table_seed"], 1]).permutation(self.keys())

    def loss_floor(self, difficulty: int) -> float:
        """Per scored symbol: the Bayes predictor puts 1 - noise + noise/A on f^k's symbol, noise/A on each
        of the A - 1 others, and its expected loss is the entropy of that distribution."""
        noise, a = self.params["noise"], self.params["alphabet"]
        right, wrong = 1.0 - noise + noise / a, noise / a
        return -right * math.log(right) - (a - 1) * (wrong * math.log(wrong) if wrong else 0.0)

    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        a, width, max_k = self.params["alphabet"], self.params["key_len"], self.params["max_k"]
        cdf = np.cumsum(self.rank_probabilities)
        ranks = np.searchsorted(cdf, rng.random((n, self.params["queries"])), side="right")
        keys = self.key_of_rank[np.minimum(ranks, self.keys() - 1)]  # the min guards cdf[-1] < 1 by rounding
        answers = keys
        for _ in range(difficulty):
            answers = self.table[answers]
        place = a ** np.arange(width - 1, -1, -1)  # most significant symbol first
        key_symbols = keys[..., None] // place % a  # [n, queries, key_len]
        answer_symbols = answers[..., None] // place % a
        if self.params["noise"]:
            noisy = rng.random(answer_symbols.shape) < self.params["noise"]
            answer_symbols = np.where(noisy, rng.integers(0, a, size=answer_symbols.shape), answer_symbols)

        # Each query is a block of 2 * key_len columns: the key's symbols, then the answer slots.
        first = self.id("c0")
        slots = np.broadcast_to(self.id("?0") + np.arange(width), key_symbols.shape)
        blank = np.zeros_like(key_symbols)
        queries = np.concatenate([key_symbols + first, slots], axis=2).reshape(n, -1)
        answered = np.concatenate([blank, answer_symbols + first], axis=2).reshape(n, -1)
        scored = np.concatenate([blank, np.ones_like(slots)], axis=2).reshape(n, -1).astype(bool)

        prefix = np.full((n, max_k), self.id(UNARY_OFF), dtype=np.int64)
        prefix[:, :difficulty] = self.id(UNARY_ON)
        tokens = np.concatenate([prefix, queries], axis=1)
        targets = np.concatenate([np.zeros_like(prefix), answered], axis=1)
        mask = np.concatenate([np.zeros(prefix.shape, dtype=bool), scored], axis=1)
        return Batch.scored(tokens, targets, mask)

    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """Read k and each key, then look the key up in f k times; hints = the keys each query visits.
        Without noise these are the labels; with it, the most probable label (the Bayes prediction)."""
        max_k, width, a = self.params["max_k"], self.params["key_len"], self.params["alphabet"]
        prefix = list(tokens[:max_k])
        k = prefix.count(UNARY_ON)
        if prefix != [UNARY_ON] * k + [UNARY_OFF] * (max_k - k) or k == 0:
            raise ValueError(f"zipf: malformed unary prefix {''.join(prefix)!r}")
        body = tokens[max_k:]
        if len(body) != 2 * width * self.params["queries"]:
            raise ValueError(f"zipf: expected {self.params['queries']} queries of {2 * width} tokens")
        successor = dict(enumerate(self.table.tolist()))
        targets: list[str | None] = [None] * max_k
        hints = []
        for start in range(0, len(body), 2 * width):
            symbols, slots = body[start : start + width], body[start + width : start + 2 * width]
            if slots != [f"?{j}" for j in range(width)] or not all(s.startswith("c") for s in symbols):
                raise ValueError(f"zipf: malformed query {' '.join(body[start : start + 2 * width])}")
            key = 0
            for symbol in symbols:
                key = key * a + int(symbol[1:])
            visited = [key]
            for _ in range(k):
                visited.append(successor[visited[-1]])
            answer = visited[-1]
            digits = [(answer // a ** (width - 1 - j)) % a for j in range(width)]
            targets += [None] * width + [f"c{d}" for d in digits]
            hints.append(" ".join(map(str, visited)))
        return Solution(targets=targets, difficulty=k, hints=hints)
