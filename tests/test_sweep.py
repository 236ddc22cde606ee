"""The sweep engine: grid files, retries, and tiny sweeps on the real engines (local processes, a local Ray
cluster with a worker killed mid-cell, submitit's local executor, a scale ladder) that must end with exactly
the results the serial `mythbench run` / `mythbench scale` computes for the same cells."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml
from mythbench.tasks import get_task
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.experiments import backends, cells, sweep
from mythbench.experiments.backends import InProcessBackend
from mythbench.experiments.cells import plan_cells, run_cell
from mythbench.experiments.scale import plan_ladder, point_run_config, run_scale
from mythbench.experiments.sweep import (
    MAX_RETRIES,
    MAX_WORKERS,
    CellsFailed,
    execute,
    load_grid,
    make_backend,
    prepare,
    run_grid,
)
from mythbench.training import harness
from mythbench.training.runlock import run_dir_lock

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.d_model=16", "model.n_heads=2", "model.ffn_hidden=32", "model.train_loops=2", "train.steps=4",
        "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=2", "eval.loops_factor=1",
        "eval.depth_factor=0", "eval.train_points=1"]
GRID = {"tasks": ["parity"], "seeds": 2, "models": ["rdt"], "twins": [], "set": TINY}
REPORT_FILES = ("cells.csv", "summary.csv", "early_exit.csv")


def _cells(results: dict) -> list:
    return [(m["name"], r["seed"], r["status"], r["cells"], r["early_exit"], r["train"]["final_loss"])
            for m in results["models"] for r in m["runs"]]


def _grid(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**GRID, "out": str(tmp_path / "out"), **changes}))
    return path


def _assert_same_as_serial(run_dir: Path, serial_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert _cells(results) == _cells(json.loads((serial_dir / "results.json").read_text()))
    for name in REPORT_FILES:
        assert (run_dir / name).read_text() == (serial_dir / name).read_text(), name


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `mythbench run parity --seeds 2 --set ...` writes, computed serially in this process."""
    run_dir = tmp_path_factory.mktemp("serial") / "run"
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "models=[rdt]", "twins=[]"], seeds=[0, 1])
    harness.run_benchmark(cfg, run_dir, "serial")
    return run_dir


class Stub:
    """A backend that runs nothing: every cell fails with `error` (or, without one, must not be asked)."""

    def __init__(self, error: str | None = None):
        self.error, self.calls, self.closed = error, [], False

    def run(self, cells):
        assert self.error is not None, f"cells run again: {[c.label for c in cells]}"
        self.calls.append([c.label for c in cells])
        yield from ((c, self.error) for c in cells)

    def close(self):
        self.closed = True


def test_a_grid_expands_into_one_run_per_task_preset_variant_and_width(tmp_path):
    path = _grid(tmp_path, tasks=["parity", "khop"], variants={"base": [], "add": ["model.injection=additive"]},
                 widths=[16, 32], seeds=[0, 3])
    runs = load_grid(path)
    assert len(runs) == 2 * 2 * 2
    by_dir = {r.run_dir.relative_to(tmp_path / "out").as_posix(): r.cfg for r in runs}
    cfg = by_dir["khop/quick/add-w32"]
    assert cfg.model.injection == "additive" and cfg.model.d_model == 32
    assert cfg.seeds == [0, 3] and cfg.twins == [] and cfg.train.steps == 4
    assert by_dir["parity/quick/base-w16"].model.injection != "additive"


def test_the_example_grid_of_the_readme_is_valid():
    runs = load_grid(ROOT / "docs" / "grids" / "ablations.yaml")
    assert len(runs) == 2 * 2 and all(len(r.cfg.seeds) == 3 and len(r.cfg.models) == 5 for r in runs)


def test_every_problem_of_a_grid_file_is_reported_without_a_traceback(tmp_path):
    path = _grid(tmp_path, tasks="parity", presets=["nope"], seeds="x", bogus=1, widths=[-4],
                 variants={"v": ["train.steps=-1"]})
    with pytest.raises(ConfigError) as err:
        load_grid(path)
    text = "\n".join(err.value.problems)
    for expected in ("tasks: expected a list", "bogus: unknown key", "seeds:", "widths:"):
        assert expected in text, expected
    bad_runs = _grid(tmp_path, variants={"v": ["train.steps=-1"], "w": ["model.bogus=2"]})
    with pytest.raises(ConfigError) as err:  # the model config is typed: a bad key is found at load time
        load_grid(bad_runs)
    assert any("quick/v: train.steps" in p for p in err.value.problems), err.value.problems
    assert any("quick/w: model.bogus: unknown key" in p for p in err.value.problems), err.value.problems
    runs = load_grid(_grid(tmp_path, variants={"x": ["models=[nope]"]}))
    with pytest.raises(ConfigError) as err:
        prepare(runs)
    assert any("quick/x: models" in p for p in err.value.problems), err.value.problems
    assert not (tmp_path / "out").exists(), "a bad grid created run directories"
    (tmp_path / "broken.yaml").write_text("tasks: [parity\n")
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "broken.yaml")])
    assert result.exit_code == 2 and "malformed YAML" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["sweep", str(_grid(tmp_path)), "--workers", "0", "--retries", "-1"])
    assert result.exit_code == 2 and "2 problem(s)" in result.output, result.output
    result = CliRunner().invoke(app, ["sweep", str(_grid(tmp_path)), "--backend", "mpi"])  # a choice: refused first
    assert result.exit_code == 2 and "'mpi'" in result.output and "local, ray, slurm" in result.output, result.output


