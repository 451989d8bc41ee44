"""Token shards: raw, memory-mappable `.bin` files of token ids plus a small `meta.json`.

Layout of a data dir:
    meta.json             {"format", "dtype", "vocab_size", "tokenizer", "splits": {split: {"tokens", "shards"}}}
    train_00000.bin ...   token ids, native little-endian uint16 (vocab <= 65535) or uint32, no header
    val_00000.bin ...

`TokenShards` cuts each shard into windows of seq_len + 1 tokens (stride seq_len, as nanoGPT) and
serves batch number `position` of a seeded shuffle of those windows, epoch after epoch. The data
position of a run is that one integer: a checkpoint stores it, and a resumed run gets the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

META = "meta.json"
FORMAT = "lowbit-token-shards-v1"
DTYPES = ("uint16", "uint32")


def shard_dtype(vocab_size: int) -> str:
    """uint16 when every id fits (vocab <= 65535), else uint32."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    return "uint16" if vocab_size <= 65535 else "uint32"


def read_meta(data_dir: str | Path) -> dict:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"token shard dir {str(data_dir)!r} does not exist (make one with `lowbit tokenize`)")
    path = data_dir / META
    if not path.is_file():
        raise ValueError(f"{str(data_dir)!r} holds no {META}: not a token shard dir (make one with `lowbit tokenize`)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("dtype") not in DTYPES:
        raise ValueError(f"{path}: dtype {meta.get('dtype')!r} is not one of {', '.join(DTYPES)}")
    if meta["dtype"] != shard_dtype(meta["vocab_size"]):
        raise ValueError(f"{path}: dtype {meta['dtype']} does not match vocab_size {meta['vocab_size']} "
                         f"(expected {shard_dtype(meta['vocab_size'])})")
    return meta


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shards(
    token_ids: Iterable,
    out_dir: str | Path,
    split: str,
    shard_tokens: int = 1 << 26,
    *,
    vocab_size: int,
    tokenizer: dict | None = None,
) -> dict:
    """Write token ids as `{split}_NNNNN.bin` shards of `shard_tokens` ids and record the split in meta.json.

    `token_ids` is a 1-D array/tensor or an iterable of 1-D chunks (streamed: at most ~1.5 shards are
    held in memory). Every shard but the last holds exactly `shard_tokens`; the last holds the rest,
    and a remainder of at most half a shard joins the one before, so no shard is a sliver. Other splits
    already in the dir are kept; this split's old shards are replaced. Returns the split's entry."""
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be >= 1, got {shard_tokens}")
    if not split or not split.isidentifier():
        raise ValueError(f"split must be a plain name like 'train' or 'val', got {split!r}")
    dtype = np.dtype(shard_dtype(vocab_size))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = read_meta(out) if (out / META).is_file() else {"format": FORMAT, "dtype": dtype.name, "vocab_size": vocab_size,
                                                           "tokenizer": tokenizer, "splits": {}}
    if meta["vocab_size"] != vocab_size or (tokenizer is not None and meta.get("tokenizer") not in (None, tokenizer)):
        raise ValueError(f"{out} already holds shards of another tokenizer/vocab ({meta['vocab_size']}, "
                         f"{meta.get('tokenizer')}); write into a new dir")
    for old in out.glob(f"{split}_*.bin"):
        old.unlink()

    if isinstance(token_ids, (np.ndarray, torch.Tensor)):
        token_ids = [token_ids]
    shards, buf, n_buf = [], [], 0

    def flush(n: int) -> None:
        nonlocal buf, n_buf
        flat = np.concatenate(buf) if len(buf) > 1 else buf[0]
        name = f"{split}_{len(shards):05d}.bin"
        _write_atomic(out / name, flat[:n].astype(dtype, copy=False).tobytes())
        shards.append({"file": name, "tokens": int(n)})
        rest = flat[n:]
        buf, n_buf = ([rest] if rest.size else []), int(rest.size)

    for chunk in token_ids:
        arr = chunk.numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        arr = arr.reshape(-1)
        if arr.size == 0:
            continue
        if arr.dtype.kind not in "iu":
            raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"token id {lo if lo < 0 else hi} is outside the vocabulary [0, {vocab_size})")
        buf.append(arr)
        n_buf += arr.size
        while n_buf > shard_tokens + shard_tokens // 2:
            flush(shard_tokens)
    if n_buf:
        flush(n_buf)
    if not shards:
        raise ValueError(f"no tokens for split {split!r}")
    entry = {"tokens": sum(s["tokens"] for s in shards), "shards": shards}
    meta["splits"][split] = entry
    _write_atomic(out / META, (json.dumps(meta, indent=2) + "\n").encode())
    return entry


