"""Errors that carry every problem found, so the CLI can print them all at once."""

from __future__ import annotations


class MythbenchError(Exception):
    """Base class for errors the CLI reports without a traceback."""


class ConfigError(MythbenchError):
    """Bad user input: a config, a spec, a submission. Holds every problem, not just the first."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))
