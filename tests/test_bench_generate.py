"""`lowbit bench generate` on a tiny Llama: the static-cache greedy loop equals HF's own greedy
generate, the bench writes its three files, bad arguments fail clearly. GPU tests check that
every scheme's decode step is captured as a CUDA graph and replays to the eager tokens."""

import json

import pytest
import torch

from lowbit.bench import generate
from lowbit.cli import main

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _prompt(batch, length, vocab=256, seed=1):
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_static_loop_equals_hf_greedy_generate(one_thread):
    model = generate.build_model("tiny", torch.device("cpu"), torch.float32, seed=0)
    prompt = _prompt(2, 12)
    ours = generate.greedy_generate(model, prompt, new_tokens=10)
    model.generation_config.eos_token_id = None  # random weights may emit the EOS id: HF must not stop early
    ref = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=10, min_new_tokens=10, pad_token_id=0)
    assert torch.equal(ours, ref[:, prompt.shape[1]:])


def test_compiled_decoder_layers_decode_the_eager_tokens(one_thread):
    """`compile=True` compiles each decoder layer for the decode step (prefill stays eager): same tokens."""
    model = generate.build_model("tiny", torch.device("cpu"), torch.float32, seed=0)
    prompt = _prompt(1, 12)
    eager = generate.greedy_generate(model, prompt, new_tokens=8)
    gen = generate.StaticGenerator(model, 1, 12, 8, compile=True)
    assert "compiled" in gen.mode and all(layer._compiled_call_impl is not None for layer in model.model.layers)
    gen.warmup(prompt)
    assert torch.equal(gen.generate(prompt)[0], eager)


def test_compile_needs_decoder_layers():
    with pytest.raises(ValueError, match="list of decoder layers"):
        generate._decoder_layers(torch.nn.Sequential(torch.nn.Linear(4, 4)))


