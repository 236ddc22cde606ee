"""What every task family shares: the batch, the family interface, parameter checking, and hashing.

Families only sample instance bodies and solve them; the BOS token in front of every instance is added
here, and everything else that must be identical across families (how the RNG is derived, how train and
test are kept apart, how a test set is fingerprinted) lives in `tasks.task`, so that no family can get
it subtly wrong.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mythbench.core.errors import ConfigError

PAD = "<pad>"  # id 0 in every vocabulary, so a harness can pad mixed-length batches the same way everywhere
# id 1 in every vocabulary, first token of every instance, never scored. Without it a causal model gives
# every position of a leading run of equal tokens the same hidden state (each attends over identical
# values, whatever the positional scheme), so instances starting "1 1" in parity were unsolvable.
BOS = "<bos>"


@dataclass(frozen=True)
class Batch:
    """A batch of instances of one difficulty: int64 tokens and targets, and which positions are scored.

    `supervised` marks the positions that carry a training target: the scored positions, plus, for a
    family with dense training supervision (chain), intermediate results that the test metric ignores.
    """

    tokens: np.ndarray  # int64 [n, L]
    targets: np.ndarray  # int64 [n, L]; PAD where not supervised
    mask: np.ndarray  # bool [n, L]: scored by the test metric
    supervised: np.ndarray  # bool [n, L]: has a training target (a superset of mask)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def rows(self, index: np.ndarray | slice) -> Batch:
        """A sub-batch, so the split filter can keep or drop whole instances."""
        return Batch(self.tokens[index], self.targets[index], self.mask[index], self.supervised[index])

    @staticmethod
    def scored(tokens: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> Batch:
        """A batch whose training supervision is exactly its scored positions (every family but chain)."""
        return Batch(tokens, targets, mask, mask.copy())

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        return Batch(*(np.concatenate([getattr(p, f) for p in parts]) for f in _BATCH_FIELDS))

    def prefixed(self, token: int, width: int = 1) -> Batch:
        """The same instances behind `width` columns of `token` (BOS, or left padding), unscored and
        unsupervised."""
        n = len(self)
        cols = np.full((n, width), token, dtype=np.int64)
        off = np.zeros((n, width), dtype=bool)
        return Batch(np.concatenate([cols, self.tokens], 1), np.concatenate([np.zeros_like(cols), self.targets], 1),
                     np.concatenate([off, self.mask], 1), np.concatenate([off, self.supervised], 1))


_BATCH_FIELDS = ("tokens", "targets", "mask", "supervised")


@dataclass(frozen=True)
class Solution:
    """What a reference solver derives from an instance's input tokens alone.

    `targets` holds the expected token at every scored position and None elsewhere; `difficulty` is the
    difficulty the solver *measured* (hops followed, BFS depth, ...), so tests can check the generator
    really produced what was asked; `hints` are CLRS-style intermediate states, one per step;
    `supervision` is the training target at every supervised position (None: the same as `targets`).
    """

    targets: list[str | None]
    difficulty: int
    hints: list[str]
    supervision: list[str | None] | None = None

    def training_targets(self) -> list[str | None]:
        return self.targets if self.supervision is None else self.supervision


@dataclass(frozen=True)
class Param:
    """One family parameter: its default, its type and its allowed values, so YAML errors are precise."""

    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None


def check_params(family: str, schema: Mapping[str, Param], params: Mapping[str, Any]) -> list[str]:
    """Every problem with `params` against `schema` (unknown keys, wrong types, out-of-range values)."""
    problems = []
    for key in params:
        if key not in schema:
            known = ", ".join(sorted(schema)) or "none"
            problems.append(f"params: unknown parameter {key!r} for family {family!r} (known: {known})")
    for key, spec in schema.items():
        if key not in params:
            continue
        value = params[key]
        kind = type(spec.default)
        # bool is an int subclass in Python; `n: true` in YAML must not pass as 1.
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            problems.append(f"params.{key}: expected {kind.__name__}, got {type(value).__name__} ({value!r})")
            continue
        if spec.choices is not None and value not in spec.choices:
            allowed = ", ".join(map(str, spec.choices))
            problems.append(f"params.{key}: {value!r} is not one of {allowed}")
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"params.{key}: {value} is below the minimum {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"params.{key}: {value} is above the maximum {spec.maximum}")
    return problems


class Family(ABC):
    """A task family: a vocabulary, a vectorised generator and an independent reference solver.

    Subclasses set `name` and `params_schema` and implement the abstract `*_body` methods, which know
    nothing of BOS: `sample`, `solve` and `seq_len` put it in front. `self.params` holds the validated
    parameters with defaults filled in.
    """

    name: ClassVar[str]
    params_schema: ClassVar[dict[str, Param]] = {}

    def __init__(self, params: Mapping[str, Any] | None = None):
        params = dict(params or {})
        problems = check_params(self.name, self.params_schema, params)
        if problems:
            raise ConfigError(problems)
        self.params: dict[str, Any] = {k: params.get(k, p.default) for k, p in self.params_schema.items()}
        problems = self.check_combination()
        if problems:
            raise ConfigError(problems)
        self.vocab: list[str] = [PAD, BOS, *self.build_vocab()]
        assert len(set(self.vocab)) == len(self.vocab)
        self.ids: dict[str, int] = {tok: i for i, tok in enumerate(self.vocab)}

    def check_combination(self) -> list[str]:
        """Problems that involve several parameters at once (each one alone is already checked)."""
        return []

    def kept_for_training(self, tokens: np.ndarray) -> np.ndarray:
        """Which instances (rows of input tokens, BOS first) stay out of the test half at a training
        difficulty whatever their hash: instances so probable that the training stream shows each many
        times, which the hash split would otherwise make test-only. None by default."""
        return np.zeros(tokens.shape[0], dtype=bool)

    def loss_floor(self, difficulty: int) -> float:
        """The Bayes-optimal expected loss per scored token at `difficulty`, in nats: no model goes below
        it, so a scaling fit can be of the excess loss L - H. 0 unless a family's labels carry noise: every
        label is then a function of the instance's input."""
        return 0.0

    def id(self, token: str) -> int:
        return self.ids[token]

    def seq_len(self, difficulty: int) -> int:
        """Tokens per instance at `difficulty`, BOS included."""
        return 1 + self.body_len(difficulty)

    def sample(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        """`n` independent instances of exactly `difficulty`, each starting with BOS."""
        return self.sample_body(rng, difficulty, n).prefixed(self.id(BOS))

    def solve(self, tokens: Sequence[str]) -> Solution:
        """The reference answer for one whole instance (BOS first), from its decoded tokens."""
        if not tokens or tokens[0] != BOS:
            raise ValueError(f"{self.name}: an instance starts with {BOS}")
        body = self.solve_body(tokens[1:])
        supervision = None if body.supervision is None else [None, *body.supervision]
        return Solution([None, *body.targets], body.difficulty, body.hints, supervision)

    @abstractmethod
    def build_vocab(self) -> list[str]:
        """The family's own token strings, by id from 2 on (PAD and BOS come first in every vocabulary)."""

    @abstractmethod
    def difficulty_range(self) -> tuple[int, int]:
        """Smallest and largest difficulty this family can generate with its parameters."""

    @abstractmethod
    def body_len(self, difficulty: int) -> int:
        """Tokens per instance at `difficulty`, BOS not counted."""

    @abstractmethod
    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        """`n` instances of exactly `difficulty` without BOS, drawn with numpy array operations only."""

    @abstractmethod
    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """The reference answer for an instance without BOS, by the plain textbook algorithm."""


def stable_hash32(text: str) -> int:
    """A 32-bit hash of `text` that, unlike `hash()`, does not change with PYTHONHASHSEED."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised; uint64 arithmetic wraps, which is what we want."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x ^ (x >> np.uint64(31))) & _M64


def in_test_region(tokens: np.ndarray) -> np.ndarray:
    """Whether each instance (a row of input tokens) lies in the half of instance space reserved for test.

    A pseudo-random bit of a hash of the row: a fixed function of the instance, so an instance is in the
    test half or not whatever seed or machine produced it, which makes train/test disjointness exact
    even where the instance space is tiny (parity with 16 bits has only 65536 instances).
    """
    if tokens.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    tok = tokens.astype(np.uint64)
    pos = np.arange(tokens.shape[1], dtype=np.uint64) << np.uint64(32)
    with np.errstate(over="ignore"):
        h = _splitmix64(tok + pos[None, :]).sum(axis=1, dtype=np.uint64)
        h = _splitmix64(h ^ np.uint64(tokens.shape[1]))
    return (h >> np.uint64(63)).astype(bool)


def pad_left(tokens: np.ndarray, targets: np.ndarray, length: int, blank: int) -> Batch:
    """Instances whose every position is scored, left-padded with unscored `blank`s to `length` tokens."""
    return Batch.scored(tokens, targets, np.ones(tokens.shape, dtype=bool)).prefixed(blank, length - tokens.shape[1])


def count_left_blanks(family: str, tokens: Sequence[str], blank: str, context: int) -> int:
    """How many leading blanks a fixed-context instance has; ValueError if its length or padding is wrong.

    context = 0 means the length-coupled format, which has no blanks at all.
    """
    if context and len(tokens) != context:
        raise ValueError(f"{family}: a fixed-context instance has {context} tokens, got {len(tokens)}")
    blanks = 0
    while blanks < len(tokens) and tokens[blanks] == blank:
        blanks += 1
    if blank in tokens[blanks:]:
        raise ValueError(f"{family}: blanks may only pad the instance on the left")
    if blanks == len(tokens):
        raise ValueError(f"{family}: an instance needs at least one element after the blanks")
    return blanks
