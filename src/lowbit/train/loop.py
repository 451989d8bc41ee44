"""The training loop (`lowbit train`): a causal LM trained from token shards in one of lowbit's
precisions, read top to bottom like nanoGPT's.

    model    the embedded default GPT-2 config, a preset (tiny, llama2-1b) fresh and seeded, or --model
    data     `TokenShards`: batch number `position` of a seeded shuffle; the position is one integer
    step     grad_accum micro-batches -> clip -> AdamW (+ Int8WeightAdamW for int8-weight) -> lr_at()
    log      JSONL in the run dir, a tqdm bar, validation loss on fixed batches, a loss-curve PNG
    save     one safetensors file (model, optimizer, RNG, metadata), written atomically

A resumed run continues exactly: on the CPU its losses equal an uninterrupted run's. A non-finite
loss stops the run (naming the first bad step) before anything is saved, so the last good
checkpoint stays. Checkpoints record the model config hash and the precision; a checkpoint of
another model or precision is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import nn
from tqdm.auto import tqdm

from ..data.shards import TokenShards, read_meta
from ..models.hf import repeated_blocks
from ..ops.fp8 import fp8_gpu
from .convert import PRECISION_NAMES, convert
from .int8_weight import Int8WeightAdamW, Int8WeightLinear

PRESETS = ("default", "tiny", "tiny-gpt2", "llama2-1b")
CHECKPOINT = "checkpoint.safetensors"
LOG = "log.jsonl"


@dataclass
class TrainConfig:
    data: str  # a token shard dir (`lowbit tokenize`) with train and val splits
    out: str  # run dir: log.jsonl, checkpoint.safetensors, loss.png, summary.json
    preset: str = "default"  # fresh, seeded model: default (the embedded GPT-2 config), tiny, tiny-gpt2, llama2-1b
    model: str | None = None  # or a Hugging Face causal LM (dir or name; safetensors only) to continue training
    precision: str = "bf16"
    stochastic_rounding: bool = False
    select: str = "no-lm_head"
    batch_size: int = 8
    seq_len: int = 256
    grad_accum: int = 1
    steps: int = 1000
    lr: float = 1e-3
    warmup: int = 50
    min_lr: float | None = None  # default lr / 10
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float | None = 1.0
    checkpointing: bool = False
    compile: bool = False
    cuda_graphs: bool = True  # replay each compiled block as a CUDA graph where `use_cuda_graphs` says they run
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 8
    save_every: int = 0  # 0: only at the end
    resume: bool = False
    seed: int = 0
    device: str | None = None  # default cuda if available
    dtype: str = "float32"  # parameters (the master copy)
    autocast: str = "auto"  # bf16 | none | auto (bf16 on CUDA, none on CPU)
    progress: bool = True
    plot: bool = True
    extra: dict = field(default_factory=dict)  # free-form notes recorded in the checkpoint

    def __post_init__(self):
        if self.precision not in PRECISION_NAMES:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISION_NAMES)}")
        if self.model is None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        if self.autocast not in ("auto", "bf16", "none"):
            raise ValueError(f"autocast must be auto, bf16 or none, got {self.autocast!r}")
        for name in ("batch_size", "seq_len", "grad_accum", "steps", "log_every", "eval_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.save_every < 0:
            raise ValueError("warmup and save_every must be >= 0")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.warmup >= self.steps:
            warnings.warn(f"warmup ({self.warmup}) >= steps ({self.steps}): the learning rate never reaches lr={self.lr} "
                          "and never decays; pass a smaller warmup", stacklevel=3)


# ---------------------------------------------------------------- schedule


def lr_at(step: int, lr: float, warmup: int, steps: int, min_lr: float) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup to `lr` over `warmup` steps
    ((step + 1) / warmup), then cosine decay from `lr` at step `warmup` to `min_lr` at step `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------- model


def preset_config(name: str, vocab_size: int, seq_len: int, eos_token_id: int | None = None):
    """A transformers config for a named preset, sized to the data's vocabulary."""
    from transformers import GPT2Config, LlamaConfig

    from ..models.default import FULL_SPEC

    eos = {} if eos_token_id is None else {"bos_token_id": eos_token_id, "eos_token_id": eos_token_id, "pad_token_id": eos_token_id}
    if name in ("default", "tiny-gpt2"):
        dims = dict(n_embd=FULL_SPEC.n_embd, n_layer=FULL_SPEC.n_layer, n_head=FULL_SPEC.n_head) if name == "default" \
            else dict(n_embd=64, n_layer=2, n_head=2)
        return GPT2Config(vocab_size=vocab_size, n_positions=max(seq_len, FULL_SPEC.seq_len), resid_pdrop=0.0, embd_pdrop=0.0,
                          attn_pdrop=0.0, tie_word_embeddings=True, **dims, **eos)
    if name == "tiny":
        dims = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4)
    elif name == "llama2-1b":
        dims = dict(num_hidden_layers=24, hidden_size=1536, intermediate_size=6144, num_attention_heads=24, num_key_value_heads=24)
    else:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return LlamaConfig(vocab_size=vocab_size, max_position_embeddings=max(seq_len, 2048), tie_word_embeddings=False, **dims, **eos)


