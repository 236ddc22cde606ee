"""The `mythbench` command line. Thin: each command parses options and calls the library.

Bad input of any kind (unknown task, malformed YAML, unknown key, out-of-range value, missing file) ends
in one message listing every problem and exit status 2, never a traceback.

Each command imports the library it calls, so `mythbench --help` and the light commands load neither torch
nor scipy (tests/test_cli.py checks it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from mythbench.config import list_presets, parse_overrides, resolve_run_config
from mythbench.core.errors import ConfigError, MythbenchError
from mythbench.core.fileio import atomic_write_json

BACKEND_HELP = "local (processes on this machine) | ray | slurm (submitit)"
WORKERS_HELP = "parallel cells (default: one per core; Slurm: array parallelism)"
RETRIES_HELP = "times a failed or killed cell is run again before it is reported"
SLURM_HELP = "key=value for the Slurm backend: partition, timeout_min, cpus_per_task, gpus_per_node, folder"


app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Depth-extrapolation benchmarks for Recurrent-Depth (looped) Transformers.")


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


def _rdt_config(task: str, preset: str, config: Path | None, overrides: list[str]) -> Any:
    """The RDT config `mythbench run TASK` would train, from the same keys spelled the same way."""
    from mythbench import tasks
    from mythbench.training import harness

    cfg = resolve_run_config(task, preset, config, overrides)
    return harness.plan_models(dataclasses.replace(cfg, baselines=[]), tasks.get_task(task))[0].config


@app.command("ls")
@reports_errors
def ls() -> None:
    """List tasks, baselines, model families and presets, one line each."""
    from mythbench import tasks
    from mythbench.models import baseline_registry

    typer.echo("tasks:")
    for line in tasks.describe_tasks():
        typer.echo(f"  {line}")
    typer.echo("baselines:")
    for line in baseline_registry.describe_baselines():
        typer.echo(f"  {line}")
    typer.echo("presets:")
    typer.echo("  " + ", ".join(list_presets()))


@app.command()
@reports_errors
def describe(task: str = typer.Option("parity", "--task", help="the task whose sizes the models take"),
             preset: str = typer.Option("quick", "--preset"),
             config: Path | None = typer.Option(None, "--config", help="YAML run config, as for run"),
             set_: list[str] = typer.Option([], "--set", help="override as for run, e.g. model.d_model=128"),
             as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Parameter counts, FLOPs per token and max rho(A) of the RDT `run` would train and its matched baselines."""
    from mythbench.models.accounting import describe_matched

    info = describe_matched(_rdt_config(task, preset, config, set_))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for row in info["models"]:
        p, f = row["params"], row["flops_per_token"]
        rho = "" if row.get("spectral_radius") is None else f"  rho(A)={row['spectral_radius']:.4f}"
        typer.echo(f"{row['role']:<10} layers={row['layers']:<3} params unique={p['unique']:,} "
                   f"active={p['active']:,}  FLOPs/token fwd={f['forward']:.3g} train={f['train']:.3g}{rho}")


@app.command()
@reports_errors
def bench(task: str = typer.Option("parity", "--task", help="the task whose sizes the models take"),
          preset: str = typer.Option("quick", "--preset"),
          config: Path | None = typer.Option(None, "--config", help="YAML run config, as for run"),
          set_: list[str] = typer.Option([], "--set", help="override as for run, e.g. model.d_model=128"),
          family: list[str] = typer.Option(["rdt"], "--family", help="model family; repeat to compare"),
          dtype: list[str] = typer.Option(["fp32"], "--dtype", help="fp32 | bf16 (autocast); repeatable"),
          compile_: str = typer.Option("off", "--compile", help="off | on | both"),
          batch: int = typer.Option(32, "--batch"), seq: int = typer.Option(64, "--seq"),
          loops: int | None = typer.Option(None, "--loops", help="default: train_loops"),
          threads: int = typer.Option(2, "--threads"), repeats: int = typer.Option(10, "--repeats"),
          sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="time the eval loop sweep too"),
          json_out: Path | None = typer.Option(None, "--json", help="also write the results here")) -> None:
    """Train and inference tokens/s, FLOP/s and % of the measured matmul peak, variants side by side."""
    from mythbench.training.bench import format_table, run_bench, variants

    modes = {"off": [False], "on": [True], "both": [False, True]}
    if compile_ not in modes:
        raise ConfigError(f"--compile {compile_!r} is not one of off, on, both")
    result = run_bench(_rdt_config(task, preset, config, set_), variants(family, dtype, modes[compile_]), batch, seq,
                       loops, threads, repeats, sweep=sweep)
    typer.echo(format_table(result))
    if json_out is not None:
        atomic_write_json(json_out, result)


