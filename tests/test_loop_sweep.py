"""Evaluation's loop sweep: RecurrentDepthTransformer.sweep_loops and its exact fixed-point shortcut, and
evaluate_looped against a straightforward reference that runs the model once per loop count."""

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mythbench import RDTConfig, RecurrentDepthTransformer
from mythbench.config import EvalConfig
from mythbench.models.model import RDTOutput
from mythbench.training.evaluate import evaluate_looped, evaluate_plain, sweep_max_loops

LOOPS = 16  # more than the ~12 loops `model_for`'s models take to reach a fixed point in fp32


def tiny(**kw) -> RDTConfig:
    base = dict(vocab_size=11, d_model=16, n_heads=2, n_kv_heads=1, ffn_hidden=32, n_experts=4, top_k=2,
                expert_hidden=8, kv_latent_dim=8, rope_head_dim=4, train_loops=3, lora_max_loops=4,
                router_max_loops=4)  # fmt: skip
    base.update(kw)
    return RDTConfig(**base)


def tokens(batch: int = 4, seq: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 11, (batch, seq), generator=torch.Generator().manual_seed(seed))


def model_for(case: str) -> RecurrentDepthTransformer:
    """A random model whose per-loop parts (LoRA adapters, router loop embeddings, ACT) are off init, and
    which reaches a fixed point within LOOPS: a strongly contracting injection (Ā = e^-3 instead of the
    init's e^-0.5: 10-12 loops instead of ~40) and small LoRA weights (at 5x these the state of the moe-lora
    model settles into a 2-cycle). With ACT its state stops moving at loop ~9 and its positions halt at
    loops 5 to 13: the readouts of loops 10-13 still change, so the shortcut must wait for ACT."""
    torch.manual_seed(0)
    model = RecurrentDepthTransformer(tiny(**CASES[case])).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.injection.A_log.fill_(math.log(3.0))
        for name, p in model.named_parameters():
            if name.startswith("lora.") or "router_loop" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.01)
        if model.act is not None:
            model.act.weight.copy_(torch.randn(model.act.weight.shape, generator=g) * 5)
            model.act.bias.fill_(-1.75)
    return model


CASES = {"moe-lora": {"ffn": "moe", "lora_rank": 2}, "act": {"act": True}, "dense": {"ffn": "dense"}}


@pytest.mark.parametrize("case", CASES)
def test_sweep_equals_a_run_of_every_loop_count_bit_for_bit(case):
    model, x = model_for(case), tokens()
    with torch.inference_mode():
        sweep = model.sweep_loops(x, LOOPS)
        full = model.forward_detailed(x, loops=LOOPS)
        for t in range(1, LOOPS + 1):
            assert torch.equal(sweep.logits[t - 1], model(x, loops=t)), f"loop {t}"
    assert sweep.loops_run < LOOPS  # the shortcut was taken: the test covers it
    for name in ("seq_state_change", "state_change", "halt_steps", "expert_load", "aux_loss", "ponder_cost"):
        a, b = getattr(sweep, name), getattr(full, name)
        assert (a is None and b is None) or torch.equal(a, b), name
    if model.act is not None:  # meaningful only if positions halt at different loops
        assert len(full.halt_steps.unique()) > 1


def stalled_until_last_loop_index(component: str) -> RecurrentDepthTransformer:
    """A model whose state does not move at loops 0-2 and moves from loop 3 on (the last per-loop index):
    the recurrent block adds nothing except through the part that `component` selects by loop index."""
    torch.manual_seed(0)
    cfg = tiny(injection="none", init_state="embedding", ffn="moe" if component == "router" else "dense",
               lora_rank=2 if component == "lora" else 0, n_shared_experts=0)
    model = RecurrentDepthTransformer(cfg).eval()
    with torch.no_grad():
        for block in model.recurrent:
            block.attn.o.weight.zero_()
            if component == "lora":  # only the last adapter writes to the residual stream
                model.lora[0].B["o"].zero_()
                model.lora[0].B["o"][3].normal_()
                block.ffn.down.weight.zero_()
            else:  # experts 0 and 1 write nothing; the balance bias picks them at loops 0-2, 2 and 3 after
                block.ffn.experts.w_down[:2].zero_()
                block.ffn.expert_bias.copy_(torch.tensor([[1e4, 1e4, 0, 0]] * 3 + [[0, 0, 1e4, 1e4]]))
    return model


@pytest.mark.parametrize("component", ["lora", "router"])
def test_no_shortcut_while_the_loop_step_still_depends_on_the_loop_index(component):
    """The state at loop 1 is a fixed point of loops 0-2 only: stopping there would repeat loop 1's
    readout for every later loop count."""
    model, x = stalled_until_last_loop_index(component), tokens()
    with torch.inference_mode():
        sweep = model.sweep_loops(x, 8)
        assert torch.equal(sweep.logits[1], sweep.logits[0])  # stalled ...
        assert not torch.equal(sweep.logits[7], sweep.logits[0])  # ... then moved
        for t in range(1, 9):
            assert torch.equal(sweep.logits[t - 1], model(x, loops=t)), f"loop {t}"


