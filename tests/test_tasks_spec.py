"""Specs: the packaged ones are valid and documented truthfully; bad input gets a ConfigError naming
every problem."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from mythbench.tasks import FAMILIES, get_task, list_tasks, load_task_file
from mythbench.tasks.base import in_test_region

from mythbench.core.errors import ConfigError

SPEC_DIR = Path(__file__).resolve().parents[1] / "tasks"


def spec_dict(name: str = "parity") -> dict:
    return yaml.safe_load((SPEC_DIR / f"{name}.yaml").read_text())


def write(tmp_path: Path, content: dict | str, filename: str = "mine.yaml") -> Path:
    path = tmp_path / filename
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def problems_of(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_task_file(path)
    return "\n".join(err.value.problems)


def test_suite_is_the_designed_tasks():
    """Six families; parity and state also in a fixed-context variant (depth without length), zipf as
    storage (recall) and composition (hops) of one table."""
    assert list_tasks() == ["chain", "chain-grows", "graph", "khop", "parity", "parity-biased", "parity-fixed",
                            "state", "state-fixed", "zipf-hops", "zipf-recall"]
    assert set(FAMILIES) == {get_task(n).spec.family for n in list_tasks()}


@pytest.mark.parametrize("name", list_tasks())
def test_packaged_spec_is_consistent_with_its_docs(name):
    task = get_task(name)
    spec = task.spec
    assert spec.name == name and spec.version >= 1 and spec.metric == "exact_match"
    assert spec.attention in ("causal", "bidirectional") and spec.seeds
    # khop asks about depth efficiency inside its training range and zipf-recall about storage (their specs
    # say so); the rest extrapolate
    assert max(spec.train_difficulties) < max(spec.test_difficulties) or name in ("khop", "zipf-recall")
    assert set(spec.params) == set(FAMILIES[spec.family].params_schema)  # defaults filled in
    stated = re.search(r"\(size (\d+)\)", spec.token_format)
    assert stated and int(stated.group(1)) == task.vocab_size
    lengths = re.search(r"Length ([\d +*]+= )?(\d+)", spec.token_format)
    if lengths:  # fixed-length tasks state their length; it must hold at every difficulty
        for d in spec.train_difficulties + spec.test_difficulties:
            assert task.seq_len(d) == int(lengths.group(2))


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ConfigError) as err:
        get_task("parrity")
    assert "unknown task 'parrity'" in err.value.problems[0] and "parity" in err.value.problems[0]


def test_generate_rejects_bad_arguments_all_at_once():
    task = get_task("khop")
    with pytest.raises(ConfigError) as err:
        task.generate("dev", 17, -1, True)
    text = "\n".join(err.value.problems)
    for needle in ("split: 'dev' is not one of train, test, validation", "n: expected a non-negative integer",
                   "seed: expected", "difficulty 17 is outside the supported range [1, 8]"):
        assert needle in text
    with pytest.raises(ConfigError, match="outside the supported range"):
        get_task("graph").seq_len(0)


def test_user_task_file_works_without_code_changes(tmp_path):
    spec = spec_dict("state") | {"name": "state-s3", "params": {"group": "S3"}, "test_difficulties": [16, 128]}
    path = write(tmp_path, spec, "state-s3.yaml")
    task = load_task_file(path)
    assert task.name == "state-s3" and task.vocab_size == 8  # PAD, BOS and the 6 elements of S3
    assert task.generate("test", 128, 4, 0).tokens.shape == (4, 129)  # BOS + 128 elements
    assert get_task(str(path)).fingerprint() == task.fingerprint()


def test_missing_file_and_malformed_yaml(tmp_path):
    assert "no such task file" in problems_of(tmp_path / "absent.yaml")
    text = problems_of(write(tmp_path, "name: parity\nseeds: [0, 1\nversion: 1\n"))
    assert "malformed YAML at line" in text
    assert "must be a mapping" in problems_of(write(tmp_path, "- just\n- a list\n"))


def test_every_problem_is_listed_at_once(tmp_path):
    spec = spec_dict("parity")
    del spec["metric"], spec["seeds"]
    spec |= {"colour": "blue", "version": "one", "attention": "sideways", "train_difficulties": [0, 2, 2],
             "examples": {"train": 10, "validation": 5}}
    with pytest.raises(ConfigError) as err:
        load_task_file(write(tmp_path, spec))
    problems = err.value.problems
    text = "\n".join(problems)
    for needle in ("missing field 'metric'", "missing field 'seeds'", "unknown field 'colour'",
                   "version: expected an integer, got str", "attention: 'sideways' is not one of",
                   "strictly increasing", "examples: unknown split 'validation'", "examples: missing 'test'",
                   "train_difficulties: 0 is outside the supported range [1, 4096] of family 'parity'"):
        assert needle in text
    assert len(problems) >= 9
    assert all(p.startswith(str(tmp_path)) for p in problems)  # each names the file


def test_family_and_params_problems(tmp_path):
    assert "family: unknown family 'sorting' (known: chain, graph, khop, parity, state, zipf)" in problems_of(
        write(tmp_path, spec_dict("parity") | {"family": "sorting"})
    )
    text = problems_of(write(tmp_path, spec_dict("state") | {"params": {"group": "A4", "size": 3}}))
    assert "params.group: 'A4' is not one of S3, A5, S5" in text and "unknown parameter 'size'" in text
    text = problems_of(write(tmp_path, spec_dict("khop") | {"params": {"max_k": True, "length": 1}}))
    assert "params.max_k: expected int, got bool" in text and "params.length: 1 is below the minimum 2" in text
    text = problems_of(write(tmp_path, spec_dict("khop") | {"params": {"max_k": 4}}))
    assert "test_difficulties: 6 is outside the supported range [1, 4]" in text
    text = problems_of(write(tmp_path, spec_dict("parity") | {"context_length": "fixed"}))
    assert "context_length: declared 'fixed', but family 'parity' with these params has 2 tokens" in text
    text = problems_of(write(tmp_path, spec_dict("chain") | {"params": {"statements": 90}}))
    assert "variables (80) must be at least statements (90)" in text
    text = problems_of(write(tmp_path, spec_dict("graph") | {"params": {"nodes": 8, "extra_edges": 20}}))
    assert "params.extra_edges: 20 extra edges do not fit a graph of 8 nodes" in text
    assert "params: expected a mapping, got list" in problems_of(
        write(tmp_path, spec_dict("graph") | {"params": [1, 2]})
    )


def test_too_small_instance_space_is_reported(tmp_path):
    """Parity with 1-3 bits has 2-8 instances; where the hash partition leaves a side empty, asking for
    that side is a clear error instead of an endless loop, and otherwise only that side is produced."""
    spec = spec_dict("parity") | {"name": "tiny", "train_difficulties": [1], "test_difficulties": [1, 2, 3]}
    task = load_task_file(write(tmp_path, spec))
    empty_sides = 0
    for d in (1, 2, 3):
        bits = np.array(list(itertools.product([2, 3], repeat=d)))  # ids of "0" and "1", after <bos> = 1
        space = np.concatenate([np.ones((len(bits), 1), dtype=np.int64), bits], 1)
        region = in_test_region(space)
        for split, side in (("train", space[~region]), ("test", space[region])):
            if len(side) == 0:
                empty_sides += 1
                with pytest.raises(ConfigError, match="too small to split"):
                    task.generate(split, d, 10, 0)
            else:
                assert {r.tobytes() for r in task.generate(split, d, 50, 0).tokens} == {r.tobytes() for r in side}
    assert empty_sides >= 1  # the 1-bit space has both instances in the test half
