import dataclasses

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from mirformer.errors import ConfigError
from mirformer.experiments.invariance import (
    COLUMNS,
    add_noise,
    change_between,
    load_signals,
    probe_invariance,
    shift,
    standard_transforms,
    summarise_transforms,
)
from mirformer.experiments.invariance_plot import write_invariance_report
from mirformer.representations.mel import MelConfig, log_mel

SR = 16000
MEL = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=32, top_db=None)


class ToyTokenizer:
    """Frames of ``hop_length`` samples, a fixed random projection, nearest of K random codes.

    Like a conv encoder it is linear in the samples before quantising, hence sensitive to
    polarity and to sub-hop shifts.
    """

    sample_rate = SR
    hop_length = 16

    def __init__(self, k=64, dim=8, seed=0):
        rng = np.random.default_rng(seed)
        self.projection = rng.standard_normal((self.hop_length, dim)) / np.sqrt(self.hop_length)
        self.codebook = rng.standard_normal((k, dim)) * 0.1

    def tokenize(self, y):
        frames = y[: len(y) // self.hop_length * self.hop_length].reshape(-1, self.hop_length)
        h = frames @ self.projection  # (T, dim)
        return np.argmin(((h[:, None, :] - self.codebook[None]) ** 2).sum(-1), axis=1)

    def vectors(self, tokens):
        return self.codebook[tokens]


class ToyResidualTokenizer(ToyTokenizer):
    """``ToyTokenizer`` with a second codebook quantising what the first left (residual VQ)."""

    def __init__(self):
        super().__init__()
        self.fine = np.random.default_rng(1).standard_normal((64, 8)) * 0.03

    def tokenize(self, y):
        coarse = super().tokenize(y)
        frames = y[: len(y) // self.hop_length * self.hop_length].reshape(-1, self.hop_length)
        residual = frames @ self.projection - self.codebook[coarse]
        fine = np.argmin(((residual[:, None, :] - self.fine[None]) ** 2).sum(-1), axis=1)
        return np.stack([coarse, fine], 1)

    def vectors(self, tokens):
        return self.codebook[tokens[:, 0]] + self.fine[tokens[:, 1]]


def _signals():
    rng = np.random.default_rng(1)
    t = np.arange(SR // 2) / SR
    return {
        "chord.wav": (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t)
                      + 0.01 * rng.standard_normal(len(t))).astype(np.float32),
        "noise.wav": (0.1 * rng.standard_normal(len(t))).astype(np.float32),
    }


@pytest.fixture(scope="module")
def probe():
    return probe_invariance(_signals(), tokenizer=ToyTokenizer(), mel_config=MEL)


def _row(df, file, transform):
    rows = df[(df["file"] == file) & (df["transform"] == transform)]
    assert len(rows) == 1, (file, transform, df["transform"].unique())
    return rows.iloc[0]


def test_rows_and_columns(probe):
    assert list(probe.columns) == list(COLUMNS)
    names = ["identity", "polarity", "shift 1", "shift 2", "shift 8", "shift 15", "gain -6 dB", "noise 40 dB SNR"]
    assert list(probe["transform"].unique()) == names
    assert len(probe) == 2 * len(names)
    assert probe["token_agreement"].between(0, 1).all()
    assert (probe["n_tokens"] == SR // 2 // 16).all() and (probe["n_frames"] == MEL.n_frames(SR // 2)).all()


def test_identity_is_invariant(probe):
    for file in _signals():
        row = _row(probe, file, "identity")
        assert row["token_agreement"] == 1.0 and row["vector_distance"] == 0.0 and row["mel_diff_db"] == 0.0


def test_polarity_keeps_mel_but_changes_tokens(probe):
    for file in _signals():
        row = _row(probe, file, "polarity")
        assert row["mel_diff_db"] < 1e-4
        assert row["token_agreement"] < 0.5 and row["vector_distance"] > 0


def test_gain_moves_mel_by_the_gain(probe):
    for file in _signals():
        assert _row(probe, file, "gain -6 dB")["mel_diff_db"] == pytest.approx(6.0, abs=1e-3)


def test_gain_with_top_db_clipping():
    # the clipping level follows the peak, so clipped cells move by the gain too
    y = _signals()["chord.wav"]
    config = dataclasses.replace(MEL, top_db=40.0)
    a, b = log_mel(y, config=config), log_mel(y * 10 ** (-6 / 20), config=config)
    assert (a == a.max() - 40).any()  # some cells are clipped
    np.testing.assert_allclose(a - b, 6.0, atol=2e-3)


def test_shift_and_noise_transforms():
    y = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(shift(y, 3), [0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    z = np.random.default_rng(0).standard_normal(50_000).astype(np.float32)
    noisy = add_noise(z, 40.0, seed=0)
    snr = 10 * np.log10(np.mean(z.astype(np.float64) ** 2) / np.mean((noisy - z).astype(np.float64) ** 2))
    assert snr == pytest.approx(40.0, abs=0.1)
    np.testing.assert_array_equal(noisy, add_noise(z, 40.0, seed=0))  # seeded


def test_change_between_counts_common_positions():
    y = _signals()["noise.wav"]
    row = change_between(y, y[:-40], tokenizer=ToyTokenizer(), mel_config=MEL)
    assert row["n_tokens"] == (len(y) - 40) // 16 and row["token_agreement"] == 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"shifts": (16,)}, "below one hop"),
    ({"mel_config": dataclasses.replace(MEL, sample_rate=22050)}, "sample_rate"),
    ({"mel_config": dataclasses.replace(MEL, ref="max")}, "ref"),
    ({"tokenizer": object()}, "tokenizer"),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        probe_invariance(_signals(), **{"tokenizer": ToyTokenizer(), "mel_config": MEL, **kwargs})


def test_standard_transforms_dedupe_shifts():
    names = [t.name for t in standard_transforms(hop_length=2)]
    assert names == ["identity", "polarity", "shift 1", "gain -6 dB", "noise 40 dB SNR"]


def test_summarise(probe):
    summary = summarise_transforms(probe)
    assert list(summary.index) == list(probe["transform"].unique())
    assert (summary["n_files"] == 2).all()
    assert summary.loc["gain -6 dB", "mel_diff_db"] == pytest.approx(6.0, abs=1e-3)


def test_report_files(probe, tmp_path):
    table = write_invariance_report(probe, tmp_path / "report")
    for name in ("invariance.csv", "invariance.md", "invariance.png"):
        assert (tmp_path / "report" / name).is_file()
    assert (tmp_path / "report" / "invariance.md").read_text() == table
    assert "| polarity | 2 |" in table and "100.0%" in table
    back = pd.read_csv(tmp_path / "report" / "invariance.csv")
    assert list(back.columns) == list(COLUMNS) and len(back) == len(probe)
    assert mpimg.imread(tmp_path / "report" / "invariance.png").shape[2] in (3, 4)
    assert not list((tmp_path / "report").glob(".*"))  # no temporary files left


def test_load_signals_skips_corrupt(tmp_path, write_tone):
    good = write_tone(tmp_path / "tone.wav", seconds=0.5, sr=22050)
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    signals, skipped = load_signals([good, bad, tmp_path / "missing.wav"], sample_rate=SR, max_seconds=0.25)
    assert list(signals) == ["tone.wav"] and len(signals["tone.wav"]) == SR // 4
    assert set(skipped) == {str(bad), str(tmp_path / "missing.wav")}
    assert "cannot decode" in skipped[str(bad)] and skipped[str(tmp_path / "missing.wav")] == "file not found"


def test_several_codebooks_are_probed_one_by_one(tmp_path):
    df = probe_invariance(_signals(), tokenizer=ToyResidualTokenizer(), mel_config=MEL)
    assert list(df.columns) == [*COLUMNS[:3], "agreement_codebook_1", "agreement_codebook_2", *COLUMNS[3:]]
    # The first codebook is the one-codebook tokenizer's; a frame is kept only when both are.
    one = probe_invariance(_signals(), tokenizer=ToyTokenizer(), mel_config=MEL)
    np.testing.assert_array_equal(df["agreement_codebook_1"], one["token_agreement"])
    assert (df["token_agreement"] <= df[["agreement_codebook_1", "agreement_codebook_2"]].min(axis=1)).all()
    identity = df[df["transform"] == "identity"]
    assert (identity[["token_agreement", "agreement_codebook_1", "agreement_codebook_2"]] == 1.0).all().all()
    # The finer codebook flips more under faint noise than the coarse one.
    noise = _row(df, "chord.wav", "noise 40 dB SNR")
    assert noise.agreement_codebook_2 < noise.agreement_codebook_1
    table = write_invariance_report(df, tmp_path)
    assert "| token agreement | codebook 1 | codebook 2 | codebook distance |" in table
    assert mpimg.imread(tmp_path / "invariance.png").shape[2] in (3, 4)
