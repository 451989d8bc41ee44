"""`lowbit bench generate`: end-to-end greedy generation per quantization scheme — seed 000's
inference table (seconds per item, tokens/s) for Llama-2-7B- and 13B-shaped models.

For each model and scheme: build the model (random weights in the real shapes, or a local
checkpoint), quantize it with `lowbit.quantize(model, method, "no-lm_head")`, then generate
`new_tokens` greedily after a `prompt_len`-token prompt into a static KV cache. One warm-up
generate, then timed ones; speedups are against bf16 in the same run, on the same prompt.

How decoding is run. A decode step at batch 1 is a few hundred small kernels; launched one by
one from Python the GPU idles between them and every scheme looks alike. So the step is captured
once in a CUDA graph (`torch.cuda.CUDAGraph`) and replayed: its inputs and outputs are static
tensors (the current token, its position, the output buffer, a step counter, a count of
non-finite logits), all advanced *inside* the graph, so the decode loop is `graph.replay()` with
no host work and one synchronize at the end. Transformers' `StaticCache` keeps fixed-address K/V
tensors and its own position counter on the device, so the captured step writes the cache and
builds its attention mask from device tensors only. The alternative, `torch.compile(mode=
"reduce-overhead")`, also ends in CUDA graphs but compiles each model and scheme for about a
minute, and any graph break in a quantized layer silently leaves parts eager; a hand-captured
graph takes a second and either captures the whole step or fails loudly. Inside the graph the
step is still ~30 small kernels a layer (norms, rotary embedding, activations); on CUDA each decoder
layer is therefore compiled for the decode step (`--compile`, the default there; ~30 s a model: one
graph a layer, as they differ in the cache layer they write), which fuses them, and the compiled
step is captured like the eager one. H100, 7B, bf16: 8.26 → 6.36 ms a step; W4A16: 5.54 → 3.61 ms
(docs/benchmarks/README.md, session 6). Before capture, one
eager step runs with `torch.cuda.set_sync_debug_mode("error")`: a layer that synchronizes with
the host (`.item()`, a pageable host-to-device copy) cannot be captured, and that scheme then
runs eagerly, said so in its row (`decode: eager (...)`) rather than failing the run.
Prefill runs eagerly once per generate. `--no-graph` runs every scheme eagerly; on the CPU
(smoke tests only) decoding is always eager.

Timing: `torch.cuda.synchronize` + `perf_counter` around prefill and around the decode loop.
- prefill ms: the prompt's forward pass, which also yields the first new token;
- decode tokens/s: batch × (new_tokens - 1) / decode seconds (the decode steps' tokens);
- s/item: seconds of the whole generate (prefill + decode) divided by the batch size: the
  processing time per generated sequence that seed 000 reports;
- peak memory: `torch.cuda.max_memory_allocated` from after quantization through warm-up,
  graph capture and the timed generates (model + KV cache + activations and dequantized weights);
- model bytes: parameters and buffers as stored (`lowbit.measure.model_bytes`).
Sanity: the count of non-finite logits over every step, and the agreement of each scheme's
generated tokens with bf16's (leading tokens equal, and the fraction equal position by position).
Random weights are not a language model: quantization noise can flip a greedy choice early, so a
low agreement is recorded, not an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..measure import environment, model_bytes
from ..methods import FP8, LLMInt8, NF4, RTN, W8A8
from ..models.attention import use_decode_attention
from ..models.fuse import fuse_projections
from ..models.fused_norms import fuse_norms
from ..models.hf import repeated_blocks
from . import peers
from .report import first_line

# Llama-2 shapes (Touvron et al. 2023); random weights, real sizes.
MODELS = {
    "7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32),
    "13b": dict(num_hidden_layers=40, hidden_size=5120, intermediate_size=13824, num_attention_heads=40, num_key_value_heads=40),
    # CPU smoke tests: the same code path in milliseconds
    "tiny": dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=256),
}
LLAMA2 = dict(vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)


@dataclass(frozen=True)
class Scheme:
    label: str  # as in the report
    method: object | None  # a lowbit method config; None for the float model or an external builder
    external: str | None = None  # a peer scheme of `bench.peers`


SCHEMES = {
    "bf16": Scheme("bf16", None),
    "w8a16": Scheme("W8A16 (RTN int8 per-channel)", RTN(bits=8)),
    "w4a16-g128": Scheme("W4A16 g128 (RTN int4 asym)", RTN(bits=4, granularity="group", group_size=128, symmetric=False)),
    "nf4": Scheme("NF4 (block 64)", NF4()),
    "w8a8-int8": Scheme("W8A8 int8 (per-token act)", W8A8(act_granularity="token", weight_granularity="channel")),
    "fp8": Scheme("FP8 e4m3 weight-only", FP8()),
    "llm-int8": Scheme("LLM.int8() (threshold 6)", LLMInt8()),
}
if "activations" in {f.name for f in dataclasses.fields(FP8)}:  # FP8 × FP8 matmuls, where this lowbit has them
    SCHEMES["w8a8-fp8"] = Scheme("W8A8 FP8 e4m3 (per-token act)", FP8(activations="token"))

# Other libraries' schemes, side by side where they are installed (`bench.peers`)
EXTERNAL = {name: Scheme(label, None, name) for name, label in peers.PEERS.items()}
DEFAULT_SCHEMES = list(SCHEMES)


# lowbit's split-KV kernel for the one-token steps (`models.attention`; the default: 7B decode step, H200, session 20:
# 7.3 µs a layer against SDPA's 11.0 alone), or transformers' SDPA (cuDNN's kernel on the H200)
ATTENTION = ("lowbit", "sdpa")


def available_schemes() -> dict[str, Scheme]:
    """lowbit's schemes, plus bitsandbytes' and torchao's where those packages import."""
    schemes = dict(SCHEMES)
    for name, scheme in EXTERNAL.items():
        if peers.importable(name):
            schemes[name] = scheme
    return schemes


