import dataclasses
import io
import json
import warnings
from pathlib import Path

import librosa
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import soxr

from mirformer.errors import ConfigError, MirformerError
from mirformer.representations import mel
from mirformer.representations import REPRESENTATIONS, representation_class
from mirformer.representations.extract import extract_to_npy
from mirformer.representations.mel import LIBROSA_DEFAULT, THESIS, LogMel, MelConfig, log_mel, log_mel_stream

SECONDS = 8.0


@pytest.fixture(scope="module")
def chorale():
    """The first 8 s of Bach's BWV 66.6 rendered with a General MIDI SoundFont: {sample rate: y}."""
    import midirenderer
    from music21 import corpus, midi

    score = corpus.parse("bach/bwv66.6")
    midi_bytes = midi.translate.streamToMidiFile(score).writestr()
    soundfont = (Path(pretty_midi.__file__).parent / "TimGM6mb.sf2").read_bytes()
    y, sr = sf.read(io.BytesIO(midirenderer.render_wave_from(soundfont, midi_bytes)), dtype="float32")
    y = y[: int(SECONDS * sr)].mean(axis=1)
    return {rate: soxr.resample(y, sr, rate).astype(np.float32) for rate in (44100, 22050)}


def librosa_log_mel(y, c: MelConfig) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_fft is too large for input signal" on short inputs
        S = librosa.feature.melspectrogram(y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                           n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, window="hann",
                                           center=c.center, pad_mode="constant", power=c.power)
    return librosa.power_to_db(S, ref=np.max if c.ref == "max" else 1.0, amin=c.amin, top_db=c.top_db).T


SETTINGS = {
    "thesis": THESIS,
    "librosa": LIBROSA_DEFAULT,
    "custom": MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=40, fmin=50.0, fmax=8000.0,
                        power=1.0, top_db=60.0),
}


@pytest.mark.parametrize("ref", ["1.0", "max"])
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_matches_librosa_on_music(chorale, setting, ref):
    config = dataclasses.replace(SETTINGS[setting], ref=ref)
    y = chorale[config.sample_rate]
    expected = librosa_log_mel(y, config)
    got = log_mel(y, config=config)
    assert got.shape == expected.shape == (1 + len(y) // config.hop_length, config.n_mels)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-3


def test_chunk_boundaries_do_not_change_frames(chorale, monkeypatch):
    y = chorale[44100][:44100]
    whole = log_mel(y, config=THESIS)
    monkeypatch.setattr(mel, "CHUNK_BYTES", 7 * 8 * 257)  # 7 frames a chunk: hundreds of seams
    chunked = log_mel(y, config=THESIS)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
    assert np.abs(chunked - librosa_log_mel(y, THESIS)).max() < 1e-3


@pytest.mark.parametrize("config", [THESIS, dataclasses.replace(THESIS, ref="max"),
                                    dataclasses.replace(THESIS, center=False), SETTINGS["custom"]])
def test_streamed_blocks_equal_the_whole_signal(chorale, config):
    """Blocks of any lengths (one sample, an empty one, shorter and longer than a frame) give
    ``log_mel`` of the whole signal, centred frames at both ends with the same zero padding."""
    y = chorale[config.sample_rate]
    cuts = [0, 1, 1, 300, 4609, 40001, 100003, len(y)]
    blocks = [y[a:b] for a, b in zip(cuts, cuts[1:])]
    parts = list(log_mel_stream(lambda: iter(blocks), config=config))
    assert len(parts) > 3
    streamed, whole = np.concatenate(parts), log_mel(y, config=config)
    assert streamed.shape == whole.shape == (config.n_frames(len(y)), config.n_mels)
    np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)


def test_top_db_none_does_not_clip(chorale):
    y = chorale[22050]
    free = log_mel(y, config=dataclasses.replace(LIBROSA_DEFAULT, top_db=None))
    clipped = log_mel(y, config=LIBROSA_DEFAULT)
    assert free.min() < free.max() - 80
    np.testing.assert_array_equal(np.maximum(free, free.max() - 80), clipped)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("n", [1, 127, 511, 512, 513, 2047, 2049, 22050 + 37])
def test_frame_count_and_values_for_odd_lengths(chorale, n, center):
    config = dataclasses.replace(LIBROSA_DEFAULT, center=center)
    y = chorale[22050][1000 : 1000 + n]
    got = log_mel(y, config=config)
    assert got.shape == (config.n_frames(n), config.n_mels) == (LogMel(config).n_frames(n), config.n_mels)
    if n < config.n_fft and not center:
        return  # librosa refuses to frame a signal shorter than n_fft
    expected = librosa_log_mel(y, config)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


def test_input_dtype_and_layout_do_not_matter(chorale):
    y = chorale[22050][:22050]
    expected = log_mel(y, config=LIBROSA_DEFAULT)
    np.testing.assert_array_equal(log_mel(y.astype(np.float64), config=LIBROSA_DEFAULT), expected)
    strided = np.repeat(y, 2)[::2]
    np.testing.assert_array_equal(log_mel(strided, config=LIBROSA_DEFAULT), expected)


