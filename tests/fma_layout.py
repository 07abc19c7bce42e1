"""FMA in its real on-disk layout, ten tracks: a genuine three-header-line tracks.csv written by
pandas, genres.csv, nested subsets, genre tags, and empty, truncated, short and missing MP3s."""

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

COLUMNS = {
    "album": ["comments", "date_created", "date_released", "engineer", "favorites", "id", "information",
              "listens", "producer", "tags", "title", "tracks", "type"],
    "artist": ["active_year_begin", "active_year_end", "associated_labels", "bio", "comments", "date_created",
               "favorites", "id", "latitude", "location", "longitude", "members", "name", "related_projects",
               "tags", "website", "wikipedia_page"],
    "set": ["split", "subset"],
    "track": ["bit_rate", "comments", "composer", "date_created", "date_recorded", "duration", "favorites",
              "genre_top", "genres", "genres_all", "information", "interest", "language_code", "license",
              "listens", "lyricist", "number", "publisher", "tags", "title"],
}
TOP_GENRES = {38: "Experimental", 15: "Electronic", 12: "Rock", 1235: "Instrumental", 10: "Pop", 17: "Folk",
              21: "Hip-Hop", 2: "International", 4: "Jazz", 5: "Classical", 9: "Country", 20: "Spoken",
              3: "Blues", 14: "Soul-RnB", 8: "Old-Time / Historic", 13: "Easy Listening"}
ROWS = [  # track id, subset, split, genre_top, genres, genres_all
    (2, "small", "training", "Hip-Hop", [21], [21]),
    (5, "small", "validation", "Hip-Hop", [21], [21]),
    (10, "small", "test", "Pop", [10], [10]),
    (140, "small", "training", "Folk", [17], [17]),  # no audio file
    (1486, "medium", "training", "Rock", [25], [12, 25]),  # badly trimmed: a 0.5 s file
    (3573, "medium", "test", "Folk", [17], [17]),
    (99134, "medium", "test", "Electronic", [15], [15]),  # truncated file
    (133297, "medium", "validation", "Rock", [12], [12]),  # empty file
    (200, "large", "training", None, [38, 1235], [38, 1235]),  # no single top genre
    (300, "large", "test", "Rock", [12], [12]),
]
NO_AUDIO = "listed as holding no audio in FMA"
TRIMMED = "listed as badly trimmed in mdeff/fma#8"


def write_tracks_csv(path):
    cells = []
    for number, subset, split, top, genres, genres_all in ROWS:
        row = {col: np.nan for col in [(g, c) for g, cs in COLUMNS.items() for c in cs]}
        row.update({("album", "id"): number * 10, ("album", "tags"): "[]", ("artist", "name"): f"Artist {number}",
                    ("artist", "tags"): "['noise', 'lo-fi']", ("set", "split"): split, ("set", "subset"): subset,
                    ("track", "date_created"): "2008-11-26 01:44:45", ("track", "duration"): 30 + number % 7,
                    ("track", "genre_top"): top, ("track", "genres"): str(genres),
                    ("track", "genres_all"): str(genres_all), ("track", "tags"): "[]",
                    ("track", "title"): f"Song, number {number}"})
        cells.append(row)
    df = pd.DataFrame(cells, index=pd.Index([r[0] for r in ROWS], name="track_id"))
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    df.to_csv(path)


def write_genres_csv(path):
    rows = [(gid, 100, 0, title, gid) for gid, title in TOP_GENRES.items()] + [(25, 50, 12, "Punk", 12)]
    pd.DataFrame(rows, columns=["genre_id", "#tracks", "parent", "title", "top_level"]).to_csv(path, index=False)


def build_fma(root: Path) -> Path:
    """A ten-track FMA in its real layout under ``root``: metadata and fma_medium MP3s, bad ones included."""
    (root / "fma_metadata").mkdir()
    write_tracks_csv(root / "fma_metadata" / "tracks.csv")
    write_genres_csv(root / "fma_metadata" / "genres.csv")
    noise = 0.3 * np.random.default_rng(0).standard_normal(32000)
    audio = root / "fma_medium"
    for tid, seconds in [("000002", 2), ("000005", 2), ("000010", 2), ("003573", 2), ("001486", 0.5)]:
        (audio / tid[:3]).mkdir(parents=True, exist_ok=True)
        sf.write(audio / tid[:3] / f"{tid}.mp3", noise[:int(seconds * 16000)], 16000, format="MP3")
    (audio / "099").mkdir()
    (audio / "099" / "099134.mp3").write_bytes((audio / "000" / "000002.mp3").read_bytes()[:300])
    (audio / "133").mkdir()
    (audio / "133" / "133297.mp3").write_bytes(b"")
    return root