def build_model(cfg: TrainConfig, vocab_size: int, eos_token_id: int | None = None) -> nn.Module:
    """The float model, seeded (fresh presets) or loaded (cfg.model), in cfg.dtype on the CPU."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.model is not None:
        from ..models.hf import load_causal_lm

        model, _, _ = load_causal_lm(cfg.model, dtype=dtype, device="cpu")
        if model.config.vocab_size < vocab_size:
            raise ValueError(f"model {cfg.model!r} has vocab {model.config.vocab_size}, the data needs {vocab_size}")
        return model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(cfg.seed)
    return AutoModelForCausalLM.from_config(preset_config(cfg.preset, vocab_size, cfg.seq_len, eos_token_id), dtype=dtype)


def prepare_model(model: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """Apply the precision (bf16: the model's own layers, the baseline), move, enable checkpointing. FP8 on a GPU
    without FP8 matmuls is refused before anything is converted (cuBLAS would fail at the first step)."""
    if cfg.precision.startswith("fp8") and device.type == "cuda" and not fp8_gpu(device):
        raise ValueError(f"precision {cfg.precision!r} needs a GPU with FP8 matmuls (compute capability 8.9 or newer: "
                         "Ada, Hopper, Blackwell), and this one has none: use int8 or bf16")
    if cfg.precision != "bf16":
        convert(model, cfg.precision, cfg.select, stochastic_rounding=cfg.stochastic_rounding)
    model.to(device).train()
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    if cfg.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def compile_blocks(model: nn.Module, cuda_graphs: bool = False) -> nn.Module:
    """Compile the model's repeated blocks (its longest ModuleList: the decoder layers) one by one and
    return the model. Identical blocks share one compiled graph, so compiling costs one block, not
    the depth (llama2-1b on the H100: ~1 min → ~10 s); embedding, final norm and head stay eager. A model
    without such a list is compiled whole (the returned module then wraps it).

    With `cuda_graphs` (mode "reduce-overhead", Inductor's CUDA graph trees) each block's forward and backward
    replay as CUDA graphs: the host then issues a step in a fraction of its GPU time and stops pacing the GPU,
    which it did after the step's one sync (transformers' packed-sequence check of the position ids). H200,
    session 15, llama2-1b at 16 × 2048: int8 379 → 330 ms a step (its kernels: ~322 ms), bf16 407 → 398 ms.
    Call `graph_step_begin` before each forward: a new iteration, whose graphs may overwrite the last one's
    outputs."""
    blocks = repeated_blocks(model)
    mode = "reduce-overhead" if cuda_graphs else None
    if not blocks:
        return torch.compile(model, mode=mode)
    for block in blocks:
        block.compile(mode=mode)
    return model


def cuda_graphs_asked(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the config asks for CUDA graphs where they mean anything: compiled blocks on CUDA, `cuda_graphs`."""
    return cfg.compile and cfg.cuda_graphs and device.type == "cuda"


def use_cuda_graphs(cfg: TrainConfig, device: torch.device) -> bool:
    """CUDA graphs for the compiled blocks where asked for and able to run (`cuda_graphs_blocker`)."""
    return cuda_graphs_asked(cfg, device) and cuda_graphs_blocker(cfg) is None


def cuda_graphs_blocker(cfg: TrainConfig) -> str | None:
    """What keeps the compiled blocks from replaying as CUDA graphs, or None. Activation checkpointing's recomputation
    calls a block's forward inside the backward. With gradient accumulation (two micro-batches a step) the graph
    trees overwrote a forward output the backward still needed, whether the step was marked before each micro-batch
    or once a step (H200, session 15, `benchmarks/_exp_graph_loop.py`); evaluation between steps gave the same losses
    as launching the kernels one by one."""
    if cfg.checkpointing:
        return "activation checkpointing recomputes a block's forward inside the backward"
    if cfg.grad_accum > 1:
        return "gradient accumulation overwrote a forward output its backward needed (session 15)"
    return None


def graph_step_begin(cuda_graphs: bool) -> None:
    if cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()


def config_identity(model: nn.Module) -> tuple[str, str]:
    """(a short description, sha256 of the architecture-defining config fields) of a HF model."""
    d = model.config.to_dict()
    volatile = {"transformers_version", "torch_dtype", "dtype", "use_cache", "architectures", "name_or_path"}
    d = {k: v for k, v in d.items() if k not in volatile and not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
    layers = d.get("num_hidden_layers", d.get("n_layer"))
    width = d.get("hidden_size", d.get("n_embd"))
    return f"{d.get('model_type')} {layers}x{width} vocab {d.get('vocab_size')}", digest


# ---------------------------------------------------------------- optimizer


class Optimizers:
    """AdamW for the parameters, plus Int8WeightAdamW for int8-weight layers (which hold no parameter)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device):
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda")
        self.int8_layers = [m for m in model.modules() if isinstance(m, Int8WeightLinear)]
        self.int8 = Int8WeightAdamW(self.int8_layers, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay) \
            if self.int8_layers else None
        self.params = params

    def set_lr(self, lr: float) -> None:
        for g in self.adamw.param_groups:
            g["lr"] = lr
        if self.int8 is not None:
            self.int8.lr = lr

    def grads(self) -> list[torch.Tensor]:
        gs = [p.grad for p in self.params if p.grad is not None]
        return gs + [m.grad_weight for m in self.int8_layers if m.grad_weight is not None]

    def clip(self, max_norm: float) -> torch.Tensor:
        """Scale all gradients (int8-weight ones too) to a total norm of at most max_norm; no host sync."""
        grads = self.grads()
        norm = torch.nn.utils.get_total_norm(grads)
        torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm

    def step(self) -> None:
        self.adamw.step()
        if self.int8 is not None:
            self.int8.step()

    def zero_grad(self) -> None:
        self.adamw.zero_grad(set_to_none=True)
        if self.int8 is not None:
            self.int8.zero_grad()

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Flattened: `optim.state.{i}.{key}` tensors + param_groups (json); `int8w.{i}.m/v` + their step counts."""
        sd = self.adamw.state_dict()
        tensors, info = {}, {"param_groups": sd["param_groups"], "int8w_t": {}}
        for i, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"optim.state.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        if self.int8 is not None:
            for i, st in self.int8.state_dict()["state"].items():
                tensors[f"int8w.{i}.m"], tensors[f"int8w.{i}.v"] = st["m"], st["v"]
                info["int8w_t"][str(i)] = st["t"]
        return tensors, info

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        state: dict[int, dict] = {}
        for name, t in tensors.items():
            if name.startswith("optim.state."):
                i, key = name[len("optim.state."):].split(".", 1)
                state.setdefault(int(i), {})[key] = t
        groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in info["param_groups"]]
        self.adamw.load_state_dict({"state": state, "param_groups": groups})
        if self.int8 is not None:  # moments and steps from the checkpoint; hyper-parameters from this run (lr is set every step)
            state = {int(i): {"t": t, "m": tensors[f"int8w.{i}.m"], "v": tensors[f"int8w.{i}.v"]} for i, t in info["int8w_t"].items()}
            self.int8.load_state_dict({**self.int8.state_dict(), "state": state})


# ---------------------------------------------------------------- checkpoints


def _model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """state_dict with tied tensors stored once: (tensors, {alias: stored name})."""
    tensors, aliases, seen = {}, {}, {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.detach().contiguous()
    return tensors, aliases


def save_checkpoint(path: Path, model: nn.Module, opt: Optimizers, meta: dict) -> None:
    """Everything in one safetensors file, replaced atomically (temp file in the same dir, fsync, os.replace)."""
    model_t, aliases = _model_tensors(model)
    opt_t, opt_info = opt.state_tensors()
    tensors = {f"model.{k}": v for k, v in model_t.items()} | opt_t
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {**meta, "aliases": aliases, "optimizer": opt_info}
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata={"lowbit": json.dumps(meta)})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    human = path.with_suffix(".json")  # a readable copy of the metadata (the safetensors header is the truth)
    tmp_h = human.with_name(f".{human.name}.tmp-{os.getpid()}")
    tmp_h.write_text(json.dumps({k: v for k, v in meta.items() if k != "optimizer"}, indent=2) + "\n")
    os.replace(tmp_h, human)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("lowbit", "null") or "null")
        if meta is None:
            raise ValueError(f"{path} is not a lowbit training checkpoint (no metadata)")
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def check_compatible(ckpt: dict, current: dict, path: Path) -> None:
    """Refuse a checkpoint of another model config or precision, naming both."""
    for key, what in (("config_sha256", "model config"), ("precision", "precision"), ("stochastic_rounding", "stochastic_rounding"),
                      ("vocab_size", "vocab size"), ("select", "layer selection")):
        if ckpt.get(key) != current.get(key):
            raise ValueError(
                f"checkpoint {path} does not match this run: its {what} is {ckpt.get(key)!r} "
                f"(model {ckpt.get('model')}, precision {ckpt.get('precision')}), this run's is {current.get(key)!r} "
                f"(model {current.get('model')}, precision {current.get('precision')})")


