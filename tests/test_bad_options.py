"""Out-of-range options, unusable paths, oversized or duplicated config input and options that would do
nothing: each ends in exit status 2 with every problem named, before any work or allocation (issue 33)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.core.errors import ConfigError
from mythbench.core.yamlio import MAX_YAML_BYTES, load_yaml
from mythbench.models.rdt_config import RDTConfig
from mythbench.models.registry import MAX_MODEL_ELEMENTS, build_model

runner = CliRunner()
SMALL = ["--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "train.steps=1",
         "--set", "train.warmup_steps=0", "--set", "models=[rdt]", "--set", "twins=[]"]


def _refused(*args: str) -> str:
    out = runner.invoke(app, list(args))
    assert out.exit_code == 2 and "Traceback" not in out.output, (out.output, out.exception)
    return out.output


@pytest.mark.parametrize("args, expected", [
    (["bench", "parity", "--batch", "0"], "--batch 0: must be in [1, 4096]"),
    (["bench", "parity", "--threads", "0"], "--threads 0: must be in [1, 1024]"),
    (["bench", "parity", "--loops", "-1"], "--loops -1: must be in [1, 1024]"),
    (["bench", "parity", "--seq", "100000"], "--seq 100000: must be in [1, 65536]"),
    (["bench", "parity", "--repeats", "0"], "--repeats 0: must be in [1, 1000]"),
    (["sample", "parity", "-d", "8", "--n", "1000000000"], "--n 1000000000: must be in [1, 10000]"),
    (["sample", "parity", "-d", "8", "--seed", "-1"], "--seed -1: must be in [0, 2147483647]"),
    (["run", "parity", "--seeds", "0"], "--seeds 0: must be in [1, 1000]"),
    (["scale", "parity", "--seeds", "0"], "--seeds 0: must be in [1, 1000]"),
    (["compare", ".", "-d", "0"], "--difficulty 0: must be in [1, 1048576]"),
])
def test_every_numeric_option_has_a_range(args, expected):
    assert expected in _refused(*args)


def test_every_option_out_of_range_is_named_at_once():
    output = _refused("bench", "parity", "--batch", "0", "--threads", "0", "--repeats", "0")
    assert "3 problem(s)" in output and "--batch 0" in output and "--threads 0" in output


def test_an_out_path_that_is_a_file_or_cannot_be_created_is_refused_by_name(tmp_path):
    file = tmp_path / "file"
    file.write_text("not a directory")
    assert f"{file} is a file, not a directory" in _refused("run", "parity", "--out", str(file), *SMALL)
    assert "Not a directory" in _refused("run", "parity", "--out", str(file / "run"), *SMALL)
    assert "No such file or directory" in _refused("run", "parity", "--out", "/proc/mythbench-run", *SMALL)
    assert file.read_text() == "not a directory"


def test_a_grid_out_that_is_a_file_is_refused_by_name(tmp_path):
    (tmp_path / "file").write_text("")
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"tasks: [parity]\nout: {tmp_path / 'file'}\nset: [model.d_model=16, model.n_heads=2]\n")
    assert "cannot create the run directory (Not a directory)" in _refused("sweep", str(grid))


@pytest.mark.parametrize("args, expected", [
    (["sweep", "GRID", "--address", "ray://head:10001"], "--address names a Ray cluster; it does nothing with "
                                                         "--backend local"),
    (["sweep", "GRID", "--backend", "local", "--slurm", "partition=gpu"], "--slurm partition: Slurm options do "
                                                                          "nothing with --backend local"),
    (["sweep", "GRID", "--workers", "0", "--retries", "101"], "--retries 101: must be in [0, 100]"),
    (["scale", "parity", "--workers", "2", "--retries", "1"], "--workers, --retries: options of a --backend"),
    (["scale", "parity", "--address", "ray://head:10001"], "--address: options of a --backend"),
])
def test_an_option_that_would_do_nothing_with_the_backend_is_refused(tmp_path, args, expected):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"tasks: [parity]\nout: {tmp_path / 'out'}\n")
    assert expected in _refused(*[str(grid) if a == "GRID" else a for a in args])
    assert not (tmp_path / "out").exists()


def test_duplicate_yaml_keys_are_an_error_naming_the_key_and_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  steps: 5\n  steps: 500\n")
    output = _refused("run", "parity", "--config", str(config), "--out", str(tmp_path / "run"))
    assert "line 3" in output and "duplicate key 'steps'" in output
    assert not (tmp_path / "run").exists()
    config.write_text("base: &b {steps: 5}\ntrain:\n  <<: *b\n  steps: 6\n")  # overriding a merged key is fine
    assert load_yaml(config)["train"] == {"steps": 6}


def test_a_yaml_file_over_the_limit_is_refused_before_it_is_parsed(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("# " + "x" * MAX_YAML_BYTES)
    with pytest.raises(ConfigError, match=f"over the limit of {MAX_YAML_BYTES:,} bytes"):
        load_yaml(config)


def test_a_model_card_asking_for_terabytes_is_refused_before_allocation(tmp_path):
    ckpt = tmp_path / "seed0"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"")
    (ckpt / "config.json").write_text(json.dumps({"family": "rdt", "model_config": {"d_model": 2**20}}))
    assert "d_model: must be <= 65536, got 1048576" in _refused("eval", "parity", str(ckpt))
    huge = {"vocab_size": 2**20, "d_model": 2048, "n_heads": 16}  # each bound holds, the whole does not
    (ckpt / "config.json").write_text(json.dumps({"family": "rdt", "model_config": huge}))
    assert f"the limit is {MAX_MODEL_ELEMENTS:,}" in _refused("eval", "parity", str(ckpt))
    with pytest.raises(ConfigError, match=f"the limit is {MAX_MODEL_ELEMENTS:,}"):
        build_model("rdt", huge)


def test_a_run_of_a_model_over_the_limit_is_refused_before_its_directory_is_made(tmp_path):
    output = _refused("run", "parity", "--out", str(tmp_path / "run"), "--set", "model.d_model=8192",
                      "--set", "model.n_heads=16", "--set", "model.ffn_hidden=65536", "--set", "models=[rdt]",
                      "--set", "twins=[]")
    assert "models: rdt: the rdt model holds" in output and f"the limit is {MAX_MODEL_ELEMENTS:,}" in output
    assert not (tmp_path / "run").exists()


def test_every_integer_field_of_the_model_config_has_an_upper_bound():
    with pytest.raises(ConfigError) as err:
        RDTConfig(recurrent_layers=10**6, lora_max_loops=10**9, train_loops=10**9)
    assert len(err.value.problems) == 3 and all("must be <=" in p for p in err.value.problems)


def test_eval_loops_are_bounded(tmp_path):
    assert "--loops 5000: must be <= 1024" in _refused("eval", "parity", str(tmp_path), "--loops", "5000")


@pytest.mark.parametrize("device", ["x", "cuda:", "cuda:one", "gpu"])
def test_eval_refuses_a_device_torch_does_not_know_before_loading(tmp_path, device):
    assert f"--device: {device!r} is not cpu, cuda or cuda:N" in _refused("eval", "parity", str(tmp_path),
                                                                         "--device", device)


def test_the_seeds_option_sets_the_seed_count(monkeypatch, tmp_path):
    """--seeds 1 trains seed 0 alone, whatever the preset's seeds (a falsy check once dropped --seeds 0)."""
    from mythbench.training import harness

    seen = []
    monkeypatch.setattr(harness, "run_benchmark", lambda cfg, *a, **k: seen.append(cfg.seeds) or {"models": []})
    monkeypatch.setattr("mythbench.reports.report.format_summary_table", lambda results: "")
    out = runner.invoke(app, ["run", "parity", "--preset", "standard", "--seeds", "1", "--workers", "1",
                              "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert seen == [[0]]


def test_bench_refuses_a_json_path_that_is_a_directory_before_timing_anything(tmp_path, monkeypatch):
    from mythbench.training import bench

    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("timed before checking --json"))
    assert f"--json {tmp_path}: a directory" in _refused("bench", "parity", "--json", str(tmp_path))
