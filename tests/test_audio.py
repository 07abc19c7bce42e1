import numpy as np
import pytest
import soundfile as sf

from mirformer.audio import audio_blocks, load_audio
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


@pytest.mark.parametrize("channels", [2, 3])
def test_downmix_is_the_mean_of_the_channels(tmp_path, channels):
    """Channel by channel, as numpy's ``mean(axis=1)`` gives it (the same values for stereo)."""
    y = np.random.default_rng(0).uniform(-1, 1, (8000, channels)).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 8000, subtype="FLOAT")
    mono = load_audio(tmp_path / "a.wav", sr=8000)
    assert mono.dtype == np.float32 and mono.flags.c_contiguous
    np.testing.assert_allclose(mono, y.mean(axis=1), rtol=0, atol=0 if channels == 2 else 1e-7)


def test_max_seconds_reads_prefix(tmp_path, write_tone):
    y = load_audio(write_tone(tmp_path / "a.wav", seconds=3.0), sr=22050, max_seconds=1.0)
    assert len(y) == 22050


@pytest.mark.parametrize("case,cause,kind", [
    ("missing", "not found", "missing"), ("empty", "empty", "empty"), ("garbage", "cannot decode", "undecodable"),
    ("silent", "silent", "silent"), ("short", "too short", "too short"), ("nan", "NaN or Inf", "non-finite"),
    ("-inf", "NaN or Inf", "non-finite"), ("no frames", "no audio frames decoded", "empty"),
])
def test_bad_files_raise_one_error_type_naming_file_and_cause(tmp_path, write_tone, case, cause, kind):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    elif case == "silent":
        sf.write(path, np.zeros(22050), 22050)
    elif case == "short":
        write_tone(path, seconds=0.5)
    elif case == "nan":
        sf.write(path, np.r_[np.full(22050, 0.5), np.nan], 22050, subtype="FLOAT")
    elif case == "-inf":
        sf.write(path, np.r_[np.full(22050, 0.5), -np.inf], 22050, subtype="FLOAT")
    elif case == "no frames":
        sf.write(path, np.zeros(0), 22050)  # a header, no frame
    with pytest.raises(AudioError) as info:
        load_audio(path, sr=22050, min_seconds=1.0)
    assert str(path) in str(info.value) and cause in info.value.cause and info.value.kind == kind
    assert isinstance(info.value, MirformerError)


@pytest.mark.parametrize("case,cause,kind", [
    ("empty", "empty file (0 bytes)", "empty"),
    ("tag only", "an ID3 tag only (30 bytes), no audio frame (libsndfile: ", "undecodable"),
    ("no frame", "no MPEG audio frame in its 4000 bytes after any tag (libsndfile: ", "undecodable"),
    ("sliver", "MPEG audio frames found but not decodable (corrupt or cut short) (libsndfile: ", "undecodable"),
    ("truncated", "truncated: decodes 0.", "truncated"),
])
def test_undecodable_mp3_says_what_was_found(tmp_path, write_tone, case, cause, kind):
    """libsndfile says "File does not exist or is not a regular file" of any MP3 without a frame;
    the error says what the file holds and keeps that text as a detail."""
    data = write_tone(tmp_path / "tone.mp3", seconds=6.0, fmt="MP3").read_bytes()
    path = tmp_path / "a.mp3"
    path.write_bytes({"empty": b"", "tag only": b"ID3\x04\x00\x00\x00\x00\x00\x14" + bytes(20),
                      "no frame": b"\x00" * 4000, "sliver": data[:300],  # a header and a sliver of a frame
                      "truncated": data[: len(data) // 6]}[case])
    with pytest.raises(AudioError) as info:
        load_audio(path, sr=22050)
    assert info.value.cause.startswith(cause) and str(path) in str(info.value) and info.value.kind == kind
    if case == "truncated":
        assert info.value.cause.endswith("of the 6.00 s its header declares")


@pytest.mark.parametrize("case,cause,kind,at_once", [
    ("missing", "file not found", "missing", True), ("empty", "empty file (0 bytes)", "empty", True),
    ("garbage", "cannot decode: not a format libsndfile reads, or corrupt (libsndfile: ", "undecodable", True),
    ("tag only", "an ID3 tag only (30 bytes), no audio frame (libsndfile: ", "undecodable", True),
    ("nan", "decoded samples contain NaN or Inf", "non-finite", False),
    ("truncated", "truncated: decodes 0.", "truncated", False),
    ("silent", "silent (peak below -120 dBFS) or no audio frames", "silent", False),
])
def test_streamed_decoding_refuses_what_load_audio_refuses(tmp_path, write_tone, case, cause, kind, at_once):
    """``audio_blocks`` runs ``load_audio``'s checks: a file that cannot open at once, the rest
    when the blocks reach them (non-finite samples in the second block: before the end)."""
    path = tmp_path / ("a.mp3" if case in ("tag only", "truncated") else "a.wav")
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    elif case == "tag only":
        path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x14" + bytes(20))
    elif case == "nan":
        sf.write(path, np.r_[np.full(22050, 0.5), np.nan, np.full(22050, 0.5)], 22050, subtype="FLOAT")
    elif case == "truncated":
        data = write_tone(tmp_path / "tone.mp3", seconds=6.0, fmt="MP3").read_bytes()
        path.write_bytes(data[: len(data) // 6])
    elif case == "silent":
        sf.write(path, np.zeros(22050), 22050)
    got = []
    with pytest.raises(AudioError) as info:
        for block in audio_blocks(path, sr=16000, block_seconds=0.5)():
            got.append(block)
    assert info.value.cause.startswith(cause) and str(path) in str(info.value) and info.value.kind == kind
    assert (not got) if at_once else (len(got) >= 2 or case == "silent")
