"""Emo Music loader on a tiny copy of the real layout: padded CSVs, JukeMIR's artist-hash split,
z-scoring on the development songs, missing audio reported by validate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from helpers import counts, outputs
from mirformer.datasets.base import DATASETS, Problem
from mirformer.datasets.emomusic import EmoMusic, artist_split
from mirformer.errors import ConfigError

# song_id, Artist as written in songs_info (padding and all), set, mean/std arousal, mean/std valence
SONGS = [
    (2, "Beyoncé", "development", 3.1, 0.8, 4.2, 1.1),
    (3, "Beyoncé", "development", 5.0, 1.2, 6.1, 0.9),
    (5, "AC/DC", "development", 7.4, 0.6, 5.5, 1.4),
    (7, "  The   Beatles ", "development", 4.4, 1.0, 6.8, 0.7),
    (10, "The Beatles", "development", 5.9, 0.9, 7.2, 1.0),
    (12, "Kevin MacLeod", "development", 2.5, 1.3, 3.3, 1.2),
    (13, "Kevin MacLeod", "development", 3.8, 0.7, 4.9, 0.8),
    (20, "Podington Bear", "development", 6.2, 1.1, 5.0, 1.3),
    (31, "Dee Yan-Key", "development", 4.9, 0.5, 2.8, 0.6),
    (998, "AC/DC", "evaluation", 6.6, 1.0, 4.4, 1.1),
    (999, "Kevin MacLeod", "evaluation", 2.2, 0.9, 3.9, 1.0),
    (1000, "Kai Engel", "evaluation", 5.3, 1.2, 6.4, 0.9),
]
UNANNOTATED = 44  # in songs_info only, as most of the 1000 songs are
MISSING_AUDIO = 13

# Worked out once by hand from the rule (normalized name, SHA-1 mod 10, 8 x train + 2 x validation):
# "kevin macleod" -> 9, "podington bear" -> 8, "dee yankey" -> 1, "acdc" -> 0, "beyonc" -> 7.
EXPECTED_SPLITS = {"2": "train", "3": "train", "5": "train", "7": "train", "10": "train", "12": "validation",
                   "13": "validation", "20": "validation", "31": "train", "998": "test", "999": "test",
                   "1000": "test"}


def jukemir_split(artist: str) -> str:
    """The rule written out independently of the loader."""
    kept = [c for c in artist.lower() if ord(c) < 128 and (c.isalpha() or c.isspace())]
    name = " ".join("".join(kept).split())
    digest = int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16)
    return "validation" if digest % 10 >= 8 else "train"


def write_annotations(folder: Path, songs=SONGS) -> None:
    """Both CSVs as the real ones look: padded headers and values, tabs in songs_info."""
    folder.mkdir(parents=True, exist_ok=True)
    static = ["song_id, mean_arousal, std_arousal, mean_valence, std_valence "]
    static += [f"  {s},   {a} ,  {sa} , {v}  ,{sv}  " for s, _, _, a, sa, v, sv in songs]
    (folder / "static_annotations.csv").write_text("\n".join(static) + "\n", encoding="utf-8")
    info = ["song_id,file_name,Artist,Song title,start of the segment (min.sec),"
            "end of the segment (min.sec),Genre,Mediaeval 2013 set"]
    rows = [(s, artist, subset) for s, artist, subset, *_ in songs] + [(UNANNOTATED, "Nobody", "development")]
    info += [f"{s},{s}.mp3,{artist}\t\t  ,Song {s}\t   ,  0.30 ,  1.15 ,Rock\t ,  {subset}   "
             for s, artist, subset in rows]
    (folder / "songs_info.csv").write_text("\n".join(info) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    import soundfile as sf

    root = tmp_path_factory.mktemp("emomusic")
    write_annotations(root / "annotations")
    (root / "clips_45seconds").mkdir()
    t = np.arange(16000) / 16000
    for song, *_ in SONGS:
        if song != MISSING_AUDIO:
            sf.write(root / "clips_45seconds" / f"{song}.mp3", 0.4 * np.sin(2 * np.pi * 440 * t), 16000, format="MP3")
    return root


def test_registered_as_regression():
    assert DATASETS["emomusic"] is EmoMusic
    assert EmoMusic.task == "regression"


@pytest.mark.parametrize("artist", ["Beyoncé", "AC/DC", "  The   Beatles ", "Dee Yan-Key", "Kevin MacLeod",
                                    "Podington Bear", "Sigur Rós", "Guns N' Roses", "\tMötley  Crüe\t"])
def test_artist_split_follows_the_jukemir_rule(artist):
    assert artist_split(artist) == jukemir_split(artist)


def test_artist_split_known_values():
    assert artist_split("Kevin MacLeod") == "validation"
    assert artist_split("Podington Bear") == "validation"
    assert artist_split("Dee Yan-Key") == "train"
    # Non-ASCII letters, punctuation and extra whitespace are dropped before hashing.
    assert artist_split("Beyoncé") == artist_split("beyonc") == "train"
    assert artist_split("AC/DC") == artist_split("acdc")
    assert artist_split("  The   Beatles ") == artist_split("the beatles")


def test_tracks_ids_paths_splits_and_meta(root):
    ds = EmoMusic(root)
    tracks = ds.tracks()
    assert [t.id for t in tracks] == sorted(EXPECTED_SPLITS)  # sorted as strings; 44 is not annotated
    assert {t.id: t.split for t in tracks} == EXPECTED_SPLITS
    artists = {str(s): artist for s, artist, *_ in SONGS}
    for t in tracks:
        if t.split != "test":
            assert t.split == jukemir_split(artists[t.id])
        assert t.path == root.absolute() / "clips_45seconds" / f"{t.id}.mp3"
        assert t.label is None and t.labels is None
    by_id = {t.id: t for t in tracks}
    assert by_id["7"].meta["artist"] == "The   Beatles"  # stripped, inner spaces kept
    assert {k: by_id["2"].meta[k] for k in ("artist", "title", "genre", "std_arousal", "std_valence")} == {
        "artist": "Beyoncé", "title": "Song 2", "genre": "Rock", "std_arousal": 0.8, "std_valence": 1.1}
    assert outputs(ds) == ["arousal", "valence"]


def test_targets_zscored_on_development_songs(root):
    ds = EmoMusic(root)
    tracks = ds.tracks()
    raw = {str(s): (a, v) for s, _, _, a, _, v, _ in SONGS}
    dev = np.array([raw[str(s)] for s, _, subset, *_ in SONGS if subset == "development"])
    mean, std = dev.mean(axis=0), dev.std(axis=0, ddof=0)
    for t in tracks:
        assert t.meta["raw_targets"] == raw[t.id]
        np.testing.assert_allclose(t.targets, (np.array(raw[t.id]) - mean) / std, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.target_stats["mean"], mean, atol=1e-12)
    np.testing.assert_allclose(ds.target_stats["std"], std, atol=1e-12)
    fit = np.array([t.targets for t in tracks if t.split in ("train", "validation")])
    np.testing.assert_allclose(fit.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(fit.std(axis=0), 1, atol=1e-12)
    # Hand-checked: the development arousals average 43.2 / 9 = 4.8.
    assert ds.target_stats["mean"][0] == pytest.approx(4.8)


def test_validate_reports_the_missing_clip(root):
    report = EmoMusic(root).validate(sr=16000, progress=False)
    assert report.bad == {str(MISSING_AUDIO): Problem("missing", "file not found")}
    assert counts(report, "regression") == {"train": {"clips": 6}, "validation": {"clips": 2}, "test": {"clips": 3}}


def test_annotations_at_root_and_custom_folders(tmp_path):
    write_annotations(tmp_path / "copy")
    at_root = EmoMusic(tmp_path / "copy").tracks()
    assert {t.id: t.split for t in at_root} == EXPECTED_SPLITS
    write_annotations(tmp_path / "meta")
    custom = EmoMusic(tmp_path / "x", annotations_dir=tmp_path / "meta", audio_dir=tmp_path / "mp3").tracks()
    assert [t.targets for t in custom] == [t.targets for t in at_root]
    assert custom[0].path == (tmp_path / "mp3" / f"{custom[0].id}.mp3").absolute()


def test_missing_annotations_name_the_paths_looked_at(tmp_path):
    with pytest.raises(ConfigError) as err:
        EmoMusic(tmp_path).tracks()
    assert str(tmp_path / "annotations" / "static_annotations.csv") in str(err.value)
    assert str(tmp_path / "static_annotations.csv") in str(err.value)


def test_song_missing_from_songs_info(tmp_path):
    write_annotations(tmp_path)
    info = tmp_path / "songs_info.csv"
    info.write_text("\n".join(line for line in info.read_text().splitlines() if not line.startswith("5,")) + "\n")
    with pytest.raises(ConfigError, match="song_id 5") as err:
        EmoMusic(tmp_path).tracks()
    assert str(info) in str(err.value)


@pytest.mark.parametrize("edit, where", [
    (lambda s: s.replace("   7.4 ", " high "), "static_annotations.csv, line 4: mean_arousal"),
    (lambda s: s.replace("  development   ", " training", 1), "songs_info.csv, line 2: Mediaeval 2013 set"),
    (lambda s: s.replace("mean_valence", "valence"),
     "static_annotations.csv, line 1: missing column(s) ['mean_valence']"),
])
def test_malformed_annotations_name_file_and_line(tmp_path, edit, where):
    write_annotations(tmp_path)
    name = where.split(",")[0]
    (tmp_path / name).write_text(edit((tmp_path / name).read_text()))
    with pytest.raises(ConfigError) as err:
        EmoMusic(tmp_path).tracks()
    assert f"{tmp_path / where}" in str(err.value)
