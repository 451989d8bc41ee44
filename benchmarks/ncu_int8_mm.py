"""Launch the INT8 TMA matmul (`ops.int8.scaled_int8_mm_tma`) three times on one shape, for ncu to profile its
last launch: does the kernel stop near 1100 TOP/s because the L2 cannot feed the SMs faster (docs/benchmarks/README.md,
session 12, counted 6.4 TB/s of operand traffic)?

    PYTHONPATH=src ncu --clock-control none --kernel-name regex:scaled_mm --launch-skip 2 --launch-count 1 \\
        --section SpeedOfLight --section MemoryWorkloadAnalysis --metrics lts__t_bytes.sum.per_second \\
        python3 benchmarks/ncu_int8_mm.py --m 32768 --n 1536 --k 1536
"""

import argparse

import torch

from lowbit.ops import int8 as int8_ops

ap = argparse.ArgumentParser()
ap.add_argument("--m", type=int, default=32768)
ap.add_argument("--n", type=int, default=1536)
ap.add_argument("--k", type=int, default=1536)
ap.add_argument("--cublas", action="store_true", help="torch._int_mm (cuBLAS INT8) on the same operands instead")
args = ap.parse_args()
gen = torch.Generator(device="cuda").manual_seed(0)
a = torch.randint(-127, 128, (args.m, args.k), device="cuda", dtype=torch.int8, generator=gen)
bt = torch.randint(-127, 128, (args.n, args.k), device="cuda", dtype=torch.int8, generator=gen)
sa, sb = torch.rand(args.m, device="cuda") * 1e-3, torch.rand(args.n, device="cuda") * 1e-3
for _ in range(3):
    if args.cublas:
        torch._int_mm(a, bt.t())
        continue
    int8_ops.scaled_int8_mm_tma(a, bt, sa, sb, None, torch.bfloat16)
torch.cuda.synchronize()
