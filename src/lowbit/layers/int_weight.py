"""Weight-only integer linear (2-8 bits; per-tensor, per-channel or group-wise; absmax or
zero-point). Codes are stored unsigned and bit-packed along the input dim. RTN and GPTQ both
store here.

GPTQ with act-order gives each input column a group (`g_idx`) that is not its position // group_size. The layer
stores such codes with their columns sorted by group, `perm[j]` the input column of stored column j: every group is
then contiguous, so the group-wise kernels (the decode GEMV, the swapped MMA kernel, dequantize + cuBLAS) take them,
and x is read in the same order (gathered first by one kernel, `ops.weight_only.gather_columns`).
`g_idx` and `codes()` are still given in input-column order; a state dict with `g_idx` (as saved before this layout)
is converted on load."""

from __future__ import annotations

import torch

from ..formats import int as intfmt
from ..formats.packing import pack, packed_length, unpack
from ..ops.weight_only import rms_norm, weight_only_linear
from .base import QuantLinear


class IntWeightLinear(QuantLinear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool,
        *,
        bits: int = 8,
        granularity: str = "channel",
        group_size: int | None = None,
        symmetric: bool = True,
        act_order: bool = False,
        bias_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(in_features, out_features, bias, bias_dtype)
        intfmt.check_bits(bits)
        if act_order and granularity != "group":
            raise ValueError("act_order (a g_idx per input column) needs granularity='group'")
        self.bits, self.granularity, self.group_size, self.symmetric = bits, granularity, group_size, symmetric
        self.act_order = act_order
        sshape = intfmt.scale_shape(torch.Size((out_features, in_features)), granularity, group_size)
        self.register_buffer("qweight", torch.zeros(out_features, packed_length(in_features, bits), dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(sshape))
        self.register_buffer("zero", None if symmetric else torch.zeros(sshape, dtype=torch.uint8))
        self.register_buffer("perm", torch.arange(in_features, dtype=torch.int32) if act_order else None)

    @property
    def g_idx(self) -> torch.Tensor | None:
        """The group of each input column (GPTQ's act-order index), or None with contiguous groups."""
        if self.perm is None:
            return None
        g_idx = torch.empty_like(self.perm)
        g_idx[self.perm.long()] = torch.arange(self.in_features, dtype=torch.int32, device=self.perm.device) // self.group_size
        return g_idx

    @classmethod
    def from_float(cls, weight: torch.Tensor, bias: torch.Tensor | None, **cfg) -> "IntWeightLinear":
        layer = cls._shell(weight, bias, **cfg)
        q = intfmt.quantize(weight, layer.bits, symmetric=layer.symmetric, granularity=layer.granularity, group_size=layer.group_size)
        return layer._fill(q.codes, q.scale, q.zero)

    @classmethod
    def from_codes(
        cls,
        codes: torch.Tensor,
        scale: torch.Tensor,
        zero: torch.Tensor | None,
        bias: torch.Tensor | None,
        g_idx: torch.Tensor | None = None,
        **cfg,
    ) -> "IntWeightLinear":
        """A layer from codes chosen elsewhere (GPTQ, AWQ): signed codes when symmetric, else unsigned."""
        layer = cls._shell(codes, bias, act_order=g_idx is not None, **cfg)
        if g_idx is not None:
            layer.perm = group_order(g_idx, layer.group_size, codes.shape[1])
            codes = codes[:, layer.perm.long()]
        return layer._fill(codes, scale.float(), None if zero is None else zero.to(torch.uint8))

    def _fill(self, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> "IntWeightLinear":
        # row-major whatever the codes' layout (a Conv1D weight arrives transposed): the kernels' layout, and no copy a call
        self.qweight = pack(_to_unsigned(codes, self.bits, self.symmetric), self.bits).contiguous()
        self.scale, self.zero = scale.contiguous(), None if zero is None else zero.contiguous()
        return self

    def codes(self) -> torch.Tensor:
        """Signed (symmetric) or unsigned (zero-point) integer codes [out, in], as int16."""
        u = unpack(self.qweight, self.bits, self.in_features).to(torch.int16)
        if self.perm is not None:  # stored in group order: back to input-column order
            u = torch.empty_like(u).index_copy_(1, self.perm.long(), u)
        return u - 2 ** (self.bits - 1) if self.symmetric else u

    def dequantize_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return intfmt.dequantize(self.codes(), self.scale, self.zero, self.granularity, self.group_size, dtype, self.g_idx)

    def forward(self, x: torch.Tensor, norm: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
        """`norm` (gain, eps): x is the input of that RMSNorm (`ops.weight_only.rms_norm`), which the word GEMV applies
        inside (`lowbit.models.fused_norms`); inference only."""
        if norm is not None and (self.perm is not None or not (self.bits in (4, 8) and self.granularity in ("group", "channel"))):
            x, norm = rms_norm(x, *norm), None  # act-order gathers x, which the norm reads whole: the norm first
        if self.bits in (4, 8) and self.granularity in ("group", "channel"):  # kernels on CUDA, the same math elsewhere
            group_size = self.group_size if self.granularity == "group" else self.in_features
            # act-order: x read in the stored (group) order. Eager: gathered by the op (`gather_columns`; the seven 7B
            # linears at one token, H200, session 22: 73.9 µs against 94.1 through the decode GEMV's reads in place).
            # Compiled: gathered before the op, where Inductor fuses it into the kernel that makes x (an RMSNorm and the
            # 4096 → 11008 linear, session 20: 14.6 µs against 18.2 through the GEMV's reads in place; no act-order 13.0)
            perm = self.perm
            if perm is not None and torch.compiler.is_compiling():
                x, perm = x.index_select(-1, perm), None
            return weight_only_linear(x, self.qweight, self.scale, self.zero, self.bits, group_size, None, self.bias, perm=perm,
                                      norm=norm)
        return super().forward(x)

    def config(self) -> dict:
        return dict(bits=self.bits, granularity=self.granularity, group_size=self.group_size, symmetric=self.symmetric, act_order=self.act_order)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """An act-order state dict from before the group-order layout (`g_idx`, codes in input-column order) is
        converted; a `perm` that is not a permutation of the input columns is refused (the kernels index x by it)."""
        if prefix + "g_idx" in state_dict and prefix + "perm" not in state_dict:
            perm = group_order(state_dict.pop(prefix + "g_idx"), self.group_size, self.in_features)
            codes = unpack(state_dict[prefix + "qweight"], self.bits, self.in_features)
            state_dict[prefix + "qweight"] = pack(codes[:, perm.long()], self.bits)
            state_dict[prefix + "perm"] = perm
        perm = state_dict.get(prefix + "perm")
        if perm is not None and not torch.equal(perm.long().sort().values, torch.arange(self.in_features, device=perm.device)):
            raise ValueError(f"{prefix}perm must be a permutation of the {self.in_features} input columns")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def group_order(g_idx: torch.Tensor, group_size: int, in_features: int) -> torch.Tensor:
    """The input columns sorted by group (int32): after it, column j is in group j // group_size, or a ValueError
    when g_idx does not give every group group_size columns (GPTQ's act-order always does)."""
    if g_idx.shape != (in_features,):
        raise ValueError(f"g_idx must have one group a column, [{in_features}], got {tuple(g_idx.shape)}")
    g = g_idx.long()
    perm = torch.argsort(g, stable=True)
    if not torch.equal(g[perm], torch.arange(in_features, device=g.device) // group_size):
        sizes = torch.bincount(g).tolist()
        raise ValueError(f"g_idx must give each group group_size={group_size} columns (the last one the rest), as GPTQ's "
                         f"act-order does; got group sizes {sizes[:8]}{' ...' if len(sizes) > 8 else ''}")
    return perm.to(torch.int32)


def _to_unsigned(codes: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    # symmetric codes live in [-(2^(b-1)-1), 2^(b-1)-1]; shift by 2^(b-1) to pack them unsigned
    return (codes.to(torch.int16) + 2 ** (bits - 1)).to(torch.uint8) if symmetric else codes.to(torch.uint8)