def test_a_failing_cell_is_retried_a_bounded_number_of_times_then_reported(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "models=[rdt]", "twins=[]"], seeds=[0, 1])
    cells = plan_cells("run", cfg, tmp_path, get_task("parity"))
    stub = Stub("WorkerCrashedError: the worker died")
    failed = execute(cells, stub)  # two retries by default
    assert len(stub.calls) == 3 and all(len(c) == 2 for c in stub.calls)
    assert set(failed) == set(cells) and all("worker died" in e for e in failed.values())
    assert "failed: WorkerCrashedError" in CellsFailed(failed).problems[0]


class FailsFirstAttempt(Stub):
    """Runs every cell in this process, but reports each one's first attempt as failed: a worker that died after
    the cell wrote its result, which the engine cannot tell from one that died before."""

    def __init__(self):
        super().__init__()
        self.attempted: set[str] = set()

    def run(self, cells):
        for cell, error in InProcessBackend().run(cells):
            first = cell.label not in self.attempted
            self.attempted.add(cell.label)
            yield cell, "WorkerCrashedError: lost after writing" if first else error


@pytest.mark.slow
def test_an_in_process_sweep_writes_what_the_serial_run_writes_and_a_rerun_runs_nothing(tmp_path, serial, capsys):
    backend = Stub()
    backend.run = InProcessBackend().run  # runs the cells; records that the sweep closes its backend
    results = run_grid(load_grid(_grid(tmp_path)), backend, "in-process")
    bar = capsys.readouterr().err  # the progress bar: from none of the 2 cells done to both
    assert "cells:   0%|          | 0/2 [00:00<?, ?cell/s]" in bar and re.search(r"cells: 100%\|\S+\| 2/2 ", bar)
    run_dir = tmp_path / "out" / "parity" / "quick" / "default"
    assert backend.closed and _cells(results[0]) == _cells(json.loads((serial / "results.json").read_text()))
    trained = sum(r["train"]["wall_time_s"] for m in results[0]["models"] for r in m["runs"])
    assert results[0]["wall_time_s"] >= trained  # the sweep's time, from before its cells ran
    _assert_same_as_serial(run_dir, serial)
    assert json.loads((run_dir / "results.json").read_text())["command"] == "in-process"
    again = Stub()  # fails the test if asked to run a cell
    assert _cells(run_grid(load_grid(_grid(tmp_path)), again, "again")[0]) == _cells(results[0]) and again.closed
    assert re.search(r"cells: 100%\|\S+\| 2/2 ", capsys.readouterr().err)  # done cells count from the start


@pytest.mark.slow
def test_a_cell_reported_failed_is_retried_even_if_it_wrote_its_result(tmp_path, serial, caplog):
    results = run_grid(load_grid(_grid(tmp_path)), FailsFirstAttempt(), "retried")
    run_dir = tmp_path / "out" / "parity" / "quick" / "default"
    assert [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()] == [
        f"{run_dir}:rdt:seed{seed}: attempt 1 failed (WorkerCrashedError: lost after writing); retrying"
        for seed in (0, 1)]
    assert _cells(results[0]) == _cells(json.loads((serial / "results.json").read_text()))


def test_a_sweep_whose_cells_keep_failing_retries_twice_then_raises_naming_them_and_writes_no_results(tmp_path):
    backend = Stub("WorkerCrashedError: the worker died")
    with pytest.raises(CellsFailed) as failed:
        run_grid(load_grid(_grid(tmp_path)), backend, "failing")
    run_dir = tmp_path / "out" / "parity" / "quick" / "default"
    labels = [f"{run_dir}:rdt:seed{seed}" for seed in (0, 1)]
    assert backend.calls == [labels] * 3 and backend.closed
    assert len(failed.value.problems) == 2 and str(failed.value) == "; ".join(failed.value.problems)
    assert all(problem.startswith(label) and "worker died" in problem
               for problem, label in zip(failed.value.problems, labels, strict=True))
    assert not (run_dir / "results.json").exists()
    with run_dir_lock(run_dir):  # released
        pass
    once = Stub("WorkerCrashedError: the worker died")
    with pytest.raises(CellsFailed):
        run_grid(load_grid(_grid(tmp_path)), once, "failing", retries=0)
    assert len(once.calls) == 1