@app.command()
@reports_errors
def sample(task: str, difficulty: int = typer.Option(..., "--difficulty", "-d"),
           n: int = typer.Option(3, "--n"), split: str = typer.Option("test", "--split"),
           seed: int = typer.Option(0, "--seed"),
           as_json: bool = typer.Option(False, "--json", help="per instance: input, target (scored at test), "
                                        "training_target (trained on), hints")) -> None:
    """Print instances of a task: decoded inputs with their targets aligned."""
    from mythbench import tasks

    instances = tasks.sample_instances(task, difficulty, n=n, split=split, seed=seed)
    typer.echo(json.dumps(instances, indent=2) if as_json else tasks.format_instances(instances))


@app.command()
@reports_errors
def run(task: str = typer.Argument(..., help="task name, or 'all'"),
        preset: str = typer.Option("quick", "--preset", help="quick | standard | full"),
        config: Path | None = typer.Option(None, "--config", help="YAML run config"),
        set_: list[str] = typer.Option([], "--set", help="key=value override, e.g. train.steps=200"),
        seeds: int | None = typer.Option(None, "--seeds", help="number of seeds (0..N-1)"),
        out: Path | None = typer.Option(None, "--out", help="run directory (default runs/TASK/PRESET)"),
        device: str | None = typer.Option(None, "--device", help="cpu | cuda")) -> None:
    """Train the RDT and its matched baselines, evaluate difficulty x loops, write a run directory.
    Under `torchrun --nproc-per-node N -m mythbench.cli run ...` each model trains data-parallel over N processes."""
    from mythbench import tasks
    from mythbench.reports.report import format_summary_table
    from mythbench.training import distributed, harness

    names = tasks.list_tasks() if task == "all" else [task]
    configs = [resolve_run_config(name, preset, config, set_, device=device,
                                  seeds=list(range(seeds)) if seeds else None) for name in names]
    parallel = distributed.init_from_env(configs[0].device)
    distributed.validate(configs, parallel)
    _warnings_to_stderr()
    for cfg in configs:
        run_dir = Path("runs") / cfg.task / preset if out is None else (out / cfg.task if task == "all" else out)
        if not parallel.is_main:
            harness.follow(cfg, run_dir)
            continue
        results = harness.run_benchmark(cfg, run_dir, harness.command_line())
        typer.echo(format_summary_table(results))
        typer.echo(f"run directory: {run_dir}")


