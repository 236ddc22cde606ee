"""Walking schema nodes and documents together: the paths the validator's messages name."""

from __future__ import annotations

from typing import Any

from mythbench.results.jsonshape import Arr, Node, Obj
from mythbench.results.scale_schema import Either, Pair


def dotted(path: tuple) -> str:
    """('models', 0, 'runs') -> 'models[0].runs', the form the validator's messages use."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def required_paths(node: Node, value: Any, path: tuple = ()) -> list[tuple]:
    """Every schema-required field present in value, walking the schema together with the document."""
    if isinstance(node, Either):
        node = node.present if isinstance(value, dict) and node.marker in value else node.absent
    if hasattr(node, "node"):  # Nullable, Ruled
        return required_paths(node.node, value, path)
    out: list[tuple] = []
    if isinstance(node, Obj) and isinstance(value, dict):
        for key, child in node.required.items():
            out += [path + (key,)] + required_paths(child, value[key], path + (key,))
        for key, child in node.optional.items():
            if key in value:
                out += required_paths(child, value[key], path + (key,))
    elif isinstance(node, Arr) and isinstance(value, list):
        for i, x in enumerate(value):
            out += required_paths(node.item, x, path + (i,))
    elif isinstance(node, Pair) and isinstance(value, list):
        out += required_paths(node.first, value[0], path + (0,)) + required_paths(node.second, value[1], path + (1,))
    return out


def all_paths(value: Any, path: tuple = ()) -> list[tuple]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [path] + [p for k, x in items for p in all_paths(x, path + (k,))]


def leaf(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc
