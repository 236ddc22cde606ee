"""`mythbench report --html`: self-contained pages for a run and for the leaderboard, checked in a real headless
browser (Debian's chromium, installed by .ci/run), and the plots they embed."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from test_report import TEST, TRAIN, _write, make_results
from typer.testing import CliRunner

from mythbench.cli import app
from mythbench.reports import report_plots
from mythbench.reports.leaderboard_page import build_leaderboard_page
from mythbench.reports.report import build_report
from mythbench.reports.report_plots import cell_edges, model_label, run_caption

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_RUN = ROOT / "results" / "reference" / "quick" / "parity"  # committed: no training needed
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG = "data:image/png;base64,"
HOSTILE = ["<img src=http://example.com/raw.png>", "![remote](http://example.com/md.png)", "$x^$"]
runner = CliRunner()


def _report_cli(*args: str) -> str:
    out = runner.invoke(app, ["report", *args])
    assert out.exit_code == 0, out.output
    return out.output


class _Tags(HTMLParser):
    """The tags of a page, as a browser's parser sees them (text that looks like a tag is not one)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def sources(self) -> list[str]:
        """Every URL the page would load or link to."""
        return [str(value) for _, attrs in self.tags for name, value in attrs.items()
                if name in ("src", "href", "srcset")]


def _browse(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM chromium renders from `page` (opened from disk, every host name unresolvable) and the URLs the
    page itself requested, from chromium's network log (its own background requests are not the page's)."""
    net_log = tmp_path / f"{page.stem}.netlog.json"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-background-networking", "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={net_log}",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    events = json.loads(net_log.read_text())["events"]
    requested = {e["params"]["url"] for e in events
                 if "url" in e.get("params", {})
                 and str(e["params"].get("network_isolation_key", "")).startswith("file://")}
    return dom, sorted(requested)


@pytest.fixture
def reference_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(REFERENCE_RUN / "results.json", run / "results.json")
    return run


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium), as in .ci/run")
def test_run_and_leaderboard_pages_render_offline_with_their_tables_and_figures(reference_run: Path,
                                                                                tmp_path: Path) -> None:
    assert str(reference_run / "report.html") in _report_cli(str(reference_run), "--html")
    dom, requested = _browse(reference_run / "report.html", tmp_path)
    assert requested == []
    results = json.loads((reference_run / "results.json").read_text())
    for text in ("mythbench report: parity", "900 steps x 64 batch", "Accuracy by difficulty", "Per seed",
                 *(m["name"] for m in results["models"])):
        assert text in dom, text
    assert dom.count("<table") == 6  # provenance, models, the rdt and its twins, per seed, early exit, diagnostics
    figures = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]*)"', dom)
    assert [alt for _, alt in figures] == ["rdt and its twins: accuracy against loops",
                                         "rdt and its twins by difficulty", "rdt: accuracy over difficulty × loops"]
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data, _ in figures)

    board = tmp_path / "results"
    shutil.copytree(ROOT / "results", board, ignore=shutil.ignore_patterns("reference"))
    assert str(board / "leaderboard.html") in _report_cli(str(board), "--html")
    dom, requested = _browse(board / "leaderboard.html", tmp_path)
    assert requested == []
    assert "mythbench leaderboard" in dom and "Stale, kept as history" in dom
    tables = dom.count("<table")
    assert tables >= 1 and len(re.findall(r'<img src="data:image/png;base64,', dom)) == tables  # a plot per table


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium), as in .ci/run")
def test_a_hostile_results_file_makes_no_request_from_its_page(tmp_path: Path) -> None:
    results = make_results()
    results["models"][1]["name"] = " ".join(HOSTILE)
    results["command"] = HOSTILE[0]
    run = _write(tmp_path, results)
    build_report(run, html=True)
    dom, requested = _browse(run / "report.html", tmp_path)
    assert requested == []
    assert "<img src=http" not in dom and HOSTILE[0].replace("<", "&lt;").replace(">", "&gt;") in dom


def test_the_page_is_one_file_whose_only_sources_are_its_own_figures(tmp_path: Path) -> None:
    results = make_results()
    results["models"][1]["name"] = " ".join(HOSTILE)
    page = (tmp_path / "report.html")
    build_report(_write(tmp_path, results), html=True)
    text = page.read_text()
    assert "default-src 'none'; img-src data:" in text  # the browser refuses anything else
    page_tags = _Tags(text)
    sources = page_tags.sources()
    assert len(sources) == 3 and all(source.startswith(PNG) for source in sources)
    markup = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "ul", "li", "table", "thead",
              "tbody", "tr", "th", "td", "img", "code", "strong", "em"}
    assert {tag for tag, _ in page_tags.tags} <= markup  # no script, link, iframe, object...
    assert "url(" not in text


def test_a_hostile_leaderboard_gets_a_page_of_text_and_its_own_figures(tmp_path: Path) -> None:
    with (ROOT / "results" / "leaderboard.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0] |= {"model": HOSTILE[1] + " " + HOSTILE[2], "submitter": HOSTILE[0], "acc_max": "inf", "d_max": "inf",
                "d_2x": "x"}
    with (tmp_path / "leaderboard.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    page_tags = _Tags(build_leaderboard_page(tmp_path).read_text())
    sources = page_tags.sources()
    tables = sum(tag == "table" for tag, _ in page_tags.tags)
    assert len(sources) == tables and all(source.startswith(PNG) for source in sources)


def test_a_run_page_is_written_only_with_html_and_a_leaderboard_page_needs_a_board(tmp_path: Path) -> None:
    run = _write(tmp_path, make_results())
    assert "report.html" not in _report_cli(str(run))
    assert (run / "report.md").read_text().count("](") == 3  # the plots, linked beside the report
    empty = tmp_path / "empty"
    empty.mkdir()
    out = runner.invoke(app, ["report", str(empty), "--html"])
    assert out.exit_code == 2 and "no results.json" in out.output
    (empty / "leaderboard.csv").write_text("task\n")
    out = runner.invoke(app, ["report", str(empty)])
    assert out.exit_code == 2 and "add --html" in out.output
    out = runner.invoke(app, ["report", str(empty), "--html"])
    assert out.exit_code == 2 and "header is not the expected columns" in out.output
    assert not (empty / "leaderboard.html").exists()


def test_the_per_seed_table_shows_every_seed_and_names_a_diverged_one(tmp_path: Path) -> None:
    build_report(_write(tmp_path, make_results()))
    table = (tmp_path / "report.md").read_text().split("## Per seed")[1].split("## Adaptive")[0]
    assert "| model | difficulty | loops | seed 0 | seed 1 |" in table
    assert "| std-iso-param | 5 | — | 0.100 | diverged |" in table
    assert "| rdt | 2 | 2 | 0.900 | 0.850 |" in table  # seed s has s fewer of 20 correct: 18 and 17 at 2 loops


# ---------------------------------------------------------------- the plots (issue 32, item 6)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """The report's figures by file name, as matplotlib drew them."""
    figures: list[Figure] = []
    monkeypatch.setattr(report_plots, "png", lambda fig: figures.append(fig) or b"")
    results = make_results()
    results["config"] = {"train": {"steps": 900, "batch_size": 64}, "model": {"d_model": 64}}
    drawn = report_plots.plots(results, {m["name"]: m["summary"] for m in results["models"]})
    return {plot.file: fig for plot, fig in zip(drawn["rdt"], figures, strict=True)}


