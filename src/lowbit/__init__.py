"""lowbit: run and train language models in low precision."""

from .api import load, quantize, save
from .models.fuse import fuse_projections
from .models.fused_norms import fuse_norms
from .methods import AWQ, FP8, GPTQ, NF4, RTN, W8A8, KMeans, LLMInt8, SmoothQuant
from .select import select_modules

__version__ = "0.1.0"
__all__ = ["quantize", "save", "load", "select_modules", "fuse_projections", "fuse_norms", "RTN", "NF4", "FP8", "W8A8", "LLMInt8", "KMeans", "GPTQ", "AWQ", "SmoothQuant"]
