"""A swept setting: the setups whose input it changes run once per value, the others once, in one
run folder and one report (its own paired-test question and plot); a rerun reuses everything."""

import json

import pytest

from helpers import TINY_RUN
from mirformer.cli import main
from mirformer.errors import ConfigError
from mirformer.experiments.presets import resolve
from mirformer.experiments.sweep import variants

SWEEP = ["--set", "tokenizer.train.vqvae.codebooks=2", "--set", "tokenizer.reconstruction_clips=2",
         "--set", "sweep={key: tokenizer.codebooks, values: [1, 2]}",
         "--set", "setups=[spectroformer-scratch, tokenformer-pretrained-finetuned, tokenformer-scratch, "
                  "codebookformer-scratch, mfcc-linear]"]


def test_only_the_setups_whose_input_changes_are_swept():
    cfg = resolve("codebooks-quickstart")
    runs = variants(cfg)
    assert [r.tag for r in runs] == ["", "@codebooks=1", "@codebooks=2", "@codebooks=4", "@codebooks=8"]
    assert runs[0].cfg.setups == ["spectroformer-pretrained-finetuned", "spectroformer-scratch", "mfcc-linear"]
    assert [r.cfg.tokenizer.codebooks for r in runs[1:]] == [1, 2, 4, 8]
    assert all(r.cfg.setups[0] == "tokenformer-pretrained-finetuned" for r in runs[1:])
    assert [r.tag for r in variants(resolve("quickstart"))] == [""]
    with pytest.raises(ConfigError, match="changes the input of none"):
        variants(resolve("quickstart", {"sweep": {"key": "mel.n_mels", "values": [32, 64]},
                                        "setups": ["tokenformer-scratch"]}))
    with pytest.raises(ConfigError, match="distinct values"):
        variants(resolve("quickstart", {"sweep": {"key": "tokenizer.codebooks", "values": [1, 1]}}))


@pytest.mark.slow
def test_a_sweep_runs_in_one_comparison(tmp_path, capsys):
    out = tmp_path / "run"
    run = ["compare", "--preset", "quickstart", *TINY_RUN, *SWEEP, "--out", str(out), "--quiet"]
    assert main(run) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["setups"]) == [
        "spectroformer-scratch", "mfcc-linear",
        "tokenformer-pretrained-finetuned@codebooks=1", "tokenformer-scratch@codebooks=1", "codebookformer-scratch@codebooks=1",
        "tokenformer-pretrained-finetuned@codebooks=2", "tokenformer-scratch@codebooks=2", "codebookformer-scratch@codebooks=2"]
    assert results["setups"]["tokenformer-scratch@codebooks=2"]["sweep"] == {"key": "tokenizer.codebooks", "value": 2}
    assert "sweep" not in results["setups"]["spectroformer-scratch"]
    # One tokenizer for both values; each value's tokens in their own input and store.
    reps = results["representations"]
    one, two = reps["tokens@codebooks=1"], reps["tokens@codebooks=2"]
    assert one["checkpoint_sha1"] == two["checkpoint_sha1"] and (one["codebooks"], two["codebooks"]) == (1, 2)
    assert two["about"]["reconstruction"]["clips"] == 2
    # More codebooks of a residual quantiser reconstruct better (trained tokenizer).
    assert two["about"]["reconstruction"]["snr_db"] > one["about"]["reconstruction"]["snr_db"]
    for stage in ("tokenformer-pretrain@codebooks=1", "tokenformer-pretrain@codebooks=2"):
        assert (out / stage / "encoder.pt").exists()
    asked = {(t["a"], t["b"], t["question"]) for t in results["evidence"]["paired"]}
    question = "does tokenizer.codebooks change the score (each value against 1)?"
    assert ("tokenformer-scratch@codebooks=2", "tokenformer-scratch@codebooks=1", question) in asked
    assert ("tokenformer-pretrained-finetuned@codebooks=2", "tokenformer-scratch@codebooks=2",
            "does pretraining help?") in asked
    assert ("tokenformer-pretrained-finetuned@codebooks=2", "tokenformer-scratch@codebooks=1",
            "does pretraining help?") not in asked
    report = (out / "report.md").read_text()
    assert "## Against tokenizer.codebooks" in report and (out / "sweep.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(run) == 0  # everything reused
    assert "training" not in capsys.readouterr().err
