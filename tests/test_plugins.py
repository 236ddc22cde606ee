"""Model-family plugins: discovery by import path, and OpenMythos (optional package) through the suite.

The OpenMythos tests need `pip install --no-deps open-mythos` and skip cleanly without it."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from mythbench import RDTConfig
from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.models import registry
from mythbench.models.accounting import count_config

HAS_OPEN_MYTHOS = importlib.util.find_spec("open_mythos") is not None
needs_open_mythos = pytest.mark.skipif(not HAS_OPEN_MYTHOS, reason="pip install --no-deps open-mythos")
OM = dict(vocab_size=16, max_seq_len=12, d_model=32, n_heads=2, attention="mla", kv_latent_dim=16,
          q_latent_dim=24, rope_head_dim=8, ffn="moe", n_experts=4, top_k=2, expert_hidden=16, lora_rank=4,
          prelude_layers=1, recurrent_layers=1, coda_layers=1, train_loops=3, init_state="embedding")


def test_a_plugin_named_by_import_path_registers_its_family(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(
        "from mythbench.models.model import RDTConfig, RecurrentDepthTransformer\n"
        "from mythbench.models.registry import ModelFamily, register_family\n"
        "register_family('toy', ModelFamily(RDTConfig.from_dict, RecurrentDepthTransformer, looped=True))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.PLUGIN_ENV, "toy_plugin")
    model, cfg = registry.build_model("toy", {"d_model": 16, "n_heads": 2, "ffn": "moe", "lora_rank": 2})
    assert model.cfg.d_model == 16
    # no analytic count: measured on the meta device, the experts and adapters active in the config's fractions
    assert count_config("toy", cfg) == count_config("rdt", cfg)
    monkeypatch.setenv(registry.PLUGIN_ENV, "no_such_plugin_module")
    with pytest.raises(ConfigError, match="no_such_plugin_module"):
        registry.load_plugins()


def test_openmythos_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    monkeypatch.delitem(sys.modules, "mythbench.baselines.openmythos_model", raising=False)
    with pytest.raises(ConfigError, match="pip install --no-deps open-mythos"):
        registry.build_model("openmythos", OM)


@needs_open_mythos
def test_unsupported_switches_are_listed():
    with pytest.raises(ConfigError) as err:
        registry.build_model("openmythos", {**OM, "recurrent_layers": 2, "init_state": "zeros", "q_latent_dim": 0})
    assert len(err.value.problems) == 3


@needs_open_mythos
@pytest.mark.parametrize("act", [False, True])
def test_loop_sweep_equals_the_packages_own_forward_at_every_loop_count(act):
    """forward_detailed re-runs OpenMythos' loop to keep every readout; it must match the package's forward."""
    torch.manual_seed(0)
    model, _ = registry.build_model("openmythos", {**OM, "act": act, "act_threshold": 0.9})
    with torch.no_grad():  # make ACT halt within the sweep when it is on
        model.recurrent.act.halt.bias.fill_(0.0)
    tokens = torch.randint(0, 16, (3, 12))
    with torch.no_grad():
        sweep = model.forward_detailed(tokens, loops=5, all_loops=True).logits
        for t in range(1, 6):
            torch.testing.assert_close(sweep[t - 1], model(tokens, loops=t), rtol=1e-5, atol=1e-6)


@needs_open_mythos
def test_truncated_backprop_leaves_early_loops_without_gradient():
    torch.manual_seed(0)
    model, _ = registry.build_model("openmythos", OM)
    out = model.forward_detailed(torch.randint(0, 16, (2, 12)), loops=4, grad_loops=1)
    out.logits.square().mean().backward()
    assert model.recurrent.lora.B.grad is not None
    assert model.recurrent.lora.scale.weight.grad[:3].abs().sum() == 0  # loops 0-2 ran without gradient
    assert model.recurrent.lora.scale.weight.grad[3].abs().sum() > 0


@needs_open_mythos
def test_accounting_counts_openmythos_routed_experts_as_sparse():
    c = count_config("openmythos", RDTConfig(**OM))
    routed = 4 * 3 * 32 * 16  # 4 experts, each three 32 x 16 matrices; top 2 of 4 active
    assert c.params_unique - c.params_active == routed // 2
    assert c.params_recurrent > 0 and c.flops_forward > 0


@needs_open_mythos
@pytest.mark.slow
def test_mythbench_run_trains_and_evaluates_openmythos(tmp_path):
    from mythbench.training import harness

    cfg = resolve_run_config("parity", "quick", None, [
        "model.d_model=16", "model.n_heads=2", "model.train_loops=2", "train.steps=6", "train.batch_size=4",
        "train.warmup_steps=1", "eval.loops_factor=2", "eval.depth_factor=0", "models=[rdt, openmythos]", "twins=[]"])
    results = harness.run_benchmark(cfg, tmp_path / "run", "test")
    om = next(m for m in results["models"] if m["name"] == "openmythos")
    assert om["family"] == "openmythos" and om["runs"][0]["status"] == "complete"
    assert {c["loops"] for c in om["runs"][0]["cells"]} == {1, 2, 3, 4}
