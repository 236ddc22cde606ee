"""One writer per run directory: a second run is refused naming the holder; a dead holder's lock is taken."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.core.errors import ConfigError
from mythbench.training.runlock import LOCK_NAME, run_dir_lock

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["run", "scale"])
def test_a_second_writer_is_refused_naming_the_process_that_holds_the_directory(tmp_path, command):
    run_dir = tmp_path / "run"
    with run_dir_lock(run_dir):
        out = CliRunner().invoke(app, [command, "parity", "--out", str(run_dir), "--set", "train.steps=2",
                                       "--set", "train.warmup_steps=0"])
        assert [p.name for p in run_dir.iterdir()] == [LOCK_NAME], "the refused run wrote into the directory"
    assert out.exit_code == 2, out.output
    assert f"is in use by process {os.getpid()}" in out.output and "Traceback" not in out.output
    assert not run_dir.exists(), "the directory the lock created, still empty, is left behind"


def test_a_sweep_is_refused_while_one_of_its_run_directories_is_held(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("tasks: [parity]\nseeds: [0]\nmodels: [rdt]\ntwins: []\n"
                    f"set: [train.steps=2, train.warmup_steps=0]\nout: {tmp_path / 'out'}\n")
    run_dir = tmp_path / "out" / "parity" / "quick" / "default"
    with run_dir_lock(run_dir):
        out = CliRunner().invoke(app, ["sweep", str(grid), "--workers", "1"])
        assert [p.name for p in run_dir.iterdir()] == [LOCK_NAME], "the refused sweep wrote into the directory"
    assert out.exit_code == 2, out.output
    assert f"is in use by process {os.getpid()}" in out.output and "Traceback" not in out.output


def test_the_lock_of_a_killed_process_is_taken_over_and_named(tmp_path, caplog):
    run_dir = tmp_path / "run"
    script = ("import os, signal, sys; from mythbench.training.runlock import run_dir_lock\n"
              "with run_dir_lock(sys.argv[1]): os.kill(os.getpid(), signal.SIGKILL)")
    dead = subprocess.run([sys.executable, "-c", script, str(run_dir)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert dead.returncode == -9
    assert (run_dir / LOCK_NAME).exists()
    holder = (run_dir / LOCK_NAME).read_text()
    with run_dir_lock(run_dir):
        assert str(os.getpid()) in (run_dir / LOCK_NAME).read_text()
    assert any("taking over the lock" in r.message and holder.strip() in r.message for r in caplog.records)
    assert not (run_dir / LOCK_NAME).exists()


def test_a_live_holder_in_another_process_is_named_and_its_lock_kept(tmp_path):
    run_dir = tmp_path / "run"
    script = ("import sys, time; from mythbench.training.runlock import run_dir_lock\n"
              "with run_dir_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by process {proc.pid} "), run_dir_lock(run_dir):
            pass
        assert str(proc.pid) in (run_dir / LOCK_NAME).read_text()
    finally:
        proc.kill()
        proc.wait()


def test_a_contender_that_opened_the_lock_file_before_its_holder_released_it_does_not_win(tmp_path, monkeypatch):
    """The holder unlinks the lock file on release: a contender that opened the old file, then got its flock
    after a third writer had locked the new file, must see that and not run beside the third writer."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder, third = ExitStack(), ExitStack()
    holder.enter_context(run_dir_lock(run_dir))
    real_flock = fcntl.flock

    def flock_after_a_release(fd: int, operation: int) -> None:
        monkeypatch.setattr(fcntl, "flock", real_flock)
        holder.close()
        third.enter_context(run_dir_lock(run_dir))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_release)
    with pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"), run_dir_lock(run_dir):
        pass
    third.close()
