"""MTG-Jamendo loader on a tiny clone of the repository layout: CRLF TSVs with a variable number
of tag fields, two split numbers, two subsets, low-quality file names, bad files and options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import counts, outputs
from mirformer.datasets.base import DATASETS, Problem
from mirformer.datasets.jamendo import MTGJamendo
from mirformer.errors import ConfigError

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
ROWS = {  # track id -> the rest of its line in the top50tags files
    "track_0000241": "artist_000005\talbum_000033\t41/241.mp3\t340.1\tgenre---rock\tinstrument---piano",
    "track_0000214": "artist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock",
    "track_0000382": ("artist_000020\talbum_000046\t82/382.mp3\t229.0\tgenre---pop\tmood/theme---happy\t"
                      "instrument---voice\tinstrument---guitar"),
    "track_0000948": "artist_000087\talbum_000146\t48/948.mp3\t158.9\tgenre---electronic",
}
SPLIT_0 = {"train": ["track_0000241", "track_0000214"], "validation": ["track_0000382"], "test": ["track_0000948"]}
SPLIT_3 = {"train": ["track_0000382", "track_0000948"], "validation": ["track_0000214"], "test": ["track_0000241"]}
GENRE_ROWS = {  # the genre subset of split 0: genre tags only, one track fewer
    "train": ["track_0000241\tartist_000005\talbum_000033\t41/241.mp3\t340.1\tgenre---rock\tgenre---blues"],
    "validation": ["track_0000382\tartist_000020\talbum_000046\t82/382.mp3\t229.0\tgenre---pop"],
    "test": ["track_0000948\tartist_000087\talbum_000146\t48/948.mp3\t158.9\tgenre---electronic"],
}
AUDIO = ("41/241.mp3", "14/214.mp3", "82/382.mp3")  # 948 is not downloaded


def write_tsv(path: Path, lines: list[str]) -> None:
    """A split file as the repository has it: binary, CRLF line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line.encode() + b"\r\n" for line in [HEADER, *lines]))


def write_splits(splits_dir: Path) -> None:
    for number, assignment in ((0, SPLIT_0), (3, SPLIT_3)):
        for split, ids in assignment.items():
            write_tsv(splits_dir / f"split-{number}" / f"autotagging_top50tags-{split}.tsv",
                      [f"{i}\t{ROWS[i]}" for i in ids])
    for split, lines in GENRE_ROWS.items():
        write_tsv(splits_dir / "split-0" / f"autotagging_genre-{split}.tsv", lines)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    import soundfile as sf

    root = tmp_path_factory.mktemp("jamendo")
    write_splits(root / "data" / "splits")
    t = np.arange(16000) / 16000
    for rel in AUDIO:
        (root / "audio" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / rel, 0.4 * np.sin(2 * np.pi * 330 * t), 16000, format="MP3")
    return root


def test_registered_as_tagging():
    assert DATASETS["jamendo"] is MTGJamendo
    assert MTGJamendo.task == "tagging"


def test_top50tags_split_0(root):
    ds = MTGJamendo(root)
    tracks = ds.tracks()
    assert [t.id for t in tracks] == ["track_0000214", "track_0000241", "track_0000382", "track_0000948"]
    assert {t.id: t.split for t in tracks} == {
        "track_0000214": "train", "track_0000241": "train", "track_0000382": "validation", "track_0000948": "test"}
    assert {t.id: t.labels for t in tracks} == {
        "track_0000214": ("genre---punkrock",),
        "track_0000241": ("genre---rock", "instrument---piano"),  # no "\r" left on the last tag
        "track_0000382": ("genre---pop", "mood/theme---happy", "instrument---voice", "instrument---guitar"),
        "track_0000948": ("genre---electronic",),
    }
    first = tracks[1]
    assert first.path == root.absolute() / "audio" / "41" / "241.mp3"
    assert first.meta == {"artist_id": "artist_000005", "album_id": "album_000033", "duration": 340.1}
    assert first.label is None and first.targets is None
    assert outputs(ds) == ["genre---electronic", "genre---pop", "genre---punkrock", "genre---rock",
                            "instrument---guitar", "instrument---piano", "instrument---voice", "mood/theme---happy"]


