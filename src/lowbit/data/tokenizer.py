"""A byte-level BPE tokenizer trained locally, so the default model needs no hub access."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"


def _chunks(text: str, size: int = 1 << 16):
    """Yield the text in line-aligned pieces so the trainer can stream it."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def train_bpe_tokenizer(
    text: str, vocab_size: int, *, model_max_length: int | None = None
) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE on `text` and wrap it for `save_pretrained`.

    Byte-level means any string round-trips exactly, with no unknown tokens. The single
    special token `<|endoftext|>` serves as eos/bos/unk/pad, as in GPT-2.
    """
    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + eos), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_chunks(text), trainer=trainer, length=None)
    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        **extra,
    )
