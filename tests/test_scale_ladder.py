"""The ladder issue 31 asks for: a dense looped model whose unique parameters do not depend on r, with r = 1 as
the reference; the gate before any fit; the learning-rate pilot; and a tiny end-to-end dense ladder."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.tasks import get_task
from typer.testing import CliRunner

from mythbench.analysis.ladder import gate, loop_curve
from mythbench.analysis.stats import wilson_interval
from mythbench.cli import app
from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.experiments import scale
from mythbench.experiments.cells import plan_cells
from mythbench.experiments.refit import refit_results
from mythbench.experiments.scale import (
    ladder_order,
    pilot_config,
    pilot_points,
    plan_ladder,
    planned_points,
    point_run_config,
    run_scale,
    width_lr,
)
from mythbench.models.accounting import count_config
from mythbench.results.scale_model import Point
from mythbench.results.schema import check_schema, model_problems
from mythbench.training import harness

LADDER = Path(__file__).resolve().parent.parent / "docs" / "grids" / "zipf-ladder.yaml"
TINY = ["scale.ladder=dense", "scale.widths=[8,16,24,32]", "scale.head_dim=8", "scale.loop_counts=[1,2]",
        "scale.steps=3", "scale.pilot_steps=2", "scale.lr_grid=[1,0.5]", "scale.n_bootstrap=20",
        "train.batch_size=4", "train.warmup_steps=1", "eval.loops_factor=2", "eval.depth_factor=0",
        "eval.train_points=1"]


def _counts(cfg, task) -> dict[str, tuple[int, int, int]]:
    return {plan.name: (lambda a: (a.params_unique, a.params_once, a.params_recurrent))(
        count_config(plan.family, plan.config)) for plan, _, _ in plan_ladder(cfg, task)}


def test_the_dense_ladder_counts_the_same_parameters_at_every_r_and_spans_8x():
    """The committed ladder config: a dense looped model (no MoE, no LoRA) at r = 1, 2, 4, 8 and no separate
    standard transformer (r = 1 is the comparison with the same unique layers); at each width every r has
    the same unique, once and recurrent counts, and the widths span at least 8x in non-embedding N."""
    cfg = resolve_run_config("zipf-hops", "quick", LADDER)
    task = get_task("zipf-hops")
    ladder = plan_ladder(cfg, task)
    assert {plan.family for plan, _, _ in ladder} == {"rdt"} and len(ladder) == 4 * 4
    for plan, _, r in ladder:
        c = plan.config
        assert (c.attention, c.ffn, c.lora_rank, c.injection, c.act, c.train_loops) == ("mha", "dense", 0, "lti",
                                                                                          False, r)
    counts = _counts(cfg, task)
    for w in cfg.scale.widths:
        assert len({counts[f"rdt-w{w}-r{r}"] for r in cfg.scale.loop_counts}) == 1, w
    n = [counts[f"rdt-w{w}-r1"][0] for w in sorted(cfg.scale.widths)]
    assert n == sorted(n) and n[-1] / n[0] >= 8
    assert len(cfg.seeds) == 3 and len(cfg.scale.lr_grid) > 1 and cfg.scale.pilot_steps > 0


@pytest.mark.parametrize(("steps", "warmup", "pilot_steps", "pilot_warmup"),
                         [(600, 60, 150, 15), (600, 50, 150, 12), (600, 70, 150, 18), (10, 9, 4, 3), (3, 1, 2, 1)])
def test_a_pilot_point_trains_pilot_steps_with_the_warmup_scaled_alike_and_short_of_the_last_step(
        steps, warmup, pilot_steps, pilot_warmup):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, f"scale.steps={steps}", f"train.steps={steps}",
                                                       f"train.warmup_steps={warmup}",
                                                       f"scale.pilot_steps={pilot_steps}"])
    pilot = pilot_config(cfg, 16, 0.5)
    point = point_run_config(cfg, 16, 0.5)[0]
    assert (pilot.train.steps, pilot.train.warmup_steps) == (pilot_steps, pilot_warmup)
    assert pilot.model == point.model and pilot.train.lr == point.train.lr


def test_the_planned_points_are_the_pilot_until_it_has_chosen_then_the_ladder(tmp_path, monkeypatch):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    task = get_task("parity")
    pilot = planned_points(cfg, task, tmp_path)  # nothing trained: the pilot's points
    assert [(s, plan.name) for s, plan, _ in pilot] == [(s, plan.name) for s, (plan, *_) in pilot_points(cfg, task)]
    assert {c.train.steps for _, _, c in pilot} == {cfg.scale.pilot_steps}
    chosen = {w: 0.5 for w in cfg.scale.widths}
    monkeypatch.setattr(scale, "pilot_choice", lambda *_: (chosen, []))
    ladder = planned_points(cfg, task, tmp_path)
    assert [(s, plan.name) for s, plan, _ in ladder] == [(s, plan.name) for s, (plan, *_) in
                                                         ladder_order(cfg, task, chosen)]
    assert {c.train.steps for _, _, c in ladder} == {cfg.scale.steps}


def test_a_serial_ladder_trains_the_pilot_then_every_point_at_the_rate_the_pilot_chose(tmp_path, monkeypatch):
    cfg = resolve_run_config("parity", "quick", None, TINY, seeds=[0, 1])
    task = get_task("parity")
    trained = []

    def train_and_evaluate(plan, seed, run_cfg, task_, run_dir):
        assert task_ is task and run_dir == tmp_path
        trained.append((plan.name, seed, run_cfg.train.steps, run_cfg.train.lr))
        return {"result of": plan.name}

    chosen = {8: 0.5, 16: 1, 24: 0.5, 32: 1}
    monkeypatch.setattr(harness, "train_and_evaluate", train_and_evaluate)

    def pilot_choice(cfg_, task_, run_dir):
        assert (cfg_, task_, run_dir) == (cfg, task, tmp_path)
        return chosen, []

    def point(plan, w, r, s, result, wcfg, task_):
        assert task_ is task
        return plan.name, w, r, s, result, wcfg.train.lr

    monkeypatch.setattr(scale, "pilot_choice", pilot_choice)
    monkeypatch.setattr(scale, "_point", point)
    points = scale._train_points(cfg, tmp_path, task)
    pilot = [(plan.name, s, 2, pilot_config(cfg, w, m).train.lr) for s, (plan, w, _, m) in pilot_points(cfg, task)]
    ladder = [(s, plan, w, r, width_lr(cfg, w) * chosen[w]) for s, (plan, w, r, _) in ladder_order(cfg, task, chosen)]
    assert trained == pilot + [(plan.name, s, 3, lr) for s, plan, w, r, lr in ladder]
    assert points == [(plan.name, w, r, s, {"result of": plan.name}, lr) for s, plan, w, r, lr in ladder]


def test_the_rdt_ladder_sizes_its_per_loop_tables_for_the_largest_r():
    """LoRA adapters and router rows of fixed size across r: N at a width does not grow with r (the parity
    ladders' N_rec grew from 1,392 at r = 2 to 3,264 at r = 8, which confounded φ)."""
    cfg = resolve_run_config("parity-biased", "quick", None, ["scale.widths=[8,16,24,32]", "scale.loop_counts=[2,8]"])
    counts = _counts(cfg, get_task("parity-biased"))
    assert counts["rdt-w8-r2"] == counts["rdt-w8-r8"] and counts["standard-w8"][2] == 0


def test_a_dense_ladder_needs_its_reference_point():
    with pytest.raises(ConfigError) as err:
        resolve_run_config("zipf-hops", "quick", None, ["scale.ladder=dense", "scale.loop_counts=[2,4]",
                                                        "scale.pilot_steps=5"])
    problems = " ".join(err.value.problems)
    assert "reference is its r = 1 point" in problems and "pilot chooses among" in problems
    with pytest.raises(ConfigError, match="not one of rdt, dense"):
        resolve_run_config("zipf-hops", "quick", None, ["scale.ladder=moe"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.01, 5.0), min_size=1, max_size=4), min_size=2, max_size=5))
