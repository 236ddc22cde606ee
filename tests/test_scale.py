"""`mythbench scale` / `mythbench fit`: ladder shapes, the fits on data with a known answer, input checks, and a
tiny end-to-end ladder that is resumable and refits to the same numbers."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.baselines.standard import as_standard
from mythbench.tasks import get_task
from typer.testing import CliRunner

from mythbench.analysis.ladder import compute_fits, gate, ladder_notes
from mythbench.cli import app
from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_json
from mythbench.experiments import refit as refit_module
from mythbench.experiments import scale
from mythbench.experiments.cells import plan_cells
from mythbench.experiments.refit import load_scale_results, refit, refit_results
from mythbench.experiments.scale import (
    grid_ladder,
    plan_ladder,
    point_run_config,
    run_scale,
    select_lr,
    width_config,
    width_lr,
)
from mythbench.models.accounting import count_config
from mythbench.models.model import RDTConfig
from mythbench.results.schema import check_schema
from mythbench.training import harness

TINY = ["scale.widths=[8,16,24,32,40]", "scale.head_dim=8", "scale.steps=6", "scale.loop_counts=[1,2]",
        "scale.n_bootstrap=20", "scale.lr_width_exponent=1", "train.batch_size=8", "train.warmup_steps=2",
        "eval.loops_factor=2", "eval.depth_factor=0", "eval.train_points=2"]
E, A, ALPHA, PHI, ONCE = 0.2, 20.0, 0.4, 0.5, 0.3  # the synthetic laws: rdt N_eq/N = ONCE + (1-ONCE)*r^PHI


@settings(max_examples=30, deadline=None)
@given(mult=st.integers(1, 16), head_dim=st.sampled_from([4, 8, 16]), loops=st.integers(1, 8),
       attention=st.sampled_from(["mha", "gqa", "mla"]))
def test_every_width_gives_a_valid_config_with_heads_from_head_dim(mult, head_dim, loops, attention):
    base = RDTConfig(d_model=64, n_heads=4, n_kv_heads=2, attention=attention, ffn="moe")
    cfg = width_config(base, mult * head_dim, head_dim, loops, 8)
    assert cfg.n_heads == mult and cfg.d_model // cfg.n_heads == head_dim
    assert cfg.ffn_hidden % 2 == 0 and cfg.expert_hidden % 2 == 0 and min(cfg.ffn_hidden, cfg.expert_hidden) >= 2
    assert cfg.train_loops == loops and cfg.lora_max_loops == cfg.router_max_loops == 8


def test_the_ladder_pairs_each_rdt_with_a_standard_model_of_its_distinct_layers():
    cfg = resolve_run_config("parity", "quick")
    ladder = plan_ladder(cfg, get_task("parity"))
    assert len(ladder) == len(cfg.scale.widths) * (1 + len(cfg.scale.loop_counts))
    by_name = {plan.name: (plan, w, r) for plan, w, r in ladder}
    for w in cfg.scale.widths:
        std = by_name[f"standard-w{w}"][0].config
        for r in cfg.scale.loop_counts:
            rdt = by_name[f"rdt-w{w}-r{r}"][0].config
            assert rdt.train_loops == r and rdt.d_model == std.d_model == w
            layers = (rdt.prelude_layers, rdt.recurrent_layers, rdt.coda_layers)
            assert (std.prelude_layers, std.recurrent_layers, std.coda_layers) == layers
            assert std == as_standard(std, *layers)  # neutral loop switches: what as_standard makes
    counts = [count_config("standard", by_name[f"standard-w{w}"][0].config).params_unique
              for w in sorted(cfg.scale.widths)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_points_train_with_scale_steps_and_loops_that_are_r():
    cfg = resolve_run_config("parity", "quick", None, ["scale.steps=50"])
    assert cfg.train.recipe == "tied"
    pcfg, notes = point_run_config(cfg)
    assert pcfg.train.steps == 50 and 0 <= pcfg.train.warmup_steps < 50 and pcfg.train.recipe == "fixed"
    assert len(notes) == 2
    with pytest.raises(ConfigError, match="scale.steps"):
        resolve_run_config("parity", "quick", None, ["scale.steps=-1"])


def test_each_point_trains_at_its_widths_learning_rate_on_both_paths(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, ["scale.widths=[16,24,32,48,64]", "scale.lr_width_exponent=1"])
    lr = cfg.train.lr
    assert [width_lr(cfg, w) for w in (16, 32, 64)] == pytest.approx([lr, lr / 2, lr / 4])
    assert point_run_config(cfg)[0].train.lr == lr  # the ladder's base config keeps train.lr
    assert point_run_config(cfg, 64)[0].train.lr == pytest.approx(lr / 4)
    note = point_run_config(cfg)[1][-1]
    assert "scale.lr_width_exponent" in note and all(f"w{w} " in note for w in cfg.scale.widths)
    cells = plan_cells("scale", cfg, tmp_path, get_task("parity"))  # the sweep engine's cells
    assert len(cells) == 5 * (1 + len(cfg.scale.loop_counts))
    for cell in cells:
        assert cell.cfg.train.lr == pytest.approx(lr * 16 / cell.plan.config.d_model), cell.model
        assert cell.result_path.parent.parent.parent.parent == tmp_path  # the cell writes into this run
    flat = resolve_run_config("parity", "quick", None, ["scale.widths=[16,24,32,48,64]"])
    assert {c.cfg.train.lr for c in plan_cells("scale", flat, tmp_path, get_task("parity"))} == {flat.train.lr}
    assert not any("lr_width_exponent" in n for n in point_run_config(flat)[1])
    with pytest.raises(ConfigError, match="scale.lr_width_exponent"):
        resolve_run_config("parity", "quick", None, ["scale.lr_width_exponent=-1"])


def _synthetic(seed: int = 0, loops: tuple[int, ...] = (1, 2, 4), diverged: bool = False, floor: float = 0.0,
               seeds: tuple[int, ...] = (0, 1)) -> dict:
    """A scale results document whose excess losses L − H follow known laws with 1% noise, at every seed;
    H = `floor`, the task's exact floor, is added to every loss."""
    rng = np.random.default_rng(seed)
    law = lambda n: floor + (E + A * n ** -ALPHA) * float(np.exp(rng.normal(0, 0.01)))  # noqa: E731
    points = []
    for w, s in itertools.product((8, 16, 24, 32, 48, 64), seeds):
        n = 60 * w * w
        points.append({"name": f"standard-w{w}", "family": "standard", "width": w, "loops": None, "seed": s,
                       "status": "complete", "params": {"unique": n, "once": n, "recurrent": 0},
                       "train_flops": 6.0 * n * 1000, "loss": law(n), "loss_floor": floor, "loss_by_loops": None,
                       "accuracy": []})
        for r in loops:
            once, rec = round(ONCE * n), n - round(ONCE * n)
            loss = law(once + r**PHI * rec)
            curve = [[t, loss * (1 + 0.5 * np.exp(-t)) / (1 + 0.5 * np.exp(-r))] for t in range(1, 2 * r + 3)]
            points.append({"name": f"rdt-w{w}-r{r}", "family": "rdt", "width": w, "loops": r, "seed": s,
                           "status": "complete", "params": {"unique": n, "once": once, "recurrent": rec},
                           "train_flops": (6.0 * once + 6.0 * r * rec) * 1000, "loss": loss, "loss_floor": floor,
                           "loss_by_loops": curve,
                           "accuracy": [{"difficulty": 16, "split": "train", "accuracy": 0.5,
                                         "ci_low": 0.4, "ci_high": 0.6}]})
    if diverged:
        points.append({**points[-1], "seed": len(seeds), "status": "diverged", "loss": None, "loss_by_loops": None})
    return {"schema_version": 1, "kind": "scale", "preset": "quick", "command": "synthetic",
            "seeds": list(range(len(seeds) + diverged)),
            "task": {"name": "parity", "version": 1, "fingerprint": "0" * 64, "train_difficulties": [2, 16],
                     "test_difficulties": [32]},
            "scale": {"headline_loops": max(loops), "n_bootstrap": 20, "level": 0.95,
                      "train": {"steps": 10, "batch_size": 4}},
            "points": points, "notes": []}


