"""Which scores of the music21 corpus belong to each style class of ``music21-styles``.

A source is a corpus path, plus ``#<X: number>`` for one tune of a multi-tune ABC file.
"""

from __future__ import annotations

import re
from pathlib import Path

from music21.common import getCorpusFilePath

CORPUS = Path(getCorpusFilePath())


def _files(*patterns: str) -> list[str]:
    """Corpus paths (relative, POSIX) matching ``patterns``; a work stored twice (``.xml`` and
    ``.mxl``) is taken once, from the first pattern that matches it."""
    by_stem: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(CORPUS.glob(pattern)):
            rel = path.relative_to(CORPUS).as_posix()
            by_stem.setdefault(rel.rsplit(".", 1)[0], rel)
    return sorted(by_stem.values())


def _abc_tunes(rel: str) -> list[tuple[int, str]]:
    """``(X: reference number, O: origin)`` of each tune in a multi-tune ABC file."""
    tunes: list[tuple[int, str]] = []
    for line in (CORPUS / rel).read_text(encoding="latin-1").splitlines():
        if m := re.match(r"X:\s*(\d+)", line):
            tunes.append((int(m.group(1)), ""))
        elif line.startswith("O:") and tunes:
            tunes[-1] = (tunes[-1][0], line[2:].strip())
    return tunes


def _fiddle_tunes() -> list[str]:
    sources, seen = _files("ryansMammoth/*.abc"), set()
    for rel in _files("oneills1850/*.abc"):
        # X: is O'Neill's tune number; some files overlap (0626-0635 lies in 0626-0700, and
        # 0732-0758 and 1116-1135 come in two editions), so each number is taken once.
        for number, _ in _abc_tunes(rel):
            if number not in seen:
                seen.add(number)
                sources.append(f"{rel}#{number}")
    return sources


def _essen(*, china: bool) -> list[str]:
    # han1/han2 hold the Chinese songs; test*.abc are music21's test copies of other songs.
    files = [f for f in _files("essenFolksong/*.abc") if not f.startswith("essenFolksong/test")
             and f.startswith("essenFolksong/han") == china]
    return [f"{rel}#{number}" for rel in files for number, origin in _abc_tunes(rel)
            # The European collections hold a few songs from the Americas and Asia.
            if china or not re.search(r"amerika|asien", origin, re.IGNORECASE)]


# Label -> its candidate sources: a corpus path, plus "#<X: number>" for one tune of an ABC file.
# Josquin is left out: its ABC files are GPL-licensed, one voice per tune.
CLASSES = {
    "renaissance_polyphony": lambda: _files("palestrina/*.krn", "lusitano/*.mxl"),
    "bach_chorale": lambda: _files("bach/bwv*.mxl", "bach/bwv*.xml", "bach/bwv*.krn"),
    "monteverdi_madrigal": lambda: _files("monteverdi/*.mxl"),
    "trecento": lambda: _files("trecento/*.xml", "trecento/*.mxl", "ciconia/*.xml", "luca/*.xml"),
    # Movement files only: the corpus's whole-quartet files take 5-8 s each to parse.
    "classical_instrumental": lambda: _files("haydn/*/*.mxl", "mozart/*/*.mxl", "beethoven/*/*.mxl"),
    "fiddle_tunes": _fiddle_tunes,
    "folk_europe": lambda: _essen(china=False),
    "folk_china": lambda: _essen(china=True),
}
