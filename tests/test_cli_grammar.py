"""One grammar: the task is the first argument of every command, `config show` prints the resolved config,
mistyped names get "did you mean", fixed choices are listed in --help."""

from __future__ import annotations

import dataclasses
import json

import pytest
from mythbench.tasks.task import SPLIT_IDS
from typer.testing import CliRunner

import mythbench.cli as cli
from mythbench.cli import app
from mythbench.config import RunConfig, resolve_run_config
from mythbench.experiments.backends import BACKENDS
from mythbench.training.bench import DTYPES

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    out = runner.invoke(app, list(args), prog_name="mythbench", env={"COLUMNS": "200"})  # no wrapped messages
    assert "Traceback" not in out.output, out.output
    return out.exit_code, out.output


@pytest.mark.parametrize("args", [
    ["describe", "--task", "parity"],
    ["bench", "--task=parity"],
    ["sample", "--task", "parity", "-d", "3"],
    ["run", "--task", "parity"],
    ["scale", "--task", "parity"],
    ["eval", "runs/parity/quick/models/rdt/seed0", "--task", "parity"],
    ["config", "show", "--task", "parity"],
])
def test_task_as_an_option_is_refused_with_the_spelling_to_use(args):
    code, output = _invoke(*args)
    assert code == 2 and "the task is positional" in output and f"mythbench {args[0]}" in output, output


@pytest.mark.parametrize("args, expected", [
    (["run", "parit"], "unknown task 'parit' (did you mean 'parity'"),
    (["describe", "parity", "--set", "train.step=3"], "train.step: unknown key (did you mean 'train.steps'?)"),
    (["config", "show", "parity", "--set", "trian.steps=3"], "trian: unknown key (did you mean 'train'?)"),
    (["config", "show", "parity", "--preset", "quik"], "unknown 'quik' (did you mean 'quick'?)"),
    (["sample", "parity", "-d", "3", "--split", "tset"], "unknown 'tset' (did you mean 'test'?)"),
    (["bench", "parity", "--dtype", "bf61"], "did you mean 'bf16'?"),
    (["bench", "parity", "--family", "rdtt"], "unknown model family 'rdtt' (did you mean 'rdt'?)"),
    (["sweep", "grid.yaml", "--backend", "lokal"], "did you mean 'local'?"),
])
def test_a_mistyped_name_gets_did_you_mean(args, expected):
    code, output = _invoke(*args)
    assert code == 2 and expected in output, output


def test_a_mistyped_model_or_twin_gets_did_you_mean_before_anything_is_written(tmp_path):
    code, output = _invoke("run", "parity", "--out", str(tmp_path / "run"), "--set", "twins=[iso-prm]",
                           "--set", "models=[rdt,contrl]")
    assert code == 2 and "unknown twin 'iso-prm' (did you mean 'iso-param'" in output, output
    assert "unknown model 'contrl' (did you mean 'control'" in output, output
    assert not (tmp_path / "run").exists()


def test_every_problem_of_a_config_is_named_at_once():
    code, output = _invoke("config", "show", "parit", "--set", "train.step=3", "--set", "model.atention=mla")
    assert code == 2 and "3 problem(s)" in output, output
    for text in ("did you mean 'parity'", "did you mean 'train.steps'", "did you mean 'model.attention'"):
        assert text in output


@pytest.mark.parametrize("command, choices", [
    (["run"], ["full|quick|standard"]),
    (["config", "show"], ["full|quick|standard"]),
    (["bench"], ["fp32|bf16", "off|on|both"]),
    (["sample"], ["train|test|validation"]),
    (["scale"], ["local|ray|slurm"]),
    (["sweep"], ["local|ray|slurm"]),
])
def test_fixed_choices_and_examples_are_in_help(command, choices):
    code, output = _invoke(*command, "--help")
    assert code == 0 and "Example" in output, output
    for text in choices:
        assert text in output


def test_the_cli_spells_the_library_choices():
    """The CLI lists its choices without importing torch; they must still be the library's."""
    assert (BACKENDS, tuple(DTYPES), tuple(SPLIT_IDS)) == (cli.BACKENDS, cli.DTYPES, cli.SPLITS)


def _flat_keys(config: object, prefix: str = "") -> dict[str, object]:
    out = {}
    for name, value in dataclasses.asdict(config).items():
        section = getattr(config, name)  # a nested dataclass is a section; a dict-valued key (recipes) is one key
        out.update(_flat_keys(section, f"{prefix}{name}.") if dataclasses.is_dataclass(section)
                   else {f"{prefix}{name}": value})
    return out


def test_config_show_lists_every_key_with_value_default_and_help():
    code, output = _invoke("config", "show", "parity", "--preset", "standard", "--set", "train.steps=1234", "--json")
    assert code == 0, output
    rows = {row["key"]: row for row in json.loads(output)}
    resolved = resolve_run_config("parity", "standard", overrides=["train.steps=1234"])
    assert {key: row["value"] for key, row in rows.items()} == _flat_keys(resolved)
    assert {key: row["default"] for key, row in rows.items()} == _flat_keys(RunConfig())
    undocumented = [key for key, row in rows.items() if not row["help"].strip()]
    assert not undocumented, f"keys without a help comment: {undocumented}"
    assert rows["train.steps"]["value"] == 1234 and rows["preset"]["value"] == "standard"


def test_config_show_prints_a_line_per_key():
    code, output = _invoke("config", "show", "parity", "--set", "train.steps=1234")
    assert code == 0, output
    lines = {line.split()[0]: line.split(maxsplit=3)[1:] for line in output.splitlines()[1:]}
    assert lines.keys() == _flat_keys(RunConfig()).keys()
    assert lines["train.steps"][:2] == ["1234", "400"] and "optimizer steps" in lines["train.steps"][2]
    assert lines["model.attention"][:2] == ["mla", "mha"]  # recipes.yaml's RDT, then the built-in default