def resolve_schemes(names: list[str]) -> list[str]:
    """Validated scheme names, bf16 first (the baseline of speedups and agreement) when given."""
    known = available_schemes()
    missing_ext = [n for n in names if n in EXTERNAL and n not in known]
    unknown = [n for n in names if n not in known and n not in EXTERNAL]
    if unknown:
        raise ValueError(f"unknown scheme {', '.join(map(repr, unknown))}; valid schemes: {', '.join(known)}"
                         + (f" (and, when installed, {', '.join(n for n in EXTERNAL if n not in known)})" if len(known) < len(SCHEMES) + len(EXTERNAL) else ""))
    if missing_ext:
        print(f"skipping {', '.join(missing_ext)}: {', '.join(sorted({peers.library(n) for n in missing_ext}))} not installed", flush=True)
    names = [n for n in dict.fromkeys(names) if n in known]
    if not names:
        raise ValueError("no scheme left to run")
    return sorted(names, key=lambda n: n != "bf16")


# ----------------------------------------------------------------------------------------------
# models


def build_model(name: str, device: torch.device, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> nn.Module:
    """A Llama of preset `name` with seeded random weights, made directly on `device` in `dtype`
    (never a 13B model in fp32 on the CPU), or a local checkpoint directory."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    if name in MODELS:
        config = LlamaConfig(**{**LLAMA2, **MODELS[name]})
        torch.manual_seed(seed)
        with torch.device(device):  # HF's init, normal(0, 0.02), runs on the device
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
        if _device_of(model).type != device.type:  # a transformers that ignores the device context: move it, slowly
            print(f"    note: the model was built on {_device_of(model)}, moving it to {device}", flush=True)
            model = model.to(device)
        return model.eval()
    path = Path(name)
    if not path.is_dir():
        raise ValueError(f"model {name!r} is neither a preset ({', '.join(MODELS)}) nor a local checkpoint directory")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.to(device).eval()


def quantize_model(model: nn.Module, scheme: Scheme) -> nn.Module:
    """Quantize every linear but the LM head, in place, with lowbit's method or the external library."""
    from .. import api

    if scheme.external:
        from ..select import select_modules

        return peers.quantize(model, scheme.external, select_modules(model, "no-lm_head"))
    if scheme.method is not None:
        with torch.device(_device_of(model)):  # the layers' buffers are made on the GPU, not filled on the CPU first
            api.quantize(model, scheme.method, "no-lm_head")
    return model


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------------------------
# generation


class StaticGenerator:
    """Greedy generation into a transformers `StaticCache`, one decode step as a CUDA graph.

        gen = StaticGenerator(model, batch=1, prompt_len=128, new_tokens=128, graph=True)
        gen.warmup(prompt)            # compiles kernels, captures the decode step
        tokens, t = gen.generate(prompt)

    Every state the step reads or writes lives in a tensor of fixed address, advanced inside the
    step: so the eager step and its graph replay are the same code."""

    def __init__(self, model: nn.Module, batch: int, prompt_len: int, new_tokens: int, graph: bool = True, compile: bool = False):
        from transformers import StaticCache

        if new_tokens < 1 or prompt_len < 1 or batch < 1:
            raise ValueError(f"batch, prompt_len and new_tokens must be >= 1, got {batch}, {prompt_len}, {new_tokens}")
        self.model, self.batch, self.prompt_len, self.new_tokens = model, batch, prompt_len, new_tokens
        self.device = _device_of(model)
        self.use_graph = graph and self.device.type == "cuda"
        self.cache = StaticCache(config=model.config, max_cache_len=prompt_len + new_tokens)
        kw = dict(device=self.device, dtype=torch.long)
        self.token = torch.zeros(batch, 1, **kw)
        self.position = torch.zeros(batch, 1, **kw)
        self.step_index = torch.zeros(1, **kw)
        self.tokens = torch.zeros(batch, new_tokens, **kw)
        self.nonfinite = torch.zeros((), **kw)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.mode = "graph" if self.use_graph else "eager"
        self.layers = _decoder_layers(model) if compile else []
        if compile:
            torch._dynamo.reset()  # earlier models' graphs count towards the recompile limit of the same layer code
            for layer in self.layers:  # compiled for the decode step only: prefill runs eagerly (`_eager`)
                layer.compile(dynamic=False)
            self.mode += " (layers compiled)"

    @torch.no_grad()
    def prefill(self, prompt: torch.Tensor) -> None:
        if prompt.shape != (self.batch, self.prompt_len):
            raise ValueError(f"prompt must be [{self.batch}, {self.prompt_len}] token ids, got {tuple(prompt.shape)}")
        self.cache.reset()
        positions = torch.arange(self.prompt_len, device=self.device).expand(self.batch, -1)
        with _eager(bool(self.layers)):
            out = self.model(input_ids=prompt.to(self.device), position_ids=positions, past_key_values=self.cache, use_cache=True,
                             logits_to_keep=1)
        logits = out.logits[:, -1]
        first = logits.argmax(-1, keepdim=True)
        self.tokens.zero_()
        self.tokens[:, :1] = first
        self.token.copy_(first)
        self.position.fill_(self.prompt_len)
        self.step_index.fill_(1)
        self.nonfinite.copy_((~torch.isfinite(logits)).sum())

    @torch.no_grad()
    def step(self) -> None:
        """One decode step: the next token of every sequence from the current one, all on the device."""
        out = self.model(input_ids=self.token, position_ids=self.position, past_key_values=self.cache, use_cache=True)
        logits = out.logits[:, -1]
        nxt = logits.argmax(-1, keepdim=True)
        self.tokens.index_copy_(1, self.step_index, nxt)
        self.token.copy_(nxt)
        self.position.add_(1)
        self.step_index.add_(1)
        self.nonfinite.add_((~torch.isfinite(logits)).sum())

    def warmup(self, prompt: torch.Tensor) -> None:
        """Run every kernel once (Triton JIT, cuBLAS handles), then capture the decode step, or
        fall back to eager decoding when the step synchronizes with the host."""
        self.prefill(prompt)  # allocates the cache's K/V tensors: their addresses are fixed from here on
        if self.layers:  # one graph a layer: they differ only in which cache layer they write (`layer_idx`)
            limit = max(torch._dynamo.config.recompile_limit, 2 * len(self.layers))
            torch._dynamo.config.recompile_limit = limit
            torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, limit)
        if not self.use_graph:
            self.step()
            return
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        try:
            with torch.cuda.stream(stream):
                self.step()  # first call: compiles and autotunes outside the sync check
                torch.cuda.set_sync_debug_mode("error")
                try:
                    self.step()
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step()
            self.graph = graph
        except RuntimeError as e:
            torch.cuda.current_stream(self.device).wait_stream(stream)
            torch.cuda.synchronize(self.device)
            self.graph = None
            self.mode = f"eager ({first_line(e)})"
            print(f"    decode step cannot be a CUDA graph, running it eagerly: {first_line(e)}", flush=True)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(new tokens [batch, new_tokens], timings in seconds) of one greedy generate."""
        _sync(self.device)
        t0 = time.perf_counter()
        self.prefill(prompt)
        _sync(self.device)
        t1 = time.perf_counter()
        for _ in range(self.new_tokens - 1):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.step()
        _sync(self.device)
        t2 = time.perf_counter()
        return self.tokens.clone(), {"prefill_s": t1 - t0, "decode_s": t2 - t1, "total_s": t2 - t0}


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The model's decoder layers, the part of a step worth compiling: their norms, rotary embedding and
    activations are a few dozen small kernels a layer when eager."""
    layers = repeated_blocks(model)
    if not layers:
        raise ValueError("compile=True needs a model with a list of decoder layers")
    return layers


