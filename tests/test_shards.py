"""Token shards: the .bin/meta.json format, deterministic batches, corpus tokenization."""

import json

import numpy as np
import pytest
import torch

from lowbit.data.prepare import tokenize_corpus
from lowbit.data.shards import TokenShards, read_meta, write_shards


def test_round_trip_shard_sizes_and_dtype(tmp_path):
    ids = np.random.default_rng(0).integers(0, 1000, size=2500)
    chunks = [ids[i : i + 333] for i in range(0, ids.size, 333)]  # streamed in odd pieces
    entry = write_shards(iter(chunks), tmp_path, "train", 1000, vocab_size=1000, tokenizer={"name": "t"})
    sizes = [s["tokens"] for s in entry["shards"]]
    assert sizes == [1000, 1500]  # the 500-token remainder (half a shard) joins the last shard, no sliver
    meta = read_meta(tmp_path)
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 1000 and meta["tokenizer"] == {"name": "t"}
    assert meta["splits"]["train"]["tokens"] == 2500
    back = np.concatenate([np.fromfile(tmp_path / s["file"], dtype=np.uint16) for s in entry["shards"]])
    np.testing.assert_array_equal(back, ids)
    write_shards(torch.arange(70000), tmp_path / "big", "train", 1 << 20, vocab_size=70000)
    assert read_meta(tmp_path / "big")["dtype"] == "uint32"
    assert np.fromfile(tmp_path / "big" / "train_00000.bin", dtype=np.uint32)[-1] == 69999


def test_batches_are_deterministic_shifted_and_cover_each_epoch(tmp_path):
    write_shards(np.arange(3000), tmp_path, "train", 1000, vocab_size=3000)
    a = TokenShards(tmp_path, "train", batch_size=4, seq_len=16, seed=3)
    b = TokenShards(tmp_path, "train", batch_size=4, seq_len=16, seed=3)
    x, y = a.batch(7)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))
    assert all(torch.equal(u, v) for u, v in zip(a.batch(7), b.batch(7)))  # position alone decides the batch
    assert not torch.equal(a.batch(7)[0], a.batch(8)[0])
    assert not torch.equal(a.batch(0)[0], TokenShards(tmp_path, "train", batch_size=4, seq_len=16, seed=4).batch(0)[0])
    per_shard = 999 // 16
    assert a.n_windows == 3 * per_shard
    starts = torch.cat([a.batch(p)[0][:, 0] for p in range(a.n_windows // 4)]).tolist()
    assert len(set(starts)) == len(starts)  # one epoch: no window twice
    assert all((s % 1000) % 16 == 0 and (s % 1000) // 16 < per_shard for s in starts)  # windows never cross a shard
    val = TokenShards(tmp_path, "train", batch_size=4, seq_len=16, shuffle=False).fixed_batches(2)
    assert len(val) == 2 and val[0][0].shape == (4, 16) and val[0][0][0, 0] == 0


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        TokenShards(tmp_path / "nope", "train", batch_size=1, seq_len=8)
    write_shards(np.arange(100), tmp_path, "train", 1000, vocab_size=200)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        TokenShards(tmp_path, "train", batch_size=1, seq_len=100)
    with pytest.raises(ValueError, match="no split 'val'"):
        TokenShards(tmp_path, "val", batch_size=1, seq_len=8)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        write_shards(np.array([1, 2, 300]), tmp_path / "b", "train", 10, vocab_size=200)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "dtype": "int64"}))
    with pytest.raises(ValueError, match="dtype 'int64'"):
        TokenShards(tmp_path, "train", batch_size=1, seq_len=8)
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "dtype": "uint32", "vocab_size": 70000}))
    with pytest.raises(ValueError, match="wrong dtype"):  # uint16 bytes read as uint32
        TokenShards(tmp_path, "train", batch_size=1, seq_len=8)


def test_tokenize_text_file_and_dir(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    text = "".join(f"line {i} of the corpus, some words here\n" for i in range(400))
    (tmp_path / "a.txt").write_text(text)
    meta = tokenize_corpus(str(tmp_path / "a.txt"), tmp_path / "d1", tokenizer=str(tiny_tokenizer_dir), val_fraction=0.1, progress=False)
    assert set(meta["splits"]) == {"train", "val"} and meta["vocab_size"] == len(tok)
    assert meta["tokenizer"]["sha256"] and meta["tokenizer"]["eos_token_id"] == tok.eos_token_id
    train = np.fromfile(tmp_path / "d1" / "train_00000.bin", dtype=np.uint16)
    val = np.fromfile(tmp_path / "d1" / "val_00000.bin", dtype=np.uint16)
    assert tok.decode(train.tolist()) + tok.decode(val.tolist()) == text  # nothing lost, cut at a line
    assert 0.05 < val.size / (train.size + val.size) < 0.15
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"{i}.txt").write_text(text[: 2000 * (i + 1)])
    meta = tokenize_corpus(str(docs), tmp_path / "d2", tokenizer=str(tiny_tokenizer_dir), val_fraction=0.2, progress=False)
    val = np.fromfile(tmp_path / "d2" / "val_00000.bin", dtype=np.uint16)
    assert tok.decode(val.tolist()) == text[:10000]  # the last file, whole
    with pytest.raises(ValueError, match="not a file"):
        tokenize_corpus(str(tmp_path / "missing.txt"), tmp_path / "d3", tokenizer=str(tiny_tokenizer_dir), progress=False)


def test_tokenize_shakespeare_holds_out_the_validation_plays(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    from lowbit.data.shakespeare import VALIDATION_WORKS, read_work

    meta = tokenize_corpus("shakespeare", tmp_path, tokenizer=str(tiny_tokenizer_dir), progress=False)
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    val = np.fromfile(tmp_path / "val_00000.bin", dtype=np.uint16)
    assert meta["splits"]["train"]["tokens"] > 5 * meta["splits"]["val"]["tokens"]
    assert tok.decode(val[:200].tolist()) == tok.decode(tok(read_work(VALIDATION_WORKS[0]))["input_ids"][:200])