def test_the_in_process_backend_reports_a_cells_exception_as_its_error(monkeypatch):
    monkeypatch.setattr(backends, "run_cell", _run_cell_failing_seed_1)
    cells = _three_cells()
    assert list(InProcessBackend().run(cells)) == [(cells[0], None), (cells[1], "ValueError: bad cell"),
                                                   (cells[2], None)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_a_local_worker_dies_with_its_sweep(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(
        "import os, time\nfrom concurrent.futures import ProcessPoolExecutor\nfrom multiprocessing import get_context\n"
        "from mythbench.experiments.backends import _die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=get_context('spawn'), initializer=_die_with_parent)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
        "    time.sleep(120)\n")
    sweep = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(sweep.stdout.readline())
    sweep.kill()
    sweep.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _alive(worker):
        time.sleep(0.1)
    orphan = _alive(worker)
    if orphan:
        os.kill(worker, signal.SIGKILL)
    assert not orphan, "the worker of a killed sweep trains on as an orphan"


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped has finished)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_of_other_source_code_refuses_to_compute(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "models=[rdt]", "twins=[]"])
    (tmp_path / "code.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(RuntimeError, match=r"other source code .* \(sha256 0{12}…\)"):
        run_cell(plan_cells("run", cfg, tmp_path, get_task("parity"))[0])
    assert not (tmp_path / "models").exists()


def test_a_cell_runs_in_this_process_logs_to_its_run_and_leaves_the_logger_as_it_was(tmp_path, capsys):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "models=[rdt]", "twins=[]"])
    harness.prepare_run_dir(tmp_path, cfg)
    cell = plan_cells("run", cfg, tmp_path, get_task("parity"))[0]
    logger = logging.getLogger("mythbench")
    handlers, level = list(logger.handlers), logger.level
    logger.setLevel(logging.WARNING)
    try:
        assert run_cell(cell) == "complete" and cell.done()
        assert logger.handlers == handlers  # the run's log file is detached again
    finally:
        logger.setLevel(level)
    lines = (tmp_path / "log.txt").read_text().splitlines()
    started = f"INFO rdt seed 0: cell started in process {os.getpid()} on {platform.node()}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} " + re.escape(started), lines[0])
    assert any("rdt seed 0: trained in" in line for line in lines)  # the harness logs to the run's file too
    assert capsys.readouterr().err == ""  # per-step progress bars are silenced in a worker


def test_a_trial_cell_is_trained_and_validated_not_evaluated(tmp_path, monkeypatch):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "models=[rdt]", "twins=[]"])
    harness.prepare_run_dir(tmp_path, cfg)
    cell = dataclasses.replace(plan_cells("run", cfg, tmp_path, get_task("parity"))[0], kind="trial")
    calls = []
    monkeypatch.setattr(cells, "train_and_validate", lambda *args: calls.append(args) or {"status": "validated"})
    monkeypatch.setattr(harness, "train_and_evaluate", lambda *args: pytest.fail("a trial read the test split"))
    assert run_cell(cell) == "validated"
    [(plan, seed, cfg, task, run_dir)] = calls
    assert (plan, seed, cfg, run_dir, task.spec.name) == (cell.plan, 0, cell.cfg, tmp_path, "parity")


def _kill_when_training(run_dir: Path, seed: int, killed: list[int]) -> None:
    """SIGKILL the worker process of (rdt, seed) once it has checkpointed and before it finishes."""
    seed_dir, log_file = run_dir / "models" / "rdt" / f"seed{seed}", run_dir / "log.txt"
    marker = f"rdt seed {seed}: cell started in process "
    deadline = time.time() + 900  # generous: on a loaded machine the first checkpoint comes late
    while time.time() < deadline and not (seed_dir / "result.json").exists():
        if any(seed_dir.glob("ckpt-*")) and log_file.exists():
            pids = [int(line.split(marker)[1].split()[0]) for line in log_file.read_text().splitlines()
                    if marker in line]
            os.kill(pids[-1], signal.SIGKILL)
            killed.append(pids[-1])
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_local_sweep_with_a_killed_worker_writes_what_the_serial_run_writes_and_never_recomputes(tmp_path, serial):
    run_dir = tmp_path / "out" / "parity" / "quick" / "default"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_training, args=(run_dir, 1, killed))
    killer.start()
    result = CliRunner().invoke(app, ["sweep", str(_grid(tmp_path)), "--workers", "2"])
    killer.join()
    assert result.exit_code == 0, result.output
    assert killed, "the worker finished before it could be killed"
    _assert_same_as_serial(run_dir, serial)
    assert (run_dir / "log.txt").read_text().count("rdt seed 1: cell started") == 2
    again = run_grid(load_grid(_grid(tmp_path)), Stub(), "again")  # Stub fails the test if asked to run a cell
    assert _cells(again[0]) == _cells(json.loads((serial / "results.json").read_text()))


