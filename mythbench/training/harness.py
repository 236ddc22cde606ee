"""`mythbench run`: train the run's looped models and their twins, evaluate the grid, write a run directory.

Layout of a run directory:
    config.yaml                      the resolved run config
    code.sha256                      fingerprint of the source that computed the results
    models/<name>/seed<k>/           model.safetensors (+ .sha256), config.json, result.json, ckpt-<step>/
                                     (train_checkpoint.py)
    results.json, report.md, *.csv, *.png, log.txt
    .lock                            names the one process writing the directory (runlock.py)
A per-seed `result.json` marks that (model, seed) as done, so a killed run resumes where it stopped;
a directory is resumed only with the same config and the same code, so it never mixes results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import mythbench
from mythbench.config import RunConfig, eval_difficulties, to_dict
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_json, atomic_write_text
from mythbench.models import accounting, registry
from mythbench.reports.report import build_report
from mythbench.results.results_model import RUN_SCHEMA_VERSION, Run
from mythbench.results.safejson import read_json_file, walk_problems
from mythbench.results.schema import check_schema, model_problems
from mythbench.tasks import get_task
from mythbench.training.evaluate import evaluate_looped, evaluate_plain, rule_loops, sweep_max_loops
from mythbench.training.plan import ModelPlan, plan_models
from mythbench.training.runlock import holds_run_dir
from mythbench.training.train import TrainOutcome, train_model, write_model_card
from mythbench.training.tuned import apply_tuning

SCHEMA_VERSION = RUN_SCHEMA_VERSION  # the results model's current run schema
log = logging.getLogger("mythbench")


def use_threads(cfg: RunConfig) -> None:
    """Give this process the config's intra-op thread count before it trains or evaluates: float summation
    order, so every number, depends on it, and the environment (OMP_NUM_THREADS, the machine's cores) must not."""
    torch.set_num_threads(cfg.threads)


def environment(device: str) -> dict[str, Any]:
    """Where the run ran; `torch_threads` too: the config's `threads`, in force (`use_threads`)."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "device": device, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None}


def git_state() -> dict[str, Any]:
    """Commit and dirtiness of the source tree this code runs from (None outside a checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if commit else None}


def train_cell(plan: ModelPlan, seed: int, cfg: RunConfig, task: Any, run_dir: Path) -> tuple[Any, TrainOutcome]:
    """Build one model at one seed and train it (or resume its training): the part of a cell that every
    data-parallel rank runs under torchrun, so it is where the cell's threads are set (also for evaluation)."""
    use_threads(cfg)
    seed_dir = run_dir / "models" / plan.name / f"seed{seed}"
    family = registry.get_family(plan.family)
    torch.manual_seed(seed)
    model = registry.instantiate(plan.family, plan.config).to(cfg.device)
    write_model_card(seed_dir, plan.family, dataclasses.asdict(plan.config),
                     {"task": task.spec.name, "task_version": task.spec.version, "seed": seed})
    log.info("%s seed %d: training (%s recipe, %d steps)", plan.name, seed, cfg.train.recipe, cfg.train.steps)
    outcome = train_model(
        model, lambda d, n, s: _training_arrays(task.generate("train", d, n, s)), task.spec.train_difficulties,
        cfg.train, seed, seed_dir, device=cfg.device, train_loops=getattr(plan.config, "train_loops", 1),
        ponder_weight=getattr(plan.config, "ponder_weight", 0.0) if getattr(plan.config, "act", False) else 0.0,
        desc=f"{task.spec.name}:{plan.name}:s{seed}", looped=family.looped)
    return model, outcome


def train_and_evaluate(plan: ModelPlan, seed: int, cfg: RunConfig, task: Any, run_dir: Path) -> dict:
    """Train and evaluate one model at one seed, or load the stored result if it is already done."""
    done = run_dir / "models" / plan.name / f"seed{seed}" / "result.json"
    if done.exists():
        log.info("%s seed %d: already done, reusing %s", plan.name, seed, done)
        return stored_result(done)
    family = registry.get_family(plan.family)
    train_loops = getattr(plan.config, "train_loops", 1)
    model, outcome = train_cell(plan, seed, cfg, task, run_dir)
    result = {"seed": seed, "status": outcome.status, "train": outcome.to_dict(), "cells": [],
              "early_exit": [], "diagnostics": {}}
    if outcome.status == "complete":
        difficulties = eval_difficulties(task.spec.train_difficulties, task.spec.test_difficulties,
                                         cfg.eval.train_points)

        def batches(d: int) -> tuple[np.ndarray, ...]:
            return scored_arrays(task.test_batch(d))

        eval_started = time.perf_counter()
        desc = f"eval {task.spec.name}:{plan.name}:s{seed}"
        if family.looped:
            evaluation = evaluate_looped(model, batches, difficulties, max_eval_loops(train_loops, cfg, task),
                                         cfg.eval, cfg.device, desc=desc)
            evaluation["diagnostics"]["spectral_radius"] = model.spectral_radius()
        else:
            evaluation = evaluate_plain(model, batches, difficulties, cfg.eval, cfg.device, desc=desc)
        if cfg.eval.validation:
            evaluation["validation"] = evaluate_plain(
                model, lambda d: scored_arrays(task.validation_batch(d)),
                [d for d in difficulties if d in task.spec.train_difficulties], cfg.eval, cfg.device,
                loops=train_loops if family.looped else None)["cells"]
        nonfinite = walk_problems(evaluation)
        if nonfinite:  # outputs overflowed: the numbers cannot be scored (nor written as JSON)
            log.warning("%s seed %d: evaluation gave non-finite numbers (%s); recorded as diverged",
                        plan.name, seed, "; ".join(nonfinite[:3]))
            result["status"] = "diverged"
        else:
            result.update(evaluation)
        log.info("%s seed %d: trained in %.1fs (final loss %.4f), evaluated in %.1fs", plan.name, seed,
                 outcome.wall_time_s, outcome.final_loss, time.perf_counter() - eval_started)
    else:
        log.warning("%s seed %d: loss became non-finite at step %d; recorded as diverged",
                    plan.name, seed, outcome.steps)
    problems = model_problems(Run, result)  # the results model checks the writer: nothing invalid is written
    if problems:
        raise ConfigError([f"{done} would not validate: {p}" for p in problems])
    atomic_write_json(done, result)
    return result


def stored_result(path: Path) -> dict:
    """A per-seed result an earlier run wrote (atomically): one that is not what this code writes was
    tampered with or damaged, and is refused rather than reused or silently recomputed."""
    try:
        result = read_json_file(path)
    except ConfigError as e:
        problems = e.problems
    else:
        problems = walk_problems(result) or model_problems(Run, result)
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems] + [f"delete {path} to train and evaluate it again"])
    return result


