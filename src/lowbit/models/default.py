"""The embedded default model: a small GPT-2 that lowbit pretrains itself on Shakespeare.

Why: quantization studies need a real language model, but the hub may be unreachable.
A GPT-2-architecture model (`GPT2LMHeadModel`, with HF's real `Conv1D` layers and the
tied lm_head/wte) trained for a couple of minutes on the Shakespeare train plays is
small, offline and reproducible enough, and its held-out loss is clearly better than a
unigram model, so quantization damage is measurable.

The first call trains and caches it (`$LOWBIT_CACHE` or `~/.cache/lowbit`); later calls
reuse the cache. Training stops after `steps` optimizer steps when given; otherwise at
the end of the full schedule (`max_steps`) or once `max_seconds` have passed since the
build began (data preparation included), whichever comes first. On a CPU the time limit
decides, so the result depends on the machine (and on how busy it is);
`lowbit_train.json` records what was actually done.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from lowbit.data.shakespeare import VALIDATION_WORKS, read_work, train_text
from lowbit.data.tokenizer import train_bpe_tokenizer
from lowbit.data.windows import tokenize_text, token_windows
from lowbit.measure import evaluate, unigram_loss

DEFAULT_NAME = "gpt2-shakespeare"
TINY_NAME = DEFAULT_NAME + "-tiny"
TRAIN_FACTS = "lowbit_train.json"
SEED = 0
UNDERTRAINED_GAP = 0.75  # nats below the unigram baseline; an idle 2-core CPU reaches ~1.5
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    TRAIN_FACTS,
)


@dataclass(frozen=True)
class TrainSpec:
    """Everything that defines one default-model build (hidden sizes multiples of 128)."""

    name: str
    vocab_size: int
    n_layer: int
    n_embd: int
    n_head: int
    seq_len: int
    batch_size: int
    peak_lr: float
    max_steps: int  # length of the full schedule; a time limit may stop earlier
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    train_chars: int | None = None  # None: the whole train text
    val_windows_per_work: int | None = 40  # first windows of each held-out play; None: all
    val_chars_per_work: int | None = None  # None: whole plays


FULL_SPEC = TrainSpec(
    name=DEFAULT_NAME,
    vocab_size=4096,
    n_layer=4,
    n_embd=256,
    n_head=4,
    seq_len=256,
    batch_size=8,  # small batches: more steps in the CPU time budget beat bigger ones
    peak_lr=2e-3,
    max_steps=2000,  # a GPU gets here in well under a minute; a 2-core CPU stops at ~700
    warmup_frac=0.1,
)

TINY_SPEC = TrainSpec(
    name=TINY_NAME,
    vocab_size=512,
    n_layer=2,
    n_embd=128,
    n_head=2,
    seq_len=64,
    batch_size=8,
    peak_lr=2e-3,
    max_steps=200,
    train_chars=200_000,
    val_windows_per_work=8,
    val_chars_per_work=5_000,
)


# ---------------------------------------------------------------- cache layout


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The lowbit cache folder: `cache_dir`, else `$LOWBIT_CACHE`, else `~/.cache/lowbit`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("LOWBIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lowbit"


def default_model_dir(cache_dir: Path | str | None = None, *, tiny: bool = False) -> Path:
    """Where the default model lives (a separate folder for the tiny test model)."""
    return cache_root(cache_dir) / (TINY_NAME if tiny else DEFAULT_NAME)


def is_complete(model_dir: Path) -> bool:
    """True if every file of a finished build is there and the facts file parses."""
    if not all((model_dir / f).is_file() for f in _REQUIRED_FILES):
        return False
    try:
        json.loads((model_dir / TRAIN_FACTS).read_text())
    except (OSError, ValueError):
        return False
    return True


def read_train_facts(model_dir: Path | str) -> dict:
    """The training facts recorded beside a default model."""
    return json.loads((Path(model_dir) / TRAIN_FACTS).read_text())


# ---------------------------------------------------------------- entry point


def ensure_default_model(
    cache_dir: Path | str | None = None,
    *,
    max_seconds: float = 150,
    steps: int | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    tiny: bool = False,
) -> Path:
    """Return the folder of the cached default model, training it first if missing.

    A cached model is reused as is, whatever `steps`/`max_seconds` say now. The build is
    written into a temporary folder beside the final one and renamed into place, so an
    interrupted run never leaves a half-written cache.
    """
    final = default_model_dir(cache_dir, tiny=tiny)
    if is_complete(final):
        return final
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1 or None, got {steps}")
    spec = TINY_SPEC if tiny else FULL_SPEC
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache should read like any folder
    try:
        facts = build_default_model(spec, tmp, max_seconds, steps, progress, _pick_device(device))
        _move_into_place(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not tiny and steps is None:
        _warn_if_undertrained(facts, final)
    return final


def _warn_if_undertrained(facts: dict, path: Path) -> None:
    """Say so when the time limit left the model weak (e.g. a busy machine), and how to retry."""
    gap = facts["unigram_baseline_loss"] - facts["validation_loss"]
    if gap < UNDERTRAINED_GAP:
        warnings.warn(
            f"default model trained only {facts['steps']} steps in {facts['train_seconds']} s: "
            f"validation loss {facts['validation_loss']:.2f} is just {gap:.2f} nats below the "
            f"unigram baseline. Was the machine busy? Delete {path} to retrain it.",
            stacklevel=3,
        )


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished build to its final name, replacing an incomplete leftover."""
    if is_complete(final):  # another process finished first: keep its build
        return
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)


