"""A swept setting: the setups whose input it changes run once per value, the others once, in one
run folder and one report (its own paired-test question and plot); a rerun reuses everything."""

import json

import numpy as np
import pytest

from helpers import TINY_RUN
from mirformer.cli import main
from mirformer.datasets.base import nested_share
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
    with pytest.raises(ConfigError, match="changes the input or pretraining of none"):
        variants(resolve("quickstart", {"sweep": {"key": "mel.n_mels", "values": [32, 64]},
                                        "setups": ["tokenformer-scratch"]}))
    with pytest.raises(ConfigError, match="distinct values"):
        variants(resolve("quickstart", {"sweep": {"key": "tokenizer.codebooks", "values": [1, 1]}}))


def test_a_pretraining_share_sweeps_the_pretrained_setups_alone():
    """``--pretrain-fractions``: a setup's input is the same at every share, its pretraining is not;
    the setups from scratch and the baseline run once."""
    cfg = resolve("quickstart", {"sweep": {"key": "pretrain.fraction", "values": [0.1, 0.3, 1.0]}})
    runs = variants(cfg)
    assert [r.tag for r in runs] == ["", "@fraction=0.1", "@fraction=0.3", "@fraction=1.0"]
    assert all(not name.endswith("pretrained-finetuned") for name in runs[0].cfg.setups)
    assert all(name.endswith("pretrained-finetuned") for r in runs[1:] for name in r.cfg.setups)
    assert [r.cfg.pretrain.fraction for r in runs[1:]] == [0.1, 0.3, 1.0]
    with pytest.raises(ConfigError, match=r"pretrain.fraction must be in \(0, 1\]"):
        resolve("quickstart", {"pretrain": {"fraction": 0}})


def test_shares_are_nested_and_stay_put_when_tracks_are_added():
    ids = [f"t{i}" for i in range(2000)]
    shares = {f: nested_share(ids, f, seed=3) for f in (0.1, 0.3, 1.0)}
    assert shares[0.1] <= shares[0.3] <= shares[1.0] == set(ids)
    assert abs(len(shares[0.1]) - 200) < 45 and abs(len(shares[0.3]) - 600) < 70  # about the share asked
    more = nested_share(ids + [f"new{i}" for i in range(500)], 0.3, seed=3)
    assert more & set(ids) == shares[0.3]  # adding tracks moves none of the others
    assert nested_share(ids, 0.3, seed=4) != shares[0.3]  # another seed, another draw


@pytest.mark.slow
def test_a_sweep_runs_in_one_comparison(tmp_path, capsys, tiny_corpus):
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


@pytest.mark.slow
def test_pretraining_on_nested_shares_asks_whether_the_gap_moves(tmp_path, tiny_corpus):
    """``--pretrain-fractions 0.5,1.0``: each pretrained setup twice, on nested shares of the
    pretraining set (its encoder says how many clips); the log-mel-against-tokens question is asked
    within each share, the gap's change from the smaller to the larger share with its interval; the
    sweep's plot reads pretraining clips; a rerun reuses every stage."""
    out = tmp_path / "run"
    run = ["compare", "--preset", "quickstart", *TINY_RUN, "--pretrain-fractions", "0.5,1.0",
           "--set", "setups=[spectroformer-pretrained-finetuned, tokenformer-pretrained-finetuned, spectroformer-scratch]",
           "--out", str(out), "--quiet"]
    assert main(run) == 0
    results = json.loads((out / "results.json").read_text())
    setups = results["setups"]
    assert list(setups) == ["spectroformer-scratch", "spectroformer-pretrained-finetuned@fraction=0.5",
                            "tokenformer-pretrained-finetuned@fraction=0.5", "spectroformer-pretrained-finetuned@fraction=1.0",
                            "tokenformer-pretrained-finetuned@fraction=1.0"]
    half, whole = (setups[f"spectroformer-pretrained-finetuned@fraction={f}"]["pretrain_clips"] for f in (0.5, 1.0))
    assert 0 < half < whole == results["counts"]["train"]  # the comparison's own training split, pretrained on
    asked = {(t["a"], t["b"], t["question"]) for t in results["evidence"]["paired"]}
    beat = {(a, b) for a, b, q in asked if q == "does the log-mel model beat the token models?"}
    assert beat == {(f"spectroformer-pretrained-finetuned@fraction={f}", f"tokenformer-pretrained-finetuned@fraction={f}")
                    for f in (0.5, 1.0)}
    assert ("spectroformer-pretrained-finetuned@fraction=0.5", "spectroformer-scratch", "does pretraining help?") in asked
    [gap] = results["evidence"]["gaps"]
    assert gap["first"] == ["spectroformer-pretrained-finetuned@fraction=0.5", "tokenformer-pretrained-finetuned@fraction=0.5"]
    assert np.isclose(gap["difference"], gap["gap_last"] - gap["gap_first"]) and gap["low"] <= gap["high"]
    report = (out / "report.md").read_text()
    assert "Does the gap move from pretrain.fraction = 0.5 to 1.0?" in report and f"| 0.5 | {half} |" in report
    assert main(run) == 0
    again = json.loads((out / "results.json").read_text())
    assert {n: s["splits"] for n, s in again["setups"].items()} == {n: s["splits"] for n, s in setups.items()}
