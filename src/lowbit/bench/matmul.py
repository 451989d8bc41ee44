"""`lowbit bench matmul`: seed 002's TFLOP/s table — square M = N = K matmuls in the three layouts
of training (forward A@Bᵀ, grad-input A@B, grad-weight Aᵀ@B; a transposed operand is a view of
row-major storage, and a kernel that copies it K-major counts the copy), for cuBLAS and lowbit's kernels:

    cuBLAS BF16 (torch.matmul), cuBLAS INT8 (torch._int_mm, int32 out, no scales),
    cuBLAS FP8 row-wise (torch._scaled_mm), lowbit FP8 row-wise (`ops.fp8.scaled_fp8_mm`: cuBLAS, with K-major
    copies of what its layout rules refuse), lowbit INT8 row/column-scaled (Triton; on Hopper, above 512 rows, the
    warp-specialized Gluon kernel of `ops.int8_hopper`, a transposed operand copied K-major first),
    lowbit tile-scaled INT8 and FP8 (1×128 / 128×128 scales), lowbit W4A16 g128 (A@Bᵀ only);
    and, where they import, torchao's INT8 int_scaled_matmul and bitsandbytes' int8_linear_matmul.

Only the matmul is timed (`bench.timing.gpu_ms`: median of CUDA-graph replays, so that a launch's host cost does not
count; eagerly, with a note, for a kernel that syncs with the host): operands are quantized beforehand.
TFLOP/s = 2·M·N·K / time. Each kernel's output is checked once per size and layout against the
float32 product of the same float inputs (relative Frobenius error), so a fast wrong kernel shows.
A kernel that refuses a layout (cuBLAS's layout rules) gets a row with the reason instead of a time.
Writes results.json, report.md and matmul_tflops.png.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..measure import environment
from . import peers, report
from .timing import gpu_ms

LAYOUTS = ("A@Bᵀ", "A@B", "Aᵀ@B")
KERNELS = (
    "cuBLAS BF16", "cuBLAS INT8 (_int_mm)", "cuBLAS FP8 row-wise (_scaled_mm)", "lowbit INT8 scaled (Triton; Gluon on Hopper)",
    "lowbit FP8 row-wise (ops.fp8: cuBLAS)", "lowbit tile-scaled INT8 (Triton)", "lowbit tile-scaled FP8 (Triton)", "lowbit W4A16 g128 (Triton)",
)
# Peers' INT8 matmuls (`bench.peers`'s libraries), added where the library imports.
PEER_KERNELS = {"torchao INT8 scaled (int_scaled_matmul)": "torchao-int8", "bitsandbytes INT8 (int8_linear_matmul)": "bnb-int8"}


def default_kernels() -> tuple[str, ...]:
    return KERNELS + tuple(k for k, peer in PEER_KERNELS.items() if peers.importable(peer))


# Dense (no sparsity) peaks from the vendors' data sheets, TFLOP/s: (BF16, INT8, FP8).
PEAKS = {
    "H100 SXM": (989.0, 1979.0, 1979.0),
    "H100 PCIe": (756.0, 1513.0, 1513.0),
    "H200": (989.0, 1979.0, 1979.0),
    "A100": (312.0, 624.0, None),
}


def peaks_for(device_name: str) -> dict | None:
    """{"bf16", "int8", "fp8"} dense peaks of a GPU named like torch.cuda.get_device_name(), else None."""
    name = device_name.upper()
    if "H200" in name:
        key = "H200"
    elif "H100" in name:
        key = "H100 PCIe" if "PCIE" in name else "H100 SXM"
    elif "A100" in name:
        key = "A100"
    else:
        return None
    bf16, int8, fp8 = PEAKS[key]
    return {"name": key, "bf16": bf16, "int8": int8, "fp8": fp8}


def arrange(layout: str, a: torch.Tensor, b_nk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a [M, K], b [K, N]) views of `layout`'s storage: A@Bᵀ keeps B as [N, K] rows (a linear's
    weight), A@B stores B as [K, N], Aᵀ@B also stores A as [K, M]."""
    if layout == "A@Bᵀ":
        return a, b_nk.t()
    b_kn = b_nk.t().contiguous()
    if layout == "A@B":
        return a, b_kn
    if layout == "Aᵀ@B":
        return a.t().contiguous().t(), b_kn
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def prepare(kernel: str, layout: str, a: torch.Tensor, b_nk: torch.Tensor):
    """(fn, to_float): fn() runs the kernel on operands quantized here, outside the timing;
    to_float(out) is its result as float32 [M, N], scales applied."""
    from ..ops import fp8 as f8
    from ..ops import int8 as i8
    from ..ops import tile_scaled as ts
    from ..ops import w4a16

    if kernel == "cuBLAS BF16":
        av, bv = arrange(layout, a, b_nk)
        return (lambda: torch.matmul(av, bv)), (lambda out: out.float())
    if kernel in ("cuBLAS INT8 (_int_mm)", "lowbit INT8 scaled (Triton; Gluon on Hopper)"):
        qa, sa = i8.quantize_rows(a)
        qb, sb = i8.quantize_rows(b_nk)
        av, bv = arrange(layout, qa, qb)
        if kernel == "lowbit INT8 scaled (Triton; Gluon on Hopper)":
            return (lambda: i8.scaled_int8_mm_triton(av, bv, sa, sb)), (lambda out: out.float())
        return (lambda: torch._int_mm(av, bv)), (lambda out: out.float() * sa[:, None] * sb[None, :])
    if kernel == "cuBLAS FP8 row-wise (_scaled_mm)":
        qa, sa = f8.quantize_rows_fp8(a)
        qb, sb = f8.quantize_rows_fp8(b_nk)
        av, bv = arrange(layout, qa, qb)
        sbr = sb.reshape(1, -1).contiguous()
        return (lambda: torch._scaled_mm(av, bv, scale_a=sa, scale_b=sbr, out_dtype=torch.bfloat16)), (lambda out: out.float())
    if kernel == "lowbit FP8 row-wise (ops.fp8: cuBLAS)":  # the op copies what cuBLAS's layout rules refuse
        qa, sa = f8.quantize_rows_fp8(a)
        qb, sb = f8.quantize_rows_fp8(b_nk)
        av, bv = arrange(layout, qa, qb)
        return (lambda: f8.scaled_fp8_mm(av, bv.t(), sa, sb)), (lambda out: out.float())
    if kernel.startswith("lowbit tile-scaled"):
        fmt = "int8" if "INT8" in kernel else "e4m3"
        qa, sa = ts.quantize_tiles(a, fmt)
        qb, sb = ts.quantize_blocks(b_nk, fmt)
        av, bv = arrange(layout, qa, qb)
        return (lambda: ts.tile_scaled_mm_triton(av, bv.t(), sa, sb)), (lambda out: out.float())
    if kernel in PEER_KERNELS:
        qa, sa = i8.quantize_rows(a)
        qb, sb = i8.quantize_rows(b_nk)
        av, bv = arrange(layout, qa, qb)
        if kernel.startswith("torchao"):  # row scales inside, the column scales after
            from torchao.kernel.intmm import int_scaled_matmul

            sa2 = sa.reshape(-1, 1)
            return (lambda: int_scaled_matmul(av, bv, sa2)), (lambda out: out.float() * sb[None, :])
        if layout != "A@Bᵀ":
            raise NotImplementedError("int8_linear_matmul takes B as stored rows [N, K] (A@Bᵀ) only")
        import bitsandbytes.functional as bnbf

        return (lambda: bnbf.int8_linear_matmul(qa, qb)), (lambda out: out.float() * sa[:, None] * sb[None, :])
    if kernel == "lowbit W4A16 g128 (Triton)":
        if layout != "A@Bᵀ":
            raise NotImplementedError("weight-only kernel: A@Bᵀ (B the stored weight) only")
        from ..methods import RTN

        layer = RTN(bits=4, granularity="group", group_size=128, symmetric=False).layer(b_nk, None)
        args = (layer.qweight, layer.scale, layer.zero, layer.g_idx, 128)
        return (lambda: w4a16.w4a16_matmul_triton(a, *args)), (lambda out: out.float())
    raise ValueError(f"unknown kernel {kernel!r}")


