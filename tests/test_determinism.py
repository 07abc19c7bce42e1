"""A comparison is deterministic given its seed on one machine: two runs, each a new process from
an empty cache (data rendered, features extracted, a tokenizer trained, six setups and the
baseline), write the same results, predictions and encoders. (Across CPUs the digits may move;
docs/results.md says so.) A resumed run's numbers are checked in test_resume.py."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import TINY_RUN


def _without_seconds(obj):
    """Results without what is timed (wall times, the measured costs)."""
    if isinstance(obj, dict):
        return {k: _without_seconds(v) for k, v in obj.items() if k not in ("seconds", "cost", "throughput")}
    if isinstance(obj, list):
        return [_without_seconds(v) for v in obj]
    return obj


@pytest.mark.slow
def test_two_runs_from_empty_caches_are_identical(tmp_path):
    # Each run a process of its own (nothing carries over, string hashing included). The two run at
    # once, each with one torch thread (the same setting in both): on 2 cores a pair of runs then
    # takes as long as one (about 12 s); two runs of 2 threads each took 27 s side by side.
    procs = {}
    for name in ("first", "second"):
        home = tmp_path / name
        with open(tmp_path / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", "mirformer.cli", "compare", "--preset", "quickstart",
                                            *TINY_RUN, "--out", str(home / "run"), "--quiet"],
                                           env={**os.environ, "MIRFORMER_HOME": str(home), "OMP_NUM_THREADS": "1"},
                                           stdout=log, stderr=subprocess.STDOUT)
    try:
        for name, proc in procs.items():
            assert proc.wait(timeout=600) == 0, f"{name} run failed:\n{(tmp_path / f'{name}.log').read_text()}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    runs = []
    for name in ("first", "second"):
        home = tmp_path / name
        run = home / "run"
        text = (run / "results.json").read_text().replace(str(home), "<home>")
        files = {str(p.relative_to(run)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(run.glob("*/predictions.csv"))}
        # Encoder checkpoints also name where they were made (the home differs): compare their weights.
        files.update({str(p.relative_to(run)): hashlib.sha1(b"".join(t.numpy().tobytes() for t in torch.load(
            p, weights_only=True)["state_dict"].values())).hexdigest() for p in sorted(run.glob("*/encoder.pt"))})
        runs.append((_without_seconds(json.loads(text)), files))
    (first, first_files), (second, second_files) = runs
    assert first["representations"]["tokens"]["about"]["sha1"] == second["representations"]["tokens"]["about"]["sha1"]  # the trained VQ-VAE, byte for byte
    for results in (first, second):  # its folder is named after the dataset's location
        results["representations"]["tokens"]["about"].pop("checkpoint")
    assert first == second
    assert len(first_files) == 9 and first_files == second_files  # 6 downstream stages, 3 encoders
