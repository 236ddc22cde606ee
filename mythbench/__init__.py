"""mythbench: a depth-extrapolation benchmark suite for Recurrent-Depth Transformers."""

__version__ = "0.1.0"