def test_a_width_step_passes_the_gate_exactly_when_it_drops_more_than_two_standard_errors(by_width):
    points = [{"name": f"rdt-w{8 * (i + 1)}-r1", "family": "rdt", "width": 8 * (i + 1), "loops": 1, "seed": s,
               "status": "complete", "loss": 1.0 + v, "validation_loss": 0.5 + v, "loss_floor": 0.5}
              for i, values in enumerate(by_width) for s, v in enumerate(values)]
    checked = gate(points, 1)
    assert checked["loss"] == "validation"
    for step, a, b in zip(checked["steps"], by_width, by_width[1:], strict=False):
        if min(len(a), len(b)) < 2:
            assert step["passed"] is None and checked["passed"] is None
            continue
        se = math.hypot(*(np.std(v, ddof=1) / math.sqrt(len(v)) for v in (a, b)))
        assert step["drop"] == pytest.approx(np.mean(a) - np.mean(b))
        if abs(step["drop"] - 2 * se) > 1e-9:
            assert step["passed"] == (np.mean(a) - np.mean(b) > 2 * se)
    verdicts = [s["passed"] for s in checked["steps"]]
    assert checked["passed"] == (None if None in verdicts else all(verdicts))


def _reference_points(excess_by_width: dict[int, list[float]], key: str = "validation_loss") -> list[dict]:
    """r = 1 reference points with these excess losses above a floor of 0.5 (and a non-reference r = 4 point
    and a diverged one, which the gate leaves out)."""
    points = [{"family": "rdt", "width": w, "loops": 1, "seed": s, "status": "complete", "loss": 9.0,
               key: 0.5 + v, "loss_floor": 0.5} for w, values in excess_by_width.items() for s, v in enumerate(values)]
    return points + [{**points[0], "loops": 4, key: 0.5}, {**points[0], "status": "diverged", key: 0.5}]


