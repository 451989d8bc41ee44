"""Per-row and per-column quantization of one 2-D tensor, int8 or FP8 E4M3, in two tiled passes.

Training quantizes each operand of a linear along its non-reduction dim, and every operand enters
one matmul by rows and another by columns (x: forward by tokens, grad-weight by features). Both
code sets come from two passes over the tensor, in place whatever its strides, never a transposed copy:
    pass 1  the absmax of every row and every column (strips of tiles, maxima merged by integer atomics)
    pass 2  codes with the rows' scales, row-major, and codes with the columns' scales, written transposed
The passes can also quantize what a producer computes from their inputs without storing it (`quantize_produced`:
silu(g)·u, or the SiLU gate's two gradients; `train.mlp`).
Formats: "int8" (`lowbit.formats.int`: symmetric ±127, round half to even, or seeded stochastic
rounding) and "e4m3" (`lowbit.formats.fp`: scale absmax / 448, round to nearest even). Codes and
scales equal the formats' bit for bit: the kernels divide as IEEE division rounds.

`lowbit::quantize_rows_cols` is a torch.library triton_op: torch.compile traces into it, so its launches join the
compiled graph (see `ops.int8`); CPU tensors take the reference path, an opaque op of its own (it seeds torch
generators, which a graph cannot hold). Training calls it through an opaque op instead (`train.linear._codes_op`):
traced into, each pass got its own copy of a fused producer's output.
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
    def round_like(y, x):
        """fp32 y rounded to x's dtype (to nearest even) and back: bf16 by its bits, as the interpreter's bf16 cast
        truncates (half of all values a unit off); a NaN stays NaN."""
        if x.dtype == tl.bfloat16:
            bits = y.to(tl.int32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
            return bits.to(tl.float32, bitcast=True)
        else:
            return y.to(x.dtype).to(tl.float32)

    @triton.jit
    def produce(x_ptr, y_ptr, z_ptr, offs, mask, PRODUCER: tl.constexpr):
        """The tensors the passes quantize, in fp32, computed from what they load (see `PRODUCERS`): x itself;
        silu(g)·u from g = x, u = y; or from dh = x, g = y, u = z the gradients of g and u, dg = dh·u·σ(g)·(1 +
        g·(1 − σ(g))) and du = dh·silu(g). Sums and products in fp32, the results rounded to x's dtype, as
        Inductor's fused kernels of the unfused layers compute and store them. One tensor: returned twice."""
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        if PRODUCER == 0:
            return x.to(tl.float32), x.to(tl.float32)
        elif PRODUCER == 1:
            g = x.to(tl.float32)
            h = round_like(g * tl.sigmoid(g) * tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32), x)
            return h, h
        else:
            dh = x.to(tl.float32)
            g = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            u = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(g)
            dg = round_like(dh * u * sig * (1.0 + g * (1.0 - sig)), x)
            du = round_like(dh * (g * sig), x)
            return dg, du

    @triton.jit
    def _absmax_tiles_kernel(
        x_ptr, y_ptr, z_ptr, amax_ptr, M, N, stride_xm, stride_xn, ROWS,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, COLS: tl.constexpr, PRODUCER: tl.constexpr,
    ):
        """Pass 1: a strip of BLOCK_N columns and ROWS rows, BLOCK_M rows a step. Each step's row maxima of
        |t| (t each tensor `produce` gives) are merged by an integer atomic max into amax: tensor o's rows at
        o·(M + N), its columns after them. With COLS the strip's column maxima are kept in registers and merged
        once (zeros first: non-negative floats, NaN included, order as their bit patterns). One program a tile
        made 512 column atomics an address on a 32768-row tensor, and this pass read at 1.8 TB/s where the
        codes pass moves 3.3 (H200, session 11)."""
        offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row0 = tl.program_id(1) * ROWS
        col_bits = tl.zeros((BLOCK_N,), dtype=tl.int32)
        col_bits1 = tl.zeros((BLOCK_N,), dtype=tl.int32)
        for r in range(row0, tl.minimum(row0 + ROWS, M), BLOCK_M):
            offs_m = r + tl.arange(0, BLOCK_M)
            mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
            t0, t1 = produce(x_ptr, y_ptr, z_ptr, offs_m[:, None] * stride_xm + offs_n[None, :] * stride_xn, mask, PRODUCER)
            a = abs_bits(t0)
            tl.atomic_max(amax_ptr + offs_m, tl.max(a, axis=1), mask=offs_m < M, sem="relaxed")
            if COLS:
                col_bits = tl.maximum(col_bits, tl.max(a, axis=0))
            if PRODUCER == 2:
                a1 = abs_bits(t1)
                tl.atomic_max(amax_ptr + M + N + offs_m, tl.max(a1, axis=1), mask=offs_m < M, sem="relaxed")
                col_bits1 = tl.maximum(col_bits1, tl.max(a1, axis=0))
        if COLS:
            tl.atomic_max(amax_ptr + M + offs_n, col_bits, mask=offs_n < N, sem="relaxed")
            if PRODUCER == 2:
                tl.atomic_max(amax_ptr + 2 * M + N + offs_n, col_bits1, mask=offs_n < N, sem="relaxed")

    @triton.jit
    def tile_codes(t, amax_ptr, s_ptr, q_ptr, cs_ptr, qt_ptr, seed_ptr, draw0, offs_m, offs_n, mask, pid_m, pid_n, M, N,
                   stride_qm, stride_qtn, FP8: tl.constexpr, STOCHASTIC: tl.constexpr, COLS: tl.constexpr,
                   EMULATE_FP8: tl.constexpr):
        """Pass 2 for one tensor t's tile: codes with its rows' scales, written row-major; with COLS also with its
        columns' scales, written transposed (qt [N, M] row-major). Each scale comes from pass 1's absmax bits
        (rows at amax_ptr, columns M after), and the first tile of a row (of a column) writes it out to s_ptr
        (cs_ptr): no scale arithmetic between the passes. Stochastic draws (int8): element (m, n) at
        Philox offset draw0 + m·N + n for the rows, draw0 + M·N + n·M + m for the columns."""
        scale = absmax_scale(tl.load(amax_ptr + offs_m, mask=offs_m < M, other=0).to(tl.float32, bitcast=True), FP8)
        if pid_n == 0:
            tl.store(s_ptr + offs_m, scale, mask=offs_m < M)
        u = 0.0
        if STOCHASTIC:
            seed = tl.load(seed_ptr)
            u = tl.rand(seed, draw0 + offs_m.to(tl.int64)[:, None] * N + offs_n[None, :])
        tl.store(q_ptr + offs_m[:, None] * stride_qm + offs_n[None, :], codes(t, scale[:, None], u, FP8, STOCHASTIC, EMULATE_FP8), mask=mask)
        if COLS:
            col_bits = tl.load(amax_ptr + M + offs_n, mask=offs_n < N, other=0)
            col_scale = absmax_scale(col_bits.to(tl.float32, bitcast=True), FP8)
            if pid_m == 0:
                tl.store(cs_ptr + offs_n, col_scale, mask=offs_n < N)
            if STOCHASTIC:
                u = tl.rand(seed, draw0 + (offs_n.to(tl.int64)[None, :] + N) * M + offs_m[:, None])
            qc = codes(t, col_scale[None, :], u, FP8, STOCHASTIC, EMULATE_FP8)
            tl.store(qt_ptr + offs_n[None, :] * stride_qtn + offs_m[:, None], qc, mask=mask)

    @triton.jit
    def _quantize_tiles_kernel(
        x_ptr, y_ptr, z_ptr, amax_ptr, q_ptr, s_ptr, qt_ptr, cs_ptr, q1_ptr, s1_ptr, qt1_ptr, cs1_ptr, seed_ptr, M, N,
        stride_xm, stride_xn,
        stride_qm, stride_qtn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, FP8: tl.constexpr, STOCHASTIC: tl.constexpr,
        COLS: tl.constexpr, EMULATE_FP8: tl.constexpr, PRODUCER: tl.constexpr,
    ):
        """Pass 2: `tile_codes` of one tile of each tensor `produce` gives (the second's absmaxes M + N further on,
        its draws 2·M·N further: independent of the first's)."""
        pid_m, pid_n = tl.program_id(0), tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
        t0, t1 = produce(x_ptr, y_ptr, z_ptr, offs_m[:, None] * stride_xm + offs_n[None, :] * stride_xn, mask, PRODUCER)
        tile_codes(t0, amax_ptr, s_ptr, q_ptr, cs_ptr, qt_ptr, seed_ptr, 0, offs_m, offs_n, mask, pid_m, pid_n, M, N,
                   stride_qm, stride_qtn, FP8, STOCHASTIC, COLS, EMULATE_FP8)
        if PRODUCER == 2:
            tile_codes(t1, amax_ptr + M + N, s1_ptr, q1_ptr, cs1_ptr, qt1_ptr, seed_ptr, 2 * M * N, offs_m, offs_n, mask,
                       pid_m, pid_n, M, N, stride_qm, stride_qtn, FP8, STOCHASTIC, COLS, EMULATE_FP8)


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


