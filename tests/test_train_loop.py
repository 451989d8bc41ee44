"""The training loop: schedule, every precision learns, exact resume, faults, checkpoints, CLI, bench smoke."""

import json
import math

import numpy as np
import pytest
import torch

from lowbit.data.prepare import tokenize_corpus
from lowbit.data.shards import write_shards
from lowbit.train import PRECISION_NAMES
from lowbit.train import QuantTrainLinear, loop
from lowbit.train.loop import TrainConfig, lr_at, read_checkpoint, train

VOCAB = 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A repetitive synthetic corpus: a seeded 50-token pattern, learnable in a few dozen steps."""
    path = tmp_path_factory.mktemp("shards")
    pattern = np.random.default_rng(0).integers(0, VOCAB, size=50)
    write_shards(np.tile(pattern, 400), path, "train", 5000, vocab_size=VOCAB)
    write_shards(np.tile(pattern, 20), path, "val", 5000, vocab_size=VOCAB)
    return path


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def cfg(data_dir, out, **kw):
    base = dict(data=str(data_dir), out=str(out), preset="tiny", steps=8, batch_size=4, seq_len=32, lr=3e-3, warmup=2,
                log_every=1, eval_every=4, eval_batches=2, progress=False, plot=False)
    return TrainConfig(**{**base, **kw})


def test_schedule_matches_the_formula():
    lr, warmup, steps, floor = 1e-3, 10, 110, 1e-4
    assert lr_at(0, lr, warmup, steps, floor) == pytest.approx(1e-4)
    assert lr_at(4, lr, warmup, steps, floor) == pytest.approx(5e-4)
    assert lr_at(9, lr, warmup, steps, floor) == pytest.approx(1e-3)
    assert lr_at(10, lr, warmup, steps, floor) == pytest.approx(1e-3)
    assert lr_at(60, lr, warmup, steps, floor) == pytest.approx(floor + 0.5 * (lr - floor))  # halfway down the cosine
    assert lr_at(35, lr, warmup, steps, floor) == pytest.approx(floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * 0.25)))
    assert lr_at(110, lr, warmup, steps, floor) == pytest.approx(floor)
    assert lr_at(500, lr, warmup, steps, floor) == pytest.approx(floor)
    assert lr_at(0, lr, 0, steps, floor) == pytest.approx(lr)


@pytest.mark.parametrize("precision", PRECISION_NAMES)
def test_every_precision_lowers_validation_loss(data_dir, tmp_path, precision):
    s = train(cfg(data_dir, tmp_path, precision=precision, steps=24, eval_every=4, log_every=4, plot=precision == "int8"))
    first, last = s["val_losses"][0][1], s["final_val_loss"]
    assert last < first - 0.5 and last < math.log(VOCAB) - 1.5, s["val_losses"]
    assert (tmp_path / "checkpoint.safetensors").is_file()
    assert (tmp_path / "loss.png").is_file() == (precision == "int8")
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [4, 8, 12, 16, 20, 24]
    assert logged[0]["tokens_per_s"] > 0 and logged[0]["peak_memory_mb"] is None  # CPU: n/a


@pytest.fixture(scope="module")
def shakespeare_dir(tmp_path_factory, tiny_tokenizer_dir):
    """The embedded corpus as `lowbit tokenize shakespeare` writes it (held-out plays as val)."""
    path = tmp_path_factory.mktemp("shakespeare")
    tokenize_corpus("shakespeare", path, tokenizer=str(tiny_tokenizer_dir), progress=False)
    return path


@pytest.mark.parametrize("precision", PRECISION_NAMES)
def test_every_precision_lowers_validation_loss_on_the_embedded_corpus(shakespeare_dir, tmp_path, precision):
    """Real text, held-out plays, a 300-token vocabulary: a fresh model starts near a uniform guess,
    ln 300 ≈ 5.70 nats; 30 steps of the tiny model must take the validation loss more than a nat
    below it (4.3 measured for every precision) and keep it falling between evaluations."""
    s = train(cfg(shakespeare_dir, tmp_path, precision=precision, steps=30, eval_every=10, log_every=10))
    losses = [v for _, v in s["val_losses"]]
    assert s["final_val_loss"] < math.log(300) - 1.0, s["val_losses"]
    assert losses == sorted(losses, reverse=True), s["val_losses"]


class _Interrupt(Exception):
    pass


def _hook_loss(monkeypatch, at_call, action):
    """Wrap next_token_loss: on the at_call-th training call (1-based; eval calls not counted) do `action`."""
    real, calls = loop.next_token_loss, [0]

    def hooked(model, x, y):
        loss = real(model, x, y)
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] == at_call:
                return action(loss)
        return loss

    monkeypatch.setattr(loop, "next_token_loss", hooked)


def _raise(loss):
    raise _Interrupt


@pytest.mark.parametrize("precision,sr", [("bf16", False), ("int8", True), ("int8-weight", False)])
def test_resume_gives_exactly_the_same_losses(data_dir, tmp_path, monkeypatch, precision, sr):
    kw = dict(precision=precision, stochastic_rounding=sr, steps=8, save_every=3, grad_accum=2)
    whole = train(cfg(data_dir, tmp_path / "whole", **kw))
    _hook_loss(monkeypatch, 2 * 5 + 1, _raise)  # dies in step 6 (2 micro-batches a step); last checkpoint: step 3
    with pytest.raises(_Interrupt):
        train(cfg(data_dir, tmp_path / "cut", **kw))
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")[1]["step"] == 3
    resumed = train(cfg(data_dir, tmp_path / "cut", resume=True, **kw))
    assert resumed["train_losses"] == whole["train_losses"][3:]  # floats, exactly equal
    assert resumed["val_losses"] == whole["val_losses"]
    assert [r["step"] for r in map(json.loads, (tmp_path / "cut" / "log.jsonl").read_text().splitlines()) if "loss" in r] == \
        list(range(1, 9))  # the log of the lost steps 4-5 was dropped, then rewritten


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    _hook_loss(monkeypatch, 5, lambda loss: loss * float("nan"))
    with pytest.raises(FloatingPointError, match="at step 5"):
        train(cfg(data_dir, tmp_path, steps=8, save_every=2, log_every=3))
    tensors, meta = read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["step"] == 4 and all(torch.isfinite(t.float()).all() for k, t in tensors.items() if k.startswith("model."))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_checkpoint_of_another_model_or_precision_is_refused(data_dir, tmp_path):
    train(cfg(data_dir, tmp_path, steps=2, eval_every=2))
    with pytest.raises(ValueError, match=r"precision is 'bf16'.*'int8'"):
        train(cfg(data_dir, tmp_path, steps=4, precision="int8", resume=True))
    with pytest.raises(ValueError, match=r"model config.*llama 2x64.*gpt2 2x64"):
        train(cfg(data_dir, tmp_path, steps=4, preset="tiny-gpt2", resume=True))
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(cfg(data_dir, tmp_path, steps=4))


def test_unknown_precision_lists_the_valid_ones(data_dir, tmp_path):
    with pytest.raises(ValueError) as e:
        cfg(data_dir, tmp_path, precision="int4")
    assert all(name in str(e.value) for name in PRECISION_NAMES)


def test_checkpoint_write_is_atomic(data_dir, tmp_path, monkeypatch):
    train(cfg(data_dir, tmp_path, steps=2, eval_every=2))
    path = tmp_path / "checkpoint.safetensors"
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(loop.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        train(cfg(data_dir, tmp_path, steps=4, eval_every=2, resume=True))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "checkpoint.safetensors", "log.jsonl", "summary.json"]


def test_gpt2_accumulation_checkpointing_and_bf16_autocast_run(data_dir, tmp_path):
    s = train(cfg(data_dir, tmp_path, preset="tiny-gpt2", precision="fp8-tensorwise", grad_accum=2, checkpointing=True,
                  autocast="bf16", steps=4, eval_every=4))
    assert math.isfinite(s["final_val_loss"]) and s["tokens_per_step"] == 2 * 4 * 32
    tensors, meta = read_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["aliases"] == {"lm_head.weight": "transformer.wte.weight"}  # the tied weight stored once
    assert meta["data_position"] == 8 and meta["precision"] == "fp8-tensorwise" and "rng.cpu" in tensors


def test_cli_tokenize_train_and_bench(tmp_path, capsys):
    from lowbit.cli import main
    from lowbit.data.shakespeare import train_text
    from lowbit.data.tokenizer import train_bpe_tokenizer

    train_bpe_tokenizer(train_text()[:20_000], 300).save_pretrained(tmp_path / "tok")
    (tmp_path / "corpus.txt").write_text(train_text()[:40_000])
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["tokenize", str(tmp_path / "corpus.txt"), "--out", str(data), "--tokenizer", str(tmp_path / "tok")]) == 0
    args = ["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--precision", "int8", "--batch-size", "4",
            "--seq-len", "32", "--steps", "4", "--warmup", "1", "--log-every", "2", "--eval-every", "2", "--eval-batches", "1",
            "--save-every", "2", "--device", "cpu"]
    assert main(args) == 0
    assert main([*args[:-6], "--steps", "6", "--save-every", "2", "--device", "cpu", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "6 steps" in out and "peak memory n/a" in out
    assert {"log.jsonl", "loss.png", "checkpoint.safetensors", "checkpoint.json", "summary.json"} <= {p.name for p in run.iterdir()}
    assert main([*args[:-6], "--steps", "6", "--resume", "--precision", "fp8-rowwise"]) == 2  # refused, cleanly
    assert "does not match" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", str(data), "--out", str(run), "--precision", "int4"])
    bench = tmp_path / "bench"
    assert main(["bench", "train", "--preset", "tiny", "--batch-size", "2", "--seq-len", "32", "--steps", "2", "--warmup-steps", "1",
                 "--no-compile", "--data", str(data), "--conv-steps", "2", "--device", "cpu", "--out", str(bench)]) == 0
    result = json.loads((bench / "results.json").read_text())
    assert [r["precision"] for r in result["throughput"]] == list(PRECISION_NAMES)
    assert all(r["tokens_per_s"] > 0 and r["batch_size"] == 2 for r in result["throughput"])
    assert [r["precision"] for r in result["convergence"]] == ["bf16", "int8", "fp8-rowwise"]
    report = (bench / "report.md").read_text()
    assert (bench / "loss_curves.png").is_file() and "| int8-weight |" in report
    val = {r["precision"]: r["final_val_loss"] for r in result["convergence"]}
    assert f"| int8 | {val['int8']:.4f} | {100 * (val['int8'] / val['bf16'] - 1):+.2f} % |" in report  # the gap to bf16


def test_continues_training_a_saved_hf_model(data_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lowbit.data.tokenizer import train_bpe_tokenizer

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                                 vocab_size=VOCAB)).save_pretrained(tmp_path / "hf")
    train_bpe_tokenizer("a tiny text for a tiny tokenizer\n" * 20, 260).save_pretrained(tmp_path / "hf")  # load_causal_lm wants one
    s = train(cfg(data_dir, tmp_path / "run", model=str(tmp_path / "hf"), precision="int8-fwd", steps=2, eval_every=2))
    assert s["model"] == f"llama 1x32 vocab {VOCAB}" and math.isfinite(s["final_val_loss"])


def test_warmup_longer_than_the_run_warns(data_dir, tmp_path):
    with pytest.warns(UserWarning, match=r"warmup \(50\) >= steps \(30\)"):
        TrainConfig(data=str(data_dir), out=str(tmp_path), steps=30, warmup=50)


def test_compile_blocks_compiles_each_decoder_layer_and_keeps_the_numbers():
    """`--compile` compiles the repeated blocks one by one (one graph shared by identical blocks), not
    the model: the returned module is the model itself (state dict names unchanged), every decoder
    layer is compiled, and the logits equal eager ones."""
    cfg = TrainConfig(data="", out="unused", preset="tiny", device="cpu")
    model = loop.build_model(cfg, 64).eval()
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model(ids).logits
        compiled_model = loop.compile_blocks(model)
        assert compiled_model is model
        assert all(layer._compiled_call_impl is not None for layer in model.model.layers)
        torch.testing.assert_close(compiled_model(ids).logits, eager, rtol=1e-4, atol=1e-4)


def test_cuda_graphs_are_used_only_where_they_can_run():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    base = TrainConfig(data="", out="unused", compile=True)
    assert loop.use_cuda_graphs(base, gpu)
    assert not loop.use_cuda_graphs(base, cpu)
    assert not loop.use_cuda_graphs(TrainConfig(data="", out="unused", compile=False), gpu)
    assert not loop.use_cuda_graphs(TrainConfig(data="", out="unused", compile=True, checkpointing=True), gpu)
    assert not loop.use_cuda_graphs(TrainConfig(data="", out="unused", compile=True, cuda_graphs=False), gpu)
    assert not loop.use_cuda_graphs(TrainConfig(data="", out="unused", compile=True, grad_accum=2), gpu)
    assert loop.cuda_graphs_blocker(base) is None
    assert "accumulation" in loop.cuda_graphs_blocker(TrainConfig(data="", out="unused", grad_accum=2))
    assert "checkpointing" in loop.cuda_graphs_blocker(TrainConfig(data="", out="unused", checkpointing=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", PRECISION_NAMES)
def test_cuda_graphs_train_as_the_kernels_launched_one_by_one(data_dir, tmp_path, precision):
    """Compiled blocks replayed as CUDA graphs (the default on CUDA) against the same blocks launched kernel by kernel:
    the same losses to 0.2 %, evaluation between steps included: the kernels are the same, and only a reduction's
    order (cuDNN's attention backward) may differ between runs (H200, session 15: equal to the 5th digit). A graph
    replaying stale inputs or overwriting an output still in use gives other numbers, or the graph trees' error (as
    gradient accumulation did: with it the blocks launch one by one, checked here to run)."""
    runs = {}
    for graphs in (False, True):
        s = train(cfg(data_dir, tmp_path / str(graphs), precision=precision, steps=6, eval_every=3, log_every=1,
                      compile=True, cuda_graphs=graphs, device="cuda"))
        runs[graphs] = [v for _, v in s["train_losses"]] + [v for _, v in s["val_losses"]]
    assert runs[True] == pytest.approx(runs[False], rel=2e-3), runs
    assert runs[True][5] < runs[True][0]
    accumulated = train(cfg(data_dir, tmp_path / "accum", precision=precision, steps=3, grad_accum=2, compile=True, device="cuda"))
    assert all(math.isfinite(v) for _, v in accumulated["train_losses"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_redraw_stochastic_rounding_every_replay():
    """The training quantization's stochastic rounding inside a CUDA graph draws a fresh seed at every replay (torch's
    generator on the device is graph-safe): two replays round differently, each code still the floor or the ceiling."""
    from lowbit.train.linear import _codes_op

    x = torch.randn(256, 512, device="cuda", dtype=torch.bfloat16)
    _codes_op(x, "int8", True)  # compiles the kernels outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        q, s, _, _ = _codes_op(x, "int8", True)
    replays = []
    for _ in range(2):
        graph.replay()
        replays.append(q.clone())
    y = x.double() / s.double()[:, None]
    for r in replays:
        assert ((r.double() == y.floor()) | (r.double() == y.ceil())).all()
    assert (replays[0] != replays[1]).float().mean() > 0.1


@pytest.mark.parametrize("precision", PRECISION_NAMES)
def test_every_precision_compiles_a_decoder_block_as_one_graph(precision):
    """`compile_blocks` compiles block by block; a graph break inside a block (a side effect, a host sync)
    would run the rest of it eagerly, op by op: none in any precision."""
    import torch._dynamo as dynamo

    from lowbit.train import convert
    from tiny_models import tiny_llama

    model = tiny_llama()
    convert(model, precision=precision)
    block = model.model.layers[0]
    x = torch.randn(2, 8, model.config.hidden_size, requires_grad=True)
    pos = model.model.rotary_emb(x, torch.arange(8)[None])
    dynamo.reset()
    explained = dynamo.explain(block)(x, position_embeddings=pos, attention_mask=None)
    assert explained.graph_break_count == 0, [b.reason.splitlines()[0] for b in explained.break_reasons]


def test_training_peers_are_validated_before_anything_runs(monkeypatch, tmp_path):
    from lowbit.bench import peers
    from lowbit.bench import train as bench_train

    with pytest.raises(ValueError, match="unknown training peer 'torchao-fp4'; valid: torchao-float8-rowwise"):
        bench_train.run(preset="tiny", precisions=["bf16"], peer_names=["torchao-fp4"], device="cpu", out=tmp_path)
    monkeypatch.setattr(peers, "importable", lambda peer: False)
    with pytest.raises(ValueError, match="needs torchao, which is not installed"):
        bench_train.run(preset="tiny", precisions=["bf16"], peer_names=["torchao-int8-mp"], device="cpu", out=tmp_path)
    with pytest.raises(ValueError, match="unknown training peer"):
        peers.convert_for_training(torch.nn.Linear(4, 4), "torchao-int4")


@pytest.mark.parametrize("precision", ["fp8-rowwise", "fp8-tensorwise"])
def test_fp8_is_refused_on_a_gpu_without_fp8_matmuls(monkeypatch, precision):
    """An A100 (compute capability 8.0) has no FP8 matmuls (cuBLAS failed at the first step): the loop refuses,
    naming the precision and what to use instead, before it converts or moves anything."""
    monkeypatch.setattr(loop, "fp8_gpu", lambda device: False)
    cfg = TrainConfig(data="", out="unused", preset="tiny", precision=precision)
    model = loop.build_model(cfg, 64)
    with pytest.raises(ValueError, match=rf"{precision}.*FP8 matmuls.*int8 or bf16"):
        loop.prepare_model(model, cfg, torch.device("cuda"))
    assert all(type(m) is not QuantTrainLinear for m in model.modules())  # nothing converted


def test_bench_train_steps_down_from_graphs_to_launches_to_eager_and_says_so(monkeypatch):
    """A row whose CUDA graphs fail is timed compiled without them, one whose compile fails eagerly, and an OOM halves
    the batch instead; each row says how it ran."""
    from lowbit.bench import train as bench_train

    def fake(fails):
        def time_one(cfg, batch, *args):
            if (cfg.compile, cfg.cuda_graphs, batch) in fails:
                raise fails[(cfg.compile, cfg.cuda_graphs, batch)]
            return {"batch_size": batch, "cuda_graphs": cfg.cuda_graphs, "tokens_per_s": 1.0}
        return time_one

    base = TrainConfig(data="", out="unused", compile=True, batch_size=8)
    cases = [({(True, True, 8): RuntimeError("capture")}, True, False, 8),
             ({(True, True, 8): RuntimeError("capture"), (True, False, 8): RuntimeError("inductor")}, False, False, 8),
             ({(True, True, 8): torch.OutOfMemoryError("CUDA out of memory")}, True, True, 4)]
    for fails, compiled, graphs, batch in cases:
        monkeypatch.setattr(bench_train, "_time_one", fake(fails))
        row = bench_train.throughput("int8", base, 1, 0, 64, torch.device("cpu"))
        assert (row["compiled"], row["cuda_graphs"], row["batch_size"]) == (compiled, graphs, batch), row
        assert ("compile_error" in row) == (batch == 8), row
    every_mode = [(True, True), (True, False), (False, False)]
    monkeypatch.setattr(bench_train, "_time_one", fake({(m, g, 8): RuntimeError("x") for m, g in every_mode}))
    assert "error" in bench_train.throughput("int8", base, 1, 0, 64, torch.device("cpu"))
    rows = [{"compiled": True, "cuda_graphs": True}, {"compiled": True, "cuda_graphs": False, "compile_error": "capture"},
            {"compiled": False}]
    assert [bench_train._compiled(r, {"compile": True, "cuda_graphs": True}) for r in rows] == [
        "yes, CUDA graphs", "yes (graphs failed)", "no (failed)"]
