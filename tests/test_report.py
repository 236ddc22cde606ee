"""Report built from a synthetic results.json: every file written, numbers traceable to the cells."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest

from mythbench.analysis.stats import summarize_model, wilson_interval
from mythbench.core.errors import ConfigError
from mythbench.reports.report import build_report, format_summary_table
from mythbench.results.results_frame import (
    EARLY_EXIT_COLUMNS,
    PROVENANCE_COLUMNS,
    cell_columns,
    cells_frame,
    early_exit_frame,
    model_train,
    recipe_text,
    summary_columns,
    twin_groups,
)

FINGERPRINT = "ab" * 32
N = 20
TRAIN, TEST = [2, 3], [3, 5]
# RDT correct counts (of N) at seed 0 per difficulty and loops 1..4; seed s has s fewer correct.
RDT_TABLE = {2: [10, 18, 20, 19], 3: [6, 14, 17, 15], 5: [1, 5, 9, 8]}
STD_TABLE = {2: 15, 3: 10, 5: 2}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ["acc_vs_loops.png", "heatmap.png", "vs_twins.png"]


def _cell(d: int, loops: int | None, correct: int) -> dict:
    low, high = wilson_interval(correct, N)
    return {"difficulty": d, "loops": loops, "n": N, "correct": correct, "accuracy": correct / N,
            "ci_low": low, "ci_high": high, "token_accuracy": 0.5 + correct / (2 * N),
            "loss": 1.0 - correct / N}


def _rdt_run(seed: int) -> dict:
    cells = [_cell(d, k + 1, c - seed) for d, row in RDT_TABLE.items() for k, c in enumerate(row)]
    exits = [{"difficulty": d, "rule": rule, "threshold": 0.01, "n": N, "correct": RDT_TABLE[d][2] - seed,
              "accuracy": (RDT_TABLE[d][2] - seed) / N, "ci_low": 0.0, "ci_high": 1.0, "mean_loops": 2.5}
             for d in RDT_TABLE for rule in ("delta_h", "max_confidence")]
    diagnostics = {"spectral_radius": 0.93,
                   "state_change": {str(d): [0.5, 0.1, 0.02, 0.004] for d in RDT_TABLE},
                   "expert_load": [[0.5, 0.3, 0.2], [0.25, 0.25, 0.5]],
                   "halting": {str(d): {"mean": 2.0 + d / 10, "hist": [1, 2, 3, 4]} for d in RDT_TABLE}}
    return {"seed": seed, "status": "complete", "train": {"steps": 10, "tokens": 100, "final_loss": 0.1,
                                                         "wall_time_s": 1.0},
            "cells": cells, "early_exit": exits, "diagnostics": diagnostics}


def _diverged(seed: int) -> dict:
    return {"seed": seed, "status": "diverged", "train": {"steps": 3}, "cells": [], "early_exit": [],
            "diagnostics": {}}


def make_results() -> dict:
    """Two models (RDT + iso-param), two seeds; the baseline's seed 1 diverged."""
    rdt = {"name": "rdt", "family": "rdt", "role": "rdt", "model_config": {"d_model": 16},
           "params": {"total": 1000, "unique": 1000, "active": 1000, "once": 600, "recurrent": 400},
           "flops_per_token": {"forward": 6000.0, "train": 18000.0}, "train_loops": 2,
           "eval_loops": [1, 2, 3, 4], "runs": [_rdt_run(0), _rdt_run(1)],
           "loop_rule": {"name": "difficulty", "loops": {"2": 2, "3": 3, "5": 4}}}
    std = {"name": "std-iso-param", "family": "standard", "role": "iso-param",
           "model_config": {"d_model": 12},
           "params": {"total": 1010, "unique": 1010, "active": 1010, "once": 1010, "recurrent": 0},
           "flops_per_token": {"forward": 2500.0, "train": 7500.0}, "train_loops": None, "eval_loops": None,
           "runs": [{**_diverged(0), "status": "complete", "train": {"steps": 10},
                     "cells": [_cell(d, None, c) for d, c in STD_TABLE.items()]}, _diverged(1)]}
    for m in (rdt, std):
        m["summary"] = summarize_model(m, TRAIN, TEST)
    return {"schema_version": 2, "kind": "run", "mythbench_version": "0.1.0",
            "git": {"commit": "c0ffee" * 6 + "abcd", "dirty": True},
            "command": "mythbench run toy --preset quick", "created_at": "2026-01-01T00:00:00Z",
            "wall_time_s": 12.5, "status": "complete", "preset": "quick",
            "config": {}, "task": {"name": "toy", "version": 3, "fingerprint": FINGERPRINT,
                                   "train_difficulties": TRAIN, "test_difficulties": TEST},
            "evaluation": {"loop_rule": "difficulty", "depth_factor": 2.0, "loops_factor": 2, "oracle": "..."},
            "environment": {"python": "3.11", "torch": "2.13.0", "device": "cpu"}, "seeds": [0, 1],
            "models": [rdt, std]}


