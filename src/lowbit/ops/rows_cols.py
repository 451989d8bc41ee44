"""Per-row and per-column quantization of one 2-D tensor, int8 or FP8 E4M3, in two tiled passes.

Training quantizes each operand of a linear along its non-reduction dim, and every operand enters
one matmul by rows and another by columns (x: forward by tokens, grad-weight by features). Both
code sets come from two passes over the tensor, in place whatever its strides, never a transposed copy:
    pass 1  the absmax of every row and every column (strips of tiles, maxima merged by integer atomics)
    pass 2  codes with the rows' scales, row-major, and codes with the columns' scales, written transposed
Formats: "int8" (`lowbit.formats.int`: symmetric ±127, round half to even, or seeded stochastic
rounding) and "e4m3" (`lowbit.formats.fp`: scale absmax / 448, round to nearest even). Codes and
scales equal the formats' bit for bit: the kernels divide as IEEE division rounds.

`lowbit::quantize_rows_cols` is a torch.library triton_op: torch.compile traces into it, so the
launches and the scale arithmetic around them join the compiled graph (see `ops.int8`); CPU tensors
take the reference path, an opaque op of its own (it seeds torch generators, which a graph cannot hold).
"""

from __future__ import annotations

import torch
from torch.library import triton_op, wrap_triton

from ..formats import fp
from ..formats import int as intfmt
from .tiles import cdiv, interpreting, sm_count

try:
    import triton
    import triton.language as tl
except ImportError:  # lowbit runs without Triton; the ops then take the reference path
    triton = None

FORMATS = {"int8": (torch.int8, 127.0), "e4m3": (torch.float8_e4m3fn, 448.0)}  # code dtype, largest code



