"""Pretrain once, evaluate anywhere: pretraining on another dataset reads no label of it, the
encoder checkpoint carries its input settings and scaling, ``evaluate`` on it gives the numbers of
the equivalent ``compare`` stage, and several encoders make one table."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from mirformer.cli import main
from mirformer.config_tree import parse_overrides
from mirformer.datasets.audio_folder import AudioFolder
from mirformer.datasets.base import Dataset, Track, register_dataset
from mirformer.encoder_file import read_encoder
from mirformer.errors import CheckpointError, ConfigError
from mirformer.experiments.presets import resolve
from mirformer.experiments.prepare import prepare
from mirformer.experiments.pretrain import run_pretrain

from helpers import TINY_RUN

SR = 16000
SETS = [v for k, v in zip(TINY_RUN, TINY_RUN[1:]) if k == "--set"]


class Trap:
    """A label that fails the test if anything reads it."""

    def _read(self, *args):
        raise AssertionError("a pretraining label was read")

    __eq__ = __hash__ = __str__ = __repr__ = __format__ = __lt__ = _read


@register_dataset
class TrapLabels(Dataset):
    """Tones with labels that must never be read (a pretraining set)."""

    name = "trap-labels"

    def tracks(self):
        return [Track(f"t{i}", self.root / f"t{i}.wav", "validation" if i % 4 == 3 else "train", label=Trap())
                for i in range(8)]


def _tones(root, n=8):
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(2 * SR) / SR
    for i in range(n):
        sf.write(root / f"t{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 70 * i) * t), SR)
    return root


def _cfg(*extra):
    return resolve("quickstart", parse_overrides([*SETS, *extra]))


def test_pretraining_on_another_dataset_reads_no_label(tmp_path):
    trap = _tones(tmp_path / "trap")
    cfg = _cfg("setups=[spectroformer-pretrained-finetuned, tokenformer-pretrained-finetuned]",
               f"pretrain.data={{name: trap-labels, root: {trap}}}", "trainer.progress=false")
    encoders = run_pretrain(cfg, run_dir=tmp_path / "run", progress=False)
    assert set(encoders) == {"spectroformer", "tokenformer"}
    about = read_encoder(encoders["spectroformer"]).about
    assert about["dataset"] == "trap-labels" and about["tracks"] == {"train": 6, "validation": 2}


def test_encoder_checkpoint_carries_settings_and_scaling(tmp_path, tiny_corpus):
    cfg = _cfg("setups=[spectroformer-pretrained-finetuned]", "trainer.progress=false")
    path = run_pretrain(cfg, run_dir=tmp_path / "run", progress=False)["spectroformer"]
    encoder = read_encoder(path)
    assert encoder.kind == "spectroformer" and encoder.representation.config == cfg.mel
    assert (encoder.window, encoder.eval_window, encoder.scaling) == (48, 48, "standardise")
    # The scaling is the pretraining training split's, as the store computes it.
    pre = prepare(cfg, labelled=False, progress=False)
    mean, std = pre.inputs["mel"].store.normalisation([t.id for t in pre.tracks["train"]])
    np.testing.assert_array_equal(encoder.statistics.mean, mean)
    np.testing.assert_array_equal(encoder.statistics.std, std)
    model = encoder.load_model()
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    torch.save({"spec": saved}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="not a mirformer encoder checkpoint"):
        read_encoder(tmp_path / "old.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:3000])  # a copy cut short
    with pytest.raises(CheckpointError, match="cut.pt: not a readable encoder checkpoint"):
        read_encoder(tmp_path / "cut.pt")


def test_downstream_data_is_read_with_the_encoders_settings_and_scaling(tmp_path, tiny_corpus):
    """An encoder pretrained on tones at 22.05 kHz with 16 bands reads the 16 kHz, 32-band
    downstream corpus resampled to its own settings and scaled by its own statistics."""
    tones = _tones(tmp_path / "tones")
    pre = _cfg("setups=[spectroformer-pretrained-finetuned]", f"pretrain.data={{name: audio, root: {tones}}}",
               "mel={sample_rate: 22050, n_fft: 512, hop_length: 256, n_mels: 16, ref: max}", "trainer.progress=false")
    path = run_pretrain(pre, run_dir=tmp_path / "run", progress=False)["spectroformer"]
    encoder = read_encoder(path)
    prepared = prepare(_cfg("trainer.progress=false"), kinds=[], encoders=[path], progress=False)
    inp = prepared.inputs[str(path)]
    assert inp.representation.config == encoder.representation.config and inp.representation.config.n_mels == 16
    assert inp.store.get(prepared.tracks["train"][0].id).shape[1] == 16
    np.testing.assert_array_equal(inp.statistics.mean, encoder.statistics.mean)
    np.testing.assert_array_equal(inp.statistics.std, encoder.statistics.std)
    own_mean, _ = inp.store.normalisation([t.id for t in prepared.tracks["train"]])
    assert not np.allclose(own_mean, encoder.statistics.mean, atol=0.5)  # the downstream data's own would differ


@pytest.mark.slow
def test_evaluate_gives_the_numbers_of_the_compare_stage_and_one_table(tmp_path, capsys, tiny_corpus):
    run = tmp_path / "run"
    args = ["--preset", "quickstart", *TINY_RUN, "--quiet"]
    assert main(["compare", *args, "--set", "setups=[spectroformer-pretrained-finetuned]", "--out", str(run)]) == 0
    compared = json.loads((run / "results.json").read_text())["setups"]["spectroformer-pretrained-finetuned"]
    encoder = run / "spectroformer-pretrain" / "encoder.pt"
    # A mel setting contradicting the encoder's is refused before any work.
    assert main(["evaluate", "--encoder", str(encoder), *args, "--set", "mel.n_mels=16"]) == 2
    assert "reads log-mel" in capsys.readouterr().err
    # A second encoder, pretrained on a folder of unlabelled audio with the same settings.
    tones = _tones(tmp_path / "tones")
    assert main(["pretrain", *args, "--model", "spectroformer", "--set", f"pretrain.data={{name: audio, root: {tones}}}",
                 "--out", str(tmp_path / "pre")]) == 0
    other = tmp_path / "pre" / "spectroformer-pretrain" / "encoder.pt"
    out = tmp_path / "eval"
    assert main(["evaluate", "--encoder", str(encoder), "--encoder", str(other), *args, "--mode", "full",
                 "--mode", "linear-probe", "--baseline", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results["setups"]) == ["spectroformer-music21-styles-full", "spectroformer-music21-styles-linear-probe",
                                       "spectroformer-audio-full", "spectroformer-audio-linear-probe", "mfcc-linear"]
    assert "| spectroformer-audio-linear-probe |" in table and (out / "report.md").exists()
    evaluated = results["setups"]["spectroformer-music21-styles-full"]
    assert evaluated["splits"] == compared["splits"] and evaluated["history"] == compared["history"]


def test_audio_dataset_from_a_folder_or_a_list(tmp_path):
    root = _tones(tmp_path / "music" / "a")
    (tmp_path / "music" / "b").mkdir()
    sf.write(tmp_path / "music" / "b" / "long.flac", np.zeros(SR * 3) + 0.1, SR)
    (tmp_path / "music" / "notes.txt").write_text("not audio")
    tracks = AudioFolder(tmp_path / "music", validation=0.3).tracks()
    assert len(tracks) == 9 and {t.split for t in tracks} == {"train", "validation"}
    assert all(t.label is None and t.labels is None for t in tracks) and "b/long.flac" in {t.id for t in tracks}
    # Adding a file moves no other file between splits.
    sf.write(root / "new.wav", np.zeros(SR) + 0.1, SR)
    again = {t.id: t.split for t in AudioFolder(tmp_path / "music", validation=0.3).tracks()}
    assert all(again[t.id] == t.split for t in tracks)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my files\nmusic/a/t0.wav\n{root / 't1.wav'}  # absolute\n")
    assert [(t.id, t.path.exists()) for t in AudioFolder(listing).tracks()] == [
        (str(root / "t1.wav"), True), ("music/a/t0.wav", True)]
    with pytest.raises(ConfigError, match="no labels"):
        AudioFolder(tmp_path / "music").require_labels()


def test_unlabelled_audio_cannot_be_the_downstream_set(tmp_path, capsys):
    tones = _tones(tmp_path / "tones")
    assert main(["compare", "--preset", "quickstart", *TINY_RUN, "--quiet", "--set", "data.name=audio", "--set", "data.options={}",
                 "--data-root", str(tones), "--set", "setups=[spectroformer-scratch]", "--out", str(tmp_path / "r")]) == 2
    assert "has no labels" in capsys.readouterr().err