def _write(tmp_path: Path, results: dict) -> Path:
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_build_report_writes_every_file(tmp_path: Path) -> None:
    written = build_report(_write(tmp_path, make_results()))
    names = {p.name for p in written}
    assert names == {"cells.csv", "summary.csv", "early_exit.csv", "report.md", *PLOTS}
    assert all(p.parent == tmp_path and p.is_file() for p in written)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    for name in PLOTS:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) > 10_000


def test_csv_rows_match_cells(tmp_path: Path) -> None:
    results = make_results()
    build_report(_write(tmp_path, results))
    cells = _rows(tmp_path / "cells.csv")
    assert list(cells[0]) == cell_columns()
    assert len(cells) == 2 * 3 * 4 + 3  # RDT: 2 seeds x 3 difficulties x 4 loops; baseline: 1 seed x 3
    assert {r["seed"] for r in cells if r["model"] == "std-iso-param"} == {"0"}
    exits = _rows(tmp_path / "early_exit.csv")
    assert list(exits[0]) == EARLY_EXIT_COLUMNS and len(exits) == 2 * 3 * 2  # 2 seeds x 3 difficulties x 2 rules
    assert {(r["model"], r["role"], r["seed"]) for r in exits} == {("rdt", "rdt", "0"), ("rdt", "rdt", "1")}
    summary = _rows(tmp_path / "summary.csv")
    assert list(summary[0]) == summary_columns() and len(summary) == 3 + 3
    no_exits = make_results()
    for m in no_exits["models"]:
        for run in m["runs"]:
            run.pop("early_exit", None)
    assert list(early_exit_frame(no_exits).columns) == EARLY_EXIT_COLUMNS  # an empty table keeps its header


def test_summary_numbers_equal_hand_computed(tmp_path: Path) -> None:
    build_report(_write(tmp_path, make_results()))
    rows = {(r["model"], int(r["difficulty"])): r for r in _rows(tmp_path / "summary.csv")}
    d2 = rows[("rdt", 2)]
    # seed 0: 10,18,20,19 of 20; seed 1: 9,17,19,18 -> means .475 .875 .975 .925
    assert d2["split"] == "train"
    assert float(d2["acc_train_mean"]) == pytest.approx(0.875)
    assert float(d2["oracle_mean"]) == pytest.approx(0.975) and d2["oracle_loops"] == "3"
    assert float(d2["acc_max_mean"]) == pytest.approx(0.925)
    assert float(d2["overthinking_drop"]) == pytest.approx(0.05)
    assert float(d2["acc_train_std"]) == pytest.approx(0.0353553, rel=1e-5)
    # difficulty 3 is in both lists -> train
    assert rows[("rdt", 3)]["split"] == "train" and rows[("rdt", 5)]["split"] == "test"
    assert (rows[("rdt", 5)]["role"], rows[("rdt", 5)]["headline_loops"]) == ("rdt", "4")  # the rule's loops at d=5
    std5 = rows[("std-iso-param", 5)]  # one complete seed: Wilson interval of 2/20
    assert float(std5["acc_train_mean"]) == pytest.approx(0.1)
    low, high = wilson_interval(2, 20)
    assert float(std5["acc_train_ci_low"]) == pytest.approx(low)
    assert float(std5["acc_train_ci_high"]) == pytest.approx(high)
    assert std5["oracle_loops"] == "" and std5["role"] == "iso-param"