@pytest.mark.parametrize("y", [np.zeros((2, 1000), np.float32), np.full(1000, np.nan, np.float32),
                               np.r_[np.zeros(500), np.inf, np.zeros(500)].astype(np.float32)])
def test_bad_audio_raises(y):
    with pytest.raises(MirformerError):
        log_mel(y)


@pytest.mark.parametrize("fields, bad", [
    ({"sample_rate": 0}, "0"), ({"sample_rate": 44100.0}, "44100.0"), ({"n_fft": -512}, "-512"),
    ({"hop_length": 0}, "0"), ({"n_mels": True}, "True"), ({"fmin": -1.0}, "-1.0"),
    ({"fmin": 30000.0}, "30000.0"), ({"fmax": 30000.0}, "30000.0"), ({"fmax": 50.0, "fmin": 100.0}, "50.0"),
    ({"power": 0.0}, "0.0"), ({"ref": "peak"}, "'peak'"), ({"ref": 2.0}, "2.0"), ({"amin": 0.0}, "0.0"),
    ({"top_db": -1.0}, "-1.0"), ({"top_db": float("nan")}, "nan"), ({"center": 1}, "1"),
])
def test_config_rejects_bad_values(fields, bad):
    with pytest.raises(ConfigError, match=next(iter(fields))) as info:
        MelConfig(**fields)
    assert bad in str(info.value)


def test_config_presets_and_ref_number():
    assert (THESIS.sample_rate, THESIS.n_fft, THESIS.hop_length, THESIS.n_mels) == (44100, 512, 128, 86)
    assert (LIBROSA_DEFAULT.sample_rate, LIBROSA_DEFAULT.n_fft, LIBROSA_DEFAULT.hop_length,
            LIBROSA_DEFAULT.n_mels) == (22050, 2048, 512, 128)
    assert MelConfig(ref=1.0).ref == "1.0"  # YAML overrides give the number
    assert MelConfig(ref=1.0) == MelConfig()


def test_logmel_is_registered_representation():
    assert REPRESENTATIONS["mel"] is LogMel
    rep = representation_class("mel")(n_mels=64, sample_rate=22050)
    assert rep.config == MelConfig(n_mels=64, sample_rate=22050)
    assert (rep.dim, rep.sample_rate, rep.frames_per_second, rep.dtype) == (64, 22050, 22050 / 128, np.float32)
    assert LogMel().config == THESIS and LogMel(LIBROSA_DEFAULT).dim == 128
    with pytest.raises(ConfigError, match="n_mel"):
        LogMel(n_mel=64)
    with pytest.raises(ConfigError, match="not both"):
        LogMel(THESIS, n_mels=64)
    with pytest.raises(ConfigError, match="expects a MelConfig"):
        LogMel({"n_mels": 64})


def test_logmel_config_dict_and_frames():
    rep = LogMel()
    d = rep.config_dict()
    assert d["version"] == mel.MEL_VERSION
    assert {k: v for k, v in d.items() if k != "version"} == dataclasses.asdict(THESIS)
    assert json.loads(json.dumps(d)) == d
    assert LogMel(ref="max").config_dict() != d
    for n in (0, 1, 128, 1000, 44100):
        assert rep.n_frames(n) == len(rep.encode(np.zeros(n, np.float32))) == 1 + n // 128


def test_extract_to_npy(tmp_path, chorale):
    y = chorale[22050]
    audio = tmp_path / "audio"
    (audio / "other").mkdir(parents=True)
    sf.write(audio / "a.wav", y[:22050], 22050)
    sf.write(audio / "b.flac", y[22050:33075], 22050)
    sf.write(audio / "other" / "a.wav", y[:11025], 22050)
    (audio / "empty.wav").write_bytes(b"")
    (audio / "corrupt.wav").write_bytes(b"RIFF not really a wave file" * 10)
    paths = [audio / "a.wav", audio / "b.flac", audio / "empty.wav", audio / "other" / "a.wav",
             audio / "corrupt.wav"]
    rep = LogMel(LIBROSA_DEFAULT)
    with pytest.warns(UserWarning, match="share a file stem"):
        result = extract_to_npy(paths, tmp_path / "out", representation=rep, progress=False)
    written = [Path(p) for p in result["written"]]
    assert [p.name for p in written][1] == "b.npy"
    assert [p.name[:2] for p in written] == ["a-", "b.", "a-"] and written[0] != written[2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    for p, n in zip(written, (22050, 11025, 11025)):
        x = np.load(p)
        assert x.shape == (rep.n_frames(n), 128) and x.dtype == np.float32
    np.testing.assert_array_equal(np.load(written[1]), log_mel(sf.read(audio / "b.flac", dtype="float32")[0],
                                                              config=LIBROSA_DEFAULT))
    assert set(result["skipped"]) == {str(audio / "empty.wav"), str(audio / "corrupt.wav")}
    assert "empty" in result["skipped"][str(audio / "empty.wav")]
    assert "cannot decode" in result["skipped"][str(audio / "corrupt.wav")]
