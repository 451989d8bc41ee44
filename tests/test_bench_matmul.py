"""`lowbit bench matmul` without a GPU: the report and plot from a fake result, the layouts, the
peak table, and each kernel's preparation and check on CPU at a tiny size (Triton in the interpreter)."""

import json

import pytest
import torch

from lowbit.bench import matmul
from lowbit.cli import main


def fake_result():
    rows = []
    for layout in matmul.LAYOUTS:
        for kernel in matmul.KERNELS:
            for size in (1024, 2048):
                skip = kernel.startswith("cuBLAS FP8") and layout != "A@Bᵀ"
                rows.append({"kernel": kernel, "layout": layout, "size": size, "ms": None if skip else 0.1 * size / 1024,
                             "tflops": None if skip else 2 * size**3 / (0.1e-3 * size / 1024) / 1e12,
                             "rel_err": None if skip else 0.01, "note": "skipped (RuntimeError): mat2 must be col_major" if skip else ""})
    return {"gpu": "NVIDIA H100 80GB HBM3", "driver": "570.0", "cuda": "13.0", "torch": "2.11", "triton": "3.6", "python": "3.12",
            "command": "lowbit bench matmul --sizes 1024 2048", "peaks_tflops": matmul.peaks_for("NVIDIA H100 80GB HBM3"),
            "sizes": [1024, 2048], "rows": rows}


def test_report_and_plot_from_a_fake_result(tmp_path):
    result = fake_result()
    matmul.write_report(result, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == result["rows"]
    assert (tmp_path / "matmul_tflops.png").stat().st_size > 10_000
    report = (tmp_path / "report.md").read_text()
    assert "BF16 989, INT8 1979, FP8 1979" in report and "driver 570.0" in report and result["command"] in report
    for layout in matmul.LAYOUTS:
        assert f"### {layout}" in report
    assert "| cuBLAS BF16 | 21 (1.0e-02) | 86 (1.0e-02) |" in report
    assert "mat2 must be col_major" in report and "— [1]" in report  # a refusal is a footnote, not a blank


def test_peaks_table():
    assert matmul.peaks_for("NVIDIA H200")["bf16"] == 989
    assert matmul.peaks_for("NVIDIA H100 PCIe")["int8"] == 1513
    assert matmul.peaks_for("NVIDIA A100-SXM4-80GB")["fp8"] is None
    assert matmul.peaks_for("NVIDIA GeForce RTX 4090") is None
    lines = matmul.format_table(dict(fake_result(), peaks_tflops=None))
    assert any("unknown for this GPU" in line for line in lines)


def test_layouts_are_views_of_row_major_storage():
    a, b_nk = torch.randn(8, 16), torch.randn(12, 16)
    for layout in matmul.LAYOUTS:
        av, bv = matmul.arrange(layout, a, b_nk)
        torch.testing.assert_close(av @ bv, a @ b_nk.t())
    av, bv = matmul.arrange("Aᵀ@B", a, b_nk)
    assert av.stride() == (1, 8) and bv.stride() == (12, 1)
    assert matmul.arrange("A@Bᵀ", a, b_nk)[1].stride() == (1, 16)


# W4A16 feeds bf16 to tl.dot: wrong in the interpreter; the peers' kernels where their library imports (bitsandbytes
# is a test dependency; torchao is not)
CPU_KERNELS = [k for k in matmul.default_kernels() if "W4A16" not in k]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU tensors through the Triton interpreter; on a GPU the bench itself checks each kernel")
@pytest.mark.parametrize("kernel", CPU_KERNELS)
def test_each_kernel_prepares_and_checks_on_cpu(kernel, one_thread):
    gen = torch.Generator().manual_seed(0)
    a, b_nk = torch.randn(64, 64, generator=gen).bfloat16(), torch.randn(64, 64, generator=gen).bfloat16()
    ref = a.float() @ b_nk.float().t()
    for layout in matmul.LAYOUTS:
        try:
            fn, to_float = matmul.prepare(kernel, layout, a, b_nk)
            got = to_float(fn())
        except NotImplementedError:  # bitsandbytes' int8 matmul takes A@Bᵀ only, and says so
            assert kernel.startswith("bitsandbytes") and layout != "A@Bᵀ"
            continue
        except RuntimeError:  # _scaled_mm on CPU may refuse a layout, as on the GPU
            assert kernel.startswith("cuBLAS FP8") and layout != "A@Bᵀ"
            continue
        err = ((got - ref).norm() / ref.norm()).item()
        assert err < (0.08 if "FP8" in kernel else 0.02), (layout, err)


def test_w4a16_is_a_bt_only():
    with pytest.raises(NotImplementedError):
        matmul.prepare("lowbit W4A16 g128 (Triton)", "A@B", torch.randn(4, 128), torch.randn(8, 128))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cli_fails_clearly_without_cuda(capsys):
    assert main(["bench", "matmul", "--sizes", "64"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
