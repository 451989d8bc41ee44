"""Session 12 (one-off, call 1): weight-only layers past the swapped kernel's tokens, W dequantized in slabs of rows
into one reused buffer that should stay in the L2 between the dequantize kernel that writes it and the cuBLAS call
that reads it (`chunked_linear`), against dequantizing the whole weight to memory then cuBLAS (what the layers do past
the swapped kernel) and bf16. One stream, and a two-stream variant in which the next slab's dequantization runs beside
this slab's matmul. The seven 7B linears as one CUDA graph, as bench linear times them; the layers' op is replaced
for the run (`weight_only._weight_only_matmul`, which their eager no-grad calls take). It lost everywhere but at
4096 tokens (docs/benchmarks/README.md, session 12): the library keeps no slab path.

    python3 benchmarks/_exp_chunked.py OUT.json [M ...]

(Call 1 ran it through hooks in `weight_only`, removed after; this is the same computation standing alone.)"""
import json
import sys

import torch
import triton
import triton.testing
import torch.nn.functional as F

from lowbit.bench.linear import LLAMA2_7B_LINEARS, SCHEMES, build_layers
from lowbit.ops import weight_only as wo

MS = [int(a) for a in sys.argv[2:]] or [32, 64, 128, 256, 1024, 4096]
ROWS = [512, 1024, 2048]
NAMES = ["W4A16 g128 (Triton)", "W8A16 per-channel (Triton)", "NF4 b64 (Triton)", "FP8 e4m3 weight-only (Triton)"]
SIDE = torch.cuda.Stream()


def dequantize_into(qweight, scale, zero, bits, group_size, k, lut, out):
    """`weight_only._dequantize`'s kernel path, written into `out` (FP8 values as their code table)."""
    cfg = wo.gemv_config(qweight.shape[0], k, bits, group_size)
    q, table = qweight, lut
    if qweight.dtype in wo.FP8_DTYPES:
        q, table = qweight.view(torch.uint8), wo.code_table(wo._VALUES[qweight.dtype], qweight.device)
    q, scale, zero = wo._unit_stride(q, scale, zero)
    scale = scale if scale.dtype == torch.float32 else scale.float()
    n, bn = q.shape[0], 32
    wo._dequant_kernel[(triton.cdiv(n, bn), triton.cdiv(k, cfg["TW"]))](
        q, scale, zero if zero is not None else q, table if table is not None else scale, out,
        n, k, group_size, q.stride(0), scale.stride(0), zero.stride(0) if zero is not None else 0, out.stride(0),
        BITS=bits, HAS_ZERO=zero is not None, USE_LUT=table is not None, BLOCK_N=bn, TW=cfg["TW"])
    return out


def chunked_linear(x, qweight, scale, zero, bits, group_size, k, lut, bias, rows):
    """x @ Wᵀ with W dequantized `rows` output rows at a time into one reused buffer, each slab's product written
    into its columns of the output."""
    n = qweight.shape[0]
    out = torch.empty(x.shape[0], n, device=x.device, dtype=x.dtype)
    buf = torch.empty(min(rows, n), k, device=x.device, dtype=x.dtype)
    for n0 in range(0, n, rows):
        n1 = min(n, n0 + rows)
        z = None if zero is None else zero[n0:n1]
        w = dequantize_into(qweight[n0:n1], scale[n0:n1], z, bits, group_size, k, lut, buf[: n1 - n0])
        torch.mm(x, w.t(), out=out[:, n0:n1])
    return out if bias is None else out.add_(bias.to(x.dtype))


def chunked_two_streams(x, qweight, scale, zero, bits, group_size, k, lut, bias, rows):
    """`_chunked_linear` with slab i + 1 dequantized on a side stream while slab i's matmul runs (two buffers)."""
    n = qweight.shape[0]
    out = torch.empty(x.shape[0], n, device=x.device, dtype=x.dtype)
    bufs = [torch.empty(min(rows, n), k, device=x.device, dtype=x.dtype) for _ in range(2)]
    main = torch.cuda.current_stream()
    starts = list(range(0, n, rows))
    ready = [torch.cuda.Event() for _ in starts]
    done = [torch.cuda.Event() for _ in starts]
    SIDE.wait_stream(main)

    def dequant(i):
        n0, n1 = starts[i], min(n, starts[i] + rows)
        with torch.cuda.stream(SIDE):
            if i >= 2:
                SIDE.wait_event(done[i - 2])
            z = None if zero is None else zero[n0:n1]
            dequantize_into(qweight[n0:n1], scale[n0:n1], z, bits, group_size, k, lut, bufs[i % 2][: n1 - n0])
            ready[i].record(SIDE)

    dequant(0)
    for i, n0 in enumerate(starts):
        n1 = min(n, n0 + rows)
        if i + 1 < len(starts):
            dequant(i + 1)
        main.wait_event(ready[i])
        torch.mm(x, bufs[i % 2][: n1 - n0].t(), out=out[:, n0:n1])
        done[i].record(main)
    main.wait_stream(SIDE)
    return out if bias is None else out.add_(bias.to(x.dtype))


def time_run(layers, xs) -> tuple[float, list]:
    def run():
        return [layer(x) for layer, x in zip(layers, xs)]

    with torch.no_grad():
        outs = run()
        torch.cuda.synchronize()
        return triton.testing.do_bench_cudagraph(run, rep=50) * 1e3, outs


def main():
    gpu = torch.cuda.get_device_name()
    rows_out = []
    bf16 = build_layers(None)
    now = wo._weight_only_matmul
    for name in NAMES:
        layers = build_layers(SCHEMES[name])
        refs_w = [layer.dequantize_weight(torch.float64) for layer in layers]
        for m in MS:
            gen = torch.Generator(device="cuda").manual_seed(m)
            xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen) for _, k, _ in LLAMA2_7B_LINEARS]
            refs = [x.double() @ w.t() for x, w in zip(xs, refs_w)]
            row = dict(scheme=name, m=m, bf16_us=round(time_run(bf16, xs)[0], 1))
            variants = [("now", now), ("dequant+cublas", lambda x, q, s, z, g, bits, gs, lut, bias: F.linear(
                x, wo._dequantize(q, s, z, g, bits, gs, x.shape[1], lut, x.dtype), bias))]
            for fn, tag in ((chunked_linear, "chunked"), (chunked_two_streams, "chunked2s")):
                variants += [(f"{tag}{r}", lambda x, q, s, z, g, bits, gs, lut, bias, r=r, fn=fn: fn(x, q, s, z, bits, gs, x.shape[1], lut, bias, r))
                             for r in ROWS]
            for label, fn in variants:
                wo._weight_only_matmul = fn
                try:
                    us, outs = time_run(layers, xs)
                    err = max(((o.double() - r).norm() / r.norm()).item() for o, r in zip(outs, refs))
                    row[label] = [round(us, 1), f"{err:.1e}"]
                except Exception as exc:  # noqa: BLE001 - a one-off sweep records what failed
                    row[label] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
                finally:
                    wo._weight_only_matmul = now
            print(json.dumps(row), flush=True)
            rows_out.append(row)
            with open(sys.argv[1], "w") as f:
                json.dump(dict(gpu=gpu, torch=torch.__version__, triton=triton.__version__, rows=rows_out), f, indent=1)


if __name__ == "__main__":
    main()
