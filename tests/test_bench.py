"""`mythbench bench`: what it reports (not how fast anything is)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mythbench import RDTConfig
from mythbench.cli import app
from mythbench.core.errors import ConfigError
from mythbench.models.accounting import count_config
from mythbench.training.bench import Variant, format_table, run_bench, variants

CFG = RDTConfig(vocab_size=8, max_seq_len=8, d_model=16, n_heads=2, ffn="moe", n_experts=4, expert_hidden=8,
                train_loops=2)


def test_rows_carry_speed_flops_and_ratios_for_every_variant():
    result = run_bench(CFG, [Variant("rdt"), Variant("rdt", "bf16")], batch=2, seq=8, threads=1, repeats=2,
                       warmup=0)
    fp32, bf16 = result["rows"]
    count = count_config("rdt", CFG, loops=2, context=8)
    assert fp32["params"] == count.params_total
    assert fp32["train"]["flops_per_token"] == count.flops_train
    assert fp32["infer"]["flops_per_token"] == count.flops_forward
    assert fp32["train"]["ratio_to_first"] == 1.0 and fp32["infer"]["ratio_range"] == [1.0, 1.0]
    for row in (fp32, bf16):
        for kind in ("train", "infer"):
            k = row[kind]
            assert k["tok_s"] > 0 and k["flop_s"] == pytest.approx(k["flops_per_token"] * k["tok_s"])
            peak = result["matmul_peak_flop_s"][row["dtype"]]
            assert k["peak_fraction"] == pytest.approx(k["flop_s"] / peak)
    assert fp32["sweep_over_one_pass"] > 0 and bf16["sweep_over_one_pass"] is None  # sweep: fp32 eager only
    table = format_table(result)
    assert "rdt+bf16" in table and "fp32" in table.splitlines()[0]


def test_a_plain_family_is_timed_without_a_loop_sweep():
    """The sweep times the evaluation over loop counts; a standard transformer has none (it was an IndexError)."""
    result = run_bench(CFG, [Variant("rdt"), Variant("standard")], batch=2, seq=8, threads=1, repeats=1, warmup=0)
    rdt, standard = result["rows"]
    assert rdt["sweep_over_one_pass"] > 0 and standard["sweep_over_one_pass"] is None


def test_bad_options_are_reported():
    with pytest.raises(ConfigError, match="fp16"):
        variants(["rdt"], ["fp16"], [False])
    with pytest.raises(ConfigError, match="max_seq_len"):
        run_bench(CFG, [Variant("rdt")], batch=2, seq=9, repeats=1)


def test_cli_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    sets = [a for kv in ["model.d_model=16", "model.n_heads=2", "model.train_loops=2", "model.positional=learned"]
            for a in ("--set", kv)]
    res = CliRunner().invoke(app, ["bench", "parity", *sets, "--batch", "2", "--seq", "8", "--threads", "1",
                                   "--repeats", "1", "--no-sweep", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "train tok/s" in res.output
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["rows"]] == ["rdt"] and data["rows"][0]["sweep_over_one_pass"] is None
    bad = CliRunner().invoke(app, ["bench", "parity", "--compile", "maybe"])
    assert bad.exit_code == 2
