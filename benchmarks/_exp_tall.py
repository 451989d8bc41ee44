"""Session 10, call 1 (one-off; a record: the kernel flags PACKED + X_PERMUTED at tall tiles were reverted after it): the swapped kernel on 128-token tiles at 64-4096 tokens, against bf16 cuBLAS and what
`weight_only_matmul` dispatches now (dequantize + cuBLAS past 64-256 tokens). int4 g128 with zero points takes the
packed codes with x permuted beforehand (X_PERMUTED; the permutation's copy is timed with the kernel); int8 per
channel and FP8 values the one-code-at-a-time path. Weights read from memory; µs a shape and the 7B layer's sum."""
import itertools, json, sys, time
import torch
import torch.nn.functional as F
from lowbit.ops import weight_only as wo
from sweep import SHAPES, bench_cold_us, cold_copies, storage, write

COUNT = {(4096, 4096): 4, (4096, 11008): 2, (11008, 4096): 1}
BK = 128
s = torch.arange(BK)
ORDER = ((BK // 4) * ((s // 2) % 4) + 4 * (s // 16) + 2 * ((s // 8) % 2) + s % 2).cuda()


def permuted(x):
    m, k = x.shape
    return x.view(m, k // BK, BK)[:, :, ORDER].reshape(m, k)


def tall(bm, bn, w, st, split=1, packed=None):
    cfg = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=BK, SPLIT_K=split, num_warps=w, num_stages=st)
    if packed is not None:
        cfg.update(PACKED=packed, X_PERMUTED=packed)
    return cfg


SCHEMES = [("int4-g128-zero", 4, 128, True, None), ("int8-channel", 8, None, False, None), ("fp8-channel", 8, None, False, torch.float8_e4m3fn)]
MS = [64, 128, 256, 512, 1024, 4096]
t0 = time.time()
budget = float(sys.argv[2]) if len(sys.argv) > 2 else 400
gen = torch.Generator(device="cuda").manual_seed(0)
rows, total = [], {}
for (name, bits, group, zero, dtype), m, (k, n) in itertools.product(SCHEMES, MS, SHAPES):
    if time.time() - t0 > budget:
        break
    g = group or k
    packed = True if bits == 4 else None
    variants = {"t128x128w8s4": tall(128, 128, 8, 4, packed=packed), "t128x64w4s4": tall(128, 64, 4, 4, packed=packed),
                "t64x128w4s4": tall(64, 128, 4, 4, packed=packed), "t128x128w8s3": tall(128, 128, 8, 3, packed=packed)}
    if m <= 256:
        variants["t128x128w8s4-split2"] = tall(128, 128, 8, 4, 2, packed=packed)
        variants["t64x128w4s4-split2"] = tall(64, 128, 4, 4, 2, packed=packed)
    if bits == 4:
        variants["t128x128w8s4-unpacked"] = tall(128, 128, 8, 4, packed=False)
    stores = [storage(k, n, bits, g, zero, dtype, gen) for _ in range(cold_copies(n * k * bits // 8))]
    q, sc, z = stores[0]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w64 = q.float().double() * sc.double() if dtype else wo.dequantize_reference(q, sc, z, bits, g, k, None, torch.float64)
    ref = x.double() @ w64.t()
    ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(cold_copies(2 * n * k))]
    row = dict(scheme=name, k=k, n=n, m=m, bf16=round(bench_cold_us([lambda w=w: F.linear(x, w) for w in ws]), 2),
               dispatch=round(bench_cold_us([lambda q=q, sc=sc, z=z: wo.weight_only_matmul(x, q, sc, z, None, bits, g, None, None)
                                             for q, sc, z in stores]), 2))
    for vname, cfg in variants.items():
        try:
            xin = permuted(x) if cfg.get("X_PERMUTED") else x
            out = wo.mma_swapped_triton(xin, q, sc, z, bits, g, config=cfg)
            err = ((out.double() - ref).norm() / ref.norm()).item()
            fns = [lambda q=q, sc=sc, z=z, cfg=cfg: wo.mma_swapped_triton(permuted(x) if cfg.get("X_PERMUTED") else x, q, sc, z, bits, g, config=cfg)
                   for q, sc, z in stores]
            row[vname] = [round(bench_cold_us(fns), 2), f"{err:.1e}"]
        except Exception as e:  # noqa: BLE001 — a config that does not compile is a result too
            row[vname] = [None, str(e)[:120]]
    for v in ["bf16", "dispatch", *variants]:
        t = row[v] if v in ("bf16", "dispatch") else row[v][0]
        if t is not None:
            key = f"{name} m={m}"
            total.setdefault(key, {}).setdefault(v, 0.0)
            total[key][v] = round(total[key][v] + COUNT[(k, n)] * t, 1)
    print(json.dumps(row), flush=True)
    rows.append(row)
    write(sys.argv[1], dict(rows=rows, layer_sums_us=total))
for key, v in total.items():
    print(key, json.dumps(v))
