"""Finding tasks: families by name in code, benchmark tasks by name from the packaged YAML specs.

Adding a task means adding a YAML file here (or passing your own file to `load_task_file`); adding a
family means one module whose class is decorated with `register_task_family`, imported by the package's
`__init__`. Nothing outside `tasks/` has to change.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from mythbench.tasks.base import Family
from mythbench.tasks.spec import parse_spec
from mythbench.tasks.task import Task

from mythbench.core.errors import ConfigError, known_hint
from mythbench.core.yamlio import load_yaml

# name -> family class; each family module registers its class (the package imports every family module)
FAMILIES: dict[str, type[Family]] = {}


def register_task_family(family: type[Family]) -> type[Family]:
    """Class decorator: a task family registers itself under its `name`."""
    FAMILIES[family.name] = family
    return family


def _spec_dir() -> Path:
    return Path(str(resources.files(__package__)))


def list_tasks() -> list[str]:
    """Names of the packaged benchmark tasks (one YAML spec each), sorted."""
    return sorted(p.stem for p in _spec_dir().glob("*.yaml"))


def load_task_file(path: str | Path) -> Task:
    """A task from any YAML spec file, validated like the packaged ones; ConfigError lists every problem."""
    path = Path(path)
    spec, family = parse_spec(load_yaml(path, "task file"), FAMILIES, str(path))
    return Task(spec, family)


@cache
def _builtin(name: str) -> Task:
    task = load_task_file(_spec_dir() / f"{name}.yaml")
    if task.spec.name != name:
        raise ConfigError(f"{name}.yaml: the spec's name {task.spec.name!r} must match its file name")
    return task


def get_task(name: str) -> Task:
    """A packaged task by name, or a task from a YAML file when `name` ends in .yaml/.yml."""
    if not isinstance(name, str):
        raise ConfigError(f"task name must be a string, got {type(name).__name__}")
    if name.endswith((".yaml", ".yml")):
        return load_task_file(name)
    known = list_tasks()
    if name not in known:
        raise ConfigError(f"unknown task {name!r}{known_hint(name, known)}; or give a task file (.yaml)")
    return _builtin(name)
