"""Precomputed embeddings as a representation: one ``.npy`` array per track, read, never computed.

``path`` names either a folder with one ``<track id>.npy`` per track (an id with "/" is a
sub-folder path: GTZAN's ``blues/blues.00001`` is ``blues/blues.00001.npy``), or a manifest CSV
with columns ``track_id,path`` and optionally ``times_path`` (paths relative to the CSV's folder,
or absolute). An array is ``(frames, dim)``, with an optional ``<id>.times.npy`` beside it (frame
centres in seconds, shape (frames,), increasing; a manifest's ``times_path``), or ``(frames,
layers, width)``: every layer of a model, as ``mirformer embed --layer all`` writes them, stored
stacked (``layers``), or ``(dim,)``: one vector per clip, stored as one frame.

Frame rate: ``frames_per_second`` when given, else the times files' (each one's median spacing;
a spacing uneven by more than 1 %, or a rate 1 % off the others', is refused), else 0 for clip
vectors (a model then reads windows of one frame).

Durations (the store's ``seconds``, on a millisecond clock: ``sample_rate = 1000``): a track's
last time plus half a frame, or its frames / the frame rate. A clip vector takes its audio file's
duration (``soundfile.info``); when that file cannot be read, ``UNKNOWN_SECONDS``: whoever made
the embeddings judged the clip usable, so it passes any ``min_seconds`` rule rather than being
dropped for a length nobody measured.

The feature store is keyed by the path, the rate and a fingerprint of the files (names, sizes,
modification times; not their contents, which may be gigabytes), so a changed folder never reuses
a stale store; an encoder file refers to the folder by path and that fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

import numpy as np
import soundfile as sf

from mirformer.audio import DECODE_ERRORS
from mirformer.errors import CheckpointError, ConfigError, MirformerError
from mirformer.representations.base import Layout, Representation, register_representation

PRECOMPUTED_VERSION = "1"
DTYPES = ("float32", "float16")
SAMPLE_RATE = 1000  # a millisecond clock: the store's seconds are samples / 1000
UNKNOWN_SECONDS = 3600.0  # a clip vector whose audio file cannot be read (see the module's docstring)
RATE_TOLERANCE = 0.01  # uneven spacing, or a rate off the others', beyond this share is refused
TIMES_SUFFIX = ".times.npy"
SHAPES = {2: "(frames, dim)", 3: "(frames, layers, width)", 1: "(dim,)"}  # by ndim; ties go to the first
MANIFEST_COLUMNS = ("track_id", "path")
SCAN_VALUES = 1 << 22  # values per chunk when scanning an array for NaN / inf (32 MB as float64)
LISTED = 10  # track ids named per problem; the rest are counted
_SURVEYED: dict[tuple, "Survey"] = {}  # the last folder surveyed (see ``survey``)


@dataclass(frozen=True)
class PrecomputedConfig:
    """Precomputed embeddings to read.

    Parameters
    ----------
    path : str
        A folder of ``<track id>.npy`` files, or a manifest CSV (``track_id,path[,times_path]``).
    frames_per_second : float > 0 or None
        Frame rate of ``(frames, dim)`` arrays; None: measured from their ``.times.npy`` files.
    allow_extra : bool
        Accept files for ids the dataset does not have (they are not read); refused otherwise.
    """

    path: str = ""
    frames_per_second: float | None = None
    allow_extra: bool = False

    def __post_init__(self):
        fps = self.frames_per_second
        if fps is not None and (not isinstance(fps, Real) or isinstance(fps, bool) or not 0 < fps < np.inf):
            raise ConfigError(f"PrecomputedConfig.frames_per_second must be > 0 or None, got {fps!r}")
        if not isinstance(self.allow_extra, bool):
            raise ConfigError(f"PrecomputedConfig.allow_extra must be true or false, got {self.allow_extra!r}")


@dataclass
class Survey:
    """What a folder or manifest holds, from its array headers and times files (no values read).

    ``arrays`` / ``times``: each id's array file and times file (or None); ``shapes``: the readable
    arrays' shapes; ``ends``: each times file's last time (s); ``problems``: what single files
    get wrong, heading -> {track id: detail}; ``ndim`` (1: clip vectors, 2: frames, 3: frames of
    stacked layers), ``dim`` (values per stored frame), ``layers`` and ``rate`` (frames/s, 0 for
    clips): what most files agree on.
    """

    source: Path
    arrays: dict[str, Path]
    times: dict[str, Path | None]
    fingerprint: str
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    ends: dict[str, float] = field(default_factory=dict)
    problems: dict[str, dict[str, str]] = field(default_factory=dict)
    ndim: int = 2
    dim: int = 0
    layers: int = 1
    rate: float = 0.0

    @property
    def clips(self) -> bool:
        return self.ndim == 1

    def note(self, heading: str, track_id: str, detail: str) -> None:
        self.problems.setdefault(heading, {})[track_id] = detail


def _source(config: PrecomputedConfig) -> Path:
    """The resolved folder or manifest ``config`` names, refused when it is neither."""
    if not config.path:
        raise ConfigError("npy: no path given: npy:FOLDER (one <track id>.npy per track) or npy:MANIFEST.csv")
    source = Path(config.path).expanduser().resolve()
    if not source.exists():
        raise ConfigError(f"npy:{config.path}: no such folder or manifest ({source})")
    if not source.is_dir() and source.suffix.lower() != ".csv":
        raise ConfigError(f"npy:{config.path}: neither a folder of .npy files nor a manifest .csv")
    return source


def _folder(root: Path) -> tuple[dict[str, Path], dict[str, Path | None]]:
    """Each ``<id>.npy`` under ``root`` (sub-folders included) and its ``<id>.times.npy`` or None."""
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.npy")) if p.is_file()}
    arrays = {name[: -len(".npy")]: p for name, p in files.items() if not name.endswith(TIMES_SUFFIX)}
    return arrays, {i: files.get(i + TIMES_SUFFIX) for i in arrays}


def _manifest(path: Path) -> tuple[dict[str, Path], dict[str, Path | None]]:
    """The files a manifest CSV names by track id, relative to its folder."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows, columns = list(reader), reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: not a readable manifest CSV: {e}") from None
    if not set(MANIFEST_COLUMNS) <= set(columns):
        raise ConfigError(f"{path}: a manifest needs the columns {','.join(MANIFEST_COLUMNS)} (and optionally "
                          f"times_path); found columns {list(columns)}")
    repeated = sorted(i for i, n in Counter(r["track_id"] for r in rows).items() if n > 1)
    blank = [n + 2 for n, r in enumerate(rows) if not r["track_id"] or not r["path"]]  # line numbers
    if repeated:
        raise ConfigError(f"{path}: repeated track ids {repeated[:LISTED]}")
    if blank:
        raise ConfigError(f"{path}: rows without track_id or path on lines {blank[:LISTED]}")
    arrays = {r["track_id"]: path.parent / r["path"] for r in rows}  # an absolute path stays itself
    times = {r["track_id"]: path.parent / r["times_path"] if r.get("times_path") else None for r in rows}
    return arrays, times


