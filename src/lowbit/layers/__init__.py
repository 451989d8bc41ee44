"""Quantized linear layers, one per storage scheme. Each replaces an nn.Linear or a GPT-2 Conv1D."""

from .base import QUANTIZABLE, QuantLinear, float_weight, replace_module
from .codebook import KMeansLinear
from .fp8 import FP8Linear
from .int_weight import IntWeightLinear
from .llm_int8 import LLMInt8Linear
from .nf4 import NF4Linear
from .w8a8 import W8A8Linear

# By class name, for lowbit.load: the JSON names a layer's class and its constructor arguments.
LAYER_CLASSES = {cls.__name__: cls for cls in (IntWeightLinear, NF4Linear, FP8Linear, KMeansLinear, W8A8Linear, LLMInt8Linear)}

__all__ = ["QUANTIZABLE", "QuantLinear", "float_weight", "replace_module", "LAYER_CLASSES", *LAYER_CLASSES]