@pytest.mark.slow
def test_run_on_workers_writes_what_the_serial_run_writes_whatever_omp_num_threads_says(tmp_path, serial,
                                                                                         monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the spawned workers' environment; the config says one thread
    run_dir = tmp_path / "run"
    args = ["run", "parity", "--seeds", "2", "--workers", "2", "--out", str(run_dir),
            *[arg for s in [*TINY, "models=[rdt]", "twins=[]"] for arg in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    _assert_same_as_serial(run_dir, serial)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["environment"]["torch_threads"] == 1
    assert [r["train"]["torch_threads"] for r in results["models"][0]["runs"]] == [1, 1]
    assert (run_dir / "log.txt").read_text().count("cell started in process") == 2
    again = CliRunner().invoke(app, args)  # resumes: every cell is done, nothing is trained again
    assert again.exit_code == 0, again.output
    assert (run_dir / "log.txt").read_text().count("cell started in process") == 2
    assert _cells(json.loads((run_dir / "results.json").read_text())) == _cells(results)


@pytest.mark.slow
def test_ray_sweep_with_a_killed_worker_completes_with_the_serial_results(tmp_path, serial, monkeypatch, caplog):
    pytest.importorskip("ray")
    from mythbench.experiments.backends import RayBackend

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    runs = load_grid(_grid(tmp_path))
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_training, args=(runs[0].run_dir, 0, killed))
    killer.start()
    run_grid(runs, RayBackend(workers=2), "ray", retries=2)
    killer.join()
    assert killed, "the worker finished before it could be killed"
    _assert_same_as_serial(runs[0].run_dir, serial)
    assert "rdt:seed0: attempt 1 failed (WorkerCrashedError" in caplog.text
    assert (runs[0].run_dir / "log.txt").read_text().count("rdt seed 0: cell started") == 2


@pytest.mark.slow
def test_submitit_local_executor_sweep_gives_the_serial_results(tmp_path, serial, monkeypatch):
    pytest.importorskip("submitit")
    from mythbench.experiments.backends import SlurmBackend

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    runs = load_grid(_grid(tmp_path))
    run_grid(runs, SlurmBackend(folder=tmp_path / "jobs", cluster="local", timeout_min=10, poll_s=0.2), "slurm")
    _assert_same_as_serial(runs[0].run_dir, serial)
    assert list((tmp_path / "jobs").glob("*_log.out")), "no submitit job ran"


def test_a_ladder_trains_the_standard_gate_first_then_rdts_seed_by_seed(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, ["scale.widths=[8,16,24,32,40]", "scale.loop_counts=[2]",
                                                       "scale.lr_grid=[1,0.5]"], seeds=[0, 1])
    cells = plan_cells("scale", cfg, tmp_path, get_task("parity"))
    std = [f"standard-w{w}-lrx{m}" for w in (8, 16, 24, 32, 40) for m in (1, 0.5)]
    rdt = [f"rdt-w{w}-r2-lrx{m}" for w in (8, 16, 24, 32, 40) for m in (1, 0.5)]
    assert [(c.model, c.seed) for c in cells] == ([(m, s) for s in (0, 1) for m in std]
                                                 + [(m, s) for s in (0, 1) for m in rdt])
    lrs = {c.model: c.cfg.train.lr for c in cells}
    assert lrs["standard-w8-lrx0.5"] == lrs["rdt-w40-r2-lrx0.5"] == cfg.train.lr / 2
    assert all(c.cfg.eval.validation for c in cells)


@pytest.mark.slow
def test_a_scale_ladder_on_the_engine_is_the_serial_ladder(tmp_path, monkeypatch):
    tiny = ["scale.widths=[8,16,24,32,40]", "scale.head_dim=8", "scale.steps=3", "scale.loop_counts=[2]",
            "scale.n_bootstrap=20", "train.batch_size=8", "train.warmup_steps=1", "eval.loops_factor=1",
            "eval.depth_factor=0",
            "eval.train_points=1"]
    cfg = resolve_run_config("parity", "quick", None, tiny)
    args = ["scale", "parity", "--backend", "local", "--workers", "2", "--out", str(tmp_path / "engine")]
    result = CliRunner().invoke(app, args + [arg for s in tiny for arg in ("--set", s)])
    assert result.exit_code == 0, result.output
    engine = json.loads((tmp_path / "engine" / "results.json").read_text())
    assert len(engine["points"]) == 10 and all(p["status"] == "complete" for p in engine["points"])

    def no_training(*args, **kwargs):
        raise AssertionError("the serial path trained a point the engine had finished")

    monkeypatch.setattr(harness, "train_model", no_training)
    again = run_scale(cfg, tmp_path / "engine", "serial")
    assert again["points"] == engine["points"] and again["fits"] == engine["fits"]
    monkeypatch.undo()
    task = get_task("parity")
    plan = next(p for p, _, _ in plan_ladder(cfg, task) if p.name == "rdt-w16-r2")
    alone = harness.train_and_evaluate(plan, 0, point_run_config(cfg)[0], task, tmp_path / "alone")
    stored = json.loads((tmp_path / "engine" / "models" / plan.name / "seed0" / "result.json").read_text())
    assert alone["cells"] == stored["cells"] and alone["train"]["final_loss"] == stored["train"]["final_loss"]


# --- each backend's contract with the library it drives, in this process (the real engines run above, slowly)


def _three_cells(threads: tuple[int, int, int] = (1, 1, 1)) -> list:
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "models=[rdt]", "twins=[]"], seeds=[0, 1, 2])
    return [dataclasses.replace(c, cfg=dataclasses.replace(c.cfg, threads=t))
            for c, t in zip(plan_cells("run", cfg, Path("/nowhere"), get_task("parity")), threads, strict=True)]