def test_the_gate_by_hand():
    """Two seeds per width: w8 at 1.0 and 1.2 (mean 1.1, standard error 0.1), w16 at 0.5 and 0.7 (mean 0.6, 0.1):
    a drop of 0.5 against 2 standard errors of the difference, 2 x 0.1 x sqrt(2) = 0.283."""
    checked = gate(_reference_points({16: [0.5, 0.7], 8: [1.0, 1.2]}), 1)
    assert [(w["width"], w["seeds"]) for w in checked["widths"]] == [(8, 2), (16, 2)]
    assert [w["mean"] for w in checked["widths"]] == pytest.approx([1.1, 0.6])
    assert [w["se"] for w in checked["widths"]] == pytest.approx([0.1, 0.1])
    (step,) = checked["steps"]
    assert (step["from"], step["to"], step["passed"]) == (8, 16, True)
    assert (step["drop"], step["se"]) == (pytest.approx(0.5), pytest.approx(0.1 * math.sqrt(2)))
    assert (checked["reference"], checked["loss"], checked["passed"]) == ("rdt r=1", "validation", True)
    assert checked["summary"] == ("gate passed: the rdt r=1 excess validation loss (L − H) falls by more than 2 "
                                  "standard errors at every width step (w8→w16 drop 0.5 vs 2 SE 0.283)")
    one_seed = gate(_reference_points({8: [1.0, 1.2], 16: [0.6]}, key="loss"), 1)
    assert (one_seed["passed"], one_seed["loss"], one_seed["steps"][0]["se"]) == (None, "test", None)
    assert one_seed["summary"] == ("gate undecided: a width has fewer than two seeds (no standard error); no fit "
                                   "is reported (rdt r=1 excess test loss (L − H): w8→w16 drop 0.5)")
    one_width = gate(_reference_points({8: [1.0, 1.2]}), None)  # no standard transformer at all
    assert one_width["summary"] == ("gate undecided: fewer than two widths; no fit is reported (standard excess "
                                    "test loss (L − H): no step)")


