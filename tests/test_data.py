"""Shakespeare corpus split, boilerplate stripping, local tokenizer and token windows."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from transformers import AutoTokenizer

from lowbit.data.shakespeare import (
    VALIDATION_WORKS,
    read_work,
    strip_gutenberg,
    texts_dir,
    train_text,
    train_works,
    validation_text,
    work_names,
)
from lowbit.data.tokenizer import EOS_TOKEN, train_bpe_tokenizer
from lowbit.data.windows import token_windows, tokenize_text, windows_from_ids


@pytest.fixture(scope="module")
def tokenizer():
    """A small tokenizer trained on part of the train text (fast)."""
    return train_bpe_tokenizer(train_text()[:100_000], 400, model_max_length=32)


# ---------------------------------------------------------------- corpus


def test_texts_dir_has_modern_and_folio_files():
    folder = texts_dir()
    assert (folder / "hamlet_gut.txt").is_file()
    assert (folder / "hamlet_gut_f.txt").is_file()  # exists, but must not be used


def test_only_modern_spelling_files_are_works():
    names = work_names()
    assert "hamlet" in names and "sonnets" in names
    assert not any(n.endswith("_f") or n.endswith("_gut") for n in names)
    assert "metadata" not in names


def test_validation_works_are_held_out_of_training():
    assert set(VALIDATION_WORKS) <= set(work_names())
    assert not set(VALIDATION_WORKS) & set(train_works())
    train = train_text()
    for name in VALIDATION_WORKS:
        text = read_work(name)
        middle = len(text) // 2
        assert text[:200] not in train, name  # title page and cast list
        assert text[middle : middle + 300] not in train, name


def test_validation_is_about_a_tenth_of_the_corpus():
    train, val = len(train_text()), len(validation_text())
    assert 0.07 < val / (train + val) < 0.15


def test_validation_text_contains_each_held_out_play():
    val = validation_text()
    for name in VALIDATION_WORKS:
        assert read_work(name)[:200] in val


def test_no_gutenberg_boilerplate_or_metadata():
    for text in (train_text(), validation_text()):
        assert "gutenberg" not in text.lower()
        assert "*** START OF" not in text and "*** END OF" not in text
        assert "url = http" not in text  # metadata.txt is not a work


def test_strip_gutenberg_removes_header_and_footer():
    raw = (
        "The Project Gutenberg EBook of Hamlet\r\nLicence blah\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
        "HAMLET   \r\nTo be, or not to be\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nMore licence\r\n"
    )
    assert strip_gutenberg(raw) == "HAMLET\nTo be, or not to be\n"


def test_strip_gutenberg_keeps_clean_text():
    assert strip_gutenberg("ACT I.\n\nEnter Ghost.\n") == "ACT I.\n\nEnter Ghost.\n"


def test_unknown_work_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Shakespeare work"):
        read_work("no_such_play")


# ---------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    "text",
    [
        "To be, or not to be: that is the question.",
        "  leading spaces\n\n\ttabs and\r\nnewlines  ",
        "Unicode — naïve café, 🎭, ∑ and 漢字",
    ],
)
def test_tokenizer_round_trips_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_tokenizer_special_token_and_size(tokenizer):
    assert len(tokenizer) == 400
    specials = (tokenizer.eos_token, tokenizer.bos_token, tokenizer.unk_token, tokenizer.pad_token)
    assert all(token == EOS_TOKEN for token in specials)
    assert tokenizer.convert_tokens_to_ids(EOS_TOKEN) == tokenizer.eos_token_id


def test_tokenizer_saves_and_reloads(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "O Romeo, Romeo! wherefore art thou Romeo?"
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert again.eos_token == EOS_TOKEN


def test_tokenizer_rejects_tiny_vocab():
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer("abc", 100)


# ---------------------------------------------------------------- windows


def test_windows_shape_dtype_and_order(tokenizer):
    text = validation_text()[:20_000]
    windows = token_windows(tokenizer, text, 16, 5)
    assert windows.shape == (5, 16) and windows.dtype == torch.int64
    ids = tokenize_text(tokenizer, text)
    available = ids.numel() // 16
    every = ids[: available * 16].reshape(available, 16)
    # spread evenly over the text: the first and the last window, non-overlapping, in order
    assert torch.equal(windows[0], every[0]) and torch.equal(windows[-1], every[-1])
    starts = [next(i for i in range(available) if torch.equal(every[i], w)) for w in windows]
    assert starts == sorted(set(starts)) and len(starts) == 5
    assert starts[1] - starts[0] >= available // 5


def test_windows_are_deterministic(tokenizer):
    text = validation_text()[:20_000]
    assert torch.equal(token_windows(tokenizer, text, 32, 4), token_windows(tokenizer, text, 32, 4))


def test_windows_all_when_none_or_too_many(tokenizer):
    text = validation_text()[:5_000]
    n_tokens = tokenize_text(tokenizer, text).numel()
    every = token_windows(tokenizer, text, 16, None)
    assert every.shape == (n_tokens // 16, 16)
    assert torch.equal(token_windows(tokenizer, text, 16, 10**6), every)


def test_long_text_gives_no_max_length_warning(tokenizer, capfd):
    token_windows(tokenizer, validation_text()[:50_000], 16, 2)  # far over model_max_length=32
    assert "sequence length is longer" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "seq_len, n_windows, word",
    [(0, 1, "seq_len"), (-3, 1, "seq_len"), (8, 0, "n_windows"), (8, -1, "n_windows")],
)
def test_windows_reject_bad_arguments(tokenizer, seq_len, n_windows, word):
    with pytest.raises(ValueError, match=word):
        token_windows(tokenizer, "some text " * 50, seq_len, n_windows)


def test_windows_reject_too_short_text(tokenizer):
    with pytest.raises(ValueError, match="seq_len"):
        token_windows(tokenizer, "Too short.", 64, 1)


def test_windows_from_ids_matches_reshape():
    ids = torch.arange(10)
    assert torch.equal(windows_from_ids(ids, 3, None), torch.arange(9).reshape(3, 3))
