"""Every model on every task, end to end through ``mirformer compare``, on CSV manifests of tones.

Tagging clips carry a "low" / "high" pitch tag plus a "loud" tag; regression targets are the
pitch and the loudness of each clip. The grid sweep and the probes run on the same data.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from helpers import TINY
from mirformer.cli import main

SR = 16000


def _manifest(root, task):
    rng = np.random.default_rng(0)
    rows = ["path,labels,split" if task == "tagging" else "path,pitch,loudness,split"]
    for i in range(24):
        # Validation and test clips cover both pitches and both loudnesses.
        split = ("train",) * 4 + ("validation", "test")
        split = split[i % 6]
        freq = (220.0, 880.0)[(i // 2) % 2] * (1 + 0.02 * (i % 3))
        amp = (0.1, 0.6)[(i // 4) % 2]
        t = np.arange(int(2.0 * SR)) / SR
        y = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / f"clip{i:02d}.wav", y, SR)
        if task == "tagging":
            tags = ["low" if freq < 500 else "high"] + (["loud"] if amp > 0.3 else [])
            rows.append(f"clip{i:02d}.wav,{';'.join(tags)},{split}")
        else:
            rows.append(f"clip{i:02d}.wav,{freq:.1f},{amp:.2f},{split}")
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root / "clips.csv"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["tagging", "regression"])
def test_every_model_trains_on_the_task(tmp_path, task):
    manifest = _manifest(tmp_path, task)
    out = tmp_path / "run"
    setups = ["spectroformer-pretrained-finetuned", "tokenformer-scratch", "codebookformer-pretrained-finetuned",
              "mfcc-linear"]
    args = ["compare", "--preset", "quickstart", *TINY, "--set", "data.name=csv",
            "--data-root", str(manifest), "--set", f"setups={json.dumps(setups)}", "--out", str(out), "--quiet",
            # The report's intervals and paired tests quickly (tagging's PR-AUC costs ~1 ms a resample).
            "--set", "evidence={n_resamples: 200, n_permutations: 200}"]
    if task == "regression":  # the probes and the thesis' grid on the same run
        args += ["--set", "finetune.strategy=mlp-probe", "--set", "finetune.pooling=mean",
                 "--set", "finetune.grid={batch_size: [4, 8], lr: [1e-3]}",
                 "--set", "scratch.grid={batch_size: [4, 8]}"]  # under the warmup schedule: batch only
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == task and list(results["setups"]) == setups
    report = (out / "report.md").read_text()
    if task == "tagging":
        assert results["classes"] == ["high", "loud", "low"]
        assert "| setup | ROC-AUC train | ROC-AUC test | PR-AUC test |" in report
        for setup in results["setups"].values():
            test = setup["splits"]["test"]
            assert 0.0 <= test["roc_auc"] <= 1.0 and 0.0 <= test["pr_auc"] <= 1.0
            assert set(test["per_tag"]) == {"high", "loud", "low"} and test["n"] == 4
        # The MFCC baseline separates pitch perfectly.
        assert results["setups"]["mfcc-linear"]["splits"]["test"]["per_tag"]["low"]["roc_auc"] == 1.0
        assert (out / "per_tag_test.csv").read_text().startswith("tag,positives,")
        assert "Confusion" not in report
    else:
        assert results["classes"] == ["pitch", "loudness"]
        assert "| setup | R2 train | R2 test | R2 pitch test | R2 loudness test | MSE test |" in report
        ft = results["setups"]["spectroformer-pretrained-finetuned"]
        assert ft["strategy"] == "mlp-probe" and ft["pooling"] == "mean"
        assert [(p["batch_size"], p["lr"]) for p in ft["grid"]] == [(4, 1e-3), (8, 1e-3)]
        best = max(ft["grid"], key=lambda p: p["best"]["val_r2"])
        assert (ft["selected"]["batch_size"], ft["selected"]["lr"]) == (best["batch_size"], best["lr"])
        assert "## Fine-tuning grid" in report
        scratch = results["setups"]["tokenformer-scratch"]
        assert [(p["batch_size"], p["lr"]) for p in scratch["grid"]] == [(4, None), (8, None)]
        assert (out / "tokenformer-scratch" / "bs8" / "fit.json").exists() and "| 4 | schedule |" in report
        for setup in results["setups"].values():
            assert set(setup["splits"]["test"]["r2_per_target"]) == {"pitch", "loudness"}
        assert results["setups"]["mfcc-linear"]["splits"]["test"]["r2"] > 0.5
        rows = (out / "spectroformer-pretrained-finetuned" / "predictions.csv").read_text().splitlines()
        assert rows[0] == "split,track_id,target,predicted" and len(rows) == 1 + 24