def test_a_test_time_curve_is_fitted_up_to_its_lowest_mean_loss_and_reports_the_rise_after_it():
    """Two seeds whose mean loss falls to T = 6 and rises after it (overthinking): the law is fitted to
    T = 1..6 only, and the rise is reported as the mean loss at the largest T beside the lowest."""
    loops = [1, 2, 4, 6, 8, 12]
    by_seed = [[2.0, 1.5, 1.2, 1.1, 1.3, 1.6], [2.2, 1.7, 1.4, 1.3, 1.5, 1.8]]
    pts = [{"width": 16, "loops": 4, "params": {"unique": 5000}, "loss_by_loops": list(zip(loops, v, strict=True))}
           for v in by_seed]
    curve = loop_curve(pts, n_bootstrap=0)
    assert {k: v for k, v in curve.items() if k != "fit"} == {
        "width": 16, "params": 5000, "train_loops": 4, "fit_loops": [1, 6], "best_loops": 6,
        "loss_best": pytest.approx(1.2), "max_loops": 12, "loss_max_loops": pytest.approx(1.7)}
    assert curve["fit"]["n_points"] == 8  # 4 loop counts x 2 seeds
    early = [{**p, "loss_by_loops": [(t, v if t > 1 else 0.5) for t, v in p["loss_by_loops"]]} for p in pts]
    lowest_first = loop_curve(early, n_bootstrap=0)  # lowest at T = 1: still fitted over the first 3 counts
    assert (lowest_first["best_loops"], lowest_first["fit_loops"]) == (1, [1, 4])
    assert lowest_first["fit"]["n_points"] == 6


def test_the_pilot_comes_first_and_alone(tmp_path):
    """Until every pilot point is trained, the ladder's cells are the pilot's: each width's r = 1 model at every
    multiplier, first seed, trained scale.pilot_steps steps (the ladder's rates depend on their outcome)."""
    cfg = resolve_run_config("zipf-hops", "quick", None, TINY, seeds=[3, 4])
    cells = plan_cells("scale", cfg, tmp_path, get_task("zipf-hops"))
    assert sorted(c.model for c in cells) == sorted(f"pilot-rdt-w{w}-r1-lrx{m}" for w in (8, 16, 24, 32)
                                                    for m in ("1", "0.5"))
    assert {c.seed for c in cells} == {3} and {c.cfg.train.steps for c in cells} == {2}
    assert {c.cfg.train.lr for c in cells if c.model == "pilot-rdt-w16-r1-lrx0.5"} == {width_lr(cfg, 16) * 0.5}


