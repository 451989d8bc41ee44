"""The `lowbit` command: parse arguments, call the library, print. Nothing here that Python
users cannot call themselves."""

from __future__ import annotations

import argparse
import logging
import sys
import time

DTYPES = ["float32", "bfloat16", "float16"]
# CLI flag -> method option; only the flags a user gives are passed, and a method refuses the ones it does not take
METHOD_FLAGS = {
    "bits": "bits", "group_size": "group_size", "act_order": "act_order", "static_groups": "static_groups",
    "symmetric": "symmetric", "granularity": "granularity", "alpha": "alpha", "level": "level",
    "threshold": "threshold", "block_size": "block_size", "double_quant": "double_quant", "fmt": "fmt",
}


def _dtype(name: str):
    import torch

    return getattr(torch, name)


def _study_selective(args: argparse.Namespace) -> int:
    from .studies import selective

    rows, out_dir = selective.run(
        args.model, device=args.device, out=args.out, n_windows=args.windows, seq_len=args.seq_len,
        batch_size=args.batch_size, dtype=_dtype(args.dtype),
    )
    selective.print_table(rows)
    print(f"\nwrote {out_dir}/results.json, report.md, memory_vs_loss.png")
    return 0


def _study_ptq(args: argparse.Namespace) -> int:
    from .studies import ptq

    sections, out_dir = ptq.run(
        args.model, device=args.device, out=args.out, n_windows=args.windows, seq_len=args.seq_len,
        batch_size=args.batch_size, calib_n=args.calib_n, calib_len=args.calib_len, group_size=args.group_size,
        dtype=_dtype(args.dtype),
    )
    ptq.print_tables(sections)
    print(f"\nwrote {out_dir}/results.json, report.md, memory_vs_loss.png")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    import torch

    from . import api
    from .data.calibration import calibration_windows
    from .data.shakespeare import train_text
    from .methods import build
    from .models.fuse import fuse_projections
    from .models.hf import load_causal_lm
    from .studies.common import context_length

    options = {opt: getattr(args, flag) for flag, opt in METHOD_FLAGS.items() if getattr(args, flag) is not None}
    method = build(args.method, **options)
    model, tokenizer, _ = load_causal_lm(args.model, device="cpu" if args.offload else args.device or _default_device(), dtype=_dtype(args.dtype))
    if args.fuse_projections:
        print(f"fused {fuse_projections(model)} groups of projections (q/k/v, gate/up) into one linear each")
    calibration = None
    if getattr(method, "needs_calibration", False):
        calib_len = min(args.calib_len, context_length(model))
        calibration = calibration_windows(tokenizer, train_text(), args.calib_n, calib_len, seed=args.seed)
    start = time.perf_counter()
    api.quantize(model, method, args.select, calibration=calibration, progress=True, device=args.device or _default_device())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    api.save(model, args.out, tokenizer=tokenizer)
    print(f"quantized {len(api.quantized_layers(model))} layers with {method!r} in {seconds:.1f} s; wrote {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from . import api
    from .data.shakespeare import validation_text
    from .data.windows import token_windows
    from .measure import evaluate, model_bytes, peak_forward_bytes
    from .studies.common import context_length

    device = args.device or _default_device()
    model = api.load(args.dir, device=device)
    tokenizer = AutoTokenizer.from_pretrained(args.dir)
    windows = token_windows(tokenizer, validation_text(), min(args.seq_len, context_length(model)), args.windows)
    peak = peak_forward_bytes(model, windows[: args.batch_size].to(device))
    ev = evaluate(model, windows, args.batch_size)
    print(f"loss {ev.loss:.4f}  ppl {ev.ppl:.3f}  model {model_bytes(model) / 1e6:.2f} MB  "
          f"peak forward {peak / 1e6:.2f} MB  eval {ev.seconds:.2f} s  ({ev.tokens} tokens, {len(windows)} windows)")
    return 0


def _bench_matmul(args: argparse.Namespace) -> int:
    from .bench import matmul

    result = matmul.run(tuple(args.sizes), out=args.out)
    print("\n".join(matmul.format_table(result)))
    print(f"\nwrote {args.out}/results.json, report.md, matmul_tflops.png")
    return 0


def _bench_dispatch(args: argparse.Namespace) -> int:
    from .bench import dispatch
    from .ops import weight_only

    write_to = args.write_to or (weight_only.user_dispatch_file() if args.write else None)
    result = dispatch.run(tuple(args.kinds or dispatch.KINDS), budget_s=args.budget_s, out=args.out, write_to=write_to)
    print("\n".join(dispatch.format_table(result)))
    print(f"\nwrote {args.out}/results.json, report.md, paths.png")
    return 0


def _bench_linear(args: argparse.Namespace) -> int:
    from .bench import linear

    result = linear.run(tuple(args.m), out=args.out, peer_names=args.peers, outlier_cols=args.outlier_cols)
    print("\n".join(linear.format_table(result)))
    print(f"\nwrote {args.out}/results.json, report.md, speedup.png")
    return 0


def _bench_generate(args: argparse.Namespace) -> int:
    from .bench import generate

    result = generate.run(args.models, args.schemes, batch=args.batch, prompt_len=args.prompt_len, new_tokens=args.new_tokens,
                          device=args.device, graph=not args.no_graph, compile=args.compile, repeats=args.repeats, out=args.out, seed=args.seed,
                          command=generate.command_line(args), attention=args.attention, fuse=args.fuse,
                          norms=args.fuse_norms)
    generate.print_summary(result)
    print(f"\nwrote {args.out}/results.json, report.md, tokens_per_s.png")
    return 0


def _tokenize(args: argparse.Namespace) -> int:
    from .data.prepare import tokenize_corpus

    meta = tokenize_corpus(args.corpus, args.out, tokenizer=args.tokenizer, val_fraction=args.val_fraction,
                           shard_tokens=args.shard_tokens, progress=True)
    splits = ", ".join(f"{k} {v['tokens']:,} tokens in {len(v['shards'])} shards" for k, v in meta["splits"].items())
    print(f"wrote {args.out}: {splits} ({meta['dtype']}, vocab {meta['vocab_size']})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train.loop import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, out=args.out, preset=args.preset, model=args.model, precision=args.precision,
        stochastic_rounding=args.stochastic_rounding, select=args.select, batch_size=args.batch_size, seq_len=args.seq_len,
        grad_accum=args.grad_accum, steps=args.steps, lr=args.lr, warmup=args.warmup, min_lr=args.min_lr,
        weight_decay=args.weight_decay, clip=args.clip or None, checkpointing=args.checkpointing, compile=args.compile,
        cuda_graphs=args.cuda_graphs,
        log_every=args.log_every, eval_every=args.eval_every, eval_batches=args.eval_batches, save_every=args.save_every,
        resume=args.resume, seed=args.seed, device=args.device, dtype=args.dtype, autocast=args.autocast,
    )
    try:
        s = train(cfg)
    except FloatingPointError as e:
        print(f"lowbit: error: {e}", file=sys.stderr)
        return 1
    mem = "n/a" if s["peak_memory_bytes"] is None else f"{s['peak_memory_bytes'] / 2**30:.2f} GiB"
    print(f"{s['steps']} steps: train loss {s['final_train_loss']:.4f}, val loss {s['final_val_loss']:.4f}, "
          f"{s['tokens_per_s_median']:.0f} tokens/s, peak memory {mem}; wrote {s['run_dir']}")
    return 0


def _bench_train(args: argparse.Namespace) -> int:
    from .bench import train as bench_train

    result = bench_train.run(
        preset=args.preset, precisions=args.precisions, batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps,
        warmup=args.warmup_steps, compile=args.compile, checkpointing=args.checkpointing, cuda_graphs=args.cuda_graphs,
        data=args.data,
        conv_precisions=args.conv_precisions, conv_steps=args.conv_steps, conv_batch_size=args.conv_batch_size,
        conv_seq_len=args.conv_seq_len, conv_lr=args.conv_lr, device=args.device, out=args.out, peer_names=args.peers,
    )
    print("\n".join(bench_train.format_table(result)))
    print(f"\nwrote {args.out}/results.json, report.md" + (", loss_curves.png" if result["convergence"] else ""))
    return 0


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="HF causal LM: local dir or hub name (default: lowbit's embedded GPT-2 trained on Shakespeare)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of the float model and activations")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--windows", type=int, default=64, help="number of held-out windows (default 64)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per window (default 256, capped at the model's context)")
    p.add_argument("--batch-size", type=int, default=8)


_CUDA_GRAPHS_HELP = ("with --compile on CUDA, replay each compiled decoder layer as a CUDA graph "
                     "(not with --checkpointing or --grad-accum > 1)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .train.convert import PRECISION_NAMES
    from .train.loop import PRESETS

    p.add_argument("--data", required=True, help="token shard dir from `lowbit tokenize`")
    p.add_argument("--out", required=True, help="run dir: log.jsonl, checkpoint.safetensors, loss.png, summary.json")
    p.add_argument("--preset", default="default", choices=PRESETS, help="fresh seeded model (default: the embedded GPT-2 config)")
    p.add_argument("--model", default=None, help="or continue training a HF causal LM (dir or name; safetensors only)")
    p.add_argument("--precision", default="bf16", choices=PRECISION_NAMES)
    p.add_argument("--stochastic-rounding", action="store_true", help="stochastic rounding of the quantized gradients")
    p.add_argument("--select", default="no-lm_head", help="layers to convert (globs, presets)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50, help="linear warm-up steps")
    p.add_argument("--min-lr", type=float, default=None, help="end of the cosine decay (default lr/10)")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: off)")
    p.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True, help=_CUDA_GRAPHS_HELP)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (0: at the end only)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the run dir's checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="parameter dtype (the master copy)")
    p.add_argument("--autocast", default="auto", choices=["auto", "bf16", "none"], help="auto: bf16 on CUDA, none on CPU")


def _add_train_bench_args(p: argparse.ArgumentParser) -> None:
    from .train.convert import PRECISION_NAMES
    from .train.loop import PRESETS

    p.add_argument("--preset", default="llama2-1b", choices=PRESETS)
    p.add_argument("--precisions", nargs="*", default=list(PRECISION_NAMES), choices=PRECISION_NAMES, help="throughput rows (none: skip)")
    p.add_argument("--batch-size", type=int, default=16, help="halved on OOM until it fits")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--steps", type=int, default=10, help="timed steps per precision")
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True, help=_CUDA_GRAPHS_HELP)
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--data", default=None, help="token shard dir for the convergence comparison")
    p.add_argument("--conv-precisions", nargs="*", default=["bf16", "int8", "fp8-rowwise"], choices=PRECISION_NAMES)
    p.add_argument("--conv-steps", type=int, default=0, help="steps per convergence run (0: skip)")
    p.add_argument("--conv-batch-size", type=int, default=None)
    p.add_argument("--conv-seq-len", type=int, default=None)
    p.add_argument("--conv-lr", type=float, default=1e-3)
    p.add_argument("--peers", nargs="*", default=None,
                   help="torchao training rows to add: torchao-float8-rowwise, torchao-float8-tensorwise, torchao-int8-mp (default: all, when torchao imports)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="reports/bench-train")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .methods import METHODS

    parser = argparse.ArgumentParser(prog="lowbit", description="Run and train language models in low precision.")
    parser.add_argument("--version", action="version", version=f"lowbit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    study = commands.add_parser("study", help="reproduce one of the seed studies").add_subparsers(dest="study", required=True)
    sel = study.add_parser("selective", help="which layers and formats to quantize: memory, loss, time per choice")
    _add_model_args(sel)
    _add_eval_args(sel)
    sel.add_argument("--out", default=None, help="output dir (default: reports/selective-<model>)")
    sel.set_defaults(func=_study_selective)

    ptq = study.add_parser("ptq", help="RTN vs GPTQ, AWQ, SmoothQuant, LLM.int8() on a model and its outlier variant")
    _add_model_args(ptq)
    _add_eval_args(ptq)
    ptq.add_argument("--out", default=None, help="output dir (default: reports/ptq-<model>)")
    ptq.add_argument("--calib-n", type=int, default=128, help="calibration windows (default 128)")
    ptq.add_argument("--calib-len", type=int, default=256, help="tokens per calibration window (default 256)")
    ptq.add_argument("--group-size", type=int, default=128)
    ptq.set_defaults(func=_study_ptq)

    q = commands.add_parser("quantize", help="quantize a model and save it (safetensors + lowbit.json + tokenizer)")
    _add_model_args(q)
    q.add_argument("--method", required=True, help=f"one of {', '.join(sorted(METHODS))}")
    q.add_argument("--select", default="all", help="layers: globs, -exclusions, presets all/no-lm_head/lm_head/last:N/qkv")
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--bits", type=int)
    q.add_argument("--group-size", type=int)
    q.add_argument("--act-order", action="store_const", const=True)
    q.add_argument("--static-groups", action="store_const", const=True)
    q.add_argument("--symmetric", action=argparse.BooleanOptionalAction)
    q.add_argument("--granularity")
    q.add_argument("--alpha", type=float)
    q.add_argument("--level", choices=["O1", "O2", "O3"])
    q.add_argument("--threshold", type=float)
    q.add_argument("--block-size", type=int)
    q.add_argument("--double-quant", action="store_const", const=True)
    q.add_argument("--fmt")
    q.add_argument("--calib-n", type=int, default=128, help="calibration windows (default 128)")
    q.add_argument("--calib-len", type=int, default=2048, help="tokens per calibration window (default 2048)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--offload", action="store_true", help="keep the model on the CPU; move one block at a time to --device")
    q.add_argument("--fuse-projections", action="store_true",
                   help="q/k/v and gate/up as one linear each before quantizing (faster decode; lowbit.load keeps it)")
    q.set_defaults(func=_quantize)

    bench = commands.add_parser("bench", help="GPU benchmarks").add_subparsers(dest="bench", required=True)
    bl = bench.add_parser("linear", help="the 7 linears of a Llama-2-7B layer per scheme, CUDA graphs, speedup vs bf16")
    bl.add_argument("--m", type=int, nargs="+", default=[1, 16, 256, 4096], help="tokens per call")
    bl.add_argument("--out", default="reports/bench-linear", help="output dir: results.json, report.md, speedup.png")
    bl.add_argument("--peers", nargs="*", default=None, help="bitsandbytes / torchao schemes to add (default: all that import)")
    bl.add_argument("--outlier-cols", type=int, default=0,
                    help="outlier feature columns (±20 in every row) planted in each input, as LLMs have; default 0: N(0, 1) inputs")
    bl.set_defaults(func=_bench_linear)

    bd = bench.add_parser("dispatch", help="time every weight-only path on this GPU at 1-512 tokens; --write the token limits the op dispatches by")
    bd.add_argument("--kinds", nargs="+", default=None, help="storage kinds: int4 int8 fp8 table4 (default: all)")
    bd.add_argument("--budget-s", type=float, default=150, help="stop sweeping after this many seconds (default 150)")
    bd.add_argument("--write", action="store_true", help="write the limits into the user dispatch file (default "
                    "~/.cache/lowbit/weight_only_dispatch.json, or $LOWBIT_DISPATCH_FILE), which the op reads over the package's")
    bd.add_argument("--write-to", default=None, help="write the limits into this dispatch file instead")
    bd.add_argument("--out", default="reports/bench-dispatch", help="output dir: results.json, report.md, paths.png")
    bd.set_defaults(func=_bench_dispatch)

    bm = bench.add_parser("matmul", help="TFLOP/s of cuBLAS and lowbit matmuls (bf16, int8, fp8, tile-scaled, w4a16) per layout and size")
    bm.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192], help="square sizes M = N = K")
    bm.add_argument("--out", default="reports/bench-matmul", help="output dir (default reports/bench-matmul)")
    bm.set_defaults(func=_bench_matmul)

    bg = bench.add_parser("generate", help="greedy generation (static KV cache, CUDA-graph decode) per scheme: tokens/s, s/item, memory")
    bg.add_argument("--models", nargs="+", default=["7b"], help="7b, 13b (Llama-2 shapes, random weights), tiny (CPU smoke test) or a local checkpoint dir")
    bg.add_argument("--schemes", nargs="+", default=None,
                    help="bf16 w8a16 w4a16-g128 nf4 w8a8-int8 fp8 w8a8-fp8 (default: all); bnb-nf4 bnb-int8 torchao-int4 torchao-int8 where installed")
    bg.add_argument("--batch", type=int, default=1)
    bg.add_argument("--prompt-len", type=int, default=128)
    bg.add_argument("--new-tokens", type=int, default=128)
    bg.add_argument("--repeats", type=int, default=1, help="timed generates after the warm-up one (median)")
    bg.add_argument("--no-graph", action="store_true", help="decode eagerly instead of replaying a CUDA graph")
    bg.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="compile each decoder layer for the decode step (torch.compile: fuses norms, rotary, activations; "
                         "~30 s a model; default: on CUDA)")
    bg.add_argument("--device", default=None, help="cuda (default; required) or cpu for a smoke test with --models tiny")
    bg.add_argument("--seed", type=int, default=0)
    bg.add_argument("--attention", choices=["lowbit", "sdpa"], default="lowbit",
                    help="decode attention: lowbit's split-KV kernel for one-token steps (default), or transformers' SDPA")
    bg.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=True,
                    help="q/k/v and gate/up projections as one linear each, for every scheme (default: on)")
    bg.add_argument("--fuse-norms", action=argparse.BooleanOptionalAction, default=False,
                    help="decoder RMSNorms computed inside the weight-only GEMVs that read them (default: off, not yet "
                         "timed on a GPU)")
    bg.add_argument("--out", default="reports/bench-generate", help="output dir (default reports/bench-generate)")
    bg.set_defaults(func=_bench_generate)

    bt = bench.add_parser("train", help="training tokens/s and peak memory per precision (+ convergence of bf16/int8/fp8)")
    _add_train_bench_args(bt)
    bt.set_defaults(func=_bench_train)

    ev = commands.add_parser("eval", help="loss, perplexity and memory of a model saved by `lowbit quantize`")
    ev.add_argument("dir")
    ev.add_argument("--device", default=None)
    _add_eval_args(ev)
    ev.set_defaults(func=_eval)

    tok = commands.add_parser("tokenize", help="tokenize a corpus into token shards (.bin memmaps + meta.json)")
    tok.add_argument("corpus", help="a text file, a dir of .txt files, or 'shakespeare' (the embedded corpus)")
    tok.add_argument("--out", required=True, help="output dir")
    tok.add_argument("--tokenizer", default="default", help="'default' (lowbit's BPE, as the default model) or a HF tokenizer dir/name")
    tok.add_argument("--val-fraction", type=float, default=0.05, help="held out for validation (whole files when there are several)")
    tok.add_argument("--shard-tokens", type=int, default=1 << 26, help="tokens per shard (default 2^26)")
    tok.set_defaults(func=_tokenize)

    tr = commands.add_parser("train", help="train a causal LM on token shards in a low precision")
    _add_train_args(tr)
    tr.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"lowbit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