class TokenShards:
    """Deterministic [batch_size, seq_len] batches (x, y = x shifted by one) from one split's shards."""

    def __init__(self, data_dir: str | Path, split: str, *, batch_size: int, seq_len: int, seed: int = 0, shuffle: bool = True):
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        self.dir, self.split = Path(data_dir), split
        self.meta = read_meta(self.dir)
        if split not in self.meta["splits"]:
            raise ValueError(f"{self.dir} has no split {split!r}; it has {', '.join(self.meta['splits']) or 'none'}")
        self.vocab_size, self.dtype = self.meta["vocab_size"], np.dtype(self.meta["dtype"])
        self.batch_size, self.seq_len, self.seed, self.shuffle = batch_size, seq_len, seed, shuffle
        self._maps, counts = [], []
        for shard in self.meta["splits"][split]["shards"]:
            path = self.dir / shard["file"]
            if not path.is_file():
                raise ValueError(f"shard {path} listed in {META} is missing")
            size = path.stat().st_size
            if size != shard["tokens"] * self.dtype.itemsize:
                raise ValueError(f"shard {path} holds {size} bytes, but {shard['tokens']} tokens of {self.dtype.name} "
                                 f"are {shard['tokens'] * self.dtype.itemsize}: wrong dtype or a truncated file")
            if shard["tokens"] < seq_len + 1:
                raise ValueError(f"shard {path} holds {shard['tokens']} tokens, fewer than seq_len + 1 = {seq_len + 1}; "
                                 f"use a shorter seq_len or re-tokenize with larger shards")
            self._maps.append(np.memmap(path, dtype=self.dtype, mode="r"))
            counts.append((shard["tokens"] - 1) // seq_len)
        self._starts = np.cumsum([0, *counts])  # first window index of each shard
        self.n_windows = int(self._starts[-1])
        self._perm_epoch, self._perm = -1, None

    @property
    def tokens(self) -> int:
        return int(self.meta["splits"][self.split]["tokens"])

    def _order(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._perm_epoch = epoch
        return self._perm

    def window(self, index: int) -> np.ndarray:
        """Window `index` (0 <= index < n_windows) as seq_len + 1 ids."""
        shard = int(np.searchsorted(self._starts, index, side="right")) - 1
        start = (index - int(self._starts[shard])) * self.seq_len
        return self._maps[shard][start : start + self.seq_len + 1]

    def windows(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(np.stack([self.window(int(i)) for i in indices]).astype(np.int64))
        return rows[:, :-1], rows[:, 1:]

    def batch(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number `position` (>= 0) of the endless sequence: windows position*B ... position*B + B-1
        of the seeded shuffle (a fresh shuffle each epoch), or in file order with shuffle=False."""
        if position < 0:
            raise ValueError(f"position must be >= 0, got {position}")
        picked = []
        for k in range(position * self.batch_size, (position + 1) * self.batch_size):
            epoch, i = divmod(k, self.n_windows)
            picked.append(self._order(epoch)[i] if self.shuffle else i)
        return self.windows(picked)

    def fixed_batches(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """n batches of windows spread evenly over the split (for validation: the same every time)."""
        count = min(n * self.batch_size, self.n_windows)
        picked = np.linspace(0, self.n_windows - 1, count).round().astype(np.int64)
        return [self.windows(picked[i : i + self.batch_size]) for i in range(0, count, self.batch_size)]
