"""A deformed copy of a dataset's test clips: each clip decoded at its own rate, deformed once with
a seed fixed per (run seed, deformation, track), written as a float WAV.

The copy is a dataset of its own to the feature stores: its ``identity`` is the original's plus
the deformation's ``key`` (which names the library version that made it) and the seed, so every
representation reads the same deformed audio and stores its features once, like any dataset's.
Writing is resumable (a finished file is never redone) and, under DDP, split over the ranks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import soundfile as sf
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from mirformer import distributed, paths
from mirformer.atomic import atomic_path, write_text
from mirformer.audio import load_audio
from mirformer.datasets.base import Track
from mirformer.deformations import Deformation
from mirformer.errors import AudioError


@dataclass
class DeformedClips:
    """The deformed test clips: ``tracks`` point at the deformed files (ids, labels and splits
    unchanged); ``skipped`` says why a clip has no deformed copy."""

    deformation: Deformation
    identity: str
    tracks: list[Track] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def clip_seed(seed: int, deformation: Deformation, track_id: str) -> int:
    """The seed one clip is deformed with: fixed by the run's seed, the setting and the clip alone,
    so a clip's copy never depends on which others are deformed, in which order or process."""
    digest = hashlib.sha1(f"{seed}|{deformation.name}|{track_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _file_name(track_id: str) -> str:
    # Track ids may hold path separators ("blues/blues.00001"); keep the folder flat.
    return track_id.replace("/", "__") + ".wav"


def _deform_one(track: Track, deformation: Deformation, out: Path, seed: int) -> None:
    """Worker: write the deformed copy of one clip (mono, its own rate), or beside it a ``.failed``
    note with the reason it cannot be made."""
    try:
        sr = sf.info(str(track.path)).samplerate
        y = load_audio(track.path, sr=sr)
        deformed = deformation.apply(y, sr=sr, seed=seed)
    except AudioError as exc:
        write_text(out.with_suffix(".failed"), exc.cause)
        return
    except Exception as exc:  # an unreadable header, or a deformation that cannot apply to this clip
        write_text(out.with_suffix(".failed"), f"{deformation.label} failed: {type(exc).__name__}: {exc}")
        return
    with atomic_path(out) as tmp:
        sf.write(tmp, deformed, sr, subtype="FLOAT", format="WAV")  # float: no clipping, no requantisation


def deform_test(dataset_identity: str, tracks: list[Track], deformation: Deformation, *, seed: int,
                workers: int = 1, progress: bool = True) -> DeformedClips:
    """The deformed copies of ``tracks`` (a test split), made where missing.

    Parameters
    ----------
    dataset_identity : str
        The original dataset's ``identity``.
    tracks : list of Track
        The clips to deform (usable ones: skipped files stay skipped).
    deformation : Deformation
        One setting (``mirformer.deformations``).
    seed : int
        The run's seed; each clip's is ``clip_seed(seed, deformation, id)``.
    workers : int
        Processes (joblib's convention).
    progress : bool

    Returns
    -------
    DeformedClips
        Under ``$MIRFORMER_HOME/features/<identity>/audio/``, one float WAV per clip.
    """
    identity = f"{dataset_identity}~{deformation.key}~seed{seed}"
    folder = paths.features_dir() / identity.replace("/", "_") / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    files = {t.id: folder / _file_name(t.id) for t in tracks}
    # Under DDP each rank writes its share, dealt from every clip: dealing only the clips still to do
    # would give ranks that look at different moments overlapping shares and gaps between them.
    mine = [t for t in tracks[distributed.rank()::distributed.world_size()]
            if not files[t.id].exists() and not files[t.id].with_suffix(".failed").exists()]
    if mine:
        jobs = (delayed(_deform_one)(t, deformation, files[t.id], clip_seed(seed, deformation, t.id)) for t in mine)
        for _ in tqdm(Parallel(n_jobs=workers, return_as="generator")(jobs), total=len(mine), unit="clip",
                      desc=f"deforming ({deformation.label})", disable=not progress):
            pass
    distributed.barrier()
    clips = DeformedClips(deformation, identity)
    for t in tracks:
        note = files[t.id].with_suffix(".failed")
        if note.exists():
            clips.skipped[t.id] = note.read_text()
        else:
            clips.tracks.append(replace(t, path=files[t.id]))
    return clips
