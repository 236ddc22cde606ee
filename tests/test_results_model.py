"""The results model: the generated reference is current, load() returns the cells as a DataFrame, the scale
report draws stored fits without refitting, and the results modules import one way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hostile.factory import make_results
from pydantic import BaseModel, ValidationError

from mythbench.analysis import fits
from mythbench.core.errors import ConfigError
from mythbench.results import results_doc
from mythbench.results.results_model import Text, rules

ROOT = Path(__file__).resolve().parent.parent
PARITY = ROOT / "results" / "reference" / "quick" / "parity"
SCALE = ROOT / "results" / "reference" / "history" / "scale-parity-v1-quick" / "results.json"


def test_the_committed_schema_reference_is_generated_from_the_model() -> None:
    committed = (ROOT / results_doc.DOC_PATH).read_text(encoding="utf-8")
    assert committed == results_doc.render(), "stale: run `python -m mythbench.results.results_doc --write`"


def test_the_schema_reference_command_checks_writes_and_prints(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    assert results_doc.main(["--check"]) == 1
    assert capsys.readouterr().out == (f"{results_doc.DOC_PATH}: stale; run python -m mythbench.results.results_doc "
                                       "--write\n")
    assert results_doc.main(["--write"]) == 0 and capsys.readouterr().out == ""
    assert (tmp_path / results_doc.DOC_PATH).read_text(encoding="utf-8") == results_doc.render()
    assert results_doc.main(["--check"]) == 0 and capsys.readouterr().out == f"{results_doc.DOC_PATH}: current\n"
    assert results_doc.main([]) == 0 and capsys.readouterr().out == results_doc.render()
    with pytest.raises(SystemExit):
        results_doc.main(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert results_doc.__doc__.splitlines()[0] in usage
    assert f"--write write {results_doc.DOC_PATH}" in usage
    assert f"--check exit 1 if {results_doc.DOC_PATH} is not current" in usage


@pytest.mark.parametrize(("prop", "text"), [
    ({"const": "run"}, '`"run"`'),
    ({"enum": ["a", "b"]}, '`"a"` or `"b"`'),
    ({"type": "array"}, "array of any"),
    ({"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 3}, "array of int (≥ 0) (≤ 3 entries)"),
    ({"type": "object", "additionalProperties": {"type": "number"}}, "object of number"),
    ({"anyOf": [{"type": "string", "pattern": "^(?:a|b)$"}, {"type": "null"}]}, "string (`a\\|b`) \\| null"),
    ({"$ref": "#/$defs/RunV3"}, "[RunV3](#runv3)"),
])
def test_a_schema_property_in_words(prop, text) -> None:
    assert results_doc.type_text(prop) == text


def test_a_model_without_nested_models_or_required_fields_is_one_table() -> None:
    from pydantic import BaseModel, Field

    class Flat(BaseModel):
        """A flat model."""

        a: int = Field(0, description="a count")

    assert results_doc.tables(Flat, set()) == ["### Flat", "", "A flat model.", "",
                                               "| field | type | required | meaning |", "|---|---|---|---|",
                                               "| `a` | int | optional | a count |", ""]
    assert results_doc.tables(Flat, {"Flat"}) == []


def test_load_checks_a_file_unless_told_not_to_and_reads_run_results_only(tmp_path: Path) -> None:
    import mythbench

    doc = make_results()
    doc["models"][0]["runs"][0]["cells"][0]["correct"] = 99  # more than n: not a valid file
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="correct: 99 is more than n = 32"):
        mythbench.load(tmp_path)
    assert mythbench.load(tmp_path, validate=False).correct.max() == 99  # read as it is, for inspection
    path.write_text(json.dumps({"kind": "scale", "schema_version": 1}))
    with pytest.raises(ConfigError) as err:
        mythbench.load(tmp_path, validate=False)
    assert err.value.problems == [f"{path}: kind 'scale'; load() reads run results (a scale file's points are "
                                  "under doc['points'])"]


def test_load_gives_one_row_per_cell_with_provenance() -> None:
    import mythbench

    df = mythbench.load(PARITY)
    doc = json.loads((PARITY / "results.json").read_text())
    n_cells = sum(len(r["cells"]) for m in doc["models"] for r in m["runs"] if r["status"] == "complete")
    assert isinstance(df, pd.DataFrame) and len(df) == n_cells
    assert not df.duplicated(["model", "seed", "difficulty", "loops"]).any()
    for col in ("task", "task_version", "fingerprint", "commit", "schema_version", "family", "split", "headline"):
        assert col in df.columns, col
    assert (df.task == doc["task"]["name"]).all() and str(df.loops.dtype) == "Int64"
    # a file from before twins: its iso-param and iso-flop are the twins of its rdt
    owners = df.drop_duplicates("model").set_index("model").twin_of
    assert owners.isna().rdt and owners.drop("rdt").to_dict() == {"iso-param": "rdt", "iso-flop": "rdt"}
    # the headline cells reproduce the stored summary's headline means
    model = doc["models"][0]
    heads = df[df.headline & (df.model == model["name"])].groupby("difficulty").accuracy.mean()
    for entry in model["summary"]:
        if entry["headline"] is not None:
            assert heads[entry["difficulty"]] == pytest.approx(entry["headline"]["mean"], abs=1e-12)
    assert len(mythbench.load(PARITY / "results.json")) == len(df)


def test_load_validates_and_refuses_scale_files(tmp_path: Path) -> None:
    import mythbench

    doc = json.loads((PARITY / "results.json").read_text())
    doc["models"][0]["runs"][0]["cells"][0]["correct"] = 10**6
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"cells\[0\].correct: 1000000 is more than n"):
        mythbench.load(tmp_path)
    with pytest.raises(ConfigError, match="kind 'scale'"):
        mythbench.load(SCALE)


def test_import_mythbench_and_load_stay_light() -> None:
    code = ("import sys, mythbench; mythbench.load(sys.argv[1]); "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code, str(PARITY)], check=True, timeout=120, cwd=ROOT)


def test_scale_report_draws_stored_fits_without_refitting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mythbench.analysis import fit_engine
    from mythbench.reports import scale_report

    def refit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a report refitted")

    for module, name in ((fits, "fit_power_law"), (fits, "fit_loop_worth"), (fits, "fit_test_time"),
                         (fit_engine, "fit_law")):
        monkeypatch.setattr(module, name, refit)
    doc = json.loads(SCALE.read_text())
    paths = scale_report.write_plots(doc, tmp_path)
    assert [p.name for p in paths] == ["scaling.png", "test_time.png", "exponents.png"]
    assert "Headline" in scale_report.render_markdown(doc)


def test_stored_fits_carry_the_band_and_replicates() -> None:
    import numpy as np

    n = np.geomspace(1e4, 1e6, 6)
    fit = fits.fit_power_law(n, 1.5 + 30 * n ** -0.4, n_bootstrap=40)
    out = fit.to_dict()
    assert len(out["replicates"]["alpha"]) == 40 - out["n_failed"]
    band = out["band"]
    assert len(band["x"]) == len(band["low"]) == len(band["high"]) and all(
        lo <= hi for lo, hi in zip(band["low"], band["high"], strict=True))
    assert band["x"][0] < n.min() and band["x"][-1] > n.max()


def test_the_scale_report_does_not_import_scale() -> None:
    code = "import sys, mythbench.reports.scale_report; assert 'mythbench.experiments.scale' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def _fit_mismatches(new: object, old: object, path: str = "fits") -> list[str]:
    """Where a refit differs from the stored fit: every key, string and point estimate must agree (numbers to
    1e-5 relative, or 1e-9 absolute for parameters at a bound of 0). Bootstrap interval ends are checked for
    presence only: at unbounded or degenerate ends the optimiser's last digits differ between CPUs (an
    AMD EPYC gives tau.high 169 where the stored run gave 4457) and a percentile amplifies them."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            return [f"{path}: keys {sorted(set(old) ^ set(new))} differ"]
        if path.endswith(("intervals", "ratio_interval")):
            return []
        return [m for k in old for m in _fit_mismatches(new[k], old[k], f"{path}.{k}")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [m for i, (a, b) in enumerate(zip(new, old, strict=True)) for m in _fit_mismatches(a, b, f"{path}[{i}]")]
    both_numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (new, old))
    if both_numbers and abs(new - old) <= max(1e-5 * max(abs(new), abs(old)), 1e-9):
        return []
    return [] if new == old else [f"{path}: {new!r} != stored {old!r}"]


