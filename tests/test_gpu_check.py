"""``benchmarks/gpu_check.py`` at ``--cpu --tiny``: every part runs and gives real numbers, its FLOP
count of a training step is the hand count of the transformer's products, and the largest-batch
search stops on out-of-memory only."""

import dataclasses
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(gpu_check)


def hand_flops(*, batch: int, length: int, d: int, ff: int, layers: int, inputs: int) -> int:
    """Forward + backward FLOPs of a SpectroFormer pretraining step, by hand: a (m x k) @ (k x n)
    product is 2mkn. A linear map's backward is two products of its size (input and weight
    gradients), one for the input projection, whose input needs no gradient. Attention per layer:
    Q K^T and P V forward, five products backward as torch counts them (the scores recomputed)."""
    s = length + 1  # CLS first
    frontend = 2 * batch * length * inputs * d
    block = 2 * batch * s * d * (3 * d + d + 2 * ff)  # qkv, output projection, MLP
    head = 2 * batch * length * d * (d + inputs)  # pretraining head on the L positions: D -> D -> inputs
    attention = 7 * 2 * batch * s * s * d
    return 3 * (frontend + layers * block + head) - frontend + layers * attention


@pytest.mark.slow
def test_every_part_runs_on_the_cpu_with_real_numbers(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--cpu", "--tiny", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["errors"] == {} and list(report["parts"]) == list(gpu_check.PARTS)
    assert report["device"] and report["torch"] == torch.__version__
    parts = report["parts"]
    assert all(part["part_s"] > 0 for part in parts.values())

    enc, largest = parts["encoder"], parts["largest_batch"]
    c = enc["config"]
    assert enc["flops_per_step"] == hand_flops(batch=c["batch"], length=c["length"], d=c["encoder"]["d_model"],
                                               ff=c["encoder"]["d_ff"], layers=c["encoder"]["n_layers"],
                                               inputs=c["input_dim"])
    assert parts["peak"]["bf16_matmul_flops"] > 0
    compiled = parts["encoder_compiled"]
    assert compiled["batch_4"]["batch"] == 4 and compiled["batch_16"]["batch"] == 16
    for run in (enc, largest, compiled["batch_4"], compiled["batch_16"]):
        assert run["tokens_per_s"] > 0 and 0 < run["fraction_of_peak"] < 1 and run["peak_gib"] > 0
    assert largest["batch"] == 16 and largest["stopped_by"].startswith("cap 16")  # no OOM on the CPU
    forced = {k: v for k, v in parts["attention"].items() if k != "part_s"}
    assert list(forced) == ["FLASH_ATTENTION", "MATH"] and all(f["tokens_per_s"] > 0 for f in forced.values())

    assert parts["patchifier"]["audio_s_per_s"] > 0
    vq = parts["vqvae"]
    assert vq["tokens"] == 3 * 44100 // 128 and vq["tokens_differing"] == 0  # equal bit for bit on the CPU
    assert vq["one_shot_x_realtime"] > 0 and vq["chunked_x_realtime"] > 0
    assert parts["mel"]["device_x_realtime"] > 0 and parts["mel"]["max_db_difference"] < 1e-3
    assert parts["embed"]["positions"] == 1 + 15 * 44100 // 128 and parts["embed"]["x_realtime"] > 0
    compare = parts["compare"]
    assert compare["precision"] == "bf16-mixed" and compare["test_clips"] == 12 and 0 <= compare["test"] <= 1
    assert 0 <= compare["deformed_test"] <= 1  # robustness runs on the device path too

    names = ["bf16 dense matmul peak", "encoder step, eager", "  peak memory", "  fraction of bf16 peak",
             "encoder step, attention forced", "  attention flash_attention", "  attention math", "largest batch that fits", "  its throughput", "Patchifier stage II", "VQ-VAE top level, one-shot",
             "VQ-VAE top level, chunked", "log-mel on cpu", "log-mel, log_mel on the CPU", "embed, 0.25-minute WAV",
             "tiny compare, bf16-mixed", "encoder step, --compile, batch 4", "encoder step, --compile, batch 16"]
    title, header, *rows = capsys.readouterr().out.rstrip().splitlines()[-len(names) - 2:]  # the table comes last
    assert title.startswith(report["device"]) and header.split() == ["part", "value", "unit", "notes"]
    assert [row[: len(name)] for row, name in zip(rows, names)] == names


def test_a_linear_layers_step_is_counted_forward_and_backward():
    torch.manual_seed(0)
    layer = torch.nn.Linear(24, 16)
    x = {"x": torch.randn(8, 5, 24)}
    flops = gpu_check.step_flops(lambda b: layer(b["x"]).float().sum(), x, device=torch.device("cpu"))
    assert flops == 2 * (2 * 8 * 5 * 24 * 16)  # forward, and the weight's gradient (the input needs none)


def test_the_batch_search_bisects_on_out_of_memory_and_lets_other_errors_through(tmp_path, monkeypatch):
    # Between tries the search frees memory: a gc.collect, about 0.25 s each with the suite's heap.
    # Nothing is allocated here; the order of the tries is what is checked.
    monkeypatch.setattr(gpu_check.Run, "free", lambda self: None)
    run = gpu_check.Run(torch.device("cpu"), dataclasses.replace(gpu_check.FULL, search_seconds=60), tmp_path,
                        time.perf_counter())
    tried = []

    def measure(batch):
        tried.append(batch)
        if batch > 700:
            raise torch.cuda.OutOfMemoryError(f"{batch} does not fit")
        return {"batch": batch}

    found = gpu_check.largest_batch(run, measure, start=64)
    assert tried == [64, 128, 256, 512, 1024, 768, 640, 704] and found["batch"] == 640
    assert found["stopped_by"] == "704 ran out of memory"

    def broken(batch):
        if batch > 64:
            raise ValueError("not a memory error")
        return {"batch": batch}

    with pytest.raises(ValueError, match="not a memory error"):
        gpu_check.largest_batch(run, broken, start=64)
