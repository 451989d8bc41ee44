"""The warp-specialized Gluon INT8 matmul (`ops.int8_hopper`). Gluon kernels do not run in Triton's interpreter, so
on the CPU the kernel is compiled for sm_90 and what came out is checked (warps, shared memory, no spills; for FP8
operands too, which no library path takes yet); on a Hopper GPU it is run against the Triton TMA kernel (to the bit)
and exact integer sums. The float64 test of
`ops.scaled_int8_mm_tma` in test_ops_int8.py runs it too on such a GPU (bias, every output dtype, ragged shapes)."""

import json
import os
import re
import subprocess
import tempfile

import pytest
import torch

from lowbit.ops import int8 as ops
from lowbit.ops import int8_hopper as hopper

pytestmark = pytest.mark.skipif(hopper.gluon is None, reason="needs Triton's Gluon (Hopper)")

HOPPER = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9


def _sm90(out_dtype: torch.dtype, has_bias: bool, operands: torch.dtype = torch.int8):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon._runtime import GluonASTSource

    out = {torch.bfloat16: ("bf16", gl.bfloat16), torch.float16: ("fp16", gl.float16), torch.float32: ("fp32", gl.float32)}[out_dtype]
    ops_type = {torch.int8: ("i8", gl.int8), torch.float8_e4m3fn: ("fp8e4nv", gl.float8e4nv)}[operands]

    def desc(rows, cols, name, dtype):  # a Gluon descriptor's type names its shared-memory layout
        return f"tensordesc<{name}[{rows},{cols}],{gl.NVMMASharedLayout.get_default_for([rows, cols], dtype)!r}>"

    bm, bn, bk = hopper.BLOCK_M, hopper.BLOCK_N, hopper.BLOCK_K
    src = GluonASTSource(fn=hopper._pingpong_mm_kernel, signature={
        "a_desc": desc(bm, bk, *ops_type), "b_desc": desc(bn, bk, *ops_type), "c_desc": desc(bm, bn, *out),
        "sa_ptr": "*fp32", "sb_ptr": "*fp32", "bias_ptr": "*fp32", "M": "i32", "N": "i32", "K": "i32", "PROGRAMS": "i32",
        "HAS_BIAS": "constexpr", "GROUP": "constexpr", "NUM_STAGES": "constexpr", "REGS": "constexpr",
        "IMPRECISE": "constexpr"},
        constexprs={"HAS_BIAS": has_bias, "GROUP": hopper.GROUP_M, "NUM_STAGES": hopper.stages(out_dtype),
                    "REGS": hopper.CONSUMER_REGS, "IMPRECISE": 0 if operands == torch.int8 else hopper.FP8_PROMOTE})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})


VARIANTS = [(torch.bfloat16, False, torch.int8), (torch.float16, True, torch.int8), (torch.float32, True, torch.int8),
            (torch.bfloat16, False, torch.float8_e4m3fn)]


def _facts(compiled) -> dict:
    """What the sm_90 compile gave: warps, shared memory, warpgroup MMAs in the SASS, register hand-offs, spills."""
    import triton

    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(compiled.asm["cubin"])
    try:
        tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
        sass = subprocess.run([tool, "-sass", f.name], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    return dict(warps=compiled.metadata.num_warps, shared=compiled.metadata.shared, gmma=len(re.findall(r"\b[IQ]GMMA\.", sass)),
                setmaxreg="USETMAXREG" in sass, spills=bool(re.search(r"\bSTL\b", sass)))


_COMPILE_ALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
from test_ops_int8_hopper import VARIANTS, _facts, _sm90
print(json.dumps([_facts(_sm90(*v)) for v in VARIANTS]))
"""


@pytest.fixture(scope="module")
def sm90_facts() -> list[dict]:
    """Every variant compiled in one subprocess without the interpreter. In the suite's process Triton's interpreter has
    run kernels, and its patches outlive them: a device function called in a kernel (`tl.sum`, `tl.cdiv`) patches
    triton.language.core and never restores it (Triton 3.6: after one such kernel 61 of its functions are still the
    interpreter's). Gluon's compile in that process failed now and then, "'block_argument' object has no attribute
    'dtype'" in `gl.cdiv` (sessions 16 and 17)."""
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _COMPILE_ALL, os.path.dirname(__file__)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant", range(len(VARIANTS)), ids=lambda i: "-".join(str(v).removeprefix("torch.") for v in VARIANTS[i]))
def test_pingpong_compiles_for_sm90_without_spills(sm90_facts, variant):
    """Three warpgroups (two consumers, the load warp's), 16 warpgroup MMAs (two consumers × two of 64 rows × four
    K-steps of 32), registers handed between partitions, shared memory within an sm_90 CTA's 227 KB, nothing spilled
    to local memory (a spill inside the MMA loop would cost more than the schedule gains)."""
    facts = sm90_facts[variant]
    assert facts["warps"] == 12
    assert facts["shared"] <= 227 * 1024
    assert facts["gmma"] == 16  # IGMMA: int8, QGMMA: FP8
    assert facts["setmaxreg"]
    assert not facts["spills"], "spilled to local memory"


def test_stages_fill_the_shared_memory_beside_the_output_tiles():
    assert hopper.stages(torch.bfloat16) == hopper.stages(torch.float16) == 5
    assert hopper.stages(torch.float32) == 3
    for dtype in (torch.bfloat16, torch.float32):
        used = hopper.stages(dtype) * (hopper.BLOCK_M + hopper.BLOCK_N) * hopper.BLOCK_K + 2 * 128 * 128 * dtype.itemsize
        assert used <= hopper.SHARED_BYTES < used + (hopper.BLOCK_M + hopper.BLOCK_N) * hopper.BLOCK_K


@pytest.mark.skipif(not HOPPER, reason="Gluon's warpgroup MMA: a Hopper GPU")
@pytest.mark.parametrize("m,n,k", [(2048, 1536, 1024), (4096, 4096, 512), (1000, 776, 4112), (129, 136, 16)])
def test_pingpong_equals_the_triton_tma_kernel(m, n, k):
    """Several tiles a program (so both consumers and the ring's laps are used: 192 and 1024 tiles on 132 SMs),
    ragged M, N and K (the copy engine zero-fills and clips), one K-step; bias and every output dtype. The
    Triton kernel's own tile (`tile=` given) is the reference, to the bit; unit scales give exact integer sums.
    Outputs are fresh `torch.empty` memory, poisoned first by a NaN-filled run."""
    gen = torch.Generator().manual_seed(m + n + k)
    a = torch.randint(-127, 128, (m, k), generator=gen, dtype=torch.int8).cuda()
    bt = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8).cuda()
    sa = ((torch.rand(m, generator=gen) + 0.1) / 127).cuda()
    sb = ((torch.rand(n, generator=gen) + 0.1) / 127).cuda()
    bias = torch.randn(n, generator=gen).cuda()
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        torch.full((m, n), float("nan"), device="cuda", dtype=dtype)  # leaves NaNs in the allocator's free block
        out = hopper.scaled_mm_pingpong(a, bt, sa, sb, bias, dtype)
        tile = ops.TMA_TILE if dtype.itemsize <= 2 else ops.TMA_TILE_FP32_OUT
        assert torch.equal(out, ops.scaled_int8_mm_tma(a, bt, sa, sb, bias, dtype, tile)), dtype
    ones_m, ones_n = torch.ones(m, device="cuda"), torch.ones(n, device="cuda")
    exact = hopper.scaled_mm_pingpong(a, bt, ones_m, ones_n, None, torch.float32)
    assert torch.equal(exact.cpu().double(), (a.cpu().long() @ bt.cpu().long().t()).double())


@pytest.mark.skipif(not HOPPER, reason="Gluon's warpgroup MMA: a Hopper GPU")
def test_pingpong_passes_a_nan_scale_to_its_row():
    gen = torch.Generator().manual_seed(5)
    m, n, k = 1024, 1024, 256
    a = torch.randint(-127, 128, (m, k), generator=gen, dtype=torch.int8).cuda()
    bt = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8).cuda()
    sa, sb = torch.full((m,), 1e-3, device="cuda"), torch.full((n,), 1e-3, device="cuda")
    sa[700] = float("nan")
    out = hopper.scaled_mm_pingpong(a, bt, sa, sb, None, torch.bfloat16)
    assert out[700].isnan().all() and not out[torch.arange(m, device="cuda") != 700].isnan().any()