def test_other_split_number_and_subset(root):
    assert {t.id: t.split for t in MTGJamendo(root, split=3).tracks()} == {
        "track_0000214": "validation", "track_0000241": "test", "track_0000382": "train", "track_0000948": "train"}
    genre = MTGJamendo(root, subset="genre")
    assert {t.id: (t.split, t.labels) for t in genre.tracks()} == {
        "track_0000241": ("train", ("genre---rock", "genre---blues")),
        "track_0000382": ("validation", ("genre---pop",)),
        "track_0000948": ("test", ("genre---electronic",)),
    }
    assert outputs(genre) == ["genre---blues", "genre---electronic", "genre---pop", "genre---rock"]


def test_low_quality_and_custom_folders(root, tmp_path):
    low = {t.id: t.path for t in MTGJamendo(root, low_quality=True).tracks()}
    assert low["track_0000241"] == root.absolute() / "audio" / "41" / "241.low.mp3"
    write_splits(tmp_path / "lists")
    ds = MTGJamendo(tmp_path / "clone", splits_dir=tmp_path / "lists", audio_dir=tmp_path / "mp3", split=3)
    assert {t.id: t.path for t in ds.tracks()}["track_0000948"] == tmp_path / "mp3" / "48" / "948.mp3"


def test_validate_reports_the_missing_track(root):
    report = MTGJamendo(root).validate(sr=16000, progress=False)
    assert report.bad == {"track_0000948": Problem("missing", "file not found")}
    assert counts(report, "tagging") == {
        "train": {"genre---punkrock": 1, "genre---rock": 1, "instrument---piano": 1},
        "validation": {"genre---pop": 1, "instrument---guitar": 1, "instrument---voice": 1, "mood/theme---happy": 1},
        "test": {},
    }


def test_unknown_subset_and_absent_split(root):
    with pytest.raises(ConfigError, match="unknown MTG-Jamendo subset 'mood'.*moodtheme"):
        MTGJamendo(root, subset="mood")
    with pytest.raises(ConfigError, match=r"split-7 not found; split numbers found in .*: \[0, 3\]"):
        MTGJamendo(root, split=7).tracks()


def test_missing_split_file_is_named(root):
    with pytest.raises(ConfigError) as err:
        MTGJamendo(root, subset="instrument").tracks()
    assert str(root / "data" / "splits" / "split-0" / "autotagging_instrument-train.tsv") in str(err.value)


@pytest.mark.parametrize("lines, where", [
    ([f"track_0000214\t{ROWS['track_0000214']}", "track_0000999\tartist_000001\talbum_000001\t99/999.mp3\t12.0"],
     "line 3: 5 tab-separated field(s)"),
    ([f"track_0000214\t{ROWS['track_0000214']}".replace("124.6", "long")], "line 2: DURATION must be a number"),
])
def test_malformed_line_names_file_and_line(tmp_path, lines, where):
    write_splits(tmp_path)
    bad = tmp_path / "split-0" / "autotagging_top50tags-train.tsv"
    write_tsv(bad, lines)
    with pytest.raises(ConfigError) as err:
        MTGJamendo(tmp_path, splits_dir=tmp_path).tracks()
    assert f"{bad}, {where}" in str(err.value)


def test_wrong_header_is_refused(tmp_path):
    write_splits(tmp_path)
    bad = tmp_path / "split-0" / "autotagging_top50tags-test.tsv"
    bad.write_bytes(b"track_id,path,tags\r\n")
    with pytest.raises(ConfigError, match="line 1: expected the header TRACK_ID ARTIST_ID"):
        MTGJamendo(tmp_path, splits_dir=tmp_path).tracks()