def _tiles(x: torch.Tensor, producer: str | None = None) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, the absmax pass's warps, its programs an SM, the codes pass's warps) for both passes:
    tiles long along x's contiguous dim, so they read it coalesced. Row-major x: 32 × 128, the absmax pass on 2
    warps, 16 programs an SM. The H200 (session 11, call 4), GB/s against 64 × 128 tiles and 4 warps, 8 an SM:
    absmax 2097 → 2671 on 32768 × 1536 bf16, 2400 → 3406 on 32768 × 6144; codes E4M3 2376 → 2663 and 2548 → 2857,
    int8 about even (3182 → 3215); a device copy moved 3834 and 4156. The SiLU gate's gradients (two tensors from
    three) take 32 × 64 tiles, both passes on 2 warps: 32 × 128 on 2 warps spilled (255 registers a thread, sm_90
    compiled on the CPU), and on 4 and 8 warps, spill-free, moved 1745 GB/s against 2420 (H200, session 15 call 1,
    `benchmarks/_exp_producer_tiles.py`, 32768 × 6144; silu(g)·u is fastest on the plain passes' tiles)."""
    if interpreting():
        return 16, 32, 4, 1, 4
    if x.stride(1) != 1:
        return 128, 64, 4, 8, 4
    return (32, 64, 2, 16, 2) if producer == "silu_mul_grad" else (32, 128, 2, 16, 4)


def _strip_rows(x: torch.Tensor, bm: int, bn: int, per_sm: int) -> int:
    """Rows of one absmax strip: whole steps of bm, as many as leave ~per_sm programs an SM (4 in all in the
    interpreter)."""
    m, n = x.shape
    programs = 4 if interpreting() else per_sm * sm_count(x.device)
    return max(1, cdiv(cdiv(m, bm) * cdiv(n, bn), programs)) * bm


PRODUCERS = {None: 0, "silu_mul": 1, "silu_mul_grad": 2}  # what the passes compute from their inputs (`produce`)
PRODUCER_INPUTS = {None: 1, "silu_mul": 2, "silu_mul_grad": 3}


def quantize_tiled(x: torch.Tensor, fmt: str = "int8", stochastic: bool = False, seed: int = 0, cols: bool = True,
                   producer: str | None = None, inputs: tuple[torch.Tensor, ...] = (),
                   tiles: tuple[int, int, int, int, int] | None = None) -> tuple[torch.Tensor, ...]:
    """The two passes on the GPU (or in the interpreter): (row codes [M, N], row scales [M]) and, with `cols`,
    (column codes transposed [N, M], column scales [N]) of x, or of what `producer` computes from x and `inputs`
    (same shape and strides): silu(x)·inputs[0], or "silu_mul_grad"'s two gradients, each tensor's four in turn.
    `tiles` (BLOCK_M, BLOCK_N, the absmax pass's warps and programs an SM, the codes pass's warps) replaces
    `_tiles`' choice, for the experiments that time others."""
    _check_format(fmt, stochastic)
    if producer not in PRODUCERS or len(inputs) != PRODUCER_INPUTS[producer] - 1 or (producer and not cols):
        raise ValueError(f"producer must be one of {tuple(PRODUCERS)} with {PRODUCER_INPUTS} tensors and cols, got {producer!r}")
    if any(t.shape != x.shape or t.stride() != x.stride() or t.dtype != x.dtype or t.device != x.device for t in inputs):
        raise ValueError(f"a producer's inputs must match x {tuple(x.shape)} in shape, strides, dtype and device")
    dtype = FORMATS[fmt][0]
    m, n = x.shape
    outs = 2 if producer == "silu_mul_grad" else 1
    # each tensor's row and then column absmax bits (float32 bits, see the kernel), zeroed in one launch
    amax = torch.zeros(outs * (m + n), device=x.device, dtype=torch.int32)
    # per tensor: row codes, row scales, column codes transposed, column scales (without cols the row ones stand
    # in for the column ones, never touched)
    res = []
    for _ in range(outs):
        q, s = torch.empty(m, n, device=x.device, dtype=dtype), torch.empty(m, device=x.device, dtype=torch.float32)
        res.append((q, s, torch.empty(n, m, device=x.device, dtype=dtype), torch.empty(n, device=x.device, dtype=torch.float32)) if cols else (q, s, q, s))
    y, z = (inputs + (x, x))[:2]
    bm, bn, warps, per_sm, codes_warps = tiles or _tiles(x, producer)
    rows = _strip_rows(x, bm, bn, per_sm)
    wrap_triton(_absmax_tiles_kernel)[(cdiv(n, bn), cdiv(m, rows))](
        x, y, z, amax, m, n, x.stride(0), x.stride(1), rows, BLOCK_M=bm, BLOCK_N=bn, COLS=cols,
        PRODUCER=PRODUCERS[producer], num_warps=warps)
    wrap_triton(_quantize_tiles_kernel)[(cdiv(m, bm), cdiv(n, bn))](
        x, y, z, amax, *res[0], *res[-1], seed_tensor(x, stochastic, seed, amax), m, n, x.stride(0),
        x.stride(1), res[0][0].stride(0), res[0][2].stride(0), BLOCK_M=bm, BLOCK_N=bn, FP8=fmt == "e4m3", STOCHASTIC=stochastic,
        COLS=cols, EMULATE_FP8=interpreting(), PRODUCER=PRODUCERS[producer], num_warps=codes_warps)
    return tuple(t for r in res for t in r) if cols else res[0][:2]


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


def produced_reference(producer: str, x: torch.Tensor, *inputs: torch.Tensor) -> list[torch.Tensor]:
    """What `produce` computes, in torch: fp32 arithmetic, results in x's dtype."""
    if producer == "silu_mul":
        return [(torch.nn.functional.silu(x.float()) * inputs[0].float()).to(x.dtype)]
    if producer == "silu_mul_grad":
        dh, g, u = x.float(), inputs[0].float(), inputs[1].float()
        sig = torch.sigmoid(g)
        return [(dh * u * sig * (1 + g * (1 - sig))).to(x.dtype), (dh * torch.nn.functional.silu(g)).to(x.dtype)]  # autograd's order
    raise ValueError(f"producer must be one of {tuple(p for p in PRODUCERS if p)}, got {producer!r}")


def quantize_produced(producer: str, x: torch.Tensor, *inputs: torch.Tensor, fmt: str = "int8", stochastic: bool = False,
                      seed: int = 0) -> tuple[torch.Tensor, ...]:
    """`quantize_rows_cols` of what `producer` computes from x and `inputs`, without storing it: each tensor's
    (q_rows, s_rows, q_cols_t, s_cols) in turn. On CUDA the producer runs inside both passes, where storing its
    result and quantizing that would write it once and read it twice more; elsewhere `produced_reference` and the
    reference quantization (tests run the kernels in the interpreter through `quantize_tiled`)."""
    if use_triton(x, *inputs):
        return quantize_tiled(x, fmt, stochastic, seed, True, producer, inputs)
    return tuple(t for i, p in enumerate(produced_reference(producer, x, *inputs))
                 for t in quantize_rows_cols_reference(p, stochastic, seed + 2 * i if seed >= 0 else seed, fmt))


def use_triton(*tensors: torch.Tensor) -> bool:
    return triton is not None and all(t.is_cuda for t in tensors)


@torch.library.custom_op("lowbit::quantize_rows_cols_reference", mutates_args=())
def _reference_op(
    x: torch.Tensor, stochastic: bool, seed: int, fmt: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return quantize_rows_cols_reference(x, stochastic, seed, fmt)


def empty_codes(t: torch.Tensor, fmt: str, tensors: int = 1) -> tuple[torch.Tensor, ...]:
    """Empty (q_rows [M, N], s_rows [M], q_cols_t [N, M], s_cols [N]) for `tensors` tensors shaped like t: what the
    quantizing ops return, for their fake (traced) implementations."""
    m, n = t.shape
    dtype, f32 = FORMATS[fmt][0], torch.float32
    return tuple(e for _ in range(tensors) for e in (t.new_empty(m, n, dtype=dtype), t.new_empty(m, dtype=f32),
                                                      t.new_empty(n, m, dtype=dtype), t.new_empty(n, dtype=f32)))


@_reference_op.register_fake
def _(x, stochastic, seed, fmt):
    return empty_codes(x, fmt)


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
