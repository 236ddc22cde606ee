"""mythbench: a depth-extrapolation benchmark suite for Recurrent-Depth Transformers.

`import mythbench` stays light: the model classes (torch), `load` (pandas) and `evaluate` (torch, pandas) are
imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
_LAZY = {"RDTConfig": "mythbench.models.rdt_config", "RDTOutput": "mythbench.models.model",
         "RecurrentDepthTransformer": "mythbench.models.model", "load": "mythbench.results.results_frame",
         "evaluate": "mythbench.training.evaluate", "register_metric": "mythbench.analysis.metrics"}
__all__ = ["RDTConfig", "RDTOutput", "RecurrentDepthTransformer", "__version__", "evaluate", "load", "register_metric"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mythbench' has no attribute {name!r}")