def test_fits_recover_the_known_ratio_and_phi_and_skip_diverged_points(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, _synthetic(diverged=True))
    out = refit_results([path])
    tok = out["fits"]["matched_tokens"]
    expected = ONCE + (1 - ONCE) * 4**PHI  # 1.7: the standard size worth one RDT parameter at r = 4
    ratios = [row["ratio"] for row in tok["equivalence"]]
    assert len(ratios) == 6 and np.allclose(ratios, expected, rtol=0.1), ratios
    assert tok["loop_worth"]["params"]["phi"] == pytest.approx(PHI, abs=0.08)
    assert tok["families"]["rdt"]["n_points"] == 12  # the diverged copy of the largest RDT is left out
    assert any("diverged" in n and "rdt-w64-r4 seed 2" in n for n in out["notes"])
    assert out["fits"]["matched_flops"]["comparison"] == "matched-FLOPs"
    curves = out["fits"]["test_time"]  # one per training loop count and width, each falling to its last T
    assert sorted((t["train_loops"], t["width"], t["best_loops"]) for t in curves) == [
        (r, w, 2 * r + 2) for r in (1, 2, 4) for w in (8, 16, 24, 32, 48, 64)]
    text = refit([path])
    assert "EXTRAPOLATION" in text and "Matched training FLOPs" in text and "φ" in text


