"""`lowbit bench train`: training throughput and memory per precision, and convergence of a few.

Throughput: the preset (llama2-1b on one GPU) built fresh and seeded for each precision, compiled,
one optimizer step per batch of random token ids; tokens/s is batch × seq_len over the median step
time of the timed steps (CUDA events, after warm-up steps; no host sync inside the timed loop). Compiled
on CUDA, each block replays as a CUDA graph (`train.loop.compile_blocks`; `cuda_graphs=False` launches its kernels one
by one). Peak memory is the allocator's reserved peak (`train.loop.peak_memory`: a graph's replay is not counted in
the allocated peak), with the allocated peak beside it. A batch that does not fit is halved until one
does, and the batch used is recorded.

Convergence: the same tokens (a `lowbit tokenize` dir), seed and schedule for each precision
through `lowbit.train.loop.train`; final validation loss and one PNG with every loss curve.

Peers: torchao's float8 (row-wise, tensor-wise) and INT8 mixed-precision training, where torchao
imports, as throughput rows in the same run (`bench.peers.TRAINING_PEERS`), converting the same bf16
model (all linears but lm_head, as lowbit's precisions).

On a CPU (tiny preset) it runs end to end as a smoke test; the numbers mean nothing there.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..measure import environment
from ..train.convert import PRECISION_NAMES
from ..train.loop import (
    Optimizers, TrainConfig, build_model, compile_blocks, peak_memory, plot_loss_curves, prepare_model, resolve_device, train,
    train_step, use_cuda_graphs,
)
from . import peers

CONVERGENCE_PRECISIONS = ("bf16", "int8", "fp8-rowwise")


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _time_one(cfg: TrainConfig, batch: int, steps: int, warmup: int, vocab: int, device: torch.device, peer: str | None = None) -> dict:
    """Train steps on random tokens at one batch size (the bf16 model converted by a training `peer`,
    where given); raises on OOM."""
    cfg = replace(cfg, batch_size=batch)
    model = build_model(cfg, vocab)
    if peer is not None:
        peers.convert_for_training(model, peer)
    model = prepare_model(model, cfg, device)
    opt = Optimizers(model, cfg, device)
    graphs = use_cuda_graphs(cfg, device)
    fwd = compile_blocks(model, graphs) if cfg.compile else model
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    data = torch.randint(0, vocab, (warmup + steps, batch, cfg.seq_len + 1), generator=gen).to(device)
    timed = device.type == "cuda"
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)] if timed else []
    if timed:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    host_times, losses = [], []
    for i in range(warmup + steps):
        x, y = data[i, :, :-1], data[i, :, 1:]
        t0 = time.perf_counter()
        if i >= warmup and timed:
            events[i - warmup][0].record()
        opt.set_lr(cfg.lr)
        losses.append(train_step(fwd, opt, cfg, device, x, y, graphs))
        if i >= warmup:
            if timed:
                events[i - warmup][1].record()
            else:
                host_times.append(time.perf_counter() - t0)
    if timed:
        torch.cuda.synchronize(device)
        times = [a.elapsed_time(b) / 1e3 for a, b in events]
    else:
        times = host_times
    final_loss = losses[-1].item()
    step_s = statistics.median(times)
    peak, allocated = peak_memory(device), (torch.cuda.max_memory_allocated(device) if timed else None)
    del model, opt, fwd, data, losses
    return {"batch_size": batch, "step_ms": round(step_s * 1e3, 2), "tokens_per_s": round(batch * cfg.seq_len / step_s, 1),
            "peak_memory_gb": None if peak is None else round(peak / 2**30, 2),
            "peak_allocated_gb": None if allocated is None else round(allocated / 2**30, 2), "cuda_graphs": graphs,
            "last_loss": round(final_loss, 4), "steps_timed": steps, "warmup_steps": warmup}


def throughput(precision: str, cfg: TrainConfig, steps: int, warmup: int, vocab: int, device: torch.device) -> dict:
    """One precision's row: the first batch, halved on OOM, that runs. If compiling fails for a reason other than
    memory, the row steps down, saying so (the error in `compile_error`): from CUDA graphs to compiled blocks launched
    one by one, then to eager (`compiled: false`); a row that fails eagerly too records its error instead of ending
    the bench."""
    batch, note = cfg.batch_size, None
    modes = [(True, True), (True, False), (False, False)] if cfg.compile else [(False, False)]  # (compile, graphs)
    modes = [m for m in modes if cfg.cuda_graphs or not m[1]]
    peer = precision if precision in peers.TRAINING_PEERS else None  # the peer converts a bf16 model itself
    while True:
        compiled, graphs = modes[0]
        try:
            row = _time_one(replace(cfg, precision="bf16" if peer else precision, compile=compiled, cuda_graphs=graphs),
                            batch, steps, warmup, vocab, device, peer)
            return {"precision": precision, **row, "compiled": compiled, **({"compile_error": note} if note else {})}
        except Exception as exc:  # noqa: BLE001 - classified below
            if _is_oom(exc) and batch > 1:
                batch //= 2
            elif len(modes) > 1:
                note = f"{type(exc).__name__}: {str(exc)[:300]}"
                modes.pop(0)
            else:
                return {"precision": precision, "batch_size": batch, "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                        **({"compile_error": note} if note else {})}
        finally:
            gc.collect()  # the failed attempt's model and optimizer, before the next one
            if device.type == "cuda":
                torch.cuda.empty_cache()
            torch._dynamo.reset()


def convergence(data: str, out: Path, precisions, base: TrainConfig) -> list[dict]:
    rows = []
    for p in precisions:
        run = out / f"run-{p}"
        if (run / "checkpoint.safetensors").exists():
            (run / "checkpoint.safetensors").unlink()  # a bench re-run starts over
        note = None
        try:
            s = train(replace(base, data=data, out=str(run), precision=p, resume=False))
        except Exception as exc:  # noqa: BLE001 - a compile failure: run that precision eagerly and say so
            if not base.compile or _is_oom(exc):
                raise
            note = f"{type(exc).__name__}: {str(exc)[:300]}"
            torch._dynamo.reset()
            (run / "checkpoint.safetensors").unlink(missing_ok=True)
            s = train(replace(base, data=data, out=str(run), precision=p, resume=False, compile=False))
        rows.append({"precision": p, "compiled": note is None, **({"compile_error": note} if note else {}), "final_val_loss": s["final_val_loss"], "final_train_loss": s["final_train_loss"],
                     "val_losses": s["val_losses"], "train_losses": s["train_losses"],
                     "tokens_per_s_median": s["tokens_per_s_median"], "tokens": s["steps"] * s["tokens_per_step"]})
        if base.device is None or str(base.device).startswith("cuda"):
            torch._dynamo.reset()
    return rows


def plot_convergence(rows: list[dict], path: Path, title: str) -> None:
    plot_loss_curves([(r["precision"], r["train_losses"], r["val_losses"]) for r in rows], path, title)


def run(
    preset: str = "llama2-1b",
    precisions=PRECISION_NAMES,
    batch_size: int = 16,
    seq_len: int = 2048,
    steps: int = 10,
    warmup: int = 3,
    compile: bool = True,
    checkpointing: bool = False,
    cuda_graphs: bool = True,
    vocab: int = 32000,
    data: str | None = None,
    conv_precisions=CONVERGENCE_PRECISIONS,
    conv_steps: int = 0,
    conv_batch_size: int | None = None,
    conv_seq_len: int | None = None,
    conv_lr: float = 1e-3,
    device: str | None = None,
    out: str | Path = "reports/bench-train",
    progress: bool = True,
    peer_names: list[str] | None = None,
) -> dict:
    """Throughput rows for `precisions` (skip with an empty list), then for the training peers
    (`bench.peers.TRAINING_PEERS`; default: those whose library imports, when any precision is asked
    for) and, given `data` and conv_steps > 0, the convergence comparison. Writes results.json,
    report.md and (convergence) loss_curves.png to out."""
    for p in [*precisions, *conv_precisions]:
        if p not in PRECISION_NAMES:
            raise ValueError(f"unknown precision {p!r}; valid: {', '.join(PRECISION_NAMES)}")
    if peer_names is None:
        peer_names = [p for p in peers.TRAINING_PEERS if peers.importable(p)] if precisions else []
    for p in peer_names:
        if p not in peers.TRAINING_PEERS:
            raise ValueError(f"unknown training peer {p!r}; valid: {', '.join(peers.TRAINING_PEERS)}")
        if not peers.importable(p):
            raise ValueError(f"training peer {p!r} needs {peers.library(p)}, which is not installed")
    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if data is not None:
        from ..data.shards import read_meta

        vocab = read_meta(data)["vocab_size"]
    base = TrainConfig(data=data or "", out=str(out), preset=preset, batch_size=batch_size, seq_len=seq_len, compile=compile,
                       checkpointing=checkpointing, cuda_graphs=cuda_graphs, device=str(dev), progress=progress, lr=1e-4, warmup=0)
    result = {"environment": environment(dev), "preset": preset, "seq_len": seq_len, "requested_batch_size": batch_size,
              "compile": compile, "checkpointing": checkpointing,
              "cuda_graphs": cuda_graphs, "vocab_size": vocab, "throughput": [], "convergence": []}
    for p in [*precisions, *peer_names]:
        row = throughput(p, base, steps, warmup, vocab, dev)
        result["throughput"].append(row)
        if progress:
            print(f"{p:>15}: " + (f"batch {row['batch_size']}, {row['tokens_per_s']:.0f} tok/s, peak {row['peak_memory_gb']} GB"
                                   if "error" not in row else f"failed: {row['error']}"), flush=True)
        _write(result, out)
    if data is not None and conv_steps > 0:
        conv = replace(base, steps=conv_steps, lr=conv_lr, warmup=max(1, conv_steps // 20), batch_size=conv_batch_size or batch_size,
                       seq_len=conv_seq_len or seq_len, eval_every=max(1, conv_steps // 10), log_every=max(1, conv_steps // 50),
                       plot=False)
        result["convergence_config"] = {"steps": conv.steps, "batch_size": conv.batch_size, "seq_len": conv.seq_len, "lr": conv.lr,
                                        "warmup": conv.warmup, "data": data, "seed": conv.seed}
        result["convergence"] = convergence(data, out, conv_precisions, conv)
        plot_convergence(result["convergence"], out / "loss_curves.png", f"{preset}: same tokens and seed per precision")
    _write(result, out)
    return result


def _peak(row: dict) -> str:
    return "n/a" if row["peak_memory_gb"] is None else f"{row['peak_memory_gb']} ({row.get('peak_allocated_gb')})"


def _compiled(row: dict, result: dict) -> str:
    """The table's "compiled" cell: how the row ran, and whether it stepped down from what was asked."""
    if not row["compiled"]:
        return "no (failed)" if result["compile"] else "no"
    graphs = "yes, CUDA graphs" if row.get("cuda_graphs") else "yes"
    return graphs + (" (graphs failed)" if result.get("cuda_graphs") and not row.get("cuda_graphs") and row.get("compile_error") else "")


