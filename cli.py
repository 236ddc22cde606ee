"""The `mythbench` command line. Thin: each command parses options and calls the library.

One grammar: `mythbench COMMAND TASK [OPTIONS]`; the task is always the first argument, never `--task`.
Bad input of any kind (unknown task, malformed YAML, unknown key, out-of-range value, missing file) ends
in one message listing every problem and exit status 2, never a traceback; a mistyped name gets the
closest known ones ("did you mean").

Each command imports the library it calls, so `mythbench --help` and the light commands load neither torch
nor scipy (tests/test_cli.py checks it).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from mythbench.config import describe_config, format_config, list_presets, parse_overrides, resolve_run_config
from mythbench.core.errors import ConfigError, MythbenchError, known_hint
from mythbench.core.fileio import atomic_write_json

# Fixed choices, spelled out so that --help lists them without importing torch; tests/test_cli_grammar.py checks
# each against the library's own list.
BACKENDS = ("local", "ray", "slurm")
DTYPES = ("fp32", "bf16")
SPLITS = ("train", "test", "validation")
# The commit the branches of issue 28 (threads per cell, analytic counts, the loop sweep's shortcut) started
# from: the code whose speed the issue measured, which `bench --suite` compares against by default
BEFORE_ISSUE_28 = "f75905d"
COMPILE_MODES = {"off": [False], "on": [True], "both": [False, True]}

BACKEND_HELP = "local (processes on this machine) | ray | slurm (submitit)"
WORKERS_HELP = "parallel cells (default: cores // threads; Slurm: array parallelism)"
RETRIES_HELP = "times a failed or killed cell is run again before it is reported"
SLURM_HELP = "key=value for the Slurm backend: partition, timeout_min, cpus_per_task, gpus_per_node, folder"
SEEDS = (1, 1000)  # --seeds N: the seeds 0..N-1


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Depth-extrapolation benchmarks for Recurrent-Depth (looped) Transformers.")
config_app = typer.Typer(no_args_is_help=True, help="The run config: every key, its value, default and help.")
app.add_typer(config_app, name="config")


def choice(names: Sequence[str]) -> dict[str, Any]:
    """typer.Option keywords for a fixed choice: the names in --help, and "did you mean" for a typo."""

    def parse(value: str) -> str:
        if value not in names:
            raise typer.BadParameter(f"unknown {value!r}{known_hint(value, names)}")
        return value

    return {"parser": parse, "metavar": "|".join(names)}


class TaskFirst(TyperCommand):
    """A command whose first argument is the task. `--task NAME`, the old spelling of describe and eval, gets
    the spelling to use rather than a bare "no such option"."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if any(arg == "--task" or arg.startswith("--task=") for arg in args):
            raise typer.BadParameter(f"the task is positional, not an option: {ctx.command_path} TASK ...",
                                     ctx=ctx, param_hint="'--task'")
        return super().parse_args(ctx, args)


def task_argument(all_: bool = False) -> Any:
    """The TASK argument every command that takes a task takes first."""
    return typer.Argument(..., help="a task of `mythbench ls`, or a task file (.yaml)" + (", or 'all'" if all_ else ""))


def preset_option() -> Any:
    return typer.Option("quick", "--preset", help="budgets: steps, batch, seeds, widths", **choice(list_presets()))


def examples(*command_lines: str) -> str:
    """A command's --help epilog: one example per line."""
    return "Examples:\n\n" + "\n\n".join(f"mythbench {line}" for line in command_lines)


