"""A CSV manifest of the user's own audio: classification, tagging or regression by its columns.

``root`` is the CSV file itself (UTF-8, comma-separated, a header row), e.g.::

    path,label,split                 path,labels                   path,valence,arousal,split
    clips/a.wav,rock,train           clips/a.wav,rock;guitar       clips/a.wav,0.3,5.1,train
    /data/b.flac,jazz,test           clips/b.wav,"['jazz', 'sax']" clips/b.wav,-1.2,2.0,val

- ``path`` (required): the audio file, relative to the CSV's folder or absolute;
- ``label``: one class per row -> classification;
- ``labels``: tags separated by ``;`` (or a Python list such as ``['a', 'b']``), possibly
  empty -> tagging;
- with neither, numeric columns -> regression: those named by ``targets``, by default every
  column other than path / id / split that holds only numbers; targets are z-scored with the
  train split's mean and population std;
- ``id`` (optional): the track id; default the path as written;
- ``split`` (optional): train, validation (or valid, val, dev) or test, any case. Without it,
  tracks are split at random by ``random_split`` (seeded, ``fractions``, stratified by class for
  classification).

Other columns are kept in ``Track.meta`` as strings. Errors name the CSV and the row as a
spreadsheet numbers it (the header is row 1).
"""

from __future__ import annotations

import ast
import csv
import math
from pathlib import Path

from mirformer.datasets.base import Dataset, Track, random_split, register_dataset, zscore
from mirformer.errors import ConfigError

RESERVED = ("path", "id", "split", "label", "labels")
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}


def _read(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(row number, {column: cell})`` of the non-blank rows, cells stripped."""
    if not path.is_file():
        raise ConfigError(f"CSV manifest {path} not found; expected a CSV file with a 'path' column")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"CSV manifest {path} is not UTF-8 text ({exc}); save it as UTF-8 CSV") from None
    header = [name.strip() for name in records[0]] if records else []
    if "path" not in header:
        raise ConfigError(f"{path}, row 1: no 'path' column; expected a header naming 'path' and the targets, "
                          f"found {header}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ConfigError(f"{path}, row 1: column(s) {repeated} appear more than once")
    rows = []
    for number, record in enumerate(records[1:], start=2):  # a spreadsheet's row numbers
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise ConfigError(f"{path}, row {number}: {len(record)} cells, expected {len(header)} as in the header")
        rows.append((number, {name: cell.strip() for name, cell in zip(header, record)}))
    if not rows:
        raise ConfigError(f"CSV manifest {path} has no rows below its header")
    return header, rows


def _number(cell: str) -> float | None:
    """``cell`` as a finite float, or None."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tags(cell: str, path: Path, number: int) -> tuple[str, ...]:
    """A ``labels`` cell as a tuple of distinct tags, in the order written."""
    if cell.startswith("["):
        try:
            tags = ast.literal_eval(cell)
        except (ValueError, TypeError, SyntaxError):
            tags = None
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{path}, row {number}: labels {cell!r} is not a list of strings; expected "
                              "tags separated by ';' or a Python list such as ['rock', 'guitar']")
    else:
        tags = cell.split(";")
    return tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))


def _task(path: Path, header: list[str], rows, targets: list[str] | None) -> tuple[str, list[str]]:
    """The task the columns give, and the regression target columns (empty otherwise)."""
    if "label" in header and "labels" in header:
        raise ConfigError(f"{path}, row 1: both 'label' (classification) and 'labels' (tagging) columns; keep one")
    if "label" in header or "labels" in header:
        if targets is not None:
            raise ConfigError(f"targets={targets!r} names regression columns, but {path} has a "
                              f"{'label' if 'label' in header else 'labels'} column")
        return ("classification" if "label" in header else "tagging"), []
    candidates = [name for name in header if name not in RESERVED]
    if targets is None:
        targets = [name for name in candidates if all(_number(row[name]) is not None for _, row in rows)]
    else:
        targets = [targets] if isinstance(targets, str) else list(targets)
        unknown = [name for name in targets if name not in candidates]
        if unknown:
            raise ConfigError(f"targets {unknown} are not target columns of {path}; its columns: {header}")
    if not targets:
        raise ConfigError(f"{path}, row 1: no target column; expected 'label' (classification), 'labels' "
                          f"(tagging) or numeric columns (regression), found {header}")
    return "regression", targets


