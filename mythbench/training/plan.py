"""Which models a run trains: every looped model of `models:`, each followed by its twins (`twins:`).

Kept apart from the harness (and torch) so that `mythbench describe` plans and counts the same models in an
instant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mythbench.config import RunConfig
from mythbench.core.errors import ConfigError, known_hint
from mythbench.models import accounting, baseline_registry, registry
from mythbench.models.rdt_config import RDTConfig


@dataclass(frozen=True)
class ModelPlan:
    """One model to train: a looped model of `models:`, or a twin of one (`twin_of` names it)."""

    name: str
    family: str
    role: str
    config: Any  # the family's config dataclass
    twin_of: str | None = None


def task_model_config(cfg: RunConfig, task: Any) -> RDTConfig:
    """The run's `model:` config at the task's vocabulary, longest sequence and attention mask."""
    lengths = [task.seq_len(d) for d in task.spec.train_difficulties + task.spec.test_difficulties]
    try:
        return dataclasses.replace(cfg.model, vocab_size=task.vocab_size, max_seq_len=max(lengths),
                                   causal=task.spec.attention == "causal")
    except ConfigError as e:
        raise ConfigError([f"model.{p}" for p in e.problems]) from None


def plan_models(cfg: RunConfig, task: Any) -> list[ModelPlan]:
    """Every looped model of `models:`, each followed by its twins (`twins:`) built from its own config."""
    base = task_model_config(cfg, task)
    kinds = baseline_registry.twin_kinds()
    problems = [f"twins: unknown twin {k!r}{known_hint(k, kinds)}" for k in cfg.twins if k not in kinds]
    plans = []
    for name in cfg.models:
        try:
            family, config, role = baseline_registry.looped_model(name, base)
        except ConfigError as e:
            problems += [f"models: {p}" for p in e.problems]
            continue
        plans.append(ModelPlan(name, family, role, config))
        if not registry.is_looped(family):
            problems.append(f"models: {name} is a {family!r} model, which does not loop")
        problems += _positional_problems(f"models: {name}", config, task)
        problems += _size_problems(f"models: {name}", family, config)
        for kind in (k for k in cfg.twins if k in kinds):
            try:
                twin_family, twin_config = baseline_registry.twin_model(kind, family, config)
            except ConfigError as e:
                problems += [f"twins: {name}: {p}" for p in e.problems]
                continue
            plans.append(ModelPlan(baseline_registry.twin_name(name, kind), twin_family, kind, twin_config, name))
            problems += _size_problems(f"twins: {baseline_registry.twin_name(name, kind)}", twin_family, twin_config)
    clashes = sorted({p.name for p in plans if [q.name for q in plans].count(p.name) > 1})
    problems += [f"models: {n!r} names two models (a looped model and another's twin)" for n in clashes]
    if problems:
        raise ConfigError(problems)
    return plans


def _size_problems(where: str, family: str, config: Any) -> list[str]:
    """A model too large to build is refused before any directory is made (registry.size_problem)."""
    too_large = registry.size_problem(family, config)
    return [] if too_large is None else [f"{where}: {too_large}"]


def _positional_problems(where: str, config: Any, task: Any) -> list[str]:
    """A model without positions cannot read order on a bidirectional task (its twins share its blocks)."""
    if getattr(config, "positional", None) == "none" and not getattr(config, "conv_kernel", 0) and not getattr(
            config, "causal", True):
        return [f"{where}: positional 'none' without a convolution reads each instance of the bidirectional "
                f"task {task.spec.name!r} as a bag of tokens (attention is then permutation-equivariant); use "
                "rope, learned or model.conv_kernel > 0"]
    return []


def describe_models(cfg: RunConfig, task: Any) -> list[dict[str, Any]]:
    """What `mythbench describe` shows: every planned model's layers, counts and (looped) max rho(A)."""
    rows = []
    for plan in plan_models(cfg, task):
        count = accounting.count_config(plan.family, plan.config)
        rho = accounting.spectral_radius_at_init(plan.config) if plan.family == "rdt" else None
        rows.append({"name": plan.name, "role": plan.role, "family": plan.family, "twin_of": plan.twin_of,
                     "layers": plan.config.n_layers, "params": count.params_dict(),
                     "flops_per_token": count.flops_dict(), "spectral_radius": rho})
    return rows