def _pick_device(device: str | torch.device | None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast where the hardware runs it natively (2x faster on AMX CPUs), else None.

    On CPUs without native bf16, autocast is emulated and slower than fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type != "cpu":
        return None
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:  # private helpers; absent in some torch builds
        native = False
    return torch.bfloat16 if native else None


def _autocast(device: torch.device, amp: torch.dtype | None):
    """An autocast context for the device, or a no-op."""
    return torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()


# ---------------------------------------------------------------- build


def build_default_model(
    spec: TrainSpec,
    out_dir: Path,
    max_seconds: float,
    steps: int | None,
    progress: bool,
    device: torch.device,
) -> dict:
    """Train tokenizer and model per `spec`, save both and the facts into `out_dir`."""
    start = time.perf_counter()
    tokenizer, train_ids, val_windows = prepare_data(spec)
    prep_seconds = time.perf_counter() - start
    torch.manual_seed(SEED)
    model = new_model(spec, tokenizer).to(device)
    amp = _amp_dtype(device)
    seconds_left = max_seconds - (time.perf_counter() - start)  # data prep counts too
    train_facts = train_model(model, train_ids, spec, device, amp, seconds_left, steps, progress)
    eval_start = time.perf_counter()
    val_loss = evaluate(model, val_windows, spec.batch_size).loss  # float32, as every study measures
    baseline = unigram_loss(train_ids, val_windows, len(tokenizer))
    eval_seconds = time.perf_counter() - eval_start
    model.to("cpu").save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    facts = {
        "model": spec.name,
        **train_facts,
        "max_seconds": None if steps is not None else max_seconds,
        "validation_loss": round(val_loss, 4),
        "unigram_baseline_loss": round(baseline, 4),
        "validation_windows": val_windows.shape[0],
        "validation_tokens_scored": val_windows.shape[0] * (val_windows.shape[1] - 1),
        "validation_works": list(VALIDATION_WORKS),
        "train_tokens_available": train_ids.numel(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "amp_dtype": str(amp).replace("torch.", "") if amp else None,
        "torch_threads": torch.get_num_threads(),
        "seed": SEED,
        "spec": asdict(spec),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "prep_seconds": round(prep_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out_dir / TRAIN_FACTS).write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def prepare_data(spec: TrainSpec) -> tuple[PreTrainedTokenizerFast, torch.Tensor, torch.Tensor]:
    """Train the tokenizer on the train text; return it, the train ids and val windows."""
    train = train_text()[: spec.train_chars]
    tokenizer = train_bpe_tokenizer(train, spec.vocab_size, model_max_length=spec.seq_len)
    return tokenizer, tokenize_text(tokenizer, train), validation_windows(tokenizer, spec)


def validation_windows(tokenizer: PreTrainedTokenizerFast, spec: TrainSpec) -> torch.Tensor:
    """The first windows of every held-out play, stacked.

    Taking some windows from each play (not just the first plays' text) keeps the
    validation loss representative while evaluation stays a few seconds on a CPU.
    """
    per_work = [
        token_windows(tokenizer, read_work(name)[: spec.val_chars_per_work],
                      spec.seq_len, spec.val_windows_per_work)
        for name in VALIDATION_WORKS
    ]
    return torch.cat(per_work)


def new_model(spec: TrainSpec, tokenizer: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 sized by `spec` (no dropout: the run is under 1-2 epochs)."""
    for width in (spec.n_embd, 4 * spec.n_embd):
        assert width % 128 == 0, "hidden sizes must be multiples of 128 (group-128 quantization)"
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=spec.seq_len,
        n_embd=spec.n_embd,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


# ---------------------------------------------------------------- training


def next_token_loss(model: GPT2LMHeadModel, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ids[:, 1:] from the prefix (fp32 softmax)."""
    logits = model(input_ids=ids).logits[:, :-1]
    return F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())


def lr_at(progress: float, spec: TrainSpec) -> float:
    """Linear warmup then cosine decay to `min_lr_frac`, as a function of progress in [0, 1]."""
    if progress < spec.warmup_frac:
        return spec.peak_lr * max(progress, 1e-3) / spec.warmup_frac
    t = min(1.0, (progress - spec.warmup_frac) / (1 - spec.warmup_frac))
    floor = spec.peak_lr * spec.min_lr_frac
    return floor + (spec.peak_lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(model: GPT2LMHeadModel, spec: TrainSpec) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, LayerNorms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec.peak_lr, betas=(0.9, 0.95))


def random_batch(ids: torch.Tensor, spec: TrainSpec, gen: torch.Generator) -> torch.Tensor:
    """`batch_size` random windows of `seq_len` tokens from the train ids (seeded)."""
    starts = torch.randint(0, ids.numel() - spec.seq_len + 1, (spec.batch_size,), generator=gen)
    return torch.stack([ids[s : s + spec.seq_len] for s in starts.tolist()])


def train_model(
    model: GPT2LMHeadModel,
    train_ids: torch.Tensor,
    spec: TrainSpec,
    device: torch.device,
    amp: torch.dtype | None,
    seconds: float,
    steps: int | None,
    progress: bool,
) -> dict:
    """Train in place; stop at `steps`, else at `spec.max_steps` or after `seconds`.

    The LR schedule follows progress = the larger of the step and time fractions, so the
    cosine decay completes whichever limit ends the run.
    """
    total_steps = steps if steps is not None else spec.max_steps
    if steps is not None:
        seconds = math.inf
    optimizer = make_optimizer(model, spec)
    gen = torch.Generator().manual_seed(SEED + 1)
    model.train()
    bar = tqdm(total=100, disable=not progress, desc=f"training {spec.name}", unit="%",
               bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
    losses: list[float] = []
    start = time.perf_counter()
    step, frac = 0, 0.0
    while frac < 1.0:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(frac, spec)
        batch = random_batch(train_ids, spec, gen).to(device)
        with _autocast(device, amp):
            loss = next_token_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
        elapsed = time.perf_counter() - start
        frac = max(step / total_steps, elapsed / seconds)
        bar.set_postfix(step=step, loss=f"{losses[-1]:.3f}", refresh=False)
        bar.update(min(100.0, 100 * frac) - bar.n)
    bar.close()
    model.eval()
    last = losses[-10:]
    return {
        "steps": step,
        "tokens_seen": step * spec.batch_size * spec.seq_len,
        "train_seconds": round(time.perf_counter() - start, 1),
        "stopped_by": "steps" if steps is not None else
        ("max_steps" if step >= total_steps else "max_seconds"),
        "final_train_loss": round(sum(last) / len(last), 4),  # mean of the last 10 steps
        "first_train_loss": round(losses[0], 4),
    }
