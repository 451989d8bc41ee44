"""The embedded default model's build/cache code path, at tiny size, and model loading."""

import math
import os
import time

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from transformers import GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from lowbit.models import default as d
from lowbit.models.default import (
    DEFAULT_NAME,
    TINY_NAME,
    default_model_dir,
    ensure_default_model,
    is_complete,
    read_train_facts,
)
from lowbit.models.hf import is_default_name, load_causal_lm, model_slug

TINY_STEPS = 5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny default model trained for a few steps into a fresh cache: (root, path)."""
    root = tmp_path_factory.mktemp("cache")
    path = ensure_default_model(cache_dir=root, steps=TINY_STEPS, tiny=True, progress=False)
    return root, path


def test_tiny_build_writes_a_complete_cache(tiny):
    root, path = tiny
    assert path == root / TINY_NAME
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "lowbit_train.json"):
        assert (path / name).is_file(), name
    assert is_complete(path)
    assert [p.name for p in root.iterdir()] == [TINY_NAME]  # no temp folder left behind


def test_train_facts_are_recorded(tiny):
    facts = read_train_facts(tiny[1])
    spec = d.TINY_SPEC
    assert facts["model"] == TINY_NAME
    assert facts["steps"] == TINY_STEPS and facts["stopped_by"] == "steps"
    assert facts["tokens_seen"] == TINY_STEPS * spec.batch_size * spec.seq_len
    for key in ("train_seconds", "final_train_loss", "validation_loss", "unigram_baseline_loss"):
        assert math.isfinite(facts[key]) and facts[key] >= 0, key
    assert facts["final_train_loss"] < facts["first_train_loss"]  # it learned something
    assert facts["validation_works"] == list(d.VALIDATION_WORKS)
    assert facts["spec"]["n_embd"] == spec.n_embd


def test_tiny_model_reloads_with_load_causal_lm(tiny):
    model, tokenizer, slug = load_causal_lm(str(tiny[1]))
    assert isinstance(model, GPT2LMHeadModel) and not model.training
    assert slug == TINY_NAME
    assert isinstance(model.transformer.h[0].mlp.c_fc, Conv1D)  # HF's real Conv1D layers
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # tied
    assert model.config.n_positions == d.TINY_SPEC.seq_len
    ids = tokenizer("To be, or not to be", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert tokenizer.decode(ids[0]) == "To be, or not to be"


def test_load_causal_lm_dtype(tiny):
    model, _, _ = load_causal_lm(str(tiny[1]), dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


def test_second_call_reuses_the_cache(tiny):
    root, path = tiny
    weights = path / "model.safetensors"
    before = (weights.stat().st_mtime_ns, (path / "lowbit_train.json").read_text())
    start = time.perf_counter()
    again = ensure_default_model(cache_dir=root, steps=TINY_STEPS, tiny=True, progress=False)
    assert time.perf_counter() - start < 1.0
    assert again == path
    assert (weights.stat().st_mtime_ns, (path / "lowbit_train.json").read_text()) == before


def test_incomplete_cache_is_rebuilt(tmp_path):
    path = default_model_dir(tmp_path, tiny=True)
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")  # a half-written leftover
    assert not is_complete(path)
    assert ensure_default_model(cache_dir=tmp_path, steps=2, tiny=True, progress=False) == path
    assert is_complete(path) and read_train_facts(path)["steps"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [TINY_NAME]


def test_time_limit_stops_training(tmp_path):
    path = ensure_default_model(cache_dir=tmp_path, max_seconds=1.0, tiny=True, progress=False)
    facts = read_train_facts(path)
    assert facts["stopped_by"] in ("max_seconds", "max_steps")
    assert facts["steps"] >= 1 and facts["train_seconds"] < 5
    assert facts["max_seconds"] == 1.0


def test_bad_steps_rejected(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        ensure_default_model(cache_dir=tmp_path, steps=0, tiny=True, progress=False)


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWBIT_CACHE", str(tmp_path))
    assert default_model_dir() == tmp_path / DEFAULT_NAME
    assert default_model_dir(tiny=True) == tmp_path / TINY_NAME
    assert default_model_dir(tmp_path / "x") == tmp_path / "x" / DEFAULT_NAME
    monkeypatch.delenv("LOWBIT_CACHE")
    assert default_model_dir().parts[-3:] == (".cache", "lowbit", DEFAULT_NAME)


def test_full_spec_sizes_suit_group_128_quantization():
    for spec in (d.FULL_SPEC, d.TINY_SPEC):
        assert spec.n_embd % 128 == 0 and (4 * spec.n_embd) % 128 == 0
        assert spec.n_embd % spec.n_head == 0


def test_lr_schedule_warms_up_then_decays():
    spec = d.FULL_SPEC
    assert d.lr_at(0.0, spec) < 0.01 * spec.peak_lr
    assert d.lr_at(spec.warmup_frac, spec) == pytest.approx(spec.peak_lr)
    assert d.lr_at(0.5, spec) < spec.peak_lr
    assert d.lr_at(1.0, spec) == pytest.approx(spec.peak_lr * spec.min_lr_frac)


def test_unigram_baseline_by_hand():
    from lowbit.measure import unigram_loss

    train = torch.tensor([0, 0, 1])  # add-one counts: [3, 2, 1] of 6
    windows = torch.tensor([[2, 1], [2, 0]])  # scored tokens: 1 and 0 (not the first)
    expected = -(math.log(2 / 6) + math.log(3 / 6)) / 2
    assert unigram_loss(train, windows, 3) == pytest.approx(expected)


def test_bad_model_names_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):  # a path, not a bad hub repo id
        load_causal_lm(str(tmp_path / "missing-model"))
    with pytest.raises(ValueError, match="no such directory"):
        load_causal_lm("./runs/missing-model")
    with pytest.raises(ValueError, match="--model"):
        load_causal_lm("no-such-org/no-such-model-xyz")  # hub name, offline


def test_default_names_and_slugs(tmp_path):
    assert is_default_name(None) and is_default_name("default") and is_default_name(DEFAULT_NAME)
    assert not is_default_name("gpt2")
    assert model_slug("Org/Some Model") == "org--some-model"
    assert model_slug(str(tmp_path)) == tmp_path.name.lower()


def test_undertrained_model_warns(tmp_path):
    weak = {"steps": 3, "train_seconds": 150.0, "validation_loss": 6.2,
            "unigram_baseline_loss": 6.4}
    with pytest.warns(UserWarning, match="Delete"):
        d._warn_if_undertrained(weak, tmp_path)