def scored_arrays(batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens, targets and the positions the test metric scores."""
    return batch.tokens, batch.targets, batch.mask


def _training_arrays(batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens, targets and every supervised position (dense supervision included)."""
    return batch.tokens, batch.targets, batch.supervised


def max_eval_loops(train_loops: int, cfg: RunConfig, task: Any) -> int:
    return sweep_max_loops(train_loops, task.depth(max(task.spec.test_difficulties)), cfg.eval)


def _loop_rule(train_loops: int, cfg: RunConfig, task: Any) -> dict:
    """The headline loop count at every evaluated difficulty, written down before any scoring."""
    difficulties = eval_difficulties(task.spec.train_difficulties, task.spec.test_difficulties,
                                     cfg.eval.train_points)
    hardest = max(cfg.train.trained_difficulties(task.spec.train_difficulties), default=1)
    loops = rule_loops(cfg.eval.loop_rule, difficulties, hardest, train_loops,
                       cfg.train, max_eval_loops(train_loops, cfg, task))
    return {"name": cfg.eval.loop_rule, "loops": {str(d): n for d, n in loops.items()}}


def _model_entry(plan: ModelPlan, runs: list[dict], cfg: RunConfig, task: Any) -> dict:
    looped = registry.is_looped(plan.family)
    train_loops = getattr(plan.config, "train_loops", None) if looped else None
    truncated = cfg.train.recipe in ("parcae", "huginn")  # backprop through the last bwd_loops only
    count = accounting.count_config(plan.family, plan.config,
                                    grad_loops=cfg.train.bwd_loops if truncated else None)
    entry = {
        "name": plan.name, "family": plan.family, "role": plan.role, "twin_of": plan.twin_of,
        "model_config": dataclasses.asdict(plan.config), "params": count.params_dict(),
        "flops_per_token": count.flops_dict(), "train_loops": train_loops,
        "eval_loops": list(range(1, max_eval_loops(train_loops, cfg, task) + 1)) if looped else None,
        "loop_rule": _loop_rule(train_loops, cfg, task) if looped else None, "runs": runs,
    }
    return entry


def code_fingerprint(roots: list[Path] | None = None) -> str:
    """sha256 over the Python and YAML sources of the packages that compute results (mythbench, tasks,
    baselines by default). Unlike the git commit it also sees uncommitted edits."""
    if roots is None:  # mythbench, then the plugin packages' folders (mythbench/, tasks/, baselines/)
        modules = [importlib.import_module(m) for m in ("mythbench", *registry.PLUGIN_PACKAGES)]
        roots = list(dict.fromkeys(Path(m.__file__).parent for m in modules))
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.suffix in {".py", ".yaml"}):
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}".encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def run_dir_problems(run_dir: Path, cfg: RunConfig, code: str | None) -> list[str]:
    """Why `run_dir` cannot be resumed with `cfg`: it holds a run with another config, or (unless `code` is
    None) results computed by source code other than `code`."""
    stored, stored_code = run_dir / "config.yaml", run_dir / "code.sha256"
    problems = []
    if stored.exists() and stored.read_bytes() != yaml.safe_dump(to_dict(cfg), sort_keys=True).encode():
        problems.append(f"{run_dir} holds a run with a different config")
    if code is not None and stored_code.exists() and stored_code.read_bytes().strip() != code.encode():
        problems.append(f"{run_dir} holds results computed by different code (source sha256 "
                        f"{stored_code.read_bytes().strip()[:12].decode(errors='replace')}…, now {code[:12]}…)")
    return problems


