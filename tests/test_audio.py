import numpy as np
import pytest
import soundfile as sf

from mirformer.audio import load_audio
from mirformer.errors import AudioError, MirformerError


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3"), ("au", "AU")])
def test_decodes_formats_downmixes_and_resamples(tmp_path, write_tone, ext, fmt):
    path = write_tone(tmp_path / f"a.{ext}", seconds=1.0, sr=44100, channels=2, fmt=fmt)
    y = load_audio(path, sr=22050)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 22050) <= 1200  # MP3 encoders add priming samples
    # Still a 440 Hz tone after downmix and resampling.
    spec = np.abs(np.fft.rfft(y[:16384]))
    assert abs(np.argmax(spec) * 22050 / 16384 - 440) < 3


def test_max_seconds_reads_prefix(tmp_path, write_tone):
    y = load_audio(write_tone(tmp_path / "a.wav", seconds=3.0), sr=22050, max_seconds=1.0)
    assert len(y) == 22050


@pytest.mark.parametrize("case,cause", [
    ("missing", "not found"), ("empty", "empty"), ("garbage", "cannot decode"),
    ("silent", "silent"), ("short", "too short"),
])
def test_bad_files_raise_one_error_type_naming_file_and_cause(tmp_path, write_tone, case, cause):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    elif case == "silent":
        sf.write(path, np.zeros(22050), 22050)
    elif case == "short":
        write_tone(path, seconds=0.5)
    with pytest.raises(AudioError) as info:
        load_audio(path, sr=22050, min_seconds=1.0)
    assert str(path) in str(info.value) and cause in info.value.cause
    assert isinstance(info.value, MirformerError)


def test_truncated_mp3_is_reported_not_crashed(tmp_path, write_tone):
    path = write_tone(tmp_path / "a.mp3", seconds=2.0, fmt="MP3")
    data = path.read_bytes()
    path.write_bytes(data[:300])  # a header and a sliver of a frame, as FMA's broken files
    with pytest.raises(AudioError):
        load_audio(path, sr=22050, min_seconds=1.0)