@register_dataset
class CSVManifest(Dataset):
    """Tracks listed in a CSV file; its columns decide the task (see the module docstring).

    Parameters
    ----------
    root : str or Path
        The CSV file. It is read when the dataset is constructed, since its columns decide
        ``task``.
    targets : list of str or None
        Regression target columns, in output order; None: every column other than path / id /
        split that holds only numbers. Only for manifests without label / labels columns.
    seed : int
        Seeds the random split when there is no ``split`` column.
    fractions : (float, float, float)
        Train / validation / test shares of the random split (of each class for classification).

    Regression sets ``target_names`` (the target columns) and ``target_stats`` (``{"mean", "std"}``
    of the raw train values).
    """

    name = "csv"

    def __init__(self, root: str | Path, *, targets: list[str] | None = None, seed: int = 0,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
        super().__init__(root)
        self.seed, self.fractions = seed, tuple(fractions)
        path = self.root.absolute()
        header, rows = _read(path)
        self.task, targets = _task(path, header, rows, targets)
        tracks = self._build(path, header, rows, targets)
        if targets:  # regression
            self.target_names = targets
            try:
                tracks, self.target_stats = zscore(tracks, fit_on=("train",))
            except ConfigError as exc:
                raise ConfigError(f"CSV manifest {path}: {exc}") from None
        self._tracks = sorted(tracks, key=lambda t: t.id)

    def tracks(self) -> list[Track]:
        """The manifest's rows as tracks, sorted by id."""
        return list(self._tracks)

    def _build(self, path: Path, header: list[str], rows, targets: list[str]) -> list[Track]:
        """Tracks with their splits (random when the CSV has no split column), targets raw."""
        meta_columns = [name for name in header if name not in RESERVED and name not in targets]
        folder, seen, items = path.parent, {}, []
        for number, row in rows:
            if not row["path"]:
                raise ConfigError(f"{path}, row {number}: empty path")
            audio = Path(row["path"]).expanduser()
            track_id = row.get("id", row["path"])
            if not track_id:
                raise ConfigError(f"{path}, row {number}: empty id")
            if track_id in seen:
                raise ConfigError(f"{path}, row {number}: id {track_id!r} already used on row {seen[track_id]}")
            seen[track_id] = number
            split = None
            if "split" in header:
                split = SPLIT_NAMES.get(row["split"].lower())
                if split is None:
                    raise ConfigError(f"{path}, row {number}: unknown split {row['split']!r}; expected train, "
                                      "validation (valid, val, dev) or test")
            fields = {"meta": {name: row[name] for name in meta_columns}}
            if "label" in header:
                if not row["label"]:
                    raise ConfigError(f"{path}, row {number}: empty label")
                fields["label"] = row["label"]
            elif "labels" in header:
                fields["labels"] = _tags(row["labels"], path, number)
            else:
                values = [_number(row[name]) for name in targets]
                for name, value in zip(targets, values):
                    if value is None:
                        raise ConfigError(f"{path}, row {number}: target {name!r} must be a finite number, "
                                          f"got {row[name]!r}")
                fields["targets"] = tuple(values)
            items.append((track_id, audio if audio.is_absolute() else folder / audio, split, fields))
        if "split" not in header:
            ids = [item[0] for item in items]
            strata = [item[3]["label"] for item in items] if "label" in header else None
            splits = random_split(ids, strata, seed=self.seed, fractions=self.fractions)
            items = [(i, audio, splits[i], fields) for i, audio, _, fields in items]
        return [Track(i, audio, split, **fields) for i, audio, split, fields in items]
