"""The CLI under random input: random `--set` keys and values, and random damage to a run's files.

Whatever the input: exit status 0 or 2, no traceback, and nothing half-written (no temporary file left,
no results.json from a refused run, and every results.json written passes the schema). Time is bounded by
construction, not measured: a fixed number of examples, each at most one tiny run (a one-loop RDT, one
training step, no baseline; fuzzed values of the keys that set the size of a run are kept small).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.config import EvalConfig, ScaleConfig, TrainConfig
from mythbench.models.model import RDTConfig
from mythbench.results.schema import check_schema

runner = CliRunner()
BASE = ["model.d_model=16", "model.n_heads=2", "model.train_loops=1", "model.ffn=dense", "train.recipe=fixed",
        "train.steps=1", "train.warmup_steps=0", "train.batch_size=4", "eval.loops_factor=1",
        "eval.depth_factor=0", "eval.train_points=1", "models=[rdt]", "twins=[]"]
KEYS = ([f"train.{f.name}" for f in dataclasses.fields(TrainConfig)]
        + [f"eval.{f.name}" for f in dataclasses.fields(EvalConfig)]
        + [f"scale.{f.name}" for f in dataclasses.fields(ScaleConfig)]
        + [f"model.{f.name}" for f in dataclasses.fields(RDTConfig)]
        + ["seeds", "device", "models", "twins", "task", "preset"])
# keys whose value sets the work a valid run does: fuzzed with small or invalid values only
SIZED = {"train.steps", "train.warmup_steps", "train.batch_size", "train.bwd_loops", "train.loops_per_difficulty",
         "eval.loops_factor", "eval.depth_factor", "eval.chunk_size", "seeds", "models", "twins", "preset",
         *(k for k in KEYS if k.startswith("model."))}
ODD = [".inf", "-.inf", ".nan", "1e400", "1.0e+400", "[", "]", "{", "{a: 1}", "[1, 2]", "[]", "[[]]", "null", "~",
       "true", "no", "''", "!!python/object/apply:os.system ['echo PWNED']", "&a [*a]", "0x10", "1_000", "1:2",
       "é", "-", "[-1]", "[2147483648]", "[0, 0]", "cuda", "cuda:7", "cpu", "[iso-flop]", "[nope]", "standard"]


def _plausible(key: str, value: object) -> str:
    """A key's default as a --set value (sized integers capped at 4, sized floats at 0.25), so many examples
    are valid runs that finish quickly."""
    sized = key in SIZED and isinstance(value, int | float) and not isinstance(value, bool)
    return json.dumps(min(value, 4 if isinstance(value, int) else 0.25) if sized else value)


PLAUSIBLE = {f"{section}.{f.name}": _plausible(f"{section}.{f.name}", getattr(cls(), f.name))
             for section, cls in (("train", TrainConfig), ("eval", EvalConfig), ("scale", ScaleConfig),
                                  ("model", RDTConfig))
             for f in dataclasses.fields(cls)}
SMALL = st.sampled_from(["-1", "0", "1", "2", "0.5", "-0.0", *ODD])
ANY = st.one_of(SMALL, st.integers(-(2**70), 2**70).map(str), st.floats().map(repr),
                st.text(max_size=6).filter(lambda t: "\n" not in t))
JUNK_KEY = st.text("abcz._ 0=", min_size=0, max_size=8)


@st.composite
def overrides(draw: st.DrawFn) -> list[str]:
    pairs = []
    for _ in range(draw(st.integers(1, 2))):
        key = draw(JUNK_KEY if draw(st.integers(0, 5)) == 0 else st.sampled_from(KEYS))
        if key in PLAUSIBLE and draw(st.booleans()):
            value = PLAUSIBLE[key]
        else:
            value = draw(SMALL if key in SIZED or key not in KEYS else ANY)
        pairs.append(f"{key}={value}")
    return pairs


def _invoke(args: list[str]) -> int:
    out = runner.invoke(app, args)
    assert out.exit_code in (0, 2), f"exit {out.exit_code} for {args}: {out.exception!r}\n{out.output}"
    assert "Traceback" not in out.output, out.output
    return out.exit_code


def _results(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("results.json")}


def _nothing_half_written(root: Path, before: dict[Path, bytes]) -> None:
    """No temporary file left, and every results.json the command wrote passes the schema."""
    assert not [p for p in root.rglob("*.tmp")], "temporary files left behind"
    for path, data in _results(root).items():
        if before.get(path) != data:
            assert check_schema(json.loads(data)) == [], path


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=overrides())
def test_random_set_overrides_exit_0_or_2_and_leave_nothing_half_written(pairs):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["run", "parity", "--out", str(out)] + [a for p in BASE + pairs for a in ("--set", p)]
        code = _invoke(args)
        if code == 2:
            assert not (out / "results.json").exists()
        _nothing_half_written(Path(tmp), {})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("fuzz") / "run"
    assert _invoke(["run", "parity", "--out", str(run_dir)] + [a for p in BASE for a in ("--set", p)]) == 0
    return run_dir


FILES = ["results.json", "config.yaml", "code.sha256", "models/rdt/seed0/config.json",
         "models/rdt/seed0/model.safetensors", "models/rdt/seed0/model.safetensors.sha256",
         "models/rdt/seed0/result.json",
         "models/rdt/seed0/ckpt-00000001/manifest.json", "models/rdt/seed0/ckpt-00000001/train_state.pt",
         "models/rdt/seed0/ckpt-00000001/model.safetensors"]


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, str, int, bytes]:
    """(file, how, position, bytes): truncate at, flip the byte at, or replace with random bytes."""
    return (draw(st.sampled_from(FILES)), draw(st.sampled_from(["truncate", "flip", "replace", "remove"])),
            draw(st.integers(0, 10**6)), draw(st.binary(max_size=64)))


def _damaged(data: bytes, how: str, at: int, junk: bytes) -> bytes:
    at = at % max(1, len(data))
    if how == "truncate":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:] if data else junk
    return junk


@pytest.mark.slow
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(hurt=damage(),
       command=st.sampled_from(["eval", "report", "verify", "submit", "resume", "retrain", "rescore"]))
def test_commands_on_damaged_run_files_exit_0_or_2_and_leave_nothing_half_written(finished_run, hurt, command):
    name, how, at, junk = hurt
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(finished_run, run)
        target = run / name
        if how == "remove":
            target.unlink()
        else:
            target.write_bytes(_damaged(target.read_bytes(), how, at, junk))
        commands = {"eval": ["eval", "parity", str(run / "models/rdt/seed0"), "--difficulties", "16"],
                    "report": ["report", str(run)], "verify": ["verify", str(run)],
                    "submit": ["submit", str(run / "results.json"), "--results-dir", str(Path(tmp) / "board")],
                    "rescore": ["verify", "--rescore", str(run / "results.json"), "--checkpoint", str(run)],
                    "resume": ["run", "parity", "--out", str(run)] + [a for p in BASE for a in ("--set", p)]}
        if command == "retrain":  # without its result the model resumes from its (damaged) checkpoint
            (run / "models/rdt/seed0/result.json").unlink(missing_ok=True)
        before = _results(Path(tmp))
        _invoke(commands.get(command, commands["resume"]))
        _nothing_half_written(Path(tmp), before)


# Every option of every command, each with values drawn from a pool of valid, invalid and hostile ones. A
# pool never holds a value that starts unbounded or minutes-long work: --compile on/both (torch.compile),
# --backend ray (starts a cluster), a preset other than quick; `scale` always runs --partial, and a sweep's
# run directories are either unusable or already complete, so its cells are never run again.
INTS = st.sampled_from(["-1", "0", "1", "2", "3", "2147483648", "99999999999999999999", "x", "", "1.5"])
TEXT = st.sampled_from(["", "x", "é", "-", "--", "1,2", "0", "0,-1", "a=b", "\x00"])
FLAG = st.just(None)
TASK = st.sampled_from(["parity", "nope", "", "all"])
PRESET = st.sampled_from(["quick", "nope", "../quick"])
PATHS = st.sampled_from(["{run}", "{file}", "{missing}", "{results}", "{ckpt}", "/proc/mythbench/x"])
SETS = st.sampled_from(["model.d_model=24", "train.steps=-1", "bogus=1", "x", "eval.chunk_size=0"])
DEVICE = st.sampled_from(["cpu", "cuda", "cuda:7", "x"])
BACKEND = {"--backend": st.sampled_from(["local", "slurm", "mpi", ""]), "--workers": INTS,
           "--address": st.sampled_from(["ray://head:10001", ""]), "--retries": INTS,
           "--slurm": st.sampled_from(["partition=x", "bogus=1", "x", "folder={missing}"])}
CONFIGURED = {"--preset": PRESET, "--config": PATHS, "--set": SETS}
COMMANDS: dict[str, tuple[list[st.SearchStrategy[str]], dict[str, st.SearchStrategy]]] = {
    # command: (strategies of its arguments, {option: strategy of its value, FLAG for a flag})
    "ls": ([], {}),
    "describe": ([TASK], {**CONFIGURED, "--json": FLAG}),
    "bench": ([TASK], {**CONFIGURED, "--family": st.sampled_from(["rdt", "standard", "nope"]),
                   "--dtype": st.sampled_from(["fp32", "bf16", "fp8"]), "--compile": st.sampled_from(["off", "x"]),
                   "--batch": INTS, "--seq": INTS, "--loops": INTS, "--threads": INTS, "--repeats": INTS,
                   "--sweep": FLAG, "--no-sweep": FLAG, "--json": st.sampled_from(["{new}.json", "{file}", "{run}"]),
                   "--suite": FLAG, "--against": st.sampled_from(["nope", "0" * 40, "HEAD"])}),
    "sample": ([TASK], {"--difficulty": INTS, "-d": INTS, "--n": INTS, "--split": st.sampled_from(["test", "x"]),
                        "--seed": INTS, "--json": FLAG}),
    "run": ([TASK], {**CONFIGURED, "--seeds": INTS, "--device": DEVICE, "--workers": INTS,
                     "--tuned": st.sampled_from(["{file}", "{missing}", "{results}"]),
                     "--out": st.sampled_from(["{run}", "{new}", "{file}", "/proc/mythbench/x"])}),
    "tune": ([TASK], {**CONFIGURED, **{k: BACKEND[k] for k in ("--backend", "--workers", "--retries")},
                      "--device": DEVICE, "--out": st.sampled_from(["{file}", "/proc/mythbench/x"])}),
    "config show": ([TASK], {**CONFIGURED, "--json": FLAG}),
    "scale": ([TASK], {**CONFIGURED, **BACKEND, "--seeds": INTS, "--device": DEVICE, "--out": PATHS,
                       "--partial": FLAG}),
    "sweep": ([st.sampled_from(["{grid}", "{file}", "{missing}"])],
              {**BACKEND, "--out": st.sampled_from(["{done}", "{file}", "/proc/mythbench/x"])}),
    "eval": ([TASK, PATHS], {"--difficulties": st.one_of(TEXT, INTS), "--loops": st.one_of(TEXT, INTS),
                       "--device": DEVICE}),
    "report": ([PATHS], {"--html": FLAG}),
    "compare": ([PATHS], {"--difficulty": INTS, "-d": INTS}),
    "submit": ([PATHS], {"--name": TEXT, "--results-dir": st.sampled_from(["{new}", "{file}"])}),
    "verify": ([PATHS], {"--rescore": PATHS, "--checkpoint": PATHS}),
    "fit": ([PATHS], {}),
    "answer": ([], {"--write": FLAG, "--root": PATHS}),
}
# --set pairs appended: small models, and a one-trial search for tune
ALWAYS = {"describe": BASE, "bench": BASE, "run": BASE, "scale": BASE,
          "tune": [*BASE, "tune.lr_grid=[1]", "tune.recipes=[]"]}
SUFFIX = {"scale": ["--partial"], "bench": ["--repeats", "1"]}
# Options listed above but never drawn, because any value starts minutes-long work: `bench --suite` times
# several models, OpenMythos and a checkout of another commit (tests/test_bench_suite.py runs it at its
# smallest size; the fuzz still draws --against, which without --suite is refused).
NOT_DRAWN = {"bench": {"--suite"}}


def test_the_fuzz_covers_every_command_and_every_option():
    import typer.main

    commands = {}
    for name, command in typer.main.get_command(app).commands.items():  # a group's commands: "config show"
        subcommands = getattr(command, "commands", None)
        commands.update({f"{name} {sub}": c for sub, c in subcommands.items()} if subcommands else {name: command})
    assert commands.keys() == COMMANDS.keys()
    for name, command in commands.items():
        arguments, options = COMMANDS[name]
        declared = {o for p in command.params if p.param_type_name == "option" for o in p.opts + p.secondary_opts}
        assert declared == set(options), name
        assert len(arguments) == sum(p.param_type_name == "argument" for p in command.params), name


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    arguments, options = COMMANDS[name]
    args = [*name.split(), *(draw(a) for a in arguments)]
    drawable = sorted(set(options) - NOT_DRAWN.get(name, set()))
    for option in draw(st.lists(st.sampled_from(drawable), max_size=4)) if drawable else []:
        args += [option] if options[option] is FLAG else [option, draw(options[option])]
    return args + [a for p in ALWAYS.get(name, []) for a in ("--set", p)] + SUFFIX.get(name, [])


@pytest.mark.slow
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(args=command_lines())
def test_every_command_under_random_options_exits_0_or_2_and_leaves_nothing_half_written(finished_run, args,
                                                                                          monkeypatch):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        monkeypatch.chdir(root)  # default output paths (runs/, results/) land here
        shutil.copytree(finished_run, root / "run")
        shutil.copytree(finished_run, root / "done" / "parity" / "quick" / "default")
        (root / "file").write_text("not a directory\n")
        (root / "grid.yaml").write_text(json.dumps({"tasks": ["parity"], "set": BASE, "out": str(root / "done")}))
        places = {"{run}": root / "run", "{done}": root / "done", "{file}": root / "file", "{new}": root / "new",
                  "{missing}": root / "missing" / "x", "{grid}": root / "grid.yaml",
                  "{results}": root / "run" / "results.json", "{ckpt}": root / "run" / "models" / "rdt" / "seed0"}
        for placeholder, path in places.items():
            args = [a.replace(placeholder, str(path)) for a in args]
        before = _results(root)
        _invoke(args)
        _nothing_half_written(root, before)