def _run_cell_failing_seed_1(cell) -> None:
    if cell.seed == 1:
        raise ValueError("bad cell")


class Job:
    """A submitit job or Ray reference: the cell's outcome, computed when made, seen done on the second look."""

    def __init__(self, fn, cell):
        self.looks, self.error = 0, None
        try:
            fn(cell)
        except Exception as e:
            self.error = e

    def done(self) -> bool:
        self.looks += 1
        return self.looks > 1

    def result(self) -> None:
        if self.error is not None:
            raise self.error


def test_local_backend_sizes_a_spawned_pool_that_kills_workers_with_their_parent(monkeypatch):
    from concurrent.futures import Future

    built = []

    class Pool:  # ProcessPoolExecutor's interface, each call run in this thread
        def __init__(self, workers, mp_context, initializer):
            built.append((workers, mp_context.get_start_method(), initializer))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, cell):
            future = Future()
            job = Job(fn, cell)
            future.set_exception(job.error) if job.error else future.set_result(None)
            return future

    monkeypatch.setattr(backends, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(backends, "run_cell", _run_cell_failing_seed_1)
    monkeypatch.setattr(backends, "default_workers", lambda threads: threads - 1)
    cells = _three_cells(threads=(1, 3, 1))
    assert dict(backends.LocalBackend().run(cells)) == {cells[0]: None, cells[1]: "ValueError: bad cell",
                                                        cells[2]: None}
    assert dict(backends.LocalBackend(workers=8).run(cells[:2])) == {cells[0]: None, cells[1]: "ValueError: bad cell"}
    assert built == [(2, "spawn", backends._die_with_parent), (2, "spawn", backends._die_with_parent)]


class FakeRay(types.ModuleType):
    """The part of Ray's API RayBackend uses, recording every call."""

    def __init__(self):
        super().__init__("ray")
        self.inits, self.remotes, self.cpus, self.shutdowns = [], [], [], 0

    def is_initialized(self) -> bool:
        return bool(self.inits) and self.shutdowns < len(self.inits)

    def init(self, **kwargs) -> None:
        self.inits.append(kwargs)

    def remote(self, **kwargs):
        self.remotes.append(kwargs)
        ray = self

        class Remote:
            def __init__(self, fn):
                self.fn = fn

            def options(self, num_cpus):
                ray.cpus.append(num_cpus)
                return self

            def remote(self, cell):
                return Job(self.fn, cell)

        return Remote

    def wait(self, pending, num_returns):
        assert num_returns == 1
        return [pending[-1]], pending[:-1]

    def get(self, job) -> None:
        job.result()

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_ray_backend_starts_a_local_cluster_sized_for_its_workers_and_stops_it(monkeypatch):
    ray = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(backends, "run_cell", _run_cell_failing_seed_1)
    cells = _three_cells(threads=(2, 3, 1))
    backend = backends.RayBackend(workers=4, gpus=0.5)
    assert list(backend.run(cells)) == [(cells[2], None), (cells[1], "ValueError: bad cell"), (cells[0], None)]
    assert ray.inits == [{"address": None, "num_cpus": 12, "include_dashboard": False, "log_to_driver": False,
                          "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(backends._source_roots())}}}]
    assert ray.remotes == [{"num_gpus": 0.5, "max_retries": 0}] and ray.cpus == [2, 3, 1]
    list(backend.run(cells[:1]))  # the cluster is up: not started again
    assert len(ray.inits) == 1 and ray.shutdowns == 0
    backend.close()
    assert ray.shutdowns == 1


def test_ray_backend_sends_cells_to_an_existing_cluster_as_they_are(monkeypatch):
    ray = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(backends, "run_cell", _run_cell_failing_seed_1)
    backend = backends.RayBackend(address="ray://head:10001")
    assert list(backend.run(_three_cells()[:1])) == [(_three_cells()[0], None)]
    assert ray.inits == [{"address": "ray://head:10001", "num_cpus": None, "include_dashboard": False,
                          "log_to_driver": False, "runtime_env": None}]
    backends.RayBackend(address="ray://head:10001").close()  # never started: nothing to stop
    assert ray.shutdowns == 0


@pytest.mark.parametrize(("backend", "module", "extra"), [("RayBackend", "ray", "ray"),
                                                          ("SlurmBackend", "submitit", "slurm")])
def test_a_backend_without_its_library_names_the_extra_to_install(monkeypatch, tmp_path, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(ConfigError) as err:
        getattr(backends, backend)(*([tmp_path] if module == "submitit" else []))
    assert err.value.problems == [f'--backend {extra} needs {module}: pip install -e ".[sweep]"']


class FakeSubmitit(types.ModuleType):
    """submitit's AutoExecutor as SlurmBackend uses it, recording every call."""

    def __init__(self, refuse: str | None = None):
        super().__init__("submitit")
        self.executors, self.parameters, self.refuse = [], [], refuse
        submitit = self

        class AutoExecutor:
            def __init__(self, folder, cluster):
                submitit.executors.append((folder, cluster))

            def update_parameters(self, **kwargs):
                if submitit.refuse in kwargs:
                    raise ValueError(f"unknown parameter {submitit.refuse}")
                submitit.parameters.append(kwargs)

            def map_array(self, fn, cells):
                return [Job(fn, c) for c in cells]

        self.AutoExecutor = AutoExecutor


def test_slurm_backend_submits_one_job_array_and_reports_each_jobs_first_error_line(monkeypatch, tmp_path):
    submitit = FakeSubmitit()
    monkeypatch.setitem(sys.modules, "submitit", submitit)

    def job_failing_seed_1(cell) -> None:  # a failed job's error: its first line, then the remote traceback
        if cell.seed == 1:
            raise RuntimeError("job 7 failed\nTraceback (most recent call last): ...")

    monkeypatch.setattr(backends, "run_cell", job_failing_seed_1)
    sleeps = []
    monkeypatch.setattr(backends.time, "sleep", sleeps.append)
    cells = _three_cells(threads=(1, 4, 2))
    backend = backends.SlurmBackend(folder=tmp_path, poll_s=0.25)
    assert submitit.executors == [(tmp_path, "slurm")]
    assert submitit.parameters == [{"timeout_min": 60, "gpus_per_node": 0, "slurm_array_parallelism": 64}]
    assert list(backend.run(cells)) == [(cells[0], None), (cells[1], "RuntimeError: job 7 failed"), (cells[2], None)]
    assert submitit.parameters[1:] == [{"cpus_per_task": 4}]  # the cells' threads
    assert sleeps == [0.25, 0]  # polled until every job was done
    backends.SlurmBackend(folder=tmp_path, partition="gpu", cpus_per_task=8, gpus_per_node=1, timeout_min=5,
                          array_parallelism=2, cluster="local").run(cells)  # a generator: submits nothing yet
    assert submitit.executors[1] == (tmp_path, "local")
    assert submitit.parameters[2] == {"timeout_min": 5, "gpus_per_node": 1, "slurm_array_parallelism": 2,
                                      "slurm_partition": "gpu", "cpus_per_task": 8}


def test_slurm_backend_refuses_parameters_submitit_refuses(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", FakeSubmitit(refuse="slurm_partition"))
    with pytest.raises(ConfigError) as err:
        backends.SlurmBackend(folder=tmp_path, partition="x")
    assert err.value.problems == ["--backend slurm: unknown parameter slurm_partition"]


def test_local_ray_workers_import_this_checkout_first(monkeypatch):
    import mythbench

    root = str(Path(mythbench.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, "", "/elsewhere", root, "/other"]))
    assert backends._source_roots() == [root, "/elsewhere", "/other"]
    monkeypatch.delenv("PYTHONPATH")
    assert backends._source_roots() == [root]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")
def test_a_worker_asks_the_kernel_for_sigkill_when_its_parent_dies():
    import ctypes

    libc, pr_get_pdeathsig = ctypes.CDLL(None, use_errno=True), 2
    signal_number = ctypes.c_int(-1)
    try:
        backends._die_with_parent()
        assert libc.prctl(pr_get_pdeathsig, ctypes.byref(signal_number)) == 0
        assert signal_number.value == signal.SIGKILL
    finally:
        libc.prctl(backends.PR_SET_PDEATHSIG, 0)  # this test process keeps living without its parent


def test_an_error_is_its_type_and_message():
    assert backends._error(ValueError("bad cell")) == "ValueError: bad cell"
    assert backends._error(RuntimeError()) == "RuntimeError:"


def test_default_workers_share_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)  # pinned to 4 of 6
    assert [backends.default_workers(t) for t in (1, 2, 3, 8)] == [4, 2, 1, 1]
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # no affinity (macOS): every core
    assert [backends.default_workers(t) for t in (1, 2, 4)] == [6, 3, 1]
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one core
    assert backends.default_workers(1) == 1


def test_a_local_ray_cluster_without_a_worker_count_gets_the_default_for_the_cells_threads(monkeypatch):
    ray = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(backends, "run_cell", _run_cell_failing_seed_1)
    monkeypatch.setattr(backends, "default_workers", lambda threads: {3: 2}[threads])
    list(backends.RayBackend().run(_three_cells(threads=(1, 3, 2))))
    assert ray.inits[0]["num_cpus"] == 6  # 2 workers of 3 threads


@pytest.mark.parametrize(("workers", "retries", "problems"), [
    (1, 0, []), (MAX_WORKERS, MAX_RETRIES, []),
    (0, -1, [f"--workers 0: must be in [1, {MAX_WORKERS}]", f"--retries -1: must be in [0, {MAX_RETRIES}]"]),
    (MAX_WORKERS + 1, MAX_RETRIES + 1, [f"--workers {MAX_WORKERS + 1}: must be in [1, {MAX_WORKERS}]",
                                        f"--retries {MAX_RETRIES + 1}: must be in [0, {MAX_RETRIES}]"]),
])
def test_make_backend_takes_workers_and_retries_within_their_ranges(workers, retries, problems):
    if not problems:
        assert isinstance(make_backend("local", workers, retries=retries), backends.LocalBackend)
        return
    with pytest.raises(ConfigError) as err:
        make_backend("local", workers, retries=retries)
    assert err.value.problems == problems


def test_make_backend_names_an_unknown_backend_and_the_known_ones():
    with pytest.raises(ConfigError) as err:
        make_backend("mpi")
    assert err.value.problems == ["--backend 'mpi' is not one of local, ray, slurm"]


def test_make_backend_refuses_options_that_would_do_nothing_with_the_chosen_backend():
    with pytest.raises(ConfigError) as err:
        make_backend("local", 2, address="ray://head:10001", slurm={"partition": "gpu", "timeout_min": 5})
    assert err.value.problems == ["--address names a Ray cluster; it does nothing with --backend local",
                                  "--slurm partition, timeout_min: Slurm options do nothing with --backend local"]
    with pytest.raises(ConfigError) as err:
        make_backend("ray", 2, address="ray://head:10001")
    assert err.value.problems == ["--workers sizes the local Ray cluster; it does nothing with --address (the "
                                  "cluster's own CPUs are used)"]


def test_make_backend_builds_the_backend_the_options_describe(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", FakeRay())
    monkeypatch.setitem(sys.modules, "submitit", FakeSubmitit())
    assert make_backend("local", 3) == backends.LocalBackend(3)
    ray = make_backend("ray", 3)
    assert isinstance(ray, backends.RayBackend) and (ray.workers, ray.address) == (3, None)
    ray = make_backend("ray", address="ray://head:10001")
    assert isinstance(ray, backends.RayBackend) and (ray.workers, ray.address) == (None, "ray://head:10001")
    slurm = make_backend("slurm", 5, slurm={"partition": "gpu"}, slurm_folder=tmp_path)
    assert isinstance(slurm, backends.SlurmBackend)
    assert (slurm.folder, slurm.partition, slurm.array_parallelism) == (tmp_path, "gpu", 5)
    slurm = make_backend("slurm", slurm={"folder": tmp_path / "jobs"}, slurm_folder=tmp_path)
    assert (slurm.folder, slurm.array_parallelism) == (tmp_path / "jobs", 64)


@dataclasses.dataclass(eq=False)
class _PlannedCell:
    """A cell the engine only schedules: done once a backend has run it."""

    label: str
    run_dir: Path
    finished: bool = False

    def done(self) -> bool:
        return self.finished


class _FailsOnce(Stub):
    """Runs every cell, but `flaky`'s first attempt fails."""

    def __init__(self, flaky: str):
        super().__init__()
        self.flaky = flaky

    def run(self, cells):
        self.calls.append([c.label for c in cells])
        for c in cells:
            failing = c.label == self.flaky and sum(c.label in call for call in self.calls) == 1
            c.finished = not failing
            yield c, "boom" if failing else None


@pytest.mark.parametrize("retries", [0, 1])
def test_a_sweep_plans_again_after_a_round_and_runs_the_new_cells_with_its_retries(tmp_path, monkeypatch, retries):
    """A ladder's pilot sets its points' rates: once the pilot's cells are done, planning again gives the points,
    which run on the same backend with the same retries before the run is assembled."""
    run = sweep.Run("scale", resolve_run_config("parity", "quick"), tmp_path / "ladder")
    pilot = [_PlannedCell("pilot", run.run_dir)]
    points = [_PlannedCell("p1", run.run_dir), _PlannedCell("p2", run.run_dir)]

    def plan(runs: list) -> list:  # each planning round plans the sweep's runs
        assert runs == [run]
        return pilot + (points if pilot[0].done() else [])

    monkeypatch.setattr(sweep, "prepare", plan)
    monkeypatch.setattr(sweep, "run_scale", lambda cfg, run_dir, command, started: {"assembled": run_dir})
    backend = _FailsOnce("p2")
    if retries:
        assert run_grid([run], backend, "test", retries=retries) == [{"assembled": run.run_dir}]
        assert backend.calls == [["pilot"], ["p1", "p2"], ["p2"]]
    else:
        with pytest.raises(CellsFailed) as err:
            run_grid([run], backend, "test", retries=retries)
        assert err.value.problems == ["p2 failed: boom"] and backend.calls == [["pilot"], ["p1", "p2"]]
    assert backend.closed


def test_prepare_returns_every_runs_cells_or_names_every_runs_problems(tmp_path, monkeypatch):
    runs = load_grid(_grid(tmp_path, tasks=["parity", "khop"]))
    cells = prepare(runs)
    assert sorted({Path(c.run_dir) for c in cells}) == sorted(r.run_dir for r in runs)
    assert {c.label for c in cells} == {f"{r.run_dir}:rdt:seed{s}" for r in runs for s in (0, 1)}
    ladder = sweep.Run("scale", resolve_run_config("parity", "quick"), tmp_path / "ladder")
    assert prepare([ladder]) == plan_cells("scale", ladder.cfg, ladder.run_dir, get_task("parity"))
    assert {c.model for c in prepare([ladder])} >= {"standard-w16", "rdt-w16-r1"}  # a ladder's points, by kind

    def refuse(what):
        def raise_(*args):
            raise ConfigError([f"{what} one", f"{what} two"])
        return raise_

    for step in ("prepare_run_dir", "plan_cells"):  # the run directories are claimed only once every run planned
        monkeypatch.setattr(sweep, step, refuse(step))
        with pytest.raises(ConfigError) as err:
            prepare(runs)
        assert err.value.problems == [f"{r.run_dir}: {step} {n}" for r in runs for n in ("one", "two")]


class _ClaimsSuccess(Stub):
    """Reports every cell finished, but only the cells in `writes` are done afterwards."""

    def __init__(self, writes: set[str]):
        super().__init__()
        self.writes = writes

    def run(self, cells):
        self.calls.append([c.label for c in cells])
        for c in cells:
            c.finished = c.label in self.writes
            yield c, None


def test_a_cell_reported_finished_without_its_result_fails_and_the_bar_counts_each_cell_once(tmp_path, capsys):
    done_before = _PlannedCell("done", tmp_path, finished=True)
    cells = [done_before, _PlannedCell("a", tmp_path), _PlannedCell("b", tmp_path), _PlannedCell("lost", tmp_path)]
    backend = _ClaimsSuccess({"a", "b"})
    failed = execute(cells, backend, retries=1)
    assert backend.calls == [["a", "b", "lost"], ["lost"]]
    assert {c.label: e for c, e in failed.items()} == {"lost": "finished without writing its result.json"}
    assert "3/4" in capsys.readouterr().err.replace(" ", "").split("\r")[-1]  # 1 done before + a and b


VARIANTS = "variants: expected a mapping of names to lists of key=value strings, got "


@pytest.mark.parametrize(("changes", "expected"), [
    ({"task": ["parity"]}, ["task: unknown key (did you mean 'tasks'?)"]),
    ({"baselines": ["iso-param"]}, ["baselines: replaced by `models:` (the looped models each run trains, e.g. "
                                    "[rdt, control]) and `twins:` (the standard transformers each gets, e.g. "
                                    "[iso-param, iso-flop])"]),
    ({"tasks": None}, ["tasks: expected a list of strings, got None"]),
    ({"tasks": []}, ["tasks: required, a non-empty list of task names"]),
    ({"presets": "quick"}, ["presets: expected a list of strings, got 'quick'"]),
    ({"set": "train.steps=2"}, ["set: expected a list of strings, got 'train.steps=2'"]),
    ({"models": "rdt"}, ["models: expected a list of strings, got 'rdt'"]),
    ({"variants": {}}, [VARIANTS + "{}"]),
    ({"variants": "abc"}, [VARIANTS + "'abc'"]),
    ({"variants": {"v": "abc"}}, [VARIANTS + "{'v': 'abc'}"]),
    ({"variants": {"v": [1]}}, [VARIANTS + "{'v': [1]}"]),
    ({"variants": {"a b": [], "ok": []}}, ["variants: 'a b' is not a plain name (letters, digits, '.', '_', '-')"]),
    ({"seeds": 0}, ["seeds: expected a positive count or a list of seeds, got 0"]),
    ({"widths": 5}, ["widths: expected a non-empty list of positive integers, got 5"]),
    ({"widths": []}, ["widths: expected a non-empty list of positive integers, got []"]),
    ({"widths": [16, 0]}, ["widths: expected a non-empty list of positive integers, got [16, 0]"]),
    ({"config": 5, "out": 6}, ["config: expected a path, got 5", "out: expected a path, got 6"]),
])
def test_each_bad_grid_axis_is_reported_once_in_its_own_words(tmp_path, changes, expected):
    with pytest.raises(ConfigError) as err:
        load_grid(_grid(tmp_path, **changes))
    assert err.value.problems == expected


def test_a_grid_without_tasks_is_told_they_are_required(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in GRID.items() if k != "tasks"}))
    with pytest.raises(ConfigError) as err:
        load_grid(path)
    assert err.value.problems == ["tasks: required, a non-empty list of task names"]


def test_a_grid_reads_its_config_beside_it_and_expands_counts_names_and_widths(tmp_path):
    """`config:` is relative to the grid file; seeds: 1 is seed 0; a variant name may be capitalised; width 1 is
    a width (the config then says what is wrong with it)."""
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.0123\n")
    (run,) = load_grid(_grid(tmp_path, config="base.yaml", seeds=1, variants={"Base": []}))
    assert run.cfg.train.lr == 0.0123 and run.cfg.seeds == [0] and run.run_dir.name == "Base"
    bare = tmp_path / "ablate.yaml"
    bare.write_text(yaml.safe_dump(GRID))  # without out: under runs/sweep/<the grid's name>, or where --out says
    assert load_grid(bare)[0].run_dir == Path("runs/sweep/ablate/parity/quick/default")
    assert load_grid(bare, tmp_path / "here")[0].run_dir == tmp_path / "here" / "parity" / "quick" / "default"
    with pytest.raises(ConfigError) as err:
        load_grid(_grid(tmp_path, widths=[1]))
    assert err.value.problems == [f"{tmp_path / 'out'}/parity/quick/default-w1: model.d_model (1) must be divisible "
                                  "by n_heads (2)"]
