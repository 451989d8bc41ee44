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