@pytest.mark.slow
def test_a_tiny_dense_ladder_pilots_trains_resumes_and_refits(tmp_path, monkeypatch):
    cfg = resolve_run_config("zipf-hops", "quick", None, TINY, seeds=[0, 1])
    task, run_dir = get_task("zipf-hops"), tmp_path / "ladder"
    results = run_scale(cfg, run_dir, "test")
    assert check_schema(results) == [] and results["scale"]["reference_loops"] == 1
    assert sorted((p["width"], p["loops"], p["seed"]) for p in results["points"]) == sorted(
        (w, r, s) for w in (8, 16, 24, 32) for r in (1, 2) for s in (0, 1))

    def validation(name: str) -> float:  # recomputed from the stored per-seed result
        stored = json.loads((run_dir / "models" / name / "seed0" / "result.json").read_text())
        return float(np.mean([c["loss"] for c in stored["validation"]]))

    for w in cfg.scale.widths:
        best = min(cfg.scale.lr_grid, key=lambda m: validation(f"pilot-rdt-w{w}-r1-lrx{m:g}"))
        assert {p["lr"] for p in results["points"] if p["width"] == w} == {width_lr(cfg, w) * best}
        assert [r["lr"] for r in results["lr_selection"] if r["width"] == w and r["chosen"]] == [
            width_lr(cfg, w) * best]
    assert all(p["loss_floor"] == 0.0 and p["validation_loss"] > 0 for p in results["points"])
    assert {(t["train_loops"], t["width"]) for t in results["fits"]["test_time"]} == {
        (r, w) for r in (1, 2) for w in (8, 16, 24, 32)}
    text = (run_dir / "scale.md").read_text()
    assert text.index("## Excess loss L − H by width") < text.index("![excess loss") < text.index("## Gate")
    assert "A pilot trained each width's reference model 2 steps at each candidate" in text
    assert all((run_dir / f).is_file() for f in ("scaling.png", "test_time.png", "exponents.png"))
    assert len(pilot_points(cfg, task)) == 8 and all(c.done() for c in plan_cells("scale", cfg, run_dir, task))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(harness, "train_model", no_training)
    again = run_scale(cfg, run_dir, "test")
    assert again["points"] == results["points"] and again["fits"] == results["fits"]
    refitted = refit_results([run_dir / "results.json"])
    assert refitted["fits"] == results["fits"] and refitted["notes"] == results["notes"]


@pytest.mark.slow
def test_the_engine_runs_the_pilot_then_the_ladder_it_chose(tmp_path, monkeypatch):
    """On the sweep engine the pilot's cells run first; the engine plans again and runs the ladder's points at
    the rates the pilot chose, and the serial path then finds every point trained."""
    args = ["scale", "zipf-hops", "--backend", "local", "--workers", "2", "--seeds", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args + [arg for s in TINY for arg in ("--set", s)])
    assert result.exit_code == 0, result.output
    engine = json.loads((tmp_path / "results.json").read_text())
    assert len(engine["points"]) == 8 and len(engine["lr_selection"]) == 8

    def no_training(*args, **kwargs):
        raise AssertionError("the serial path trained a point the engine had finished")

    monkeypatch.setattr(harness, "train_model", no_training)
    again = run_scale(resolve_run_config("zipf-hops", "quick", None, TINY, seeds=[0]), tmp_path, "serial")
    assert again["points"] == engine["points"] and again["lr_selection"] == engine["lr_selection"]


@pytest.mark.parametrize("recipe", ["parcae", "huginn", "tied"])
def test_a_points_training_flops_count_the_loops_its_recipe_backpropagates_through(recipe):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "scale.loop_counts=[1,4]"])
    task = get_task("parity")
    plan, width, loops = next((p, w, r) for p, w, r in plan_ladder(cfg, task) if r == 4)
    wcfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, recipe=recipe, bwd_loops=2))
    point = scale._point(plan, width, loops, 0, {"status": "diverged", "train": {"tokens": 1000}, "cells": []},
                         wcfg, task)
    context = round(np.mean([task.seq_len(d) for d in task.spec.train_difficulties]))
    expected = count_config(plan.family, plan.config, grad_loops=None if recipe == "tied" else 2, context=context)
    assert point["flops_train_per_token"] == expected.flops_train
    assert point["train_flops"] == expected.flops_train * 1000


def _cells(difficulties: list[int], loops: list[int | None], n: int = 50) -> list[dict]:
    """Counts that differ at every (difficulty, loops): a point that reads the wrong cell is wrong."""
    return [{"difficulty": d, "loops": t, "loss": 0.01 * d + 0.1 * (t or 0) + 0.05, "correct": (7 * d + (t or 0)) % n,
             "n": n} for t in loops for d in difficulties]


