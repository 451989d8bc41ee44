"""Launch the byte GEMV and the word GEMV (int4 g128, 4096 x 4096, one token) a few times each, for
`ncu --kernel-name regex:gemv` to profile (hardware counters; the device README says how).

    PYTHONPATH=src ncu --clock-control none --kernel-name regex:gemv --launch-skip 3 --launch-count 2 \\
        --section SpeedOfLight --section WarpStateStats python3 benchmarks/ncu_gemv.py
"""

import torch

from lowbit.formats.packing import pack
from lowbit.ops import weight_only as wo

k = n = 4096
gen = torch.Generator(device="cuda").manual_seed(0)
q = pack(torch.randint(0, 16, (n, k), generator=gen, device="cuda", dtype=torch.uint8), 4)
s = torch.rand(n, k // 128, generator=gen, device="cuda") * 0.01
x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
for _ in range(4):
    wo.gemv_triton(x, q, s, None, 4, 128)
for _ in range(4):
    wo.gemv_words_triton(x, q, s, None, 4, 128, config=dict(BLOCK_N=16, BLOCK_W=64, num_warps=2))
torch.cuda.synchronize()
