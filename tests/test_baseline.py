import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import accuracy_score, f1_score

from mirformer.datasets.base import Track
from mirformer.errors import ConfigError
from mirformer.kinds.mfcc_linear import MFCCLinear, MFCCLinearConfig, mfcc_summary
from mirformer.tasks.classification import Classification, class_weights

SR = 22050
CLASSES = ["low", "mid", "high"]
CENTRES = {"low": 400.0, "mid": 2000.0, "high": 6000.0}  # Hz; noise bands MFCCs separate easily
PER_SPLIT = {"train": 8, "validation": 3, "test": 3}


def _band_noise(rng, centre_hz: float, seconds: float = 0.5) -> np.ndarray:
    """White noise kept within +-25% of a jittered centre frequency."""
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    centre = centre_hz * rng.uniform(0.85, 1.15)
    spec[np.abs(freqs - centre) > 0.25 * centre] = 0
    y = np.fft.irfft(spec, n)
    return (0.5 * rng.uniform(0.3, 1.0) * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    rng = np.random.default_rng(0)
    tracks = []
    for label in CLASSES:
        for split, n in PER_SPLIT.items():
            for i in range(n):
                path = root / f"{label}-{split}-{i}.{'flac' if i % 2 else 'wav'}"
                sf.write(path, _band_noise(rng, CENTRES[label]), SR)
                tracks.append(Track(f"{label}-{split}-{i}", path, split, label))
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.wav").write_bytes(b"RIFF" + rng.bytes(300))
    sf.write(root / "short.wav", _band_noise(rng, 400.0, seconds=0.05), SR)
    tracks += [
        Track("empty", root / "empty.wav", "train", "low"),
        Track("corrupt", root / "corrupt.wav", "test", "mid"),
        Track("short", root / "short.wav", "validation", "high"),
    ]
    return tracks


def run_baseline(tracks, workers=1):
    task = Classification(CLASSES)
    task.fit([t for t in tracks if t.split == "train"])
    return MFCCLinear().fit(tracks, task, MFCCLinearConfig(sample_rate=SR), workers=workers, progress=False)[0]


@pytest.fixture(scope="module")
def result(corpus):
    return run_baseline(corpus)


def _f1_from_confusion(cm: np.ndarray) -> float:
    """Macro F1 over classes that occur in truth or predictions (sklearn's default label set)."""
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    return float(np.mean(2 * tp[present] / (2 * tp + fp + fn)[present]))


def test_schema(result):
    assert result["name"] == result["model"] == "mfcc-linear"
    assert result["pretrained"] is False
    assert result["history"] == []
    assert set(result["selected"]) == {"C"} and isinstance(result["selected"]["C"], float)
    assert list(result["splits"]) == ["train", "validation", "test"]
    for m in result["splits"].values():
        assert set(m) == {"macro_f1", "accuracy", "loss", "confusion", "n"}
        assert np.asarray(m["confusion"]).shape == (3, 3)
        assert all(type(v) is int for row in m["confusion"] for v in row)


def test_bad_files_are_skipped_with_reasons(result):
    skipped = result["skipped"]
    assert set(skipped) == {"empty", "corrupt", "short"}
    assert "empty" in skipped["empty"]
    assert "decode" in skipped["corrupt"]
    assert "too short" in skipped["short"]
    n = {s: m["n"] for s, m in result["splits"].items()}
    assert n == {s: 3 * k for s, k in PER_SPLIT.items()}  # bad files dropped, not zero-filled


def test_beats_chance(result):
    test = result["splits"]["test"]
    assert test["macro_f1"] > 0.8 and test["accuracy"] > 0.8  # chance is 1/3
    assert test["loss"] < np.log(3)  # below the cross-entropy of a uniform guess


def test_metrics_match_confusion(result):
    for m in result["splits"].values():
        cm = np.asarray(m["confusion"])
        assert cm.sum() == m["n"]
        assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        assert m["macro_f1"] == pytest.approx(_f1_from_confusion(cm))
        # the same numbers from sklearn on (true, predicted) pairs rebuilt from the confusion
        y_true = np.repeat(np.repeat(np.arange(3), 3), cm.ravel())
        y_pred = np.repeat(np.tile(np.arange(3), 3), cm.ravel())
        assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
        assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))


@pytest.mark.slow  # each worker process pays librosa's first-call start-up (~3 s)
def test_parallel_matches_serial(corpus, result):
    parallel = run_baseline(corpus, workers=2)
    assert parallel["skipped"] == result["skipped"] and parallel["selected"] == result["selected"]
    for split, m in result["splits"].items():
        p = parallel["splits"][split]
        assert p["confusion"] == m["confusion"] and p["n"] == m["n"]
        # BLAS thread counts differ in workers, so sums may differ in the last bits
        for key in ("macro_f1", "accuracy", "loss"):
            assert p[key] == pytest.approx(m[key], rel=1e-6)


def test_loss_is_weighted_cross_entropy():
    """The loss the neural setups report, from the baseline's log-probabilities: torch's
    cross_entropy(weight=w), written out."""
    y_train = np.array([0, 0, 0, 0, 1, 1])  # class 2 absent from train: weight 0
    weights = class_weights(y_train, 3)
    assert weights == pytest.approx([0.5, 1.0, 0.0])
    task = Classification(CLASSES)
    task.weights = weights
    logp = np.log(np.array([[0.7, 0.3, 1e-30], [0.2, 0.8, 1e-30], [0.6, 0.4, 1e-30], [0.1, 0.9, 1e-30]]))
    y = np.array([0, 1, 1, 2])
    m = task.metrics(logp, y)
    nll = -np.log([0.7, 0.8, 0.4])  # the class-2 track has weight 0 and drops out
    expected = (0.5 * nll[0] + 1.0 * nll[1] + 1.0 * nll[2]) / (0.5 + 1.0 + 1.0)
    assert m["loss"] == pytest.approx(expected)
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]


def test_mfcc_summary_layout():
    y = np.random.default_rng(1).standard_normal(SR // 2).astype(np.float32)
    x = mfcc_summary(y, sr=SR, n_mfcc=13)
    assert x.shape == (4 * 13,) and np.all(np.isfinite(x))
    assert np.all(x[13:26] >= 0) and np.all(x[39:] >= 0)  # the two std blocks


@pytest.mark.parametrize("sr", [22050, 16000])
def test_mfcc_summary_equals_librosas_mfcc_and_delta(sr):
    """mirformer's log-mel + scipy's DCT-II and Savitzky-Golay filter give librosa's numbers."""
    import librosa

    t = np.arange(int(2.3 * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * t))
         + 0.05 * np.random.default_rng(3).standard_normal(len(t))).astype(np.float32)
    y[: sr // 4] = 0  # silence, so the 80 dB floor of power_to_db matters
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    delta = librosa.feature.delta(mfcc, width=9)
    expected = np.concatenate([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)])
    np.testing.assert_allclose(mfcc_summary(y, sr=sr, n_mfcc=20), expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "change, match",
    [({"label": "other"}, "label 'other'"), ({"split": "dev"}, "split 'dev'")],
)
def test_bad_tracks_raise(corpus, change, match):
    t = corpus[0]
    bad = Track(t.id, t.path, change.get("split", t.split), change.get("label", t.label))
    with pytest.raises(ConfigError, match=match):
        run_baseline([bad, *corpus[1:]])


def test_empty_split_raises(corpus):
    kept = [t for t in corpus if t.split != "validation"]
    with pytest.raises(ConfigError, match="'validation' has no usable files"):
        run_baseline(kept)