@pytest.mark.slow
def test_refitting_the_committed_scale_results_gives_their_stored_fits() -> None:
    """The fit engine (scipy's Huber loss, the stored replicates and bands) leaves the committed numbers as
    they are: the comparisons and test-time curves of the committed points reproduce every stored fit, plus
    the replicates and bands files now carry. (`mythbench fit` now withholds this one-seed ladder's
    comparisons at the gate, and adds curves at the other loop counts.)"""
    from mythbench.analysis.ladder import fit_comparisons, loop_curve

    def strip(x: object) -> object:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("replicates", "band")}
        return [strip(v) for v in x] if isinstance(x, list) else x

    stored = json.loads(SCALE.read_text())
    h, n_boot = stored["scale"]["headline_loops"], stored["scale"]["n_bootstrap"]
    rdt = [p for p in stored["points"] if p["family"] == "rdt" and p["loops"] == h]
    refit = {**fit_comparisons(stored["points"], n_boot, h),
             "test_time": [loop_curve([p for p in rdt if p["width"] == w], n_boot)
                           for w in sorted({p["width"] for p in rdt})]}
    refit = json.loads(json.dumps(refit))
    assert _fit_mismatches(strip(refit), stored["fits"]) == []
    assert refit["matched_tokens"]["families"]["rdt"]["band"]["x"]


