"""Corpus -> token shards (`lowbit tokenize`): a text file, a folder of .txt files or the embedded
Shakespeare corpus, tokenized with lowbit's default BPE or any Hugging Face tokenizer.

Documents are joined with the tokenizer's end-of-text token. Validation is held out by whole
document where there are several (the last files of the sorted folder; for Shakespeare the
held-out plays), else as the tail of the one text, cut at a line break.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .shards import write_shards

CHUNK_CHARS = 1 << 20  # tokenize ~1 MB at a time (line-aligned), for memory and the progress bar


def default_tokenizer():
    """lowbit's embedded BPE: the default model's tokenizer when that model is cached, else the same
    tokenizer trained the same way (on the Shakespeare train plays) and cached beside it."""
    from transformers import AutoTokenizer

    from ..models.default import FULL_SPEC, cache_root, default_model_dir, is_complete
    from .shakespeare import train_text
    from .tokenizer import train_bpe_tokenizer

    model_dir = default_model_dir()
    if is_complete(model_dir):
        return AutoTokenizer.from_pretrained(model_dir)
    tok_dir = cache_root() / f"{FULL_SPEC.name}-tokenizer"
    if (tok_dir / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(tok_dir)
    tok = train_bpe_tokenizer(train_text(), FULL_SPEC.vocab_size, model_max_length=FULL_SPEC.seq_len)
    tmp = tok_dir.with_name(tok_dir.name + ".tmp")
    tok.save_pretrained(tmp)
    if not tok_dir.exists():
        tmp.rename(tok_dir)
    return tok


def load_tokenizer(name: str = "default"):
    """'default' (lowbit's BPE), a local tokenizer dir or a hub name; returns (tokenizer, identity dict)."""
    from transformers import AutoTokenizer

    if name == "default" and not Path(name).exists():
        tok = default_tokenizer()
    else:
        try:
            tok = AutoTokenizer.from_pretrained(name)
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad --tokenizer value
            raise ValueError(f"could not load tokenizer {name!r}: {type(exc).__name__}: {exc}") from exc
    backend = getattr(tok, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else repr(sorted(tok.get_vocab().items()))
    identity = {"name": name, "sha256": hashlib.sha256(blob.encode()).hexdigest(), "eos_token_id": tok.eos_token_id}
    return tok, identity


def _documents(corpus: str, val_fraction: float) -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
    """(train docs, val docs), each a list of (label, loader) where loader() returns the text."""
    if corpus == "shakespeare" and not Path(corpus).exists():
        from .shakespeare import VALIDATION_WORKS, read_work, train_works

        def doc(n):
            return (n, lambda: read_work(n))

        return [doc(n) for n in train_works()], [doc(n) for n in VALIDATION_WORKS]
    path = Path(corpus).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise ValueError(f"corpus dir {str(path)!r} holds no .txt files")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"corpus {corpus!r} is not a file, a dir of .txt files, or 'shakespeare'")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")

    def read(f):
        return lambda: f.read_text(encoding="utf-8", errors="replace")

    if len(files) > 1:  # hold out whole files from the end, at least val_fraction of the bytes
        sizes = [f.stat().st_size for f in files]
        n_val, held = 0, 0
        while val_fraction > 0 and held < val_fraction * sum(sizes) and n_val < len(files) - 1:
            n_val += 1
            held += sizes[-n_val]
        cut = len(files) - n_val
        return [(str(f), read(f)) for f in files[:cut]], [(str(f), read(f)) for f in files[cut:]]
    text = read(files[0])()
    cut = int(len(text) * (1 - val_fraction))
    nl = text.find("\n", cut)
    cut = len(text) if val_fraction == 0 else (nl + 1 if 0 <= nl < len(text) - 1 else cut)
    train, val = text[:cut], text[cut:]
    return [(str(files[0]), lambda: train)], ([(str(files[0]) + " (tail)", lambda: val)] if val else [])


def _chunks(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find("\n", start + CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _token_stream(docs, tokenizer, bar) -> Iterator[np.ndarray]:
    eos = tokenizer.eos_token_id
    for i, (_, load) in enumerate(docs):
        text = load()
        for piece in _chunks(text):
            ids = tokenizer(piece, add_special_tokens=False, verbose=False)["input_ids"]
            bar.update(len(piece))
            yield np.asarray(ids, dtype=np.int64)
        if eos is not None and i < len(docs) - 1:
            yield np.asarray([eos], dtype=np.int64)


def tokenize_corpus(
    corpus: str,
    out_dir: str | Path,
    tokenizer: str = "default",
    val_fraction: float = 0.05,
    shard_tokens: int = 1 << 26,
    progress: bool = True,
) -> dict:
    """Tokenize `corpus` into train (and val) shards in `out_dir`; returns the data dir's meta."""
    from .shards import read_meta

    tok, identity = load_tokenizer(tokenizer)
    train_docs, val_docs = _documents(corpus, val_fraction)
    vocab = len(tok)
    for split, docs in (("train", train_docs), ("val", val_docs)):
        if not docs:
            continue
        with tqdm(desc=f"tokenizing {split}", unit="char", unit_scale=True, disable=not progress) as bar:
            write_shards(_token_stream(docs, tok, bar), out_dir, split, shard_tokens, vocab_size=vocab, tokenizer=identity)
    return read_meta(out_dir)
