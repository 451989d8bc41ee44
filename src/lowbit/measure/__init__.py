"""Measurement used by every study and bench: model memory, peak forward memory, loss and time.

Model memory is the bytes of parameters and buffers as stored, each storage counted once (a tied
embedding/lm_head is one tensor).

Peak forward memory:
- on CUDA, `torch.cuda.max_memory_allocated` over one forward pass (model included), after a reset;
- on CPU there is no allocator statistic, so lowbit tracks every tensor that the forward creates
  through a TorchDispatchMode, keeps the bytes of the storages that are alive (a storage counts until
  the last tensor seen on it is freed), and reports model bytes + the peak of those live bytes.
  It sees every tensor the ops return (intermediates included), not the scratch memory inside one
  op (e.g. a matmul's workspace) — so it is a slight lower bound of what the allocator would hold.
"""

from __future__ import annotations

import math
import platform
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from tqdm.auto import tqdm


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers as stored, each storage once; a tensor subclass
    (torchao's quantized weights) counts the plain tensors it holds."""
    seen: set[tuple] = set()
    total = 0
    for t in _plain_tensors([*model.parameters(), *model.buffers()]):
        storage = t.untyped_storage()
        key = (t.device, storage.data_ptr())
        if key in seen:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total


def _plain_tensors(tensors):
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    for t in tensors:
        if is_traceable_wrapper_subclass(t):
            names, _ = t.__tensor_flatten__()
            yield from _plain_tensors([getattr(t, name) for name in names])
        else:
            yield t


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of storages created under this mode that are alive at the same time.
    Storages in `existing` (the model's weights, the input) are not new: views of them are skipped."""

    def __init__(self, existing: tuple[torch.Tensor, ...] = ()):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._existing = {t.untyped_storage().data_ptr() for t in existing}
        self._refs: dict[int, list] = {}  # storage data_ptr -> [nbytes, tensors alive on it]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _tensors(out):
            self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        if t.device.type == "meta":
            return
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0 or ptr in self._existing:
            return
        entry = self._refs.get(ptr)
        if entry is None:
            entry = self._refs[ptr] = [storage.nbytes(), 0]
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        weakref.finalize(t, self._release, ptr)

    def _release(self, ptr: int) -> None:
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._refs[ptr]


def _tensors(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, (list, tuple)):
        for o in out:
            yield from _tensors(o)


@torch.no_grad()
def peak_forward_bytes(model: nn.Module, input_ids: torch.Tensor) -> int:
    """Peak memory of one forward pass on `input_ids`, model included (see module docstring)."""
    device = input_ids.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        model(input_ids)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    tracker = LiveTensorBytes(existing=(*model.parameters(), *model.buffers(), input_ids))
    with tracker:
        out = model(input_ids)
        del out
    return model_bytes(model) + tracker.peak


@dataclass
class Evaluation:
    loss: float  # mean next-token cross-entropy (nats) over every predicted token of the windows
    ppl: float
    seconds: float  # wall time of the full evaluation, after one warm-up batch
    tokens: int


def model_device(model: nn.Module) -> torch.device:
    for t in [*model.parameters(), *model.buffers()]:
        return t.device
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate(model: nn.Module, windows: torch.Tensor, batch_size: int = 8, progress: bool = False, desc: str = "eval") -> Evaluation:
    """Loss and perplexity on fixed token windows [n, seq_len] (the same windows for every row)."""
    if windows.dim() != 2 or windows.shape[1] < 2:
        raise ValueError(f"windows must be [n, seq_len >= 2] token ids, got shape {tuple(windows.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = model_device(model)
    windows = windows.to(device)
    model(windows[:batch_size])  # warm-up: first-call allocations and lazy init stay out of the time
    _sync(device)
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per batch
    count = 0
    start = time.perf_counter()
    for i in tqdm(range(0, len(windows), batch_size), desc=desc, disable=not progress, leave=False):
        batch = windows[i : i + batch_size]
        logits = model(batch).logits.float()
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum")
        total += nll.double()
        count += batch[:, 1:].numel()
    _sync(device)
    seconds = time.perf_counter() - start
    loss = total.item() / count
    return Evaluation(loss=loss, ppl=math.exp(loss), seconds=seconds, tokens=count)


def unigram_loss(train_ids: torch.Tensor, windows: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy of the windows' predicted tokens (all but each window's first, as in
    `evaluate`) under add-one-smoothed unigram frequencies of the training tokens: the loss a
    model that ignores context would reach; a trained LM must be clearly below it."""
    counts = torch.bincount(train_ids.reshape(-1), minlength=vocab_size).double() + 1.0
    log_probs = counts.log() - counts.sum().log()
    return -log_probs[windows[:, 1:].reshape(-1)].mean().item()


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would retype it: `lowbit ...` when run through the CLI (console script or
    `python -m lowbit.cli`), else the arguments as given."""
    argv = sys.argv if argv is None else argv
    if argv and (argv[0].endswith("lowbit") or argv[0].endswith("cli.py")):
        return " ".join(["lowbit", *argv[1:]])
    return " ".join(argv)


def environment(device: torch.device | str) -> dict:
    """What a result was measured with: versions (read without importing the packages), the GPU,
    its driver and CUDA, or the CPU; and the command. Every bench records this."""
    from importlib.metadata import PackageNotFoundError, version

    device = torch.device(device)
    env = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device), "command": command_line()}
    for package in ("triton", "transformers", "bitsandbytes", "torchao"):
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            env[package] = None
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda, driver=_driver_version())
    else:
        env.update(gpu=None, cpu=platform.processor() or platform.machine())
    return env


def _driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
