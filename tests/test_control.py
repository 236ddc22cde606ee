"""The positive control: its short convolution reads exactly its kernel's neighbours with the same weights
at every position, and its config differs from the RDT under test only where it says."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.tasks import get_task

from mythbench import baselines
from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.models import baseline_registry
from mythbench.models.layers import ShortConv
from mythbench.models.model import RDTConfig
from mythbench.training.harness import plan_models


@settings(max_examples=40, deadline=None)
@given(kernel=st.integers(1, 5), causal=st.booleans(), j=st.integers(0, 11), seed=st.integers(0, 2**16))
def test_a_position_changes_exactly_the_outputs_its_kernel_covers(kernel, causal, j, seed):
    torch.manual_seed(seed)
    conv = ShortConv(RDTConfig(d_model=8, n_heads=2, conv_kernel=kernel, causal=causal, init_std=0.5)).double()
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    moved = x.clone()
    moved[0, j] += 1.0
    changed = (conv(x) - conv(moved)).abs().amax(-1)[0] > 1e-12
    lo, hi = (j, j + kernel - 1) if causal else (j - kernel // 2, j + (kernel - 1) // 2)
    assert changed.nonzero().flatten().tolist() == [i for i in range(12) if lo <= i <= hi]


def test_the_convolution_is_the_same_at_every_position():
    torch.manual_seed(0)
    conv = ShortConv(RDTConfig(d_model=8, n_heads=2, conv_kernel=3)).double()
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    shifted = torch.cat([torch.randn(1, 5, 8, dtype=torch.float64), x], dim=1)
    torch.testing.assert_close(conv(shifted)[:, 5 + 2:], conv(x)[:, 2:])  # away from the zero padding


def test_the_control_differs_from_the_rdt_only_in_its_declared_fields():
    rdt = RDTConfig(attention="mla", ffn="moe", lora_rank=4, act=True, d_model=32, n_heads=4, train_loops=7)
    family, control, role = baseline_registry.looped_model("control", rdt)
    assert (family, role) == ("rdt", "control")
    differ = {f.name for f in dataclasses.fields(rdt) if getattr(rdt, f.name) != getattr(control, f.name)}
    assert differ == set(baselines.CONTROL)
    assert all(getattr(control, k) == v for k, v in baselines.CONTROL.items())


def test_no_positions_on_a_bidirectional_task_needs_the_convolution(monkeypatch):
    task = get_task("graph")
    monkeypatch.setitem(baseline_registry._MODELS, "no-pos", baseline_registry.LoopedModel(
        "rdt", "ablation:no-pos", "test only", lambda c: dataclasses.replace(c, positional="none")))
    with pytest.raises(ConfigError, match="models: no-pos") as err:
        plan_models(resolve_run_config("graph", overrides=["models=[control, no-pos]"]), task)
    assert "control" not in str(err.value)
    names = [p.name for p in plan_models(resolve_run_config("graph", overrides=["models=[control]"]), task)]
    assert names == ["control", "control-iso-param", "control-iso-flop"]


def test_the_controls_twins_are_built_from_the_control_not_from_the_rdt():
    plans = {p.name: p for p in plan_models(resolve_run_config("parity"), get_task("parity"))}
    assert [p.twin_of for p in plans.values()] == [None, "rdt", "rdt", None, "control", "control"]
    for kind in ("iso-param", "iso-flop"):
        twin, control = plans[f"control-{kind}"].config, plans["control"].config
        assert (twin.attention, twin.ffn, twin.positional, twin.conv_kernel) == ("mha", "dense", "none", 3)
        assert {k: getattr(twin, k) for k in baselines.CONTROL if k not in ("lora_rank", "act")} == {
            k: getattr(control, k) for k in baselines.CONTROL if k not in ("lora_rank", "act")}
        assert plans[f"rdt-{kind}"].config.attention == "mla"
