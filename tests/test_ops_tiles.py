"""The launchers' integer helpers (`lowbit.ops.tiles`) against their definitions, on random values."""

import math
import random

import pytest
import torch

from lowbit.ops.tiles import cdiv, cuda_index, next_power_of_2, split_k_plan


def test_cdiv_and_next_power_of_2_match_their_definitions():
    rng = random.Random(8)
    for _ in range(2000):
        a, b = rng.randrange(0, 10**6), rng.randrange(1, 5000)
        assert cdiv(a, b) == math.ceil(a / b)
        n = rng.randrange(1, 10**6)
        p = next_power_of_2(n)
        assert p >= n and p & (p - 1) == 0 and (p == 1 or p // 2 < n)
    assert next_power_of_2(0) == 1 and next_power_of_2(1) == 1


@pytest.mark.parametrize("total,step,split", [(512, 128, 3), (100, 32, 8), (0, 16, 4), (4096, 256, 1)])
def test_split_k_plan_covers_k_in_whole_steps(total, step, split):
    per, pieces = split_k_plan(total, step, split)
    assert 1 <= pieces <= split and per % step == 0
    assert per * pieces >= total and (pieces == 1 or per * (pieces - 1) < total)  # none empty


def test_cuda_index_takes_the_named_device():
    assert cuda_index(torch.device("cuda", 3)) == 3  # no GPU needed: an explicit index is read, not looked up
