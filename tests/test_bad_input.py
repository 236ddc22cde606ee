"""Each bad input of issue 15 gets a clear error (exit 2, no traceback) or works, never half a result."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from faults import SimulatedCrash, faulty_fs
from test_crash_consistency import CFG, _train
from test_harness import TINY
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.config import EvalConfig, resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.results.schema import check_schema
from mythbench.training import harness
from mythbench.training.evaluate import exit_indices
from mythbench.training.train import TRAIN_STATE, WEIGHTS
from mythbench.training.train_checkpoint import MANIFEST, save_checkpoint

runner = CliRunner()
ONE_LOOP = ["model.d_model=16", "model.n_heads=2", "model.train_loops=1", "train.steps=4", "train.batch_size=8",
            "train.warmup_steps=1", "train.checkpoint_every=2", "eval.loops_factor=1",
            "eval.depth_factor=0", "eval.train_points=1",
            "models=[rdt]", "twins=[iso-param]"]


def _cli(*args: str) -> tuple[int, str]:
    out = runner.invoke(app, list(args))
    assert out.exit_code in (0, 2) and "Traceback" not in out.output, (out.output, out.exception)
    return out.exit_code, out.output


def _sets(pairs: list[str]) -> list[str]:
    return [a for p in pairs for a in ("--set", p)]


@pytest.mark.parametrize("override", ["train.lr=.inf", "train.lr=.nan", "train.loops_per_difficulty=.inf",
                                      "eval.kl_threshold=-.inf", "model.init_std=.inf"])
def test_non_finite_floats_are_refused_at_validation(override, tmp_path):
    code, output = _cli("run", "parity", "--out", str(tmp_path / "run"), *_sets([override]))
    assert code == 2 and override.split("=")[0] in output and "finite" in output, output
    assert not (tmp_path / "run").exists()


def test_one_loop_early_exit_has_no_kl_rule():
    logits = torch.randn(1, 3, 5, 4)
    rules = exit_indices(logits, torch.ones(3, 5, dtype=torch.bool), torch.rand(1, 3), EvalConfig())
    assert set(rules) == {"confidence", "delta_h"} and all(r.tolist() == [0, 0, 0] for r in rules.values())


@pytest.fixture(scope="module")
def one_loop_run(tmp_path_factory) -> Path:
    """A finished run of a one-loop RDT evaluated at one loop (issue 15: it crashed after training)."""
    run_dir = tmp_path_factory.mktemp("one_loop") / "run"
    code, output = _cli("run", "parity", "--out", str(run_dir), *_sets(ONE_LOOP))
    assert code == 0, output
    return run_dir


@pytest.mark.slow
def test_a_one_loop_model_runs_and_says_the_kl_rule_is_not_applicable(one_loop_run):
    results = json.loads((one_loop_run / "results.json").read_text())
    assert check_schema(results) == []
    run = results["models"][0]["runs"][0]
    assert run["status"] == "complete" and {c["loops"] for c in run["cells"]} == {1}
    assert {e["rule"] for e in run["early_exit"]} == {"confidence", "delta_h"}
    assert "not applicable" in run["diagnostics"]["early_exit_not_applicable"]["kl"]


@pytest.mark.slow
@pytest.mark.parametrize("loops, code, expected", [("1", 0, None), ("0", 2, "--loops 0: give one or more"),
                                                   (",", 2, "--loops : give one or more"),
                                                   ("1,-3", 2, "positive integers")])
def test_eval_at_one_loop_works_and_zero_loops_are_refused(one_loop_run, loops, code, expected):
    got, output = _cli("eval", "parity", str(one_loop_run / "models/rdt/seed0"), "--difficulties", "16",
                       "--loops", loops)
    assert got == code, output
    if code == 0:
        assert {c["loops"] for c in json.loads(output)["cells"]} == {1}
    else:
        assert expected in output


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 3]


def _random(data: bytes) -> bytes:
    return bytes(torch.randint(0, 256, (len(data),), generator=torch.Generator().manual_seed(0)).tolist())


@pytest.mark.slow
@pytest.mark.parametrize("name, damage, expected", [
    (WEIGHTS, _truncated, "does not match its checksum"),
    (WEIGHTS, _random, "does not match its checksum"),
    (WEIGHTS, lambda d: b"", "does not match its checksum"),
    ("config.json", lambda d: b'{"family": "rdt", "model_config": {"d_model": 24}}', "weights do not fit"),
    ("config.json", _random, "config.json"),
    ("config.json", lambda d: b"[1, 2]", "not a model card"),
])
def test_a_damaged_checkpoint_is_reported_as_such(one_loop_run, tmp_path, name, damage, expected):
    ckpt = tmp_path / "seed0"
    shutil.copytree(one_loop_run / "models/rdt/seed0", ckpt)
    (ckpt / name).write_bytes(damage((ckpt / name).read_bytes()))
    code, output = _cli("eval", "parity", str(ckpt), "--difficulties", "16")
    assert code == 2 and expected in output, output


class _Payload:
    def __reduce__(self) -> tuple:
        return (exec, ("open('PWNED', 'w').close()",))


def test_a_hostile_train_state_is_refused_by_name(tmp_path, monkeypatch):
    """Real weights, hostile state: the refusal names the file (it was an UnpicklingError traceback)."""
    monkeypatch.chdir(tmp_path)
    ckpt_dir = tmp_path / "seed0"
    _train(ckpt_dir)
    (latest,) = ckpt_dir.glob("ckpt-*")
    weights = (latest / WEIGHTS).read_bytes()
    shutil.rmtree(latest)
    save_checkpoint(ckpt_dir, CFG.steps, {WEIGHTS: weights, TRAIN_STATE: pickle.dumps(_Payload(), protocol=2)})
    with pytest.raises(ConfigError, match=f"{TRAIN_STATE}: not a training state mythbench wrote, refused"):
        _train(ckpt_dir)
    assert not (tmp_path / "PWNED").exists()


def test_an_inconsistent_newest_checkpoint_falls_back_to_the_previous_one_and_says_so(tmp_path, caplog):
    reference = _train(tmp_path / "reference")
    run = tmp_path / "run"
    with faulty_fs() as counter:
        _train(tmp_path / "count")
    first_removal = next(i for i, s in enumerate(counter.steps, 1) if s.startswith("unlink"))
    with pytest.raises(SimulatedCrash), faulty_fs(crash_at=first_removal):  # two checkpoints on disk
        _train(run)
    older, newer = sorted(run.glob("ckpt-*"))
    (newer / TRAIN_STATE).write_bytes(_truncated((newer / TRAIN_STATE).read_bytes()))
    with caplog.at_level(logging.WARNING, logger="mythbench"):
        assert _train(run) == reference
    said = " ".join(r.message for r in caplog.records)
    assert f"{newer} is inconsistent" in said and "does not match its checksum" in said
    assert f"resuming from step {int(older.name[5:])}, the last consistent checkpoint" in said


def test_a_damaged_manifest_with_no_older_checkpoint_starts_over_and_says_so(tmp_path, caplog):
    reference = _train(tmp_path / "reference")
    (ckpt,) = (tmp_path / "reference").glob("ckpt-*")
    (ckpt / MANIFEST).write_bytes(b"\x80\x04not json")
    with caplog.at_level(logging.WARNING, logger="mythbench"):
        assert _train(tmp_path / "reference") == reference
    assert "training starts over from step 0" in " ".join(r.message for r in caplog.records)


@pytest.mark.slow
def test_a_model_whose_evaluation_overflows_is_recorded_as_diverged_in_valid_json(tmp_path, monkeypatch):
    real_train = harness.train_model

    def overflowing_at_evaluation(model, *args, **kwargs):
        def poison(method):  # every evaluation path: single passes and the loop sweep
            def poisoned(*a, **k):
                out = method(*a, **k)
                if not model.training and ":rdt:" in kwargs["desc"]:
                    out.logits = out.logits * float("inf")
                return out
            return poisoned

        model.forward_detailed = poison(model.forward_detailed)
        if hasattr(model, "sweep_loops"):  # the RDT's loop sweep
            model.sweep_loops = poison(model.sweep_loops)
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(harness, "train_model", overflowing_at_evaluation)
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "train.steps=4", "eval.train_points=1"])
    harness.run_benchmark(cfg, tmp_path / "run", "test")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert check_schema(results) == []
    runs = {m["name"]: m["runs"][0] for m in results["models"]}
    assert runs["rdt"]["status"] == "diverged" and runs["rdt"]["cells"] == []
    assert runs["rdt-iso-param"]["status"] == "complete"
