"""A cell's numbers depend only on its config and seed: its intra-op thread count is the config's `threads`,
whatever OMP_NUM_THREADS or the machine says, and `mythbench run` uses the cores by running cells in parallel."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.experiments.backends import default_workers
from mythbench.experiments.sweep import run_workers

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.d_model=16", "model.n_heads=2", "model.ffn_hidden=32", "model.train_loops=2", "train.steps=4",
        "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=2", "eval.loops_factor=1",
        "eval.depth_factor=0", "eval.train_points=1", "models=[rdt]", "twins=[]"]


def _run(out: Path, omp_threads: int, extra: list[str] = ()) -> dict:
    """`mythbench run parity` of one tiny cell in a fresh process with OMP_NUM_THREADS=omp_threads; its
    per-seed result without the wall time, and the thread counts results.json records."""
    sets = [arg for s in [*TINY, *extra] for arg in ("--set", s)]
    subprocess.run([sys.executable, "-m", "mythbench.cli", "run", "parity", "--workers", "1", "--out", str(out),
                    *sets], check=True, capture_output=True, cwd=out.parent,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(omp_threads)})
    result = json.loads((out / "models" / "rdt" / "seed0" / "result.json").read_text())
    threads = (json.loads((out / "results.json").read_text())["environment"]["torch_threads"],
               result["train"].pop("torch_threads"))
    del result["train"]["wall_time_s"]
    return {"result": result, "threads": threads}


@pytest.mark.slow
def test_a_cell_gives_the_same_numbers_at_any_omp_num_threads(tmp_path):
    one, two = _run(tmp_path / "omp1", 1), _run(tmp_path / "omp2", 2)
    assert one["threads"] == two["threads"] == (1, 1)  # the config's default, not the environment's 2
    assert one["result"]["cells"] and one["result"] == two["result"]


@pytest.mark.slow
def test_a_cell_run_twice_gives_the_same_numbers_at_the_configured_threads(tmp_path):
    first, second = _run(tmp_path / "first", 1, ["threads=2"]), _run(tmp_path / "second", 1, ["threads=2"])
    assert first["threads"] == second["threads"] == (2, 2)  # the config's 2, not the environment's 1
    assert first["result"]["cells"] and first["result"] == second["result"]


def test_workers_share_the_cores_among_cells_of_the_configured_threads(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [default_workers(t) for t in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    cfg = resolve_run_config("parity", "quick", None, ["threads=2", "models=[rdt]", "twins=[iso-param]"],
                             seeds=[0, 1, 2])
    assert run_workers(None, [cfg], world=1) == 4
    assert run_workers(None, [dataclasses.replace(cfg, seeds=[0])], world=1) == 2  # one per cell: rdt, iso-param
    assert run_workers(3, [cfg], world=1) == 3
    two = resolve_run_config("parity", "quick", None, ["models=[rdt, control]", "twins=[]"], seeds=[0])
    assert run_workers(None, [two], world=1) == 2  # one per cell: rdt, control
    assert run_workers(None, [dataclasses.replace(cfg, device="cuda")], world=1) == 1  # the cells share the GPU
    assert run_workers(None, [cfg], world=2) == 1  # torchrun: each rank trains the cells one by one
    for workers, world, problem in ((0, 1, "must be >= 1"), (2, 2, "under torchrun")):
        with pytest.raises(ConfigError, match=problem):
            run_workers(workers, [cfg], world)
