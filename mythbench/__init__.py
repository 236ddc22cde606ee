"""mythbench: a depth-extrapolation benchmark suite for Recurrent-Depth Transformers."""

from mythbench.models.model import RDTOutput, RecurrentDepthTransformer
from mythbench.models.rdt_config import RDTConfig

__version__ = "0.1.0"
__all__ = ["RDTConfig", "RDTOutput", "RecurrentDepthTransformer", "__version__"]
