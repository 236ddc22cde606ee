"""`mythbench bench --suite`: what it reports and which code it times (not how fast anything is)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.training import bench_worker
from mythbench.training.bench_suite import bare_matmul_share, ratio_summary

ROOT = Path(__file__).resolve().parents[1]
IN_GIT = shutil.which("git") is not None and subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                                            capture_output=True).returncode == 0
needs_git = pytest.mark.skipif(not IN_GIT, reason="--against checks out a commit of this repository's history")
seconds = st.lists(st.floats(1e-4, 10.0), min_size=1, max_size=9)


@given(seconds, st.data())
def test_ratio_summary_is_the_median_per_repeat_speedup(before, data):
    after = data.draw(st.lists(st.floats(1e-4, 10.0), min_size=len(before), max_size=len(before)))
    summary = ratio_summary(before, after)
    assert summary["low"] <= summary["median"] <= summary["high"]
    assert ratio_summary(before, before)["median"] == pytest.approx(1.0)
    assert ratio_summary(before, [b / 2 for b in before])["median"] == pytest.approx(2.0)  # twice as fast


def test_bare_matmuls_count_only_two_operand_products():
    shapes = Counter({("aten::mm", json.dumps([[64, 32], [32, 16]])): 3,
                      ("aten::addmm", json.dumps([[16], [64, 32], [32, 16]])): 1,
                      ("aten::_grouped_mm", json.dumps([[64, 32], [4, 32, 16], [4]])): 5})
    assert bare_matmul_share(shapes, peak=1e18) > 0
    assert math.isnan(bare_matmul_share(Counter({("aten::_grouped_mm", "[]"): 1}), peak=1.0))  # nothing timed


@needs_git
def test_suite_at_its_smallest_prints_every_section_and_times_the_other_commit_from_its_checkout(tmp_path):
    out = tmp_path / "suite.json"
    res = CliRunner().invoke(app, ["bench", "parity", "--suite", "--batch", "2", "--seq", "8", "--repeats", "1",
                                   "--against", "HEAD", "--json", str(out)])
    assert res.exit_code == 0, res.output
    for heading in ("this code against", "rdt against openmythos", "fp32 matmul peak", "ceilings",
                    "mythbench ls", "mythbench describe parity"):
        assert heading in res.output
    result = json.loads(out.read_text())
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    code = result["code"]
    assert code["against"] == head
    assert [(r["model"], r["kind"]) for r in code["rows"]] == [
        (m, k) for m in ("rdt", "control") for k in ("train", "sweep")]
    assert all(r["low"] <= r["median"] <= r["high"] and r["before_s"] > 0 for r in code["rows"])
    before, after = code["imported_from"]["before"], code["imported_from"]["after"]
    checkout = Path(before["mythbench"]).parent
    assert checkout != ROOT and before == {"mythbench": str(checkout / "mythbench"),
                                           "mythbench.tasks": str(checkout / "tasks"),
                                           "mythbench.baselines": str(checkout / "baselines")}
    assert Path(after["mythbench.tasks"]) == ROOT / "tasks"
    assert not checkout.exists()  # the temporary worktree is removed
    shares = result["ceilings"]["matmul_share"]
    assert all(0 < shares[kind][family] < 1 for kind in ("train", "infer") for family in ("openmythos", "rdt"))
    assert "any code with its matmuls" in res.output
    assert set(result["cli_s"]) == {"ls", "describe parity"}


def test_an_unknown_commit_is_a_config_error():
    res = CliRunner().invoke(app, ["bench", "parity", "--suite", "--batch", "2", "--seq", "8", "--repeats", "1",
                                   "--against", "no-such-commit"])
    assert res.exit_code == 2 and "no-such-commit" in res.output


def test_against_without_the_suite_is_refused_rather_than_ignored():
    res = CliRunner().invoke(app, ["bench", "parity", "--repeats", "1", "--against", "HEAD"])
    assert res.exit_code == 2 and "--against HEAD: compares code only under --suite" in res.output


def test_the_worker_imports_every_package_from_the_checkout_it_runs_in(tmp_path):
    """The editable install maps mythbench.tasks and mythbench.baselines to this checkout's folders; the worker
    must take the other commit's."""
    for folder in ("mythbench", "tasks", "baselines"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    worker = Path(bench_worker.__file__).read_text().replace('if __name__ == "__main__":\n    serve()', "")
    probe = worker + ("\nuse_checkout(Path.cwd())\nprint(json.dumps({n: sys.modules[n].__file__ for n in "
                      "('mythbench', 'mythbench.tasks', 'mythbench.baselines')}))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {"mythbench": str(tmp_path / "mythbench" / "__init__.py"),
                                       "mythbench.tasks": str(tmp_path / "tasks" / "__init__.py"),
                                       "mythbench.baselines": str(tmp_path / "baselines" / "__init__.py")}


def test_options_the_suite_sets_itself_are_refused_together():
    res = CliRunner().invoke(app, ["bench", "parity", "--suite", "--family", "standard", "--threads", "1"])
    assert res.exit_code == 2
    assert "--family: --suite chooses it itself" in res.output and "--threads" in res.output


@needs_git
def test_a_commit_whose_code_cannot_time_the_models_is_a_config_error():
    first = subprocess.run(["git", "-C", str(ROOT), "rev-list", "--max-parents=0", "HEAD"], capture_output=True,
                           text=True).stdout.split()
    if not first:
        pytest.skip("no git history here")
    res = CliRunner().invoke(app, ["bench", "parity", "--suite", "--batch", "2", "--seq", "8", "--repeats", "1",
                                   "--against", first[0]])
    assert res.exit_code == 2 and "cannot build or time the models" in res.output