def _texts(fig: Figure) -> str:
    titles = [fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)]
    legends = [t.get_text() for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if legend
               for t in legend.get_texts()]
    return "\n".join(titles + legends)


def test_every_plot_names_the_task_budget_and_seeds(drawn: dict[str, Figure]) -> None:
    caption = "toy v3, preset quick, budget 900 steps x 64 batch, d_model 64, seeds 0, 1"
    assert run_caption({**make_results(), "config": {"train": {"steps": 900, "batch_size": 64},
                                                     "model": {"d_model": 64}}}) == caption
    assert set(drawn) == {"acc_vs_loops.png", "vs_twins.png", "heatmap.png"}
    assert all(caption in _texts(fig) for fig in drawn.values())


def test_the_looped_model_is_drawn_with_its_twins_and_no_label_repeats_a_role(drawn: dict[str, Figure]) -> None:
    for name in ("acc_vs_loops.png", "vs_twins.png"):
        assert "std-iso-param" in _texts(drawn[name])
    assert model_label({"name": "iso-param", "role": "iso-param"}) == "iso-param"
    assert model_label({"name": "baseline", "role": "iso-flop"}) == "baseline (iso-flop)"
    assert not re.search(r"(\S+) \(\1\)", "\n".join(_texts(fig) for fig in drawn.values()))
    panels = [ax for ax in drawn["acc_vs_loops.png"].axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["difficulty 2 (train)", "difficulty 3 (train)", "difficulty 5 (test)"]


def test_difficulties_sit_on_a_numeric_axis_at_their_values(drawn: dict[str, Figure]) -> None:
    difficulties = sorted(set(TRAIN) | set(TEST))  # 2, 3, 5: evenly spaced categories would put 5 at 2
    vs_twins = drawn["vs_twins.png"].axes[0]
    assert {tuple(line.get_xdata()) for line in vs_twins.get_lines() if len(line.get_xdata()) == 3} == {
        tuple(difficulties)}
    heatmap = drawn["heatmap.png"].axes[0]
    assert list(heatmap.get_yticks()) == difficulties
    assert heatmap.get_ylim() == pytest.approx((1.5, 6.0))  # cells centred on 2, 3, 5: edges 1.5, 2.5, 4, 6


def test_cell_edges_centre_each_cell_on_its_value() -> None:
    assert list(cell_edges([2, 3, 5])) == [1.5, 2.5, 4.0, 6.0]
    assert list(cell_edges([7])) == [6.5, 7.5]