if triton is not None:

    @triton.jit
    def div_rn(x, s, r):
        """x / s as IEEE division rounds it, given r = 1/s (IEEE-rounded, once a row): x·r is within an ulp
        of the quotient, and one FMA on its exact residual x − y·s rounds it correctly (Markstein's
        theorem; while the residual is a normal number, i.e. scales above ~2^-100): 3 instructions where
        div_rn issues ~10 an element. The interpreter's fma rounds twice, so there the result is within
        an ulp (bit-exactness is checked on the GPU)."""
        y = x * r
        return tl.fma(tl.fma(-y, s, x), r, y)

    @triton.jit
    def round_int8(y, u, STOCHASTIC: tl.constexpr):
        """y (already divided by the scale) to int8 codes: round half to even, as torch.round, or up with
        probability frac(y) given uniform draws u (y − floor(y) is exact in float32 for |y| ≤ 127).
        Every caller's scale is its elements' absmax / 127, IEEE-rounded, so |y| ≤ 127·(1 + 2^-23) and
        round to nearest needs no clamp."""
        if STOCHASTIC:  # unbiased, and always floor(y) or ceil(y); floor(y) + 1 can pass 127: clamped
            r = tl.floor(y)
            r = tl.where(u < y - r, r + 1.0, r)
            return tl.minimum(tl.maximum(r, -127.0), 127.0).to(tl.int8)
        # adding 1.5·2^23 leaves no fraction bits: the float add itself rounds half to even (|y| < 2^22), and
        # the sum's low mantissa bits are then the integer in two's complement: its low byte is the code
        # (no subtraction, no float→int convert, no clamp: ~4 instructions an element fewer a code set)
        return (y + 12582912.0).to(tl.int32, bitcast=True).to(tl.int8)

    @triton.jit
    def round_to_e4m3(y):
        """Round fp32 y (|y| <= 448) to nearest, ties to even, on the E4M3 grid; the result is exact
        in fp32 and its cast to float8e4nv is exact. For the interpreter, whose own fp8 cast rounds
        wrongly; the GPU's cast (cvt.rn.satfinite) rounds the same way in one instruction."""
        bits = y.to(tl.int32, bitcast=True)
        e = ((bits >> 23) & 0xFF) - 127  # binade of y (fp32 subnormals: -127)
        e = tl.maximum(e, -6)  # E4M3 subnormals share the spacing of the lowest binade
        step = ((e - 3 + 127) << 23).to(tl.float32, bitcast=True)  # 2^(e-3): 3 mantissa bits
        inv = ((127 - (e - 3)) << 23).to(tl.float32, bitcast=True)
        t = y * inv  # exact: a power of two, |t| < 16
        r = tl.floor(t)
        frac = t - r
        odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
        r = tl.where((frac > 0.5) | ((frac == 0.5) & odd), r + 1.0, r)
        out = (r * step).to(tl.int32, bitcast=True) | ((bits >> 31) << 31)  # keep y's sign, also on a zero
        return out.to(tl.float32, bitcast=True)

    @triton.jit
    def abs_bits(x):
        """|x| of fp32 x as int32 bits: non-negative floats order as their bits, and a NaN above every number,
        so an integer max (or atomic max) of these is the absmax, NaN wherever a NaN is (tl.max drops NaNs)."""
        return x.to(tl.int32, bitcast=True) & 0x7FFFFFFF

    @triton.jit
    def abs_max(x, axis):
        """max |x| along axis of fp32 x, NaN if any element is NaN (see `abs_bits`)."""
        return tl.max(abs_bits(x), axis=axis).to(tl.float32, bitcast=True)

    @triton.jit
    def absmax_scale(amax, FP8: tl.constexpr):
        """`formats.int.absmax_scale` in a kernel: amax / 127 (int8) or / 448 (E4M3), IEEE-rounded, at least
        the smallest normal float (an all-zero row); a NaN stays NaN (the GPU's max drops it by default)."""
        return tl.maximum(tl.math.div_rn(amax, 448.0 if FP8 else 127.0), 1.1754943508222875e-38, propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def codes(x, s, u, FP8: tl.constexpr, STOCHASTIC: tl.constexpr, EMULATE_FP8: tl.constexpr):
        """x's codes with scales s (broadcast against x): int8 (u: uniform draws where STOCHASTIC), or E4M3
        with FP8: the GPU's round-to-nearest-even cast, or its emulation. Every caller's scale is an absmax / 448,
        IEEE-rounded, so |y| ≤ 448·(1 + 2^-23), which the cast rounds to 448: no clamp on the GPU (2 of ~14
        instructions a code, sm_90 SASS); the emulation takes |y| ≤ 448 and clamps."""
        y = div_rn(x, s, tl.math.div_rn(1.0, s))
        if not FP8:
            return round_int8(y, u, STOCHASTIC)
        else:
            # x's sign, also on a zero: Markstein's last FMA turns x = −0 into +0, and FP8 keeps the sign
            y = (y.to(tl.int32, bitcast=True) | (x.to(tl.int32, bitcast=True) & -2147483648)).to(tl.float32, bitcast=True)
            if EMULATE_FP8:
                y = round_to_e4m3(tl.minimum(tl.maximum(y, -448.0), 448.0))
            return y.to(tl.float8e4nv)

    @triton.jit
    def _absmax_tiles_kernel(
        x_ptr, amax_ptr, col_amax_ptr, M, N, stride_xm, stride_xn, ROWS,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, COLS: tl.constexpr,
    ):
        """Pass 1: a strip of BLOCK_N columns and ROWS rows, BLOCK_M rows a step. Each step's row maxima of
        |x| are merged by an integer atomic max into amax [M]; with COLS the strip's column maxima are kept
        in registers and merged into col_amax [N] once (zeros first: non-negative floats, NaN included,
        order as their bit patterns). One program a tile made 512 column atomics an address on a
        32768-row tensor, and this pass read at 1.8 TB/s where the codes pass moves 3.3 (H200, session 11)."""
        offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row0 = tl.program_id(1) * ROWS
        col_bits = tl.zeros((BLOCK_N,), dtype=tl.int32)
        for r in range(row0, tl.minimum(row0 + ROWS, M), BLOCK_M):
            offs_m = r + tl.arange(0, BLOCK_M)
            mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
            x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_n[None, :] * stride_xn, mask=mask, other=0.0).to(tl.float32)
            a = abs_bits(x)
            tl.atomic_max(amax_ptr + offs_m, tl.max(a, axis=1), mask=offs_m < M, sem="relaxed")
            if COLS:
                col_bits = tl.maximum(col_bits, tl.max(a, axis=0))
        if COLS:
            tl.atomic_max(col_amax_ptr + offs_n, col_bits, mask=offs_n < N, sem="relaxed")

    @triton.jit
    def _quantize_tiles_kernel(
        x_ptr, amax_ptr, s_ptr, q_ptr, col_amax_ptr, col_s_ptr, col_qt_ptr, seed_ptr, M, N, stride_xm, stride_xn,
        stride_qm, stride_qtn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, FP8: tl.constexpr, STOCHASTIC: tl.constexpr,
        COLS: tl.constexpr, EMULATE_FP8: tl.constexpr,
    ):
        """Pass 2: codes of one tile with its rows' scales, written row-major whatever x's strides;
        with COLS also its codes with its columns' scales, written transposed (col_qt [N, M] row-major).
        Each scale comes from pass 1's absmax bits here, and the first tile of a row (of a column) writes
        it out: no scale arithmetic between the passes, which under torch.compile Inductor fused into the
        tensor's producer with a copy of the tensor for each pass (session 14: 1.2 GB a llama2-1b layer).
        Stochastic draws (int8): element (m, n) at Philox offset m·N + n for the rows, M·N + n·M + m
        for the columns, so the two roundings are independent."""
        pid_m, pid_n = tl.program_id(0), tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_n[None, :] * stride_xn, mask=mask, other=0.0).to(tl.float32)
        scale = absmax_scale(tl.load(amax_ptr + offs_m, mask=offs_m < M, other=0).to(tl.float32, bitcast=True), FP8)
        if pid_n == 0:
            tl.store(s_ptr + offs_m, scale, mask=offs_m < M)
        u = 0.0
        if STOCHASTIC:
            seed = tl.load(seed_ptr)
            u = tl.rand(seed, offs_m.to(tl.int64)[:, None] * N + offs_n[None, :])
        tl.store(q_ptr + offs_m[:, None] * stride_qm + offs_n[None, :], codes(x, scale[:, None], u, FP8, STOCHASTIC, EMULATE_FP8), mask=mask)
        if COLS:
            col_bits = tl.load(col_amax_ptr + offs_n, mask=offs_n < N, other=0)
            col_scale = absmax_scale(col_bits.to(tl.float32, bitcast=True), FP8)
            if pid_m == 0:
                tl.store(col_s_ptr + offs_n, col_scale, mask=offs_n < N)
            if STOCHASTIC:
                u = tl.rand(seed, (offs_n.to(tl.int64)[None, :] + N) * M + offs_m[:, None])
            qc = codes(x, col_scale[None, :], u, FP8, STOCHASTIC, EMULATE_FP8)
            tl.store(col_qt_ptr + offs_n[None, :] * stride_qtn + offs_m[:, None], qc, mask=mask)


