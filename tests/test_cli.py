"""The main job end to end on the tiny default model: table printed, files written, numbers sane."""

import json
import subprocess
import sys

import pytest

from lowbit.cli import main

KEYS = {"name", "select", "method", "model_bytes", "peak_forward_bytes", "loss", "ppl", "seconds"}


@pytest.fixture(scope="module")
def study(tiny_default_model, tmp_path_factory, capsys_module=None):
    out = tmp_path_factory.mktemp("report")
    code = main(["study", "selective", "--model", str(tiny_default_model), "--windows", "6", "--seq-len", "64", "--out", str(out), "--device", "cpu"])
    assert code == 0
    return out, {r["name"]: r for r in json.loads((out / "results.json").read_text())}


def test_study_writes_every_row_and_file(study):
    out, rows = study
    assert (out / "report.md").read_text().count("\n|") >= 14
    assert (out / "memory_vs_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = list(rows)
    assert len(names) == 14 and names[0].startswith("baseline")
    for r in rows.values():
        assert KEYS <= r.keys()
        assert r["loss"] > 0 and r["model_bytes"] > 0 and r["peak_forward_bytes"] >= r["model_bytes"]


def test_study_numbers_are_sane(study):
    _, rows = study
    base = rows["baseline (float)"]
    int8 = rows["int8 whole model"]
    int4 = rows["int4 g128 RTN"]
    assert abs(int8["loss"] - base["loss"]) / base["loss"] < 0.01
    assert int4["loss"] > int8["loss"]
    # bytes ordered by bits: 4-bit formats < 8-bit formats < float
    assert max(int4["model_bytes"], rows["NF4 (b64, double quant)"]["model_bytes"], rows["k-means 4-bit"]["model_bytes"]) \
        < min(int8["model_bytes"], rows["FP8 e4m3 per-channel"]["model_bytes"], rows["W8A8 dynamic per-token"]["model_bytes"])
    assert int8["model_bytes"] < base["model_bytes"]
    # partial selections quantize fewer layers
    assert rows["int8 lm_head only"]["quantized_layers"] == 1
    assert 0 < rows["int8 q,k,v only"]["quantized_layers"] < int8["quantized_layers"]


def test_cli_reports_bad_input_cleanly(capsys):
    assert main(["study", "selective", "--model", "/nonexistent/model/dir", "--windows", "2"]) == 2
    assert "model" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "lowbit.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("lowbit ")
