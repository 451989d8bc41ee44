"""`lowbit bench dispatch` without a GPU: how limits follow from the winners, where they are written, and how the op
reads a user's file over the package's (the sweep itself runs on the GPU only)."""

from __future__ import annotations

import json

import pytest
import torch

from lowbit import cli
from lowbit.bench import dispatch
from lowbit.ops import weight_only as wo


@pytest.fixture
def files(tmp_path, monkeypatch):
    """An empty package dispatch file and user file, and the op's caches cleared around the test."""
    package, user = tmp_path / "package.json", tmp_path / "user.json"
    monkeypatch.setattr(wo, "DISPATCH_FILE", package)
    monkeypatch.setenv("LOWBIT_DISPATCH_FILE", str(user))
    wo.gpu_entry.cache_clear(), wo.dispatch_limits.cache_clear()
    yield package, user
    wo.gpu_entry.cache_clear(), wo.dispatch_limits.cache_clear()


def test_limits_follow_the_dispatch_order():
    """Each path's limit is the last token count it won at while the dispatch had not moved past it: a dip back to an
    earlier path does not move the dispatch back, and a path that never won is never taken (0)."""
    winners = {1: "words", 2: "words", 4: "swapped", 8: "words", 16: "swapped", 32: "dequant", 64: "swapped", 128: "dequant"}
    assert dispatch.limits_from(winners) == {"words": 2, "gemv": 0, "swapped": 16}
    assert dispatch.limits_from({1: "dequant", 2: "words"}) == {"words": 0, "gemv": 0, "swapped": 0}
    assert dispatch.limits_from({1: "gemv", 2: "gemv", 4: "dequant"}) == {"words": 0, "gemv": 2, "swapped": 0}


def test_user_file_overrides_the_package_a_kind_at_a_time(files):
    package, user = files
    package.write_text(json.dumps({"GPU A": {"limits": {"int4": {"words": 1, "swapped": 128}, "fp8": {"swapped": 256}}}}))
    dispatch.write_limits(user, "GPU A", {"int4": {"words": 2, "gemv": 0, "swapped": 64}})
    dispatch.write_limits(user, "GPU B", {"int8": {"words": 4, "gemv": 0, "swapped": 32}})
    dispatch.write_limits(user, "GPU A", {"table4": {"words": 2, "gemv": 0, "swapped": 16}})  # merged, GPU B kept
    saved = json.loads(user.read_text())
    assert set(saved) == {"GPU A", "GPU B"} and set(saved["GPU A"]["limits"]) == {"int4", "table4"}
    assert saved["GPU A"]["source"] == "lowbit bench dispatch"
    a = wo.dispatch_limits("GPU A")
    assert a["int4"] == {"words": 2, "gemv": 0, "swapped": 64}  # the user's, whole
    assert a["fp8"] == {**wo.DEFAULT_LIMITS["fp8"], "swapped": 256}  # the package's
    assert a["table4"] == {"words": 2, "gemv": 0, "swapped": 16} and a["int8"] == wo.DEFAULT_LIMITS["int8"]
    assert wo.dispatch_limits("GPU B")["int8"] == {"words": 4, "gemv": 0, "swapped": 32}


def test_a_broken_dispatch_file_is_named(files):
    _, user = files
    user.write_text("[1, 2")
    with pytest.raises(ValueError, match="dispatch file .*user.json"):
        wo.gpu_entry("GPU A")


def test_report_table_lists_each_path_and_the_limits():
    rows = [dict(kind="int4", m=1, best="words", us={"bf16": 130.0, "words": 62.0, "swapped": 90.0, "dequant": 350.0},
                 speedup_vs_bf16=2.1)]
    lines = dispatch.format_table(dict(rows=rows, limits={"int4": {"words": 1, "gemv": 0, "swapped": 128}}, written_to="/x.json"))
    assert "| int4 | 1 | 130.0 | 62.0 | – | 90.0 | 350.0 | words (2.10x) |" in lines
    assert "| int4 | words ≤ 1, gemv ≤ 0, swapped ≤ 128 |" in lines and lines[-1] == "Written to `/x.json`."


def test_cli_refuses_an_unknown_kind_and_a_machine_without_a_gpu(capsys):
    assert cli.main(["bench", "dispatch", "--kinds", "int3"]) != 0
    assert "unknown storage kind 'int3'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(["bench", "dispatch"]) != 0
        assert "needs a CUDA GPU" in capsys.readouterr().err