def reports_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ConfigError (and other expected errors) into a clean message and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MythbenchError as e:
            problems = getattr(e, "problems", [str(e)])
            typer.echo(f"error: {len(problems)} problem(s):", err=True)
            for p in problems:
                typer.echo(f"  - {p}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def option_ranges(**ranges: tuple[int, int]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command's numeric options their inclusive ranges (a list option: each of its values), so no typo
    turns into an unbounded request; every option out of range is named in one ConfigError. (--workers and
    --retries are checked by `make_backend`, together with the backend they go with.)"""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = signature.bind(*args, **kwargs).arguments
            problems = [f"--{name} {value}: must be in [{low}, {high}]" for name, (low, high) in ranges.items()
                        for value in _as_list(given.get(name)) if not low <= value <= high]
            if problems:
                raise ConfigError(problems)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


class _StderrWarnings(logging.Handler):
    """Warnings (a diverged model, a checkpoint fallback, a lock taken over) on the terminal as well as in
    the run's log.txt; the stream is looked up at each message, so it is always the current one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)


def _warnings_to_stderr() -> None:
    log = logging.getLogger("mythbench")
    if not any(isinstance(h, _StderrWarnings) for h in log.handlers):
        log.addHandler(_StderrWarnings())


def _run_config_and_task(task: str, preset: str, config: Path | None, overrides: list[str]) -> tuple[Any, Any]:
    """The run config `mythbench run TASK` would use, from the same keys spelled the same way, and the task."""
    from mythbench import tasks

    return resolve_run_config(task, preset, config, overrides), tasks.get_task(task)


def _rdt_config(task: str, preset: str, config: Path | None, overrides: list[str]) -> Any:
    """The run's `model:` config at the task's sizes: the RDT `mythbench run TASK` would train."""
    from mythbench.training import plan

    return plan.task_model_config(*_run_config_and_task(task, preset, config, overrides))


@app.command("ls")
@reports_errors
def ls() -> None:
    """List tasks, looped models, twins and presets, one line each."""
    from mythbench import tasks
    from mythbench.models import baseline_registry

    typer.echo("tasks:")
    for line in tasks.describe_tasks():
        typer.echo(f"  {line}")
    typer.echo("models (models: [a, b]; a+b applies b's change to a):")
    for line in baseline_registry.describe_models():
        typer.echo(f"  {line}")
    typer.echo("twins (twins: [...], each looped model's; named <model>-<kind>):")
    for line in baseline_registry.describe_twins():
        typer.echo(f"  {line}")
    typer.echo("presets:")
    typer.echo("  " + ", ".join(list_presets()))


@app.command(cls=TaskFirst, epilog=examples("describe parity --set model.d_model=128", "describe khop --json"))
@reports_errors
def describe(task: str = task_argument(),
             preset: str = preset_option(),
             config: Path | None = typer.Option(None, "--config", help="YAML run config, as for run"),
             set_: list[str] = typer.Option([], "--set", help="override as for run, e.g. model.d_model=128"),
             as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Parameter counts, FLOPs per token and max rho(A) of every looped model `run` would train and its twins."""
    from mythbench.training import plan

    rows = plan.describe_models(*_run_config_and_task(task, preset, config, set_))
    if as_json:
        typer.echo(json.dumps({"models": rows}, indent=2))
        return
    for row in rows:
        p, f = row["params"], row["flops_per_token"]
        rho = "" if row.get("spectral_radius") is None else f"  rho(A)={row['spectral_radius']:.4f}"
        name = row["name"] if row["twin_of"] is None else f"  {row['name']}"  # a twin under its looped model
        typer.echo(f"{name:<24} layers={row['layers']:<3} params unique={p['unique']:,} "
                   f"active={p['active']:,}  FLOPs/token fwd={f['forward']:.3g} train={f['train']:.3g}{rho}")


@app.command(cls=TaskFirst, epilog=examples("bench parity --dtype fp32 --dtype bf16",
                                            "bench parity --family rdt --family standard --compile both"))
@reports_errors
@option_ranges(batch=(1, 4096), seq=(1, 65536), loops=(1, 1024), threads=(1, 1024), repeats=(1, 1000))
def bench(task: str = task_argument(),
          preset: str = preset_option(),
          config: Path | None = typer.Option(None, "--config", help="YAML run config, as for run"),
          set_: list[str] = typer.Option([], "--set", help="override as for run, e.g. model.d_model=128"),
          family: list[str] = typer.Option(["rdt"], "--family", help="model family; repeat to compare"),
          dtype: list[str] = typer.Option(["fp32"], "--dtype", help="autocast dtype; repeatable", **choice(DTYPES)),
          compile_: str = typer.Option("off", "--compile", help="torch.compile", **choice(list(COMPILE_MODES))),
          batch: int = typer.Option(32, "--batch"), seq: int = typer.Option(64, "--seq"),
          loops: int | None = typer.Option(None, "--loops", help="default: train_loops"),
          threads: int = typer.Option(2, "--threads"),
          repeats: int | None = typer.Option(None, "--repeats", help="default: 10; 5 with --suite"),
          sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="time the eval loop sweep too"),
          suite: bool = typer.Option(False, "--suite", help="issue 28's figures as ratios, one thread: this code "
                                     "against --against (train step, loop sweep of the run's looped models), "
                                     "rdt against openmythos, % of the fp32 matmul peak at d_model 256, their "
                                     "ceilings, ls/describe wall time (--batch, --seq, --repeats size it)"),
          against: str = typer.Option(BEFORE_ISSUE_28, "--against", help="--suite: the commit to compare with "
                                      "(default: the code before issue 28)"),
          json_out: Path | None = typer.Option(None, "--json", help="also write the results here")) -> None:
    """Train and inference tokens/s, FLOP/s and % of the measured matmul peak, variants side by side."""
    rdt_cfg = _rdt_config(task, preset, config, set_)
    if json_out is not None and json_out.is_dir():
        raise ConfigError(f"--json {json_out}: a directory; give the path of a file")
    if against != BEFORE_ISSUE_28 and not suite:
        raise ConfigError(f"--against {against}: compares code only under --suite; add --suite or drop it")
    if suite:
        fixed = {"--family": family != ["rdt"], "--dtype": dtype != ["fp32"], "--compile": compile_ != "off",
                 "--loops": loops is not None, "--threads": threads != 2, "--no-sweep": not sweep}
        if any(fixed.values()):
            raise ConfigError([f"{name}: --suite chooses it itself" for name, given in fixed.items() if given])
        result, table = _bench_suite(task, preset, config, set_, against, batch, seq, repeats or 5)
    else:
        from mythbench.training.bench import format_table, run_bench, variants  # heavy (torch): config is valid

        result = run_bench(rdt_cfg, variants(family, dtype, COMPILE_MODES[compile_]), batch, seq,
                           loops, threads, repeats or 10, sweep=sweep)
        table = format_table(result)
    typer.echo(table)
    if json_out is not None:
        try:
            atomic_write_json(json_out, result)
        except OSError as exc:
            raise ConfigError(f"--json {json_out}: cannot write it ({exc.strerror})") from None


# OpenMythos hard-codes these switches; `bench --suite` compares the two families there (README, Speed)
OPENMYTHOS_SWITCHES = ["model.recurrent_layers=1", "model.init_state=embedding", "model.q_latent_dim=32"]


def _bench_suite(task: str, preset: str, config: Path | None, overrides: list[str], against: str, batch: int,
                 seq: int, repeats: int) -> tuple[dict, str]:
    """`bench --suite`: the run's looped RDT-family models, OpenMythos's switches, and those at d_model 256."""
    from mythbench.training import plan

    cfg, task_obj = _run_config_and_task(task, preset, config, overrides)
    looped = {p.name: p.config for p in plan.plan_models(dataclasses.replace(cfg, twins=[]), task_obj)
              if p.family == "rdt"}
    openmythos_cfg = _rdt_config(task, preset, config, [*overrides, *OPENMYTHOS_SWITCHES])
    wide_cfg = _rdt_config(task, preset, config, [*overrides, *OPENMYTHOS_SWITCHES, "model.d_model=256",
                                                  "model.expert_hidden=256"])
    from mythbench.training.bench_suite import SuiteSize, format_suite, run_suite  # heavy (torch)

    size = SuiteSize(batch=batch, seq=seq, repeats=repeats, cli_repeats=min(repeats, 3))
    result = run_suite(looped, openmythos_cfg, wide_cfg, task, against, size)
    return result, format_suite(result)


@app.command(cls=TaskFirst, epilog=examples("sample parity -d 5", "sample khop -d 3 --n 1 --json"))
@reports_errors
@option_ranges(n=(1, 10_000), seed=(0, 2**31 - 1))  # the task checks --difficulty against its own range
def sample(task: str = task_argument(), difficulty: int = typer.Option(..., "--difficulty", "-d"),
           n: int = typer.Option(3, "--n"), split: str = typer.Option("test", "--split", **choice(SPLITS)),
           seed: int = typer.Option(0, "--seed"),
           as_json: bool = typer.Option(False, "--json", help="per instance: input, target (scored at test), "
                                        "training_target (trained on), hints")) -> None:
    """Print instances of a task: decoded inputs with their targets aligned."""
    from mythbench import tasks

    instances = tasks.sample_instances(task, difficulty, n=n, split=split, seed=seed)
    typer.echo(json.dumps(instances, indent=2) if as_json else tasks.format_instances(instances))


@app.command(cls=TaskFirst, epilog=examples("run parity", "run all --preset standard --seeds 3",
                                            "run khop --set train.steps=200 --set train.recipe=huginn"))
@reports_errors
@option_ranges(seeds=SEEDS)
def run(task: str = task_argument(all_=True),
        preset: str = preset_option(),
        config: Path | None = typer.Option(None, "--config", help="YAML run config"),
        set_: list[str] = typer.Option([], "--set", help="key=value override, e.g. train.steps=200"),
        seeds: int | None = typer.Option(None, "--seeds", help="number of seeds (0..N-1)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default runs/TASK/PRESET)"),
        device: str | None = typer.Option(None, "--device", help="cpu | cuda"),
        tuned: Path | None = typer.Option(None, "--tuned", help="a tune.json (`mythbench tune`): each model "
                                          "trains with its chosen learning rate and recipe"),
        workers: int | None = typer.Option(None, "--workers", help="cells (model x seed) trained at once, in "
                                           "worker processes (default: cores // threads; 1: in this process)")) -> None:
    """Train the looped models of `models:` and their twins, evaluate difficulty x loops, write a run directory.
    Under `torchrun --nproc-per-node N -m mythbench.cli run ...` each model trains data-parallel over N processes."""
    from mythbench import tasks
    from mythbench.training.tuned import file_sha256

    names = tasks.list_tasks() if task == "all" else [task]
    use = None if tuned is None else {"use": str(tuned), "use_sha256": file_sha256(tuned)}
    configs = [resolve_run_config(name, preset, config, set_, device=device, tune=use,
                                  seeds=None if seeds is None else list(range(seeds))) for name in names]
    # heavy (torch): imported once the configs are valid
    from mythbench.experiments.sweep import Run, make_backend, run_grid, run_workers
    from mythbench.reports.report import format_summary_table
    from mythbench.training import distributed, harness

    parallel = distributed.init_from_env(configs[0].device)
    distributed.validate(configs, parallel)
    workers = run_workers(workers, configs, parallel.world)
    _warnings_to_stderr()
    runs = [Run("run", cfg, Path("runs") / cfg.task / preset if out is None
                else (out / cfg.task if task == "all" else out)) for cfg in configs]
    if not parallel.is_main:
        for run_ in runs:
            harness.follow(run_.cfg, run_.run_dir)
        return
    if workers > 1:  # cells in worker processes (the sweep engine); each run directory as the serial path writes it
        results = run_grid(runs, make_backend("local", workers), harness.command_line())
    else:
        results = (harness.run_benchmark(r.cfg, r.run_dir, harness.command_line()) for r in runs)
    for run_, res in zip(runs, results, strict=True):  # serially, each run's table as soon as it is done
        typer.echo(format_summary_table(res))
        typer.echo(f"run directory: {run_.run_dir}")


@app.command(cls=TaskFirst, epilog=examples("scale parity-biased", "scale parity-biased --backend local --workers 2",
                                            "scale parity-biased --partial"))
@reports_errors
@option_ranges(seeds=SEEDS)
def scale(task: str = task_argument(all_=True),
          preset: str = preset_option(),
          config: Path | None = typer.Option(None, "--config", help="YAML run config"),
          set_: list[str] = typer.Option([], "--set", help="key=value override, e.g. scale.widths=[16,32,48,64,96]"),
          seeds: int | None = typer.Option(None, "--seeds", help="number of seeds (0..N-1)"),
          out: Path | None = typer.Option(None, "--out", help="run directory (default runs/scale/TASK/PRESET)"),
          device: str | None = typer.Option(None, "--device", help="cpu | cuda"),
          backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP + "; default: serial, in process",
                                             **choice(BACKENDS)),
          workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
          address: str | None = typer.Option(None, "--address", help="Ray cluster address (--backend ray)"),
          retries: int | None = typer.Option(None, "--retries", help=RETRIES_HELP + " (default 2)"),
          slurm: list[str] = typer.Option([], "--slurm", help=SLURM_HELP),
          partial: bool = typer.Option(False, "--partial", help="train nothing: write the tables and fits of "
                                       "the points stored so far (an interrupted ladder)")) -> None:
    """Width ladder of looped models at several loop counts (scale.ladder: dense, r = 1 the reference; or the RDT
    beside layer-matched standard transformers); the gate, then scaling fits of L − H and N_eq/N.
    With --backend, the ladder points are sweep cells run on that engine."""
    from mythbench import tasks

    names = tasks.list_tasks() if task == "all" else [task]
    configs = [resolve_run_config(name, preset, config, set_, device=device,
                                  seeds=None if seeds is None else list(range(seeds))) for name in names]
    from mythbench.experiments.scale import run_scale  # heavy (torch): after the configs are valid
    from mythbench.experiments.sweep import Run, make_backend, run_grid
    from mythbench.reports.scale_report import headline_table
    from mythbench.training.harness import command_line

    _warnings_to_stderr()
    runs = [Run("scale", cfg, Path("runs") / "scale" / cfg.task / preset if out is None
                else (out / cfg.task if task == "all" else out)) for cfg in configs]
    if partial and backend is not None:
        raise ConfigError("--partial trains nothing, so it takes no --backend")
    engine_options = [f"--{name}" for name, value in (("workers", workers), ("address", address),
                                                      ("retries", retries), ("slurm", slurm or None))
                      if value is not None]
    if backend is None and engine_options:
        raise ConfigError(f"{', '.join(engine_options)}: options of a --backend; without one the ladder runs "
                          "serially, in process, where they do nothing")
    if backend is None:
        results = [run_scale(r.cfg, r.run_dir, command_line(), train=not partial) for r in runs]
    else:
        retries = 2 if retries is None else retries
        slurm_folder = runs[0].run_dir.parent / "slurm"
        engine = make_backend(backend, workers, address, _slurm_options(slurm), retries, slurm_folder)
        results = run_grid(runs, engine, command_line(), retries)
    for run_, res in zip(runs, results, strict=True):
        typer.echo("\n".join(headline_table(res)))
        typer.echo(f"run directory: {run_.run_dir} (tables in scale.md)")


@app.command(cls=TaskFirst, epilog=examples("tune parity", "tune parity --set 'tune.lr_grid=[0.5,1]' --backend local"))
@reports_errors
def tune(task: str = task_argument(),
         preset: str = preset_option(),
         config: Path | None = typer.Option(None, "--config", help="YAML run config"),
         set_: list[str] = typer.Option([], "--set", help="key=value override, e.g. tune.steps=200"),
         out: Path | None = typer.Option(None, "--out", help="tune directory (default runs/tune/TASK/PRESET)"),
         device: str | None = typer.Option(None, "--device", help="cpu | cuda"),
         backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP + "; default: serial, in process",
                                            **choice(BACKENDS)),
         workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
         retries: int = typer.Option(2, "--retries", help=RETRIES_HELP)) -> None:
    """Give every model of the run the same trials over the declared space (tune.lr_grid x tune.recipes),
    score them on the validation split at training difficulties, write tune.json with each model's choice."""
    from mythbench.experiments.backends import InProcessBackend
    from mythbench.experiments.sweep import make_backend
    from mythbench.experiments.tune import format_choices, run_tune
    from mythbench.training.harness import command_line

    cfg = resolve_run_config(task, preset, config, set_, device=device)
    tune_dir = Path("runs") / "tune" / task / preset if out is None else out
    engine = InProcessBackend() if backend is None else make_backend(
        backend, workers, None, {}, retries, tune_dir / "slurm")
    _warnings_to_stderr()
    doc = run_tune(cfg, tune_dir, command_line(), engine, retries)
    typer.echo(format_choices(doc))
    typer.echo(f"tune file: {tune_dir / 'tune.json'} (use: mythbench run {task} --preset {preset} "
               f"--tuned {tune_dir / 'tune.json'})")


@app.command(epilog=examples("sweep grid.yaml", "sweep grid.yaml --backend ray --address auto"))
@reports_errors
def sweep(grid: Path = typer.Argument(..., help="grid file (YAML): tasks, presets, seeds, variants, widths"),
          backend: str = typer.Option("local", "--backend", help=BACKEND_HELP, **choice(BACKENDS)),
          workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
          address: str | None = typer.Option(None, "--address", help="Ray cluster address (--backend ray)"),
          retries: int = typer.Option(2, "--retries", help=RETRIES_HELP),
          slurm: list[str] = typer.Option([], "--slurm", help=SLURM_HELP),
          out: Path | None = typer.Option(None, "--out", help="root of the run directories (default: the grid's "
                                                              "out, else runs/sweep/GRID)")) -> None:
    """Run a grid of runs as independent (model, seed) cells on local processes, Ray or Slurm; each run
    directory ends up as `mythbench run` writes it. Finished cells are never recomputed."""
    from mythbench.experiments.sweep import load_grid, make_backend, run_grid
    from mythbench.reports.report import format_summary_table
    from mythbench.training.harness import command_line

    runs = load_grid(grid, out)
    engine = make_backend(backend, workers, address, _slurm_options(slurm), retries,
                          runs[0].run_dir.parents[2] / "slurm")
    for run_, results in zip(runs, run_grid(runs, engine, command_line(), retries), strict=True):
        typer.echo(format_summary_table(results))
        typer.echo(f"run directory: {run_.run_dir}")


def _slurm_options(pairs: list[str]) -> dict[str, Any]:
    """The `--slurm key=value` options given (job logs go to ROOT/slurm unless `folder` is one of them)."""
    problems: list[str] = []
    options = parse_overrides(pairs, problems)
    known = ("partition", "timeout_min", "cpus_per_task", "gpus_per_node", "folder")
    problems += [f"--slurm {k}: unknown (known: {', '.join(known)})" for k in options if k not in known]
    if problems:
        raise ConfigError(problems)
    return {**options, "folder": Path(options["folder"])} if "folder" in options else options


@app.command("eval", cls=TaskFirst,
             epilog=examples("eval parity runs/parity/quick/models/rdt/seed0 --difficulties 16,32 --loops 8,32"))
@reports_errors
def eval_(task: str = task_argument(),
          checkpoint: Path = typer.Argument(..., help="a run's models/NAME/seedK directory"),
          difficulties: str | None = typer.Option(None, help="comma-separated, default: train+test"),
          loops: str | None = typer.Option(None, help="max loops (RDT), default 4x training loops"),
          device: str = typer.Option("cpu", "--device")) -> None:
    """Re-evaluate a saved model (a run's models/NAME/seedK directory) on any difficulties and loops."""
    from mythbench.training.reevaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, task, _int_list(difficulties), _int_list(loops), device)
    typer.echo(json.dumps(result, indent=2))


@config_app.command("show", cls=TaskFirst, epilog=examples("config show parity",
                                                          "config show khop --preset standard --set train.steps=200"))
@reports_errors
def config_show(task: str = task_argument(),
                preset: str = preset_option(),
                config: Path | None = typer.Option(None, "--config", help="YAML run config, as for run"),
                set_: list[str] = typer.Option([], "--set", help="override as for run, e.g. train.steps=200"),
                as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Every key of the config `mythbench run TASK` would use, with its value, its default and its help."""
    rows = describe_config(resolve_run_config(task, preset, config, set_))
    typer.echo(json.dumps(rows, indent=2) if as_json else format_config(rows))


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{text!r} is not a comma-separated list of integers") from None


@app.command(epilog=examples("report runs/parity", "report runs/parity --html", "report results --html"))
@reports_errors
def report(directory: Path = typer.Argument(..., help="a run directory; with --html, or a results directory "
                                                     "holding leaderboard.csv"),
           html: bool = typer.Option(False, "--html", help="also write one self-contained page that opens from "
                                     "disk: report.html (a run) or leaderboard.html (a leaderboard)")) -> None:
    """Rebuild tables and plots of a run from its results.json alone; with --html, its page (or the leaderboard's)."""
    if html and not (directory / "results.json").exists() and (directory / "leaderboard.csv").is_file():
        from mythbench.reports.leaderboard_page import build_leaderboard_page

        typer.echo(str(build_leaderboard_page(directory)))
        return
    from mythbench.reports.report import build_report

    if not (directory / "results.json").is_file():
        hint = "; for its leaderboard's page, add --html" if (directory / "leaderboard.csv").is_file() else ""
        raise ConfigError(f"{directory}: no results.json (is it a run directory?){hint}")
    for path in build_report(directory, html=html):
        typer.echo(str(path))


@app.command(epilog=examples("answer", "answer --write"))
@reports_errors
def answer(write: bool = typer.Option(False, "--write", help="rewrite the generated blocks of README.md and "
                                      "results/README.md (the answer table, the reference index)"),
           root: Path = typer.Option(Path("."), "--root", help="the repository checkout")) -> None:
    """The answer table (looped models and their twins at 1x..4x the training difficulty) from the committed
    references; with --write, regenerate the README blocks built from them."""
    from mythbench.reports.answer import answer_markdown
    from mythbench.reports.readme_blocks import write_pages

    if not write:
        typer.echo(answer_markdown(root), nl=False)
        return
    for path in write_pages(root):
        typer.echo(f"rewrote {path}")


@app.command()
@reports_errors
@option_ranges(difficulty=(1, 2**20))
def compare(run_dirs: list[Path] = typer.Argument(..., help="run directories of one task"),
            difficulty: list[int] = typer.Option(None, "--difficulty", "-d",
                                                 help="difficulties (repeatable); default: all shared")) -> None:
    """Looped models of several runs side by side (ablation tables): per seed, at the rule and at most loops."""
    from mythbench.reports.compare import compare as compare_runs

    typer.echo(compare_runs(run_dirs, difficulty or None))


@app.command()
@reports_errors
def submit(results_file: Path, name: str | None = typer.Option(None, "--name", help="submitter"),
           results_dir: Path = typer.Option(Path("results"), "--results-dir")) -> None:
    """Validate a results file and add it to the leaderboard in results/."""
    from mythbench.results.leaderboard import submit as submit_results

    outcome = submit_results(results_file, results_dir=results_dir, name=name)
    typer.echo(outcome.describe())


@app.command()
@reports_errors
def verify(path: Path = typer.Argument(Path("results")),
           rescore: Path | None = typer.Option(None, "--rescore", help="results file to re-score"),
           checkpoint: Path | None = typer.Option(None, "--checkpoint", help="its run directory")) -> None:
    """Check results files and the leaderboard; with --rescore, re-evaluate a submitted checkpoint."""
    from mythbench.results.leaderboard import verify as verify_results
    from mythbench.training.reevaluate import rescore_results

    problems = rescore_results(rescore, checkpoint) if rescore is not None else verify_results(path)
    if problems:
        raise ConfigError(problems)
    typer.echo("ok")


@app.command()
@reports_errors
def fit(results: list[Path]) -> None:
    """Refit scaling laws from stored scale results without training."""
    from mythbench.experiments.refit import refit

    typer.echo(refit(results))


if __name__ == "__main__":
    app()