def seed_tensor(x: torch.Tensor, stochastic: bool, seed: int, fallback: torch.Tensor) -> torch.Tensor:
    """The kernels' Philox seed, as a one-element tensor on x's device: `seed`, or where seed < 0 a fresh
    draw from torch's generator — on the device, so a compiled graph draws anew each call (no `.item()`,
    no constant baked in). Without stochastic rounding the kernels never read it: `fallback` stands in."""
    if not stochastic:
        return fallback
    if seed < 0:
        return torch.randint(2**31 - 1, (1,), device=x.device, dtype=torch.int64)
    return torch.full((1,), seed, device=x.device, dtype=torch.int64)


def _check_format(fmt: str, stochastic: bool) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {tuple(FORMATS)}, got {fmt!r}")
    if stochastic and fmt != "int8":
        raise ValueError("stochastic rounding is for int8 codes only")


def _tiles(x: torch.Tensor) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, the absmax pass's warps, its programs an SM) for both passes: tiles long along x's
    contiguous dim, so they read it coalesced. Row-major x: 32 × 128, the absmax pass on 2 warps, 16 programs
    an SM. The H200 (session 11, call 4), GB/s against 64 × 128 tiles and 4 warps, 8 an SM: absmax 2097 → 2671
    on 32768 × 1536 bf16, 2400 → 3406 on 32768 × 6144; codes E4M3 2376 → 2663 and 2548 → 2857, int8 about
    even (3182 → 3215); a device copy moved 3834 and 4156."""
    if interpreting():
        return 16, 32, 4, 1
    return (32, 128, 2, 16) if x.stride(1) == 1 else (128, 64, 4, 8)


def _strip_rows(x: torch.Tensor, bm: int, bn: int, per_sm: int) -> int:
    """Rows of one absmax strip: whole steps of bm, as many as leave ~per_sm programs an SM (4 in all in the
    interpreter)."""
    m, n = x.shape
    programs = 4 if interpreting() else per_sm * sm_count(x.device)
    return max(1, cdiv(cdiv(m, bm) * cdiv(n, bn), programs)) * bm


def quantize_tiled(x: torch.Tensor, fmt: str = "int8", stochastic: bool = False, seed: int = 0, cols: bool = True) -> tuple[torch.Tensor, ...]:
    """The two passes on the GPU (or in the interpreter): (row codes [M, N], row scales [M]) and, with
    `cols`, (column codes transposed [N, M], column scales [N])."""
    _check_format(fmt, stochastic)
    dtype = FORMATS[fmt][0]
    m, n = x.shape
    q = torch.empty(m, n, device=x.device, dtype=dtype)
    # the absmax bits of the rows and then the columns, float32 bits (see the kernel), zeroed in one launch
    amax_all = torch.zeros(m + n if cols else m, device=x.device, dtype=torch.int32)
    amax, col_amax = amax_all[:m], amax_all[m:] if cols else amax_all
    scale = torch.empty(m, device=x.device, dtype=torch.float32)
    # without cols the column buffers are never touched: the row ones stand in for them
    col_qt = torch.empty(n, m, device=x.device, dtype=dtype) if cols else q
    col_scale = torch.empty(n, device=x.device, dtype=torch.float32) if cols else scale
    bm, bn, warps, per_sm = _tiles(x)
    rows = _strip_rows(x, bm, bn, per_sm)
    wrap_triton(_absmax_tiles_kernel)[(cdiv(n, bn), cdiv(m, rows))](
        x, amax, col_amax, m, n, x.stride(0), x.stride(1), rows, BLOCK_M=bm, BLOCK_N=bn, COLS=cols, num_warps=warps)
    wrap_triton(_quantize_tiles_kernel)[(cdiv(m, bm), cdiv(n, bn))](
        x, amax, scale, q, col_amax, col_scale, col_qt, seed_tensor(x, stochastic, seed, amax_all), m, n, x.stride(0),
        x.stride(1), q.stride(0), col_qt.stride(0), BLOCK_M=bm, BLOCK_N=bn, FP8=fmt == "e4m3", STOCHASTIC=stochastic,
        COLS=cols, EMULATE_FP8=interpreting())
    return (q, scale, col_qt, col_scale) if cols else (q, scale)


def quantize_rows_cols_triton(x: torch.Tensor, stochastic: bool = False, seed: int = 0, fmt: str = "int8"):
    """(row codes [M, N], row scales [M], column codes transposed [N, M], column scales [N]) of a 2-D
    float tensor x [M, N] (any strides), each pair what quantizing x's rows and xᵀ's rows gives."""
    return quantize_tiled(x, fmt, stochastic, seed, cols=True)


def rows_reference(x: torch.Tensor, stochastic: bool = False, seed: int = 0, fmt: str = "int8") -> tuple[torch.Tensor, torch.Tensor]:
    """The formats' own per-row quantization: (codes [M, N] row-major, scales [M] float32)."""
    _check_format(fmt, stochastic)
    if fmt == "e4m3":
        q, scale = fp.quantize_fp8(x, "e4m3", "token", validate=False)
        return q.contiguous(), scale.reshape(-1)
    # seed < 0: torch's default generator, as the Triton path draws its fresh seed from it
    gen = torch.Generator(device=x.device).manual_seed(seed) if stochastic and seed >= 0 else None
    q = intfmt.quantize(x, 8, granularity="token", rounding="stochastic" if stochastic else "nearest", generator=gen, validate=False)
    return q.codes.contiguous(), q.scale.reshape(-1)  # row-major, as the Triton path and the fake say