def _eager(on: bool):
    """Run compiled modules eagerly inside (prefill: one compile for the decode step's shapes only)."""
    return torch.compiler.set_stance("force_eager") if on else contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def greedy_generate(model: nn.Module, prompt: torch.Tensor, new_tokens: int, graph: bool = True, compile: bool = False) -> torch.Tensor:
    """The new tokens of a greedy generate with a static cache (the bench's loop, untimed)."""
    gen = StaticGenerator(model, prompt.shape[0], prompt.shape[1], new_tokens, graph=graph, compile=compile)
    gen.warmup(prompt)
    return gen.generate(prompt)[0].cpu()


# ----------------------------------------------------------------------------------------------
# the bench


def bench_scheme(model_name: str, scheme_name: str, prompt: torch.Tensor, new_tokens: int, device: torch.device,
                 graph: bool, repeats: int, dtype: torch.dtype, seed: int, compile: bool = False,
                 attention: str = "lowbit", fuse: bool = True, norms: bool = False) -> tuple[dict, torch.Tensor]:
    scheme = available_schemes()[scheme_name]
    print(f"  [{model_name}] {scheme_name}: build, quantize, warm up ...", flush=True)
    t = time.perf_counter()
    model = build_model(model_name, device, dtype, seed)
    fused = fuse_projections(model) if fuse else 0  # every scheme, bf16 too: the speedups compare the same model
    if attention == "lowbit":
        use_decode_attention(model)
    _sync(device)
    built = time.perf_counter() - t
    t = time.perf_counter()
    quantize_model(model, scheme)
    fused_norms = fuse_norms(model) if norms else 0  # the weight-only schemes' norms into their GEMVs
    _sync(device)
    quantize_s = time.perf_counter() - t
    size = model_bytes(model)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    gen = StaticGenerator(model, prompt.shape[0], prompt.shape[1], new_tokens, graph=graph, compile=compile)
    t = time.perf_counter()
    gen.warmup(prompt)
    gen.generate(prompt)  # the warm-up generate
    warm_s = time.perf_counter() - t
    runs = [gen.generate(prompt) for _ in range(repeats)]
    tokens = runs[-1][0].cpu()
    timing = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
    batch = prompt.shape[0]
    row = {
        "model": model_name, "scheme": scheme_name, "label": scheme.label, "decode": gen.mode,
        "batch": batch, "prompt_len": prompt.shape[1], "new_tokens": new_tokens,
        "tokens_per_s": batch * (new_tokens - 1) / timing["decode_s"] if new_tokens > 1 else None,
        "e2e_tokens_per_s": batch * new_tokens / timing["total_s"],
        "s_per_item": timing["total_s"] / batch, "generate_s": timing["total_s"],
        "prefill_ms": 1e3 * timing["prefill_s"], "decode_s": timing["decode_s"],
        "ms_per_step": 1e3 * timing["decode_s"] / max(1, new_tokens - 1),
        "peak_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "model_bytes": size, "nonfinite_logits": int(gen.nonfinite), "build_s": built, "quantize_s": quantize_s, "fused_groups": fused,
        "fused_norms": fused_norms, "warmup_s": warm_s,
    }
    print(f"  [{model_name}] {scheme_name:<13} build {built:5.1f} s  quantize {quantize_s:5.1f} s  warm-up {warm_s:5.1f} s  "
          f"prefill {row['prefill_ms']:7.1f} ms  {row['tokens_per_s'] or 0:8.1f} tok/s  {row['s_per_item']:.2f} s/item  decode {gen.mode}",
          flush=True)
    del gen, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row, tokens


