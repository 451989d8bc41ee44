"""Sequential calibration: run the model one transformer block at a time on the calibration
batch, feeding each block the outputs of the already-quantized blocks before it.

Only the block being quantized (plus the calibration activations and its statistics) needs to be
on the accelerator, so a model larger than the GPU can be quantized: keep the model on the CPU and
pass `device="cuda"`.

A calibrated method provides:
  observer(module)                          -> an object whose update(x) sees each input batch
  prepare(model, names, observers)          -> optional: rescale norms/weights (SmoothQuant, AWQ)
  layer_from_observer(weight, bias, obs)    -> the quantized layer
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ..layers import float_weight, replace_module
from ..models.norms import final_norm
from ..select import block_index, output_projection_name, transformer_blocks


class _Captured(Exception):
    """Raised by the pre-hook of the first block once its inputs are stored."""


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def capture_block_inputs(model: nn.Module, blocks: nn.ModuleList, calibration: torch.Tensor, batch_size: int, device: torch.device):
    """Inputs (hidden states, kwargs) of the first block for each calibration batch. Everything
    outside the blocks (embeddings, final norm, head) is moved to `device` for the run."""
    inputs: list[tuple[torch.Tensor, dict]] = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        kwargs = {k: v for k, v in kwargs.items() if k not in ("hidden_states", "past_key_values", "past_key_value", "layer_past")}
        inputs.append((hidden, kwargs))
        raise _Captured

    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for i in range(0, len(calibration), batch_size):
            try:
                model(calibration[i : i + batch_size].to(device), use_cache=False)
            except _Captured:
                pass
    finally:
        handle.remove()
    return inputs


@torch.no_grad()
def calibrate_sequentially(
    model: nn.Module,
    method,
    names: list[str],
    calibration: torch.Tensor,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> None:
    """Quantize the selected linears of `model` block by block (see the module docstring)."""
    home = next(model.parameters()).device
    device = torch.device(device) if device is not None else home
    found = transformer_blocks(model)
    if found is None:
        raise ValueError(f"model {type(model).__name__} has no list of transformer blocks to calibrate sequentially")
    blocks_name, blocks = found
    _move_outside_blocks(model, blocks, device)
    inputs = capture_block_inputs(model, blocks, calibration, batch_size, device)
    prefixes = list(block_index(model))
    done: set[str] = set()
    bar = tqdm(total=len(blocks), desc=f"{type(method).__name__} blocks", disable=not progress)
    for prefix, block in zip(prefixes, blocks):
        block.to(device)
        chosen = [n for n in names if n.startswith(prefix)]
        _calibrate_and_replace(model, method, chosen, lambda: _run_block(block, inputs))
        done.update(chosen)
        inputs = [(_first(block(h, **kw)), kw) for h, kw in inputs]  # outputs of the quantized block
        block.to(home)
        bar.update(1)
    bar.close()
    rest = [n for n in names if n not in done]
    head, head_norm = output_projection_name(model), final_norm(model)
    if rest == [head] and head_norm is not None:  # lm_head: its input is the final norm of the last block's output
        head_module = model.get_submodule(head)
        _calibrate_and_replace(model, method, rest, lambda: _run_head(head_module, head_norm, inputs))
    elif rest:  # anything else outside the blocks: one pass of the whole (quantized) model
        model.to(device)
        _calibrate_and_replace(model, method, rest, lambda: _run_model(model, calibration, batch_size, device))
    model.to(home)


def _run_block(block: nn.Module, inputs: list[tuple[torch.Tensor, dict]]) -> None:
    for hidden, kwargs in inputs:
        block(hidden, **kwargs)


def _run_head(head: nn.Module, final_norm: nn.Module, inputs: list[tuple[torch.Tensor, dict]]) -> None:
    for hidden, _ in inputs:
        head(final_norm(hidden))


def _run_model(model: nn.Module, calibration: torch.Tensor, batch_size: int, device: torch.device) -> None:
    for i in range(0, len(calibration), batch_size):
        model(calibration[i : i + batch_size].to(device), use_cache=False)


def _move_outside_blocks(model: nn.Module, blocks: nn.ModuleList, device: torch.device) -> None:
    """Move every parameter and buffer that is not inside a block to `device`."""
    inside = {id(t) for t in [*blocks.parameters(), *blocks.buffers()]}
    for module in model.modules():
        for key, p in list(module._parameters.items()):
            if p is not None and id(p) not in inside:
                p.data = p.data.to(device)
        for key, b in list(module._buffers.items()):
            if b is not None and id(b) not in inside:
                module._buffers[key] = b.to(device)


def _calibrate_and_replace(model: nn.Module, method, names: list[str], run) -> None:
    """Observe each named linear's inputs over `run()`, let the method prepare, then replace."""
    if not names:
        return
    observers = {name: method.observer(model.get_submodule(name)) for name in names}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda mod, args, out, obs=obs: obs.update(args[0]))
        for name, obs in observers.items()
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    prepare = getattr(method, "prepare", None)
    if prepare is not None:
        prepare(model, names, observers)
    for name in names:
        weight, bias = float_weight(model.get_submodule(name), name)
        replace_module(model, name, method.layer_from_observer(weight, bias, observers[name]))
