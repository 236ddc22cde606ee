"""mythbench: a depth-extrapolation benchmark suite for Recurrent-Depth Transformers."""

from mythbench.model import RDTConfig, RDTOutput, RecurrentDepthTransformer

__version__ = "0.1.0"
__all__ = ["RDTConfig", "RDTOutput", "RecurrentDepthTransformer", "__version__"]