def test_markdown_has_provenance_models_and_diverged(tmp_path: Path) -> None:
    build_report(_write(tmp_path, make_results()))
    md = (tmp_path / "report.md").read_text()
    for text in (FINGERPRINT, "toy v3", "mythbench run toy --preset quick", "dirty", "quick",
                 "torch 2.13.0", "12.5 s", "rdt", "std-iso-param", "1: diverged", "1,000 / 1,000",
                 "0.875 [", "0.975 [", "@3", "ORACLE", "delta_h", "| 0.930 | 0.0040 | 1.50 | 2.33 |"):
        assert text in md, text
    headline = md.split("## Accuracy by difficulty")[1].split("## Adaptive")[0]
    assert headline.count("\n| 2 | train |") == 1 and "| 5 | test |" in headline
    assert "`std-iso-param`: seed(s) 1 diverged" in md


def test_fully_diverged_model_shown_as_diverged(tmp_path: Path) -> None:
    results = make_results()
    rdt = results["models"][0]
    rdt["runs"] = [_diverged(0), _diverged(1)]
    rdt["summary"] = []
    written = build_report(_write(tmp_path, results))
    assert not {p.name for p in written} & set(PLOTS)
    table = format_summary_table(results)
    assert "diverged" in table
    assert "0.100 [" in table  # baseline still reported


def test_standard_only_single_seed_without_optional_fields(tmp_path: Path) -> None:
    results = make_results()
    std = results["models"][1]
    std["runs"] = std["runs"][:1]
    for run in std["runs"]:
        del run["early_exit"], run["diagnostics"]
    del std["summary"]
    results["models"] = [std]
    results["seeds"] = [0]
    written = build_report(_write(tmp_path, results))
    assert {p.name for p in written} == {"cells.csv", "summary.csv", "early_exit.csv", "report.md"}
    assert len(_rows(tmp_path / "early_exit.csv")) == 0
    md = (tmp_path / "report.md").read_text()
    assert "No early-exit results" in md and "No recurrent-depth models" in md
    assert len(_rows(tmp_path / "summary.csv")) == 3  # recomputed from the cells


