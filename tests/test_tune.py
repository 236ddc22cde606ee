"""`mythbench tune` and `mythbench run --tuned`: one declared space searched alike for every model, chosen on
the validation split, the test split never read; the run trains each model with its own choice."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.tasks import get_task
from mythbench.tasks.task import Task
from typer.testing import CliRunner

import mythbench
from mythbench.config import RECIPE_KEYS, TrainConfig, resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.experiments import tune
from mythbench.experiments.backends import InProcessBackend
from mythbench.experiments.sweep import CellsFailed
from mythbench.reports.compare import model_rows
from mythbench.training import harness
from mythbench.training.trial import ForbiddenSplitRead, ValidationView, validation_fingerprint
from mythbench.training.tuned import apply_tuning

TINY = ["model.d_model=16", "model.n_heads=2", "model.ffn_hidden=32", "model.train_loops=2", "train.steps=12",
        "train.batch_size=8", "train.warmup_steps=2", "train.checkpoint_every=4", "eval.loops_factor=2",
        "eval.depth_factor=0", "eval.train_points=2", "models=[rdt]", "twins=[iso-param]", "tune.lr_grid=[1,2]",
        "tune.recipes=[tied,tied-progressive]", "tune.steps=6"]


def _cfg(*extra: str, task: str = "parity"):
    return resolve_run_config(task, "quick", None, [*TINY, *extra])


@pytest.fixture
def no_test_split(monkeypatch):
    """Task.generate raises on the test split or a test-only difficulty: what tuning must never ask for."""
    original = Task.generate

    def guarded(self, split, difficulty, n, seed):
        if split == "test" or difficulty not in self.spec.train_difficulties:
            raise AssertionError(f"tuning read {split} at difficulty {difficulty}")
        return original(self, split, difficulty, n, seed)

    monkeypatch.setattr(Task, "generate", guarded)


@pytest.fixture
def tuned_dir(tmp_path, no_test_split) -> Path:
    tune.run_tune(_cfg(), tmp_path / "tune", "test", InProcessBackend())
    return tmp_path / "tune"


@settings(max_examples=40, deadline=None)
@given(grid=st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]), min_size=1, max_size=4, unique=True),
       recipes=st.lists(st.sampled_from(["parcae", "tied", "tied-progressive"]), max_size=3, unique=True),
       data=st.data())
def test_the_search_is_a_declared_set_of_distinct_points_fixed_by_its_seed(grid, recipes, data):
    size = len(grid) * max(1, len(recipes))
    trials, seed = data.draw(st.integers(0, size)), data.draw(st.integers(0, 2**31 - 1))
    cfg = _cfg(f"tune.lr_grid={grid}", f"tune.recipes={json.dumps(recipes)}", f"tune.trials={trials}",
               f"tune.search_seed={seed}")
    points = tune.search_points(cfg)
    keys = [(p["lr_scale"], p["recipe"]) for p in points]
    assert len(points) == (trials or size) and len(set(keys)) == len(keys)
    assert set(keys) <= {(m, r) for m in grid for r in (recipes or [None])}
    assert [p["trial"] for p in points] == list(range(len(points)))
    assert all(p["lr"] == cfg.train.lr * p["lr_scale"] for p in points)
    assert tune.search_points(cfg) == points


@given(bundle=st.fixed_dictionaries({}, optional={"recipe": st.sampled_from(["fixed", "parcae", "tied"]),
                                                  "progressive_alpha": st.floats(0, 1),
                                                  "bwd_loops": st.integers(1, 8)}))
def test_a_recipe_replaces_the_whole_recipe_and_nothing_else(bundle):
    """The task's own progressive term (parity's) must not leak into a recipe that leaves it out."""
    base = _cfg().train
    assert base.progressive
    trained = base.with_recipe(bundle)
    for key in RECIPE_KEYS:
        assert getattr(trained, key) == bundle.get(key, getattr(TrainConfig(), key))
    rest = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RECIPE_KEYS]
    assert all(getattr(trained, k) == getattr(base, k) for k in rest)


def test_bad_tuning_config_names_every_problem():
    with pytest.raises(ConfigError) as err:
        _cfg("tune.recipes=[tied,nope]", "recipes.fast={recipe: tied, steps: 5}", "recipes.bad={progressive_alpha: 3}",
             "tune.use=x.json", "tune.lr_grid=[1,1]", "tune.trials=99")
    text = "\n".join(err.value.problems)
    for fragment in ("'nope' is not a named recipe", "recipes.fast: steps not recipe keys",
                     "recipes.bad: train.progressive_alpha", "tune.use and tune.use_sha256", "tune.lr_grid",
                     "tune.trials: 99"):
        assert fragment in text


def test_the_validation_view_refuses_the_test_split_and_test_difficulties():
    task = get_task("parity")
    view = ValidationView(task)
    train_d, test_d = task.spec.train_difficulties[-1], task.spec.test_difficulties[-1]
    assert view.validation_batch(train_d).tokens.shape[0] == task.spec.examples["test"]
    for split, d in (("test", train_d), ("validation", test_d), ("train", test_d)):
        with pytest.raises(ForbiddenSplitRead):
            view.generate(split, d, 4, 0)
    with pytest.raises(ForbiddenSplitRead):
        view.validation_batch(test_d)
    assert not hasattr(view, "test_batch") and not hasattr(view, "fingerprint")


def test_every_model_gets_the_same_trials_and_the_lowest_validation_loss_is_chosen(tuned_dir):
    """Not marked slow (a few seconds): the one in-process search, so mutation runs reach tune.py through it."""
    doc = json.loads((tuned_dir / "tune.json").read_text())
    assert doc["kind"] == "tune" and doc["status"] == "complete"
    # provenance, as in a results file
    assert set(doc) == {"schema_version", "kind", "mythbench_version", "git", "command", "created_at", "wall_time_s",
                        "status", "preset", "config", "code_sha256", "task", "environment", "search", "models"}
    assert (doc["schema_version"], doc["mythbench_version"], doc["command"], doc["git"]) == (
        tune.TUNE_SCHEMA_VERSION, mythbench.__version__, "test", harness.git_state())
    created = datetime.strptime(doc["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(0) <= datetime.now(timezone.utc) - created < timedelta(minutes=10)
    assert isinstance(doc["wall_time_s"], float) and 0 < doc["wall_time_s"] < 600
    assert round(doc["wall_time_s"], 3) == doc["wall_time_s"]
    task = get_task("parity")
    assert doc["task"] == {"name": "parity", "version": task.spec.version,
                           "train_difficulties": task.spec.train_difficulties, "validation_difficulties": [2, 16],
                           "validation_fingerprint": validation_fingerprint(ValidationView(task), [2, 16])}
    assert [m["name"] for m in doc["models"]] == ["rdt", "rdt-iso-param"]
    points = [(p["lr"], p["recipe"]) for p in doc["search"]["points"]]
    cfg = _cfg()
    assert {k: v for k, v in doc["search"].items() if k != "points"} == {
        "steps": 6, "seeds": [0], "search_seed": cfg.tune.search_seed, "criterion": tune.CRITERION,
        "recipes": {"tied": cfg.recipes["tied"], "tied-progressive": cfg.recipes["tied-progressive"]}}
    assert len(points) == 4 and doc["search"]["steps"] == 6
    for model in doc["models"]:
        assert [(t["lr"], t["recipe"]) for t in model["trials"]] == points  # the same trials, in the same order
        # the twin trains alike under tied and tied-progressive (loop keys only): one cell per rate
        shared = [t.get("same_as") for t in model["trials"]]
        assert shared == ([None] * 4 if model["name"] == "rdt" else [None, None, 0, 1])
        for t in model["trials"]:
            if t.get("same_as") is not None:
                assert t["validation"] == model["trials"][t["same_as"]]["validation"]
        assert all(t["status"] == "complete" and t["validation"] for t in model["trials"])
        for t in model["trials"]:  # scored at training difficulties only
            assert {c["difficulty"] for c in t["validation"]} <= set(doc["task"]["train_difficulties"])
            assert t["validation_loss"] == pytest.approx(np.mean([c["loss"] for c in t["validation"]]))
            assert t["validation_accuracy"] == pytest.approx(np.mean([c["correct"] / c["n"] for c in t["validation"]]))
            stored = json.loads((tuned_dir / "models" / f"{model['name']}.t{t.get('same_as', t['trial'])}" / "seed0"
                                 / "result.json").read_text())
            assert t["final_train_loss"] == stored["train"]["final_loss"]
        best = min(model["trials"], key=lambda t: t["validation_loss"])
        assert model["chosen"]["trial"] == best["trial"] and model["chosen"]["lr"] == best["lr"]
        assert model["chosen"]["recipe"] == best["recipe"] and model["chosen"]["seeds"] == [0]
        assert set(model) == {"name", "family", "role", "model_config", "trials", "chosen"}
        assert set(model["chosen"]) == {"trial", "lr", "recipe", "train", "seeds", "validation_loss"}
        assert model["chosen"]["validation_loss"] == best["validation_loss"]
    assert doc["task"]["validation_difficulties"] == [2, 16]  # eval.train_points=2: the ends of parity's 2..16
    assert doc["code_sha256"] == harness.code_fingerprint()
    assert sorted(p.name for p in (tuned_dir / "models").iterdir()) == [
        "rdt-iso-param.t0", "rdt-iso-param.t1", "rdt.t0", "rdt.t1", "rdt.t2", "rdt.t3"]
    # what a run reads of it: each model's architecture, and the choice it then trains with
    path = tuned_dir / "tune.json"
    cfg = _cfg(f"tune.use={path}", f"tune.use_sha256={hashlib.sha256(path.read_bytes()).hexdigest()}")
    plans = harness.plan_models(cfg, get_task("parity"))
    assert [(m["family"], m["role"]) for m in doc["models"]] == [(p.family, p.role) for p in plans]
    configs, _ = apply_tuning(cfg, plans)
    for model in doc["models"]:
        point = doc["search"]["points"][model["chosen"]["trial"]]
        expected = tune.trial_config(_cfg(), point).train
        trained = configs[model["name"]].train
        assert trained.lr == model["chosen"]["lr"] == expected.lr
        assert {k: getattr(trained, k) for k in RECIPE_KEYS} == {k: getattr(expected, k) for k in RECIPE_KEYS}


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(recipes=st.lists(st.sampled_from(["parcae", "tied", "tied-progressive-half", "tied-progressive"]),
                        min_size=2, max_size=2, unique=True))
def test_a_model_without_loops_trains_alike_under_recipes_that_differ_in_loop_keys_only(tmp_path_factory,
                                                                                        recipes):
    """The premise of sharing a twin's trials: loop-only keys leave its training bit-identical."""
    cfg = _cfg()
    task = get_task("parity")
    twin = harness.plan_models(cfg, task)[1]
    assert twin.twin_of == "rdt" and tune.trained_alike(twin, cfg.train.with_recipe(cfg.recipes[recipes[0]])) \
        == tune.trained_alike(twin, cfg.train.with_recipe(cfg.recipes[recipes[1]]))
    weights = []
    for recipe in recipes:
        run = dataclasses.replace(cfg, train=cfg.train.with_recipe(cfg.recipes[recipe]))
        model, outcome = harness.train_cell(twin, 0, run, task, tmp_path_factory.mktemp(recipe))
        assert outcome.status == "complete"
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.slow
def test_a_finished_search_resumes_without_training_and_a_run_uses_each_models_choice(tuned_dir, tmp_path,
                                                                                      monkeypatch):
    before = json.loads((tuned_dir / "tune.json").read_text())
    trained: dict[str, TrainConfig] = {}
    real_train = harness.train_model

    def no_training(*args, **kwargs):
        raise AssertionError("a finished trial was trained again")

    monkeypatch.setattr(harness, "train_model", no_training)
    again = tune.run_tune(_cfg(), tuned_dir, "test", InProcessBackend())
    assert [m["chosen"] for m in again["models"]] == [m["chosen"] for m in before["models"]]
    monkeypatch.undo()  # the run below reads the test split, as every run does

    def spy(model, batches, difficulties, cfg, *args, desc, **kwargs):
        trained[desc.split(":")[1]] = cfg
        return real_train(model, batches, difficulties, cfg, *args, desc=desc, **kwargs)

    monkeypatch.setattr(harness, "train_model", spy)
    path = tuned_dir / "tune.json"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    cfg = _cfg(f"tune.use={path}", f"tune.use_sha256={sha}", "train.lr=0.0005")  # no trial's rate: it is replaced
    results = harness.run_benchmark(cfg, tmp_path / "run", "test")
    assert results["tuning"]["sha256"] == sha and results["config"]["tune"]["use_sha256"] == sha
    for model in before["models"]:
        chosen, used = model["chosen"], trained[model["name"]]
        assert used.lr == chosen["lr"] and used.steps == cfg.train.steps  # the run's budget, the tuned rate
        assert {k: getattr(used, k) for k in RECIPE_KEYS} == chosen["train"]
        assert results["tuning"]["models"][model["name"]]["trials"] == model["trials"]
        recipe = {"tied": "tied", "tied-progressive": "tied + progressive"}[chosen["recipe"]]
        assert [r[3] for r in model_rows(results, "run", [16]) if r[1] == model["name"]] == [recipe]
    path.write_text(path.read_text().replace('"complete"', '"complete" '))
    with pytest.raises(ConfigError, match="changed since"):
        harness.run_benchmark(cfg, tmp_path / "run2", "test")
    with pytest.raises(ConfigError, match="tuned with another architecture"):
        cfg = _cfg(f"tune.use={path}", f"tune.use_sha256={hashlib.sha256(path.read_bytes()).hexdigest()}",
                   "model.d_model=24")
        harness.run_benchmark(cfg, tmp_path / "run3", "test")
    assert not (tmp_path / "run2").exists() and not (tmp_path / "run3").exists()


