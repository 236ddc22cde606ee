"""Which models a run trains: the RDT at the task's sizes and every requested baseline matched to it.

Kept apart from the harness (and torch) so that `mythbench describe` plans the same models in an instant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mythbench.config import RunConfig
from mythbench.core.errors import ConfigError
from mythbench.models import baseline_registry


@dataclass(frozen=True)
class ModelPlan:
    """One model to train: the RDT, a matched baseline or an ablation."""

    name: str
    family: str
    role: str
    config: Any  # the family's config dataclass


def plan_models(cfg: RunConfig, task: Any) -> list[ModelPlan]:
    """The RDT built from the run config and the task, then every requested baseline matched to it."""
    lengths = [task.seq_len(d) for d in task.spec.train_difficulties + task.spec.test_difficulties]
    try:
        rdt_cfg = dataclasses.replace(cfg.model, vocab_size=task.vocab_size, max_seq_len=max(lengths),
                                      causal=task.spec.attention == "causal")
    except ConfigError as e:
        raise ConfigError([f"model.{p}" for p in e.problems]) from None
    plans = [ModelPlan("rdt", "rdt", "rdt", rdt_cfg)]
    problems = []
    for name in cfg.baselines:
        try:
            family, bcfg, role = baseline_registry.build_baseline(name, rdt_cfg)
        except ConfigError as e:
            problems += [f"baselines: {p}" for p in e.problems]
            continue
        plans.append(ModelPlan(name, family, role, bcfg))
    for plan in plans:
        c = plan.config
        if getattr(c, "positional", None) == "none" and not getattr(c, "conv_kernel", 0) and not getattr(
                c, "causal", True):
            where = "model" if plan.role == "rdt" else f"baselines: {plan.name}"
            problems.append(f"{where}: positional 'none' without a convolution reads each instance of the "
                            f"bidirectional task {task.spec.name!r} as a bag of tokens (attention is then "
                            "permutation-equivariant); use rope, learned or model.conv_kernel > 0")
    if problems:
        raise ConfigError(problems)
    return plans
