import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

if not torch.cuda.is_available():
    # Triton kernels run in its interpreter on CPU tensors (set before anything imports triton)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest


@pytest.fixture(scope="session")
def tiny_default_model(tmp_path_factory):
    """The embedded default model's code path at tiny size, trained for a few steps, built once."""
    from lowbit.models.default import ensure_default_model

    return ensure_default_model(cache_dir=tmp_path_factory.mktemp("lowbit-cache"), steps=5, tiny=True, progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny ops only: intra-op threads just stall on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A 300-token BPE trained on the first 30k characters of the training plays: seconds, not minutes."""
    from lowbit.data.shakespeare import train_text
    from lowbit.data.tokenizer import train_bpe_tokenizer

    path = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(train_text()[:30_000], 300).save_pretrained(path)
    return path