def measure(kernel: str, layout: str, a: torch.Tensor, b_nk: torch.Tensor, ref: torch.Tensor) -> dict:
    """One row: median ms, TFLOP/s and relative error, or a note where the kernel refuses."""
    m, k = a.shape
    n = b_nk.shape[0]
    row = {"kernel": kernel, "layout": layout, "size": m, "ms": None, "tflops": None, "rel_err": None, "note": "", "timing": None}
    try:
        fn, to_float = prepare(kernel, layout, a, b_nk)
        out = fn()
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001 - cuBLAS's layout/shape rules, Triton's limits: a note, and the run goes on
        row["note"] = f"skipped ({type(e).__name__}): {report.first_line(e)}"
        return row
    got = to_float(out)
    row["rel_err"] = ((got - ref).norm() / ref.norm()).item()
    del out, got
    ms, row["timing"] = gpu_ms(fn)
    row["ms"], row["tflops"] = ms, 2.0 * m * n * k / (ms * 1e-3) / 1e12
    if row["timing"] != "cuda graph":
        row["note"] = row["timing"]
    return row


def run(sizes=(1024, 2048, 4096, 8192), out: str | Path | None = "reports/bench-matmul", kernels=None, layouts=LAYOUTS) -> dict:
    """Every (size, layout, kernel) row; `kernels` defaults to lowbit's and cuBLAS's plus the importable peers'."""
    kernels = default_kernels() if kernels is None else kernels
    if not torch.cuda.is_available():
        raise ValueError("bench matmul needs a CUDA GPU (torch.cuda.is_available() is False)")

    rows = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for size in sizes:
        a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16, generator=gen)
        b_nk = torch.randn(size, size, device="cuda", dtype=torch.bfloat16, generator=gen)
        ref = a.float() @ b_nk.float().t()  # float32 (TF32 off by default): the check for every kernel
        for layout in layouts:
            for kernel in kernels:
                rows.append(measure(kernel, layout, a, b_nk, ref))
                print(_row_line(rows[-1]), flush=True)
        del a, b_nk, ref
        torch.cuda.empty_cache()
    env = environment("cuda")
    result = {**env, "peaks_tflops": peaks_for(env["gpu"]), "sizes": list(sizes), "rows": rows}
    if out is not None:
        write_report(result, Path(out))
    return result