@pytest.mark.parametrize(("component", "loops_run"), [("dense", 1), ("lora", 3), ("router", 5)])
def test_the_shortcut_is_taken_at_the_first_loop_whose_step_no_longer_depends_on_its_index(component, loops_run):
    """A state that never moves: the sweep stops after loop 0, or with per-loop parts after the last loop
    that has its own (the last adapter of 3, the last router entry of 5), since only from there on is the
    step one function of the state."""
    torch.manual_seed(0)
    model = RecurrentDepthTransformer(tiny(injection="none", init_state="embedding", n_shared_experts=0,
                                           ffn="moe" if component == "router" else "dense",
                                           lora_rank=2 if component == "lora" else 0,
                                           lora_max_loops=3, router_max_loops=5)).eval()
    with torch.no_grad():  # the recurrent block writes nothing to the residual stream
        for block in model.recurrent:
            block.attn.o.weight.zero_()
            if component == "router":
                block.ffn.experts.w_down.zero_()
            else:
                block.ffn.down.weight.zero_()
        if model.lora is not None:
            for adapters in model.lora:
                adapters.B["o"].zero_()
    assert model.sweep_loops(tokens(), 8).loops_run == loops_run


class PerLoopCount(torch.nn.Module):
    """The straightforward reference: the model run once for every loop count 1..T (no sweep_loops, so
    evaluation calls forward_detailed), the statistics from the run of T loops."""

    def __init__(self, model: RecurrentDepthTransformer):
        super().__init__()
        self.model, self.cfg = model, model.cfg

    def forward_detailed(self, tokens: torch.Tensor, loops: int, all_loops: bool) -> RDTOutput:
        assert all_loops
        out = self.model.forward_detailed(tokens, loops=loops)
        out.logits = torch.stack([self.model(tokens, loops=t) for t in range(1, loops + 1)])
        return out


@pytest.mark.parametrize("case", CASES)
def test_evaluation_equals_the_per_loop_count_reference_exactly(case):
    model = model_for(case)
    x = tokens(batch=12, seq=9, seed=3)
    targets = torch.randint(0, 11, x.shape, generator=torch.Generator().manual_seed(4)).numpy()
    mask = np.random.default_rng(5).random(x.shape) < 0.6
    batches = {7: (x.numpy(), targets, mask), 9: (x[:, :6].numpy(), targets[:, :6], mask[:, :6])}
    cfg = EvalConfig(chunk_size=5)  # several chunks, the last one short
    assert model.sweep_loops(x[:5], LOOPS).loops_run < LOOPS  # the shortcut is taken
    fast = evaluate_looped(model, batches.get, [7, 9], LOOPS, cfg)
    reference = evaluate_looped(PerLoopCount(model), batches.get, [7, 9], LOOPS, cfg)
    assert fast == reference


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, shown", [(Terminal, True), (io.StringIO, False)])
def test_progress_goes_to_stderr_only_on_a_terminal(monkeypatch, stream, shown):
    stderr = stream()
    monkeypatch.setattr("sys.stderr", stderr)
    x = tokens(batch=6)
    batches = lambda d: (x.numpy(), x.numpy(), np.ones(x.shape, dtype=bool))  # noqa: E731
    evaluate_plain(model_for("dense"), batches, [1, 2], EvalConfig(chunk_size=4), desc="eval parity:rdt:s0")
    assert ("eval parity:rdt:s0" in stderr.getvalue()) == shown


@given(st.integers(1, 64), st.integers(1, 256), st.integers(1, 8), st.floats(0, 4, allow_subnormal=False))
def test_the_sweep_reaches_both_of_its_bounds_and_no_further(train_loops, depth, loops_factor, depth_factor):
    """The largest loop count is the smallest integer at least loops_factor x train_loops and depth_factor x the
    hardest test depth."""
    top = sweep_max_loops(train_loops, depth, EvalConfig(loops_factor=loops_factor, depth_factor=depth_factor))
    assert top >= loops_factor * train_loops and top >= depth_factor * depth
    assert top - 1 < loops_factor * train_loops or top - 1 < depth_factor * depth


def test_the_counts_do_not_depend_on_how_a_batch_is_chunked():
    """Every count, the early-exit rules' included, is summed over the chunks: one chunk or three agree."""
    model = model_for("dense")
    x = tokens(batch=12, seq=9, seed=3)
    with torch.no_grad():
        targets = model(x, loops=LOOPS).argmax(-1)
    targets[::3, 4] = (targets[::3, 4] + 1) % 11  # a third of the sequences wrong at one position
    batches = {7: (x.numpy(), targets.numpy(), np.ones(x.shape, dtype=bool))}
    whole = evaluate_looped(model, batches.get, [7], LOOPS, EvalConfig(chunk_size=12))
    chunked = evaluate_looped(model, batches.get, [7], LOOPS, EvalConfig(chunk_size=5))
    counts = lambda cells: [{k: v for k, v in c.items() if k != "loss"} for c in cells]  # noqa: E731
    assert counts(whole["cells"]) == counts(chunked["cells"]) and whole["early_exit"] == chunked["early_exit"]
    assert [c["loss"] for c in whole["cells"]] == pytest.approx([c["loss"] for c in chunked["cells"]], rel=1e-6)
    assert {e["rule"]: e["correct"] for e in whole["early_exit"]} == {"kl": 8, "confidence": 8, "delta_h": 8}
