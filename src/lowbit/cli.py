"""The `lowbit` command: parse arguments, call the library, print. Nothing here that Python
users cannot call themselves."""

from __future__ import annotations

import argparse
import logging
import sys


def _study_selective(args: argparse.Namespace) -> int:
    import torch

    from .studies import selective

    rows, out_dir = selective.run(
        args.model, device=args.device, out=args.out, n_windows=args.windows, seq_len=args.seq_len,
        batch_size=args.batch_size, dtype=getattr(torch, args.dtype),
    )
    selective.print_table(rows)
    print(f"\nwrote {out_dir}/results.json, report.md, memory_vs_loss.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lowbit", description="Run and train language models in low precision.")
    parser.add_argument("--version", action="version", version=f"lowbit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    study = commands.add_parser("study", help="reproduce one of the seed studies").add_subparsers(dest="study", required=True)
    sel = study.add_parser("selective", help="which layers and formats to quantize: memory, loss, time per choice")
    sel.add_argument("--model", default=None, help="HF causal LM: local dir or hub name (default: lowbit's embedded GPT-2 trained on Shakespeare)")
    sel.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    sel.add_argument("--out", default=None, help="output dir (default: reports/selective-<model>)")
    sel.add_argument("--windows", type=int, default=64, help="number of held-out windows (default 64)")
    sel.add_argument("--seq-len", type=int, default=256, help="tokens per window (default 256, capped at the model's context)")
    sel.add_argument("--batch-size", type=int, default=8)
    sel.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="dtype of the float model and activations")
    sel.set_defaults(func=_study_selective)
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
