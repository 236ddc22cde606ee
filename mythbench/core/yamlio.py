"""Reading YAML files (task specs, presets, run configs, sweep grids) with every failure a ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mythbench.core.errors import ConfigError


def load_yaml(path: Path, what: str = "file") -> Any:
    """Parse a YAML file with safe_load, turning every I/O or syntax failure into a ConfigError naming the
    file (`what` names it in the message: "no such task file")."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