def test_a_refit_states_how_the_points_trained_from_the_files_config(tmp_path):
    """The recipe notes are rebuilt from the stored config (a file without one has none), before the fit's."""
    bare, configured = tmp_path / "bare.json", tmp_path / "configured.json"
    atomic_write_json(bare, _synthetic())
    atomic_write_json(configured, {**_synthetic(), "config": {"task": "parity", "scale": {"steps": 10}}})
    notes = refit_results([configured])["notes"]
    assert notes[0] == "every point trains 10 steps (scale.steps; warmup 1)"
    assert notes[1:] == refit_results([bare])["notes"]


@pytest.mark.parametrize("reference", [None, 1])
def test_a_refit_pools_the_files_points_and_fits_them_as_the_ladder_did(tmp_path, reference):
    """Two files of one ladder (seed 0 in one, seed 1 in the other): every point, the fits and notes of the
    stored scale section (its bootstrap count, headline and reference loop counts), and where they came from."""
    doc = _synthetic()
    doc["scale"] |= {"n_bootstrap": 7, "headline_loops": 2, "reference_loops": reference}
    paths = [tmp_path / "seed0.json", tmp_path / "seed1.json"]
    for path, seed in zip(paths, (0, 1), strict=True):
        atomic_write_json(path, {**doc, "points": [p for p in doc["points"] if p["seed"] == seed]})
    points = [p for seed in (0, 1) for p in doc["points"] if p["seed"] == seed]
    out = refit_results(paths)
    assert out["points"] == points and out["scale"] == doc["scale"]
    assert out["fits"] == compute_fits(points, 7, 2, reference)
    assert out["notes"] == [*ladder_notes(points, 2, reference), f"points pooled from 2 files: {paths[0]}, {paths[1]}"]
    seed0 = [p for p in points if p["seed"] == 0]
    assert refit_results(paths[:1])["notes"] == ladder_notes(seed0, 2, reference)  # one file: nothing pooled


@pytest.mark.parametrize(("reference", "label"), [(None, "standard"), (1, "rdt r=1")])
def test_the_ladder_notes_name_the_reference_law_every_point_left_out_and_the_gate(reference, label):
    points = _synthetic(diverged=True)["points"]
    points[0]["loss"] = None  # complete, but without a loss: left out too
    assert ladder_notes(points, 4, reference) == [
        "fits are of the excess loss L − H (H: the task's exact per-token floor, each point's loss_floor); N_eq is "
        f"counted in the {label} law; the RDT law and both comparisons use the RDT at r = 4 training loops (the "
        "largest of scale.loop_counts)",
        "the 'L(T)' rows of the matched-token fits are loss against *training* loops at fixed N (points of the loop "
        "sweep); the test-time curves against *inference* loops are the separate table",
        "diverged, recorded and excluded from every fit: standard-w8 seed 0, rdt-w64-r4 seed 2",
        gate(points, reference)["summary"]]
    assert label in gate(points, reference)["summary"]


def test_the_fits_are_of_the_loss_above_the_tasks_floor(tmp_path):
    """A known floor H under every loss: the fitted irreducible term is the excess E, not E + H, and N_eq/N is
    that of the excess laws (the reference law's E absorbing H would move the N_eq where the RDT's loss is)."""
    path = tmp_path / "results.json"
    atomic_write_json(path, _synthetic(floor=0.7))
    tok = refit_results([path])["fits"]["matched_tokens"]
    assert tok["families"]["standard"]["params"]["E"] == pytest.approx(E, rel=0.15)
    assert tok["loop_worth"]["params"]["E"] == pytest.approx(E, rel=0.15)
    doc = _synthetic(floor=0.7)
    doc["points"][0]["loss"] = 0.7  # at the floor: no logarithm of its excess
    fits = compute_fits(doc["points"], 20, 4)
    assert any("standard-w8 seed 0: loss 0.7 is not above the task's floor" in e
               for e in fits["matched_tokens"]["error"])