def test_missing_summary_is_recomputed_identically(tmp_path: Path) -> None:
    results = make_results()
    stripped = copy.deepcopy(results)
    for m in stripped["models"]:
        del m["summary"]
    for name, data in (("a", results), ("b", stripped)):
        (tmp_path / name).mkdir()
        build_report(_write(tmp_path / name, data))
    for name in ("summary.csv", "report.md", "cells.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_ablation_gets_its_own_plots(tmp_path: Path) -> None:
    results = make_results()
    ablation = copy.deepcopy(results["models"][0])
    ablation.update(name="rdt no-lti", role="ablation:no-lti")
    results["models"].append(ablation)
    names = {p.name for p in build_report(_write(tmp_path, results))}
    assert {"acc_vs_loops_rdt_no-lti.png", "heatmap_rdt_no-lti.png", "vs_twins_rdt_no-lti.png", *PLOTS} <= names


def _with_control(results: dict) -> dict:
    """The file of a run with `models: [rdt, control]`: each looped model followed by its own twin."""
    rdt, std = results["models"]
    control, twin = copy.deepcopy(rdt), copy.deepcopy(std)
    control.update(name="control", role="control")
    twin.update(name="control-iso-param", twin_of="control")
    std.update(name="rdt-iso-param", twin_of="rdt")
    results["models"] = [rdt, std, control, twin]
    return results


def test_each_looped_model_is_tabled_beside_its_own_twins_only(tmp_path: Path) -> None:
    build_report(_write(tmp_path, _with_control(make_results())))
    md = (tmp_path / "report.md").read_text()
    tables = md.split("## Accuracy by difficulty")[1].split("## Adaptive")[0].split("### ")[1:]
    assert [t.splitlines()[0] for t in tables] == ["rdt and its twins `rdt-iso-param`",
                                                   "control and its twins `control-iso-param`"]
    headers = [t.split("\n\n")[1].splitlines()[0] for t in tables]
    assert "control" not in headers[0] and "rdt" not in headers[1]
    assert "| control-iso-param | iso-param | control | standard |" in md  # the models table names the owner
    assert (tmp_path / "vs_twins.png").exists() and (tmp_path / "vs_twins_control.png").exists()
    terminal = format_summary_table(_with_control(make_results())).split("\n\n")
    assert [t.split()[2] for t in terminal] == ["rdt", "control"]


def test_each_cell_carries_its_model_split_headline_and_the_files_provenance() -> None:
    doc = make_results()
    df = cells_frame(doc, provenance=True)
    assert list(df.columns) == cell_columns() + ["family", "twin_of", "split", "train_loops", "headline",
                                                 *PROVENANCE_COLUMNS]
    assert len(df) == 2 * 3 * 4 + 3  # the diverged seed has no cells
    rdt = df[df.model == "rdt"].set_index(["seed", "difficulty", "loops"])
    assert rdt.loc[(1, 5, 3)].correct == 8 and rdt.loc[(1, 5, 3)].role == "rdt"  # seed 1: one fewer than 9
    assert set(rdt.family) == {"rdt"} and rdt.twin_of.isna().all() and set(rdt.train_loops) == {2}
    # split: 3 is a training difficulty (and a test one); headline: the rule's 2, 3 and 4 loops at d = 2, 3, 5
    assert {d: set(rdt.xs(d, level="difficulty").split) for d in (2, 3, 5)} == {2: {"train"}, 3: {"train"},
                                                                                 5: {"test"}}
    heads = rdt[rdt.headline].reset_index()
    assert sorted(set(zip(heads.difficulty, heads.loops, strict=True))) == [(2, 2), (3, 3), (5, 4)]
    std = df[df.model == "std-iso-param"]
    assert std.headline.all() and std.loops.isna().all() and set(std.twin_of) == {"rdt"}  # no loop axis
    assert set(std.train_loops.isna()) == {True} and set(std.role) == {"iso-param"}
    provenance = df[PROVENANCE_COLUMNS].drop_duplicates().to_dict("records")
    assert provenance == [{"task": "toy", "task_version": 3, "fingerprint": FINGERPRINT, "schema_version": 2,
                           "preset": "quick", "commit": "c0ffee" * 6 + "abcd", "dirty": True}]
    assert list(cells_frame(doc).columns) == cell_columns()
    doc["schema_version"] = 1  # version 1's only rule: the training loop count, 2, at every difficulty
    heads = cells_frame(doc, provenance=True).query("model == 'rdt' and headline")
    assert set(heads.loops) == {2}


def test_a_twin_whose_looped_model_is_not_in_the_file_stands_alone() -> None:
    looped = {"name": "control", "role": "control"}
    twin = {"name": "std", "role": "iso-param", "twin_of": "rdt"}  # e.g. one cell of a sweep, read unvalidated
    assert twin_groups({"models": [looped, twin]}) == [[looped], [twin]]


def test_a_file_from_before_twins_groups_its_iso_param_with_the_rdt(tmp_path: Path) -> None:
    build_report(_write(tmp_path, make_results()))  # no twin_of: the legacy shape
    assert "### rdt and its twins `std-iso-param`" in (tmp_path / "report.md").read_text()


def test_a_model_that_learned_on_some_seeds_only_is_flagged_seed_fragile(tmp_path: Path) -> None:
    results = make_results()
    rdt = results["models"][0]
    runs = rdt["runs"]  # at d = 3, the largest training difficulty, the rule's 3 loops: 17 and 16 of 20 correct
    assert "seed-fragile" not in format_summary_table(results)
    runs[0]["cells"] = [_cell(3, 3, 19) if (c["difficulty"], c["loops"]) == (3, 3) else c for c in runs[0]["cells"]]
    rdt["summary"] = summarize_model(rdt, TRAIN, TEST)
    assert "rdt @loops [seed-fragile (1 of 2 seeds learned)]" in format_summary_table(results)
    build_report(_write(tmp_path, results))
    md = (tmp_path / "report.md").read_text()
    assert "| 0: complete (learned), 1: complete (not learned) | seed-fragile (1 of 2 seeds learned) |" in md
    assert "0.875 [" in md and "(seeds 0.95 / 0.80)" in md  # each seed next to the mean and its interval


def test_format_summary_table_lines(tmp_path: Path) -> None:
    table = format_summary_table(make_results())
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].split()[:5] == ["difficulty", "split", "rdt", "@loops", "std-iso-param"]
    assert lines[2].startswith("2 ") and "0.875 [" in lines[2] and "@3" in lines[2]


