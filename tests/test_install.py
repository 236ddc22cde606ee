"""One installed name: the distribution adds only `mythbench` (and its console script) to site-packages;
the repository's top-level tasks/, baselines/ and cli.py install as mythbench.tasks, .baselines and .cli."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_distribution_adds_only_mythbench() -> None:
    dist = metadata.distribution("mythbench")
    assert (dist.read_text("top_level.txt") or "").split() == ["mythbench"]
    names = {top for top, dists in metadata.packages_distributions().items() if "mythbench" in dists}
    assert names == {"mythbench"}
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "console_scripts"] == [
        ("mythbench", "mythbench.cli:app")]


def test_the_generic_names_are_not_importable_from_the_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # away from the repository root, whose folders are importable from there
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(ROOT))])
    for name in ("tasks", "baselines", "cli"):
        spec = importlib.util.find_spec(name)
        assert spec is None or not str(spec.origin).startswith(str(ROOT)), name
    for name in ("mythbench.tasks", "mythbench.baselines", "mythbench.cli"):
        assert importlib.util.find_spec(name) is not None, name


def test_pyproject_maps_the_top_level_folders_into_the_namespace() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    assert all(p == "mythbench" or p.startswith("mythbench.") for p in tool["packages"])
    assert "py-modules" not in tool
    assert tool["package-dir"] == {"mythbench.tasks": "tasks", "mythbench.baselines": "baselines"}
    assert project["project"]["scripts"] == {"mythbench": "mythbench.cli:app"}
    link = ROOT / "mythbench" / "cli.py"
    assert link.is_symlink() and link.resolve() == (ROOT / "cli.py").resolve()
    packages = {".".join(p.relative_to(ROOT / "mythbench").parts) for p in (ROOT / "mythbench").rglob("__init__.py")}
    listed = {p.removeprefix("mythbench").removeprefix(".") for p in tool["packages"]} - {"tasks", "baselines"}
    assert {p.rpartition("__init__.py")[0].rstrip(".") for p in packages} == listed  # every subpackage ships
