"""The group word problem: track the running product of a word over a permutation group.

State tracking in a non-solvable group (A5, S5) is NC1-complete (Barrington 1989), so no fixed-depth
transformer is expected to solve it at every length (Merrill & Sabharwal; Liu et al. 2023), while a
solvable group (S3) admits shallow shortcuts. That makes it a clean test of whether extra loops add
sequential depth.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache

import numpy as np
from mythbench.tasks.base import Batch, Family, Param, Solution, count_left_blanks, pad_left
from mythbench.tasks.registry import register_task_family

GROUPS = ("S3", "A5", "S5")
BLANK = "_"  # the fixed-context variant's left padding: it leaves the state unchanged, like the identity


def _is_even(perm: tuple[int, ...]) -> bool:
    inversions = sum(1 for i, j in itertools.combinations(range(len(perm)), 2) if perm[i] > perm[j])
    return inversions % 2 == 0


@cache
def group_elements(group: str) -> tuple[tuple[int, ...], ...]:
    """The group's permutations in one-line notation, lexicographic order (identity first)."""
    degree = int(group[1])
    perms = itertools.permutations(range(degree))
    return tuple(p for p in perms if group[0] == "S" or _is_even(p))


@cache
def product_table(group: str) -> np.ndarray:
    """table[a, b] = index of "apply a, then b", i.e. x -> b[a[x]]: the generator's O(1) step."""
    elements = group_elements(group)
    index = {p: i for i, p in enumerate(elements)}
    table = np.empty((len(elements), len(elements)), dtype=np.int64)
    for i, a in enumerate(elements):
        for j, b in enumerate(elements):
            table[i, j] = index[tuple(b[a[x]] for x in range(len(a)))]
    return table


@register_task_family
class State(Family):
    """A word g_1..g_n of uniform random group elements, one token each; target i is g_1 then ... then g_i.

    Composition convention (left to right, in reading order): the state after i tokens is the permutation
    x -> g_i(...g_2(g_1(x))), i.e. state_i[x] = g_i[state_{i-1}[x]] with state_0 the identity.
    Tokens write a permutation in one-line notation: "10234" maps 0->1, 1->0, 2->2, 3->3, 4->4.
    With `context` = C every instance is C tokens: C - n blanks, then the word, and only the word is
    scored (depth grows with n, the context does not).
    """

    name = "state"
    MAX_LENGTH = 4096
    params_schema = {
        "group": Param("A5", "permutation group: S3 (solvable), A5 or S5", choices=GROUPS),
        "context": Param(0, "fixed body length (blanks, then the word); 0 = as long as the word", minimum=0,
                         maximum=MAX_LENGTH),
    }

    def build_vocab(self) -> list[str]:
        elements = ["".join(map(str, p)) for p in group_elements(self.params["group"])]
        return [*elements, BLANK] if self.params["context"] else elements

    def difficulty_range(self) -> tuple[int, int]:
        return 1, self.params["context"] or self.MAX_LENGTH

    def body_len(self, difficulty: int) -> int:
        return self.params["context"] or difficulty

    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        table = product_table(self.params["group"])
        word = rng.integers(0, table.shape[0], size=(n, difficulty), dtype=np.int64)
        states = np.empty_like(word)
        state = np.zeros(n, dtype=np.int64)  # index 0 is the identity
        for i in range(difficulty):  # the scan is sequential in i but vectorised over the batch
            state = table[state, word[:, i]]
            states[:, i] = state
        first = self.id(self.vocab[2])  # the identity, first element after PAD and BOS
        blank = self.id(BLANK) if self.params["context"] else 0
        return pad_left(word + first, states + first, self.body_len(difficulty), blank)

    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """Skip the blanks, then compose the permutations one by one, starting from the identity."""
        blanks = count_left_blanks(self.name, tokens, BLANK, self.params["context"])
        members = set(self.vocab[2:]) - {BLANK}
        degree = int(self.params["group"][1])
        state = tuple(range(degree))
        states: list[str] = []
        for tok in tokens[blanks:]:
            if tok not in members:
                raise ValueError(f"state: {tok!r} is not an element of {self.params['group']}")
            g = tuple(int(c) for c in tok)
            state = tuple(g[state[x]] for x in range(degree))
            states.append("".join(map(str, state)))
        return Solution(targets=[None] * blanks + states, difficulty=len(states), hints=states)