def prepare_run_dir(run_dir: Path, cfg: RunConfig) -> None:
    """Create the run directory, or check that an existing one holds this very config and was computed by
    this very code (then resume). Per-seed results from other code are never reused."""
    code = code_fingerprint()
    problems = run_dir_problems(run_dir, cfg, code)
    if problems:
        raise ConfigError([*problems, "pass --out to start a new run (or delete the directory)"])
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=True))
    atomic_write_text(run_dir / "code.sha256", code + "\n")


def follow(cfg: RunConfig, run_dir: Path) -> None:
    """What ranks > 0 do for `mythbench run` under torchrun: train the cells rank 0 will train (those without
    a result when the run starts), in its order. Rank 0 evaluates and writes everything."""
    task = get_task(cfg.task)
    plans = plan_models(cfg, task)
    configs = apply_tuning(cfg, plans)[0]
    todo = [(plan, seed) for plan in plans for seed in cfg.seeds
            if not (run_dir / "models" / plan.name / f"seed{seed}" / "result.json").exists()]
    for plan, seed in todo:
        train_cell(plan, seed, configs[plan.name], task, run_dir)


@holds_run_dir
def run_benchmark(cfg: RunConfig, run_dir: Path, command: str, started: float | None = None) -> dict:
    """Train and evaluate every planned model at every seed; write results.json and the report. A sweep
    calls it after its engine has run every cell (so it only reads them), with the sweep's start time."""
    started = time.perf_counter() if started is None else started
    use_threads(cfg)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {cfg.device!r} asked for, but torch sees no CUDA device (use --device cpu)")
    task = get_task(cfg.task)
    plans = plan_models(cfg, task)
    configs, tuning = apply_tuning(cfg, plans)  # each model's tuned learning rate and recipe (tune.use)
    prepare_run_dir(run_dir, cfg)
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("command: %s", command)
        entries = [_model_entry(p, [train_and_evaluate(p, s, configs[p.name], task, run_dir) for s in cfg.seeds],
                                configs[p.name], task) for p in plans]
    finally:
        log.removeHandler(handler)
        handler.close()
    results = {
        "schema_version": SCHEMA_VERSION, "kind": "run", "mythbench_version": mythbench.__version__,
        "git": git_state(), "command": command,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_time_s": round(time.perf_counter() - started, 3), "status": "complete", "preset": cfg.preset,
        "config": to_dict(cfg),
        "task": {"name": task.spec.name, "version": task.spec.version, "fingerprint": task.fingerprint(),
                 "train_difficulties": task.spec.train_difficulties,
                 "test_difficulties": task.spec.test_difficulties,
                 "depth_per_difficulty": task.spec.depth_per_difficulty,
                 "context_length": task.spec.context_length},
        "evaluation": {"loop_rule": cfg.eval.loop_rule, "depth_factor": cfg.eval.depth_factor,
                       "loops_factor": cfg.eval.loops_factor,
                       "oracle": "oracle_best: the best loop count chosen on the test labels, not a usable rule"},
        "environment": environment(cfg.device), "seeds": list(cfg.seeds), "models": entries,
        **({"tuning": tuning} if tuning else {}),
    }
    problems = check_schema(results)  # the results model checks the writer too: nothing invalid is written
    if problems:
        raise ConfigError([f"{run_dir / 'results.json'} would not validate: {p}" for p in problems])
    atomic_write_json(run_dir / "results.json", results)
    build_report(run_dir)
    return results


def command_line() -> str:
    return " ".join(["mythbench", *sys.argv[1:]])
