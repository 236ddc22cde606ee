"""What every task family shares: the batch, the family interface, parameter checking, and hashing.

Families only sample instances and solve them; everything that must be identical across families
(how the RNG is derived, how train and test are kept apart, how a test set is fingerprinted) lives in
`tasks.task` so that no family can get it subtly wrong.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mythbench.errors import ConfigError

PAD = "<pad>"  # id 0 in every vocabulary, so a harness can pad mixed-length batches the same way everywhere


@dataclass(frozen=True)
class Batch:
    """A batch of instances of one difficulty: int64 tokens and targets, and which positions are scored."""

    tokens: np.ndarray  # int64 [n, L]
    targets: np.ndarray  # int64 [n, L]; PAD where not scored
    mask: np.ndarray  # bool [n, L]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def rows(self, index: np.ndarray | slice) -> Batch:
        """A sub-batch, so the split filter can keep or drop whole instances."""
        return Batch(self.tokens[index], self.targets[index], self.mask[index])

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        return Batch(
            np.concatenate([p.tokens for p in parts]),
            np.concatenate([p.targets for p in parts]),
            np.concatenate([p.mask for p in parts]),
        )


@dataclass(frozen=True)
class Solution:
    """What a reference solver derives from an instance's input tokens alone.

    `targets` holds the expected token at every scored position and None elsewhere; `difficulty` is the
    difficulty the solver *measured* (hops followed, BFS depth, ...), so tests can check the generator
    really produced what was asked; `hints` are CLRS-style intermediate states, one per step.
    """

    targets: list[str | None]
    difficulty: int
    hints: list[str]


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

    Subclasses set `name` and `params_schema` and implement the abstract methods; `self.params` holds the
    validated parameters with defaults filled in.
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
        self.vocab: list[str] = self.build_vocab()
        assert self.vocab[0] == PAD and len(set(self.vocab)) == len(self.vocab)
        self.ids: dict[str, int] = {tok: i for i, tok in enumerate(self.vocab)}

    def check_combination(self) -> list[str]:
        """Problems that involve several parameters at once (each one alone is already checked)."""
        return []

    def id(self, token: str) -> int:
        return self.ids[token]

    @abstractmethod
    def build_vocab(self) -> list[str]:
        """Token strings by id; id 0 must be PAD."""

    @abstractmethod
    def difficulty_range(self) -> tuple[int, int]:
        """Smallest and largest difficulty this family can generate with its parameters."""

    @abstractmethod
    def seq_len(self, difficulty: int) -> int:
        """Tokens per instance at `difficulty`."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        """`n` independent instances of exactly `difficulty`, drawn with numpy array operations only."""

    @abstractmethod
    def solve(self, tokens: Sequence[str]) -> Solution:
        """The reference answer computed from decoded input tokens with the plain textbook algorithm."""


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