def _error_row(model_name: str, scheme_name: str, e: BaseException) -> dict:
    return {"model": model_name, "scheme": scheme_name, "label": available_schemes()[scheme_name].label, "error": f"{type(e).__name__}: {first_line(e)}"}


def run(models=("7b",), schemes=None, batch: int = 1, prompt_len: int = 128, new_tokens: int = 128, device: str | None = None,
        graph: bool = True, repeats: int = 1, out: str | None = None, seed: int = 0, dtype: torch.dtype = torch.bfloat16,
        command: str | None = None, compile: bool | None = None, attention: str = "lowbit", fuse: bool = True,
        norms: bool = False) -> dict:
    """Every (model, scheme) row; writes results.json, report.md and tokens_per_s.png into `out`.
    `compile`: compile the decoder layers for the decode step (default: on CUDA). `fuse`: q/k/v and gate/up as one
    linear each (`models.fuse`), for every scheme. `norms`: each decoder layer's RMSNorms computed inside the weight-only
    GEMVs that read them (`models.fused_norms`; the schemes whose layers take them; off by default until timed on a GPU)."""
    names = resolve_schemes(list(schemes or DEFAULT_SCHEMES))
    if device is None:
        if not torch.cuda.is_available():
            raise ValueError("bench generate needs a CUDA GPU; pass --device cpu for a smoke test (tiny model only)")
        device = "cuda"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available; pass --device cpu for a smoke test (tiny model only)")
    if dev.type == "cpu" and any(m in ("7b", "13b") for m in models):
        raise ValueError("the 7b/13b models are for the GPU; on --device cpu use --models tiny")
    if attention not in ATTENTION:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION)}, got {attention!r}")
    if batch < 1 or prompt_len < 1 or new_tokens < 1 or repeats < 1:
        raise ValueError("batch, prompt-len, new-tokens and repeats must be >= 1")
    compile = dev.type == "cuda" if compile is None else compile
    rows = []
    for model_name in models:
        vocab = MODELS[model_name].get("vocab_size", LLAMA2["vocab_size"]) if model_name in MODELS else _checkpoint_vocab(model_name)
        prompt = torch.randint(3, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(seed + 1))
        print(f"[{model_name}] batch {batch}, prompt {prompt_len}, new tokens {new_tokens}, schemes {', '.join(names)}", flush=True)
        reference = None
        for scheme_name in names:
            try:
                row, tokens = bench_scheme(model_name, scheme_name, prompt, new_tokens, dev, graph, repeats, dtype, seed, compile, attention, fuse,
                                           norms)
            except torch.OutOfMemoryError as e:
                row, tokens = _error_row(model_name, scheme_name, e), None
                row["error"] = "out of memory"
                print(f"  [{model_name}] {scheme_name}: out of memory", flush=True)
            except Exception as e:  # one scheme's failure (an external library, a kernel) must not lose the others
                if scheme_name == "bf16" or dev.type == "cpu":
                    raise
                row, tokens = _error_row(model_name, scheme_name, e), None
                print(f"  [{model_name}] {scheme_name}: FAILED {row['error']}", flush=True)
            gc.collect()  # a failed scheme's model lives in its traceback's frames until collected
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            if scheme_name == "bf16":
                reference = tokens
            if tokens is not None and reference is not None and scheme_name != "bf16":
                same = tokens == reference
                row["agree_frac"] = same.float().mean().item()
                row["agree_prefix"] = int(same.all(0).long().cumprod(0).sum())
            rows.append(row)
        _add_speedups(rows, model_name)
    result = {"env": environment(dev), "command": command or " ".join(sys.argv),
              "settings": dict(models=list(models), schemes=names, batch=batch, prompt_len=prompt_len, new_tokens=new_tokens,
                               device=str(dev), graph=graph, compile=compile, attention=attention, fuse=fuse, norms=norms, repeats=repeats, dtype=str(dtype).removeprefix("torch."),
                               seed=seed),
              "rows": rows}
    if out:
        write_outputs(result, Path(out))
    return result