@app.command()
@reports_errors
def scale(task: str = typer.Argument(..., help="task name, or 'all'"),
          preset: str = typer.Option("quick", "--preset", help="quick | standard | full"),
          config: Path | None = typer.Option(None, "--config", help="YAML run config"),
          set_: list[str] = typer.Option([], "--set", help="key=value override, e.g. scale.widths=[16,32,48,64,96]"),
          seeds: int | None = typer.Option(None, "--seeds", help="number of seeds (0..N-1)"),
          out: Path | None = typer.Option(None, "--out", help="run directory (default runs/scale/TASK/PRESET)"),
          device: str | None = typer.Option(None, "--device", help="cpu | cuda"),
          backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP + "; default: serial, in process"),
          workers: int | None = typer.Option(None, "--workers", help=WORKERS_HELP),
          address: str | None = typer.Option(None, "--address", help="Ray cluster address (--backend ray)"),
          retries: int = typer.Option(2, "--retries", help=RETRIES_HELP),
          slurm: list[str] = typer.Option([], "--slurm", help=SLURM_HELP),
          partial: bool = typer.Option(False, "--partial", help="train nothing: write the tables and fits of "
                                       "the points stored so far (an interrupted ladder)")) -> None:
    """Width ladder of looped models at several loop counts (scale.ladder: dense, r = 1 the reference; or the RDT
    beside layer-matched standard transformers); the gate, then scaling fits of L − H and N_eq/N.
    With --backend, the ladder points are sweep cells run on that engine."""
    from mythbench import tasks
    from mythbench.experiments.scale import run_scale
    from mythbench.experiments.sweep import Run, make_backend, run_grid
    from mythbench.reports.scale_report import headline_table
    from mythbench.training.harness import command_line

    names = tasks.list_tasks() if task == "all" else [task]
    configs = [resolve_run_config(name, preset, config, set_, device=device,
                                  seeds=list(range(seeds)) if seeds else None) for name in names]
    _warnings_to_stderr()
    runs = [Run("scale", cfg, Path("runs") / "scale" / cfg.task / preset if out is None
                else (out / cfg.task if task == "all" else out)) for cfg in configs]
    if partial and backend is not None:
        raise ConfigError("--partial trains nothing, so it takes no --backend")
    if backend is None:
        results = [run_scale(r.cfg, r.run_dir, command_line(), train=not partial) for r in runs]
    else:
        engine = make_backend(backend, workers, address, _slurm_options(slurm, runs[0].run_dir.parent), retries)
        results = run_grid(runs, engine, command_line(), retries)
    for run_, res in zip(runs, results, strict=True):
        typer.echo("\n".join(headline_table(res)))
        typer.echo(f"run directory: {run_.run_dir} (tables in scale.md)")


@app.command()
@reports_errors
def sweep(grid: Path = typer.Argument(..., help="grid file (YAML): tasks, presets, seeds, variants, widths"),
          backend: str = typer.Option("local", "--backend", help=BACKEND_HELP),
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
    engine = make_backend(backend, workers, address, _slurm_options(slurm, runs[0].run_dir.parents[2]), retries)
    for run_, results in zip(runs, run_grid(runs, engine, command_line(), retries), strict=True):
        typer.echo(format_summary_table(results))
        typer.echo(f"run directory: {run_.run_dir}")


def _slurm_options(pairs: list[str], root: Path) -> dict[str, Any]:
    """`--slurm key=value` options for the Slurm backend; job logs go to ROOT/slurm unless `folder` is set."""
    problems: list[str] = []
    options = {"folder": root / "slurm", **parse_overrides(pairs, problems)}
    known = ("partition", "timeout_min", "cpus_per_task", "gpus_per_node", "folder")
    problems += [f"--slurm {k}: unknown (known: {', '.join(known)})" for k in options if k not in known]
    if problems:
        raise ConfigError(problems)
    return {**options, "folder": Path(options["folder"])}


@app.command("eval")
@reports_errors
def eval_(checkpoint: Path, task: str = typer.Option(..., "--task"),
          difficulties: str | None = typer.Option(None, help="comma-separated, default: train+test"),
          loops: str | None = typer.Option(None, help="max loops (RDT), default 4x training loops"),
          device: str = typer.Option("cpu", "--device")) -> None:
    """Re-evaluate a saved model (a run's models/NAME/seedK directory) on any difficulties and loops."""
    from mythbench.training.reevaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, task, _int_list(difficulties), _int_list(loops), device)
    typer.echo(json.dumps(result, indent=2))


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{text!r} is not a comma-separated list of integers") from None


@app.command()
@reports_errors
def report(run_dir: Path) -> None:
    """Rebuild tables and plots of a run from its results.json alone."""
    from mythbench.reports.report import build_report

    if not (run_dir / "results.json").is_file():
        raise ConfigError(f"{run_dir}: no results.json (is it a run directory?)")
    for path in build_report(run_dir):
        typer.echo(str(path))


@app.command()
@reports_errors
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
