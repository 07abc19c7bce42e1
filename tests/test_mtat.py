"""MagnaTagATune loader on a ten-clip, 60-tag copy of annotations_final.csv (quoted,
TAB-separated): the top-n cut with a tie, labels, the hex-folder split and bad clips."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from helpers import counts, outputs
from mirformer.datasets.base import Problem
from mirformer.datasets.mtat import MagnaTagATune
from mirformer.errors import ConfigError

HEAD = {"guitar": 8, "classical": 7, "slow": 6, "techno": 5, "strings": 4}
# 20 filler tags on 3 clips, 30 on 2, 5 on none: the top 50 cuts through the 2s, by column order.
FILL_COUNTS = [2, 3, 2] * 10 + [3, 2] * 10 + [0] * 5
FILL = ["no voice", "male vocal"] + [f"tag{k:02d}" for k in range(2, 55)]
TAGS = ["slow", *FILL[:10], "guitar", *FILL[10:23], "strings", *FILL[23:37], "classical", *FILL[37:], "techno"]
COUNTS = {**dict(zip(FILL, FILL_COUNTS)), **HEAD}
CLIPS = [  # in file order; row r holds tag t iff r < COUNTS[t]
    (2, "0/artist_a-album_one-01-first_song-0-29.mp3"),
    (6, "3/artist_b-album_two-02-second_song-30-59.mp3"),
    (20, "c/artist_c-album_three-01-third_song-0-29.mp3"),
    (25, "d/artist_d-album_four-05-fourth_song-88-117.mp3"),
    (35644, "c/artist_e-album_five-03-empty_song-0-29.mp3"),  # empty file
    (10, "7/artist_f-album_six-01-sixth_song-0-29.mp3"),
    (30, "e/artist_g-album_seven-04-seventh_song-30-59.mp3"),
    (41, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"),  # no file
    (15, "b/artist_h-album_eight-02-untagged_song-0-29.mp3"),  # none of the tags
    (50, ""),  # no mp3_path
]
EMPTY = "listed as empty in MagnaTagATune"


def write_annotations(path):
    """Like the real file: every field quoted, TABs between, a header of tag names."""
    lines = ["\t".join(f'"{v}"' for v in ["clip_id", *TAGS, "mp3_path"])]
    for r, (clip_id, rel) in enumerate(CLIPS):
        lines.append("\t".join(f'"{v}"' for v in [clip_id, *(int(r < COUNTS[t]) for t in TAGS), rel]))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtat")
    write_annotations(root / "annotations_final.csv")
    noise = 0.3 * np.random.default_rng(0).standard_normal(24000)
    for clip_id, rel in CLIPS:
        if clip_id in (41, 50):
            continue
        (root / rel).parent.mkdir(exist_ok=True)
        if clip_id == 35644:
            (root / rel).write_bytes(b"")
        else:
            sf.write(root / rel, noise, 16000, format="MP3")
    return root


def test_annotations_fixture_is_quoted_and_tab_separated(root):
    header, first = (root / "annotations_final.csv").read_text().splitlines()[:2]
    assert header.startswith('"clip_id"\t"slow"\t"no voice"\t"male vocal"\t') and header.endswith('\t"mp3_path"')
    assert first.startswith('"2"\t"1"\t') and len(header.split("\t")) == 62


def test_classes_are_the_most_frequent_tags_ties_in_column_order(root):
    classes = outputs(MagnaTagATune(root))
    threes = [t for t in TAGS if COUNTS[t] == 3]
    twos = [t for t in TAGS if COUNTS[t] == 2]
    assert len(classes) == 50
    assert classes == ["guitar", "classical", "slow", "techno", "strings", *threes, *twos[:25]]
    assert classes[5] == "male vocal" and "no voice" in classes and twos[25] not in classes
    assert outputs(MagnaTagATune(root, n_tags=3)) == ["guitar", "classical", "slow"]


def test_labels_split_by_hex_folder_and_paths(root, caplog):
    with caplog.at_level(logging.WARNING, logger="mirformer.datasets.mtat"):
        mtat = MagnaTagATune(root)
        tracks = {t.id: t for t in mtat.tracks()}
    assert "left out 1 clips" in caplog.text and "50" in caplog.text
    assert mtat.task == "tagging"
    assert list(tracks) == ["10", "15", "2", "20", "25", "30", "35644", "41", "6"]
    assert {i: t.split for i, t in tracks.items()} == {
        "2": "train", "6": "train", "10": "train", "15": "train", "20": "validation", "35644": "validation",
        "25": "test", "30": "test", "41": "test"}
    classes = outputs(mtat)
    assert tracks["2"].labels == tracks["6"].labels == tuple(classes)
    assert tracks["20"].labels == tuple(classes[:25])
    assert tracks["25"].labels == ("guitar", "classical", "slow", "techno", "strings")
    assert tracks["30"].labels == ("guitar", "classical")
    assert tracks["15"].labels == ()
    assert tracks["41"].path == root.absolute() / CLIPS[7][1]
    assert tracks["41"].meta == {"mp3_path": CLIPS[7][1]}


def test_n_tags_keeps_only_the_top_tags(root):
    labels = {t.id: t.labels for t in MagnaTagATune(root, n_tags=3).tracks()}
    assert labels == {"2": ("guitar", "classical", "slow"), "6": ("guitar", "classical", "slow"),
                      "20": ("guitar", "classical", "slow"), "25": ("guitar", "classical", "slow"),
                      "35644": ("guitar", "classical", "slow"), "10": ("guitar", "classical", "slow"),
                      "30": ("guitar", "classical"), "41": ("guitar",), "15": ()}


def test_validate_reports_empty_and_missing_clips(root):
    report = MagnaTagATune(root, n_tags=3).validate(sr=16000, min_seconds=1.0, progress=False)
    assert report.n_tracks == 9
    assert report.bad == {"35644": Problem("empty", f"empty file (0 bytes) ({EMPTY})"),
                          "41": Problem("missing", "file not found")}
    assert counts(report, "tagging") == {"train": {"classical": 3, "guitar": 3, "slow": 3},
                             "validation": {"classical": 1, "guitar": 1, "slow": 1},
                             "test": {"classical": 2, "guitar": 2, "slow": 1}}


def test_audio_dir_and_annotations_options(root, tmp_path):
    mtat = MagnaTagATune(tmp_path, audio_dir=root / "audio", annotations=root / "annotations_final.csv")
    assert {t.id: t.path for t in mtat.tracks()}["2"] == root / "audio" / CLIPS[0][1]
    assert set(MagnaTagATune.known_bad) == {"35644", "55753", "57881"}


def test_missing_or_malformed_annotations_raise_config_error_naming_the_file(root, tmp_path):
    path = tmp_path.absolute() / "annotations_final.csv"
    with pytest.raises(ConfigError) as info:
        MagnaTagATune(tmp_path).tracks()
    assert str(path) in str(info.value) and "not found" in str(info.value)
    path.write_text("clip_id,guitar,mp3_path\n2,1,0/a.mp3\n")  # commas, not TABs
    with pytest.raises(ConfigError) as info:
        outputs(MagnaTagATune(tmp_path))
    assert str(path) in str(info.value) and "TAB-separated" in str(info.value)
    path.write_text("clip_id\tguitar\tmp3_path\n2\tyes\t0/a.mp3\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        MagnaTagATune(tmp_path).tracks()


@pytest.mark.parametrize("n_tags", [0, 2.5, 61])
def test_bad_n_tags_raises(root, n_tags):
    with pytest.raises(ConfigError, match="n_tags"):
        MagnaTagATune(root, n_tags=n_tags).tracks()
