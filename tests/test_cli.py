"""End to end through the ``mirformer`` command on a few short rendered clips."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mirformer.cli import main
from mirformer.experiments.config import SETUPS
from helpers import TINY_DATA, TINY_RUN, random_vqvae

@pytest.mark.slow
def test_compare_end_to_end_then_reuse(tmp_path, capsys, tiny_corpus):
    out = tmp_path / "run"
    assert main(["compare", "--preset", "quickstart", *TINY_RUN, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| spectroformer-pretrained-finetuned |" in printed and "| mfcc-linear |" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["classes"] == ["bach_chorale", "fiddle_tunes", "folk_china"]
    assert list(results["setups"]) == list(SETUPS)  # the thesis' six setups, then the baseline
    for kind in ("spectroformer", "tokenformer", "codebookformer"):
        ft = results["setups"][f"{kind}-pretrained-finetuned"]
        assert ft["model"] == kind and len(ft["history"]) == 2 and len(ft["pretrain_history"]) == 2
    tokenizer = results["representations"]["tokens"]["about"]
    assert tokenizer["source"] == "trained on the training split" and tokenizer["hop_length"] == 256
    assert tokenizer["vocab_size"] == 32 and 1 <= tokenizer["codes_used"] <= 32 and tokenizer["window_frames"] == 48
    assert 0.0 <= tokenizer["entropy_bits"] <= 5.0
    assert results["representations"]["tokens"]["frames_per_second"] == results["representations"]["mel"][
        "frames_per_second"] == 16000 / 256
    report = (out / "report.md").read_text()
    assert "## Tokenizer" in report and "codes used" in report
    for setup in results["setups"].values():
        test = setup["splits"]["test"]
        assert test["n"] == results["counts"]["test"] and 0.0 <= test["macro_f1"] <= 1.0
        assert np.array(test["confusion"]).sum() == test["n"]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["encoder"]["d_model"] == 32 and "torch" in config["versions"]
    for name in ("report.md", "curves.png", "confusion_spectroformer-scratch.png",
                 "spectroformer-pretrain/encoder.pt", "spectroformer-scratch/checkpoints/last.ckpt",
                 "spectroformer-scratch/predictions.csv"):
        assert (out / name).exists(), name
    assert tokenizer["epochs"] == 1 and tokenizer["val_loss"] > 0
    # Every setup, the baseline included, saved its clip outputs; the metrics, intervals and
    # paired tests are recomputed from the run folder alone.
    from mirformer.experiments.outputs import load_outputs
    from mirformer.experiments.questions import evidence_of_run
    from mirformer.tasks.classification import macro_f1

    for setup in results["setups"].values():
        ids, y, outputs = load_outputs(out / setup["outputs"])
        assert len(ids) == results["counts"]["test"]
        assert macro_f1(y, outputs) == pytest.approx(setup["splits"]["test"]["macro_f1"], abs=1e-6)
    evidence = results["evidence"]
    assert set(evidence["intervals"]) == set(SETUPS) and evidence["n_resamples"] == 200
    assert {t["question"] for t in evidence["paired"]} == {
        "against the MFCC baseline", "does pretraining help?", "does the log-mel model beat the token models?",
        "is the best setup (on validation) ahead of the others?"}
    assert evidence_of_run(results, out, n_resamples=200, n_permutations=200) == evidence
    assert "## How sure: intervals and paired tests" in report and (out / "forest.png").exists()
    # A second run reuses every finished stage and gives the same table.
    before = (out / "spectroformer-scratch" / "result.json").stat().st_mtime_ns
    assert main(["compare", "--preset", "quickstart", *TINY_RUN, "--out", str(out), "--quiet"]) == 0
    assert (out / "spectroformer-scratch" / "result.json").stat().st_mtime_ns == before
    assert json.loads((out / "results.json").read_text())["setups"] == results["setups"]


def test_unknown_config_key_is_an_error(capsys):
    assert main(["compare", "--set", "finetune.epoch=3"]) == 2
    assert "finetune.epoch" in capsys.readouterr().err


def test_print_config_applies_overrides(capsys):
    assert main(["compare", "--preset", "quickstart", "--set", "finetune.optim.lr=1e-4", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["finetune"]["optim"]["lr"] == 1e-4 and cfg["encoder"]["d_model"] == 128


def test_extract_mel_cli(tmp_path, write_tone, capsys):
    a = write_tone(tmp_path / "a.wav", seconds=1.0, sr=44100)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    assert main(["extract", "mel", str(a), str(bad), "--out", str(tmp_path / "out")]) == 0
    x = np.load(tmp_path / "out" / "a.npy")
    assert x.shape == (1 + 44100 // 128, 86) and x.dtype == np.float32
    assert "bad.wav" in capsys.readouterr().err
    assert main(["extract", "mel", str(a), "--out", str(tmp_path / "lib"), "--setting", "librosa", "--ref", "max"]) == 0
    y = np.load(tmp_path / "lib" / "a.npy")
    assert y.shape == (1 + 22050 // 512, 128) and abs(y.max()) < 1e-4


def test_extract_tokens_and_codebooks_cli(tmp_path, write_tone, capsys):
    ckpt = random_vqvae(tmp_path / "vq.pth.tar")
    a = write_tone(tmp_path / "a.flac", seconds=1.0, sr=44100, channels=2)  # resampled to 8 kHz, downmixed
    # Without --level, the top level (1 here: hop 8).
    assert main(["extract", "tokens", str(a), "--vqvae", str(ckpt), "--out", str(tmp_path / "t")]) == 0
    assert "(level 1, hop 8 at 8000 Hz)" in capsys.readouterr().out
    tokens = np.load(tmp_path / "t" / "a.npy")
    assert tokens.shape == (8000 // 8,) and tokens.dtype == np.int16 and 0 <= tokens.min() and tokens.max() < 32
    assert main(["extract", "codebooks", str(a), "--vqvae", str(ckpt), "--level", "0", "--out",
                 str(tmp_path / "c")]) == 0
    assert np.load(tmp_path / "c" / "a.npy").shape == (8000 // 4, 8)


def test_extract_several_residual_codebooks_cli(tmp_path, write_tone, capsys):
    ckpt = random_vqvae(tmp_path / "rvq.pth.tar", codebooks=3)
    a = write_tone(tmp_path / "a.wav", seconds=1.0, sr=8000)
    for n in (1, 2, 3):
        assert main(["extract", "tokens", str(a), "--tokenizer", str(ckpt), "--codebooks", str(n),
                     "--out", str(tmp_path / f"t{n}")]) == 0
    ids = {n: np.load(tmp_path / f"t{n}" / "a.npy") for n in (1, 2, 3)}
    assert ids[1].shape == (1000,) and ids[2].shape == (1000, 2) and ids[3].shape == (1000, 3)
    assert (ids[3][:, 0] == ids[1]).all() and (ids[3][:, :2] == ids[2]).all()  # residual: a prefix
    assert main(["extract", "codebooks", str(a), "--tokenizer", str(ckpt), "--codebooks", "2",
                 "--out", str(tmp_path / "c")]) == 0
    assert np.load(tmp_path / "c" / "a.npy").shape == (1000, 8)  # the two codebooks' vectors, summed
    capsys.readouterr()
    assert main(["extract", "tokens", str(a), "--tokenizer", str(ckpt), "--codebooks", "4",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "4 codebooks" in capsys.readouterr().err


def test_probe_invariance_cli(tmp_path, write_tone, capsys):
    ckpt = random_vqvae(tmp_path / "vq.pth.tar")
    a = write_tone(tmp_path / "a.wav", seconds=1.0, sr=8000, freq=330)
    assert main(["probe-invariance", str(a), "--vqvae", str(ckpt), "--out", str(tmp_path / "p"),
                 "--n-fft", "512", "--hop", "128", "--n-mels", "32"]) == 0
    for name in ("invariance.csv", "invariance.md", "invariance.png"):
        assert (tmp_path / "p" / name).exists()
    import pandas as pd

    df = pd.read_csv(tmp_path / "p" / "invariance.csv")
    polarity = df[df["transform"].str.contains("polarity")].iloc[0]
    assert polarity.mel_diff_db < 1e-3  # the mel spectrogram cannot hear a polarity flip


@pytest.mark.slow
def test_train_vqvae_cli_then_extract_tokens(tmp_path, write_tone, tiny_corpus):
    out = tmp_path / "vq"
    assert main(["train-vqvae", "--preset", "quickstart", "--set", TINY_DATA, "--set", "workers=1", "--vqvae", "small",
                 "--sample-rate", "16000", "--epochs", "2", "--crop-seconds", "0.5", "--batch-size", "4",
                 "--out", str(out), "--accelerator", "cpu"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]) == 2 and history["bandwidth"]["l2"] > 0
    a = write_tone(tmp_path / "a.wav", seconds=1.0, sr=16000)
    # A one-level VQ-VAE: the default level is its only one.
    assert main(["extract", "tokens", str(a), "--vqvae", str(out / "vqvae.pth.tar"), "--out", str(tmp_path / "t")]) == 0
    assert np.load(tmp_path / "t" / "a.npy").shape == (16000 // 128,)


@pytest.mark.slow
def test_compare_with_a_given_tokenizer_checkpoint(tmp_path, capsys, tiny_corpus):
    """An official-layout checkpoint is used as is, at its top level; no VQ-VAE is trained."""
    ckpt = random_vqvae(tmp_path / "vqvae.pth.tar")  # 8 kHz, levels with hops 4 and 8
    run = ["compare", "--preset", "quickstart", *TINY_RUN, "--set", f"tokenizer.checkpoint={ckpt}",
           "--set", "setups=[codebookformer-scratch]", "--out", str(tmp_path / "run"), "--quiet"]
    # By default token windows cover the seconds of the mel windows: 48 frames at 16000 / 256 Hz
    # = 0.768 s = 768 tokens at 1 kHz, longer than this encoder's positions.
    assert main(run) == 2
    assert "codebookformer: windows of 768 frames exceed encoder.max_len=256" in capsys.readouterr().err
    assert main([*run, "--set", "codebookformer.window=64"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(results["setups"]) == ["codebookformer-scratch"]
    t = results["representations"]["tokens"]["about"]
    assert t["source"] == "from the given checkpoint" and t["checkpoint"] == str(ckpt)
    assert (t["level"], t["hop_length"], t["sample_rate"], t["vocab_size"], t["window_frames"]) == (1, 8, 8000, 32, 64)
    assert not (Path(os.environ["MIRFORMER_HOME"]) / "runs" / "vqvae").exists()  # nothing was trained


@pytest.mark.slow
def test_tokenizer_settings_are_checked_before_any_heavy_work(tmp_path, capsys):
    run = ["compare", "--preset", "quickstart", *TINY_RUN, "--out", str(tmp_path / "run"), "--quiet"]
    # Hop 16 at 16 kHz: 1000 tokens/s, so a 0.768 s window is 768 tokens, beyond max_len 256.
    assert main([*run, "--set", "tokenizer.train.vqvae.downs_t=[4]"]) == 2
    assert "tokenformer: windows of 768 frames exceed encoder.max_len=256" in capsys.readouterr().err
    assert main([*run, "--set", "tokenizer.level=1"]) == 2
    assert "tokenizer.level=1 does not exist" in capsys.readouterr().err
    home = Path(os.environ["MIRFORMER_HOME"])
    assert not (home / "datasets").exists() and not (home / "runs" / "vqvae").exists()  # failed before any work
