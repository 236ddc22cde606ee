"""Walking the results model and a document together: the paths the validator's messages name."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from mythbench.results.schema import dotted

__all__ = ["all_paths", "dotted", "leaf", "required_paths"]


def required_paths(model: type[BaseModel], value: Any, path: tuple = ()) -> list[tuple]:
    """Every field the model requires that is present in value, walking the models together with the document."""
    out: list[tuple] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if isinstance(value, dict) and key in value:
            out += [path + (key,)] if field.is_required() else []
            out += _walk(field.annotation, value[key], path + (key,))
    return out


def _walk(annotation: Any, value: Any, path: tuple) -> list[tuple]:
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return required_paths(annotation, value, path)
    if origin is Annotated:
        return _walk(args[0], value, path)
    if origin in (Union, types.UnionType):
        return [p for arg in args if arg is not type(None) for p in _walk(arg, value, path)]
    if origin is list and isinstance(value, list):
        return [p for i, x in enumerate(value) for p in _walk(args[0], x, path + (i,))]
    if origin is dict and isinstance(value, dict):
        return [p for k, x in value.items() for p in _walk(args[1], x, path + (k,))]
    return []


def all_paths(value: Any, path: tuple = ()) -> list[tuple]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [path] + [p for k, x in items for p in all_paths(x, path + (k,))]


def leaf(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc
