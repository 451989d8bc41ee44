"""Compile a Triton kernel for the H100 (sm_90) on a machine without a GPU, and read what it became:
the TTGIR layouts and the SASS of its main loop. Device time is scarce; instruction counts and layout
conversions can be read here first.

    from benchmarks.sm90_asm import compile_sm90, loop_mix
    k = compile_sm90(kernel, {"x_ptr": "*bf16", "N": 4096, ...}, {"BLOCK_N": 8}, num_warps=4)
    print(loop_mix(k))  # instruction counts inside the innermost backward branch

Integers given as values are specialized as the launcher would (1 becomes a constant; divisible by
16 or not); pointers are taken as 16-byte aligned, as PyTorch allocates them.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def compile_sm90(kernel, args: dict, constexprs: dict, num_warps: int = 4, num_stages: int = 3):
    """`args`: every runtime argument in order, a pointer as its type string ("*bf16"), an integer
    or a float as an example value."""
    signature, attrs = {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
            continue
        v = args[name]
        if v == 1 and name not in getattr(kernel, "do_not_specialize", ()):  # the launcher makes a 1 a constant
            signature[name] = "constexpr"
            constexprs = {**constexprs, name: 1}
            continue
        if isinstance(v, str):
            signature[name] = v
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(v, float):  # a float scalar, as the launcher passes one
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
            if v % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps, "num_stages": num_stages})


def sass(compiled) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(compiled.asm["cubin"])
    try:
        return subprocess.run([os.path.join(BIN, "cuobjdump"), "-sass", f.name], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)


def registers(compiled) -> int | None:
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(compiled.asm["cubin"])
    try:
        out = subprocess.run([os.path.join(BIN, "cuobjdump"), "-res-usage", f.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    m = re.search(r"REG:(\d+)", out)
    return int(m.group(1)) if m else None


def _instructions(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            out.append((int(m.group(1), 16), m.group(2).strip()))
    return out


def loop_mix(compiled) -> dict:
    """Opcode counts between the target of the last backward branch and that branch (the main loop),
    and the register count."""
    ins = _instructions(sass(compiled))
    body = ins
    for addr, text in reversed(ins):
        m = re.search(r"BRA\s+(?:`\(\.L_x_\d+\)\s*)?0x([0-9a-f]+)", text)
        if m and int(m.group(1), 16) < addr:
            body = [(a, t) for a, t in ins if int(m.group(1), 16) <= a <= addr]
            break
    ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for _, t in body)
    return {"loop_instructions": len(body), "ops": dict(ops.most_common()), "registers": registers(compiled),
            "layouts": len(re.findall(r"^#\w+ = ", compiled.asm["ttgir"], re.M)),
            "convert_layout": compiled.asm["ttgir"].count("convert_layout"), "local_alloc": compiled.asm["ttgir"].count("local_alloc")}
