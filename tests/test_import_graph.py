"""The project's import graph, read statically (ast): no cycles, every import respects the layer order of
docs/DESIGN.md, the core never names a plugin, and no function-local import of a project module (the usual
way to hide a cycle) outside a short allow-list whose every entry says why.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# installed package -> its folder in the repository (pyproject's package-dir); cli.py installs as mythbench.cli
SOURCES = {"mythbench": ROOT / "mythbench", "mythbench.tasks": ROOT / "tasks",
           "mythbench.baselines": ROOT / "baselines"}

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("mythbench.core",)),
    ("models", ("mythbench.models", "mythbench")),  # "mythbench": the package's __init__ (re-exports the model)
    ("tasks", ("mythbench.tasks",)),
    ("baselines", ("mythbench.baselines",)),
    ("config", ("mythbench.config", "mythbench.tune_config")),
    ("analysis", ("mythbench.analysis",)),
    ("results", ("mythbench.results",)),
    ("reports", ("mythbench.reports",)),
    ("training", ("mythbench.training",)),
    ("experiments", ("mythbench.experiments",)),
    ("cli", ("mythbench.cli",)),
]
# Plugin packages: found through the registries, imported by name by no module outside themselves.
PLUGINS = ("mythbench.baselines",)

# Function-local imports of project modules that are allowed, and why.
LOCAL_ALLOWED = {
    ("mythbench.models.registry", "mythbench.models.model"):
        "the RDT's module imports torch; loaded when a model is built, so ls/describe/config errors stay light",
    ("mythbench.baselines.standard", "mythbench.baselines.standard_model"):
        "the standard transformer's module imports torch; loaded when such a model is built",
    ("mythbench.baselines.openmythos", "mythbench.baselines.openmythos_model"):
        "needs the optional open-mythos package; imported only when such a model is built",
    ("mythbench.results.leaderboard", "mythbench.tasks"):
        "the default task lookup is resolved when a submission is checked (tests substitute the suite)",
    ("mythbench.config", "mythbench.tasks"):
        "a config's task name is checked when it is resolved; `mythbench --help` imports config, not the suite",
    ("mythbench.training.bench_worker", "mythbench.models.registry"):
        "bench --suite runs the worker in a checkout of another commit: it imports that checkout's modules",
    ("mythbench.training.bench_worker", "mythbench.training.bench"):
        "bench --suite runs the worker in a checkout of another commit: it imports that checkout's modules",
}
# The command line is the top layer and nothing imports it, so its commands may import what they call
# locally (no cycle can hide there): `mythbench --help` then loads neither torch nor scipy.
LOCAL_ANYTHING = ("mythbench.cli",)


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            if path.is_symlink():  # mythbench/cli.py links to the top-level cli.py
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[0] in ("tasks", "baselines") and package == "mythbench":
                continue  # a non-editable layout never has these here; be safe
            name = ".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts))
            out[name] = path
    out["mythbench.cli"] = ROOT / "cli.py"
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _target(name: str) -> str | None:
    """The project module `name` refers to (itself, or the nearest enclosing module), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported project module, inside a function?) for every import statement of `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((t, local) for a in child.names if (t := _target(a.name)))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for a in child.names:
                    t = _target(f"{base}.{a.name}") if f"{base}.{a.name}" in MODULES else _target(base)
                    if t:
                        found.append((t, local))
            visit(child, local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(module: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            match = module == p if p == "mythbench" else module == p or module.startswith(p + ".")
            if match and len(p) > best:
                best, level = len(p), i
    assert level is not None, f"{module} is in no layer of LAYERS"
    return level


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    return out


def test_the_graph_sees_the_project() -> None:
    assert {"mythbench", "mythbench.cli", "mythbench.tasks.registry", "mythbench.baselines.matching",
            "mythbench.models.model", "mythbench.training.harness"} <= set(MODULES)
    assert ("mythbench.models.layers", False) in GRAPH["mythbench.models.model"]


def test_no_import_cycles() -> None:
    edges = {m: {t for t, _ in GRAPH[m] if t != m} for m in MODULES}
    assert _cycles(edges) == []


def test_every_module_is_in_a_layer_and_imports_only_downwards() -> None:
    wrong = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
             for m in MODULES for t, _ in GRAPH[m]
             if _layer(t) > _layer(m)]
    assert wrong == []


def test_the_core_never_names_a_plugin() -> None:
    def plugin(name: str) -> str | None:
        return next((p for p in PLUGINS if name == p or name.startswith(p + ".")), None)

    wrong = [f"{m} imports {t}" for m in MODULES for t, _ in GRAPH[m] if plugin(t) and plugin(t) != plugin(m)]
    assert wrong == []


def test_no_function_local_import_of_a_project_module_outside_the_allow_list() -> None:
    assert [m for m in MODULES for t, _ in GRAPH[m] if t in LOCAL_ANYTHING] == []
    local = {(m, t) for m in MODULES if m not in LOCAL_ANYTHING for t, is_local in GRAPH[m] if is_local and t != m}
    assert local - set(LOCAL_ALLOWED) == set()
    assert set(LOCAL_ALLOWED) - local == set(), "an allow-list entry no longer needed: remove it"
