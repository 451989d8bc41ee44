"""Experiment (session 12): a warp-specialized W4A16 g128 matmul past the swapped kernel's 128 tokens. The operands
swapped (weight rows fill the MMA's long side): a TMA producer warp group loads the packed codes and the
activations, consumer groups dequantize a [BLOCK_N, BLOCK_K] tile in registers and issue the MMA
(`tl.range(warp_specialize=True)`, which Triton 3.6 lowers on sm_90 where the weight tile is 64 rows: 128 failed in
its data partition). Session 10's tall tiles without warp specialization ran at 300-400 TFLOP/s, half of cuBLAS.
Times, µs a shape (do_bench, L2 flushed), and the 7B layer's sum: bf16 cuBLAS, the layer's dispatch now, this kernel
with and without warp specialization on a few tiles; each checked against x @ Wᵀ in float64.

    python3 benchmarks/_exp_ws_w4.py --out $OUT/ws-w4.json
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
import triton.testing
from triton.tools.tensor_descriptor import TensorDescriptor

from lowbit.formats.packing import pack
from lowbit.ops import weight_only as wo

SHAPES = {(4096, 4096): 4, (4096, 11008): 2, (11008, 4096): 1}  # (K, N): count in a 7B layer
TILES = [(64, 64, 64, 4), (64, 128, 64, 4), (64, 128, 128, 3), (64, 64, 128, 4)]  # BLOCK_N (rows), BLOCK_M (tokens), BLOCK_K, stages


@triton.jit
def _w4_kernel(x_desc, q_desc, s_ptr, z_ptr, out_ptr, M, N, K, stride_sn, stride_zn, GROUP: tl.constexpr,
               BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, WS: tl.constexpr):
    on = tl.program_id(0) * BLOCK_N
    om = tl.program_id(1) * BLOCK_M
    offs_n = on + tl.arange(0, BLOCK_N)
    rows = tl.minimum(offs_n, N - 1)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for kk in tl.range(0, tl.cdiv(K, BLOCK_K), warp_specialize=WS):
        b = q_desc.load([on, kk * (BLOCK_K // 2)]).to(tl.int32)
        g = (kk * BLOCK_K) // GROUP
        s = tl.load(s_ptr + rows * stride_sn + g)
        z = tl.load(z_ptr + rows * stride_zn + g).to(tl.float32)
        w = tl.reshape(tl.join((b & 0xF).to(tl.float32), (b >> 4).to(tl.float32)), (BLOCK_N, BLOCK_K))
        w = ((w - z[:, None]) * s[:, None]).to(tl.bfloat16)
        acc = tl.dot(w, x_desc.load([om, kk * BLOCK_K]).T, acc)
    offs_m = om + tl.arange(0, BLOCK_M)
    tl.store(out_ptr + offs_m[None, :] * N + offs_n[:, None], acc.to(tl.bfloat16), mask=(offs_n < N)[:, None] & (offs_m < M)[None, :])


def w4_mm(x, q, s, z, tile, ws):
    bn, bm, bk, st = tile
    m, k = x.shape
    n = q.shape[0]
    out = torch.empty(m, n, device=x.device, dtype=torch.bfloat16)
    grid = (triton.cdiv(n, bn), triton.cdiv(m, bm))
    _w4_kernel[grid](TensorDescriptor.from_tensor(x, [bm, bk]), TensorDescriptor.from_tensor(q, [bn, bk // 2]), s, z, out,
                     m, n, k, s.stride(0), z.stride(0), GROUP=128, BLOCK_N=bn, BLOCK_M=bm, BLOCK_K=bk, WS=ws, num_warps=4, num_stages=st)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--ms", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 4096])
    args = p.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    stores = {}
    for k, n in SHAPES:
        q = pack(torch.randint(0, 16, (n, k), generator=gen, device="cuda", dtype=torch.uint8), 4)
        s = torch.rand(n, k // 128, generator=gen, device="cuda") * 0.01
        z = torch.randint(0, 16, s.shape, generator=gen, device="cuda", dtype=torch.uint8)
        w = wo.dequantize_reference(q, s, z, 4, 128, k, dtype=torch.float32)
        stores[(k, n)] = (q, s, z, w.to(torch.bfloat16), w.double())
    rows, sums = [], {}
    for m in args.ms:
        for (k, n), count in SHAPES.items():
            q, s, z, wb, wd = stores[(k, n)]
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
            ref = x.double() @ wd.t()

            def us(fn):
                return round(triton.testing.do_bench(fn, rep=40) * 1e3, 1)

            def err(out):
                return f"{((out.double() - ref).norm() / ref.norm()).item():.1e}"

            row = dict(m=m, k=k, n=n, bf16=us(lambda: F.linear(x, wb)), now=us(lambda: wo.weight_only_linear(x, q, s, z, 4, 128)))
            for ws in (False, True):
                for tile in TILES:
                    name = f"{'ws' if ws else 'plain'}_{tile[0]}x{tile[1]}x{tile[2]}s{tile[3]}"
                    try:
                        out = w4_mm(x, q, s, z, tile, ws)
                        torch.cuda.synchronize()
                        row[name] = [us(lambda: w4_mm(x, q, s, z, tile, ws)), err(out)]
                    except Exception as exc:  # noqa: BLE001 - a sweep records what failed
                        row[name] = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
            for name, v in row.items():
                if name in ("m", "k", "n") or isinstance(v, str):
                    continue
                t = v if isinstance(v, float) else v[0]
                sums.setdefault(m, {}).setdefault(name, 0.0)
                sums[m][name] = round(sums[m][name] + count * t, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
        print(m, json.dumps(dict(sorted(sums[m].items(), key=lambda t: t[1]))), flush=True)
        with open(args.out, "w") as f:
            json.dump(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__, rows=rows, layer_sums_us=sums), f, indent=1)


if __name__ == "__main__":
    main()
