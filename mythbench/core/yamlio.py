"""Reading YAML files (task specs, presets, run configs, sweep grids) with every failure a ConfigError."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from mythbench.core.errors import ConfigError

MAX_YAML_BYTES = 1024 * 1024  # a config, spec or grid file is a few kB; no more than this is ever read


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a mapping with a key given twice: plain PyYAML keeps the last silently, so a
    config that sets `train.steps` twice would train with whichever came second."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` then an override is not a duplicate
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # the base class reports it
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each key may appear once in a mapping)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely (no Python objects), refusing duplicate keys; raises yaml.YAMLError."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(path: Path, what: str = "file") -> Any:
    """Parse a YAML file with `parse_yaml`, turning every I/O or syntax failure (a duplicate key, a file over
    MAX_YAML_BYTES) into a ConfigError naming the file (`what` names it in the message: "no such task file")."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_YAML_BYTES + 1)
        if len(data) > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: the {what} is over the limit of {MAX_YAML_BYTES:,} bytes")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