def load_into(tensors: dict[str, torch.Tensor], meta: dict, model: nn.Module, opt: Optimizers, device: torch.device) -> None:
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    for alias, name in meta["aliases"].items():
        sd[alias] = sd[name]
    model.load_state_dict(sd, strict=True)
    opt.load_state_tensors({k: v.to(device) if k.startswith("int8w.") else v for k, v in tensors.items()}, meta["optimizer"])
    torch.set_rng_state(tensors["rng.cpu"])
    cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


# ---------------------------------------------------------------- the loop


def next_token_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of y given x (fp32 softmax)."""
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


def train_step(fwd: nn.Module, opt: "Optimizers", cfg: TrainConfig, device: torch.device, x: torch.Tensor, y: torch.Tensor,
               cuda_graphs: bool = False) -> torch.Tensor:
    """One optimizer step on one batch, no accumulation (the step `lowbit bench train` times); the detached loss."""
    graph_step_begin(cuda_graphs)
    with autocast_ctx(cfg, device):
        loss = next_token_loss(fwd, x, y)
    loss.backward()
    if cfg.clip:
        opt.clip(cfg.clip)
    opt.step()
    opt.zero_grad()
    return loss.detach()


def resolve_device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def autocast_ctx(cfg: TrainConfig, device: torch.device):
    use = cfg.autocast == "bf16" or (cfg.autocast == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else nullcontext()


@torch.no_grad()
def evaluate(fwd, batches, cfg: TrainConfig, device: torch.device, cuda_graphs: bool = False) -> float:
    losses = []
    for x, y in batches:
        graph_step_begin(cuda_graphs)
        with autocast_ctx(cfg, device):
            losses.append(next_token_loss(fwd, x.to(device), y.to(device)))
    return torch.stack(losses).mean().item()


def peak_memory(device: torch.device) -> int | None:
    """Peak bytes the caching allocator held (reserved): what a CUDA graph's replay uses is allocated from its
    private pool when recorded and not counted again while it replays, so the allocated peak misses it."""
    return torch.cuda.max_memory_reserved(device) if device.type == "cuda" else None


class _Log:
    def __init__(self, path: Path, keep_until: int | None):
        self.path = path
        lines = path.read_text().splitlines() if path.is_file() and keep_until is not None else []
        self.records = [r for r in map(json.loads, lines) if r["step"] <= keep_until] if lines else []
        path.write_text("".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, record: dict) -> None:
        self.records.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def plot_losses(records: list[dict], path: Path, title: str) -> None:
    """One run's train and validation loss over steps (the JSONL log's records)."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    plot_loss_curves([("", train, val)], path, title)


