"""GTZAN loader: the shipped fault-filtered lists, the three folder layouts, .au and .wav files,
the random split, and the empty jazz.00054.wav of the Kaggle copy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from helpers import counts, outputs
from mirformer.datasets.base import Problem
from mirformer.datasets.gtzan import GENRES, GTZAN, filtered_split
from mirformer.errors import ConfigError

# Files per genre in the fault-filtered lists (930 of 1,000).
FILTERED_PER_GENRE = {"blues": 100, "classical": 99, "country": 98, "disco": 93, "hiphop": 92, "jazz": 87,
                      "metal": 91, "pop": 84, "reggae": 86, "rock": 100}
CORRUPT = "listed as corrupt in the Kaggle copy of GTZAN"


def write_clip(path, fmt="WAV", seconds=1.5, sr=8000):
    """A short 16-bit tone, as WAV or AU."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), sr, format=fmt, subtype="PCM_16")
    return path


def test_filtered_lists_ship_as_package_data():
    split = filtered_split()
    assert Counter(split.values()) == {"train": 443, "validation": 197, "test": 290}
    assert Counter(rel.split("/")[0] for rel in split) == FILTERED_PER_GENRE
    assert split["blues/blues.00029.wav"] == "train" and split["jazz/jazz.00054.wav"] == "train"
    assert "classical/classical.00042.wav" not in split


def test_filtered_split_on_the_original_layout(tmp_path):
    genres = tmp_path / "genres"
    write_clip(genres / "blues" / "blues.00029.au", "AU")  # train
    write_clip(genres / "blues" / "blues.00000.wav")  # validation
    write_clip(genres / "blues" / "blues.00012.au", "AU")  # test
    write_clip(genres / "classical" / "classical.00042.au", "AU")  # filtered out
    gtzan = GTZAN(tmp_path)
    assert gtzan.genres_dir == tmp_path.absolute() / "genres"
    tracks = {t.id: t for t in gtzan.tracks()}
    assert len(tracks) == 930 and list(tracks) == sorted(tracks)
    assert Counter(t.split for t in tracks.values()) == {"train": 443, "validation": 197, "test": 290}
    assert Counter(t.label for t in tracks.values()) == FILTERED_PER_GENRE
    assert "classical.00042" not in tracks
    # A listed stem takes the extension on disk; an absent one keeps the listed .wav.
    assert tracks["blues.00029"].path == genres.absolute() / "blues" / "blues.00029.au"
    assert tracks["blues.00030"].path == genres.absolute() / "blues" / "blues.00030.wav"
    assert (tracks["blues.00029"].split, tracks["blues.00000"].split, tracks["blues.00012"].split) == \
        ("train", "validation", "test")
    assert outputs(gtzan) == list(GENRES)

    report = gtzan.validate(sr=16000, min_seconds=1.0, progress=False)
    assert set(tracks) - set(report.bad) == {"blues.00029", "blues.00000", "blues.00012"}
    assert set(report.bad.values()) == {Problem("missing", "file not found"),
                                        Problem("missing", f"file not found ({CORRUPT})")}
    assert report.bad["jazz.00054"] == Problem("missing", f"file not found ({CORRUPT})")
    assert counts(report, "classification") == {"train": {"blues": 1}, "validation": {"blues": 1}, "test": {"blues": 1}}


def test_kaggle_layout_reports_the_corrupt_jazz_00054(tmp_path):
    genres = tmp_path / "Data" / "genres_original"
    (genres / "jazz").mkdir(parents=True)
    (genres / "jazz" / "jazz.00054.wav").write_bytes(b"")
    write_clip(genres / "jazz" / "jazz.00055.wav")
    gtzan = GTZAN(tmp_path)
    assert gtzan.genres_dir == genres.absolute()
    report = gtzan.validate(sr=22050, min_seconds=1.0, progress=False)
    assert report.n_tracks == 930
    assert report.bad["jazz.00054"] == Problem("empty", f"empty file (0 bytes) ({CORRUPT})")
    assert "jazz.00055" not in report.bad
    assert counts(report, "classification") == {"train": {"jazz": 1}, "validation": {}, "test": {}}


def test_root_may_be_the_genres_folder(tmp_path):
    write_clip(tmp_path / "genres" / "rock" / "rock.00099.au", "AU")
    tracks = {t.id: t for t in GTZAN(tmp_path / "genres").tracks()}
    assert tracks["rock.00099"].path == tmp_path.absolute() / "genres" / "rock" / "rock.00099.au"


def test_random_split_uses_the_files_on_disk(tmp_path):
    genres = tmp_path / "genres"
    for genre, fmt in [("blues", "WAV"), ("jazz", "WAV"), ("rock", "AU")]:
        for k in range(10):
            write_clip(genres / genre / f"{genre}.{k:05d}.{fmt.lower()}", fmt, seconds=0.1)
    write_clip(genres / "rock" / "rock.00000.wav", seconds=0.1)  # both extensions: the .wav is used
    for junk in ["blues/._blues.00001.wav", "blues/notes.txt", "jazz/jazz.00001 copy.wav", "jazz/blues.00011.wav"]:
        (genres / junk).write_bytes(b"x")

    tracks = GTZAN(tmp_path, split="random").tracks()
    assert len(tracks) == 30
    by_genre = {g: Counter(t.split for t in tracks if t.label == g) for g in ("blues", "jazz", "rock")}
    assert all(c == {"train": 8, "validation": 1, "test": 1} for c in by_genre.values())
    paths = {t.id: t.path for t in tracks}
    assert paths["rock.00000"].suffix == ".wav" and paths["rock.00001"].suffix == ".au"
    assert GTZAN(tmp_path, split="random").tracks() == tracks
    other = GTZAN(tmp_path, split="random", seed=1).tracks()
    assert [t.id for t in other] == [t.id for t in tracks]
    assert [t.split for t in other] != [t.split for t in tracks]


def test_random_split_without_audio_raises(tmp_path):
    (tmp_path / "genres" / "blues").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no GTZAN audio files"):
        GTZAN(tmp_path, split="random").tracks()


def test_missing_layout_raises_listing_the_layouts(tmp_path):
    (tmp_path / "music").mkdir()
    with pytest.raises(ConfigError) as info:
        GTZAN(tmp_path)
    message = str(info.value)
    assert str(tmp_path.absolute()) in message
    assert "genres/<genre>/" in message and "Data/genres_original/<genre>/" in message


def test_unknown_split_raises(tmp_path):
    with pytest.raises(ConfigError, match="unknown GTZAN split"):
        GTZAN(tmp_path, split="artist")
