"""The constant-Q representation: librosa's numbers, and a comparison whose SpectroFormer reads it."""

import json

import librosa
import numpy as np
import pytest

from helpers import TINY_RUN
from mirformer.cli import main
from mirformer.errors import ConfigError
from mirformer.representations.cqt import CQT, CQTConfig


@pytest.mark.parametrize("ref", ["max", "1.0"])
def test_cqt_equals_librosa(ref):
    sr = 22050
    t = np.arange(int(2.5 * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t)).astype(np.float32)
    rep = CQT(CQTConfig(sample_rate=sr, ref=ref))
    want = librosa.amplitude_to_db(np.abs(librosa.cqt(y, sr=sr, hop_length=512, fmin=librosa.note_to_hz("C1"),
                                                      n_bins=84, bins_per_octave=12)),
                                   ref=np.max if ref == "max" else 1.0, top_db=80.0).T
    got = rep.encode(y)
    assert got.shape == (rep.n_frames(len(y)), 84) == want.shape
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert int(np.argmax(got[40])) == 33  # A3 (220 Hz): 33 semitones above C1


def test_cqt_config_is_checked():
    with pytest.raises(ConfigError, match="Nyquist"):
        CQTConfig(sample_rate=8000, n_bins=96)  # up to 7.9 kHz
    with pytest.raises(ConfigError, match="multiple of 2\\*\\*6"):
        CQTConfig(hop_length=100)


@pytest.mark.slow
def test_spectroformer_reads_the_cqt(tmp_path, tiny_corpus):
    """A model of continuous frames reads any such representation its config names: one new file
    made a new row of the table."""
    out = tmp_path / "run"
    assert main(["compare", "--preset", "quickstart", *TINY_RUN, "--set", "spectroformer.input=cqt",
                 "--set", "cqt={sample_rate: 16000, hop_length: 256, fmin: 65.4, n_bins: 48}",
                 "--set", "setups=[spectroformer-scratch, tokenformer-scratch]", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["setups"]["spectroformer-scratch"]["input"] == "cqt"
    assert results["representations"]["cqt"]["name"] == "cqt" and "mel" not in results["representations"]
    assert results["representations"]["cqt"]["window_frames"] == 48  # window_seconds 0.768 at 62.5 frames/s
    questions = {t["question"] for t in results["evidence"]["paired"]}
    assert "does the constant-Q model beat the token models?" in questions