def test_random_models_are_reproducible(one_thread):
    a = generate.build_model("tiny", torch.device("cpu"), torch.bfloat16, seed=3)
    b = generate.build_model("tiny", torch.device("cpu"), torch.bfloat16, seed=3)
    assert next(a.parameters()).dtype == torch.bfloat16
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_bench_end_to_end_writes_results_report_and_png(tmp_path, one_thread, capsys):
    out = tmp_path / "gen"
    code = main(["bench", "generate", "--models", "tiny", "--schemes", "w8a16", "bf16", "--device", "cpu",
                 "--prompt-len", "8", "--new-tokens", "4", "--batch", "2", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    rows = {r["scheme"]: r for r in result["rows"]}
    assert [r["scheme"] for r in result["rows"]] == ["bf16", "w8a16"]  # the baseline runs first
    for r in rows.values():
        assert r["tokens_per_s"] > 0 and r["s_per_item"] > 0 and r["prefill_ms"] > 0
        assert r["nonfinite_logits"] == 0 and r["model_bytes"] > 0 and r["decode"] == "eager"
    assert rows["w8a16"]["model_bytes"] < rows["bf16"]["model_bytes"]
    assert 0.0 <= rows["w8a16"]["agree_frac"] <= 1.0 and rows["bf16"]["speedup_vs_bf16"] == 1.0
    assert result["settings"]["new_tokens"] == 4 and result["env"]["transformers"]
    report = (out / "report.md").read_text()
    assert "seconds per item" in report and "W8A16" in report and "bench generate" in report
    assert (out / "tokens_per_s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny" in capsys.readouterr().out


def test_bad_scheme_lists_the_valid_ones(capsys):
    assert main(["bench", "generate", "--models", "tiny", "--device", "cpu", "--schemes", "bf16", "int3"]) == 2
    err = capsys.readouterr().err
    assert "'int3'" in err and all(name in err for name in ("bf16", "w4a16-g128", "nf4", "w8a8-int8", "fp8"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_without_cuda_says_so():
    with pytest.raises(ValueError, match="--device cpu"):
        generate.run(models=["tiny"], schemes=["bf16"])
    with pytest.raises(ValueError, match="GPU"):
        generate.run(models=["7b"], schemes=["bf16"], device="cpu")


def _cuda_model():
    """The tiny Llama at hidden 128, so that every scheme (W4A16 g128 too) applies."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(**{**generate.LLAMA2, **generate.MODELS["tiny"], "hidden_size": 128, "intermediate_size": 256})
    torch.manual_seed(0)
    with torch.device("cuda"):
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()


@cuda
@pytest.mark.parametrize("scheme", list(generate.SCHEMES))
def test_decode_step_is_a_cuda_graph_and_replays_the_eager_tokens(scheme):
    model = generate.quantize_model(_cuda_model(), generate.SCHEMES[scheme])
    prompt = _prompt(2, 16)
    eager = generate.greedy_generate(model, prompt, 12, graph=False)
    gen = generate.StaticGenerator(model, 2, 16, 12, graph=True)
    gen.warmup(prompt)
    assert gen.mode == "graph"  # no host sync in the step: it was captured
    first, _ = gen.generate(prompt)
    second, _ = gen.generate(prompt)  # the cache and the counters reset between generates
    assert torch.equal(first, second) and int(gen.nonfinite) == 0
    # the same kernels replayed: equal tokens (a library may pick another cuBLAS algorithm under capture, so
    # allow a late flip of a near-tie rather than demand bit-equal logits)
    assert torch.equal(first.cpu()[:, :4], eager[:, :4]) and (first.cpu() == eager).float().mean() >= 0.5


@cuda
@pytest.mark.parametrize("scheme", ["bf16", "w4a16-g128"])
def test_compiled_decode_step_is_a_cuda_graph_and_replays_the_eager_tokens(scheme):
    """The bench's default on CUDA: decoder layers compiled, the compiled step captured as one graph."""
    model = generate.quantize_model(_cuda_model(), generate.SCHEMES[scheme])
    prompt = _prompt(1, 16)
    eager = generate.greedy_generate(model, prompt, 12, graph=False)
    gen = generate.StaticGenerator(model, 1, 16, 12, graph=True, compile=True)
    gen.warmup(prompt)
    assert gen.mode == "graph (layers compiled)"
    tokens, _ = gen.generate(prompt)
    assert torch.equal(tokens.cpu()[:, :4], eager[:, :4]) and int(gen.nonfinite) == 0


@cuda
def test_bench_runs_on_the_gpu(tmp_path):
    result = generate.run(models=["tiny"], schemes=["bf16", "w8a8-int8"], prompt_len=16, new_tokens=8, out=str(tmp_path))
    rows = result["rows"]
    # the bench's default on CUDA: decoder layers compiled, the step captured as one graph
    assert all(r["decode"] == "graph (layers compiled)" and r["peak_bytes"] >= r["model_bytes"] > 0 for r in rows)
    assert result["env"]["gpu"] and (tmp_path / "report.md").is_file()


def test_bench_defaults_to_lowbit_attention_and_fused_projections_and_says_so(tmp_path, one_thread):
    """The defaults (lowbit's decode attention, q/k/v and gate/up fused), and the switches back, spelled out in the
    command that reproduces the run and in the report; an unknown attention is refused."""
    args = ["bench", "generate", "--models", "tiny", "--schemes", "bf16", "--device", "cpu", "--prompt-len", "8", "--new-tokens", "4"]
    for extra, attention, fuse in [([], "lowbit", True), (["--attention", "sdpa", "--no-fuse"], "sdpa", False)]:
        out = tmp_path / attention
        assert main(args + extra + ["--out", str(out)]) == 0
        result = json.loads((out / "results.json").read_text())
        assert result["settings"]["attention"] == attention and f"--attention {attention}" in result["command"]
        assert result["settings"]["fuse"] is fuse and ("--no-fuse" in result["command"]) is not fuse
        assert result["rows"][0]["fused_groups"] == (4 if fuse else 0)  # tiny: two layers, attention and MLP each
        report = (out / "report.md").read_text()
        assert f"attention: {attention}" in report and f"q/k/v and gate/up fused: {fuse}" in report
    with pytest.raises(ValueError, match="attention must be one of lowbit, sdpa"):
        generate.run(models=["tiny"], schemes=["bf16"], device="cpu", attention="flash")
