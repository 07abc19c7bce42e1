"""FMA loader on a ten-track copy of the real layout: a genuine three-header-line tracks.csv
written by pandas, nested subsets, genre tags, and empty, truncated, short and missing MP3s."""

from __future__ import annotations

import pandas as pd
import pytest

from fma_layout import NO_AUDIO, TRIMMED
from helpers import counts, outputs
from mirformer.datasets.base import Problem
from mirformer.datasets.fma import FMA
from mirformer.errors import ConfigError

def test_tracks_csv_has_three_header_lines(fma_root):
    lines = (fma_root / "fma_metadata" / "tracks.csv").read_text().splitlines()
    assert lines[0].startswith(",album,album,") and ",album,artist," in lines[0] and ",set,set,track," in lines[0]
    assert lines[1].startswith(",comments,date_created,date_released,engineer,")
    assert lines[2] == "track_id" + "," * 52
    assert lines[3].startswith("2,")


def test_subsets_nest(fma_root):
    ids = {subset: [t.id for t in FMA(fma_root, subset=subset).tracks()] for subset in ("small", "medium", "large", "full")}
    assert ids["small"] == ["000002", "000005", "000010", "000140"]
    assert ids["medium"] == ["000002", "000005", "000010", "000140", "001486", "003573", "099134", "133297"]
    # large adds 000300; 000200 has no top genre, so genre_top leaves it out.
    assert ids["large"] == ids["full"] == sorted(ids["medium"] + ["000300"])


def test_splits_labels_paths_and_meta(fma_root):
    fma = FMA(fma_root)
    assert fma.task == "classification"
    tracks = {t.id: t for t in fma.tracks()}
    assert {tid: (t.split, t.label) for tid, t in tracks.items()} == {
        "000002": ("train", "Hip-Hop"), "000005": ("validation", "Hip-Hop"), "000010": ("test", "Pop"),
        "000140": ("train", "Folk"), "001486": ("train", "Rock"), "003573": ("test", "Folk"),
        "099134": ("test", "Electronic"), "133297": ("validation", "Rock")}
    assert tracks["001486"].path == fma_root.absolute() / "fma_medium" / "001" / "001486.mp3"
    assert tracks["001486"].path.is_absolute()
    assert tracks["001486"].meta == {"artist": "Artist 1486", "album_id": 14860, "duration": 30.0 + 1486 % 7,
                                     "genres": (25,), "genres_all": (12, 25)}
    assert outputs(fma) == ["Electronic", "Folk", "Hip-Hop", "Pop", "Rock"]
    assert [t.path for t in FMA(fma_root, subset="full").tracks()][0] == fma_root.absolute() / "fma_full" / "000" / "000002.mp3"


def test_genres_all_tags_are_genre_titles(fma_root):
    fma = FMA(fma_root, subset="large", labels="genres_all")
    assert fma.task == "tagging"
    labels = {t.id: t.labels for t in fma.tracks()}
    assert len(labels) == 10  # the track without a top genre is kept
    assert labels["000200"] == ("Experimental", "Instrumental")
    assert labels["001486"] == ("Punk", "Rock")
    assert labels["000002"] == ("Hip-Hop",)
    assert outputs(fma) == ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "Pop", "Punk", "Rock"]


def test_validate_reports_bad_files_without_raising(fma_root):
    report = FMA(fma_root).validate(sr=16000, min_seconds=1.0, progress=False)
    assert report.n_tracks == 8
    assert set(report.bad) == {"000140", "001486", "099134", "133297"}
    assert report.bad["000140"] == Problem("missing", "file not found")
    assert report.bad["133297"] == Problem("empty", f"empty file (0 bytes) ({NO_AUDIO})")
    undecodable, brief = report.bad["099134"], report.bad["001486"]
    assert undecodable.kind == "undecodable" and brief.kind == "too short"
    assert undecodable.text.startswith("MPEG audio frames found but not decodable")
    assert undecodable.text.endswith(f"({NO_AUDIO})")
    assert str(brief).startswith("too short") and str(brief).endswith(f"({TRIMMED})")
    assert counts(report, "classification") == {"train": {"Hip-Hop": 1}, "validation": {"Hip-Hop": 1}, "test": {"Folk": 1, "Pop": 1}}
    # Good files far shorter than FMA's 30 s clips are flagged; so is a known-trimmed id that passes.
    short = "2.0 s, far shorter than fma's 30 s clips"
    assert report.flagged == {"000002": short, "000005": short, "000010": short, "003573": short}
    kept = FMA(fma_root).validate(sr=16000, min_seconds=0.25, progress=False)
    assert "001486" not in kept.bad and kept.flagged["001486"] == f"0.5 s, far shorter than fma's 30 s clips; {TRIMMED}"
    assert FMA(fma_root, subset="full").flag("000002", 2.0) is None  # fma_full holds whole tracks


def test_known_bad_uses_padded_ids():
    assert len(FMA.known_bad) == 21
    assert FMA.known_bad["001486"] == TRIMMED
    assert FMA.known_bad["099134"] == FMA.known_bad["108925"] == FMA.known_bad["133297"] == NO_AUDIO


def test_audio_and_metadata_dirs(fma_root, tmp_path):
    fma = FMA(tmp_path, subset="small", audio_dir=fma_root / "fma_medium", metadata_dir=fma_root / "fma_metadata")
    assert [t.path for t in fma.tracks()][:2] == [fma_root / "fma_medium" / "000" / "000002.mp3",
                                                  fma_root / "fma_medium" / "000" / "000005.mp3"]


def test_missing_or_malformed_metadata_raises_config_error_naming_the_file(fma_root, tmp_path):
    path = tmp_path.absolute() / "fma_metadata" / "tracks.csv"
    with pytest.raises(ConfigError, match="tracks.csv") as info:
        FMA(tmp_path).tracks()
    assert str(path) in str(info.value)
    path.parent.mkdir()
    pd.DataFrame({"track_id": [2], "genre_top": ["Rock"]}).to_csv(path, index=False)  # one header line
    with pytest.raises(ConfigError, match="lacks columns") as info:
        FMA(tmp_path).tracks()
    assert str(path) in str(info.value)
    (tmp_path / "fma_metadata" / "tracks.csv").write_bytes((fma_root / "fma_metadata" / "tracks.csv").read_bytes())
    FMA(tmp_path).tracks()  # genre_top does not need genres.csv
    with pytest.raises(ConfigError) as info:
        FMA(tmp_path, labels="genres_all").tracks()
    assert str(path.parent / "genres.csv") in str(info.value)


@pytest.mark.parametrize("options", [{"subset": "tiny"}, {"labels": "genre"}])
def test_unknown_option_raises_config_error(fma_root, options):
    with pytest.raises(ConfigError, match="unknown FMA"):
        FMA(fma_root, **options)