def test_the_gate_withholds_every_fit_where_the_reference_loss_does_not_fall_with_width(tmp_path):
    """The report leads with the gate (the fits mean nothing otherwise), names every failed width step, and
    states the points' summed training time beside the wall time of the command that assembled them."""
    doc = _synthetic()
    assert gate(doc["points"], None)["passed"] is True
    for p in doc["points"]:
        p["train"] = {"wall_time_s": 2.0}
        if p["name"] in ("standard-w24", "standard-w48"):
            p["loss"] = 1.0 + 0.01 * p["seed"]  # above every narrower width's loss
    path = tmp_path / "results.json"
    atomic_write_json(path, doc)
    checked = gate(doc["points"], None)
    assert checked["passed"] is False and checked["loss"] == "test"  # no validation losses in this file
    assert [(s["from"], s["to"]) for s in checked["steps"] if not s["passed"]] == [(16, 24), (32, 48)]
    assert "gate FAILED at w16→w24, w32→w48" in checked["summary"]
    out = refit_results([path])
    assert checked["summary"] in out["notes"] and out["fits"]["gate"] == checked
    for key in ("matched_tokens", "matched_flops"):
        assert out["fits"][key]["error"][0] == f"withheld: {checked['summary']}"
    assert len(out["fits"]["test_time"]) == 18  # the test-time curves do not rest on the width law
    text = refit([path])
    assert text.index("FAILED") < text.index("## Headline")
    assert "| 24 | 34,560 | 1.005 ± 0.005 |" in text
    assert f"summed over them, wherever and whenever they ran: {2 * len(doc['points'])} s)" in text


def test_refit_lists_every_problem_with_its_file(tmp_path):
    run_kind = tmp_path / "run.json"
    atomic_write_json(run_kind, {"schema_version": 1, "kind": "run", "models": []})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    no_points = tmp_path / "nopoints.json"
    atomic_write_json(no_points, {**_synthetic(), "points": [{"family": "rdt"}]})
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError) as err:
        refit([run_kind, broken, no_points, missing])
    problems = err.value.problems
    for path, what in ((run_kind, "not 'scale'"), (broken, ""), (no_points, "missing name"),
                       (missing, "no such file")):
        assert any(str(path) in p and what in p for p in problems), (path, problems)
    assert f"{run_kind}: kind is 'run', not 'scale' (a results file of `mythbench scale`)" in problems
    array, odd = tmp_path / "array.json", tmp_path / "odd.json"
    array.write_text("[]")
    odd.write_text(json.dumps({**_synthetic(), "schema_version": 2}).replace('"preset"', '"x": 1e999, "preset"'))
    with pytest.raises(ConfigError) as err:
        refit([array, odd])
    assert err.value.problems[:3] == [f"{array}: expected a JSON object, got list",
                                      f"{odd}: x: inf is not allowed; every number must be finite",
                                      f"{odd}: schema_version 2 is not 1"]
    result = CliRunner().invoke(app, ["fit", str(missing)])
    assert result.exit_code == 2 and "no such file" in result.output


