"""Submission, the leaderboard, verify and the re-scoring comparison."""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
import sys
import types
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from hostile.corpus import CASES
from hostile.factory import TOY, fake_lookup, make_results
from mythbench.tasks import get_task

from mythbench.analysis.stats import with_derived
from mythbench.core.errors import ConfigError
from mythbench.results import board as board_module
from mythbench.results import leaderboard
from mythbench.results.board import CSV_NAME, MD_NAME, board_rows, columns, md_escape, read_board, render_markdown
from mythbench.results.leaderboard import TaskIdentity, compare_rescore, current_task, submit
from mythbench.results.leaderboard import verify as verify_results
from mythbench.results.safejson import MAX_BYTES, content_hash, read_json_file
from mythbench.results.schema import show


def verify(path: Path) -> list[str]:
    """verify against the toy task suite the submissions here were made for."""
    return verify_results(path, fake_lookup)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for directories)."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def write(path: Path, doc: dict, **kwargs) -> Path:
    path.write_text(json.dumps(doc, **kwargs))
    return path


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A results directory that already holds one submission (the corpus' base document)."""
    root = tmp_path_factory.mktemp("board")
    base = make_results(rng_seed=1)
    submit(write(root / "base.json", base), root / "results", "alice", fake_lookup)
    return root / "results", base


def test_an_accepted_submission_is_described_row_by_row(tmp_path: Path) -> None:
    doc = make_results(rng_seed=2)
    outcome = submit(write(tmp_path / "r.json", doc), tmp_path / "results", "bob", fake_lookup)
    text = outcome.describe()
    assert text.startswith(f"accepted: {doc['task']['name']} results from bob (content hash "
                           f"{outcome.content_hash[:12]}…), stored as {outcome.stored}; ")
    assert str(outcome.stored) in text and "SubmitOutcome(" not in text
    assert [line.split(" (")[0].strip() for line in text.splitlines()[1:]] == [m["name"] for m in doc["models"]]


def test_the_current_task_identity_is_the_task_suites() -> None:
    task = get_task("parity")
    assert current_task("parity") == TaskIdentity("parity", task.spec.version, task.fingerprint(),
                                                  tuple(task.spec.train_difficulties),
                                                  tuple(task.spec.test_difficulties))


def test_corpus_has_at_least_40_distinct_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_file_is_refused_clearly_and_writes_nothing(case, board, tmp_path: Path) -> None:
    results, base = board
    before = snapshot(results)
    path = case.build(tmp_path, base)
    with pytest.raises(ConfigError) as err:
        submit(path, results, case.name, fake_lookup)
    text = "\n".join(err.value.problems)
    for words in case.expect:
        assert words in text, f"{case.id}: {words!r} not in:\n{text}"
    assert snapshot(results) == before


def test_the_board_says_how_each_model_was_trained_and_whether_a_search_tuned_it(tmp_path: Path) -> None:
    doc = make_results()
    doc["config"]["train"] = {"lr": 0.001, "recipe": "tied", "progressive": True}
    doc["tuning"] = {"file": "tune.json", "sha256": "0" * 64, "models": {"rdt": {
        "chosen": {"lr": 0.003, "recipe": "plain", "train": {"recipe": "tied", "progressive": False}},
        "trials": [{"trial": i} for i in range(9)]}}}
    out = submit(write(tmp_path / "r.json", doc), tmp_path / "results", "bob", fake_lookup)
    training = {row["model"]: row["training"] for row in out.rows}
    assert training == {"rdt": "lr 0.003, tied; tuned, best of 9 trials",  # the choice, not the config's
                        "std-iso-param": "lr 0.001, tied + progressive; not tuned"}
    md = (tmp_path / "results" / MD_NAME).read_text()
    assert "| lr 0.003, tied; tuned, best of 9 trials |" in md and "| loop rule | training |" in md
    assert verify(tmp_path / "results") == []


def test_valid_result_round_trips_into_the_leaderboard(tmp_path: Path) -> None:
    doc = make_results(seeds=(3, 5, 7))
    results = tmp_path / "results"
    out = submit(write(tmp_path / "r.json", doc), results, "Ada Lovelace", fake_lookup)
    assert out.content_hash == content_hash(doc)
    assert out.stored == results / "submissions" / "toy" / f"{out.content_hash}.json"
    assert json.loads(out.stored.read_text()) == doc
    rows = read_board(results)
    assert rows == out.rows and [r["model"] for r in rows] == ["rdt", "std-iso-param"]
    rdt = rows[0]
    summary = {s["difficulty"]: s for s in with_derived(doc)["models"][0]["summary"]}
    assert (rdt["d_train"], rdt["d_2x"], rdt["d_max"]) == ("4", "8", "12")
    assert float(rdt["acc_max"]) == summary[12]["headline"]["mean"]
    assert float(rdt["low_2x"]) == summary[8]["headline"]["ci_low"]
    assert float(rdt["tok_2x"]) == summary[8]["headline"]["token_accuracy"]
    assert rdt["oracle_loops_max"] == str(summary[12]["oracle_best"]["loops"]) and rdt["loop_rule"] == "difficulty"
    assert (rdt["seeds"], rdt["submitter"], rdt["task_version"]) == ("3 5 7", "Ada Lovelace", "3")
    md = (results / MD_NAME).read_text()
    assert "## toy v3" in md and "| Ada Lovelace |" in md and f"{summary[12]['headline']['mean']:.3f}" in md
    assert verify(results) == []

    before = snapshot(results)  # the same content, formatted differently, is the same submission
    with pytest.raises(ConfigError) as err:
        submit(write(tmp_path / "again.json", doc, indent=4, sort_keys=True), results, "Bob", fake_lookup)
    assert err.value.problems == [f"this results file is already on the leaderboard (submission "
                                  f"{out.content_hash[:12]}, submitted by 'Ada Lovelace' on '{rdt['date']}')"]
    assert snapshot(results) == before


def test_one_seed_result_is_refused_with_the_standard_preset_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", make_results(seeds=(0,), preset="quick"))
    with pytest.raises(ConfigError) as err:
        submit(path, tmp_path / "results", None, fake_lookup)
    assert any("mythbench run toy --preset standard" in p for p in err.value.problems)
    assert not (tmp_path / "results").exists()


def test_every_problem_is_listed_together(board, tmp_path: Path) -> None:
    results, base = board
    doc = {**base, "status": "incomplete"}
    with pytest.raises(ConfigError) as err:
        submit(write(tmp_path / "r.json", doc), results, "x/y", fake_lookup)
    assert [p.split(":")[0] for p in err.value.problems] == ["name", "status"]
    with pytest.raises(ConfigError) as err:  # a valid document already on the board, by a bad name
        submit(write(tmp_path / "r.json", base), results, "x/y", fake_lookup)
    assert len(err.value.problems) == 2 and err.value.problems[0].startswith("name: 'x/y' is not allowed")
    assert err.value.problems[1].startswith("this results file is already on the leaderboard")


def test_unvalidated_task_names_are_never_looked_up(tmp_path: Path) -> None:
    asked: list[str] = []

    def lookup(name: str):
        asked.append(name)
        return fake_lookup(name)

    for bad in ("evil.yaml", "../toy", "toy/../../x", "/etc/passwd.yml"):
        path = write(tmp_path / "r.json", {**make_results(), "task": {**make_results()["task"], "name": bad}})
        with pytest.raises(ConfigError, match="task.name"):
            submit(path, tmp_path / "results", None, lookup)
    assert asked == [] and not (tmp_path / "results").exists()


def _submit_one(args: tuple[str, str, int]) -> str:
    src, results, i = args
    return submit(Path(src), Path(results), f"worker-{i}", fake_lookup).content_hash


@pytest.mark.parametrize("pool", ["processes", "threads"])
def test_concurrent_submits_all_land_and_the_csv_stays_whole(pool: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    jobs = [(str(write(tmp_path / f"r{i}.json", make_results(rng_seed=100 + i))), str(results), i)
            for i in range(6)]
    executor = (ProcessPoolExecutor(6, mp_context=multiprocessing.get_context("fork")) if pool == "processes"
                else ThreadPoolExecutor(6))
    with executor:
        hashes = list(executor.map(_submit_one, jobs))
    rows = read_board(results)
    assert len(rows) == 12 and {r["content_hash"] for r in rows} == set(hashes)
    with open(results / CSV_NAME, newline="") as f:
        assert all(len(r) == len(columns()) for r in csv.reader(f))
    assert verify(results) == []


def test_default_lookup_is_the_task_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = types.SimpleNamespace(name=TOY.name, version=TOY.version, train_difficulties=list(TOY.train_difficulties),
                                 test_difficulties=list(TOY.test_difficulties))
    asked = []

    def get_task(name: str):
        asked.append(name)
        return types.SimpleNamespace(spec=spec, fingerprint=lambda: TOY.fingerprint)

    monkeypatch.setitem(sys.modules, "mythbench.tasks", types.SimpleNamespace(get_task=get_task))
    submit(write(tmp_path / "r.json", make_results()), tmp_path / "results")
    assert set(asked) == {"toy"} and read_board(tmp_path / "results")[0]["submitter"] == "anonymous"


# --- verify


@pytest.fixture()
def submitted(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    for i in range(2):
        submit(write(tmp_path / f"r{i}.json", make_results(rng_seed=i)), results, "alice", fake_lookup)
    assert verify(results) == []
    return results


def test_verify_empty_or_missing(tmp_path: Path) -> None:
    assert verify(tmp_path) == []
    assert verify(tmp_path / "nope") == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_verify_reference_results_need_the_schema_but_not_three_seeds(tmp_path: Path) -> None:
    ref = tmp_path / "reference" / "toy"
    ref.mkdir(parents=True)
    write(ref / "results.json", make_results(seeds=(0,), preset="quick"))
    assert verify(tmp_path) == []
    assert verify(ref / "results.json") == []
    bad = make_results(seeds=(0,))
    bad["models"][0]["runs"][0]["cells"][0]["correct"] = 99
    write(ref / "results.json", bad)
    assert any(p.startswith("reference/toy/results.json: models[0].runs[0].cells[0].correct: 99 is more than n")
               for p in verify(tmp_path))


def test_verify_catches_a_tampered_csv_value(submitted: Path) -> None:
    text = (submitted / CSV_NAME).read_text()
    row = read_board(submitted)[0]
    (submitted / CSV_NAME).write_text(text.replace(f",{row['acc_max']},", ",0.999,", 1))
    problems = verify(submitted)
    assert any("acc_max disagree with the stored file" in p for p in problems)
    assert any(p.startswith(MD_NAME) for p in problems)  # the markdown no longer matches the tampered CSV


def test_verify_catches_an_edited_markdown(submitted: Path) -> None:
    (submitted / MD_NAME).write_text((submitted / MD_NAME).read_text().replace("alice", "mallory"))
    assert verify(submitted) == [f"{MD_NAME}: differs from the table generated from {CSV_NAME} (it is generated; "
                                 "do not edit it by hand)"]


def test_verify_catches_stored_files_that_disagree_with_the_board(submitted: Path) -> None:
    stored = sorted((submitted / "submissions" / "toy").iterdir())
    doc = json.loads(stored[0].read_text())
    doc["wall_time_s"] = 99.0  # content no longer matches the name
    stored[0].write_text(json.dumps(doc))
    stored[1].unlink()
    (submitted / "submissions" / "toy" / "notes.txt").write_text("hi")
    extra = make_results(rng_seed=42)
    write(submitted / "submissions" / "toy" / f"{content_hash(extra)}.json", extra)
    text = "\n".join(verify(submitted))
    assert f"{stored[0].name}: content hash is" in text
    assert "notes.txt: unexpected entry" in text
    assert f"submission {stored[1].stem[:12]}: no valid submissions" in text
    assert f"{content_hash(extra)}.json: not on the leaderboard" in text


def test_every_stored_entry_that_is_not_a_valid_submission_is_named_and_only_valid_ones_are_kept(
        submitted: Path) -> None:
    kept = {path.stem for path in (submitted / "submissions" / "toy").iterdir()}
    root = submitted / "submissions"
    (root / "Not A Task").mkdir()  # sorts first: the entries after it are still checked
    (root / "toy" / "nested").mkdir()
    broken = root / "toy" / f"{'0' * 64}.json"
    broken.write_text("{")
    elsewhere = make_results(rng_seed=5)  # a valid toy file under another task's directory
    (root / "khop").mkdir()
    write(root / "khop" / f"{content_hash(elsewhere)}.json", elsewhere)
    renamed = make_results(rng_seed=6)
    write(root / "toy" / f"{'f' * 64}.json", renamed)
    with pytest.raises(ConfigError) as err:
        read_json_file(broken)
    docs, problems = leaderboard._verify_submissions(submitted)
    unexpected = "unexpected entry; submissions/ holds only <task>/<sha256>.json files"
    assert problems == [
        f"submissions/Not A Task: {unexpected}",
        f"submissions/khop/{content_hash(elsewhere)}.json: task.name is 'toy', not the directory 'khop'",
        *(f"submissions/toy/{broken.name}: {p}" for p in err.value.problems),
        f"submissions/toy/{'f' * 64}.json: content hash is {content_hash(renamed)}, not the file name",
        f"submissions/toy/nested: {unexpected}"]
    assert set(docs) == kept


def test_the_board_marks_stale_only_the_tasks_the_suite_still_has() -> None:
    def lookup(name: str) -> TaskIdentity:
        if name == "gone":
            raise ConfigError(f"no task {name!r}")
        return TaskIdentity(name=name, version=len(name), fingerprint="f", train_difficulties=(1,),
                            test_difficulties=(2,))

    rows = [{"task": t} for t in ("toy", "gone", "parity", "toy")]
    assert leaderboard.current_versions(rows, lookup) == {"parity": 6, "toy": 3}


def test_verify_checks_stored_submissions_against_the_submission_rules(submitted: Path) -> None:
    one_seed = make_results(seeds=(0,))
    write(submitted / "submissions" / "toy" / f"{content_hash(one_seed)}.json", one_seed)
    assert any("needs at least 3" in p for p in verify(submitted))


def test_verify_reports_a_broken_csv(submitted: Path) -> None:
    (submitted / CSV_NAME).write_text("task,model\ntoy,rdt\n")
    assert any("header is not the expected columns" in p for p in verify(submitted))


# --- markdown escaping


def test_markdown_cells_cannot_inject_rows_or_markup(submitted: Path) -> None:
    hostile = "x | 1.000 |\n| fake | row <script>`*_[a](b)"
    escaped = md_escape(hostile)
    assert "\n" not in escaped and "|" not in escaped.replace("\\|", "")
    assert md_escape("two\r\n\tlines\u2028here") == "two lines here"  # a run of line breaks is one space
    row = {**read_board(submitted)[0], "model": hostile, "submitter": hostile, "acc_max": "<b>"}
    md = render_markdown([row], {})
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 3  # header, separator, one row
    assert all(line.replace("\\|", "").count("|") == table[0].count("|") for line in table)
    assert "<script>" not in md and "<b>" not in md


def test_the_board_keeps_every_fields_exact_text_line_breaks_included(tmp_path: Path) -> None:
    """A carriage return inside a quoted field is data: read back as written, not turned into a newline."""
    doc = make_results()
    rows = board_rows(doc, content_hash(doc), "alice", "2026-12-01")
    rows[0]["model"] = "a\rb\r\nc\nd"
    board_module.write_board(tmp_path, rows, {"toy": 3})
    assert read_board(tmp_path) == rows


# --- re-scoring


def _cell(correct: int, n: int, difficulty: int = 8, loops: int | None = 4) -> dict:
    return {"difficulty": difficulty, "loops": loops, "n": n, "correct": correct}


def test_rescore_agreeing_within_intervals_passes() -> None:
    submitted = [_cell(180, 256), _cell(40, 256, loops=None)]
    assert compare_rescore(submitted, [_cell(45, 64), _cell(10, 64, loops=None)]) == []
    assert compare_rescore(submitted, [_cell(52, 64)]) == []  # 81% vs 70%: the intervals still overlap
    assert compare_rescore([_cell(1, 1)], [_cell(1, 1)]) == []  # one instance is a valid sample


@pytest.mark.parametrize("rescored", [(0.2, 0.5), (0.5, 0.8)])
def test_rescore_intervals_that_share_an_endpoint_overlap(monkeypatch, rescored) -> None:
    """The check is on closed intervals: touching at one end is agreeing."""
    submitted = (0.5, 0.8) if rescored == (0.2, 0.5) else (0.2, 0.5)
    monkeypatch.setattr(leaderboard, "wilson_interval", lambda k, n: rescored if n == 64 else submitted)
    assert compare_rescore([_cell(100, 256)], [_cell(20, 64)]) == []


def test_rescore_disagreeing_beyond_intervals_fails() -> None:
    problems = compare_rescore([_cell(250, 256)], [_cell(20, 64)])
    assert problems == ["difficulty 8, loops 4: re-scored 20/64 = 0.3125 (95% CI [0.2123, 0.4339]) does not overlap "
                        "the submitted 250/256 = 0.9766 (95% CI [0.9498, 0.9892])"]


def test_rescore_missing_cells_and_bad_counts_fail() -> None:
    problems = compare_rescore([_cell(10, 20)], [_cell(5, 10, difficulty=99), _cell(30, 20)])
    assert problems == ["difficulty 99, loops 4: re-scored, but the submission has no such cell",
                        "difficulty 8, loops 4: re-scored counts correct=30, n=20 are not valid"]
    problems = compare_rescore([_cell(10, 20)], [_cell(5, 0), _cell(5, 10, difficulty=[8])])  # each one reported
    assert problems == ["difficulty 8, loops 4: re-scored counts correct=5, n=0 are not valid",
                        "difficulty an array, loops 4: re-scored, but the submission has no such cell"]


def test_rescore_identical_counts_always_pass() -> None:
    cells = [_cell(k, 50, difficulty=d) for d, k in [(2, 0), (4, 25), (8, 50)]]
    assert compare_rescore(cells, cells) == []


def test_tables_of_older_task_versions_are_marked_stale_and_never_ranked_with_current_ones(submitted: Path) -> None:
    rows = read_board(submitted)
    newer = [{**r, "task_version": "4", "fingerprint": "f" * 64, "model": r["model"] + "-v4"} for r in rows]
    md = render_markdown(rows + newer, {"toy": 4})
    v3, v4 = md.split("## toy v3")[1].split("## toy v4")
    assert "**Stale, kept as history:** the current toy task is version 4" in v3
    assert "Stale" not in v4 and "-v4" not in v3 and "-v4 |" in v4
    assert "no longer in the suite" in render_markdown(rows, {})


def test_a_plugin_familys_results_validate_and_submit(tmp_path: Path) -> None:
    """The model knows no family by name (a model loops when it has train_loops): a looped model of a plugin
    family, OpenMythos, and its twin are verified and go on the board."""
    doc = make_results()
    doc["models"][0] |= {"name": "openmythos", "family": "openmythos", "role": "openmythos"}
    doc["models"][1]["twin_of"] = "openmythos"
    out = submit(write(tmp_path / "r.json", doc), tmp_path / "results", "alice", fake_lookup)
    assert [(r["model"], r["family"], r["twin_of"]) for r in out.rows] == [
        ("openmythos", "openmythos", ""), ("std-iso-param", "standard", "openmythos")]
    assert verify(tmp_path / "results") == []


# --- the board's cells and its verification, by hand


@pytest.mark.parametrize(("cells", "shown"), [
    ({"tok_max": "0.8", "per_seed_max": "0.4 - 0.6"}, "0.500 [0.250, 0.750] (tok 0.800); seeds 0.40 / - / 0.60"),
    ({"tok_max": "", "per_seed_max": "0.5"}, "0.500 [0.250, 0.750]"),  # one seed: no per-seed list
    ({"acc_max": "n/a|x"}, "n/a\\|x"),  # not a number: the escaped text
])
def test_an_accuracy_cell_shows_mean_interval_other_metrics_and_each_seed(cells, shown) -> None:
    row = pd.Series({"acc_max": "0.5", "low_max": "0.25", "high_max": "0.75", "tok_max": "", "per_seed_max": "",
                     **cells})
    assert board_module._acc(row, "max") == shown
    if not row["tok_max"]:  # a row from before the metric existed has no column for it
        assert board_module._acc(row.drop("tok_max"), "max") == shown


def test_a_number_cell_is_formatted_or_its_text_escaped() -> None:
    assert board_module._number("1234.6", ",.0f") == "1,235" and board_module._number("0.000123", ".3g") == "0.000123"
    assert board_module._number("many|", ",.0f") == md_escape("many|") == "many\\|"


def _rewrite(root: Path, rows: list[dict[str, str]]) -> None:
    """The CSV as `rows`, and its markdown regenerated, so that only the CSV's content is wrong."""
    board_module.write_board(root, rows, leaderboard.current_versions(rows, fake_lookup))


def test_verify_names_every_way_the_board_disagrees_with_the_stored_files(submitted: Path) -> None:
    rows = read_board(submitted)
    first, second = sorted({r["content_hash"] for r in rows})
    label = lambda digest: f"{CSV_NAME}: submission {digest[:12]}"  # noqa: E731
    a = [r for r in rows if r["content_hash"] == first]
    b = [r for r in rows if r["content_hash"] == second]
    a = [{**a[0], "date": "yesterday"}, {**a[1], "submitter": "bob"}, dict(a[1])]  # and a model twice
    renamed = b[0]["model"]
    b = [{**b[0], "model": "ghost"}, {**b[1], "acc_max": "0.001", "low_max": "0.0005"}]
    stray = {**b[1], "content_hash": "not a hash"}
    _rewrite(submitted, [stray] + a + b)  # a row without a stored file does not stop the rows after it
    assert leaderboard._verify_board(submitted, leaderboard._verify_submissions(submitted)[0], fake_lookup) == [
        f"{CSV_NAME}: submission 'not a hash': no valid submissions/<task>/<hash>.json behind these rows",
        f"{label(first)}: date 'yesterday' is not YYYY-MM-DD",
        f"{label(first)}: rows disagree on submitter or date",
        f"{label(first)}: a model appears in more than one row",
        f"{label(second)}: model 'ghost' is on the board but not in the other",
        f"{label(second)}: model {show(renamed)} is in the stored file but not on the other",
        f"{label(second)}, model {show(b[1]['model'])}: acc_max, low_max disagree with the stored file"]


def test_verify_checks_the_markdown_against_the_csv_even_when_it_is_empty_or_unreadable(submitted: Path) -> None:
    differs = f"{MD_NAME}: differs from the table generated from {CSV_NAME} (it is generated; do not edit it by hand)"
    (submitted / MD_NAME).write_bytes(b"\xff\xfe not UTF-8")
    assert verify(submitted) == [differs]
    shutil.rmtree(submitted / "submissions")
    (submitted / CSV_NAME).write_text(",".join(columns()) + "\n")  # a board with no rows still has its table
    (submitted / MD_NAME).unlink()
    assert verify(submitted) == [differs]
    (submitted / CSV_NAME).unlink()
    (submitted / MD_NAME).write_text("# a table\n")
    assert verify(submitted) == [f"{MD_NAME}: exists without {CSV_NAME}"]


def test_verify_of_one_file_names_it_in_every_problem(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError) as err:
        read_json_file(broken)
    assert verify(broken) == [f"broken.json: {p}" for p in err.value.problems]
    bad = make_results(seeds=(0,))
    bad["models"][0]["runs"][0]["cells"][0]["correct"] = 99
    problems = verify(write(tmp_path / "bad.json", bad))
    assert problems and all(p.startswith("bad.json: models[0].runs[0]") for p in problems)
    ref = tmp_path / "reference" / "toy" / "results.json"
    ref.parent.mkdir(parents=True)
    ref.write_text("{")
    assert verify(tmp_path) == [f"reference/toy/results.json: {p}" for p in err.value.problems]


def test_the_leaderboard_page_is_the_reviewed_one() -> None:
    """The whole page for a board of two budgets, a stale version, a dirty and a missing commit and a hostile row
    (markup in a name, numbers that are not, a zero accuracy ranked last), against tests/golden/leaderboard.md:
    reviewed by hand once; a change of wording or layout changes that file in the same commit."""
    standard, quick = make_results(rng_seed=1), make_results(rng_seed=2, preset="quick")
    rows = (board_rows(standard, content_hash(standard), "alice", "2026-12-01")
            + board_rows(quick, content_hash(quick), "bob", "2026-12-02"))
    rows[0] |= {"dirty": "true"}
    rows[1] |= {"commit": ""}
    hostile = {**rows[0], "model": "evil|<b>", "twin_of": "", "acc_max": "0.0", "acc_2x": "n/a", "params_unique": "nan",
               "flops_forward": "inf", "oracle_acc_max": "nan", "oracle_loops_max": "", "content_hash": "f" * 64}
    page = render_markdown([*rows, hostile, {**rows[2], "task_version": "2"}], {"toy": 3})
    assert page == (Path(__file__).parent / "golden" / "leaderboard.md").read_text(encoding="utf-8")


def test_the_page_names_a_removed_task_a_missing_preset_and_shows_two_seeds() -> None:
    doc = make_results(seeds=(0, 1))
    rows = [{**r, "preset": ""} for r in board_rows(doc, content_hash(doc), "alice", "2026-12-01")]
    page = render_markdown(rows, {})
    assert "## toy v3, preset -: " in page
    assert "the current toy task is no longer in the suite; these results" in page
    seeds = rows[0]["per_seed_max"].split()
    assert len(seeds) == 2 and f"; seeds {float(seeds[0]):.2f} / {float(seeds[1]):.2f}" in page


@pytest.mark.parametrize(("got", "shown"), [
    (list(range(1, 33)), str(list(range(1, 33)))),  # up to 32 plain integers are shown as they are
    (list(range(1, 34)), "an array"),  # longer, or holding anything but integers: only what it is
    ([1, True], "an array"),
    ([1, 2.0], "an array"),
    ("1 2", "'1 2'"),
])
def test_a_file_of_another_test_set_is_refused_showing_what_it_holds(got, shown) -> None:
    doc = make_results()
    doc["task"] |= {"fingerprint": "0" * 16, "train_difficulties": got}
    assert leaderboard.check_current_task(doc, fake_lookup) == [
        f"task.fingerprint: '{'0' * 16}' is not the fingerprint of the current 'toy' test set ({TOY.fingerprint}); "
        "the file was scored on different test data",
        f"task.train_difficulties: {shown} differs from the current task's {list(TOY.train_difficulties)}"]


# --- reading the board: every refusal in full


def _board_text(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / CSV_NAME
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path


def test_the_board_is_read_up_to_its_size_limit_and_no_further(tmp_path: Path) -> None:
    header = ",".join(columns()) + "\n"
    overhead = len(",".join(["x"] * len(columns())))  # a row's bytes besides its first field, newline included
    total = MAX_BYTES - len(header)
    k = -(-total // (overhead + 100_000))  # fields of ~100 kB (the csv module's limit is 128 KiB)
    sizes = [(total - k * overhead) // k + (i < (total - k * overhead) % k) for i in range(k)]
    lines = [",".join(["x"] * len(columns())).replace("x", "m" * n, 1) for n in sizes]
    text = header + "".join(line + "\n" for line in lines)
    assert len(text) == MAX_BYTES
    assert len(read_board(_board_text(tmp_path, text))) == k
    with pytest.raises(ConfigError, match="larger than"):  # one byte more
        read_board(_board_text(tmp_path, "m" + text))
    with open(tmp_path / CSV_NAME, "r+b") as f:  # a terabyte, sparse: refused after reading MAX_BYTES + 1 bytes
        f.truncate(2**40)
    with pytest.raises(ConfigError) as err:
        read_board(tmp_path)
    assert err.value.problems == [f"{CSV_NAME}: larger than {MAX_BYTES:,} bytes"]


def test_a_board_field_over_the_csv_limit_is_refused_by_line(tmp_path: Path) -> None:
    text = ",".join(columns()) + "\n" + ",".join(["x" * 200_000] + ["x"] * (len(columns()) - 1)) + "\n"
    with pytest.raises(ConfigError) as err:
        read_board(_board_text(tmp_path, text))
    assert err.value.problems == [f"{CSV_NAME}: line 2: field larger than field limit (131072)"]


def test_a_board_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        read_board(_board_text(tmp_path, b"task\xff\n"))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{CSV_NAME}: cannot be read as UTF-8 text ('utf-8' codec can't decode")


def test_a_board_keeps_every_field_as_its_exact_text(tmp_path: Path, submitted: Path) -> None:
    row = read_board(submitted)[0] | {"model": "two\r\nlines, \"quoted\""}
    board_module.write_board(tmp_path, [row], {})
    assert read_board(tmp_path) == [row]


@pytest.mark.parametrize(("header", "tail"), [
    ("", "; missing " + ", ".join(columns())),  # an empty file
    (",".join(c for c in columns() if c != "seeds") + ",extra", "; missing seeds; unexpected 'extra'"),
    (",".join(columns()) + "," + ",".join(f"c{i:03}" for i in range(60)),
     "; unexpected " + ", ".join(f"'c{i:03}'" for i in range(60))[:200]),
])
def test_a_board_with_the_wrong_header_names_what_is_missing_and_unexpected(tmp_path: Path, header, tail) -> None:
    with pytest.raises(ConfigError) as err:
        read_board(_board_text(tmp_path, header + ("\n" if header else "")))
    assert err.value.problems == [f"{CSV_NAME}: the header is not the expected columns {', '.join(columns())}{tail}"]


def test_a_board_names_each_line_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    good = ",".join(["x"] * len(columns()))
    text = "\n".join([",".join(columns()), good, "a,b", good, good + ",y"]) + "\n"
    with pytest.raises(ConfigError) as err:
        read_board(_board_text(tmp_path, text))
    n = len(columns())
    assert err.value.problems == [f"{CSV_NAME}: line 3: 2 fields, expected {n}",
                                  f"{CSV_NAME}: line 5: {n + 1} fields, expected {n}"]


def test_a_submitter_name_is_refused_with_the_rule() -> None:
    assert leaderboard.check_submitter(5) == ["name: expected a string, got 5"]
    assert leaderboard.check_submitter("a/b") == [
        "name: 'a/b' is not allowed; use 1-64 letters, digits, spaces and . _ @ + -, starting and ending with a "
        "letter or digit, without '..' (no path separators or markup)"]


def test_a_submission_to_a_broken_board_names_the_board_and_the_files_own_problems(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    _board_text(results, "task\n")
    header = f"{CSV_NAME}: the header is not the expected columns"
    with pytest.raises(ConfigError) as err:
        submit(write(tmp_path / "r.json", make_results()), results, "a/b", fake_lookup)
    assert [p.split(":")[0] for p in err.value.problems] == ["name", CSV_NAME]
    assert err.value.problems[1].startswith(header) and err.value.problems[1].endswith(" (run `mythbench verify`)")
    with pytest.raises(ConfigError) as err:  # a valid file: only the board is wrong
        submit(write(tmp_path / "r.json", make_results()), results, "alice", fake_lookup)
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(header)


def test_a_submission_is_dated_in_utc_and_stored_as_sorted_indented_utf8(tmp_path: Path, monkeypatch) -> None:
    class Clock(leaderboard.datetime):
        @classmethod
        def now(cls, tz=None):  # late on Dec 31 in UTC; already the next day east of it
            utc = leaderboard.datetime(2026, 12, 31, 23, 30, tzinfo=leaderboard.timezone.utc)
            return utc if tz is leaderboard.timezone.utc else leaderboard.datetime(2027, 1, 1, 9, 30)

    monkeypatch.setattr(leaderboard, "datetime", Clock)
    doc = make_results() | {"command": "mythbench run toy --preset standard  # café"}
    out = submit(write(tmp_path / "r.json", doc), tmp_path / "results", "alice", fake_lookup)
    assert {r["date"] for r in out.rows} == {"2026-12-31"}
    assert out.stored.read_text(encoding="utf-8") == json.dumps(doc, indent=2, sort_keys=True,
                                                                ensure_ascii=False) + "\n"
    assert "café" in out.stored.read_text(encoding="utf-8")


def test_an_invalid_file_is_never_called_a_duplicate(submitted: Path, tmp_path: Path) -> None:
    """Only a valid document has a content hash; a hand-edited board row with a blank one matches nothing."""
    rows = read_board(submitted)
    board_module.write_board(submitted, [rows[0] | {"content_hash": ""}, *rows[1:]], {})
    with pytest.raises(ConfigError) as err:
        submit(write(tmp_path / "one.json", make_results(seeds=(0,))), submitted, "alice", fake_lookup)
    assert err.value.problems and not any("already on the leaderboard" in p for p in err.value.problems)


def test_the_committed_schema_1_submissions_give_their_rows_on_the_committed_board() -> None:
    """Version 1 files had no loop rule: their rows are at the training loop count, labelled `train`."""
    root = Path(__file__).resolve().parent.parent / "results"
    board = read_board(root)
    old = [p for p in sorted((root / "submissions").rglob("*.json"))
           if json.loads(p.read_text())["schema_version"] == 1]
    assert old
    for path in old:
        have = [r for r in board if r["content_hash"] == path.stem]
        want = board_rows(json.loads(path.read_text()), path.stem, have[0]["submitter"], have[0]["date"])
        assert want == have and {r["loop_rule"] for r in want} == {"train"}


def test_a_runs_per_seed_accuracies_are_in_seed_order_with_a_dash_for_a_missing_cell() -> None:
    cell = {"difficulty": 8, "loops": 4, "accuracy": 0.5}
    model = {"runs": [{"seed": 2, "status": "complete", "cells": [cell, {**cell, "loops": 2, "accuracy": 0.1}]},
                      {"seed": 0, "status": "complete", "cells": [{**cell, "difficulty": 4}]},
                      {"seed": 1, "status": "diverged", "cells": [cell]}]}
    assert board_module._per_seed(model, 8, 4) == "- 0.5"
    assert board_module._per_seed(model, 8, 2) == "- 0.1"


def test_a_dirty_tree_and_a_recorded_budget_reach_the_board() -> None:
    config = {"task": "toy", "train": {"steps": 400, "batch_size": 32}, "model": {"d_model": 64}}
    doc = make_results() | {"git": {"commit": "ab" * 20, "dirty": True}, "config": config}
    rows = board_rows(doc, "h", "alice", "2026-12-01")
    assert {(r["dirty"], r["budget"]) for r in rows} == {("true", "400 steps x 32 batch, d_model 64")}
