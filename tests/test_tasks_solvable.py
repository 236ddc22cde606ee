"""Every task is solvable by construction: the architectures can tell apart any two scored positions
whose targets differ, and no test instance holds a token that training never shows.

The first property catches a whole class of format defects. Version 1 of parity had no BOS: a causal
model gives every position of a leading run of equal bits the same hidden state whatever its weights or
positional scheme (each attends over identical values), so "1 1 ..." instances were unsolvable and every
model was capped near 75% exact match. `test_the_check_catches_the_old_parity_format` shows the check
fails on that format.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mythbench.baselines.standard import as_standard
from mythbench.baselines.standard_model import StandardTransformer
from mythbench.tasks import Task, get_task, list_tasks

from mythbench.core.errors import ConfigError
from mythbench.models.model import RDTConfig, RecurrentDepthTransformer

PER_DIFFICULTY = 3
SAME = 1e-6  # outputs closer than this are identical: equal-by-construction ones differ by < 1e-7 (the RDT
# keeps its state and LTI injection in fp32), distinguishable ones here by more than 1e-2


def build(family: str, task: Task, positional: str) -> torch.nn.Module:
    """A randomly initialised float64 model of the suite's architecture (MLA, MoE, LTI, LoRA) at tiny width;
    positional "conv" is no positions plus a short convolution in every block (the positive control's)."""
    conv_kernel = 3 if positional == "conv" else 0
    positional = "none" if positional == "conv" else positional
    lengths = [task.seq_len(d) for d in task.spec.train_difficulties + task.spec.test_difficulties]
    cfg = RDTConfig(vocab_size=task.vocab_size, max_seq_len=max(lengths), d_model=16, n_heads=2,
                    attention="mla", kv_latent_dim=8, rope_head_dim=4, ffn="moe", n_experts=4, top_k=2,
                    expert_hidden=16, lora_rank=2, positional=positional, conv_kernel=conv_kernel, train_loops=3,
                    causal=task.spec.attention == "causal", init_std=0.5)
    model = RecurrentDepthTransformer(cfg) if family == "rdt" else StandardTransformer(as_standard(cfg, 1, 2, 1))
    return model.double().eval()


def indistinguishable_pairs(outputs: torch.Tensor, targets: torch.Tensor) -> int:
    """Pairs of scored positions with different targets but (numerically) identical outputs."""
    distance = torch.cdist(outputs[None], outputs[None])[0]
    differ = targets[:, None] != targets[None, :]
    return int((differ & (distance < SAME)).sum()) // 2


def scored_outputs(model: torch.nn.Module, tokens: np.ndarray, targets: np.ndarray,
                   mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model(torch.as_tensor(tokens), loops=3)
    scored = torch.as_tensor(mask)
    return logits[scored].double(), torch.as_tensor(targets)[scored]


@pytest.mark.parametrize("positional", ["rope", "learned", "none", "conv"])
@pytest.mark.parametrize("family", ["rdt", "standard"])
@pytest.mark.parametrize("name", list_tasks())
def test_scored_positions_with_different_targets_get_different_outputs(name, family, positional):
    task = get_task(name)
    if positional == "none" and task.spec.attention == "bidirectional":
        pytest.skip("bidirectional attention without positions reads a bag of tokens; the harness refuses it")
    torch.manual_seed(0)
    model = build(family, task, positional)
    outputs, targets = [], []
    for d in sorted(set(task.spec.train_difficulties) | set(task.spec.test_difficulties)):
        for split in ("train", "test"):
            batch = task.generate(split, d, PER_DIFFICULTY, seed=1)
            out, tgt = scored_outputs(model, batch.tokens, batch.targets, batch.mask)
            outputs.append(out)
            targets.append(tgt)
    assert indistinguishable_pairs(torch.cat(outputs), torch.cat(targets)) == 0


def test_the_check_catches_the_old_parity_format():
    """Parity v1 (no BOS): instances starting "1 1" give positions 1 and 2 identical outputs, targets 1, 0."""
    task = get_task("parity")
    rng = np.random.default_rng(0)
    body = task.family.sample_body(rng, 8, 64)  # the instance without the BOS that v2 puts in front
    torch.manual_seed(0)
    for family in ("rdt", "standard"):
        model = build(family, task, "rope")
        outputs, targets = scored_outputs(model, body.tokens, body.targets, body.mask)
        assert indistinguishable_pairs(outputs, targets) > 0
        with_bos = body.prefixed(task.family.id("<bos>"))
        outputs, targets = scored_outputs(model, with_bos.tokens, with_bos.targets, with_bos.mask)
        assert indistinguishable_pairs(outputs, targets) == 0


@pytest.mark.parametrize("name", list_tasks())
def test_every_test_token_occurs_in_training(name):
    """No test batch holds a token id that training batches never show (khop v1's k tokens above 4 did)."""
    task = get_task(name)
    seen: set[int] = set()
    for i, d in enumerate(task.spec.train_difficulties):
        seen |= set(np.unique(task.generate("train", d, 256, seed=i).tokens).tolist())
    for d in task.spec.test_difficulties:
        unseen = set(np.unique(task.test_batch(d).tokens).tolist()) - seen
        assert not unseen, f"{name} d={d}: test tokens never in training: {task.decode(sorted(unseen))}"


def test_the_unseen_token_check_catches_khop_v1():
    """khop v1 trained k = 1..4 and tested k up to 16: the k tokens of the test set were never trained."""
    task = get_task("khop")
    train = {int(t) for d in (1, 2, 3, 4) for t in np.unique(task.generate("train", d, 64, 0).tokens)}
    test = set(np.unique(task.generate("test", 8, 64, 0).tokens).tolist())
    assert task.decode(sorted(test - train)) == ["k8"]


def test_no_positions_with_bidirectional_attention_is_refused():
    from mythbench.config import resolve_run_config
    from mythbench.training.harness import plan_models

    cfg = resolve_run_config("chain", overrides=["model.positional=none"])
    with pytest.raises(ConfigError, match="bidirectional"):
        plan_models(cfg, get_task("chain"))