@pytest.mark.parametrize("change", [{"schema_version": 1}, {"kind": "scale"}, {"models": None}])
def test_bad_results_file_is_config_error(tmp_path: Path, change: dict) -> None:
    with pytest.raises(ConfigError):
        build_report(_write(tmp_path, {**make_results(), **change}))


def test_cells_at_undeclared_difficulty_is_config_error(tmp_path: Path) -> None:
    results = make_results()
    results["task"]["test_difficulties"] = [3]
    for m in results["models"]:
        del m["summary"]
    with pytest.raises(ConfigError, match="undeclared"):
        build_report(_write(tmp_path, results))


def test_missing_or_corrupt_results_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build_report(tmp_path)


def test_every_seed_is_shown_next_to_the_mean(tmp_path: Path) -> None:
    """Seed s of the toy RDT has s fewer correct; the baseline's seed 1 diverged and is named, not dropped."""
    build_report(_write(tmp_path, make_results()))
    headline = (tmp_path / "report.md").read_text().split("## Accuracy by difficulty")[1].split("## Adaptive")[0]
    row = next(line for line in headline.splitlines() if line.startswith("| 5 | test |"))
    loops = int(row.split("@")[1].split()[0])
    seed0, seed1 = RDT_TABLE[5][loops - 1] / N, (RDT_TABLE[5][loops - 1] - 1) / N
    assert f"(seeds {seed0:.2f} / {seed1:.2f})" in row
    assert "/ diverged)" in row


@pytest.mark.parametrize(("train", "text"), [
    ({"recipe": "tied"}, "tied"),
    ({"recipe": "tied", "progressive": True}, "tied + progressive"),
    ({"recipe": "progressive", "progressive": True}, "progressive"),  # the recipe names its term once
    ({"recipe": "progressive"}, "progressive"),
    ({"recipe": "fixed", "progressive": 1}, "fixed"),  # not a bool: left out
    ({"recipe": "parcae", "loop_jitter": 0.5}, "parcae + jitter 0.5"),
    ({"recipe": "parcae", "loop_jitter": 0}, "parcae"),
    ({"recipe": "parcae", "loop_jitter": True}, "parcae"),
    ({"recipe": "parcae", "loop_jitter": "2"}, "parcae"),
    ({"recipe": "tied", "readout_loss": "all", "progressive": True}, "tied + progressive + all loss"),
    ({"recipe": "tied", "readout_loss": "last"}, "tied"),
    ({"progressive": True}, "progressive"),
    ({}, ""),
    ("not a mapping", ""),
])
def test_a_training_recipe_in_words(train, text) -> None:
    assert recipe_text(train) == text


def test_a_models_training_keys_come_from_its_config_whatever_shape_the_config_has():
    tuned = {"models": {"rdt": {"chosen": {"lr": 0.003, "train": {"recipe": "fixed"}}}}}
    assert model_train({"config": {"train": {"lr": 0.01, "steps": 5}}, "tuning": tuned}, "rdt") == (
        {"lr": 0.003, "steps": 5, "recipe": "fixed"}, tuned["models"]["rdt"])
    for config in (None, "free-form", {"train": "free-form"}, {}):  # config is free-form: no train keys, no crash
        assert model_train({"config": config}, "rdt") == ({}, None)
