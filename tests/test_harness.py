"""The harness end to end with tiny models: determinism, resume after SIGKILL, divergence, one-pass grid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mythbench.config import EvalConfig, resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.models.model import RDTConfig, RecurrentDepthTransformer
from mythbench.results.schema import check_schema
from mythbench.training import harness
from mythbench.training.evaluate import evaluate_looped, evaluate_plain

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.d_model=16", "model.n_heads=2", "model.ffn_hidden=32", "model.train_loops=2",
        "train.steps=12", "train.batch_size=8", "train.warmup_steps=2", "train.checkpoint_every=4",
        "eval.loops_factor=2", "eval.depth_factor=0", "models=[rdt]", "twins=[iso-param]"]


def _cells(results: dict) -> list:
    return [(m["name"], r["seed"], r["status"], r["cells"], r["early_exit"]) for m in results["models"]
            for r in m["runs"]]


def _run(tmp_path: Path, name: str, extra: list[str] | None = None) -> dict:
    cfg = resolve_run_config("parity", "quick", None, TINY + (extra or []))
    return harness.run_benchmark(cfg, tmp_path / name, "test")


@pytest.mark.slow
def test_same_seed_same_numbers_and_a_complete_run_directory(tmp_path):
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b")
    assert _cells(a) == _cells(b)
    run_dir = tmp_path / "a"
    for name in ("results.json", "config.yaml", "log.txt", "report.md", "cells.csv", "summary.csv",
                 "models/rdt/seed0/model.safetensors", "models/rdt/seed0/ckpt-00000012/train_state.pt",
                 "models/rdt-iso-param/seed0/config.json"):
        assert (run_dir / name).exists(), name
    assert a["status"] == "complete" and a["task"]["fingerprint"]
    assert a["environment"]["torch_threads"] == torch.get_num_threads()  # results depend on it
    assert {r["train"]["torch_threads"] for m in a["models"] for r in m["runs"]} == {torch.get_num_threads()}
    rdt = next(m for m in a["models"] if m["name"] == "rdt")
    assert rdt["eval_loops"] == [1, 2, 3, 4]
    assert {c["loops"] for c in rdt["runs"][0]["cells"]} == {1, 2, 3, 4}
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_a_run_of_the_control_trains_the_control_and_its_twin_and_no_rdt(tmp_path):
    results = _run(tmp_path, "control", ["models=[control]", "twins=[iso-param]", "train.steps=4"])
    assert [(m["name"], m["role"], m["twin_of"]) for m in results["models"]] == [
        ("control", "control", None), ("control-iso-param", "iso-param", "control")]
    assert sorted(p.name for p in (tmp_path / "control" / "models").iterdir()) == ["control", "control-iso-param"]
    assert check_schema(results) == []


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    reference = _run(tmp_path, "reference")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mythbench.cli", "run", "parity", "--out", str(out)]
    for s in TINY:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seed_dir = out / "models" / "rdt" / "seed0"
    deadline = time.time() + 120
    while not list(seed_dir.glob("ckpt-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists(), "the run finished before it could be killed"
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads((out / "results.json").read_text())
    assert _cells(resumed) == _cells(reference)


@pytest.mark.slow
def test_a_diverging_model_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    real_train = harness.train_model

    def train_with_nan_baseline(model, *args, **kwargs):
        if ":rdt-iso-param:" in kwargs["desc"]:
            forward = model.forward_detailed

            def poisoned(*a, **k):
                out = forward(*a, **k)
                out.logits = out.logits * float("nan")
                return out

            model.forward_detailed = poisoned
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(harness, "train_model", train_with_nan_baseline)
    results = _run(tmp_path, "nan")
    runs = {m["name"]: m["runs"][0] for m in results["models"]}
    assert runs["rdt-iso-param"]["status"] == "diverged" and runs["rdt-iso-param"]["cells"] == []
    assert runs["rdt"]["status"] == "complete" and runs["rdt"]["cells"]
    assert "diverged" in (tmp_path / "nan" / "report.md").read_text()


def test_a_changed_config_does_not_mix_into_an_existing_run_dir(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    harness.prepare_run_dir(tmp_path, cfg)
    other = resolve_run_config("parity", "quick", None, [*TINY, "train.steps=13"])
    with pytest.raises(Exception, match="different config"):
        harness.prepare_run_dir(tmp_path, other)


def test_a_run_dir_computed_by_other_code_is_not_resumed(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    harness.prepare_run_dir(tmp_path, cfg)
    harness.prepare_run_dir(tmp_path, cfg)  # same config, same code: resumes
    (tmp_path / "code.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(ConfigError, match="different code"):
        harness.prepare_run_dir(tmp_path, cfg)


def test_code_fingerprint_sees_source_edits_and_nothing_else(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "model.py").write_text("x = 1\n")
    (package / "sub" / "spec.yaml").write_text("a: 1\n")
    before = harness.code_fingerprint([package])
    (package / "model.pyc").write_bytes(b"compiled")
    (package / "notes.md").write_text("prose")
    assert harness.code_fingerprint([package]) == before
    (package / "sub" / "spec.yaml").write_text("a: 2\n")
    assert harness.code_fingerprint([package]) != before


def test_one_pass_grid_equals_separate_runs_per_loop_count():
    torch.manual_seed(0)
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, train_loops=2)).eval()
    tokens = torch.randint(0, 6, (40, 10))
    targets = torch.randint(0, 6, (40, 10))
    mask = torch.rand(40, 10) < 0.5
    batches = lambda d: (tokens.numpy(), targets.numpy(), mask.numpy())  # noqa: E731
    grid = evaluate_looped(model, batches, [3], 5, EvalConfig(chunk_size=16))["cells"]
    for cell in grid:
        with torch.no_grad():
            pred = model(tokens, loops=cell["loops"]).argmax(-1)
        exact = ((pred == targets) | ~mask).all(-1)
        assert cell["correct"] == int(exact.sum()) and cell["n"] == 40


def test_scoring_at_one_loop_count_equals_that_cell_of_the_one_pass_grid():
    """The validation split is scored at the training loop count alone (evaluate_plain with loops); it must be
    the same number the grid gives there, so validation and test losses are comparable."""
    torch.manual_seed(1)
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, train_loops=3)).eval()
    tokens, targets = torch.randint(0, 6, (24, 9)), torch.randint(0, 6, (24, 9))
    mask = torch.rand(24, 9) < 0.6
    batches = lambda d: (tokens.numpy(), targets.numpy(), mask.numpy())  # noqa: E731
    grid = evaluate_looped(model, batches, [4], 5, EvalConfig(chunk_size=10))["cells"]
    for loops in (1, 3, 5):
        (alone,) = evaluate_plain(model, batches, [4], EvalConfig(chunk_size=7), loops=loops)["cells"]
        (cell,) = [c for c in grid if c["loops"] == loops]
        assert alone["loops"] == loops and alone["correct"] == cell["correct"]
        assert alone["loss"] == pytest.approx(cell["loss"], rel=1e-5)


@pytest.mark.slow
def test_a_three_seed_run_round_trips_into_the_leaderboard_and_one_seed_is_refused(tmp_path):
    from mythbench.core.errors import ConfigError
    from mythbench.results.leaderboard import submit, verify
    from mythbench.results.schema import check_schema

    one = _run(tmp_path, "one")
    assert check_schema(one) == []
    board = tmp_path / "results"
    with pytest.raises(ConfigError, match="--preset standard"):
        submit(tmp_path / "one" / "results.json", results_dir=board, name="tester")
    assert not board.exists() or not any(board.rglob("*.csv"))
    three = _run(tmp_path, "three", ["seeds=[0, 1, 2]", "train.steps=4"])
    assert check_schema(three) == []
    submit(tmp_path / "three" / "results.json", results_dir=board, name="tester")
    assert "parity" in (board / "LEADERBOARD.md").read_text()
    assert verify(board) == []
    # re-scoring the submitted checkpoints on a sample of the test sets agrees with the submission
    from mythbench.training.reevaluate import rescore_results

    assert rescore_results(tmp_path / "three" / "results.json", tmp_path / "three", sample=64) == []
