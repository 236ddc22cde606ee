"""Errors that carry every problem found, so the CLI can print them all at once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MythbenchError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class ConfigError(MythbenchError):
    """Bad user input: a config, a spec, a submission. Holds every problem, not just the first."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def known_hint(name: str, known: Iterable[str], prefix: str = "") -> str:
    """What follows "unknown X 'name'": " (did you mean 'parity'?)" with the known names closest to a typo, else
    " (known: ...)" with all of them, so every such message names its fix. Names are compared without the
    `prefix` they all share (a config section) and shown with it."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        return f" (did you mean {' or '.join(repr(prefix + k) for k in close)}?)"
    return f" (known: {', '.join(known) or 'none'})"
