import math

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

import lowbit
from lowbit.measure import evaluate, model_bytes, peak_forward_bytes, unigram_loss


def test_model_bytes_counts_tied_storage_once_and_buffers():
    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=16))
    assert m.lm_head.weight is m.transformer.wte.weight
    expected = sum(p.numel() * p.element_size() for p in m.parameters())  # parameters() dedups tied
    expected += sum(b.numel() * b.element_size() for b in m.buffers())
    assert model_bytes(m) == expected


def test_model_bytes_of_quantized_layer_is_its_buffers():
    lin = nn.Linear(64, 32)
    q = lowbit.RTN(bits=4, granularity="group", group_size=16, symmetric=False).layer(lin.weight.detach(), lin.bias.detach())
    # 32 rows x 64 4-bit codes = 1024 B; scale 32x4 float32 = 512 B; zero 32x4 uint8 = 128 B; bias 128 B
    assert model_bytes(q) == 32 * 64 // 2 + 32 * 4 * 4 + 32 * 4 + 32 * 4


def test_model_bytes_of_a_tensor_subclass_weight_counts_what_it_holds():
    """torchao keeps quantized weights as tensor subclasses whose own storage is no real storage."""
    from torch.testing._internal.two_tensor import TwoTensor

    a, b = torch.randn(8, 4), torch.randn(8, 4)
    lin = nn.Linear(4, 8, bias=False)
    lin.weight = nn.Parameter(TwoTensor(a, b), requires_grad=False)
    assert model_bytes(lin) == a.nbytes + b.nbytes


class _Seq(nn.Module):
    def __init__(self, a, b, c):
        super().__init__()
        self.l1, self.l2 = nn.Linear(a, b), nn.Linear(b, c)

    def forward(self, x):
        h = self.l1(x)
        h = torch.relu(h)  # out of place: h1 and relu(h1) are alive together
        return self.l2(h)


def test_cpu_peak_forward_bytes_matches_hand_count():
    n, a, b, c = 32, 16, 256, 8
    m = _Seq(a, b, c)
    x = torch.randn(n, a)
    # peak: l1 output + relu output (both n*b float32) alive at once; later relu out + l2 out (smaller)
    expected_activation = max(2 * n * b, n * b + n * c) * 4
    assert peak_forward_bytes(m, x) == model_bytes(m) + expected_activation


def test_evaluate_matches_manual_cross_entropy():
    torch.manual_seed(1)
    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50, n_positions=16)).eval()
    windows = torch.randint(0, 50, (5, 16))
    ev = evaluate(m, windows, batch_size=2)
    with torch.no_grad():
        logits = m(windows).logits.double()
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), windows[:, 1:].reshape(-1)).item()
    assert ev.loss == pytest.approx(ref, rel=1e-5)
    assert ev.ppl == pytest.approx(math.exp(ref), rel=1e-5)
    assert ev.tokens == 5 * 15 and ev.seconds > 0


def test_evaluate_rejects_bad_windows():
    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50, n_positions=16))
    with pytest.raises(ValueError, match="windows"):
        evaluate(m, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(m, torch.zeros(2, 8, dtype=torch.long), batch_size=0)


def test_unigram_loss_of_uniform_counts_is_log_vocab():
    vocab = 10
    train = torch.arange(vocab).repeat(7)
    windows = torch.randint(0, vocab, (3, 9))
    assert unigram_loss(train, windows, vocab) == pytest.approx(math.log(vocab))
