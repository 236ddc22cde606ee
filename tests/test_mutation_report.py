"""mutation/report.py: verdicts from separate mutmut runs add up, and an edited function loses its own."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutation_report", ROOT / "mutation" / "report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

MODULE = "mythbench/analysis/metrics.py"


def meta(codes: dict[str, list[int | None]], hashes: dict[str, str]) -> dict:
    """A mutmut `.meta` for MODULE with these functions' exit codes."""
    return {"exit_code_by_key": {f"mythbench.analysis.metrics.{function}__mutmut_{n}": code
                                 for function, function_codes in codes.items()
                                 for n, code in enumerate(function_codes, start=1)},
            "hash_by_function_name": hashes}


def test_meta_functions_groups_by_function_in_mutant_order():
    parsed = report.meta_functions(meta({"x_f": [1, None, 0], "xǁMǁrate": [33]},
                                        {"x_f": "aa", "xǁMǁrate": "bb"}), MODULE)
    assert parsed == {"x_f": {"hash": "aa", "codes": [1, None, 0]}, "xǁMǁrate": {"hash": "bb", "codes": [33]}}


def test_meta_functions_refuses_a_gap_in_the_numbering():
    broken = meta({"x_f": [1, 1]}, {"x_f": "aa"})
    broken["exit_code_by_key"]["mythbench.analysis.metrics.x_f__mutmut_4"] = 1
    with pytest.raises(ValueError, match="x_f"):
        report.meta_functions(broken, MODULE)


def test_merge_keeps_verdicts_of_unchanged_functions_and_drops_edited_ones():
    recorded = {"x_same": {"hash": "aa", "codes": [1, 0, 1]},
                "x_edited": {"hash": "bb", "codes": [1, 1]},
                "x_gone": {"hash": "cc", "codes": [1]}}
    current = {"x_same": {"hash": "aa", "codes": [None, 1, None]},  # this run reran mutant 2 only
               "x_edited": {"hash": "b2", "codes": [None, None]},
               "x_new": {"hash": "dd", "codes": [0]}}
    assert report.merge(recorded, current) == {"x_same": {"hash": "aa", "codes": [1, 1, 1]},
                                               "x_edited": {"hash": "b2", "codes": [None, None]},
                                               "x_new": {"hash": "dd", "codes": [0]}}


def test_merge_drops_verdicts_when_the_mutant_count_changed_under_the_same_hash():
    assert report.merge({"x_f": {"hash": "aa", "codes": [1]}},
                        {"x_f": {"hash": "aa", "codes": [None, None]}}) == {"x_f": {"hash": "aa",
                                                                                    "codes": [None, None]}}


def test_record_run_reads_every_meta_file(tmp_path: Path):
    folder = tmp_path / "mythbench" / "analysis"
    folder.mkdir(parents=True)
    (folder / "metrics.py.meta").write_text(json.dumps(meta({"x_f": [1, 0]}, {"x_f": "aa"})))
    (folder / "__init__.py.meta").write_text(json.dumps(meta({}, {})))  # no functions: no row
    recorded = {MODULE: {"x_f": {"hash": "aa", "codes": [1, 1]}}, "mythbench/other.py": {}}
    assert report.record_run(recorded, tmp_path) == {MODULE: {"x_f": {"hash": "aa", "codes": [1, 0]}},
                                                     "mythbench/other.py": {}}


def test_record_text_is_the_record_as_json():
    record = {MODULE: {"x_f": {"hash": "aa", "codes": [1, None]}, "xǁMǁrate": {"hash": "bb", "codes": [0]}},
              "mythbench/models/ffn.py": {"x_g": {"hash": "cc", "codes": [24]}}}
    assert json.loads(report.record_text(record)) == record


def test_table_counts_each_kind_and_scores_without_equivalents():
    record = {MODULE: {"x_f": {"hash": "aa", "codes": [1, 3, 0, 0, 24, None, 33]}}}
    equivalent = {"mythbench.analysis.metrics.x_f__mutmut_3": "why"}
    rows = report.table(record, equivalent).splitlines()
    # 7 mutants: killed 1 and 3, survived 0 and 33, one 0 equivalent, timeout 24, one not run
    assert rows[2] == f"| {MODULE} | 7 | 2 | 2 | 1 | 1 | 1 | 60.0% |"
    assert rows[3] == "| **all** | 7 | 2 | 2 | 1 | 1 | 1 | 60.0% |"


def test_every_listed_equivalent_mutant_is_in_the_committed_record():
    record = json.loads((ROOT / "mutation" / "verdicts.json").read_text())
    names = {f"{report.module_prefix(module)}{function}__mutmut_{n}"
             for module, functions in record.items() for function, entry in functions.items()
             for n in range(1, len(entry["codes"]) + 1)}
    assert set(report.load_equivalent(ROOT / "mutation" / "equivalent.yaml")) <= names


def test_restore_run_writes_recorded_verdicts_of_unchanged_functions_into_unrun_mutants(tmp_path: Path):
    folder = tmp_path / "mythbench" / "analysis"
    folder.mkdir(parents=True)
    meta_path = folder / "metrics.py.meta"
    meta_path.write_text(json.dumps(meta({"x_same": [None, 0, None, None, None, None], "x_edited": [None]},
                                         {"x_same": "aa", "x_edited": "b2"})))
    recorded = {MODULE: {"x_same": {"hash": "aa", "codes": [1, 1, None, 0, 24, 0]},
                         "x_edited": {"hash": "bb", "codes": [1]}}}
    equivalent = {"mythbench.analysis.metrics.x_same__mutmut_6": "behaves as the original"}
    # mutant 2 was run now; 3 has no verdict; 4 survived (a new test may kill it), 6 survived as listed
    # equivalent; x_edited changed
    assert report.restore_run(recorded, tmp_path, equivalent) == 3
    assert list(json.loads(meta_path.read_text())["exit_code_by_key"].values()) == [1, 0, None, None, 24, 0, None]


def test_retry_survivors_clears_every_verdict_but_kills_timeouts_and_listed_equivalents(tmp_path: Path):
    folder = tmp_path / "mythbench" / "analysis"
    folder.mkdir(parents=True)
    meta_path = folder / "metrics.py.meta"
    meta_path.write_text(json.dumps(meta({"x_f": [1, 0, 33, None, 24, 3, 5, 0]}, {"x_f": "aa"})))
    equivalent = {"mythbench.analysis.metrics.x_f__mutmut_8": "behaves as the original"}
    assert report.retry_survivors(tmp_path, equivalent) == 3
    assert list(json.loads(meta_path.read_text())["exit_code_by_key"].values()) == [
        1, None, None, None, 24, 3, None, 0]
