"""Determinism, train/test disjointness and the test-set fingerprint."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mythbench.tasks import TEST_SEED, get_task, list_tasks, load_task_file
from mythbench.tasks.base import BOS, in_test_region
from mythbench.tasks.task import CHUNK

SPEC_DIR = Path(__file__).resolve().parents[1] / "tasks"


def as_bytes(batch) -> bytes:
    return batch.tokens.tobytes() + batch.targets.tobytes() + batch.mask.tobytes()


def rows(tokens: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in tokens}


def custom_task(tmp_path: Path, base: str, **changes) -> Path:
    """A copy of a packaged spec with some fields changed, written where a user would keep it."""
    spec = yaml.safe_load((SPEC_DIR / f"{base}.yaml").read_text())
    spec.update(changes)
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("name", list_tasks())
def test_same_arguments_same_bytes_and_seeds_differ(name):
    task = get_task(name)
    for split, d in (("train", task.spec.train_difficulties[0]), ("test", task.spec.test_difficulties[-1])):
        a, b = task.generate(split, d, 64, 7), task.generate(split, d, 64, 7)
        assert as_bytes(a) == as_bytes(b)
        assert as_bytes(a) != as_bytes(task.generate(split, d, 64, 8))
    d = task.spec.test_difficulties[0]
    assert as_bytes(task.generate("train", d, 64, 7)) != as_bytes(task.generate("test", d, 64, 7))


def test_large_batches_are_chunked_deterministically():
    task = get_task("parity")
    big = task.generate("train", 16, CHUNK + 500, 3)
    assert len(big) == CHUNK + 500
    assert as_bytes(big) == as_bytes(task.generate("train", 16, CHUNK + 500, 3))
    assert len(task.generate("train", 16, 0, 3)) == 0


@pytest.mark.parametrize("name", list_tasks())
def test_test_instances_never_in_training_data(name):
    """At every test difficulty: the test set is in the test half of instance space, training data
    (any seed) in the other half, and no row of one appears in the other."""
    task = get_task(name)
    for d in task.spec.test_difficulties:
        test = task.test_batch(d)
        assert task.in_test_half(test.tokens, d).all() and in_test_region(test.tokens).all()
        train = task.generate("train", d, 2000 if name == "parity" else 300, 99)
        assert not task.in_test_half(train.tokens, d).any()
        assert not rows(test.tokens) & rows(train.tokens)


@pytest.mark.parametrize("name", list_tasks())
def test_validation_is_its_own_stream_and_never_holds_test_instances(name):
    """Choosing a hyperparameter on the validation split must not read the test set: at the test difficulties
    it lies in the training half (no row in common with the test set), and elsewhere it is a stream of its own."""
    task = get_task(name)
    for d in task.spec.test_difficulties:
        validation = task.validation_batch(d)
        assert len(validation) == task.spec.examples["test"] and not task.in_test_half(validation.tokens, d).any()
        assert not rows(validation.tokens) & rows(task.test_batch(d).tokens)
    # a training difficulty that is not a test difficulty, if the task has one (parity-biased trains at 21 only)
    d = max(set(task.spec.train_difficulties) - set(task.spec.test_difficulties) or task.spec.train_difficulties)
    validation = task.validation_batch(d)
    assert as_bytes(validation) == as_bytes(task.generate("validation", d, task.spec.examples["test"], TEST_SEED))
    assert as_bytes(validation) != as_bytes(task.generate("test", d, task.spec.examples["test"], TEST_SEED))
    assert as_bytes(validation) != as_bytes(task.generate("train", d, task.spec.examples["test"], TEST_SEED))


def test_parity_16_overlap_difficulty_is_disjoint_despite_small_space():
    """2^16 instances: 60000 training draws would hit most of a naive test set; here they hit none."""
    task = get_task("parity")
    assert 16 in task.spec.train_difficulties and 16 in task.spec.test_difficulties
    test = rows(task.test_batch(16).tokens)
    train = rows(task.generate("train", 16, 60000, 1).tokens)
    assert len(train) > 20000  # the training half is well covered...
    assert not test & train  # ...and still never touches the test set


def test_tiny_space_is_partitioned_exactly(tmp_path):
    """With 4-bit parity as a test difficulty, train and test together cover all 16 strings, disjointly."""
    task = load_task_file(custom_task(tmp_path, "parity", name="parity4", train_difficulties=[4],
                                      test_difficulties=[4]))
    train = rows(task.generate("train", 4, 2000, 0).tokens)
    test = rows(task.generate("test", 4, 2000, 0).tokens)
    assert not train & test and len(train | test) == 16
    # Away from test difficulties nothing is filtered: training sees all 8 three-bit strings.
    assert len(rows(task.generate("train", 3, 500, 0).tokens)) == 8


def near_constant_strings(n: int, most_unlike: int) -> np.ndarray:
    """Every n-bit string with at most `most_unlike` bits unlike its majority bit, as 0/1 rows."""
    rows_ = [np.zeros(n, np.int64)]
    for k in range(1, most_unlike + 1):
        for ones in itertools.combinations(range(n), k):
            row = np.zeros(n, np.int64)
            row[list(ones)] = 1
            rows_.append(row)
    low = np.stack(rows_)
    return np.concatenate([low, 1 - low])


def test_biased_parity_keeps_near_constant_strings_of_the_training_length_for_training():
    """Version 4: at n = 21 (train and test length) the strings with at most 3 bits unlike the rest are never
    test instances, whatever their hash, and training batches do draw those the hash puts in the test half;
    at the test-only lengths they are test instances like any other string."""
    task = get_task("parity-biased")
    zero, one, bos = (task.family.id(t) for t in ("0", "1", BOS))

    def as_tokens(bits: np.ndarray) -> np.ndarray:
        return np.concatenate([np.full((len(bits), 1), bos), np.where(bits == 1, one, zero)], axis=1)

    def unlike(tokens: np.ndarray) -> np.ndarray:
        ones = (tokens == one).sum(axis=1)
        return np.minimum(ones, tokens.shape[1] - 1 - ones)

    (n,) = task.spec.train_difficulties
    kept = as_tokens(near_constant_strings(n, 3))
    assert len(kept) == 2 * sum(math.comb(n, k) for k in range(4))
    assert not task.in_test_half(kept, n).any()
    hashed_to_test = rows(kept[in_test_region(kept) & (unlike(kept) == 1)])
    assert hashed_to_test  # the rule matters: 1^20 0 is one of them
    assert hashed_to_test & rows(task.generate("train", n, 20000, 0).tokens)
    assert unlike(task.test_batch(n).tokens).min() == 4
    assert (unlike(task.test_batch(32).tokens) <= 3).mean() > 0.2  # p ~ U(0, 1): about 8 / 33 of them
    assert task.in_test_half(as_tokens(near_constant_strings(32, 1)), 32).any()


def test_fair_parity_keeps_nothing_back():
    task = get_task("parity")
    tokens = task.generate("train", 16, 500, 0).tokens
    assert task.family.params["train_near_constant"] == -1 and not task.family.kept_for_training(tokens).any()
    assert (task.in_test_half(tokens, 16) == in_test_region(tokens)).all()


def test_train_at_non_test_difficulty_is_unfiltered():
    task = get_task("parity")
    region = in_test_region(task.generate("train", 8, 4000, 0).tokens)
    assert 0.4 < region.mean() < 0.6


def fingerprints_in_subprocess(hash_seed: str) -> dict[str, str]:
    code = "import json, tasks; print(json.dumps({n: tasks.get_task(n).fingerprint() for n in tasks.list_tasks()}))"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_fingerprint_is_stable_across_processes_and_hash_seeds():
    here = {n: get_task(n).fingerprint() for n in list_tasks()}
    fresh = {n: load_task_file(SPEC_DIR / f"{n}.yaml").fingerprint() for n in list_tasks()}  # no cache
    assert here == fresh
    assert fingerprints_in_subprocess("1") == here
    assert fingerprints_in_subprocess("12345") == here
    assert len(set(here.values())) == len(here)
    assert all(len(f) == 64 and int(f, 16) >= 0 for f in here.values())


def test_fingerprint_covers_the_test_sets(tmp_path):
    task = get_task("khop")
    base = task.fingerprint()
    assert load_task_file(custom_task(tmp_path, "khop", version=3)).fingerprint() != base
    assert load_task_file(custom_task(tmp_path, "khop", test_difficulties=[4, 6, 8])).fingerprint() != base
    changed = custom_task(tmp_path, "khop", params={"alphabet": 5, "length": 99, "max_k": 8})
    assert load_task_file(changed).fingerprint() != base
    # The fingerprinted data is exactly what the harness evaluates on.
    d = task.spec.test_difficulties[0]
    official = task.generate("test", d, task.spec.examples["test"], TEST_SEED)
    assert as_bytes(task.test_batch(d)) == as_bytes(official)