def _fingerprint(source: Path, files: list[Path]) -> str:
    """SHA-256 of the files' names, sizes and modification times (and of a manifest's text)."""
    h = hashlib.sha256(source.read_bytes() if source.is_file() else b"")
    for path in sorted(set(files)):
        stat = path.stat() if path.is_file() else None
        h.update(f"{path}\0{stat and stat.st_size}\0{stat and stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def listing(config: PrecomputedConfig) -> Survey:
    """The files ``config`` names and their fingerprint, nothing read but a manifest."""
    source = _source(config)
    arrays, times = _folder(source) if source.is_dir() else _manifest(source)
    if not arrays:
        raise ConfigError(f"npy:{config.path}: no .npy arrays in {source}")
    files = [*arrays.values(), *(t for t in times.values() if t is not None)]
    return Survey(source, arrays, times, _fingerprint(source, files))


def survey(config: PrecomputedConfig) -> Survey:
    """The folder or manifest ``config`` names, its headers and times read once while unchanged.

    Raises ``ConfigError`` when no rate can be known: ``(frames, dim)`` arrays with neither
    ``frames_per_second`` nor times files, or clip vectors given a ``frames_per_second``.
    """
    s = listing(config)
    key = (s.source, config.frames_per_second, s.fingerprint)
    if key not in _SURVEYED:
        _headers(s)
        _rate(s, config)
        _SURVEYED.clear()  # one folder held at a time
        _SURVEYED[key] = s
    return _SURVEYED[key]


def _headers(s: Survey) -> None:
    """Each array's shape (memory-mapped: only its header is read); the majority's kind and dim."""
    for tid, path in s.arrays.items():
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            s.note("unreadable", tid, f"{path.name}: {e}")
            continue
        if not isinstance(a, np.ndarray) or not (np.issubdtype(a.dtype, np.floating)
                                                 or np.issubdtype(a.dtype, np.integer)):
            s.note("unreadable", tid, f"{path.name} holds {getattr(a, 'dtype', type(a).__name__)}, not numbers")
        else:
            s.shapes[tid] = a.shape
    ndims = [len(shape) for shape in s.shapes.values() if len(shape) in SHAPES]
    if not ndims:
        raise ConfigError(f"{s.source}: no readable {' or '.join(SHAPES.values())} array among its "
                          f"{len(s.arrays)} files")
    s.ndim = max(SHAPES, key=ndims.count)  # the most common; ties go to (frames, dim)
    tails = [_tail(shape) for shape in s.shapes.values() if len(shape) == s.ndim]
    tail = max(set(tails), key=tails.count)
    s.dim, s.layers = int(np.prod(tail)), tail[0] if s.ndim == 3 else 1
    for tid, shape in s.shapes.items():
        if len(shape) != s.ndim:
            s.note(f"not {SHAPES[s.ndim]} as most arrays are", tid, f"shape {shape}")
        elif _tail(shape) != tail:
            s.note(f"not {' x '.join(map(str, tail))} values per frame as most arrays have", tid,
                   " x ".join(map(str, _tail(shape))))
        elif not s.clips and shape[0] == 0:
            s.note("no frames", tid, f"shape {shape}")


def _tail(shape: tuple[int, ...]) -> tuple[int, ...]:
    """What one frame of an array of ``shape`` holds: (dim,) or (layers, width)."""
    return shape if len(shape) == 1 else shape[1:]


def _spacing(t: np.ndarray, n_frames: int) -> tuple[str | None, float | None]:
    """(what is wrong with times ``t`` of an array of ``n_frames`` frames or None, their rate or None)."""
    if t.ndim != 1 or len(t) != n_frames:
        return f"shape {t.shape}, the array has {n_frames} frames", None
    if not np.isfinite(t).all():
        return "NaN or infinite times", None
    if len(t) < 2:
        return None, None
    diff = np.diff(t)
    if not (diff > 0).all():
        return f"not increasing at frame {int(np.argmin(diff > 0)) + 1}", None
    step = float(np.median(diff))
    worst = int(np.argmax(np.abs(diff - step)))
    if abs(diff[worst] - step) > RATE_TOLERANCE * step:
        return f"uneven: {diff[worst]:.6g} s after frame {worst} where the median spacing is {step:.6g} s", None
    return None, 1.0 / step


def _rate(s: Survey, config: PrecomputedConfig) -> None:
    """Read the times files of the arrays of frames; the common rate, refusing tracks off it."""
    fps = config.frames_per_second
    if s.clips:
        if fps is not None:
            raise ConfigError(f"{s.source}: its arrays are one (dim,) vector per clip, which has no frame rate; "
                              f"drop frames_per_second={fps:g}")
        return
    rates = {}
    for tid, shape in s.shapes.items():
        path = s.times[tid]
        if len(shape) < 2 or path is None:
            continue
        try:
            t = np.asarray(np.load(path, allow_pickle=False), np.float64)
            problem, rate = _spacing(t, shape[0])
        except (OSError, ValueError, EOFError) as e:
            problem, rate = f"{path.name} unreadable: {e}", None
        if problem:
            s.note("times files wrong", tid, problem)
            continue
        if rate is not None:
            rates[tid] = rate
        s.ends[tid] = float(t[-1]) if len(t) else 0.0
    if fps is None and not rates:
        raise ConfigError(f"{s.source}: its arrays are (frames, dim) but nothing gives their frame rate: give "
                          f"frames_per_second= (npy:{config.path},frames_per_second=50) or, beside each array, "
                          f"<id>{TIMES_SUFFIX} with the frame centres in seconds")
    s.rate = float(fps if fps is not None else np.median(list(rates.values())))
    for tid, rate in rates.items():
        if abs(rate - s.rate) > RATE_TOLERANCE * s.rate:
            s.note(f"times at another rate than {s.rate:.6g} frames/s", tid, f"{rate:.6g}")
    if fps is None:
        for tid, shape in s.shapes.items():
            if len(shape) >= 2 and s.times[tid] is None:
                s.note("no times file, and no frames_per_second= to read them without", tid, s.arrays[tid].name)


def _scan(path: Path, *, limit: float) -> tuple[str | None, str | None]:
    """(NaN / infinite counts, count beyond ``limit``) of an array's values, read in chunks."""
    a = np.load(path, mmap_mode="r")
    rows = a.reshape(len(a), -1) if a.ndim >= 2 else a.reshape(1, -1)
    step = max(1, SCAN_VALUES // max(1, rows.shape[1]))
    nan = inf = beyond = 0
    for start in range(0, len(rows), step):
        chunk = np.asarray(rows[start : start + step], np.float64)
        infinite = int(np.isinf(chunk).sum())
        nan, inf = nan + int(np.isnan(chunk).sum()), inf + infinite
        beyond += int((np.abs(chunk) > limit).sum()) - infinite
    bad = ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n)
    return bad or None, f"{beyond} values" if beyond else None


def _listed(ids: dict[str, str]) -> str:
    shown = [f"{i} ({d})" if d else i for i, d in sorted(ids.items())[:LISTED]]
    more = f" and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
    return ", ".join(shown) + more


def _audio_seconds(path: Path) -> float:
    """The duration of a clip vector's audio file, or ``UNKNOWN_SECONDS`` when it cannot be read."""
    try:
        return float(sf.info(str(path)).duration)
    except (*DECODE_ERRORS, OSError):
        return UNKNOWN_SECONDS


@register_representation
class Precomputed(Representation):
    """Embeddings read from ``.npy`` files: (frames, dim) per track, or one (dim,) vector per clip
    stored as 1 frame, at ``frames_per_second`` (0 for clip vectors), stored as ``dtype``.

    Parameters
    ----------
    config : PrecomputedConfig
    dtype : {"float32", "float16"}
        How the feature store keeps the frames.
    """

    name = spec_prefix = input_name = "npy"
    spec_field, label, config_class, frames_from_samples = "path", "precomputed embeddings", PrecomputedConfig, False
    sample_rate = SAMPLE_RATE

    def __init__(self, config: PrecomputedConfig, *, dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ConfigError(f"Precomputed dtype must be one of {DTYPES}, got {dtype!r}")
        self.config, self.dtype = config, np.dtype(dtype)
        self.survey = survey(config)
        self.frames_per_second = self.survey.rate
        self.layout, self.layers = Layout(dim=self.survey.dim), self.survey.layers

    # ---- from a spec --------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: PrecomputedConfig) -> None:
        """The path holds arrays of one kind whose frame rate is known."""
        survey(config)

    @classmethod
    def frame_rate(cls, config: PrecomputedConfig) -> float:
        return survey(config).rate

    @classmethod
    def from_config(cls, config: PrecomputedConfig, *, context=None, dtype: str = "float32") -> Precomputed:
        return cls(config, dtype=dtype)

    def settings(self) -> PrecomputedConfig:
        return self.config

    def about(self) -> dict:
        s = self.survey
        return {"path": str(s.source), "n_tracks": len(s.arrays), "dim": self.dim, "layers": self.layers,
                "frames_per_second": self.frames_per_second, "fingerprint": s.fingerprint}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        a = about
        rate = f"{a['frames_per_second']:.4g} frames/s" if a["frames_per_second"] else "one vector per clip"
        frames = a.get("window_frames") if a["frames_per_second"] else None  # a clip vector's window is itself
        window = f", windows of {frames} frames" if frames else ""
        layers = f" ({a['layers']} layers stacked)" if a.get("layers", 1) > 1 else ""
        return ["## Precomputed embeddings", "",
                f"Precomputed embeddings read from `{a['path']}`: {a['n_tracks']} tracks of {a['dim']} values"
                f"{layers}, {rate}{window}.", ""]

    # ---- tracks of a dataset ------------------------------------------------------------------
    def check_tracks(self, tracks: list) -> None:
        """Raise one ``ConfigError`` listing, by track id, every file missing, extra (unless
        ``allow_extra``), unreadable, of another shape or rate than the others, with NaN or
        infinite values (scanned in chunks), or beyond float16's range when stored as float16."""
        s = self.survey
        ids = {t.id for t in tracks}
        problems = {"missing: no array for these tracks": dict.fromkeys(ids - s.arrays.keys(), ""),
                    "extra: arrays for no track of the dataset (allow_extra=true accepts them)":
                        {} if self.config.allow_extra else dict.fromkeys(s.arrays.keys() - ids, ""),
                    **{heading: {i: d for i, d in found.items() if i in ids} for heading, found in s.problems.items()}}
        flagged = {i for found in problems.values() for i in found}
        limit = float(np.finfo(self.dtype).max)
        for tid in sorted((ids & s.arrays.keys()) - flagged):
            bad, beyond = _scan(s.arrays[tid], limit=limit)
            if bad:
                problems.setdefault("NaN or infinite values", {})[tid] = bad
            if beyond:
                problems.setdefault(f"values beyond {self.dtype.name}'s range (±{limit:.6g})", {})[tid] = beyond
        lines = [f"- {heading}: {len(found)} track(s): {_listed(found)}" for heading, found in problems.items()
                 if found]
        if lines:
            raise ConfigError(f"{s.source}: the precomputed embeddings do not fit the dataset's {len(ids)} tracks "
                              "(nothing was stored):\n" + "\n".join(lines))

    def read(self, track) -> tuple[np.ndarray, int]:
        """One track's frames [shape=(frames, dim), layers stacked, or (1, dim) for a clip vector] as ``dtype``, and
        its duration in milliseconds (see the module's docstring)."""
        s = self.survey
        if track.id not in s.arrays:
            raise ConfigError(f"{s.source} has no embeddings for track {track.id!r} (check_tracks lists them all)")
        a = np.asarray(np.load(s.arrays[track.id], allow_pickle=False), self.dtype)
        # A guard for a store filled without check_tracks: a wrong shape would shift every later track.
        if a.ndim != s.ndim or int(np.prod(_tail(a.shape))) != self.dim or not np.isfinite(a).all():
            raise ConfigError(f"{s.arrays[track.id]}: shape {a.shape} (expected {self.dim} values per frame) or NaN, "
                              f"infinite or beyond-{self.dtype.name} values (track {track.id}; check_tracks lists "
                              "every such track)")
        frames = a.reshape(-1, self.dim)
        if s.clips:
            seconds = _audio_seconds(track.path)
        elif track.id in s.ends:
            seconds = s.ends[track.id] + 0.5 / self.frames_per_second
        else:
            seconds = len(frames) / self.frames_per_second
        return frames, round(seconds * SAMPLE_RATE)

    # ---- encoding -----------------------------------------------------------------------------
    def config_dict(self) -> dict:
        s = self.survey
        key = {"path": str(s.source), "frames_per_second": self.frames_per_second, "fingerprint": s.fingerprint,
               "version": PRECOMPUTED_VERSION}
        return key if self.dtype == np.float32 else {**key, "dtype": self.dtype.name}

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Refused: precomputed embeddings exist only for the tracks they were computed for."""
        raise MirformerError(f"precomputed embeddings ({self.survey.source}) cannot encode new audio: they exist "
                             "only for the dataset's tracks; embed new audio with the model that made them")

    def n_frames(self, n_samples: int) -> int:
        """Frames of ``n_samples`` milliseconds: 1 for a clip vector, else about ``n_samples / 1000 *
        frames_per_second`` (approximate: the store counts a track's frames in its file)."""
        if self.survey.clips:
            return 1 if n_samples > 0 else 0
        return round(n_samples / SAMPLE_RATE * self.frames_per_second)

    def times(self, n_frames: int) -> np.ndarray:
        """Frame centres in seconds [shape=(n_frames,)] at the common rate (a times file may start
        elsewhere); 0 for a clip vector, whose one frame has no position."""
        return np.zeros(n_frames) if self.survey.clips else super().times(n_frames)

    # ---- the encoder file ---------------------------------------------------------------------
    def to_block(self) -> dict:
        """A reference to the files (path, settings, fingerprint), not their values."""
        c = self.config
        return {"npy": {"path": str(self.survey.source), "frames_per_second": c.frames_per_second,
                        "allow_extra": c.allow_extra, "fingerprint": self.survey.fingerprint},
                "dtype": self.dtype.name}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> Precomputed:
        """The embeddings an encoder file at ``source`` refers to, unchanged since (same fingerprint)."""
        info = block["npy"]
        if not Path(info["path"]).exists():
            raise CheckpointError(f"{source}: its precomputed embeddings {info['path']} are missing (fingerprint "
                                  f"{info['fingerprint']})")
        config = PrecomputedConfig(info["path"], info["frames_per_second"], info["allow_extra"])
        found = listing(config).fingerprint
        if found != info["fingerprint"]:
            raise CheckpointError(f"{source}: its precomputed embeddings {info['path']} have changed: fingerprint "
                                  f"{found}, the encoder was trained with {info['fingerprint']}")
        return cls(config, dtype=block["dtype"])
