"""The command line as a user meets it: help, listings, clean errors (exit 2, no traceback), eval, report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mythbench.cli import app

runner = CliRunner()
TINY = ["--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "model.train_loops=2",
        "--set", "train.steps=6", "--set", "train.warmup_steps=1", "--set", "eval.loops_factor=2",
        "--set", "eval.depth_factor=0", "--set", "models=[rdt]", "--set", "twins=[iso-param]"]


def test_help_and_ls():
    assert runner.invoke(app, ["--help"]).exit_code == 0
    out = runner.invoke(app, ["ls"])
    assert out.exit_code == 0
    for word in ("parity", "state", "khop", "chain", "graph", "iso-param", "iso-flop", "quick", "standard"):
        assert word in out.stdout


@pytest.mark.parametrize("args, exit_code", [
    (["--help"], 0), (["ls"], 0), (["config", "show", "parity"], 0), (["describe", "parity"], 0),
    (["describe", "parity", "--set", "model.top_k=9"], 2),
    (["run", "parity", "--set", "model.top_k=9"], 2), (["scale", "parity", "--set", "train.bogus=1"], 2),
    (["bench", "parity", "--set", "model.d_model=30"], 2),
])
def test_light_commands_and_config_errors_load_neither_torch_nor_scipy(args, exit_code):
    """`--help`, `ls`, `describe` and a rejected config are instant: parameters and FLOPs are counted from
    the config, and each command imports the heavy library it calls only once its config is valid (a fresh
    interpreter, since this test process has long imported everything)."""
    code = ("import sys; from mythbench.cli import app; from typer.testing import CliRunner; "
            f"assert CliRunner().invoke(app, {args!r}).exit_code == {exit_code}; "
            "print(sorted(m for m in ('torch', 'scipy', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_describe_shows_each_looped_models_twins():
    out = runner.invoke(app, ["describe", "parity", "--json", "--set", "model.d_model=32", "--set", "model.ffn=moe"])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.stdout)["models"]}
    assert {n: r["twin_of"] for n, r in rows.items()} == {
        "rdt": None, "rdt-iso-param": "rdt", "rdt-iso-flop": "rdt",
        "control": None, "control-iso-param": "control", "control-iso-flop": "control"}
    assert 0 < rows["rdt"]["spectral_radius"] < 1
    for model in ("rdt", "control"):
        ratio = rows[f"{model}-iso-param"]["params"]["unique"] / rows[model]["params"]["unique"]
        assert abs(ratio - 1) <= 0.02
        ratio = rows[f"{model}-iso-flop"]["flops_per_token"]["forward"] / rows[model]["flops_per_token"]["forward"]
        assert abs(ratio - 1) <= 0.05
    text = runner.invoke(app, ["describe", "parity", "--set", "models=[control]", "--set", "twins=[iso-flop]"]).stdout
    assert [line.split()[0] for line in text.splitlines()] == ["control", "control-iso-flop"]


@pytest.mark.parametrize("args, expected", [
    (["run", "nope"], ["unknown task 'nope'"]),
    (["run", "parity", "--set", "train.steps=-1", "--set", "train.bogus=1"], ["train.bogus: unknown key"]),
    (["run", "parity", "--set", "model.attention=xx", "--set", "model.d_model=30"],
     ["model.attention", "model.d_model"]),
    (["run", "parity", "--config", "/nonexistent.yaml"], ["no such file"]),
    (["run", "parity", "--set", "threads=0"], ["threads: 0 must be >= 1"]),
    (["run", "parity", "--workers", "0"], ["--workers 0 must be >= 1"]),
    (["describe", "parity", "--set", "model.top_k=9"], ["model.top_k"]),
    (["describe", "parity", "--set", "d_model=32"], ["d_model: unknown key (did you mean", "'model.d_model'"]),
    (["sample", "parity", "--difficulty", "0"], ["difficulty 0 is outside"]),
    (["eval", "parity", "/nonexistent"], ["missing"]),
    (["report", "/nonexistent"], ["no results.json"]),
])
def test_bad_input_gets_one_clear_message_and_exit_2(args, expected):
    out = runner.invoke(app, args)
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output
    for text in expected:
        assert text in out.output


def test_sample_json_gives_checkable_instances():
    out = runner.invoke(app, ["sample", "parity", "--difficulty", "5", "--n", "2", "--json"])
    assert out.exit_code == 0, out.output
    instances = json.loads(out.stdout)
    assert len(instances) == 2
    for inst in instances:  # an independent check of the labels: prefix parity of the decoded bits
        assert inst["input"][0] == "<bos>" and inst["target"][0] is None
        bits = [int(b) for b in inst["input"][1:]]
        assert [int(t) for t in inst["target"][1:]] == [sum(bits[: i + 1]) % 2 for i in range(len(bits))]


@pytest.mark.slow
def test_run_then_eval_a_checkpoint_and_rebuild_the_report(tmp_path):
    run_dir = tmp_path / "run"
    out = runner.invoke(app, ["run", "parity", "--out", str(run_dir), *TINY])
    assert out.exit_code == 0, out.output
    results = json.loads((run_dir / "results.json").read_text())
    out = runner.invoke(app, ["eval", "parity", str(run_dir / "models" / "rdt" / "seed0"),
                              "--difficulties", "16,24", "--loops", "1,4"])
    assert out.exit_code == 0, out.output
    cells = json.loads(out.stdout)["cells"]
    assert {(c["difficulty"], c["loops"]) for c in cells} == {(16, 1), (16, 4), (24, 1), (24, 4)}
    stored = {(c["difficulty"], c["loops"]): c["correct"] for c in results["models"][0]["runs"][0]["cells"]}
    assert all(stored[(c["difficulty"], c["loops"])] == c["correct"] for c in cells)
    (run_dir / "report.md").unlink()
    out = runner.invoke(app, ["report", str(run_dir)])
    assert out.exit_code == 0 and (run_dir / "report.md").exists()