def plot_loss_curves(runs: list[tuple[str, list, list]], path: Path, title: str) -> None:
    """(label, [(step, train loss)], [(step, val loss)]) per run on one chart: train faint, validation
    as points, one colour a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, train, val) in enumerate(runs):
        prefix = f"{label} " if label else ""
        if train:
            ax.plot(*zip(*train), color=f"C{i}", alpha=0.35 if val else 1.0, lw=0.8, label=f"{prefix}train")
        if val:
            ax.plot(*zip(*val), "o-", color=f"C{i}", label=f"{prefix}validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train(cfg: TrainConfig) -> dict:
    """Train per `cfg`; returns a summary (also written to the run dir as summary.json)."""
    device = resolve_device(cfg.device)
    data_meta = read_meta(cfg.data)
    vocab = data_meta["vocab_size"]
    train_data = TokenShards(cfg.data, "train", batch_size=cfg.batch_size, seq_len=cfg.seq_len, seed=cfg.seed)
    val_split = "val" if "val" in data_meta["splits"] else "train"
    val_batches = TokenShards(cfg.data, val_split, batch_size=cfg.batch_size, seq_len=cfg.seq_len, shuffle=False) \
        .fixed_batches(cfg.eval_batches)
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / CHECKPOINT
    if ckpt_path.exists() and not cfg.resume:
        raise ValueError(f"{run} already holds a checkpoint; pass resume (--resume) or choose another out dir")
    if cfg.resume and not ckpt_path.exists():
        raise ValueError(f"nothing to resume: {ckpt_path} does not exist")

    model = prepare_model(build_model(cfg, vocab, (data_meta.get("tokenizer") or {}).get("eos_token_id")), cfg, device)
    opt = Optimizers(model, cfg, device)
    description, digest = config_identity(model)
    identity = {"model": description, "config_sha256": digest, "precision": cfg.precision,
                "stochastic_rounding": cfg.stochastic_rounding, "vocab_size": vocab, "select": cfg.select}
    step, position = 0, 0
    if cfg.resume:
        tensors, ckpt = read_checkpoint(ckpt_path)
        check_compatible(ckpt, identity, ckpt_path)
        load_into(tensors, ckpt, model, opt, device)
        step, position = ckpt["step"], ckpt["data_position"]
        del tensors
    else:
        torch.manual_seed(cfg.seed)
    graphs = use_cuda_graphs(cfg, device)
    if cuda_graphs_asked(cfg, device) and not graphs:
        warnings.warn(f"the compiled blocks launch their kernels one by one, not as CUDA graphs: {cuda_graphs_blocker(cfg)}")
    fwd = compile_blocks(model, graphs) if cfg.compile else model
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    log = _Log(run / LOG, step if cfg.resume else None)
    tokens_per_step = cfg.batch_size * cfg.seq_len * cfg.grad_accum

    pending: list[tuple[int, torch.Tensor]] = []  # (step, loss on device): checked at log/eval/save points only
    train_losses: list[tuple[int, float]] = []
    rates: list[float] = []

    def drain() -> None:
        """Move pending losses to the host; stop at the first non-finite one (before anything is saved)."""
        if not pending:
            return
        values = torch.stack([loss for _, loss in pending]).tolist()
        for (s, _), v in zip(pending, values):
            if not math.isfinite(v):
                pending.clear()
                raise FloatingPointError(
                    f"loss is {v} at step {s}: training stopped; the last good checkpoint ({ckpt_path}) is kept")
            train_losses.append((s, v))
        pending.clear()

    def save(at_step: int) -> None:
        meta = {**identity, "step": at_step, "data_position": position, "scheduler_step": at_step,
                "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        save_checkpoint(ckpt_path, model, opt, meta)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.precision}", disable=not cfg.progress)
    t_last, tokens_since = time.perf_counter(), 0
    while step < cfg.steps:
        lr = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, min_lr)
        opt.set_lr(lr)
        total = None
        for _ in range(cfg.grad_accum):
            x, y = train_data.batch(position)
            position += 1
            graph_step_begin(graphs)
            with autocast_ctx(cfg, device):
                loss = next_token_loss(fwd, x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            (loss / cfg.grad_accum).backward()
            total = loss.detach() if total is None else total + loss.detach()
        if cfg.clip:
            opt.clip(cfg.clip)
        opt.step()
        opt.zero_grad()
        pending.append((step + 1, total / cfg.grad_accum))
        step += 1
        tokens_since += tokens_per_step
        bar.update(1)
        last = step == cfg.steps
        if step % cfg.log_every == 0 or last:
            drain()
            now = time.perf_counter()
            rate = tokens_since / (now - t_last)
            rates.append(rate)
            peak = peak_memory(device)
            log.write({"step": step, "loss": train_losses[-1][1], "lr": lr, "tokens_per_s": round(rate, 1),
                       "peak_memory_mb": None if peak is None else round(peak / 2**20, 1)})
            bar.set_postfix(loss=f"{train_losses[-1][1]:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:.0f}",
                            mem="n/a" if peak is None else f"{peak / 2**30:.1f}G", refresh=False)
        if step % cfg.eval_every == 0 or last:
            drain()
            model.eval()
            val = evaluate(fwd, val_batches, cfg, device, graphs)
            model.train()
            log.write({"step": step, "val_loss": val})
            if not math.isfinite(val):
                raise FloatingPointError(f"validation loss is {val} at step {step}: training stopped; "
                                         f"the last good checkpoint ({ckpt_path}) is kept")
        if (cfg.save_every and step % cfg.save_every == 0) or last:
            drain()
            save(step)
        if step % cfg.log_every == 0 or last:
            t_last, tokens_since = time.perf_counter(), 0  # eval and save time is not training throughput
    bar.close()

    val_losses = [(r["step"], r["val_loss"]) for r in log.records if "val_loss" in r]
    if cfg.plot:
        plot_losses(log.records, run / "loss.png", f"{description}, {cfg.precision}")
    peak = peak_memory(device)
    summary = {
        **identity, "steps": step, "run_dir": str(run), "checkpoint": str(ckpt_path), "device": str(device),
        "tokens_per_step": tokens_per_step, "train_losses": train_losses,
        "final_train_loss": train_losses[-1][1] if train_losses else None,
        "val_losses": val_losses, "final_val_loss": val_losses[-1][1] if val_losses else None,
        "tokens_per_s_median": sorted(rates)[len(rates) // 2] if rates else None,
        "peak_memory_bytes": peak, "config": {k: v for k, v in asdict(cfg).items()},
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