def _checkpoint_vocab(path: str) -> int:
    from transformers import AutoConfig

    if not Path(path).is_dir():
        raise ValueError(f"model {path!r} is neither a preset ({', '.join(MODELS)}) nor a local checkpoint directory")
    return AutoConfig.from_pretrained(path).vocab_size


def _add_speedups(rows: list[dict], model_name: str) -> None:
    mine = [r for r in rows if r["model"] == model_name and "error" not in r]
    base = next((r for r in mine if r["scheme"] == "bf16"), None)
    for r in mine:
        r["speedup_vs_bf16"] = base["s_per_item"] / r["s_per_item"] if base else None
        r["decode_speedup_vs_bf16"] = r["tokens_per_s"] / base["tokens_per_s"] if base and base["tokens_per_s"] else None


def command_line(args) -> str:
    """The `lowbit bench generate` command that reproduces a run, every setting spelled out."""
    parts = ["lowbit", "bench", "generate", "--models", *args.models]
    if args.schemes:
        parts += ["--schemes", *args.schemes]
    parts += ["--batch", str(args.batch), "--prompt-len", str(args.prompt_len), "--new-tokens", str(args.new_tokens),
              "--repeats", str(args.repeats), "--seed", str(args.seed)]
    parts += ["--no-graph"] * args.no_graph + {True: ["--compile"], False: ["--no-compile"], None: []}[args.compile]
    parts += ["--device", args.device] if args.device else []
    parts += ["--attention", args.attention]
    parts += [] if args.fuse else ["--no-fuse"]
    parts += ["--fuse-norms"] if args.fuse_norms else []
    parts += ["--out", args.out]
    return shlex.join(parts)


