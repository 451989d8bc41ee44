"""The matmuls behind the quantized layers: a reference torch path everywhere, Triton kernels on
CUDA, registered with torch.library so torch.compile sees them."""

from .int8 import quantize_rows, scaled_int8_mm
from .w4a16 import w4a16_linear, w4a16_matmul

__all__ = ["quantize_rows", "scaled_int8_mm", "w4a16_linear", "w4a16_matmul"]
