"""The matmuls behind the quantized layers: a reference torch path everywhere, Triton kernels on
CUDA, registered with torch.library so torch.compile sees them."""

from .fp8 import quantize_rows_fp8, scaled_fp8_mm
from .int8 import quantize_rows, scaled_int8_mm
from .rows_cols import quantize_rows_cols
from .tile_scaled import quantize_blocks, quantize_tiles, tile_scaled_mm
from .w4a16 import w4a16_linear, w4a16_matmul
from .weight_only import weight_only_linear, weight_only_matmul

__all__ = ["quantize_rows", "quantize_rows_cols", "scaled_int8_mm", "quantize_rows_fp8", "scaled_fp8_mm", "quantize_tiles", "quantize_blocks", "tile_scaled_mm", "w4a16_linear", "w4a16_matmul", "weight_only_linear", "weight_only_matmul"]
