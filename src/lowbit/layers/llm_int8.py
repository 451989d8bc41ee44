"""LLM.int8() (Dettmers et al. 2022): vector-wise int8 matmul for ordinary input features, and a
16-bit matmul for the outlier features — input columns where any |x| exceeds the threshold.

Outlier columns found at run time take W's columns dequantized from int8, as bitsandbytes does,
so memory is that of int8. Columns known from calibration to carry outliers can also keep their
weight columns in 16-bit (`outlier_cols`), as the paper does: the outlier features are few, so
this costs a few columns, and it keeps their products exact where int8 rows would lose them.

The batch's outlier columns are found without reading the host (bitsandbytes' LLM.int8() reads the outlier count), so
the layer can be captured in a CUDA graph: the int8 product quantizes x with them zeroed, and their product is added
by `ops.outliers`, whose kernel reads their count on the device and gathers only their columns of x and of the int8
weight (a batch without outliers costs it a launch). Without calibrated columns the product is in x's dtype, the bias
in the int8 product's epilogue. At decode and for a few tokens on CUDA (≤ VALUES_MAX_M["llm_int8"]) every column
goes through the weight-only kernels, x exact: no activation is quantized, so no column needs the outlier path (the
calibrated ones still take their 16-bit weights).
"""

from __future__ import annotations

import torch

from .. import ops
from ..formats import int as intfmt
from ..ops import outliers
from ..ops.weight_only import VALUES_MAX_M, weight_only_linear
from .base import QuantLinear


def half_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float16, torch.bfloat16) else torch.float16


class LLMInt8Linear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        threshold: float = 6.0,
        n_outlier_cols: int = 0,
        outlier_dtype: str = "float16",
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = float(threshold)
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features, 1))
        self.register_buffer("outlier_cols", torch.zeros(n_outlier_cols, dtype=torch.long) if n_outlier_cols else None)
        self.register_buffer(
            "outlier_weight", torch.zeros(out_features, n_outlier_cols, dtype=getattr(torch, outlier_dtype)) if n_outlier_cols else None
        )

    @classmethod
    def from_float(
        cls, weight: torch.Tensor, bias: torch.Tensor | None, outlier_cols: torch.Tensor | None = None, **cfg
    ) -> "LLMInt8Linear":
        n = 0 if outlier_cols is None else outlier_cols.numel()
        dtype = half_dtype(weight.dtype)
        layer = cls._shell(weight, bias, n_outlier_cols=n, outlier_dtype=str(dtype).removeprefix("torch."), **cfg)
        q = intfmt.quantize(weight, 8, granularity="channel")
        layer.qweight, layer.scale = q.codes.contiguous(), q.scale  # row-major (a Conv1D weight arrives transposed)
        if n:
            layer.outlier_cols = outlier_cols.to(weight.device, torch.long).clone()
            layer.outlier_weight = weight.index_select(1, layer.outlier_cols).to(dtype)
        return layer

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        w = intfmt.dequantize(self.qweight, self.scale, None, "channel")
        if self.outlier_cols is not None:
            w[:, self.outlier_cols] = self.outlier_weight.float()
        return w.to(dtype)

    def outlier_columns(self, x2: torch.Tensor) -> torch.Tensor:
        """Columns over the threshold in this batch that calibration did not already name (reads their count on the
        host: for inspection, not the forward)."""
        _, cols, count = self._batch_outliers(x2)
        return cols[: int(count.item())].long()

    def _batch_outliers(self, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the mask of columns the int8 product takes as 0: this batch's outliers and the calibrated columns; this
        batch's outlier columns and their count, as `outliers.find` gives them), on x's device."""
        known = None  # calibrated: in the 16-bit product of _finish, never in the outlier product
        if self.outlier_cols is not None:
            known = torch.zeros(self.in_features, dtype=torch.bool, device=x2.device).index_fill_(0, self.outlier_cols, True)
        return outliers.find(x2, self.threshold, known)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        known = self.outlier_cols
        if x2.is_cuda and x2.shape[0] <= VALUES_MAX_M["llm_int8"]:  # decode and a few tokens: weight-only (see the module doc)
            if known is None:  # the op adds the bias and returns x's dtype
                out = weight_only_linear(x2, self.qweight, self.scale, None, 8, self.in_features, None, self.bias)
                return out.reshape(*x.shape[:-1], self.out_features)
            out = weight_only_linear(x2.index_fill(1, known, 0), self.qweight, self.scale, None, 8, self.in_features).float()
            return self._finish(out, x2, known, x)
        skip, cols, count = self._batch_outliers(x2)
        codes, x_scale = ops.quantize_rows(x2, zero_cols=skip)  # W8A8's int8 path, the outlier columns as 0: one pass on CUDA
        bias = None if self.bias is None or known is not None else self.bias.float()
        out = ops.scaled_int8_mm(codes, self.qweight.t(), x_scale, self.scale.reshape(-1), bias, x.dtype if known is None else torch.float32)
        outliers.add_product_(out, x2, self.qweight, self.scale, cols, count)
        if known is None:  # x's dtype throughout, the bias in the int8 product's epilogue
            return out.reshape(*x.shape[:-1], self.out_features)
        return self._finish(out, x2, known, x)

    def _finish(self, out: torch.Tensor, x2: torch.Tensor, known: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """The fp32 sum `out` of the int8 weight's columns, plus the calibrated outlier columns' 16-bit products and the
        bias, in x's dtype and shape."""
        if known is not None:
            out = out + (x2.index_select(1, known).to(self.outlier_weight.dtype) @ self.outlier_weight.t()).float()
        if self.bias is not None:
            out = out + self.bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def config(self) -> dict:
        n = 0 if self.outlier_cols is None else self.outlier_cols.numel()
        dtype = "float16" if self.outlier_weight is None else str(self.outlier_weight.dtype).removeprefix("torch.")
        return dict(threshold=self.threshold, n_outlier_cols=n, outlier_dtype=dtype)
