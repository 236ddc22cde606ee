"""Saved models: re-evaluate a checkpoint (`mythbench eval`) and re-score a submission (`verify --rescore`).

A checkpoint directory holds `config.json` (family + model config, plain JSON), `model.safetensors` and its
sha256 (`model.safetensors.sha256`, checked before the weights are loaded); nothing in it is executed or
unpickled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mythbench.config import EvalConfig, device_problems
from mythbench.core.errors import ConfigError
from mythbench.models import registry
from mythbench.results.leaderboard import compare_rescore
from mythbench.results.safejson import read_json_file, walk_problems
from mythbench.results.schema import check_schema
from mythbench.tasks import get_task
from mythbench.training.evaluate import evaluate_looped, evaluate_plain, sweep_max_loops
from mythbench.training.train import WEIGHTS, load_weights, read_final_weights

MAX_EVAL_LOOPS = 1024  # a loop sweep runs every count up to the largest: bounded like every numeric option
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def load_checkpoint(ckpt_dir: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    ckpt_dir = Path(ckpt_dir)
    problems = [f"{ckpt_dir / f}: missing" for f in ("config.json", WEIGHTS) if not (ckpt_dir / f).is_file()]
    if problems:
        raise ConfigError(problems + [f"{ckpt_dir}: expected a run's models/NAME/seedK directory"])
    card_path = ckpt_dir / "config.json"
    try:
        card = read_json_file(card_path)
    except ConfigError as e:
        raise ConfigError([f"{card_path}: {p}" for p in e.problems]) from None
    problems = walk_problems(card)
    if not problems and not (isinstance(card, dict) and isinstance(card.get("family"), str)
                             and isinstance(card.get("model_config"), dict)):
        problems = ["not a model card: expects an object with a string 'family' and an object 'model_config'"]
    if problems:
        raise ConfigError([f"{card_path}: {p}" for p in problems])
    try:
        model, _ = registry.build_model(card["family"], card["model_config"])
    except ConfigError as e:
        raise ConfigError([f"{card_path}: {p}" for p in e.problems]) from None
    load_weights(model, ckpt_dir / WEIGHTS, read_final_weights(ckpt_dir))
    return model.to(device).eval(), card


def evaluate_model_on(model: torch.nn.Module, family: str, task: Any, difficulties: list[int],
                      max_loops: int | None, device: str = "cpu",
                      indices: np.ndarray | None = None) -> dict:
    """Evaluate on the task's fingerprinted test sets (or the rows `indices` of each)."""

    def batches(d: int) -> tuple[np.ndarray, ...]:
        b = task.test_batch(d)
        arrays = (b.tokens, b.targets, b.mask)
        return arrays if indices is None else tuple(a[indices[indices < len(a)]] for a in arrays)

    if registry.get_family(family).looped:
        hardest = task.depth(max(task.spec.test_difficulties))
        loops = max_loops or sweep_max_loops(model.cfg.train_loops, hardest, EvalConfig())
        return evaluate_looped(model, batches, difficulties, loops, EvalConfig(), device)
    return evaluate_plain(model, batches, difficulties, EvalConfig(), device)


def evaluate_checkpoint(ckpt_dir: Path, task_name: str, difficulties: list[int] | None,
                        loops: list[int] | None, device: str = "cpu") -> dict:
    for flag, values in (("--loops", loops), ("--difficulties", difficulties)):
        if values is not None and (not values or min(values) < 1):
            raise ConfigError(f"{flag} {','.join(map(str, values))}: give one or more positive integers")
    if loops and max(loops) > MAX_EVAL_LOOPS:
        raise ConfigError(f"--loops {max(loops)}: must be <= {MAX_EVAL_LOOPS}")
    task = get_task(task_name)
    if problems := device_problems(device, "--device"):
        raise ConfigError(problems)
    model, card = load_checkpoint(ckpt_dir, device)
    if card.get("task") not in (None, task.spec.name):
        raise ConfigError(f"{ckpt_dir} was trained on task {card['task']!r}, not {task_name!r}")
    if card.get("task_version") not in (None, task.spec.version):
        raise ConfigError(f"{ckpt_dir} was trained on {task_name} v{card['task_version']}, "
                          f"the current task is v{task.spec.version}")
    ds = difficulties or sorted(set(task.spec.train_difficulties) | set(task.spec.test_difficulties))
    result = evaluate_model_on(model, card["family"], task, ds, max(loops) if loops else None, device)
    if loops:
        result["cells"] = [c for c in result["cells"] if c["loops"] is None or c["loops"] in loops]
    return {"checkpoint": str(ckpt_dir), "task": task.spec.name, "task_version": task.spec.version,
            "fingerprint": task.fingerprint(), **result}


def rescore_results(results_file: Path, run_dir: Path | None, sample: int = 128, seed: int = 0) -> list[str]:
    """Re-evaluate each submitted model's checkpoints on a random sample of every test difficulty.

    Returns the problems: accuracies that disagree with the submitted ones beyond both intervals.
    """
    if run_dir is None:
        raise ConfigError("--rescore needs --checkpoint RUN_DIR (the run directory holding models/)")
    results = read_json_file(Path(results_file))
    problems = check_schema(results)
    if problems:
        raise ConfigError([f"{results_file}: {p}" for p in problems])
    task = get_task(results["task"]["name"])
    if results["task"]["fingerprint"] != task.fingerprint():
        return [f"{results_file}: test-set fingerprint differs from the current task's"]
    problems: list[str] = []
    for entry in results["models"]:
        if not SAFE_NAME.match(str(entry["name"])):
            problems.append(f"model name {entry['name']!r} is not a safe directory name")
            continue
        for run in entry["runs"]:
            ckpt = Path(run_dir) / "models" / entry["name"] / f"seed{int(run['seed'])}"
            if run["status"] != "complete":
                continue
            model, card = load_checkpoint(ckpt)
            rng = np.random.default_rng([seed, int(run["seed"])])
            n_test = task.spec.examples["test"]
            indices = np.sort(rng.choice(n_test, size=min(sample, n_test), replace=False))
            loops = entry.get("eval_loops")
            rescored = evaluate_model_on(model, card["family"], task, task.spec.test_difficulties,
                                         max(loops) if loops else None, indices=indices)
            submitted = [c for c in run["cells"] if c["difficulty"] in task.spec.test_difficulties]
            problems += [f"{entry['name']} seed {run['seed']}: {p}"
                         for p in compare_rescore(submitted, rescored["cells"])]
    return problems