def quantize_rows_cols_reference(x: torch.Tensor, stochastic: bool = False, seed: int = 0, fmt: str = "int8"):
    q, s = rows_reference(x, stochastic, seed, fmt)
    qt, st = rows_reference(x.t(), stochastic, seed + 1 if seed >= 0 else seed, fmt)  # its own stream: independent of the rows'
    return q, s, qt, st


def use_triton(*tensors: torch.Tensor) -> bool:
    return triton is not None and all(t.is_cuda for t in tensors)


@torch.library.custom_op("lowbit::quantize_rows_cols_reference", mutates_args=())
def _reference_op(
    x: torch.Tensor, stochastic: bool, seed: int, fmt: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return quantize_rows_cols_reference(x, stochastic, seed, fmt)


@_reference_op.register_fake
def _(x, stochastic, seed, fmt):
    m, n = x.shape
    dtype, f32 = FORMATS[fmt][0], torch.float32
    return x.new_empty(m, n, dtype=dtype), x.new_empty(m, dtype=f32), x.new_empty(n, m, dtype=dtype), x.new_empty(n, dtype=f32)


@triton_op("lowbit::quantize_rows_cols", mutates_args=())
def quantize_rows_cols(
    x: torch.Tensor, stochastic: bool = False, seed: int = 0, fmt: str = "int8",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both per-row and per-column absmax codes of a 2-D tensor x [M, N] in `fmt` ("int8" or "e4m3"),
    reading x twice on CUDA (once for both absmaxes, once for both code sets) where quantizing x and
    x.t() apart would read it four times: (q_rows [M, N], s_rows [M], q_cols_t [N, M], s_cols [N]).
    Stochastic rounding (int8 only) draws independently for the two code sets; `seed=-1` draws a fresh
    seed from torch's default generator each call, also in a compiled graph."""
    if use_triton(x):
        return quantize_rows_cols_triton(x, stochastic, seed, fmt)
    return _reference_op(x, stochastic, seed, fmt)
