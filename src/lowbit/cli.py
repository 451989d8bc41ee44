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
    from .models.hf import load_causal_lm
    from .studies.common import context_length

    options = {opt: getattr(args, flag) for flag, opt in METHOD_FLAGS.items() if getattr(args, flag) is not None}
    method = build(args.method, **options)
    model, tokenizer, _ = load_causal_lm(args.model, device="cpu" if args.offload else args.device or _default_device(), dtype=_dtype(args.dtype))
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


def _bench_linear(args: argparse.Namespace) -> int:
    from .bench import linear

    result = linear.run(tuple(args.m), out=args.out)
    print("\n".join(linear.format_table(result)))
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
    q.set_defaults(func=_quantize)

    bench = commands.add_parser("bench", help="GPU benchmarks").add_subparsers(dest="bench", required=True)
    bl = bench.add_parser("linear", help="the 7 linears of a Llama-2-7B layer per scheme, CUDA graphs, speedup vs bf16")
    bl.add_argument("--m", type=int, nargs="+", default=[1, 16, 256, 4096], help="tokens per call")
    bl.add_argument("--out", default=None, help="write the JSON here")
    bl.set_defaults(func=_bench_linear)

    ev = commands.add_parser("eval", help="loss, perplexity and memory of a model saved by `lowbit quantize`")
    ev.add_argument("dir")
    ev.add_argument("--device", default=None)
    _add_eval_args(ev)
    ev.set_defaults(func=_eval)
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