# ----------------------------------------------------------------------------------------------
# report


def _gb(b) -> str:
    return "-" if b is None else f"{b / 1e9:.2f}"


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def format_tables(result: dict) -> list[str]:
    rows = result["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    by = {(r["model"], r["scheme"]): r for r in rows}
    label = {r["scheme"]: r["label"] for r in rows}
    lines = ["### Processing time (seconds per item) — seed 000's table", "",
             "| GPU | model | " + " | ".join(label[s] for s in schemes) + " |", "|---|---|" + "---:|" * len(schemes)]
    gpu = result["env"].get("gpu") or result["env"].get("cpu") or "cpu"
    for m in models:
        cells = []
        for s in schemes:
            r = by.get((m, s))
            cells.append("-" if r is None else ("OOM" if r.get("error") == "out of memory" else "failed" if "error" in r else f"{r['s_per_item']:.2f}"))
        lines.append(f"| {gpu} | {m} | " + " | ".join(cells) + " |")
    lines += ["", "### Per scheme", "",
              "| model | scheme | decode tok/s | × bf16 | s/item | × bf16 | prefill ms | ms/step | peak GB | model GB | "
              "agree w/ bf16 (prefix / frac) | non-finite | decode | quantize s |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['label']} | {r['error']} |" + " |" * 11)
            continue
        agree = "-" if r.get("agree_frac") is None else f"{r['agree_prefix']} / {r['agree_frac']:.2f}"
        lines.append(
            f"| {r['model']} | {r['label']} | {_f(r['tokens_per_s'], '.1f')} | {_f(r.get('decode_speedup_vs_bf16'), '.2f')} "
            f"| {r['s_per_item']:.3f} | {_f(r.get('speedup_vs_bf16'), '.2f')} | {r['prefill_ms']:.1f} | {r['ms_per_step']:.2f} "
            f"| {_gb(r['peak_bytes'])} | {_gb(r['model_bytes'])} | {agree} | {r['nonfinite_logits']} | {r['decode']} | {r['quantize_s']:.1f} |"
        )
    return lines


def write_outputs(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    env, s = result["env"], result["settings"]
    versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "triton", "transformers", "bitsandbytes", "torchao") if env.get(k))
    lines = [
        "# Greedy generation per quantization scheme", "",
        f"- GPU: {env.get('gpu') or 'none (' + str(env.get('cpu')) + ', smoke test)'}; driver {env.get('driver') or '-'}; CUDA {env.get('cuda') or '-'}",
        f"- {versions}; Python {env['python']}",
        f"- command: `{result['command']}`",
        f"- batch {s['batch']}, prompt {s['prompt_len']} tokens, {s['new_tokens']} new tokens, greedy, static KV cache, "
        f"{s['dtype']} activations, decode step as a CUDA graph: {s['graph'] and s['device'] != 'cpu'}, decoder layers compiled: {s.get('compile', False)}, attention: {s.get('attention', 'sdpa')}, q/k/v and gate/up fused: {s.get('fuse', False)}, RMSNorms fused into the weight-only GEMVs: {s.get('norms', False)}, timed generates: {s['repeats']} (median) after one warm-up",
        "- models: Llama-2 shapes with seeded random weights (or a local checkpoint); every linear but lm_head quantized",
        "",
        *format_tables(result), "",
        "decode tok/s = batch × (new tokens − 1) / decode seconds; s/item = (prefill + decode) seconds / batch; "
        "peak GB = max allocated from after quantization through warm-up and the timed generates; "
        "agreement = leading generated tokens equal to bf16's / fraction of equal positions (random weights: "
        "a flipped greedy choice changes the rest, so low agreement is not an error).",
        "", "![tokens per second](tokens_per_s.png)", "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    try:  # last: a machine without matplotlib still keeps the numbers
        plot_tokens_per_s(result, out / "tokens_per_s.png")
    except ImportError as e:
        print(f"no tokens_per_s.png: {e}", flush=True)


def plot_tokens_per_s(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "error" not in r and r.get("tokens_per_s")]
    models = list(dict.fromkeys(r["model"] for r in result["rows"]))
    schemes = list(dict.fromkeys(r["scheme"] for r in result["rows"]))
    label = {r["scheme"]: r["label"] for r in result["rows"]}
    by = {(r["model"], r["scheme"]): r["tokens_per_s"] for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models) * len(schemes) / 2 + 3), 4.8))
    width = 0.8 / max(1, len(schemes))
    colors = plt.get_cmap("tab10").colors
    for j, s in enumerate(schemes):
        xs = [i + (j - (len(schemes) - 1) / 2) * width for i in range(len(models))]
        ys = [by.get((m, s), 0.0) for m in models]
        bars = ax.bar(xs, ys, width, label=label[s], color=colors[j % len(colors)])
        for bar, y in zip(bars, ys):
            ax.text(bar.get_x() + bar.get_width() / 2, y, f"{y:.0f}" if y else "n/a", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("decode tokens / s")
    s = result["settings"]
    ax.set_title(f"{result['env'].get('gpu') or 'CPU smoke test'} — batch {s['batch']}, prompt {s['prompt_len']}, {s['new_tokens']} new tokens", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_summary(result: dict) -> None:
    print("\n".join(format_tables(result)))