def test_a_point_reads_its_training_loops_scores_the_training_difficulties_and_validates(monkeypatch):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    task = get_task("parity")
    monkeypatch.setattr(task, "loss_floor", lambda d: d / 1000)
    train_d, test_d = [2, 3], [24]
    monkeypatch.setattr(task, "spec", dataclasses.replace(task.spec, train_difficulties=train_d))
    plan, width, loops = next((p, w, r) for p, w, r in plan_ladder(cfg, task) if r == 2)
    wcfg = point_run_config(cfg, width, 0.5)[0]
    train = {"steps": 3, "tokens": 1200, "final_loss": 0.5, "wall_time_s": 1.0}
    cells = _cells(train_d + test_d, [1, 2, 4])
    result = {"status": "complete", "train": train, "cells": cells, "validation": [{"loss": 0.3}, {"loss": 0.5}]}
    point = scale._point(plan, width, loops, 7, result, wcfg, task)
    assert model_problems(Point, point) == []
    acc = count_config(plan.family, plan.config, context=round(np.mean([task.seq_len(d) for d in train_d])))
    cell = {(c["difficulty"], c["loops"]): c for c in cells}
    assert {k: point[k] for k in ("name", "family", "width", "loops", "seed", "status", "n_heads", "tokens", "lr",
                                  "train")} == {
        "name": plan.name, "family": "rdt", "width": width, "loops": 2, "seed": 7, "status": "complete",
        "n_heads": plan.config.n_heads, "tokens": 1200, "lr": wcfg.train.lr, "train": train}
    assert point["params"] == {"unique": acc.params_unique, "once": acc.params_once,
                               "recurrent": acc.params_recurrent}
    assert point["train_flops"] == point["flops_train_per_token"] * 1200 > 0
    assert point["validation_loss"] == pytest.approx(0.4)
    assert point["loss"] == pytest.approx(np.mean([cell[d, 2]["loss"] for d in train_d]))
    assert point["loss_floor"] == pytest.approx(np.mean([d / 1000 for d in train_d]))
    assert point["loss_by_loops"] == [[t, pytest.approx(np.mean([cell[d, t]["loss"] for d in train_d]))]
                                      for t in (1, 2, 4)]
    assert point["accuracy"] == [
        {"difficulty": d, "split": "train" if d in train_d else "test", "accuracy": cell[d, 2]["correct"] / 50,
         **dict(zip(("ci_low", "ci_high"), wilson_interval(cell[d, 2]["correct"], 50), strict=True)),
         "accuracy_max_loops": cell[d, 4]["correct"] / 50} for d in train_d + test_d]

    flat = scale._point(plan, width, None, 0, {**result, "cells": _cells(train_d + test_d, [None])}, wcfg, task)
    assert model_problems(Point, flat) == [] and flat["loss_by_loops"] is None
    assert [a["accuracy"] for a in flat["accuracy"]] == [(7 * d) % 50 / 50 for d in train_d + test_d]
    assert all("accuracy_max_loops" not in a for a in flat["accuracy"])
    for cells_kept in ([], cells):  # a diverged point has no numbers, whatever cells its result holds
        diverged = scale._point(plan, width, loops, 0, {**result, "status": "diverged", "cells": cells_kept}, wcfg,
                                task)
        assert model_problems(Point, diverged) == [] and diverged["loss"] is None and diverged["accuracy"] == []
        assert "validation_loss" not in diverged and diverged["loss_by_loops"] is None
    untrained = scale._point(plan, width, loops, 0, {**result, "cells": _cells(test_d, [1, 2, 4])}, wcfg, task)
    assert untrained["loss"] is None and untrained["loss_by_loops"] is None  # no training difficulty scored
    assert untrained["loss_floor"] == 0.0 and model_problems(Point, untrained) == []


