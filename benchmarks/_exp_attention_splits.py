"""Session 20 (one-off): lowbit's decode attention alone at the 7B decode step's shape (one query, 32 heads of 128, a
256-slot static cache with 130 slots written), per number of cache slices a head, against SDPA on the same tensors:
µs a call, 32 calls (a model's layers, each its own cache) as one CUDA graph.

    python benchmarks/_exp_attention_splits.py out.json [cache_slots written_slots]

Session 21: a long static cache with a short context (e.g. 4096 slots, 130 written), where each slice was a contiguous
range of the cache and the first slice held every attended slot.
"""
import json
import sys

import torch
import torch.nn.functional as F

from lowbit.ops import decode_attention as da

LAYERS, H, D = 32, 32, 128
L, VALID = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (256, 130)
q = torch.randn(1, H, 1, D, device="cuda", dtype=torch.bfloat16)
ks = [torch.randn(1, H, L, D, device="cuda", dtype=torch.bfloat16) for _ in range(LAYERS)]
vs = [torch.randn(1, H, L, D, device="cuda", dtype=torch.bfloat16) for _ in range(LAYERS)]
mask = (torch.arange(L, device="cuda") < VALID)[None, None, None, :]
ref = F.scaled_dot_product_attention(q.float(), ks[0].float(), vs[0].float(), attn_mask=mask)


def graph_us(fn, reps: int = 50) -> float:
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        g.replay()
    end.record()
    torch.cuda.synchronize()
    return 1e3 * start.elapsed_time(end) / reps / LAYERS


rows = {"cache slots": L, "written": VALID, "sdpa": round(graph_us(lambda: [F.scaled_dot_product_attention(q, k, v, attn_mask=mask) for k, v in zip(ks, vs)]), 2),
        "default_splits": da._splits(H, L, torch.cuda.get_device_properties(0).multi_processor_count)}
for n in (1, 2, 4, 8, 16):
    out = da.decode_attention_triton(q, ks[0], vs[0], mask, D ** -0.5, splits=n)
    err = ((out.float() - ref).norm() / ref.norm()).item()
    rows[f"splits {n}"] = [round(graph_us(lambda n=n: [da.decode_attention_triton(q, k, v, mask, D ** -0.5, splits=n) for k, v in zip(ks, vs)]), 2), f"{err:.1e}"]
for block in (16, 32, 64):  # session 21: the slots a step, at the default slice count (interleaved slices)
    n = rows["default_splits"]
    out = da.decode_attention_triton(q, ks[0], vs[0], mask, D ** -0.5, splits=n, block=block)
    err = ((out.float() - ref).norm() / ref.norm()).item()
    rows[f"splits {n}, block {block}"] = [round(graph_us(lambda: [da.decode_attention_triton(q, k, v, mask, D ** -0.5, splits=n, block=block)
                                                                   for k, v in zip(ks, vs)]), 2), f"{err:.1e}"]
print(json.dumps(rows), flush=True)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
