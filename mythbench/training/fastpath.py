"""Opt-in fast paths (torch.compile, bf16 autocast) with a clean fallback to the eager fp32 reference.

Neither is on by default: on the project's 2-core CPU neither paid off end to end for the quick preset's
models (docs/findings.md, "Speed (history)"). `tests/test_fastpath.py` bounds how far their losses may drift
from the reference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch


def maybe_compile(fn: Callable[..., Any], enabled: bool) -> Callable[..., Any]:
    """torch.compile(fn) if enabled. A graph that fails to compile (no C compiler, an unsupported op) runs
    eagerly with a logged warning instead of stopping the run (dynamo's suppress_errors)."""
    if not enabled:
        return fn
    compiled = torch.compile(fn)

    def call(*args: Any, **kwargs: Any) -> Any:
        with torch._dynamo.config.patch(suppress_errors=True):
            return compiled(*args, **kwargs)

    return call


def autocast(device: str, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` ('cpu', 'cuda', 'cuda:1') when asked, else a no-op context."""
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)