def test_partial_assembles_the_stored_points_at_the_pilots_rates_and_names_the_missing(tmp_path, monkeypatch):
    """--partial trains nothing: it reads every stored point of the ladder the pilot chose, notes the rest by
    name with the code that computed them, and refuses while there is no rate or no point to report."""
    cfg = resolve_run_config("parity", "quick", None, TINY, seeds=[0, 1])
    task = get_task("parity")
    with pytest.raises(ConfigError, match="learning-rate pilot is not finished, so no ladder point has its rate "
                       "yet; nothing to assemble"):
        scale._partial_points(cfg, tmp_path, task)
    chosen = {8: 0.5, 16: 1, 24: 0.5, 32: 1}

    def pilot_choice(cfg_, task_, run_dir):
        assert (cfg_, task_, run_dir) == (cfg, task, tmp_path)
        return chosen, []

    monkeypatch.setattr(scale, "pilot_choice", pilot_choice)
    monkeypatch.setattr(harness, "stored_result", lambda path: {"stored at": path})
    monkeypatch.setattr(scale, "_point", lambda plan, w, r, s, result, wcfg, task_: (plan.name, w, r, s, result,
                                                                                     wcfg.train.lr))
    with pytest.raises(ConfigError, match="no ladder point is trained yet"):
        scale._partial_points(cfg, tmp_path, task)
    ladder = ladder_order(cfg, task, chosen)
    paths = [tmp_path / "models" / plan.name / f"seed{s}" / "result.json" for s, (plan, *_) in ladder]
    for path in paths[:3]:
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    (tmp_path / "code.sha256").write_text("0123456789abcdef" * 4 + "\n")
    points, notes = scale._partial_points(cfg, tmp_path, task)
    assert points == [(plan.name, w, r, s, {"stored at": path}, width_lr(cfg, w) * chosen[w])
                      for (s, (plan, w, r, _)), path in zip(ladder[:3], paths, strict=False)]
    missing = ", ".join(f"{plan.name} seed {s}" for s, (plan, *_) in ladder[3:])
    assert notes == [f"incomplete: 3 of {len(ladder)} points trained, computed by source sha256 0123456789ab…; "
                     f"not trained yet: {missing}; the same command without --partial, from a checkout of that "
                     "code, trains them"]
    (tmp_path / "code.sha256").unlink()
    assert "computed by source sha256 unknown;" in scale._partial_points(cfg, tmp_path, task)[1][0]
    for path in paths[3:]:
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    points, notes = scale._partial_points(cfg, tmp_path, task)
    assert len(points) == len(ladder) and notes == []


def test_the_pilot_chooses_each_widths_multiplier_of_lowest_validation_loss_once_every_pilot_point_is_stored(
        tmp_path, monkeypatch):
    cfg = resolve_run_config("parity", "quick", None, TINY, seeds=[3, 4])
    task = get_task("parity")
    best = {8: 0.5, 16: 1, 24: 0.5, 32: 1}
    loss = {(w, m): 0.2 + w / 100 + (0 if m == best[w] else 0.1) for w in best for m in cfg.scale.lr_grid}
    stored = {}
    for s, (plan, w, _, m) in pilot_points(cfg, task):
        path = tmp_path / "models" / plan.name / f"seed{s}" / "result.json"
        stored[path] = {"status": "complete", "train": {"steps": 2, "tokens": 64, "final_loss": 1.0, "wall_time_s": 1},
                        "cells": _cells(task.spec.train_difficulties, [1]), "validation": [{"loss": loss[w, m]}]}
    monkeypatch.setattr(harness, "stored_result", stored.__getitem__)
    for path in list(stored)[:-1]:
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    assert scale.pilot_choice(cfg, task, tmp_path) == (None, [])  # one pilot point is missing
    last = list(stored)[-1]
    last.parent.mkdir(parents=True)
    last.write_text("{}")
    chosen, table = scale.pilot_choice(cfg, task, tmp_path)
    assert chosen == best
    assert table == [{"family": "rdt", "width": w, "loops": 1, "lr": pytest.approx(width_lr(cfg, w) * m), "seeds": [3],
                      "validation_loss": pytest.approx(loss[w, m]), "chosen": m == best[w]}
                     for w in best for m in sorted(cfg.scale.lr_grid)]
