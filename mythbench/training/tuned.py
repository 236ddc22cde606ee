"""A run's models at their tuned settings: `mythbench run --tuned TUNE.json` (config `tune.use`).

A tune file (`mythbench tune`, experiments/tune.py) holds, per model, the learning rate and recipe chosen on
the validation split. A run trains each planned model with its own choice, after checking that the file is
the one the config names (its sha256), that it tuned this task, and that it tuned these very models (same
family, same model config), so a choice never lands on a model it was not made for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from mythbench.config import RECIPE_KEYS, RunConfig, TrainConfig, run_config_from_dict, to_dict
from mythbench.core.errors import ConfigError
from mythbench.results.safejson import parse_json_bytes

TUNE_KIND = "tune"


def file_sha256(path: Path) -> str:
    """sha256 of a tune file's bytes (ConfigError if it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise ConfigError(f"--tuned {path}: cannot read it ({e.strerror or e})") from None


def read_tune_file(cfg: RunConfig) -> dict:
    """The tune file `cfg.tune.use` names, checked to be that very file (tune.use_sha256), a complete search
    of this run's task; ConfigError names every problem."""
    path = Path(cfg.tune.use)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"tune.use: cannot read {path} ({e.strerror or e})") from None
    if hashlib.sha256(data).hexdigest() != cfg.tune.use_sha256:
        raise ConfigError(f"tune.use: {path} changed since the run was configured (sha256 "
                          f"{cfg.tune.use_sha256[:12]}…); pass --tuned {path} again, with a new --out")
    doc = parse_json_bytes(data)
    problems = []
    if not isinstance(doc, dict) or doc.get("kind") != TUNE_KIND:
        raise ConfigError(f"tune.use: {path} is not a tune file (kind {TUNE_KIND!r})")
    if doc.get("status") != "complete":
        problems.append(f"tune.use: {path} is an unfinished search (status {doc.get('status')!r}); run the same "
                        "`mythbench tune` again to finish it")
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    if task.get("name") != cfg.task:
        problems.append(f"tune.use: {path} tuned task {task.get('name')!r}, not {cfg.task!r}")
    if not isinstance(doc.get("models"), list) or not all(isinstance(m, dict) for m in doc["models"]):
        problems.append(f"tune.use: {path}: models is not a list of objects")
    if problems:
        raise ConfigError(problems)
    return doc


def chosen_config(cfg: RunConfig, chosen: Any, where: str) -> RunConfig:
    """`cfg` with the learning rate and recipe (RECIPE_KEYS) of a tune file's choice, validated like any config."""
    if not isinstance(chosen, dict) or not isinstance(chosen.get("train"), dict) or "lr" not in chosen:
        raise ConfigError(f"{where}: no choice (an object with lr and train)")
    unknown = sorted(set(chosen["train"]) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"{where}.train: {', '.join(unknown)} not recipe keys")
    data = to_dict(cfg)
    data["train"].update({k: getattr(TrainConfig(), k) for k in RECIPE_KEYS} | chosen["train"] | {"lr": chosen["lr"]})
    try:
        return run_config_from_dict(data)
    except ConfigError as e:
        raise ConfigError([f"{where}: {p}" for p in e.problems]) from None


def apply_tuning(cfg: RunConfig, plans: list[Any]) -> tuple[dict[str, RunConfig], dict | None]:
    """The config each planned model trains with, by name, and what results.json records of the tuning
    (None without tune.use): the file, its sha256, and per model the choice and every trial behind it."""
    if not cfg.tune.use:
        return {plan.name: cfg for plan in plans}, None
    doc = read_tune_file(cfg)
    entries = {m.get("name"): m for m in doc["models"]}
    configs, models, problems = {}, {}, []
    for plan in plans:
        entry, where = entries.get(plan.name), f"tune.use: {cfg.tune.use}: model {plan.name!r}"
        if entry is None:
            problems.append(f"{where} was not tuned (tuned: {', '.join(map(str, entries))})")
            continue
        planned = json.loads(json.dumps(dataclasses.asdict(plan.config)))
        if entry.get("family") != plan.family or entry.get("model_config") != planned:
            problems.append(f"{where} was tuned with another architecture (family or model_config differ)")
            continue
        try:
            configs[plan.name] = chosen_config(cfg, entry.get("chosen"), where)
        except ConfigError as e:
            problems += e.problems
            continue
        models[plan.name] = {"chosen": entry["chosen"], "trials": entry.get("trials", [])}
    if problems:
        raise ConfigError(problems)
    return configs, {"file": cfg.tune.use, "sha256": cfg.tune.use_sha256, "models": models}
