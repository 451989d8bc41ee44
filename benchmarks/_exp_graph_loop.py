"""Experiment (session 15): which part of `lowbit train` breaks CUDA graph trees, and does a candidate fix hold?

Call 4's GPU test (6 steps of the tiny preset, gradient accumulation 2, evaluation every 3 steps) failed in the
backward: "accessing tensor output of CUDAGraphs that has been overwritten by a subsequent run". Variants, each
trained with graphs and without, losses compared:
  accum2-noeval   gradient accumulation, evaluation at the end only
  accum1-eval     evaluation every 3 steps, no accumulation
  accum1-eval-eager   the same, evaluation under torch.compiler.set_stance("force_eager")
  accum2-onemark  gradient accumulation, one mark_step_begin an optimizer step (not one a micro-batch)

    python3 benchmarks/_exp_graph_loop.py --out $OUT/graph-loop.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile

import numpy as np
import torch

from lowbit.data.shards import write_shards
from lowbit.train import loop

VARIANTS = {"accum2-noeval": dict(grad_accum=2, eval_every=100), "accum1-eval": dict(grad_accum=1, eval_every=3),
            "accum1-eval-eager": dict(grad_accum=1, eval_every=3), "accum2-onemark": dict(grad_accum=2, eval_every=100)}


@contextlib.contextmanager
def patched(variant: str):
    """The variant's change to the loop, undone after."""
    saved = loop.evaluate, loop.graph_step_begin, loop.Optimizers.zero_grad
    if variant == "accum1-eval-eager":
        def evaluate(*args, **kwargs):
            with torch.compiler.set_stance("force_eager"):
                return saved[0](*args, **kwargs)
        loop.evaluate = evaluate
    if variant == "accum2-onemark":
        loop.graph_step_begin = lambda graphs: None

        def zero_grad(self):
            saved[2](self)
            torch.compiler.cudagraph_mark_step_begin()
        loop.Optimizers.zero_grad = zero_grad
    try:
        yield
    finally:
        loop.evaluate, loop.graph_step_begin, loop.Optimizers.zero_grad = saved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="reports/graph-loop.json")
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    tmp = tempfile.mkdtemp()
    pattern = np.random.default_rng(0).integers(0, 64, size=50)
    write_shards(np.tile(pattern, 400), tmp, "train", 5000, vocab_size=64)
    write_shards(np.tile(pattern, 20), tmp, "val", 5000, vocab_size=64)
    rows = []
    for name, kw in VARIANTS.items():
        row = {"variant": name}
        for graphs in (False, True):
            cfg = loop.TrainConfig(data=tmp, out=f"{tmp}/{name}-{graphs}", preset="tiny", steps=6, batch_size=4, seq_len=32,
                                   lr=3e-3, warmup=2, log_every=1, eval_batches=2, progress=False, plot=False, compile=True,
                                   cuda_graphs=graphs, device=args.device, **kw)
            try:
                with patched(name):
                    s = loop.train(cfg)
                row[str(graphs)] = [round(v, 5) for _, v in s["train_losses"]] + [round(v, 5) for _, v in s["val_losses"]]
            except Exception as exc:  # noqa: BLE001 - an experiment: record the failure, go on
                row[str(graphs)] = f"{type(exc).__name__}: {str(exc)[:300]}"
            torch._dynamo.reset()
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
