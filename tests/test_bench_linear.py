"""`lowbit bench linear` off the GPU: its report (table, peers, eager and failed rows, the plot) from a
result dict, the refusal of unknown peers, and the peers module's own checks. The timing itself
needs CUDA (tests/test_gpu.py and the committed H100 runs)."""

import pytest
import torch

from lowbit.bench import linear, peers
from lowbit.cli import main


def fake_result():
    rows = []
    for scheme, peer, speed in [("bf16", False, 1.0), ("W4A16 g128 (Triton)", False, 2.0), (peers.PEERS["torchao-int4"], True, 1.5)]:
        for m in (1, 16):
            ms = 0.2 / speed
            rows.append({"scheme": scheme, "M": m, "peer": peer, "ms": ms, "rel_err": 1e-3, "timing": "cuda graph",
                         "weight_bytes": 10**8, "GB_s": 500.0, "speedup_vs_bf16": speed})
    rows.append({"scheme": peers.PEERS["bnb-int8"], "M": 1, "peer": True, "ms": 2.0, "rel_err": 2e-2, "timing": "eager (RuntimeError)",
                 "weight_bytes": 10**8, "GB_s": 50.0, "speedup_vs_bf16": 0.1})
    rows.append({"scheme": peers.PEERS["bnb-int8"], "M": 16, "peer": True, "ms": 2.0, "rel_err": 2e-2, "timing": "eager (RuntimeError)",
                 "weight_bytes": 10**8, "GB_s": 50.0, "speedup_vs_bf16": 0.1})
    rows += [{"scheme": peers.PEERS["torchao-fp8"], "M": m, "peer": True, "error": "NotImplementedError: no FP8 here"} for m in (1, 16)]
    return {"gpu": "Fake GPU", "torch": "2.x", "triton": "3.x", "command": "lowbit bench linear", "copy_bandwidth_GB_s": 3000.0, "rows": rows}


def test_report_names_peers_eager_timing_and_failures(tmp_path):
    result = fake_result()
    lines = linear.format_table(result)
    table = "\n".join(lines)
    assert "| W4A16 g128 (Triton) | 0.100 (2.00x, 500) | 0.100 (2.00x, 500) | 1.0e-03 |" in table
    assert f"| {peers.PEERS['torchao-int4']} (peer) | 0.133 (1.50x, 500)" in table
    assert f"| {peers.PEERS['bnb-int8']} (peer) | 2.000 (0.10x, 50) eager |" in table
    assert f"| {peers.PEERS['torchao-fp8']} (peer) | failed: NotImplementedError: no FP8 here |" in table
    linear.write_report(result, tmp_path / "out")
    assert (tmp_path / "out" / "speedup.png").stat().st_size > 10_000
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Command: `lowbit bench linear`" in report and table in report and "![speedup.png](speedup.png)" in report


def test_unknown_peers_are_refused_before_anything_runs(capsys):
    with pytest.raises(ValueError, match="unknown peer scheme 'torchao-int2'; valid: bnb-nf4"):
        linear.run(peer_names=["torchao-int2"])
    with pytest.raises(ValueError, match="unknown peer scheme"):
        peers.quantize(torch.nn.Linear(4, 4), "bnb-int3", [""])
    if not torch.cuda.is_available():
        assert main(["bench", "linear", "--peers", "bnb-nf4"]) == 2  # the CLI: a clear error, no traceback
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_peers_know_their_libraries():
    assert {peers.library(p) for p in peers.PEERS} == {"bitsandbytes", "torchao"}
    assert all(isinstance(peers.importable(p), bool) for p in peers.PEERS)



def test_outlier_feature_columns_are_planted_in_every_row():
    x = linear.activations(33, 512, 7, torch.Generator().manual_seed(1), device="cpu")
    big = (x.float().abs() > 15).all(0)
    assert x.dtype == torch.bfloat16 and int(big.sum()) == 7
    assert x.float()[:, ~big].abs().max() < 8  # the rest N(0, 1)
    plain = linear.activations(33, 512, 0, torch.Generator().manual_seed(1), device="cpu")
    assert torch.equal(plain, torch.randn(33, 512, generator=torch.Generator().manual_seed(1), dtype=torch.bfloat16))


def test_outlier_cols_are_checked_and_reported():
    for bad in (-1, 4097):
        with pytest.raises(ValueError, match="outlier_cols must be between 0 and"):
            linear.run(outlier_cols=bad)
    result = {**fake_result(), "outlier_cols": 8}
    assert "; 8 outlier feature columns (±20) in every input" in linear.format_table(result)[0]
    assert "outlier" not in linear.format_table(fake_result())[0]


def test_llm_int8_finds_exactly_the_planted_outlier_columns():
    from lowbit.methods import LLMInt8

    x = linear.activations(40, 256, 5, torch.Generator().manual_seed(2), device="cpu")
    layer = LLMInt8().layer(torch.randn(32, 256) * 0.02, None)
    planted = (x.float().abs() > 15).all(0).nonzero().flatten()
    assert torch.equal(layer.outlier_columns(x), planted) and planted.numel() == 5


def test_the_act_order_scheme_builds_gptq_act_order_storage(one_thread):
    """bench linear's act-order row: a real GPTQ act-order layer (columns stored in group order, not their own)."""
    from lowbit.bench.linear import SCHEMES, ActOrderGPTQ

    assert isinstance(SCHEMES["W4A16 g128 act-order (Triton)"], ActOrderGPTQ)
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(3))
    layer = ActOrderGPTQ().layer(w, None)
    assert layer.act_order and not torch.equal(layer.perm, torch.arange(512, dtype=torch.int32))
    x = torch.randn(5, 512)
    want = x.double() @ layer.dequantize_weight(torch.float64).t()
    assert ((layer(x).double() - want).norm() / want.norm()).item() < 1e-6
    # codes of w itself: a diagonal Hessian propagates no error, so each weight is rounded to the nearest step of its group
    step = layer.scale[:, layer.g_idx.long()]
    assert ((layer.dequantize_weight() - w).abs() <= 0.5 * step * (1 + 1e-5)).all()