@pytest.mark.slow
def test_a_failing_trial_leaves_an_incomplete_file_that_a_run_refuses(tmp_path, monkeypatch, no_test_split):
    real_train = harness.train_model

    def fail_one(model, batches, difficulties, cfg, *args, desc, **kwargs):
        if desc.endswith("rdt-iso-param.t0:s0"):  # the twin's only trial at this rate (recipes share it)
            raise RuntimeError("killed")
        return real_train(model, batches, difficulties, cfg, *args, desc=desc, **kwargs)

    monkeypatch.setattr(harness, "train_model", fail_one)
    cfg = _cfg("tune.lr_grid=[1]")
    with pytest.raises(CellsFailed):
        tune.run_tune(cfg, tmp_path / "tune", "test", InProcessBackend(), retries=0)
    path = tmp_path / "tune" / "tune.json"
    doc = json.loads(path.read_text())
    assert doc["status"] == "incomplete"
    assert [m["chosen"] is None for m in doc["models"]] == [False, True]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="unfinished search"):
        harness.run_benchmark(_cfg(f"tune.use={path}", f"tune.use_sha256={sha}"), tmp_path / "run", "test")


def test_a_trial_trains_its_points_rate_and_recipe_for_tune_steps_at_the_tune_seeds():
    cfg = _cfg("tune.seeds=[5,6]")
    own = tune.trial_config(cfg, {"trial": 0, "lr": 0.5, "lr_scale": 1, "recipe": None})
    assert own.train == dataclasses.replace(cfg.train, lr=0.5).with_steps(6) and own.seeds == [5, 6]
    named = tune.trial_config(cfg, {"trial": 1, "lr": 0.25, "lr_scale": 1, "recipe": "tied"})
    assert named.train == dataclasses.replace(cfg.train.with_recipe(cfg.recipes["tied"]), lr=0.25).with_steps(6)
    with pytest.raises(ConfigError) as err:
        tune.plan_trials(dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, use="x.json")), Path("."),
                         get_task("parity"))
    assert err.value.problems == ["tune.use: a search starts from the declared space, not from another search's "
                                  "choices"]


