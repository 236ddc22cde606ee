"""What the CLI shows: `mythbench ls` lines and `mythbench sample` instances."""

from __future__ import annotations

import re

import pytest
from mythbench.tasks import describe_tasks, format_instances, get_task, list_tasks, sample_instances


def test_describe_tasks_one_line_each_with_difficulties():
    lines = describe_tasks()
    assert len(lines) == len(list_tasks())
    for line, name in zip(lines, list_tasks(), strict=True):
        spec = get_task(name).spec
        assert line.startswith(name) and "\n" not in line
        assert f"test [{', '.join(map(str, spec.test_difficulties))}]" in line
    assert "train [2..16] -> test [16, 24, 32, 48, 64]" in lines[list_tasks().index("parity")]


@pytest.mark.parametrize("name", list_tasks())
def test_sample_instances_are_decoded_and_solved(name):
    task = get_task(name)
    d = task.spec.test_difficulties[0]
    instances = sample_instances(name, d, n=2, split="train", seed=4)
    batch = task.generate("train", d, 2, 4)
    assert len(instances) == 2
    for i, inst in enumerate(instances):
        assert inst["difficulty"] == d and inst["split"] == "train" and inst["task"] == name
        assert inst["input"] == task.decode(batch.tokens[i])
        assert [t is not None for t in inst["target"]] == batch.mask[i].tolist()
        assert inst["target"] == task.solve(inst["input"]).targets
        assert inst["training_target"] == task.solve(inst["input"]).training_targets()
        assert inst["hints"]


def test_sample_shows_chains_dense_training_targets():
    """chain trains on every statement's value within d hops but scores only the answer: both are shown."""
    (inst,) = sample_instances("chain", 6, n=1, split="train")
    scored = [i for i, t in enumerate(inst["target"]) if t is not None]
    trained = [i for i, t in enumerate(inst["training_target"]) if t is not None]
    assert scored == [len(inst["input"]) - 1] and set(scored) < set(trained) and len(trained) > 6
    assert all(inst["training_target"][i] == inst["target"][i] for i in scored)


def test_format_puts_each_input_token_above_its_target():
    instances = sample_instances("graph", 6, n=1)
    text = format_instances(instances, width=80)
    lines = text.splitlines()
    assert lines[0].startswith("graph  split=test  difficulty=6  #0")
    pairs = [(a, b) for a, b in zip(lines, lines[1:], strict=False) if a.startswith("  in ")]
    shown_in, shown_out = [], []
    for top, bottom in pairs:
        assert bottom.startswith("  out ") and len(top) <= 80
        # Right-aligned columns: every token ends where its target ends.
        ends_top = [m.end() for m in re.finditer(r"\S+", top[6:])]
        ends_bottom = [m.end() for m in re.finditer(r"\S+", bottom[6:])]
        assert ends_top == ends_bottom
        shown_in += top[6:].split()
        shown_out += bottom[6:].split()
    assert shown_in == instances[0]["input"]
    assert shown_out == [t if t is not None else "." for t in instances[0]["target"]]
    assert "hint 0:" in text  # BFS frontiers


def test_format_skips_hints_that_only_repeat_the_targets():
    text = format_instances(sample_instances("parity", 16, n=2))
    assert "hint" not in text and text.count("parity  split=test") == 2