def test_load_computes_the_rates_of_a_counts_only_file(tmp_path: Path) -> None:
    import mythbench

    doc = make_results()
    (tmp_path / "results.json").write_text(json.dumps(doc))
    df = mythbench.load(tmp_path)
    assert len(df) == sum(len(r["cells"]) for m in doc["models"] for r in m["runs"])
    assert (df.accuracy == df.correct / df.n).all() and df.ci_low.le(df.accuracy).all()
    assert df.token_accuracy.between(0, 1).all() and df.headline.any()


def test_a_text_field_is_bounded_anchored_and_printable():
    class Doc(BaseModel):
        name: Text("a|b", 3, doc="one letter")
        free: Text(max_len=4)
        default: Text() = "x"  # 256 characters at most

    assert Doc(name="a", free="b c").name == "a" and Doc.model_fields["name"].description == "one letter"
    assert len(Doc(name="a", free="b", default="d" * 256).default) == 256
    for name, free, default in (("ab", "x", ""), ("c", "x", ""), ("a", "abcde", ""), ("a", "a\x00", ""),
                                ("a", "x", "d" * 257)):
        with pytest.raises(ValidationError):
            Doc(name=name, free=free, default=default)


def test_a_rule_raises_all_its_problems_at_once_after_the_fields_are_valid():
    class Doc(BaseModel):
        n: int
        check_n = rules(lambda d: [f"n: {d.n} is odd", f"n: {d.n} is not even"] if d.n % 2 else [])

    assert Doc(n=2).n == 2
    with pytest.raises(ValidationError) as err:
        Doc(n=3)
    assert err.value.errors()[0]["msg"] == "Value error, n: 3 is odd\nn: 3 is not even"