def _row_line(r: dict) -> str:
    if r["ms"] is None:
        return f"{r['layout']:5} {r['size']:6} {r['kernel']:36} {r['note']}"
    return f"{r['layout']:5} {r['size']:6} {r['kernel']:36} {r['tflops']:8.1f} TFLOP/s  rel err {r['rel_err']:.1e}"


def format_table(result: dict) -> list[str]:
    """Markdown: one table per layout, a row per kernel, a column per size: TFLOP/s (rel err)."""
    sizes = result["sizes"]
    peaks = result.get("peaks_tflops")
    lines = [f"{result['gpu']} (driver {result['driver']}, CUDA {result.get('cuda')}), torch {result['torch']}, triton {result['triton']}",
             "", "Dense peak TFLOP/s: " + (f"BF16 {peaks['bf16']:.0f}, INT8 {peaks['int8']:.0f}, FP8 "
                                            + (f"{peaks['fp8']:.0f}" if peaks["fp8"] else "n/a") + f" ({peaks['name']} data sheet)"
                                            if peaks else "unknown for this GPU"), ""]
    notes = []
    for layout in dict.fromkeys(r["layout"] for r in result["rows"]):
        lines += [f"### {layout}", "", "| kernel | " + " | ".join(f"{s}: TFLOP/s (rel err)" for s in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for kernel in dict.fromkeys(r["kernel"] for r in result["rows"]):
            rs = {r["size"]: r for r in result["rows"] if r["layout"] == layout and r["kernel"] == kernel}
            cells = []
            for s in sizes:
                r = rs.get(s)
                if r is None:
                    cells.append("")
                elif r["ms"] is None:
                    notes.append(f"{kernel}, {layout}, {s}: {r['note']}")
                    cells.append(f"— [{len(notes)}]")
                else:
                    cells.append(f"{r['tflops']:.0f} ({r['rel_err']:.1e})")
            lines.append(f"| {kernel} | " + " | ".join(cells) + " |")
        lines.append("")
    if notes:
        lines += ["Not run:", "", *[f"{i}. {note}" for i, note in enumerate(notes, 1)], ""]
    return lines


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = list(dict.fromkeys(r["layout"] for r in result["rows"]))
    kernels = list(dict.fromkeys(r["kernel"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(layouts), figsize=(6 * len(layouts) + 3, 5), squeeze=False, sharey=True)
    colors = plt.get_cmap("tab10").colors
    peaks = result.get("peaks_tflops")
    for ax, layout in zip(axes[0], layouts):
        for i, kernel in enumerate(kernels):
            pts = sorted((r["size"], r["tflops"]) for r in result["rows"] if r["layout"] == layout and r["kernel"] == kernel and r["tflops"])
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colors[i % len(colors)], label=kernel)
        if peaks:
            ax.axhline(peaks["bf16"], color="gray", linestyle=":", linewidth=1)
            ax.axhline(peaks["int8"], color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(result["sizes"], [str(s) for s in result["sizes"]])
        ax.set_xlabel("M = N = K")
        ax.set_title(layout)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("TFLOP/s (dotted: BF16 peak, dashed: INT8/FP8 peak)")
    handles = {}  # one legend for all panels: a kernel that skips the last layout is still named
    for ax in axes[0]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    axes[0][-1].legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(f"matmul throughput — {result['gpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict, out_dir: Path) -> None:
    report.write(out_dir, result, "Matmul throughput (seed 002)",
                 "Only the matmul is timed (median of CUDA-graph replays, or eagerly where a note says so; operands quantized beforehand). "
                 "rel err: ‖out − A·Bᵀ‖/‖A·Bᵀ‖ against float32 on the same bf16 inputs, quantization included. "
                 "cuBLAS INT8 is int32 out without scales (its scales are applied only for the check).",
                 format_table(result), plot, "matmul_tflops.png")


if __name__ == "__main__":
    res = run()
    print("\n".join(format_table(res)))
