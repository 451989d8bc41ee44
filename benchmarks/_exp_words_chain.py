"""Session 17: the word GEMV with one FFMA chain a row, constexpr row strides and unclamped rows, against the kernel before it.

The seven Llama-2-7B linear shapes at one token, weights read from memory (copies cycled past the L2), µs from CUDA-graph
replay, per storage bench linear runs through the word GEMV (int4 g128 with and without zero points, int8 and FP8 one scale a
row): bf16 cuBLAS, the kernel before (`lowbit.ops._weight_only_head`, a copy of the old module the call carries, not
committed) on its tile, the new kernel on the same tile and on a few others (its registers fell from 84 to 48 a thread on
int4, so wider tiles may fit). Errors against float64 of the dequantized weight.

    PYTHONPATH=src:benchmarks python benchmarks/_exp_words_chain.py --out words-chain.json
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, out_path, storage, write

try:
    from lowbit.ops import _weight_only_head as old
except ImportError:  # the copy of the old module is not in the repository
    old = None

SCHEMES = [("int4-g128-zero", 4, 128, True, None), ("int4-g128", 4, 128, False, None),
           ("int8-channel", 8, None, False, None), ("e4m3-channel", 8, None, False, torch.float8_e4m3fn)]
# (BLOCK_N, BLOCK_W, V, warps) tried besides each storage's default tile
TILES = [(8, 128, 2, 2), (8, 256, 2, 4), (8, 512, 2, 8), (8, 256, 1, 4), (4, 128, 2, 2)]


@triton.jit
def _read_rows_kernel(w_ptr, out_ptr, KW, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr):
    """The floor of a GEMV's memory pattern: each program reads BLOCK_N whole rows of words (16-byte loads) and writes
    one sum a row, no other work. Masked at the row's end: 11008 → 4096's 1376 words a row are no multiple of 64 (session
    24's H100 run read past the last row there)."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_N, BLOCK_W), dtype=tl.int32)
    for k0 in range(0, KW, BLOCK_W):
        cols = k0 + tl.arange(0, BLOCK_W)
        acc += tl.load(w_ptr + rows[:, None] * KW + cols[None, :], mask=cols[None, :] < KW, other=0)
    tl.store(out_ptr + rows, tl.sum(acc, axis=1))


def read_floor_us(words: list, block_n: int, block_w: int, warps: int) -> float:
    n, kw = words[0].shape
    out = torch.empty(n, device="cuda", dtype=torch.int32)
    return bench_cold_us([lambda w=w: _read_rows_kernel[(n // block_n,)](w, out, kw, BLOCK_N=block_n, BLOCK_W=block_w, num_warps=warps)
                          for w in words])


def run(module, x, q, s, z, bits, g, cfg):
    return module._launch_words(x, q, s, z, bits, g, None, None, cfg)


def main() -> None:
    out = out_path(__doc__)
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows = []
    for name, bits, group, zero, dtype in SCHEMES:
        for k, n in SHAPES:
            g = group or k
            stores = [storage(k, n, bits, g, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))]
            q, s, z = stores[0]
            x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
            ref = x.double() @ wo.dequantize_reference(q, s, z, bits, g, k, None, torch.float64).t()
            ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
            row = dict(scheme=name, k=k, n=n, bf16_us=bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]))
            default = wo.words_config(n, k, bits, g)
            tiles = [("default", default)] + [(f"{bn}x{bw}xV{v}x{nw}w", dict(BLOCK_N=bn, BLOCK_W=bw, V=v, num_warps=nw, PREFETCH=True))
                                             for bn, bw, v, nw in TILES]
            # the whole next step in flight (PREFETCH 2, V = 2), where PREFETCH 1 has one word a column
            tiles += [(f"{name} ahead", {**cfg, "PREFETCH": 2}) for name, cfg in list(tiles) if cfg["V"] == 2]
            if bits == 4:  # the same bytes read with no arithmetic: what the memory gives these shapes
                words = [wo._as_words(st[0], k, bits) for st in stores]
                for bn, bw, nw in ((8, 64, 4), (8, 128, 4), (16, 64, 4), (4, 128, 4)):
                    row[f"read floor {bn}x{bw}x{nw}w"] = dict(us=read_floor_us(words, bn, bw, nw))
            for module, tag in ((old, "old"), (wo, "new")):
                if module is None:
                    continue
                for tname, cfg in tiles if module is wo else tiles[:1]:
                    key = f"{tag} {tname}"
                    try:
                        err = ((run(module, x, q, s, z, bits, g, cfg).double() - ref).norm() / ref.norm()).item()
                        us = bench_cold_us([lambda q=q, s=s, z=z: run(module, x, q, s, z, bits, g, cfg) for q, s, z in stores])
                        row[key] = dict(us=us, rel_err=err, cfg=cfg)
                    except Exception as e:  # noqa: BLE001 - a tile the compiler refuses is a data point
                        row[key] = dict(error=str(e)[:200])
            rows.append(row)
            print(json.dumps({k: (v["us"] if isinstance(v, dict) and "us" in v else v) for k, v in row.items()}), flush=True)
            write(out, rows)


if __name__ == "__main__":
    main()
