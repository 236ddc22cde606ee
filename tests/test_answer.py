"""The generated blocks of README.md (the answer table) and results/README.md (the reference index): they equal
what the generators make from the committed results, and the generators say what the files say."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.core.errors import ConfigError
from mythbench.reports.answer import accuracy_text, target_difficulties, task_table
from mythbench.reports.readme_blocks import GENERATED, markers, read_block, replace_block, stale_pages, write_pages
from mythbench.reports.reference_index import NOT_RECORDED, index_row, reference_index

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_pages_match_their_generators():
    """README's answer table and results/README's index are what the committed results give now: after new
    references, `mythbench answer --write`."""
    assert stale_pages(ROOT) == []


def _checkout(tmp_path: Path) -> Path:
    """The two pages copied, the committed references linked: a checkout whose pages may be changed."""
    for page in GENERATED:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, tmp_path / page)
    (tmp_path / "results" / "reference").symlink_to(ROOT / "results" / "reference")
    return tmp_path


@pytest.mark.slow
def test_a_stale_block_is_rewritten_and_the_prose_around_it_kept(tmp_path):
    root = _checkout(tmp_path)
    page = root / "README.md"
    fresh = page.read_text()
    block = read_block(fresh, "answer")
    page.write_text(fresh.replace(block, re.sub(r"\d\.\d{3} \[", "9.999 [", block, count=1)))  # one mean changed
    assert stale_pages(root) == ["README.md"]
    assert write_pages(root) == [page]
    assert page.read_text() == fresh
    assert write_pages(root) == []


def test_a_page_without_its_markers_is_refused_and_no_page_is_written(tmp_path):
    root = _checkout(tmp_path)
    begin, _ = markers("answer")
    (root / "README.md").write_text((ROOT / "README.md").read_text().replace(begin, ""))
    index = root / "results" / "README.md"
    index.write_text(replace_block(index.read_text(), "reference-index", "stale\n"))
    with pytest.raises(ConfigError, match="README.md: needs exactly one line '<!-- BEGIN generated: answer -->'"):
        write_pages(root)
    assert read_block(index.read_text(), "reference-index") == "stale\n"


MARKERLESS = st.text(st.characters(blacklist_characters="<"), max_size=200)


@settings(deadline=None)  # pure string work; a loaded machine must not fail it
@given(before=MARKERLESS, content=MARKERLESS.map(lambda t: t + "\n"), after=MARKERLESS)
def test_replace_block_changes_only_the_block(before, content, after):
    begin, end = markers("x")
    page = f"{before}\n{begin}\nold\n{end}{after}"
    new = replace_block(page, "x", content)
    assert read_block(new, "x") == content
    assert new == f"{before}\n{begin}\n{content}{end}{after}"


def test_markers_in_the_wrong_order_or_twice_are_named():
    begin, end = markers("x")
    with pytest.raises(ConfigError, match="comes before"):
        read_block(f"{end}\n{begin}\n", "x")
    with pytest.raises(ConfigError, match="found 2"):
        read_block(f"{begin}\n{begin}\n{end}\n", "x")


def test_the_answer_names_what_each_reference_trained():
    """The control trained as a run's main model (named `rdt` in its file) is the control; a twin from a file
    before `twin_of` is named after its looped model; what no reference holds is named, not left out."""
    table, notes = task_table("chain-grows", ROOT)
    assert table["model"].tolist() == ["control", "control", "control-iso-param"]
    assert table["twin of"].tolist() == ["—", "—", "control"]
    assert table["d = 12 (2x)"].iloc[0] == "0.417 [0.387, 0.449] (0.41 / 0.45 / 0.39)"
    assert "not a difficulty of chain-grows v1: 1.5x = 9" in notes
    assert "no committed reference holds `rdt`, `rdt-iso-param`, `rdt-iso-flop`, `control-iso-flop` on chain-grows" \
        in notes


def test_targets_are_the_multiples_that_are_difficulties_of_the_task():
    task = {"train_difficulties": [1, 2, 3, 4, 5, 6], "test_difficulties": [6, 8, 12, 16, 24]}
    assert target_difficulties(task) == {1.0: 6, 1.5: None, 2.0: 12, 4.0: 24}
    odd = {"train_difficulties": [1, 3], "test_difficulties": [4, 5, 6, 12]}  # 1.5 x 3 = 4.5 is not 4 or 5
    assert target_difficulties(odd) == {1.0: 3, 1.5: None, 2.0: 6, 4.0: 12}


def test_one_seed_gets_its_wilson_interval_and_several_their_bootstrap_and_each_value():
    assert accuracy_text([(512, 512)]) == "1.000 [0.993, 1.000]"
    assert accuracy_text([(512, 512), (0, 512)], [4.0, 6.0]) == "0.500 [0.000, 1.000] (1.00 / 0.00) @5.0 loops"


def test_a_field_a_results_file_does_not_record_is_said_so():
    row = index_row("reference/x", {"kind": "run"})
    for column in ("command", "commit", "seeds", "wall time", "cells' training", "status", "task"):
        assert row[column] == NOT_RECORDED, column
    assert row["budget"] == f"{NOT_RECORDED}, steps {NOT_RECORDED}"


def test_a_ladder_budget_is_its_points_steps_and_a_dirty_tree_is_named():
    doc = {"kind": "scale", "preset": "quick", "git": {"commit": "0123456789", "dirty": True}, "wall_time_s": 75,
           "config": {"train": {"steps": 450, "batch_size": 128}, "scale": {"steps": 400}}}
    row = index_row("reference/x", doc)
    assert (row["budget"], row["commit"], row["wall time"]) == ("quick, 400 x 128", "0123456 (uncommitted changes)",
                                                                "1.2 min")


def test_a_run_that_reused_its_cells_shows_their_summed_training_time_beside_its_own_wall_time():
    doc = {"kind": "run", "wall_time_s": 0.6,
           "models": [{"runs": [{"train": {"wall_time_s": 90.0}}, {"train": {"wall_time_s": 30.0}}]},
                      {"runs": [{"train": {"wall_time_s": 60.0}}, {"status": "failed"}]}]}
    row = index_row("reference/x", doc)
    assert (row["wall time"], row["cells' training"]) == ("1 s", "3.0 min")
    assert index_row("reference/x", {"points": [{"train": {"wall_time_s": 45}}]})["cells' training"] == "45 s"


def test_a_search_lists_its_trial_budget_and_seeds():
    doc = {"kind": "tune", "preset": "standard", "search": {"steps": 750, "seeds": [0, 1]},
           "config": {"train": {"steps": 1500, "batch_size": 128}}}
    row = index_row("reference/x", doc)
    assert (row["kind"], row["budget"], row["seeds"]) == ("tune", "standard, 750 x 128", "0, 1")


def test_the_index_lists_every_reference_folder_history_included():
    folders = {p.parent.relative_to(ROOT / "results").as_posix()
               for name in ("results.json", "tune.json") for p in (ROOT / "results" / "reference").rglob(name)}
    listed = {f.split("](")[0].lstrip("[") for f in reference_index(ROOT / "results" / "reference")["folder"]}
    assert listed == folders and any(f.startswith("reference/history/") for f in folders)


def test_the_command_refuses_a_checkout_without_the_pages(tmp_path):
    result = CliRunner().invoke(app, ["answer", "--write", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_the_readme_summary_quotes_only_numbers_of_the_answer_table():
    """The sentence under the table that says what the references answer cites the table: when new references
    change the table, a number the summary still quotes from the old one fails here."""
    readme = (ROOT / "README.md").read_text()
    block = read_block(readme, "answer")
    summary = readme[readme.index("What the references answer so far"):readme.index("## Reading a run's outputs")]
    quoted = re.findall(r"\d\.\d{3}", summary)
    assert quoted and [q for q in quoted if q not in block] == []