def test_refit_refuses_to_pool_files_of_different_token_budgets(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    atomic_write_json(a, _synthetic())
    other = _synthetic(seed=1)
    other["scale"]["train"] = {"steps": 20, "batch_size": 4}
    atomic_write_json(b, other)
    with pytest.raises(ConfigError, match="token budget"):
        refit([a, b])


_BARE_POINT = {"name": "x", "family": "rdt", "width": 8, "loops": 1, "seed": 0, "status": "complete",
               "params": {"unique": 1, "once": 1, "recurrent": 0}, "train_flops": 1.0, "loss": 1.0}


@pytest.mark.parametrize(("change", "problem"), [
    ({"scale": {"headline_loops": 4.0, "n_bootstrap": 20}}, "scale.headline_loops and scale.n_bootstrap must be "
                                                             "integers"),
    ({"scale": []}, "scale.headline_loops and scale.n_bootstrap must be integers"),
    ({"task": {"name": "parity", "version": 1}}, "task must name name, version and fingerprint"),
    ({"task": "parity"}, "task must name name, version and fingerprint"),
    ({"points": []}, "points must be a non-empty list"),
    ({"points": {}}, "points must be a non-empty list"),
    ({"points": [{"family": "rdt"}]}, "points[0]: missing name, width, loops, seed, status, params, train_flops, "
                                      "loss"),
    ({"points": [_BARE_POINT | {"params": {"unique": 1, "once": 1}}]},
     "points[0].params must hold unique, once and recurrent"),
    ({"points": [_BARE_POINT]}, "points[0]: an rdt point needs loss_by_loops"),
])
def test_a_scale_file_that_cannot_be_refitted_is_told_why(tmp_path, change, problem):
    path = tmp_path / "results.json"
    atomic_write_json(path, _synthetic() | change)
    with pytest.raises(ConfigError) as err:
        load_scale_results([path])
    assert err.value.problems == [f"{path}: {problem}"]


def test_every_file_of_a_refit_is_checked_and_each_difference_named(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        load_scale_results([])
    assert err.value.problems == ["no results files given"]
    first, unreadable, missing, other = (tmp_path / f"{n}.json" for n in ("first", "eio", "missing", "other"))
    atomic_write_json(first, _synthetic())
    unreadable.write_text("{}")
    read = refit_module.read_json_file

    def failing_disk(path):
        if path == unreadable:
            raise OSError(errno.EIO, "Input/output error")
        return read(path)

    monkeypatch.setattr(refit_module, "read_json_file", failing_disk)
    doc = _synthetic(seed=1)
    doc["task"] |= {"name": "state", "version": 9, "fingerprint": "1" * 64}
    doc["scale"] |= {"train": {"steps": 20}, "reference_loops": 1}
    atomic_write_json(other, doc)
    with pytest.raises(ConfigError) as err:
        load_scale_results([first, unreadable, missing, other])
    assert err.value.problems[:2] == [f"{unreadable}: cannot read (Input/output error)", f"{missing}: no such file"]
    with pytest.raises(ConfigError) as err:
        load_scale_results([first, other])
    assert err.value.problems == [f"{other}: {what} differs from {first}'s; their points cannot share a fit" for what in
                                  ("task", "task version", "test-set fingerprint", "training config (token budget)",
                                   "reference model (the standard or r = 1)")]


@pytest.mark.parametrize(("config_a", "config_b", "pooled"), [
    (None, {"scale": {"lr_width_exponent": 0.0}}, True),  # a file from before the key: one lr for every width
    (None, {"scale": {"lr_width_exponent": 1.0}}, False),
    ({"scale": {"lr_width_exponent": 1.0}}, {"scale": {"lr_width_exponent": 1.0}}, True),
    ({"scale": {"lr_width_exponent": 0.5}}, {"scale": {}}, False),
    ("not a config", {"scale": {"lr_width_exponent": 0.5}}, False),
    ({"scale": "not a section"}, {"scale": {"lr_width_exponent": 0.0}}, True),
    ({"scale": {}}, {"scale": {"lr_width_exponent": 0.0}}, True),  # a section from before the key
])
def test_refit_pools_only_files_of_the_same_learning_rate_rule(tmp_path, config_a, config_b, pooled):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, config, seed in zip(paths, (config_a, config_b), (0, 1), strict=True):
        doc = _synthetic(seed=seed)
        if config is not None:
            doc["config"] = config
        atomic_write_json(path, doc)
    if pooled:
        assert [d["task"]["name"] for d in load_scale_results(paths)] == ["parity", "parity"]
        return
    with pytest.raises(ConfigError) as err:
        load_scale_results(paths)
    assert err.value.problems == [f"{paths[1]}: scale.lr_width_exponent differs from {paths[0]}'s (another learning "
                                  "rate per width); their points cannot share a fit"]


def test_cli_scale_reports_bad_config_without_training(tmp_path):
    result = CliRunner().invoke(app, ["scale", "parity", "--out", str(tmp_path / "x"),
                                      "--set", "scale.widths=[8,16]", "--set", "scale.head_dim=3"])
    assert result.exit_code == 2
    assert "at least 4 distinct widths" in result.output and "multiple of scale.head_dim" in result.output
    assert not (tmp_path / "x").exists()


def _candidate(family: str, width: int, lr: float, seed: int, value: float | None) -> dict:
    return {"name": f"{family}-w{width}-lr{lr}", "family": family, "width": width,
            "loops": 2 if family == "rdt" else None, "lr": lr, "seed": seed,
            "status": "diverged" if value is None else "complete",
            **({} if value is None else {"validation_loss": value})}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n_lr=st.integers(2, 4), n_seeds=st.integers(1, 3))
def test_the_reported_learning_rate_has_the_lowest_seed_mean_validation_loss(data, n_lr, n_seeds):
    grid = [1.0, 0.5, 0.25, 0.125][:n_lr]
    value = st.one_of(st.none(), st.floats(1e-4, 2.0))
    points = [_candidate(f, w, lr, s, data.draw(value)) for f in ("standard", "rdt") for w in (16, 32)
              for lr in grid for s in range(n_seeds)]
    dropped = data.draw(st.sampled_from([None, *range(len(points))]))  # an interrupted ladder misses a point
    if dropped is not None:
        points.pop(dropped)
    chosen, table = select_lr(points, grid)
    assert len(table) == len({(p["family"], p["width"], p["lr"]) for p in points})
    for f, w in ((f, w) for f in ("standard", "rdt") for w in (16, 32)):
        rows = [r for r in table if (r["family"], r["width"]) == (f, w)]
        group = [p for p in points if (p["family"], p["width"]) == (f, w)]
        seeds = set.intersection(*({p["seed"] for p in group if p["lr"] == lr} for lr in grid))
        picked = [r["lr"] for r in rows if r["chosen"]]
        if not seeds:  # a candidate missing, or none with a seed in common: not comparable yet
            assert not picked and not [p for p in chosen if (p["family"], p["width"]) == (f, w)]
            continue
        mean = {lr: np.mean([p.get("validation_loss", np.inf) for p in group if p["lr"] == lr and p["seed"] in seeds])
                for lr in grid}
        assert len(picked) == 1 and mean[picked[0]] == min(mean.values())
        assert [p for p in chosen if (p["family"], p["width"]) == (f, w)] == [p for p in group if p["lr"] == picked[0]]
        for r in rows:
            assert r["validation_loss"] == (mean[r["lr"]] if np.isfinite(mean[r["lr"]]) else None)
    assert select_lr(points, [1.0]) == (points, [])


@pytest.mark.slow
def test_tiny_ladder_end_to_end_resumes_and_refits_to_the_same_numbers(tmp_path, monkeypatch):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    run_dir = tmp_path / "scale"
    first = run_scale(cfg, run_dir, "test")
    for name in ("results.json", "scale.md", "scaling.png", "test_time.png", "exponents.png", "config.yaml",
                 "models/rdt-w40-r2/seed0/result.json", "models/standard-w8/seed0/model.safetensors"):
        assert (run_dir / name).is_file(), name
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["kind"] == "scale" and stored["task"]["fingerprint"] and stored["seeds"] == [0]
    for key in ("schema_version", "mythbench_version", "git", "command", "created_at", "wall_time_s", "status",
                "preset", "config", "environment", "points", "fits"):
        assert key in stored, key
    assert len(stored["points"]) == 5 * 3
    assert {p["loops"] for p in stored["points"]} == {None, 1, 2}
    rdt = next(p for p in stored["points"] if p["name"] == "rdt-w16-r2")
    assert [t for t, _ in rdt["loss_by_loops"]] == [1, 2, 3, 4] and rdt["loss"] > 0
    assert rdt["params"]["unique"] == rdt["params"]["once"] + rdt["params"]["recurrent"]
    std = next(p for p in stored["points"] if p["name"] == "standard-w16")
    assert std["tokens"] == rdt["tokens"] > 0  # the same data for both families
    assert {p["name"]: p["lr"] for p in stored["points"] if p["width"] == 32} == pytest.approx(
        {"standard-w32": cfg.train.lr / 4, "rdt-w32-r1": cfg.train.lr / 4, "rdt-w32-r2": cfg.train.lr / 4})
    assert "matched-tokens" in (run_dir / "scale.md").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(harness, "train_model", no_training)
    second = run_scale(cfg, run_dir, "test")
    assert second["points"] == first["points"] and second["fits"] == first["fits"]
    refitted = refit_results([run_dir / "results.json"])
    assert refitted["fits"] == stored["fits"] and refitted["notes"] == stored["notes"]
    assert compute_fits(stored["points"], 20, 2) == stored["fits"]
    result = CliRunner().invoke(app, ["fit", str(run_dir / "results.json")])
    assert result.exit_code == 0 and "Headline" in result.output

    # An interrupted ladder, prepared by other code: --partial reports the stored points, trains nothing
    # and claims nothing.
    for name in ("standard-w40", "rdt-w40-r2"):
        (run_dir / "models" / name / "seed0" / "result.json").unlink()
    (run_dir / "code.sha256").write_text("0" * 64 + "\n")
    args = ["scale", "parity", "--out", str(run_dir), "--partial", *[a for s in TINY for a in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    partial = json.loads((run_dir / "results.json").read_text())
    assert partial["status"] == "incomplete" and len(partial["points"]) == 13
    assert partial["points"] == [p for p in first["points"] if p["name"] not in ("standard-w40", "rdt-w40-r2")]
    assert any("not trained yet: standard-w40 seed 0, rdt-w40-r2 seed 0" in n and "000000000000" in n
               for n in partial["notes"])
    assert check_schema(partial) == []
    assert (run_dir / "code.sha256").read_text() == "0" * 64 + "\n"


@pytest.mark.slow
def test_a_ladder_with_a_learning_rate_grid_reports_the_rate_of_lowest_validation_loss(tmp_path):
    grid = [s for s in TINY if not s.startswith("scale.loop_counts")] + ["scale.loop_counts=[1]",
                                                                         "scale.lr_grid=[1,0.5]"]
    cfg = resolve_run_config("parity", "quick", None, grid, seeds=[0, 1])
    run_dir = tmp_path / "grid"
    results = run_scale(cfg, run_dir, "test")
    assert check_schema(results) == [] and len(results["lr_selection"]) == 5 * 2 * 2

    def validation(name: str, seed: int) -> float:  # recomputed from the stored per-seed result
        stored = json.loads((run_dir / "models" / name / f"seed{seed}" / "result.json").read_text())
        return float(np.mean([c["loss"] for c in stored["validation"]]))

    for family, w in ((f, w) for f in ("standard", "rdt") for w in cfg.scale.widths):
        stem = f"standard-w{w}" if family == "standard" else f"rdt-w{w}-r1"
        mean = {m: np.mean([validation(f"{stem}-lrx{m:g}", s) for s in (0, 1)]) for m in (1, 0.5)}
        best = min(mean, key=mean.get)
        lr = width_lr(cfg, w) * best
        rows = [r for r in results["lr_selection"] if (r["family"], r["width"]) == (family, w)]
        assert [r["lr"] for r in rows if r["chosen"]] == pytest.approx([lr])
        assert {(p["name"], p["seed"]) for p in results["points"] if p["width"] == w and p["family"] == family} == {
            (f"{stem}-lrx{best:g}", 0), (f"{stem}-lrx{best:g}", 1)}
    assert all(p["validation_loss"] > 0 for p in results["points"])
    assert "Learning rate chosen on the validation split" in (run_dir / "scale.md").read_text()
    refitted = refit_results([run_dir / "results.json"])
    assert refitted["lr_selection"] == results["lr_selection"] and refitted["fits"] == results["fits"]


def test_partial_refuses_a_grid_ladder_with_no_group_whose_candidates_are_all_trained(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "scale.lr_grid=[1,0.5]"])
    harness.prepare_run_dir(tmp_path, cfg)
    plan, width, _, lr_scale = next(p for p in grid_ladder(cfg, get_task("parity")) if p[0].family == "standard")
    harness.train_and_evaluate(plan, 0, point_run_config(cfg, width, lr_scale)[0], get_task("parity"), tmp_path)
    with pytest.raises(ConfigError, match="at every candidate rate"):
        run_scale(cfg, tmp_path, "test", train=False)
    assert not (tmp_path / "results.json").exists()


def test_partial_refuses_a_directory_without_a_ladder_and_a_backend(tmp_path):
    args = ["scale", "parity", "--out", str(tmp_path / "none"), "--partial", *[a for s in TINY for a in ("--set", s)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "holds no ladder" in result.output
    assert not (tmp_path / "none").exists()
    result = CliRunner().invoke(app, [*args, "--backend", "local"])
    assert result.exit_code == 2 and "takes no --backend" in result.output


def test_a_changed_ladder_does_not_mix_into_an_existing_scale_dir(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    harness.prepare_run_dir(tmp_path, cfg)
    other = dataclasses.replace(cfg, scale=dataclasses.replace(cfg.scale, widths=[8, 16, 24, 32, 48]))
    with pytest.raises(ConfigError, match="different config"):
        run_scale(other, tmp_path, "test")


@pytest.mark.parametrize(("base", "width", "expected"), [
    # 9 heads: kv heads round(2 * 9 / 4) = 4 does not divide 9, so 3; f = 2.25: FFN 172 -> 2 * round(193.5) = 388,
    # experts 86 -> 2 * round(96.75) = 194, latents 24 -> 54 and 20 -> 45
    ({"attention": "gqa", "n_kv_heads": 2, "kv_latent_dim": 24, "q_latent_dim": 20}, 144, (9, 3, 388, 194, 54, 45)),
    # f = 0.5: round(0.5) = 0 kv heads is raised to 1; FFN 86, experts 2 * round(21.5) = 44; latents 2 -> 1
    ({"attention": "gqa", "n_kv_heads": 1, "kv_latent_dim": 2, "q_latent_dim": 2}, 32, (2, 1, 86, 44, 1, 1)),
    # MHA keeps its n_kv_heads field; no query latent (0) stays none
    ({"attention": "mha", "n_kv_heads": 4, "kv_latent_dim": 24, "q_latent_dim": 0}, 96, (6, 4, 258, 128, 36, 0)),
])
def test_a_width_scales_heads_ffn_and_latent_widths_as_computed_by_hand(base, width, expected):
    cfg = width_config(RDTConfig(d_model=64, n_heads=4, ffn="moe", ffn_hidden=172, expert_hidden=86, **base),
                       width, 16, 3, 8)
    assert (cfg.n_heads, cfg.n_kv_heads, cfg.ffn_hidden, cfg.expert_hidden, cfg.kv_latent_dim,
            cfg.q_latent_dim) == expected


def test_the_ladder_names_every_width_it_cannot_build(monkeypatch):
    cfg = resolve_run_config("parity", "quick")
    bad = [min(cfg.scale.widths), max(cfg.scale.widths)]

    def width_config_(base, w, *args):
        if w in bad:
            raise ConfigError([f"first at {w}", f"second at {w}"])
        return width_config(base, w, *args)

    monkeypatch.setattr(scale, "width_config", width_config_)
    with pytest.raises(ConfigError) as err:
        plan_ladder(cfg, get_task("parity"))
    assert err.value.problems == [f"scale.widths: width {w}: {n} at {w}" for w in bad for n in ("first", "second")]


def test_a_grid_of_one_multiplier_keeps_the_names_and_a_longer_grid_names_each():
    task = get_task("parity")
    one = resolve_run_config("parity", "quick", None, ["scale.lr_grid=[0.5]"])
    names = [plan.name for plan, _, _ in plan_ladder(one, task)]
    assert [(plan.name, m) for plan, _, _, m in grid_ladder(one, task)] == [(n, 0.5) for n in names]
    two = resolve_run_config("parity", "quick", None, ["scale.lr_grid=[1,0.5]"])
    assert [(plan.name, m) for plan, _, _, m in grid_ladder(two, task)] == [
        (f"{n}-lrx{m:g}", m) for n in names for m in (1, 0.5)]
    assert {plan.role for plan, *_ in grid_ladder(two, task)} == {"scale"}


def test_a_points_config_states_every_change_it_makes_in_the_notes():
    dense = resolve_run_config("parity", "quick", None, ["scale.ladder=dense", "scale.pilot_steps=2",
                                                         "scale.lr_grid=[1,0.5]", "scale.lr_width_exponent=1",
                                                         "scale.steps=10"], seeds=[3, 4])
    assert point_run_config(dense)[1] == [
        "every point trains 10 steps (scale.steps; warmup 1)",
        "the task's `tied` recipe is replaced by `fixed` (r loops at every step), so that r in the loop sweep is the "
        "number of loops each looped model trained with",
        "dense ladder: the RDT's layers with attention=mha, ffn=dense, injection=lti, lora_rank=0, act=False; its "
        "unique parameters are the same at every r, and r = 1 is the reference N_eq is counted in",
        "learning rate per width, train.lr x (min width / width)^1 (scale.lr_width_exponent), the same for every "
        "model: w16 0.003, w24 0.002, w32 0.0015, w40 0.0012, w48 0.001",
        "learning-rate pilot: each width's reference model trained 2 steps (seed 3) at each multiplier of "
        "scale.lr_grid (1, 0.5); the one of lowest loss on the task's validation split trains every point of that "
        "width (table `lr_selection`)"]
    grid = resolve_run_config("parity", "quick", None, ["scale.lr_grid=[1,0.5]"])
    assert point_run_config(grid)[1][-1] == (
        "every point trains at each learning-rate multiplier of scale.lr_grid (1, 0.5); per family, width and loop "
        "count the one of lowest seed-mean loss on the task's validation split is reported and fitted (table "
        "`lr_selection`), so no choice reads the test instances a point's loss comes from")
    for recipe in ("fixed", "progressive"):  # these train at r loops already
        kept = resolve_run_config("parity", "quick", None, [f"train.recipe={recipe}"])
        pcfg, notes = point_run_config(kept)
        assert pcfg.train.recipe == recipe and not any("is replaced by" in n for n in notes)


def test_candidates_with_no_seed_in_common_score_infinity_and_none_is_chosen():
    points = [_candidate("rdt", 16, 1.0, 0, 0.5), _candidate("rdt", 16, 0.5, 1, 0.4)]
    best, seeds, score = scale.lowest_validation(points, lambda p: p["width"], lambda p: p["lr"], 2)[16]
    assert best is None and seeds == [] and score == {1.0: np.inf, 0.5: np.inf}


def test_the_learning_rate_table_lists_standard_first_then_by_loops_width_and_rate():
    points = [{**_candidate(f, w, lr, s, 1.0 + lr), "loops": r} for f, r in (("rdt", 2), ("rdt", 1), ("standard", None))
              for w in (32, 16) for lr in (1.0, 0.5) for s in (0, 1)]
    table = select_lr(points, [1.0, 0.5])[1]
    assert [(t["family"], t["loops"], t["width"], t["lr"]) for t in table] == [
        (f, r, w, lr) for f, r in (("standard", None), ("rdt", 1), ("rdt", 2)) for w in (16, 32) for lr in (0.5, 1.0)]
    assert all(t["seeds"] == [0, 1] and t["chosen"] == (t["lr"] == 0.5) for t in table)