def format_table(result: dict) -> list[str]:
    env = result["environment"]
    lines = [f"# Training bench: {result['preset']}",
             "", f"{env.get('gpu') or env['device']}, torch {env['torch']}, triton {env['triton']}, driver {env.get('driver')}; "
             f"compile={result['compile']}, checkpointing={result['checkpointing']}, "
             f"cuda_graphs={result.get('cuda_graphs', False)}", "", f"`{env['command']}`", ""]
    if result["throughput"]:
        bf16 = next((r for r in result["throughput"] if r["precision"] == "bf16" and "error" not in r), None)
        lines += [f"Throughput at seq_len {result['seq_len']}:", "",
                  "| precision | batch | step ms | tokens/s | vs bf16 | peak GB reserved (allocated) | compiled |", "|---|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            if "error" in r:
                lines.append(f"| {r['precision']} | {r['batch_size']} | failed: {r['error'][:120]} | | | | |")
                continue
            ratio = f"{r['tokens_per_s'] / bf16['tokens_per_s']:.2f}x" if bf16 else "-"
            lines.append(f"| {r['precision']} | {r['batch_size']} | {r['step_ms']} | {r['tokens_per_s']:.0f} | {ratio} | "
                         f"{_peak(r)} | {_compiled(r, result)} |")
        lines.append("")
    if result["convergence"]:
        c = result["convergence_config"]
        lines += [f"Convergence: {c['steps']} steps of {c['batch_size']}x{c['seq_len']} tokens, lr {c['lr']}, seed {c['seed']}", "",
                  "| precision | final val loss | vs bf16 | final train loss | tokens/s |", "|---|---|---|---|---|"]
        base = next((r["final_val_loss"] for r in result["convergence"] if r["precision"] == "bf16"), None)
        for r in result["convergence"]:
            rel = f"{100 * (r['final_val_loss'] / base - 1):+.2f} %" if base else "-"
            lines.append(f"| {r['precision']} | {r['final_val_loss']:.4f} | {rel} | {r['final_train_loss']:.4f} | {r['tokens_per_s_median'] or 0:.0f} |")
    return lines


def _write(result: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text("\n".join(format_table(result)) + "\n")
