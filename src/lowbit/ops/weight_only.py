"""Weight-only matmuls for few tokens (decode, short prefill): 16-bit activations times 4- or 8-bit weights.

    out[m, n] = Σ_k x[m, k] · v(code[n, k]) · s[n, g(k)]  (+ bias[n])
    v(c) = c − z[n, g(k)]   (integer codes; symmetric storage has the fixed zero 2^(bits−1))
    v(c) = table[c]         (a code table: NF4's 16 values, or FP8's 256 as 8-bit codes)
    v(c) = c                (`qweight` int8: W8A8's signed codes; float8: FP8 values)

The storage is read as the layers keep it: `qweight` [N, ≥K·bits/8] (uint8: 4-bit codes two a byte,
little-endian nibbles, `lowbit.formats.packing`; int8 or float8: the values), `scale` float32 [N, G]
with G = K/g groups (G = 1: one scale per output channel), `zero` uint8 [N, G] or None.

Decode is bound by reading the weight once: a 4096×4096 int4 weight is 8 MB, 2.7 µs at the H100's
3 TB/s, so a kernel may spend only ~3 instructions a weight. The word kernels read the codes as
32-bit words and take each code out in place with one AND-OR into the mantissa of the float
2^23 (the magic-number conversion: no int→float instruction); the codes in the word's top 12 bits
are shifted down once a word (the GEMV uses the subnormal float that the code's bits alone make
instead: no OR, no subtraction). ncu counted 13.9 instructions a weight in session 3's byte GEMV:
    - `_gemv_words_kernel`: one token a program row, a word's products summed in registers, the
      offset and group scale applied once a word; code tables (NF4) too, read from shared memory
      (`_lookup`);
    - `_gemv_kernel` (bytes, session 3): code tables where a GPU's limits send them (on the H100's
      defaults NF4 at one token; on the H200 nothing: the word GEMV took NF4 from it in session 10);
    - `_mma_swapped_kernel`: the operands swapped so that weight rows fill the MMA's long side, the
      codes made c − z exactly by the magic-number float (or a table's values, or FP8 values), one
      `tl.dot` a K-step;
    - `_dequant_kernel` + cuBLAS beyond: the weight dequantized once to x's dtype, then `F.linear`.
Measured on an H100 (docs/benchmarks/README.md, sessions 4 and 6): the word GEMV runs 1.6-2.9x a bf16
cuBLAS GEMV at one token; the swapped MMA kernel 1.6-1.8x at 16 tokens on the 4096→11008 and
11008→4096 shapes, but 0.8x on 4096×4096 and 0.4-0.6x at 256 tokens, where there is no bf16 weight
to fall back to. On an H200 (session 8, weights read from memory), int4 g128 on the 7B shapes: the word GEMV
2.1-2.2x bf16 at one token, the swapped MMA kernel 1.0-1.25x at 16 tokens.

`weight_only_matmul` is the custom op (`lowbit::weight_only_matmul`) the layers call; on CPU every
path is the reference: dequantize with `lowbit.formats`, then `F.linear`. On CUDA it takes the paths
in the order above, each up to a token count measured per GPU (`dispatch_limits`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ..formats import fp
from ..formats import int as intfmt
from ..formats import nf4
from .fp8 import FP8_DTYPES
from .tiles import cdiv, cuda_index, interpreting, next_power_of_2, split_k_partials, split_k_plan, sum_split_k, tile_counters
from .w4a16 import dequantize_w4, w4a16_matmul

try:
    import triton
    import triton.language as tl
except ImportError:  # lowbit runs without Triton; the op then takes the reference path
    triton = None

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# what a code byte means: uint8 codes (c − z, or table[c]), int8 signed codes, or the FP8 values themselves
CODE_DTYPES = (torch.uint8, torch.int8, torch.float8_e4m3fn, torch.float8_e5m2)
_VALUES = {torch.int8: "sint", torch.float8_e4m3fn: "e4m3", torch.float8_e5m2: "e5m2"}
# The largest token count at which each path still beats the next one in the dispatch order (word GEMV →
# byte GEMV (tables) → swapped MMA → dequantize + cuBLAS), per storage kind: the Llama-2-7B linears timed
# on each GPU by `lowbit bench dispatch` (`lowbit.bench.dispatch`), which writes that GPU's entry into DISPATCH_FILE
# (the package's, for the GPUs lowbit was measured on) or into the user's file (`user_dispatch_file`), which overrides
# it. A GPU without an entry in either takes DEFAULT_LIMITS, with a warning: the package's entry for FALLBACK_GPU, the
# GPU issue 4's targets were written for (session 24: docs/benchmarks/session24-h100/call1/dispatch), and for table8,
# which no sweep times, sessions 4-6's H100 figure. The H200 moves bf16 ~1.4x faster than the H100 at the same
# arithmetic rate, so the crossovers move: one table for every GPU loses somewhere.
DISPATCH_FILE = Path(__file__).with_name("weight_only_dispatch.json")
FALLBACK_GPU = "NVIDIA H100 80GB HBM3"
DEFAULT_LIMITS = {**json.loads(DISPATCH_FILE.read_text())[FALLBACK_GPU]["limits"],
                  "table8": dict(words=0, gemv=4, swapped=64)}
# W8A8 layers (int8 and FP8 weights) take these weight-only kernels up to this many tokens instead of
# quantizing the activations, and are then exact in x. H200, the 7B linears at 16 tokens: W8A8 int8 0.134 →
# 0.125 ms, FP8 W8A8 0.152 → 0.114 ms (bf16 0.134); at 256 the weight-only kernels lose (0.36-0.39 against
# 0.16-0.18 ms; docs/benchmarks/session7-h200). Session 10 (call 4's bench linear, call 5): at 32 tokens the
# weight-only kernels still win (int8 0.116 against 0.125 quantized with the narrower INT8 tiles, FP8 0.107
# against 0.133), at 64 they lose (int8 0.149 against 0.127, FP8 0.145 against 0.135).
# Session 21 (call 3's bench linear, the swapped kernel's H200 tiles, ms at 64 tokens, bf16 0.131): FP8 weight-only
# 0.124 against FP8 W8A8's 0.133, and int8 weight-only 0.132 against LLM.int8()'s own path (int8 product, outlier
# search) 0.162, so those two take the weight-only kernels to 64 tokens; W8A8 int8's product still wins there (0.124).
# Keyed by the layer: "w8a8" (int8), "fp8" (FP8 W8A8), "llm_int8".
VALUES_MAX_M = {"w8a8": 32, "fp8": 64, "llm_int8": 64}
_INT32_MAX = 2**31 - 1



if triton is not None:

    @triton.jit
    def _as_float(c, bias):
        """float(c) − bias for int32 codes 0 ≤ c < 2^23, without the slow int→float convert: the bits
        0x4B000000 | c are the float 2^23 + c exactly, so one subtraction of 2^23 + bias finishes it."""
        return (c | 0x4B000000).to(tl.float32, bitcast=True) - (8388608.0 + bias)

    @triton.jit
    def _table(lut_ptr, BITS: tl.constexpr):
        """A code table's 2^BITS values, loaded once a program, for `_lookup`."""
        return tl.load(lut_ptr + tl.arange(0, 1 << BITS))

    @triton.jit
    def _lookup(table, c):
        """table[c] for int32 codes c of any shape. `tl.gather` from the table held by the program: Triton puts
        the table in shared memory and reads one value a code (LDS), where `tl.load(lut_ptr + c)` was a global
        gather whose layout conversions through shared memory cost more than the lookups (sm_90, word GEMV, NF4:
        2274 → 658 loop instructions, against 470 for integer codes). H200, NF4 b64 on the seven 7B linears (session
        10, weights read from memory): one token 167 µs (byte GEMV) → 93 (word GEMV), bf16 133; 16 tokens 352
        (dequantize + cuBLAS) → 162 (swapped kernel)."""
        flat = tl.reshape(c, (c.numel,))
        return tl.reshape(tl.gather(table, flat, 0), c.shape)

    @triton.jit
    def _byte_values(c, table, VALUES: tl.constexpr):
        """fp32 values of int32 codes c that are not integers: a code table's ("lut", `_table`) or the FP8 values
        their bytes are ("e4m3", else e5m2)."""
        if VALUES == "lut":
            return _lookup(table, c)
        if VALUES == "e4m3":
            return c.to(tl.uint8).to(tl.float8e4nv, bitcast=True).to(tl.float32)
        return c.to(tl.uint8).to(tl.float8e5, bitcast=True).to(tl.float32)

    @triton.jit
    def _value(c, table, z, USE_LUT: tl.constexpr):
        """fp32 weight value of int32 codes c before the scale: table[c] (`_table`) or c − z."""
        if USE_LUT:
            return _lookup(table, c)
        return _as_float(c, z)

    @triton.jit
    def _gemv_kernel(
        x_ptr, q_ptr, s_ptr, z_ptr, lut_ptr, bias_ptr, out_ptr,
        N, K, group_size, stride_xm, stride_qn, stride_sn, stride_zn, stride_om,
        BITS: tl.constexpr, HAS_ZERO: tl.constexpr, USE_LUT: tl.constexpr, HAS_BIAS: tl.constexpr,
        BLOCK_N: tl.constexpr, TG: tl.constexpr, TW: tl.constexpr,
    ):
        PER: tl.constexpr = 8 // BITS  # codes a byte
        TB: tl.constexpr = TW // PER  # bytes of one chunk row
        pid_m = tl.program_id(0)
        offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        t = tl.arange(0, TG)
        j = tl.arange(0, TB)
        w_cols = tl.arange(0, TW)
        x_row = x_ptr + pid_m * stride_xm
        table = _table(lut_ptr, BITS) if USE_LUT else lut_ptr
        acc = tl.zeros((BLOCK_N, TG, TB), dtype=tl.float32)
        for k0 in range(0, K, TG * TW):
            chunk = k0 + t * TW  # first column of each chunk [TG]
            cmask = (chunk[:, None] + PER * j[None, :]) < K  # per byte [TG, TB]; K is even for 4 bits
            b = tl.load(
                q_ptr + offs_n[:, None, None] * stride_qn + (k0 // PER + t[:, None] * TB + j[None, :])[None, :, :],
                mask=n_mask[:, None, None] & cmask[None, :, :], other=0,
            ).to(tl.int32)
            g = chunk // group_size
            smask = n_mask[:, None] & (chunk < K)[None, :]
            s = tl.load(s_ptr + offs_n[:, None] * stride_sn + g[None, :], mask=smask, other=0.0)[:, :, None]
            if HAS_ZERO:
                z = tl.load(z_ptr + offs_n[:, None] * stride_zn + g[None, :], mask=smask, other=0).to(tl.float32)[:, :, None]
            else:
                z = (1 << (BITS - 1)) * 1.0
            # the chunk's activations in one contiguous (vector) load, fp32
            xc = chunk[:, None] + w_cols[None, :]
            x = tl.load(x_row + xc, mask=xc < K, other=0.0).to(tl.float32)
            if BITS == 4:  # low nibbles are the even columns, high nibbles the odd ones
                x_lo, x_hi = tl.split(tl.reshape(x, (TG, TB, 2)))
                part = _value(b & 0xF, table, z, USE_LUT) * x_lo[None, :, :] + _value(b >> 4, table, z, USE_LUT) * x_hi[None, :, :]
            else:
                part = _value(b, table, z, USE_LUT) * x[None, :, :]
            acc += part * s  # masked lanes: x and s are 0 there
        out = tl.sum(tl.sum(acc, axis=2), axis=1)
        if HAS_BIAS:
            out += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0)
        tl.store(out_ptr + pid_m * stride_om + offs_n, out.to(out_ptr.dtype.element_ty), mask=n_mask)

    @triton.jit
    def _group_col(offs_w, GROUP_W: tl.constexpr):
        """Column of the scale / zero point of words offs_w: their group's, or 0 with one a row (GROUP_W = 0;
        the division by zero there compiled to a load from an undefined address on sm_90)."""
        col = offs_w * 0
        if GROUP_W > 0:
            col = offs_w // GROUP_W
        return col

    @triton.jit
    def _words_products(w, x, i, table, BITS: tl.constexpr, VALUES: tl.constexpr):
        """Σ over a word's codes of value · x for words w [BLOCK_N, C] of codes that are not integers (a table's, FP8
        values) and their activations x [PER, C] (fp32)."""
        c = (w[None, :, :] >> (BITS * i)[:, None, None]) & ((1 << BITS) - 1)
        return tl.sum(_byte_values(c, table, VALUES) * x[:, None, :], axis=0)

    @triton.jit
    def _halves(x):
        """[R, 2n] → its even and odd columns, two [R, n] (free: a thread holds a row's columns)."""
        return tl.split(tl.reshape(x, (x.shape[0], x.shape[1] // 2, 2)))

    @triton.jit
    def _code_fma(t, w, xj, PLACE: tl.constexpr, BITS: tl.constexpr, FIRST: tl.constexpr):
        """t + value · x for the code at bit PLACE of words w [BLOCK_N, C] and its activations xj [C] (FIRST: the product
        alone, t not read): the code alone in its float's bits is the subnormal c·2^(PLACE − 149), exact (Triton's fp32
        math keeps subnormals), and x carries 2^(64 − PLACE), so the product is c·x·2^-85; one AND, one FFMA. The price:
        |x| ≥ 2^64 overflows to inf (LLM activations stay far below; fp16 ends at 65504)."""
        f = (w & (((1 << BITS) - 1) << PLACE)).to(tl.float32, bitcast=True)
        xs = xj * tl.exp2(64.0 - PLACE)
        if FIRST:
            return f * xs[None, :]
        return t + f * xs[None, :]

    @triton.jit
    def _words_chain(t, w, x, BITS: tl.constexpr, SIGNED: tl.constexpr, FIRST: tl.constexpr):
        """t + Σ over a word's integer codes of c·x·2^-85, for words w [BLOCK_N, C] and activations x [C, PER]
        (fp32), as one FFMA chain a row: no product starts a chain with an FMUL and no partial sum is added on
        (a word's products summed as a tree, then added to t, cost both). Returns (t, Σx). sm_90 loop instructions
        (`benchmarks/sm90_asm.py`, with the constexpr strides and unclamped rows of session 17): int4 g128 with zero
        points 518 → 467 a step (4.05 → 3.65 a code), int8 one scale a row 160 → 131."""
        if SIGNED:
            w = w ^ -2139062144  # 0x80808080: each two's complement byte + 128
        hi = w >> 12  # the codes above bit 20, one shift a word (no code left at bit 0: no bit-field extract)
        e, o = _halves(x)
        if BITS == 4:  # code j at bit 4j (j < 5), 4j − 12 (j ≥ 5)
            ee, eo = _halves(e)
            oe, oo = _halves(o)
            x0, x4 = tl.split(ee)
            x2, x6 = tl.split(eo)
            x1, x5 = tl.split(oe)
            x3, x7 = tl.split(oo)
            t = _code_fma(t, w, x0, 0, BITS, FIRST)
            t = _code_fma(t, w, x1, 4, BITS, False)
            t = _code_fma(t, w, x2, 8, BITS, False)
            t = _code_fma(t, w, x3, 12, BITS, False)
            t = _code_fma(t, w, x4, 16, BITS, False)
            t = _code_fma(t, hi, x5, 8, BITS, False)
            t = _code_fma(t, hi, x6, 12, BITS, False)
            t = _code_fma(t, hi, x7, 16, BITS, False)
            sx = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7))
        else:  # 8 bits: code j at bit 8j (j < 2), 8j − 12 (j ≥ 2)
            x0, x2 = tl.split(e)
            x1, x3 = tl.split(o)
            t = _code_fma(t, w, x0, 0, BITS, FIRST)
            t = _code_fma(t, w, x1, 8, BITS, False)
            t = _code_fma(t, hi, x2, 4, BITS, False)
            t = _code_fma(t, hi, x3, 12, BITS, False)
            sx = (x0 + x1) + (x2 + x3)
        return t, sx

    @triton.jit
    def _zero_point(z_ptrs, magic, BITS: tl.constexpr, HAS_ZERO: tl.constexpr):
        """The integer codes' offset z as fp32: loaded (uint8) and made float by the magic-number OR (2^23 + z, exact:
        a full-rate FADD for the quarter-rate I2F), or symmetric storage's fixed 2^(BITS−1)."""
        if HAS_ZERO:
            zf = (tl.load(z_ptrs).to(tl.int32) | magic).to(tl.float32, bitcast=True) - 8388608.0
        else:
            zf = (1 << (BITS - 1)) * 1.0
        return zf

    @triton.jit
    def _gemv_words_kernel(
        x_ptr, w_ptr, s_ptr, z_ptr, lut_ptr, bias_ptr, out_ptr, g_ptr,
        N, KW, words_per_split, stride_xm, stride_wn: tl.constexpr, stride_sn: tl.constexpr, stride_zn: tl.constexpr,
        stride_os, stride_om, magic, eps,
        BITS: tl.constexpr, VALUES: tl.constexpr, HAS_ZERO: tl.constexpr, GROUP_W: tl.constexpr, HAS_BIAS: tl.constexpr,
        EVEN_K: tl.constexpr, PREFETCH: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr, V: tl.constexpr,
        EVEN_N: tl.constexpr, NORM: tl.constexpr = False,
    ):
        """The decode GEMV on 32-bit words of codes. A step reads BLOCK_W words of BLOCK_N rows: each of its
        C = BLOCK_W / V columns is V consecutive words (one group's, so the offset and scale apply once
        to their sum), taken one word a column at a time as a [BLOCK_N, C] tile with its activations as
        [PER, C] (code index first: Triton then keeps a word's PER codes in one thread, so its sum needs
        no shuffles). Each integer code comes out in place with one AND (alone in a float's bits it is the
        subnormal c·2^(p − 149), exact while c sits in the low 23 bits; the word's top codes are shifted
        down 12 bits first, once a word) and goes into one FFMA chain a row (`_words_chain`): two
        instructions a code. VALUES: "int" (c − z), "sint" (signed int8: the flipped sign bit makes it
        "int" with z = 128), "lut" (table[c]), "e4m3"/"e5m2" (the byte is an FP8 value). The offset z
        and the group scale (GROUP_W words a group) apply once a column; with GROUP_W = 0 (one scale a
        row) once at the end.

        A step holds a few KB per program in flight, too little to hide DRAM latency on its own:
        PREFETCH issues the next word of each column before this word's arithmetic (PREFETCH 2, with V = 2: both words
        of the next step before this step's: the whole next step in flight, as PREFETCH 1 has with V = 1), and split-K
        (program axis 2, `words_per_split` words each, fp32 partials summed after) puts more programs
        on a short K. Only where K is not a whole number of steps (EVEN_K false) and for the prefetch past
        a row's end are the word loads masked; words past K read as code 0 with activation 0.

        Tried and reverted (session 9, call 5): programmatic dependent launch, each program letting the next
        GEMV launch at once and waiting for the one before after its first weight loads. The seven 7B linears
        at one token: int4 0.063 → 0.060 ms, but int8 and FP8 0.073-0.076 → 0.088 ms (their one-wave grids left
        the next kernels waiting on the SMs), and 7B decode 354 → 350 tok/s.

        NORM: x is the input of an RMSNorm with gain g (`g_ptr`, K values) whose output this linear reads: each x is
        multiplied by g as it is loaded, and the sum of the products by the row's 1/√(mean(x²) + eps) at the end, from
        x's squares summed on the way (each program reads all of x: one K-split only). The norm then costs no kernel."""
        PER: tl.constexpr = 32 // BITS  # codes a word
        C: tl.constexpr = BLOCK_W // V
        pid_m = tl.program_id(0)
        pid_k = tl.program_id(2)
        offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        # rows past N read row N − 1 (their sums are never stored): the loads in the loop need no row
        # mask, so no predicates and no zero fills (sm_90 int4 g128: 731 → 689 loop instructions with
        # zero points, 580 → 561 without). Where BLOCK_N divides N (EVEN_N) the rows are not clamped: with
        # the row strides constexpr, a thread's rows then lie at constant distances, which its word loads
        # take as immediate offsets from one address (int4 g128 with zero points on 4096 → 11008: 497 → 467 loop
        # instructions, registers 56 → 48)
        rows = offs_n if EVEN_N else tl.minimum(offs_n, N - 1)
        w_rows = w_ptr + rows[:, None] * stride_wn
        # a group's scales and zero points: (tile + column) + row. Where EVEN_N the tile is the first row's and each row at
        # a constant distance from it, which the loads take as immediate offsets from one address a column (sm_90 int4
        # g128 with zero points: 467 → 435 loop instructions on 4096 → 11008, 473 → 434 on 11008 → 4096, 48-56 → 58-64
        # registers; H200, the seven 7B linears, µs: int4 60.8 → 59.5 at one token, 92.2 → 85.8 at two, NF4 74.9 → 73.6
        # and 123.5 → 118.3, int8 71.8 both; session 23, docs/benchmarks/session23-h200/call1); else each row's
        # pointer (tile) plus the column
        if EVEN_N:
            s_tile = s_ptr + (tl.program_id(1) * BLOCK_N) * stride_sn
            z_tile = z_ptr + (tl.program_id(1) * BLOCK_N) * stride_zn
            s_rows = (tl.arange(0, BLOCK_N) * stride_sn)[:, None]
            z_rows = (tl.arange(0, BLOCK_N) * stride_zn)[:, None]
        else:
            s_tile, z_tile = s_ptr + rows[:, None] * stride_sn, z_ptr + rows[:, None] * stride_zn
            s_rows, z_rows = 0, 0
        i = tl.arange(0, PER)
        acc = tl.zeros((BLOCK_N, C), dtype=tl.float32)
        x_row = x_ptr + pid_m * stride_xm
        table = _table(lut_ptr, BITS) if VALUES == "lut" else lut_ptr
        # the pointers advance a step at a time, and a column's words are immediate offsets from them
        cols = pid_k * words_per_split + tl.arange(0, C) * V  # each column's first word; the start: a multiple of BLOCK_W
        w_end = tl.minimum(KW, pid_k * words_per_split + words_per_split)
        w_ptrs = w_rows + cols[None, :]
        x_ptrs = x_row + cols[None, :] * PER + i[:, None]
        g_ptrs = g_ptr + cols[None, :] * PER + i[:, None]
        ssq = tl.zeros((PER, C), dtype=tl.float32)
        INT: tl.constexpr = VALUES == "int" or VALUES == "sint"
        sx_all = tl.zeros((C,), dtype=tl.float32)
        tl.static_assert(PREFETCH != 2 or V == 2)
        if PREFETCH == 2:  # a whole step ahead: both words of each column
            w_next = tl.load(w_ptrs, mask=(cols < KW)[None, :], other=0)
            w_next1 = tl.load(w_ptrs + 1, mask=(cols + 1 < KW)[None, :], other=0)
        elif PREFETCH:
            w_next = tl.load(w_ptrs, mask=(cols < KW)[None, :], other=0)
        for _ in range(pid_k * words_per_split, w_end, BLOCK_W):
            if PREFETCH == 2:
                w_cur = w_next
                w_cur1 = w_next1
                w_next = tl.load(w_ptrs + BLOCK_W, mask=(cols + BLOCK_W < KW)[None, :], other=0)
                w_next1 = tl.load(w_ptrs + (BLOCK_W + 1), mask=(cols + (BLOCK_W + 1) < KW)[None, :], other=0)
            for v in tl.static_range(V):
                if PREFETCH == 2:
                    if v == 0:
                        w = w_cur
                    else:
                        w = w_cur1
                elif PREFETCH:  # the next word of each column, or the next step's first (none past the row's end)
                    w = w_next
                    ahead = 1 if v < V - 1 else BLOCK_W - V + 1
                    w_next = tl.load(w_ptrs + (v + ahead), mask=(cols + (v + ahead) < KW)[None, :], other=0)
                elif EVEN_K:
                    w = tl.load(w_ptrs + v)
                else:
                    w = tl.load(w_ptrs + v, mask=(cols + v < KW)[None, :], other=0)
                if EVEN_K:
                    x = tl.load(x_ptrs + v * PER).to(tl.float32)
                else:  # past K: x is 0
                    x = tl.load(x_ptrs + v * PER, mask=(cols + v < KW)[None, :], other=0.0).to(tl.float32)
                if NORM:  # the RMSNorm's gain on the way in; its 1/rms at the end (past K: x is 0, g is not read)
                    ssq += x * x
                    if EVEN_K:
                        x = x * tl.load(g_ptrs + v * PER).to(tl.float32)
                    else:
                        x = x * tl.load(g_ptrs + v * PER, mask=(cols + v < KW)[None, :], other=0.0).to(tl.float32)
                # a column's sums start from its first word's (a sum from zeros cost an FADD a row: 0 + x is not x
                # for x = −0); with one scale a row, integer codes' products run on in acc
                if INT:
                    x = tl.permute(x, (1, 0))  # [C, PER], as `_words_chain` takes it
                if INT and GROUP_W == 0:
                    acc, sxv = _words_chain(acc, w, x, BITS, VALUES == "sint", False)
                    sx_all += sxv
                elif INT and v == 0:
                    t, sx = _words_chain(w, w, x, BITS, VALUES == "sint", True)
                elif INT:
                    t, sxv = _words_chain(t, w, x, BITS, VALUES == "sint", False)
                    sx += sxv
                elif v == 0:
                    t = _words_products(w, x, i, table, BITS, VALUES)
                else:
                    t += _words_products(w, x, i, table, BITS, VALUES)
            if not (INT and GROUP_W == 0):
                g = _group_col(cols if EVEN_K else tl.minimum(cols, KW - 1), GROUP_W)  # past K: the last group (x is 0)
                if INT:  # Σ(c − z)·x = Σc·x − z·Σx: the z part once a column
                    t -= _zero_point((z_tile + g[None, :]) + z_rows, magic, BITS, HAS_ZERO) * (sx * 2.5849394142282115e-26)[None, :]  # 2^-85
                if GROUP_W > 0:
                    acc += t * tl.load((s_tile + g[None, :]) + s_rows)
                else:
                    acc += t
            cols += BLOCK_W
            w_ptrs += BLOCK_W
            x_ptrs += BLOCK_W * PER
            g_ptrs += BLOCK_W * PER
        if INT and GROUP_W == 0:  # the rows' offset z·Σx, once
            acc -= _zero_point(z_ptr + rows[:, None] * stride_zn, magic, BITS, HAS_ZERO) * (sx_all * 2.5849394142282115e-26)[None, :]
        out = tl.sum(acc, axis=1)
        if VALUES == "int" or VALUES == "sint":
            out *= 3.8685626227668134e25  # 2^85: the integer codes' products were scaled by 2^-85
        if GROUP_W == 0:
            out *= tl.load(s_ptr + offs_n * stride_sn, mask=n_mask, other=0.0)
        if NORM:
            out *= tl.rsqrt(tl.sum(tl.sum(ssq, axis=1), axis=0) / (KW * PER) + eps)
        if HAS_BIAS:  # added by the first K-split only
            out += tl.load(bias_ptr + offs_n, mask=n_mask & (pid_k == 0), other=0.0)
        tl.store(out_ptr + pid_k * stride_os + pid_m * stride_om + offs_n, out.to(out_ptr.dtype.element_ty), mask=n_mask)

    def _nibble_pairs_asm(magic: str, sub: str) -> str:
        """PTX of `_nibble_pairs` for one 16-bit type: its exponent `magic` (two halves) and packed subtraction."""
        pairs = "\n".join(f"prmt.b32 t{i}, $4, w4, 0x{4 + i}{4 + i}{i}{i};" for i in range(4))
        masks = "\n".join(f"lop3.b32 t{i}, t{i}, 0x000F000F, {magic}, 0xEA;" for i in range(4))
        subs = "\n".join(f"{sub} ${i}, t{i}, ${5 + i};" for i in range(4))
        return f"{{\n.reg .b32 w4, t0, t1, t2, t3;\nshr.b32 w4, $4, 4;\n{pairs}\n{masks}\n{subs}\n}}"

    _PAIRS_BF16 = tl.constexpr(_nibble_pairs_asm("0x43004300", "sub.rn.bf16x2"))
    _PAIRS_FP16 = tl.constexpr(_nibble_pairs_asm("0x64006400", "sub.rn.f16x2"))
    _PAIRS_CONSTRAINTS = tl.constexpr("=r,=r,=r,=r,r,r,r,r,r")  # 4 pairs out; 4 bytes in (one register), 4 zz

    @triton.jit
    def _nibble_pairs(b, zz, FP16: tl.constexpr):
        """uint8 bytes b (4 a register) → the int32 bits of the 16-bit pair (low nibble − z, high nibble − z),
        exact, in three instructions a byte and one shift a word: PRMT puts the byte and the word shifted by 4
        into the two halves, one LOP3 masks a nibble into each half's mantissa with the exponent of 128 (bf16;
        fp16: 1024), and one packed subtraction of zz = the pair (128 + z, 128 + z) leaves c − z. Inline PTX: not
        for the interpreter."""
        if FP16:
            return tl.inline_asm_elementwise(_PAIRS_FP16, _PAIRS_CONSTRAINTS, [b, zz], tl.int32, True, 4)
        return tl.inline_asm_elementwise(_PAIRS_BF16, _PAIRS_CONSTRAINTS, [b, zz], tl.int32, True, 4)

    @triton.jit
    def _scaled_pairs(pair, s, dtype: tl.constexpr):
        """int32 pairs of 16-bit values [R, C] times their rows' scales s (fp32 [R], rounded to x's 16-bit dtype first),
        one packed product a pair rounded once: the scale folded into the MMA's operand at half an instruction a code
        (in fp32, unpacked and repacked: ~3). Inline PTX: not for the interpreter."""
        ss = ((s.to(dtype).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF) * 65537)[:, None]
        if dtype == tl.float16:
            return tl.inline_asm_elementwise("mul.rn.f16x2 $0, $1, $2;", "=r,r,r", [pair, ss], tl.int32, True, 1)
        return tl.inline_asm_elementwise("mul.rn.bf16x2 $0, $1, $2;", "=r,r,r", [pair, ss], tl.int32, True, 1)

    def _table_pairs_asm() -> str:
        """PTX of `_table_pairs`. Operands: $0-$3 the four pairs out; $4 the word of 4 bytes (8 codes); then each
        32-bit table word as 4 operands (pack 4), of which the first is used: L0-L3 at $5, $9, $13, $17, H0-H3 at
        $21, $25, $29, $33."""
        low, high = [f"${5 + 4 * j}" for j in range(4)], [f"${21 + 4 * j}" for j in range(4)]
        lines = ["shl.b32 w4, $4, 4;", "and.b32 sa, $4, 0x7777;", "shr.b32 sb, $4, 16;", "and.b32 sb, sb, 0x7777;",
                 "prmt.b32 ma, w4, $4, 0xD9C8;", "prmt.b32 mb, w4, $4, 0xFBEA;"]
        for dst, words, sel, mask in (("la", low, "sa", "ma"), ("ha", high, "sa", "ma"), ("lb", low, "sb", "mb"), ("hb", high, "sb", "mb")):
            lines += [f"prmt.b32 x0, {words[0]}, {words[1]}, {sel};", f"prmt.b32 x1, {words[2]}, {words[3]}, {sel};",
                      f"lop3.b32 {dst}, x0, x1, {mask}, 0xD8;"]
        lines += ["prmt.b32 $0, la, ha, 0x5140;", "prmt.b32 $1, la, ha, 0x7362;", "prmt.b32 $2, lb, hb, 0x5140;",
                  "prmt.b32 $3, lb, hb, 0x7362;"]
        return "{\n.reg .b32 w4, sa, sb, ma, mb, x0, x1, la, ha, lb, hb;\n" + "\n".join(lines) + "\n}"

    _TABLE_PAIRS = tl.constexpr(_table_pairs_asm())
    _TABLE_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 4 + ["r"] * 33))  # 4 pairs out; 4 bytes in, 8 table words × 4

    @triton.jit
    def _table_pairs(b, l0, l1, l2, l3, h0, h1, h2, h3):
        """uint8 bytes b (4 a register) → the int32 bits of the 16-bit pair (table[low nibble], table[high nibble]),
        the table's 16 entries given as the bytes of 8 words (`_table_words`), in registers: no memory access.
        PRMT picks a byte of 8 by a 3-bit index, so each lookup is two PRMTs (entries 0-7 and 8-15) and a LOP3
        choosing between them by the code's bit 3 (a byte mask made by PRMT's sign-replicating mode); low and
        high bytes are looked up apart, then interleaved into pairs: 22 instructions a word of 8 codes, against
        ~10 a code for a gather from shared memory (`_lookup`). Inline PTX: not for the interpreter."""
        return tl.inline_asm_elementwise(_TABLE_PAIRS, _TABLE_CONSTRAINTS, [b, l0, l1, l2, l3, h0, h1, h2, h3], tl.int32, True, 4)

    @triton.jit
    def _table_word(e, shift, j, J: tl.constexpr, HIGH: tl.constexpr):
        """Byte HIGH of the 16-bit entries 4J .. 4J + 3 (of e, their bits), packed into one int32 (entry 4J lowest)."""
        part = (e >> 8) if HIGH else (e & 0xFF)
        return tl.sum(tl.where(j == J, part << shift, 0), axis=0)  # disjoint bytes: the sum is their OR

    @triton.jit
    def _table_words(lut_ptr, dtype: tl.constexpr):
        """A 16-entry code table (fp32) rounded to x's 16-bit dtype, as `_table_pairs` takes it: L0-L3 the low
        bytes of entries 0-3, 4-7, 8-11, 12-15, H0-H3 their high bytes."""
        i = tl.arange(0, 16)
        e = tl.load(lut_ptr + i).to(dtype).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
        shift, j = (i % 4) * 8, i // 4
        return (_table_word(e, shift, j, 0, False), _table_word(e, shift, j, 1, False), _table_word(e, shift, j, 2, False),
                _table_word(e, shift, j, 3, False), _table_word(e, shift, j, 0, True), _table_word(e, shift, j, 1, True),
                _table_word(e, shift, j, 2, True), _table_word(e, shift, j, 3, True))

    @triton.jit
    def _mma_byte_order(b, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """Bytes b [BLOCK_N, BLOCK_K / 2] permuted so that each thread of the MMA operand holds BLOCK_K / 8
        consecutive ones (one vector load from shared memory, not a load a byte); K in `_packed_order`'s order."""
        NC: tl.constexpr = BLOCK_K // 16
        return tl.reshape(tl.permute(tl.reshape(b, (BLOCK_N, 4, NC, 2)), (0, 2, 3, 1)), (BLOCK_N, BLOCK_K // 2))

    @triton.jit
    def _pairs_as_values(pair, dtype: tl.constexpr):
        """int32 pairs of 16-bit values (a byte's low nibble's in the low half) → the values, two a byte, in order."""
        lo = pair.to(tl.int16).to(dtype, bitcast=True)
        hi = (pair >> 16).to(tl.int16).to(dtype, bitcast=True)
        return tl.interleave(lo, hi)

    @triton.jit
    def _packed_codes(b, z, s, dtype: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SCALED: tl.constexpr):
        """The 4-bit codes − z of bytes b [BLOCK_N, BLOCK_K / 2] as a [BLOCK_N, BLOCK_K] tile of x's 16-bit dtype,
        K in the order `_packed_order` gives (`_mma_byte_order`); SCALED: times the rows' scales s (`_scaled_pairs`)."""
        b = _mma_byte_order(b, BLOCK_N, BLOCK_K)
        FP16: tl.constexpr = dtype == tl.float16
        magic = 0x6400 if FP16 else 0x4300  # 1024 (fp16) or 128 (bf16) with the code in the low mantissa bits
        zz = ((z | magic) * 65537)[:, None]
        pair = _nibble_pairs(b, zz, FP16)
        if SCALED:
            pair = _scaled_pairs(pair, s, dtype)
        return _pairs_as_values(pair, dtype)

    @triton.jit
    def _packed_table(b, words, s, dtype: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SCALED: tl.constexpr):
        """table[code] of the 4-bit codes of bytes b [BLOCK_N, BLOCK_K / 2] as a [BLOCK_N, BLOCK_K] tile of x's 16-bit
        dtype (the table's words from `_table_words`), K in the order `_packed_order` gives; SCALED: times the rows'
        scales s (`_scaled_pairs`)."""
        b = _mma_byte_order(b, BLOCK_N, BLOCK_K)
        z = tl.zeros((BLOCK_N, BLOCK_K // 2), dtype=tl.int32)
        pair = _table_pairs(b, z + words[0], z + words[1], z + words[2], z + words[3], z + words[4], z + words[5],
                            z + words[6], z + words[7])
        if SCALED:
            pair = _scaled_pairs(pair, s, dtype)
        return _pairs_as_values(pair, dtype)

    @triton.jit
    def _packed_column(s, BLOCK_K: tl.constexpr):
        """The K column (inside its step) of slots s of `_packed_codes`' tile: slot 16c + 8e + 2t + h holds the nibble h
        of byte (BLOCK_K / 8)·t + 2c + e (`packed_x_order` runs it on the host: plain integer arithmetic)."""
        return (BLOCK_K // 4) * ((s // 2) % 4) + 4 * (s // 16) + 2 * ((s // 8) % 2) + s % 2

    @triton.jit
    def _packed_order(BLOCK_K: tl.constexpr):
        """The K column of each slot of a step of `_packed_codes`' tile."""
        return _packed_column(tl.arange(0, BLOCK_K), BLOCK_K)

    @triton.jit
    def _mma_swapped_kernel(
        x_ptr, q_ptr, s_ptr, z_ptr, lut_ptr, bias_ptr, out_ptr, sum_ptr, count_ptr,
        M, N, K, k_per_split, n_split, stride_xm, stride_qn, stride_sn, stride_zn, stride_os, stride_om,
        BITS: tl.constexpr, VALUES: tl.constexpr, HAS_ZERO: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr,
        EVEN_K: tl.constexpr, DOT_PRECISION: tl.constexpr, PACKED: tl.constexpr, SUM_HERE: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FOLD: tl.constexpr, X_ORDERED: tl.constexpr,
    ):
        """A few tokens with the operands swapped: outᵀ tile [BLOCK_N, BLOCK_M] = (c − z) [BLOCK_N, BLOCK_K]
        @ xᵀ [BLOCK_K, BLOCK_M], so the weight rows fill the MMA's long side (64+) and the tokens its
        short one (the MMA needs at least 16 rows, which a few tokens cannot fill). A step reads
        BLOCK_K packed codes a row inside one group (GROUP codes; 0: one scale a row): nibbles
        interleaved back into column order, made c − z exactly by the magic-number float (exact in
        bf16 too: |c − z| ≤ 255), or taken from a table (NF4) or as FP8 values (VALUES, as in the word
        GEMV), one `tl.dot`, then the group scale on the step's sum. PACKED (4-bit integer codes, 16-bit x,
        on the GPU): the codes come out two at a time in x's dtype (`_packed_codes`, 1.6 instructions a code
        against 5.3; sm_90, 16 tokens, 64 × 128 tile: 342 → 245 loop instructions), in a K order that x is
        loaded in too, or that x was gathered into before the launch (X_ORDERED: then x loads contiguously, which
        taller tiles need; sm_90, 64 tokens, 4096 → 11008: 397 loop instructions unpacked → 267). Measured on the
        H200 (session 9, weights read from memory, int4 g128 on the 7B shapes): 4-16% faster than one code at a time
        at 1 and 16 tokens, not more, since the kernel waits on memory, not on instructions (ncu, 16 tokens: 0.48
        issued a scheduler cycle). The scale of the next step is loaded one
        step ahead. Rows past N read row N − 1 (clamped: no row masks); codes past K are masked (x is 0 there).
        FOLD (`swapped_config` sets it for code tables on 128-token tiles, where it won; it lost on int4 at every
        token count, sessions 22-23): the group scale goes into the codes' values before the MMA, (c − z)·s rounded to
        x's dtype as the dequantize path's weight is (packed codes: by one packed product with s rounded to x's dtype,
        `_scaled_pairs`). The MMA then sums into acc and can run on while the next step's codes are dequantized.
        Without it each step's product is scaled at once, so each step waits for its MMA (the sm_90 TTGIR: a
        `warp_group_dot_wait` of 0 pending a step; with FOLD, 7 of 8 in flight, at ~1.5x the loop instructions on
        int4 in fp32, 267 → 382 packed at 64 tokens). That wait is not what holds int4 back: ncu at 64 tokens (session
        23) found the warps' stalls spread over barriers, global and shared loads, fixed latencies and the MMA's wait
        (0.7-0.9 cycles each an instruction), 2.5 warps a scheduler (registers), 0.6 of them eligible.
        Split-K on program axis 2 writes fp32 partials; with SUM_HERE the last of a tile's programs to finish
        (a counter a tile, `count_ptr`, zero before and left zero after) sums them in split order into
        `sum_ptr`, x's dtype: no sum and copy kernels after (two launches a linear at 2-64 tokens; the 7B
        linears at 16 tokens on the H200, W4A16: 0.114 → 0.098 ms, session 9). On an H100 at 4-256 tokens it
        took 0.4-0.6x the time of the word-plane MMA kernel it replaced (code plane i of 32-bit words as one
        `tl.dot`: its planes needed shuffles into the operand layout), and 0.2-0.9x dequantize + cuBLAS
        (docs/benchmarks/weight-only-session6/mma-swapped.json)."""
        PER: tl.constexpr = 8 // BITS  # codes a byte
        offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        pid_k = tl.program_id(2)
        rows = tl.minimum(offs_n, N - 1)
        m_mask = offs_m < M
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        k_start = pid_k * k_per_split  # a multiple of BLOCK_K
        k_end = tl.minimum(K, k_start + k_per_split)
        if PACKED and not X_ORDERED:  # (X_ORDERED: x was gathered into that order before the launch)
            cols = _packed_order(BLOCK_K)
        else:
            cols = tl.arange(0, BLOCK_K)
        z_ptrs = z_ptr + rows * stride_zn
        s_ptrs = s_ptr + rows * stride_sn
        table = _table(lut_ptr, BITS) if VALUES == "lut" else lut_ptr
        if PACKED and VALUES == "lut":  # the table as bytes in 8 registers, for `_table_pairs`
            words = _table_words(lut_ptr, x_ptr.dtype.element_ty)
        if HAS_ZERO and GROUP == 0:  # one zero point a row: loaded once
            z_row = tl.load(z_ptrs)
        if GROUP > 0:  # each step's scale is loaded a step ahead
            s_next = tl.load(s_ptrs + k_start // GROUP)
        else:  # (one scale a row, applied after the loop)
            s = 1.0
        for k0 in range(k_start, k_end, BLOCK_K):
            k_ahead = tl.minimum(k0 + BLOCK_K, K - 1)  # the next step's group, or the last one (a valid address)
            if HAS_ZERO:
                if GROUP > 0:  # at once: loaded a step ahead, as the scale is, it put the dequantization into a
                    # layout converted through shared memory (sm_90: 245 → 301 loop instructions, packed)
                    z = tl.load(z_ptrs + k0 // GROUP)
                else:
                    z = z_row
            if GROUP > 0:
                s = s_next
                s_next = tl.load(s_ptrs + k_ahead // GROUP)
            offs_b = k0 // PER + tl.arange(0, BLOCK_K // PER)
            if EVEN_K:
                b = tl.load(q_ptr + rows[:, None] * stride_qn + offs_b[None, :])
            else:  # a code 0 past K (x is 0 there too)
                b = tl.load(q_ptr + rows[:, None] * stride_qn + offs_b[None, :], mask=(offs_b < K // PER)[None, :], other=0)
            if PACKED and VALUES == "lut":
                v = _packed_table(b, words, s, x_ptr.dtype.element_ty, BLOCK_N, BLOCK_K, FOLD and GROUP > 0)
            elif PACKED:
                if HAS_ZERO:
                    zc = z.to(tl.int32)
                else:  # symmetric storage: the fixed offset 8
                    zc = tl.full((BLOCK_N,), 8, tl.int32)
                v = _packed_codes(b, zc, s, x_ptr.dtype.element_ty, BLOCK_N, BLOCK_K, FOLD and GROUP > 0)
            else:
                b = b.to(tl.int32)  # bytes, unsigned
                if BITS == 4:  # low nibbles are the even columns
                    c = tl.interleave(b & 0xF, b >> 4)
                else:
                    c = b
                if VALUES == "sint":  # W8A8's two's complement byte u: the bits of 2^23 + (u ^ 0x80) = 2^23 + 128 + c,
                    # one LOP3 (sm_90 loop: 7.9 → 5.6 instructions a code against flipping the sign bit first)
                    v = ((c | 0x4B000000) ^ 0x80).to(tl.float32, bitcast=True) - 8388736.0
                elif VALUES == "int":
                    if HAS_ZERO:
                        zf = z.to(tl.float32)[:, None]
                    else:
                        zf = (1 << (BITS - 1)) * 1.0
                    v = _as_float(c, zf)
                else:
                    v = _byte_values(c, table, VALUES)
                if FOLD and GROUP > 0:
                    v = v * s[:, None]
                v = v.to(x_ptr.dtype.element_ty)
            offs_k = k0 + cols
            x_mask = m_mask[None, :] if EVEN_K else m_mask[None, :] & (offs_k < K)[:, None]
            xt = tl.load(x_ptr + offs_m[None, :] * stride_xm + offs_k[:, None], mask=x_mask, other=0.0)
            if GROUP > 0 and not FOLD:
                acc += tl.dot(v, xt, input_precision=DOT_PRECISION) * s[:, None]
            else:  # the MMA sums into acc: it runs on while the next step's codes are dequantized
                acc = tl.dot(v, xt, acc, input_precision=DOT_PRECISION)
        if GROUP == 0:
            acc *= tl.load(s_ptrs)[:, None]
        if HAS_BIAS:  # added by the first K-split only
            acc += tl.load(bias_ptr + rows, mask=pid_k == 0, other=0.0)[:, None]
        tile = offs_m[None, :] * stride_om + offs_n[:, None]
        tile_mask = m_mask[None, :] & (offs_n < N)[:, None]
        tl.store(out_ptr + pid_k * stride_os + tile, acc.to(out_ptr.dtype.element_ty), mask=tile_mask)
        if SUM_HERE:
            tl.debug_barrier()  # every thread's partial is written before the count says so
            tile_id = tl.program_id(0) * tl.num_programs(1) + tl.program_id(1)
            done = tl.atomic_add(count_ptr + tile_id, 1, sem="acq_rel", scope="gpu")
            if done == n_split - 1:  # the tile's other partials are all written: sum them, in split order
                total = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
                for j in range(0, n_split):
                    total += tl.load(out_ptr + j * stride_os + tile, mask=tile_mask, other=0.0, cache_modifier=".cg")
                tl.store(sum_ptr + tile, total.to(sum_ptr.dtype.element_ty), mask=tile_mask)
                tl.atomic_xchg(count_ptr + tile_id, 0, sem="relaxed", scope="gpu")  # ready for the next call

    @triton.jit
    def _dequant_kernel(
        q_ptr, s_ptr, z_ptr, lut_ptr, w_ptr,
        N, K, group_size, stride_qn, stride_sn, stride_zn, stride_wn,
        BITS: tl.constexpr, HAS_ZERO: tl.constexpr, USE_LUT: tl.constexpr,
        BLOCK_N: tl.constexpr, TW: tl.constexpr,
    ):
        """One [BLOCK_N, TW] tile inside one group: bytes loaded contiguously, nibbles interleaved
        back in registers, one scale (and zero) a row."""
        PER: tl.constexpr = 8 // BITS
        TB: tl.constexpr = TW // PER
        offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        k0 = tl.program_id(1) * TW
        j = tl.arange(0, TB)
        n_mask = offs_n < N
        b = tl.load(q_ptr + offs_n[:, None] * stride_qn + k0 // PER + j[None, :],
                    mask=n_mask[:, None] & (k0 + PER * j < K)[None, :], other=0).to(tl.int32)
        g = k0 // group_size
        s = tl.load(s_ptr + offs_n * stride_sn + g, mask=n_mask, other=0.0)[:, None]
        if HAS_ZERO:
            z = tl.load(z_ptr + offs_n * stride_zn + g, mask=n_mask, other=0).to(tl.float32)[:, None]
        else:
            z = (1 << (BITS - 1)) * 1.0
        table = _table(lut_ptr, BITS) if USE_LUT else lut_ptr
        if BITS == 4:
            w = tl.reshape(tl.join(_value(b & 0xF, table, z, USE_LUT) * s, _value(b >> 4, table, z, USE_LUT) * s), (BLOCK_N, TW))
        else:
            w = _value(b, table, z, USE_LUT) * s
        offs_k = k0 + tl.arange(0, TW)
        tl.store(w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :], w.to(w_ptr.dtype.element_ty),
                 mask=n_mask[:, None] & (offs_k < K)[None, :])

    @triton.jit
    def _gather_columns_kernel(
        x_ptr, perm_ptr, out_ptr, M, K, cols_per_program, stride_xm, stride_om, BLOCK_M: tl.constexpr,
        BLOCK_K: tl.constexpr, ORDER_K: tl.constexpr,
    ):
        """out[m, j] = x[m, perm[j]] for BLOCK_M rows and `cols_per_program` columns (a multiple of BLOCK_K), a
        [BLOCK_M, BLOCK_K] tile at a time: act-order's activations in the stored column order, each column block's
        indices loaded once for its rows. ORDER_K > 0: perm[j'] with j' slot j's column in the packed codes' order of
        K-steps of ORDER_K (`_packed_column`)."""
        offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        start = tl.program_id(1) * cols_per_program
        for j0 in range(start, tl.minimum(K, start + cols_per_program), BLOCK_K):
            j = j0 + tl.arange(0, BLOCK_K)
            mask = (offs_m < M)[:, None] & (j < K)[None, :]
            if ORDER_K > 0:
                src = tl.load(perm_ptr + ((j // ORDER_K) * ORDER_K + _packed_column(j % ORDER_K, ORDER_K)), mask=j < K, other=0)
            else:
                src = tl.load(perm_ptr + j, mask=j < K, other=0)
            v = tl.load(x_ptr + offs_m[:, None] * stride_xm + src[None, :], mask=mask)
            tl.store(out_ptr + offs_m[:, None] * stride_om + j[None, :], v, mask=mask)


# ----------------------------------------------------------------------------------------------
# checks and the reference


def _check(x, qweight, scale, zero, g_idx, bits, group_size, lut, bias) -> tuple[int, int, int]:
    """Validate the arguments; return (M, N, K). Raises ValueError naming the bad argument."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a 2-D floating-point tensor [M, K], got {getattr(x, 'dtype', type(x))} "
                         f"of shape {tuple(getattr(x, 'shape', ()))}")
    m, k = x.shape
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or k % group_size:
        raise ValueError(f"group_size must be a positive integer dividing K={k}, got {group_size!r}")
    if bits == 4 and k % 2:
        raise ValueError(f"x: the input dim K={k} must be even for 4-bit codes (two a byte)")
    if not isinstance(qweight, torch.Tensor) or qweight.dtype not in CODE_DTYPES or qweight.dim() != 2:
        raise ValueError(f"qweight must be a 2-D tensor [N, K*bits/8] of {', '.join(map(str, CODE_DTYPES))}, got "
                         f"{getattr(qweight, 'dtype', type(qweight))}")
    if qweight.dtype != torch.uint8 and (bits != 8 or zero is not None or lut is not None):
        raise ValueError(f"qweight of {qweight.dtype} holds the values themselves: bits must be 8, zero and lut None")
    n = qweight.shape[0]
    if qweight.shape[1] < k * bits // 8:
        raise ValueError(f"qweight has {qweight.shape[1]} bytes a row, fewer than the {k * bits // 8} of K={k} {bits}-bit codes")
    groups = k // group_size
    if not isinstance(scale, torch.Tensor) or not scale.is_floating_point() or tuple(scale.shape) != (n, groups):
        raise ValueError(f"scale must be a float tensor of shape {(n, groups)}, got {tuple(getattr(scale, 'shape', ()))}")
    if zero is not None and (zero.dtype != torch.uint8 or tuple(zero.shape) != (n, groups)):
        raise ValueError(f"zero must be None or a uint8 tensor of shape {(n, groups)}, got {zero.dtype} {tuple(zero.shape)}")
    if lut is not None and (zero is not None or tuple(lut.shape) != (2**bits,) or lut.dtype != torch.float32):
        raise ValueError(f"lut must be a float32 table of {2 ** bits} values, and then zero must be None")
    if g_idx is not None and (bits != 4 or lut is not None):
        raise ValueError(f"g_idx (act-order) is taken with 4-bit integer codes only, got bits={bits}" + (" and a lut" if lut is not None else ""))
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"bias must be None or of shape ({n},), got {tuple(bias.shape)}")
    for name, t in (("qweight", qweight), ("scale", scale), ("zero", zero), ("g_idx", g_idx), ("lut", lut), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    return m, n, k


def _check_perm(perm, x: torch.Tensor, g_idx) -> None:
    """`perm` None, or int32 [K] on x's device: the weight's column j multiplies x[:, perm[j]]. Its values are not
    read here (that would sync the host each call): they must be a permutation of 0..K-1, which `IntWeightLinear`
    makes and checks on load."""
    if perm is None:
        return
    if not isinstance(perm, torch.Tensor) or perm.dtype != torch.int32 or tuple(perm.shape) != (x.shape[1],):
        raise ValueError(f"perm must be None or an int32 tensor of shape ({x.shape[1]},), got "
                         f"{getattr(perm, 'dtype', type(perm))} {tuple(getattr(perm, 'shape', ()))}")
    if perm.device != x.device:
        raise ValueError(f"perm is on {perm.device} but x is on {x.device}")
    if g_idx is not None:
        raise ValueError("perm and g_idx are two ways to store act-order: give one")


# x larger than this is gathered by `index_select`: H200, bf16 x by a random permutation (session 22, call 5,
# benchmarks/_exp_gather_tiles.py), µs: the kernel's one row a program 1.6-1.8 at one token against 4.4-4.6, 38.4 at
# 4096 × 4096 (32 MB) against 52.0, but 270.2 at 4096 × 11008 (90 MB, past the 60 MB L2) against 233.7
_GATHER_MAX_BYTES = 32 << 20
# from this many rows of x each program of the gather takes a whole row; None: never (prepared in session 23, not yet
# timed: benchmarks/_exp_gather_rows.py). A program a 1024-column tile pulls most of its row into the L1 for 2 KB of
# output: on 4096 × 11008 (90 MB, past the L2) ~8x the row's bytes, where index_select wins
_GATHER_WHOLE_ROWS_M: int | None = None


def _check_norm(norm, x: torch.Tensor) -> None:
    if norm is None:
        return
    g, eps = norm
    if not isinstance(g, torch.Tensor) or g.shape != (x.shape[1],) or g.dtype != x.dtype or g.device != x.device:
        shown = f"{tuple(g.shape)} {g.dtype} on {g.device}" if isinstance(g, torch.Tensor) else type(g).__name__
        raise ValueError(f"norm's gain must be ({x.shape[1]},) {x.dtype} on {x.device} (x's K, dtype and device), got {shown}")
    if not eps >= 0:
        raise ValueError(f"norm's eps must be >= 0, got {eps}")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as transformers' Llama family computes it (`LlamaRMSNorm`): x · 1/√(mean(x²) + eps) in fp32, rounded to
    x's dtype, times the gain, in x's dtype. What `norm` in the word GEMV fuses, and the other paths run first."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (weight * y.to(x.dtype)).to(x.dtype)


def gather_columns(x: torch.Tensor, perm: torch.Tensor, order_k: int = 0) -> torch.Tensor:
    """x[:, perm] for x [M, K] and a checked `perm` (`_check_perm`): one kernel launch where Triton runs (on CUDA, or
    in the interpreter), one row of x a program (its gathers then stay in the L1: 2-4 rows a program ran 1.3-2x
    slower from 16 tokens on); else, and for x past _GATHER_MAX_BYTES, `index_select`. `order_k` > 0 (K a multiple
    of it): x[:, perm[packed_x_order(K, order_k)]], act-order's columns in the packed codes' K order for the swapped
    kernel's X_ORDERED, in the same one pass."""
    if order_k and x.shape[1] % order_k:
        raise ValueError(f"order_k must divide K = {x.shape[1]}, got {order_k}")
    big = x.numel() * x.element_size() > _GATHER_MAX_BYTES  # (also keeps the kernel's offsets inside 32 bits)
    if triton is None or not (x.is_cuda or interpreting()) or big:
        if order_k:
            perm = perm[packed_x_order(x.shape[1], order_k, x.device).long()]
        return x.index_select(1, perm)
    m, k = x.shape
    x = x if x.stride(1) == 1 else x.contiguous()
    out = torch.empty(m, k, device=x.device, dtype=x.dtype)
    if m == 0 or k == 0:
        return out
    bm, bk = (4, 64) if interpreting() else (1, 1024)  # (several rows in the interpreter: the tests reach the row mask)
    # a program a tile, or (from _GATHER_WHOLE_ROWS_M rows) a whole row: its gathers then come from the L1 once, not once
    # a tile, which pulls most of the row each time
    whole = _GATHER_WHOLE_ROWS_M is not None and m >= _GATHER_WHOLE_ROWS_M
    per = cdiv(k, bk) * bk if whole else bk
    _gather_columns_kernel[(cdiv(m, bm), cdiv(k, per))](x, perm, out, m, k, per, x.stride(0), out.stride(0), BLOCK_M=bm,
                                                        BLOCK_K=bk, ORDER_K=order_k, num_warps=4)
    return out


def _codes(q: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """uint8 codes [N, K] of packed bytes (4-bit: low nibble first)."""
    return torch.stack((q & 0xF, q >> 4), dim=-1).reshape(q.shape[0], k) if bits == 4 else q


def dequantize_reference(qweight, scale, zero, bits: int, group_size: int, k: int, lut=None, dtype=torch.float32) -> torch.Tensor:
    """The float weight [N, K] by `lowbit.formats`: affine codes, table values or the values
    themselves (int8, FP8), times the scales."""
    q = qweight[:, : k * bits // 8]
    if q.dtype in _VALUES or lut is not None:
        values = q.float() if lut is None else lut[_codes(q, bits, k).long()]
        return (values.reshape(-1, group_size) * scale.reshape(-1, 1).float()).reshape(q.shape[0], k).to(dtype)
    codes = _codes(q, bits, k).to(torch.int16)
    if zero is None:
        codes = codes - 2 ** (bits - 1)  # symmetric codes are stored with this offset
    return intfmt.dequantize(codes, scale, zero, "group", group_size, dtype)


def _reference(x, qweight, scale, zero, bits, group_size, lut, bias) -> torch.Tensor:
    w = dequantize_reference(qweight, scale, zero, bits, group_size, x.shape[1], lut, x.dtype)
    return F.linear(x, w, None if bias is None else bias.to(x.dtype))


# ----------------------------------------------------------------------------------------------
# Triton launchers


def _chunk_width(k: int, bits: int, group_size: int, widest: int) -> int | None:
    """Columns of a chunk that lies inside one group: `widest`, or with several groups a row the largest power of two
    dividing the group size up to it; None below 8 bytes a chunk row (no longer a wide load)."""
    if k // group_size <= 1:
        return widest
    tw = min(widest, group_size & -group_size)
    return tw if tw * bits >= 8 * 8 else None


def gemv_config(n: int, k: int, bits: int, group_size: int) -> dict | None:
    """Tile of the decode kernel, or None when the groups cannot be cut into whole chunks.
    Chunks of TW columns must lie inside one group: TW is a power of two dividing the group size
    (any TW when there is one group a row)."""
    tw = _chunk_width(k, bits, group_size, 128 if bits == 4 else 64)
    if tw is None:
        return None
    if interpreting():
        return dict(BLOCK_N=16, TG=1, TW=tw, num_warps=4)
    # the H100 sweep's best (benchmarks/tune_weight_only.py): narrow row tiles, 1 KB of each row a K-step
    return dict(BLOCK_N=4, TG=max(1, 1024 // tw), TW=tw, num_warps=2 if bits == 8 else 4)


def _unit_stride(*ts: torch.Tensor | None) -> tuple:
    """Each tensor with a unit stride along its last dim, as the kernels index it (row · stride(0) + column);
    copied only when it has not one: a layer built from GPT-2's Conv1D holds its 8-bit weight transposed
    ([N, K] with strides (1, N)), which the kernels once read as garbage."""
    return tuple(t if t is None or t.dim() < 2 or t.stride(-1) == 1 else t.contiguous() for t in ts)


def _launch_checks(x, tensors) -> None:
    if triton is None:
        raise RuntimeError("the weight-only kernels need triton")
    if x.dtype not in KERNEL_DTYPES:
        raise ValueError(f"x must be float16, bfloat16 or float32 for the kernel, got {x.dtype}")
    for t in tensors:  # int32 offsets inside the kernels
        if t is not None and t.numel() >= _INT32_MAX // 2:
            raise ValueError(f"a tensor of {t.numel()} elements is too large for the kernel's 32-bit offsets")


def gemv_triton(
    x, qweight, scale, zero, bits: int, group_size: int, lut=None, bias=None, *, config: dict | None = None, out=None
) -> torch.Tensor:
    """x [M, K] @ the dequantized weight [N, K]ᵀ (+ bias) → [M, N] in x's dtype, by the decode kernel;
    `config` overrides the tile, `out` is written in place. Works on CPU tensors under TRITON_INTERPRET=1."""
    m, n, k = _check(x, qweight, scale, zero, None, bits, group_size, lut, bias)
    _launch_checks(x, (x, qweight, scale))
    cfg = gemv_config(n, k, bits, group_size)
    if cfg is None:
        raise ValueError(f"group_size {group_size}: the decode kernel needs groups of a power-of-two multiple of {64 // bits} columns")
    if out is not None and (out.shape != (m, n) or out.dtype != x.dtype or out.device != x.device or out.stride(1) != 1):
        raise ValueError(f"out must be a row-major {x.dtype} tensor of shape {(m, n)} on {x.device}")
    return _launch_gemv(x, qweight, scale, zero, bits, group_size, lut, bias, {**cfg, **(config or {})}, out)


def _launch_gemv(x, qweight, scale, zero, bits, group_size, lut, bias, cfg: dict, out=None) -> torch.Tensor:
    """The decode kernel on arguments already checked, with the tile `cfg`."""
    m, k = x.shape
    n = qweight.shape[0]
    x = x.contiguous()
    qweight, scale, zero = _unit_stride(qweight, scale, zero)
    if out is None:
        out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    if m == 0 or n == 0:
        return out
    scale_ = scale if scale.dtype == torch.float32 else scale.float()
    bias_ = None if bias is None else bias.float()
    grid = (m, cdiv(n, cfg["BLOCK_N"]))
    _gemv_kernel[grid](
        x, qweight, scale_, zero if zero is not None else qweight, lut if lut is not None else scale_,
        bias_ if bias_ is not None else scale_, out,
        n, k, group_size, x.stride(0), qweight.stride(0), scale_.stride(0), zero.stride(0) if zero is not None else 0, out.stride(0),
        BITS=bits, HAS_ZERO=zero is not None, USE_LUT=lut is not None, HAS_BIAS=bias is not None, **cfg,
    )
    return out


def words_config(n: int, k: int, bits: int, group_size: int, *, table: bool = False) -> dict | None:
    """Tile of the word GEMV, or None when its storage cannot be read as 32-bit words (K·bits a
    multiple of 32) or a group is not a whole number of words. `table`: a code table's codes (NF4), which keep
    session 8's 4-bit tile."""
    if (k * bits) % 32 or (k // group_size > 1 and (group_size * bits) % 32):
        return None
    if interpreting():  # steps of several groups, as on the GPU (16 words: 3-6 steps on the tests' K; 4-word steps ran
        # 4x the interpreter's ops for the same paths)
        return dict(BLOCK_N=8, BLOCK_W=16, V=2, num_warps=1, PREFETCH=True)
    # the H200 sweep (session 8, benchmarks/tune_words_split.py, weights read from memory, not the L2;
    # docs/benchmarks/session8-h200/call1/words.json), µs on 4096², 4096→11008, 11008→4096 (bf16 12.8 / 26.1 / 27.2):
    # int4 g128 with zero points, 8×256 words, 2 a column, 4 warps, prefetched: 6.2 / 12.1 / 12.6 (the H100's tile
    # before: 7.0 / 14.5 / 15.6); int8 one scale a row: 4×128, 2 a column, 2 warps, prefetched 7.7 / 14.1 and on long
    # rows 8×256, 1 a column, 4 warps, prefetched 14.7 (before: 8.4 / 16.8 / 15.4)
    # Session 17 (benchmarks/_exp_words_chain.py, docs/benchmarks/session17-h200/call2), the kernel's FFMA chains, the same
    # cold weights, µs on the three shapes: int4 g128 with zero points 8×256 6.25 / 11.81 with the next step in flight
    # (PREFETCH 2; 12.05 without) and, on long rows, 8×512 with 8 warps 11.97 (13.05 on 8×256); 8 bits one scale a row
    # 8×256, 1 a column, on 4096² (int8 7.50, FP8 7.42, against 7.97 / 8.82 on 4×128) and long rows, 4×128 with the next
    # step in flight on wide ones (13.68 / 14.92). Differences of 2-15%, one run each (call 1 agreed on the FP8 4096² one)
    if bits == 4 and table:  # NF4 b64 at one token in bench linear: 1.71x bf16 on it, 1.50x on the int4 tiles below (call 3)
        return dict(BLOCK_N=8, BLOCK_W=256, V=2, num_warps=4, PREFETCH=True)
    if bits == 4:
        if k >= 8192:
            return dict(BLOCK_N=8, BLOCK_W=512, V=2, num_warps=8, PREFETCH=True)
        return dict(BLOCK_N=8, BLOCK_W=256, V=2, num_warps=4, PREFETCH=2 if n >= 8192 else True)
    if n >= 8192 and k < 8192:
        return dict(BLOCK_N=4, BLOCK_W=128, V=2, num_warps=2, PREFETCH=2)
    return dict(BLOCK_N=8, BLOCK_W=256, V=1, num_warps=4, PREFETCH=True)


def _as_words(qweight: torch.Tensor, k: int, bits: int) -> torch.Tensor:
    """The codes of K columns as int32 words [N, K·bits/32] (a view; a copy only if the rows are not
    4-byte aligned)."""
    q = qweight[:, : k * bits // 8]
    if q.dtype != torch.uint8:
        q = q.view(torch.uint8)
    if q.stride(1) != 1 or q.stride(0) % 4 or q.storage_offset() % 4:
        q = q.contiguous()
    return q.view(torch.int32)


def gemv_words_triton(
    x, qweight, scale, zero, bits: int, group_size: int, lut=None, bias=None, *, config: dict | None = None, perm=None,
    norm: tuple[torch.Tensor, float] | None = None,
) -> torch.Tensor:
    """x [M, K] @ the dequantized weight [N, K]ᵀ (+ bias) → [M, N] in x's dtype, by the word GEMV (x[:, perm] with
    `perm`; `rms_norm(x, *norm)` with `norm`, inside the kernel); `config` overrides the tile. Works on CPU tensors
    under TRITON_INTERPRET=1."""
    m, n, k = _check(x, qweight, scale, zero, None, bits, group_size, lut, bias)
    _check_perm(perm, x, None)
    _check_norm(norm, x)
    if norm is not None and perm is not None:
        raise ValueError("norm and perm together: the RMSNorm reads x in input order, perm gathers it")
    _launch_checks(x, (x, qweight, scale))
    cfg = words_config(n, k, bits, group_size, table=lut is not None)
    if cfg is None:
        raise ValueError(f"the word GEMV needs K·bits and group_size·bits to be multiples of 32, got K={k}, "
                         f"group_size={group_size}, bits={bits}")
    if perm is not None:
        x = gather_columns(x, perm)
    return _launch_words(x, qweight, scale, zero, bits, group_size, lut, bias, {**cfg, **(config or {})}, norm)


def _launch_words(x, qweight, scale, zero, bits, group_size, lut, bias, cfg: dict, norm=None) -> torch.Tensor:
    """The word GEMV on arguments already checked, with the tile `cfg`; `norm` (gain [K], eps): x is the input of that
    RMSNorm (`rms_norm`), applied inside (NORM; then on one K-split)."""
    m, k = x.shape
    n = qweight.shape[0]
    cfg = dict(cfg)
    split = cfg.pop("SPLIT_K", 1) if norm is None else 1
    group_w = 0 if scale.shape[1] == 1 else group_size * bits // 32
    # a column's V words share one scale: V divides the group's words (and the step's)
    cfg["V"] = math.gcd(cfg.get("V", 1), cfg["BLOCK_W"], group_w or cfg["BLOCK_W"])
    if cfg.get("PREFETCH") == 2 and cfg["V"] != 2:  # a whole step ahead is PREFETCH 2's two words a column, or V = 1's one
        cfg["PREFETCH"] = True
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    if m == 0 or n == 0:
        return out
    x = x.contiguous()
    scale, zero = _unit_stride(scale, zero)  # (_as_words makes the words' rows unit-stride)
    values = "lut" if lut is not None else _VALUES.get(qweight.dtype, "int")
    words = _as_words(qweight, k, bits)
    scale_ = scale if scale.dtype == torch.float32 else scale.float()
    bias_ = None if bias is None else bias.float()
    kw = words.shape[1]
    per_split, split = split_k_plan(kw, cfg["BLOCK_W"], split)
    dst = split_k_partials(out, split)
    grid = (m, cdiv(n, cfg["BLOCK_N"]), split)
    _gemv_words_kernel[grid](
        x, words, scale_, zero if zero is not None else words, lut if lut is not None else scale_,
        bias_ if bias_ is not None else scale_, dst, norm[0].contiguous() if norm is not None else x,
        n, kw, per_split, x.stride(0), words.stride(0), scale_.stride(0), zero.stride(0) if zero is not None else 0,
        dst.stride(0) if split > 1 else 0, dst.stride(-2), 0x4B000000, float(norm[1]) if norm is not None else 0.0,
        BITS=bits, VALUES=values, HAS_ZERO=zero is not None, GROUP_W=group_w,
        HAS_BIAS=bias is not None, EVEN_K=kw % cfg["BLOCK_W"] == 0, EVEN_N=n % cfg["BLOCK_N"] == 0, NORM=norm is not None,
        **cfg,
    )
    return sum_split_k(out, dst)


def swapped_config(m: int, n: int, k: int, bits: int, group_size: int, table: bool = False) -> dict | None:
    """Tile of the swapped-operand MMA kernel, or None when it cannot take the storage: packed bytes
    (K a multiple of the codes a byte) and a K-step inside one group. `table`: a code table's codes (NF4), which take
    their own options past 16 tokens."""
    groups = k // group_size
    bk = 16 if interpreting() else 128
    while groups > 1 and group_size % bk:
        bk //= 2
    if k % (8 // bits) or bk < 16:
        return None
    if interpreting():
        return dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=bk, SPLIT_K=1, num_warps=4, num_stages=1)
    # the H100 sweep (benchmarks/tune_mma_swapped.py, 7B shapes, 4-256 tokens): 64-row tiles, K split until
    # ~512 programs (≤ 16 tokens) or ~256 run
    # the H200 sweep (session 21, benchmarks/_exp_swapped_tiles.py, docs/benchmarks/session21-h200/call2): past 16
    # tokens 3 stages, not 4, and 128-token tiles from 128 tokens (one token tile, not two 64-token ones); 128- and
    # 256-row tiles with 4 or 8 warps lost on 23 of 24 shapes and token counts. The seven 7B linears, µs, the old
    # tiles → the best of each shape (these rules give it on 17 of the 24; the rest differ in the K split, one also in
    # its rows): int4 g128 191.6 → 163.9 at 64 tokens, 309.0 → 221.8 at 128, 486.4 → 366.0 at 256; int8 147.2 →
    # 133.0, 237.2 → 197.6, 374.1 → 329.7; NF4 207.3 → 204.3, 358.5 → 297.7 (bf16 ~130 / ~141 / ~194)
    block_m = max(16, min(64, next_power_of_2(m))) if m <= 64 else 128
    if bits == 8 and m > 64:  # K-steps of 64 (call 3's sweep, int8 one scale a row, the seven linears: 216.8 → 203.3 µs at
        # 128 tokens, 355.4 → 316.1 at 256; FP8 values not swept)
        bk = min(bk, 64)
    tiles = cdiv(n, 64) * cdiv(m, block_m)
    split = min(8, next_power_of_2(cdiv(512 if m <= 16 else 256, tiles)), cdiv(k, bk))
    # the H200 sweep (session 9, call 1): at ≤ 16 tokens 128-row tiles on wide weights (4096→11008: 22.3 → 19.6 µs
    # with 16 tokens), the K split as for 64-row ones
    block_n = 128 if m <= 16 and n >= 8192 else 64
    cfg = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=bk, SPLIT_K=split, num_warps=4, num_stages=3)
    # NF4 b64, the seven 7B linears (H200, session 22, benchmarks/_exp_act_order_gather.py and _exp_swapped_xorder.py,
    # µs): at 17-64 tokens the packed codes with x gathered into their order (XPERM), 182.6 → 165.0 at 32 tokens and
    # 205.9 → 186.7 at 64 (int4's lost or tied: 98.0 → 104.5 at 16, 166.4 → 162.3 at 64); on the 128-token tile the
    # scales folded into the values (FOLD), 293.2 / 299.5 / 317.2 → 266.0 / 269.7 / 276.0 at 65 / 96 / 128 tokens
    # (int4's lost at every count, session 22 call 2). Session 23 (call 3, benchmarks/_exp_packed_fold.py): on the
    # 128-token tile the packed codes with the fold as a packed product (`_scaled_pairs`), NF4 286.9 → 254.7 at 128
    # tokens (the fp32 fold 273.2); at 16-64 and 256 tokens it lost for NF4, and for int4 everywhere (97.6 → 125.5 at
    # 16, 165.2 → 199.0 at 64, 238.6 → 289.6 at 128): the MMA in flight while the next step is dequantized is not what
    # the kernel waits on
    if table and 16 < m:
        cfg["XPERM"] = True
    if table and block_m == 128:
        cfg["FOLD"] = True
    return cfg


def mma_swapped_triton(
    x, qweight, scale, zero, bits: int, group_size: int, lut=None, bias=None, *, config: dict | None = None
) -> torch.Tensor:
    """x [M, K] @ the dequantized 4/8-bit weight [N, K]ᵀ (+ bias) → [M, N] by the swapped-operand MMA kernel:
    integer codes, a code table, int8 or FP8 values; `config` overrides the tile. Works on CPU tensors
    under TRITON_INTERPRET=1 (fp16/fp32 activations)."""
    m, n, k = _check(x, qweight, scale, zero, None, bits, group_size, lut, bias)
    _launch_checks(x, (x, qweight, scale))
    cfg = swapped_config(m, n, k, bits, group_size, lut is not None)
    if cfg is None:
        raise ValueError(f"the swapped MMA kernel needs K-steps of at least 16 codes inside a group, got K={k}, group_size={group_size}")
    return _launch_swapped(x, qweight, scale, zero, bits, group_size, lut, bias, {**cfg, **(config or {})})


def _launch_swapped(x, qweight, scale, zero, bits, group_size, lut, bias, cfg: dict) -> torch.Tensor:
    m, k = x.shape
    n = qweight.shape[0]
    cfg = dict(cfg)
    split = cfg.pop("SPLIT_K")
    out = torch.empty(m, n, device=x.device, dtype=x.dtype)
    if m == 0 or n == 0:
        return out
    x = x.contiguous()
    qweight, scale, zero = _unit_stride(qweight, scale, zero)
    values = _values(qweight, lut)
    qweight = qweight.view(torch.uint8)  # int8 and FP8 values: the kernel reinterprets the bytes
    per_split, split = split_k_plan(k, cfg["BLOCK_K"], split)
    dst = split_k_partials(out, split)
    scale_ = scale if scale.dtype == torch.float32 else scale.float()
    bias_ = None if bias is None else bias.float()
    grid = (cdiv(n, cfg["BLOCK_N"]), cdiv(m, cfg["BLOCK_M"]), split)
    packable = _packable(x, bits, values, cfg["BLOCK_K"])
    # XPERM: x gathered into the packed codes' K order first, so that taller tiles than 16 tokens take the packed codes
    # (x then loads contiguously); where the codes cannot be packed it is ignored. X_ORDERED: x is given in that order
    # (gathered by the caller, `packed_x_order`), which only the packed codes can take
    orderable = packable and k % cfg["BLOCK_K"] == 0  # `_orderable`, without asking `_packable` again
    given = cfg.pop("X_ORDERED", False)
    gather = cfg.pop("XPERM", False) and orderable and not given
    packed = cfg.pop("PACKED", packable and (cfg["BLOCK_M"] == 16 or given or gather))
    if given and not (orderable and packed):
        raise ValueError("X_ORDERED: x in the packed codes' order needs the packed codes (4-bit, 16-bit x, on the GPU) "
                         "and K a multiple of BLOCK_K")
    x_ordered = (given or gather) and packed
    if gather and packed:
        x = gather_columns(x, packed_x_order(k, cfg["BLOCK_K"], x.device))
    fold = cfg.pop("FOLD", False)
    counts = tile_counters(x.device, grid[0] * grid[1]) if split > 1 else dst
    _mma_swapped_kernel[grid](
        x, qweight, scale_, zero if zero is not None else qweight, lut if lut is not None else scale_,
        bias_ if bias_ is not None else scale_, dst, out, counts,
        m, n, k, per_split, split, x.stride(0), qweight.stride(0), scale_.stride(0), zero.stride(0) if zero is not None else 0,
        dst.stride(0) if split > 1 else 0, dst.stride(-2),
        BITS=bits, VALUES=values, HAS_ZERO=zero is not None, GROUP=0 if scale.shape[1] == 1 else group_size,
        HAS_BIAS=bias is not None, EVEN_K=k % cfg["BLOCK_K"] == 0, DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        PACKED=packed, SUM_HERE=split > 1, FOLD=fold, X_ORDERED=x_ordered, **cfg,
    )
    return out


# 4-bit code tables (NF4) through `_packed_table`'s registers in the swapped kernel, not `_lookup`'s shared-memory
# gather: the seven 7B linears at 2-16 tokens (H200, session 20, call 1) 160.3-162.7 → 133.8-136.4 µs, bf16 128.7-134.5;
# False restores the gather
PACKED_TABLES = True


@functools.lru_cache(maxsize=64)
def packed_x_order(k: int, block_k: int, device: torch.device) -> torch.Tensor:
    """The input column of each of x's K slots in `_packed_order`'s order, step by step (int32 [K], K a multiple of
    block_k): x gathered by it meets the packed codes with a contiguous load."""
    order = _packed_column.fn(torch.arange(block_k), block_k)  # the kernel's own formula, on host integers
    return (torch.arange(0, k, block_k)[:, None] + order[None, :]).reshape(-1).to(torch.int32).to(device)


def _values(qweight: torch.Tensor, lut: torch.Tensor | None) -> str:
    """What the kernels' VALUES constexpr calls the storage's codes (see the module doc)."""
    return "lut" if lut is not None else _VALUES.get(qweight.dtype, "int")


def _orderable(x: torch.Tensor, bits: int, values: str, block_k: int) -> bool:
    """Whether the swapped kernel can take x in the packed codes' K order (XPERM, X_ORDERED): packed codes, whole steps."""
    return _packable(x, bits, values, block_k) and x.shape[1] % block_k == 0


def _packable(x: torch.Tensor, bits: int, values: str, block_k: int) -> bool:
    """Whether the swapped kernel can take 4-bit codes two at a time: integer codes (`_packed_codes`), or a table's
    (`_packed_table`, where PACKED_TABLES). Inline PTX, so on the GPU only; 16-bit x; K-steps of whole 16-code MMA
    chunks. The launcher packs them on 16-token tiles, where x is loaded in the permuted K order 4 bytes at a time,
    and on taller ones only with x gathered into that order first (XPERM): loaded in it, x cost more than the codes
    saved there (session 9, call 1)."""
    return (bits == 4 and (values == "int" or (values == "lut" and PACKED_TABLES)) and x.dtype in (torch.float16, torch.bfloat16)
            and block_k % 16 == 0 and not interpreting())


def dequantize_triton(qweight, scale, zero, bits: int, group_size: int, k: int, lut=None, dtype=torch.bfloat16) -> torch.Tensor:
    """The weight [N, K] in `dtype`, one pass over the packed bytes (what `dequantize_reference` computes)."""
    _launch_checks(torch.empty(0, dtype=dtype), (qweight, scale))
    cfg = dequant_config(k, bits, group_size, lut is not None)
    if cfg is None:
        raise ValueError(f"group_size {group_size}: the dequantize kernel needs groups of a power-of-two multiple of {64 // bits} columns")
    return _launch_dequant(qweight, scale, zero, bits, group_size, k, lut, dtype, cfg)


def dequant_config(k: int, bits: int, group_size: int, table: bool) -> dict | None:
    """Tile of the dequantize kernel: BLOCK_N rows × TW columns inside one group (TW a power of two dividing the
    group, as `gemv_config`'s chunks), or None where the groups cannot be cut so.
    The H200 sweep (session 21, `benchmarks/_exp_dequant_tiles.py`, docs/benchmarks/session21-h200/call2), the seven
    7B linears, weights read from memory, µs, the H100's 32 × TW, 4 warps → these: int4 g128 196.1 → 181.7 (8 × 128),
    int8 one scale a row 192.5 → 167.0 (16 × 256), NF4 b64 228.2 → 210.8 (16 × 64); FP8 values take int8's tile, not
    swept. torch's copy of the bf16 output moved ~3.8 TB/s on these shapes, the dequantize kernel ~2.7."""
    tw = _chunk_width(k, bits, group_size, 256 if bits == 8 else 128)
    if tw is None:
        return None
    if interpreting():
        return dict(BLOCK_N=16, TW=tw, num_warps=4)
    return dict(BLOCK_N=8 if bits == 4 and not table else 16, TW=tw, num_warps=4)


def _launch_dequant(qweight, scale, zero, bits, group_size, k, lut, dtype, cfg: dict) -> torch.Tensor:
    """The dequantize kernel on arguments already checked, on the tile `cfg` (`dequant_config`)."""
    n = qweight.shape[0]
    w = torch.empty(n, k, device=qweight.device, dtype=dtype)
    qweight, scale, zero = _unit_stride(qweight, scale, zero)
    scale_ = scale if scale.dtype == torch.float32 else scale.float()
    _dequant_kernel[(cdiv(n, cfg["BLOCK_N"]), cdiv(k, cfg["TW"]))](
        qweight, scale_, zero if zero is not None else qweight, lut if lut is not None else scale_, w,
        n, k, group_size, qweight.stride(0), scale_.stride(0), zero.stride(0) if zero is not None else 0, w.stride(0),
        BITS=bits, HAS_ZERO=zero is not None, USE_LUT=lut is not None, **cfg,
    )
    return w


# ----------------------------------------------------------------------------------------------
# the custom op: dispatch by device and token count


def storage_kind(qweight: torch.Tensor, bits: int, lut: torch.Tensor | None) -> str:
    """The key of DEFAULT_LIMITS a storage dispatches by: int4 / int8 codes (W8A8's signed ones too),
    fp8 values, table4 / table8 (a code table)."""
    if lut is not None:
        return f"table{bits}"
    return "fp8" if qweight.dtype in FP8_DTYPES else f"int{bits}"


def user_dispatch_file() -> Path:
    """Where `lowbit bench dispatch --write` puts the limits it measured on a user's GPU: $LOWBIT_DISPATCH_FILE, else
    ~/.cache/lowbit/weight_only_dispatch.json. Its entries override DISPATCH_FILE's, a storage kind at a time."""
    return Path(os.environ.get("LOWBIT_DISPATCH_FILE") or Path.home() / ".cache" / "lowbit" / "weight_only_dispatch.json")


def _entry(path: Path, gpu: str) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text()).get(gpu, {})
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"dispatch file {path}: not a JSON object of GPU entries ({e})") from e


@functools.cache
def gpu_entry(gpu: str) -> dict:
    """The measured limits for the GPU named `gpu` (`torch.cuda.get_device_name`): DISPATCH_FILE's entry with the user
    file's kinds over it; {} for a GPU measured in neither."""
    package, user = _entry(DISPATCH_FILE, gpu), _entry(user_dispatch_file(), gpu)
    if not user:
        return package
    return {**package, **user, "limits": {**package.get("limits", {}), **user.get("limits", {})}}


@functools.cache  # read on every call of the op: built once per GPU
def dispatch_limits(gpu: str) -> dict[str, dict[str, int]]:
    """The token limits of each path for the GPU named `gpu`: its measured ones over DEFAULT_LIMITS."""
    measured = gpu_entry(gpu).get("limits", {})
    if not measured:
        warnings.warn(f"no measured weight-only dispatch limits for {gpu}: using the H100's, "
                      f"which may pick a slower kernel here; `lowbit bench dispatch --write` measures this GPU's "
                      f"(~2.5 min)", stacklevel=2)
    return {kind: {**limits, **measured.get(kind, {})} for kind, limits in DEFAULT_LIMITS.items()}


@functools.cache
def _gpu_name(index: int) -> str:
    return torch.cuda.get_device_name(index)


def gpu_of(x: torch.Tensor) -> str:
    """The name of the GPU x is on, as DISPATCH_FILE keys it."""
    return _gpu_name(cuda_index(x.device))


def path_limits(x: torch.Tensor, qweight: torch.Tensor, bits: int, lut: torch.Tensor | None) -> dict[str, int]:
    """The token limits on x's GPU for this storage."""
    return dispatch_limits(gpu_of(x))[storage_kind(qweight, bits, lut)]


def _dequantize(
    qweight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, g_idx: torch.Tensor | None,
    bits: int, group_size: int, k: int, lut: torch.Tensor | None, dtype: torch.dtype,
) -> torch.Tensor:
    """The float weight [N, K] in `dtype`, for dequantize + cuBLAS and for the backward: on CUDA (and in the
    interpreter, so that CI runs it) one pass of
    `_dequant_kernel` where it takes the storage (FP8 values as their code table), else by torch ops
    (`dequantize_reference`; act-order: `dequantize_w4`). Both give the same values: the kernel computes in fp32
    as the reference does, then rounds once to `dtype`."""
    if g_idx is not None:
        return dequantize_w4(qweight, scale, zero, g_idx, group_size, k, dtype)
    # (the interpreter rounds fp32 to bf16 by truncation, the GPU to nearest: bf16 takes the reference there)
    interpreted = interpreting() and dtype != torch.bfloat16
    kernel_takes = dtype in KERNEL_DTYPES and qweight.dtype != torch.int8 and qweight.numel() < _INT32_MAX // 2  # 32-bit offsets
    if (qweight.is_cuda or interpreted) and triton is not None and kernel_takes:
        q, table = qweight, lut
        if qweight.dtype in FP8_DTYPES:
            q, table = qweight.view(torch.uint8), code_table(_VALUES[qweight.dtype], qweight.device)
        cfg = dequant_config(k, bits, group_size, table is not None)
        if cfg is not None:
            return _launch_dequant(q, scale, zero, bits, group_size, k, table, dtype, cfg)
    return dequantize_reference(qweight, scale, zero, bits, group_size, k, lut, dtype)


def _weight_only_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scale: torch.Tensor,
    zero: torch.Tensor | None,
    g_idx: torch.Tensor | None,
    bits: int,
    group_size: int,
    lut: torch.Tensor | None,
    bias: torch.Tensor | None,
    perm: torch.Tensor | None = None,
    norm_weight: torch.Tensor | None = None,
    norm_eps: float = 0.0,
) -> torch.Tensor:
    """x [M, K] @ the 4/8-bit weight [N, K]ᵀ (+ bias) → [M, N] in x's dtype (see the module doc).
    `g_idx` (GPTQ act-order: the group of each input column) is taken by the W4A16 MMA kernel only. `perm` (act-order
    stored in group order: the weight's column j multiplies x[:, perm[j]]): x is gathered first, by one kernel
    (`gather_columns`). H200, the seven 7B linears (session 22, `benchmarks/_exp_act_order_gather.py`, the gather's
    first tile of 4 rows), µs with the gather: one token 94.1 → 73.9 against the word GEMV reading x through perm in
    place, 16 tokens 133.6 → 114.3 and 64 tokens 204.8 → 188.7 against `index_select` (seven gathers: 11.7-20.8 µs
    against 31.9-35.1). Where the swapped kernel takes packed codes, x is gathered straight into their K order
    (`gather_columns`' order_k, X_ORDERED): int4 g128, µs, 110.9 → 102.7 at 16 tokens, 136.0 → 129.4 at 32, 183.2 → 164.5
    at 64, 257.7 → 247.2 at 128 (session 23, `benchmarks/_exp_act_order_packed.py`).
    `norm_weight` (an RMSNorm's gain, with `norm_eps`): x is that norm's input (`rms_norm`); the word GEMV applies it
    inside, every other path (and act-order) first."""
    m, n, k = _check(x, qweight, scale, zero, g_idx, bits, group_size, lut, bias)
    _check_perm(perm, x, g_idx)
    norm = None if norm_weight is None else (norm_weight, norm_eps)
    _check_norm(norm, x)
    if g_idx is not None:
        x = x if norm is None else rms_norm(x, *norm)
        return w4a16_matmul(x, qweight, scale, zero, g_idx, group_size, bias)
    path, cfg = _path(x, qweight, bits, group_size, lut)
    if norm is not None and (path != "words" or perm is not None):
        x, norm = rms_norm(x, *norm), None
    if perm is not None:  # the swapped kernel's packed codes take x gathered straight into their K order
        order_k = cfg["BLOCK_K"] if path == "swapped" and _orderable(x, bits, _values(qweight, lut), cfg["BLOCK_K"]) else 0
        x = gather_columns(x, perm, order_k)
        cfg = {**cfg, "X_ORDERED": True} if order_k else cfg
    if path == "words":
        return _launch_words(x, qweight, scale, zero, bits, group_size, lut, bias, cfg, norm)
    if path == "gemv":
        return _launch_gemv(x, qweight, scale, zero, bits, group_size, lut, bias, cfg)
    if path == "swapped":
        return _launch_swapped(x, qweight, scale, zero, bits, group_size, lut, bias, cfg)
    if path == "reference":
        return _reference(x, qweight, scale, zero, bits, group_size, lut, bias)
    # beyond: the weight dequantized once (the kernel where it takes the storage), then cuBLAS
    w = _dequantize(qweight, scale, zero, None, bits, group_size, k, lut, x.dtype)
    return F.linear(x, w, None if bias is None else bias.to(x.dtype))


def _path(x, qweight, bits: int, group_size: int, lut) -> tuple[str, dict | None]:
    """Which kernel takes these tokens and storage, and its tile: the dispatch order of the module doc, each path up to
    its measured token count (`path_limits`); "reference" off the kernels (CPU, no Triton, other dtypes)."""
    m, k = x.shape
    n = qweight.shape[0]
    if not (x.is_cuda and triton is not None and x.dtype in KERNEL_DTYPES and m > 0):
        return "reference", None
    limits = path_limits(x, qweight, bits, lut)
    if m <= limits["words"] and (cfg := words_config(n, k, bits, group_size, table=lut is not None)):
        return "words", cfg
    cfg = gemv_config(n, k, bits, group_size)
    if cfg is not None and lut is not None and m <= limits["gemv"]:
        return "gemv", cfg
    if m <= limits["swapped"] and (cfg := swapped_config(m, n, k, bits, group_size, lut is not None)):
        return "swapped", cfg
    return "dequant", None


weight_only_matmul = torch.library.custom_op("lowbit::weight_only_matmul", mutates_args=())(_weight_only_matmul)


@weight_only_matmul.register_fake
def _(x, qweight, scale, zero, g_idx, bits, group_size, lut, bias, perm=None, norm_weight=None, norm_eps=0.0):
    return x.new_empty(x.shape[0], qweight.shape[0])


# The weight for the backward: an opaque op, so that a compiled backward calls the one-pass kernel (AOTAutograd cannot
# trace into a Triton launch) and an eager one launches it instead of the reference's unpack / lookup / scale ops
# (session 9's backward; not timed against it).
weight_only_dequantize = torch.library.custom_op("lowbit::weight_only_dequantize", mutates_args=())(_dequantize)


@weight_only_dequantize.register_fake
def _(qweight, scale, zero, g_idx, bits, group_size, k, lut, dtype):
    return qweight.new_empty(qweight.shape[0], k, dtype=dtype)


def _setup_backward(ctx, inputs, output) -> None:
    x, qweight, scale, zero, g_idx, bits, group_size, lut, bias, perm, norm_weight, _ = inputs
    if norm_weight is not None:
        raise ValueError("weight_only_matmul with norm_weight has no backward (an RMSNorm fused for inference): run the "
                         "norm, then the linear, where a gradient is needed")
    ctx.save_for_backward(qweight, scale, zero, g_idx, lut, perm)
    ctx.meta = (bits, group_size, x.shape[1], bias.dtype if bias is not None and bias.requires_grad else None)


def _backward(ctx, grad: torch.Tensor):
    """The gradient of x (and of a bias that requires one) through the frozen weight: grad @ W, W dequantized
    in grad's dtype by `weight_only_dequantize`. What adapters trained on a 4- or 8-bit base (QLoRA) need; the
    storage itself gets no gradient."""
    qweight, scale, zero, g_idx, lut, perm = ctx.saved_tensors
    bits, group_size, k, bias_dtype = ctx.meta
    w = weight_only_dequantize(qweight, scale, zero, g_idx, bits, group_size, k, lut, grad.dtype) if ctx.needs_input_grad[0] else None
    grad_x = None if w is None else grad @ w
    if grad_x is not None and perm is not None:  # column j of grad @ w is x[:, perm[j]]'s
        grad_x = torch.empty_like(grad_x).index_copy_(1, perm.long(), grad_x)
    grad_bias = None if bias_dtype is None else grad.sum(0).to(bias_dtype)
    return grad_x, None, None, None, None, None, None, None, grad_bias, None, None, None


weight_only_matmul.register_autograd(_backward, setup_context=_setup_backward)


def weight_only_linear(x, qweight, scale, zero, bits: int, group_size: int, lut=None, bias=None, g_idx=None, perm=None,
                       norm: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
    """F.linear for a 4/8-bit weight-only storage: x [..., K] → [..., N]; with `norm` (gain, eps), of `rms_norm(x, *norm)`
    (inference only: no backward).

    Eager calls that autograd does not follow take the op's function directly: torch.library's dispatch
    cost 50-100 µs a call on the H200 host (session 9, `benchmarks/host_overhead.py`), more than the kernel
    launch it wraps, which every eager linear of a prefill paid. Traced (torch.compile) calls and those that
    need a gradient go through the op: the compiler sees it, and its backward (`_backward`) gives x's."""
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension [..., K]")
    args = (x.reshape(-1, x.shape[-1]), qweight, scale, zero, g_idx, bits, group_size, lut, bias, perm,
            None if norm is None else norm[0], 0.0 if norm is None else float(norm[1]))
    direct = not torch.compiler.is_compiling() and not (torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, scale, bias, lut, args[10])))
    out = _weight_only_matmul(*args) if direct else weight_only_matmul(*args)
    return out.reshape(*x.shape[:-1], qweight.shape[0])


_TABLES: dict[tuple[str, torch.device], torch.Tensor] = {}


def code_table(name: str, device: torch.device) -> torch.Tensor:
    """The value of every code of a table format as a float32 tensor on `device`, made once:
    'nf4' (16 values, `lowbit.formats.nf4`) or an FP8 format, 'e4m3' / 'e5m2' (256 values from
    `lowbit.formats.fp`, NaN for its special codes), so an FP8 weight is an 8-bit code table."""
    key = (name, torch.device(device))
    if key not in _TABLES:
        values = nf4.NF4_VALUES if name == "nf4" else fp.fp8_format(name).code_values()
        _TABLES[key] = values.to(device=device, dtype=torch.float32)
    return _TABLES[key]
