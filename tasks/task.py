"""A benchmark task: a validated spec bound to its family, with deterministic splits and a fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mythbench.tasks.base import Batch, Family, Solution, in_test_region, stable_hash32

from mythbench.core.errors import ConfigError

SPLIT_IDS = {"train": 0, "test": 1, "validation": 2}
TEST_SEED = 0  # the official test set at difficulty d is generate("test", d, examples["test"], TEST_SEED)
CHUNK = 2048  # rows per generator call: bounds memory (graph builds [n, N, N] arrays) and fixes RNG use
_MAX_EMPTY_ROUNDS = 64


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task as written in its YAML file (see tasks/spec.py for the validation rules)."""

    name: str
    version: int
    family: str
    train_difficulties: list[int]
    test_difficulties: list[int]
    examples: dict[str, int]
    seeds: list[int]
    attention: str
    context_length: str  # "fixed" or "grows": whether difficulty changes the sequence length
    depth_per_difficulty: int  # sequential steps the reference algorithm takes per unit of difficulty
    metric: str
    description: str
    token_format: str
    params: dict[str, Any] = field(default_factory=dict)


class Task:
    """Generates train and test batches for one spec; test instances never occur in training data.

    Disjointness: instance space is split in two halves by a hash of the input tokens
    (`tasks.base.in_test_region`), less the instances the family keeps for training at a training
    difficulty (`Family.kept_for_training`; see `in_test_half`). At every test difficulty, test batches
    come from the test half only and training and validation batches from the other half only. At other
    difficulties every split draws from the whole space (from different random streams): tiny instance
    spaces (parity with 2 bits) keep their natural distribution, and no test set is defined there. The
    validation split is a third stream drawn like training data, so that choosing a hyperparameter on it
    never reads the test instances a result reports. Lengths (parity, state) or the difficulty itself
    (khop's k, chain length, BFS depth) differ between difficulties, so instances of different
    difficulties never coincide.
    """

    def __init__(self, spec: TaskSpec, family: Family):
        self.spec = spec
        self.family = family
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"Task({self.spec.name!r}, family={self.spec.family!r}, version={self.spec.version})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def vocab(self) -> list[str]:
        return list(self.family.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.family.vocab)

    def seq_len(self, difficulty: int) -> int:
        self._check_difficulty(difficulty)
        return self.family.seq_len(difficulty)

    def depth(self, difficulty: int) -> int:
        """Sequential steps difficulty d needs (one per bit, element, hop or BFS layer): the least loop
        count at which a looped model doing one step per loop can be right, and the unit of the loop
        sweep (which goes to twice the depth of the hardest test difficulty)."""
        return self.spec.depth_per_difficulty * difficulty

    def loss_floor(self, difficulty: int) -> float:
        """The least expected loss per scored token (nats) any model can reach at `difficulty`
        (`Family.loss_floor`): the H of a scaling fit of L - H."""
        self._check_difficulty(difficulty)
        return self.family.loss_floor(difficulty)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        vocab = self.family.vocab
        return [vocab[int(i)] for i in ids]

    def solve(self, tokens: Sequence[str]) -> Solution:
        """The reference solver's answer for one instance given as decoded input tokens."""
        return self.family.solve(tokens)

    def generate(self, split: str, difficulty: int, n: int, seed: int) -> Batch:
        """`n` instances of `difficulty` from `split`; the same arguments always give the same bytes."""
        problems = []
        if split not in SPLIT_IDS:
            problems.append(f"split: {split!r} is not one of {', '.join(SPLIT_IDS)}")
        if not _is_int(n) or n < 0:
            problems.append(f"n: expected a non-negative integer, got {n!r}")
        if not _is_int(seed) or seed < 0:
            problems.append(f"seed: expected a non-negative integer, got {seed!r}")
        problems += self._difficulty_problems(difficulty)
        if problems:
            raise ConfigError([f"task {self.name}: {p}" for p in problems])
        rng = np.random.default_rng(
            [int(seed), SPLIT_IDS[split], int(difficulty), stable_hash32(self.spec.family)]
        )
        want = (split == "test") if difficulty in self.spec.test_difficulties else None  # validation: train half
        return self._draw(rng, int(difficulty), int(n), want)

    def in_test_half(self, tokens: np.ndarray, difficulty: int) -> np.ndarray:
        """Whether each instance at `difficulty` may be a test instance (and so is never training data)."""
        region = in_test_region(tokens)
        if difficulty in self.spec.train_difficulties:
            region &= ~self.family.kept_for_training(tokens)
        return region

    def test_batch(self, difficulty: int) -> Batch:
        """The official evaluation set at `difficulty`; at the test difficulties, what the fingerprint covers."""
        return self.generate("test", difficulty, self.spec.examples["test"], TEST_SEED)

    def validation_batch(self, difficulty: int) -> Batch:
        """Held-out instances for choosing hyperparameters, as many as the test set; never test instances."""
        return self.generate("validation", difficulty, self.spec.examples["test"], TEST_SEED)

    def fingerprint(self) -> str:
        """sha256 over name, version and the official test set (shapes + little-endian bytes) per difficulty.

        Two results are comparable only if their fingerprints are equal. It also catches a change of
        numpy's random streams, which numpy keeps stable in practice but does not promise across versions.
        """
        if self._fingerprint is None:
            h = hashlib.sha256(f"mythbench-task:{self.spec.name}:v{self.spec.version}".encode())
            for d in self.spec.test_difficulties:
                batch = self.test_batch(d)
                h.update(np.asarray([d, *batch.tokens.shape], dtype="<i8").tobytes())
                h.update(np.ascontiguousarray(batch.tokens, dtype="<i8").tobytes())
                h.update(np.ascontiguousarray(batch.targets, dtype="<i8").tobytes())
                h.update(np.ascontiguousarray(batch.mask, dtype="<i8").tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def _draw(self, rng: np.random.Generator, difficulty: int, n: int, want: bool | None) -> Batch:
        """Sample in chunks, keeping only rows whose test-region bit equals `want` (None keeps all)."""
        parts: list[Batch] = []
        have = 0
        empty_rounds = 0
        while have < n or not parts:
            need = n - have
            size = min(CHUNK, need if want is None else 2 * need + 16)
            batch = self.family.sample(rng, difficulty, size)
            if want is not None:
                batch = batch.rows(np.flatnonzero(self.in_test_half(batch.tokens, difficulty) == want))
                empty_rounds = 0 if len(batch) else empty_rounds + 1
                if empty_rounds >= _MAX_EMPTY_ROUNDS:
                    side = "test" if want else "train"
                    raise ConfigError(
                        f"task {self.name}: difficulty {difficulty} has (almost) no {side} instances: its "
                        "instance space is too small to split between train and test"
                    )
            batch = batch.rows(slice(0, need))
            parts.append(batch)
            have += len(batch)
        return Batch.concat(parts)

    def _difficulty_problems(self, difficulty: Any) -> list[str]:
        lo, hi = self.family.difficulty_range()
        if not _is_int(difficulty):
            return [f"difficulty: expected an integer, got {difficulty!r}"]
        if not lo <= difficulty <= hi:
            return [f"difficulty {difficulty} is outside the supported range [{lo}, {hi}]"]
        return []

    def _check_difficulty(self, difficulty: Any) -> None:
        problems = self._difficulty_problems(difficulty)
        if problems:
            raise ConfigError([f"task {self.name}: {p}" for p in problems])


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)