def test_a_trial_not_trained_yet_is_missing_and_names_the_trial_it_shares(tmp_path):
    cfg = _cfg()
    plan = harness.plan_models(cfg, get_task("parity"))[0]
    cell = tune.Cell(str(tmp_path), "rdt.tied.t3", 4, plan, cfg, kind="trial")  # a name that holds ".t" itself
    point = {"trial": 1, "lr": 0.5, "lr_scale": 1, "recipe": "tied"}
    assert tune._trial_row(point, cell) == {**point, "seed": 4, "status": "missing", "same_as": 3}
    assert "same_as" not in tune._trial_row({**point, "trial": 3}, cell)


def test_a_search_with_no_trial_trained_yet_chooses_nothing_and_is_incomplete(tmp_path, monkeypatch):
    cfg, task = _cfg(), get_task("parity")
    (tmp_path / "code.sha256").write_text("0" * 64 + "\n")
    trials = tune.plan_trials(cfg, tmp_path, task)
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # the file's time is UTC whatever the machine's zone
    time.tzset()
    try:
        doc = tune.tune_document(cfg, tmp_path, trials, task, "test", started=time.perf_counter())
    finally:
        monkeypatch.undo()
        time.tzset()
    created = datetime.strptime(doc["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=10)
    assert doc["status"] == "incomplete" and [m["chosen"] for m in doc["models"]] == [None, None]
    assert {t["status"] for m in doc["models"] for t in m["trials"]} == {"missing"}
    assert tune.format_choices(doc).splitlines()[1:] == [f"{name:<22} (not chosen: a trial is missing)"
                                                         for name in ("rdt", "rdt-iso-param")]


@pytest.mark.parametrize("retries", [0, 2, None])  # None: run_tune's default, two retries
def test_a_search_whose_trials_keep_failing_writes_an_incomplete_file_then_raises(tmp_path, retries):
    attempts = []

    class Failing:  # a backend whose every cell fails at once
        def run(self, cells):
            attempts.append(len(cells))
            yield from ((cell, "WorkerCrashedError: lost") for cell in cells)

        def close(self):
            pass

    with pytest.raises(CellsFailed) as err:
        tune.run_tune(_cfg(), tmp_path, "test", Failing(), *([] if retries is None else [retries]))
    # 4 trials of rdt, 2 of its twin (its other 2 train alike)
    assert attempts == [6] * (1 + (2 if retries is None else retries))
    assert len(err.value.problems) == 6 and all("WorkerCrashedError: lost" in p for p in err.value.problems)
    assert json.loads((tmp_path / "tune.json").read_text())["status"] == "incomplete"


def test_a_choice_whose_validation_loss_is_not_finite_stores_none(tmp_path, monkeypatch):
    """Every trial diverged: the first is chosen, and its loss is stored as null, not as a non-JSON infinity."""
    cfg, task = _cfg(), get_task("parity")
    (tmp_path / "code.sha256").write_text("0" * 64 + "\n")
    monkeypatch.setattr(tune, "_trial_row", lambda point, cell: {**point, "seed": cell.seed, "status": "diverged",
                                                                "validation_loss": float("inf")})
    doc = tune.tune_document(cfg, tmp_path, tune.plan_trials(cfg, tmp_path, task), task, "test", started=0.0)
    assert [(m["chosen"]["trial"], m["chosen"]["validation_loss"]) for m in doc["models"]] == [(0, None), (0, None)]


def test_the_terminal_summary_gives_each_models_choice_or_says_it_has_none():
    doc = {"models": [{"name": "rdt", "chosen": {"lr": 0.003, "recipe": "tied", "validation_loss": 0.25}},
                      {"name": "rdt-iso-param", "chosen": {"lr": 0.0015, "recipe": None, "validation_loss": None}},
                      {"name": "control", "chosen": None}]}
    assert tune.format_choices(doc).splitlines() == [
        "model                         lr recipe                   validation loss",
        "rdt                        0.003 tied                     0.25",
        "rdt-iso-param             0.0015 (run config)             None",
        "control                (not chosen: a trial is missing)"]


def test_cli_tune_and_run_tuned_reject_bad_input_with_exit_2(tmp_path):
    from mythbench.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["tune", "parity", "--out", str(tmp_path / "t"), "--set", "tune.recipes=[nope]",
                              "--set", "tune.steps=-1"])
    assert bad.exit_code == 2 and "'nope' is not a named recipe" in bad.output and "tune.steps" in bad.output
    missing = runner.invoke(app, ["run", "parity", "--out", str(tmp_path / "r"), "--tuned", str(tmp_path / "no.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    assert not (tmp_path / "t").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_cli_tune_on_local_processes_writes_its_choices(tmp_path):
    from mythbench.cli import app

    sets = [a for pair in [*TINY, "tune.lr_grid=[1]", "tune.recipes=[]", "twins=[]"] for a in ("--set", pair)]
    out = CliRunner().invoke(app, ["tune", "parity", "--out", str(tmp_path / "t"), "--backend", "local",
                                   "--workers", "1", *sets])
    assert out.exit_code == 0, out.output
    doc = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert doc["status"] == "complete" and [m["chosen"]["trial"] for m in doc["models"]] == [0]
