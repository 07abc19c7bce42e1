"""Export any representation of audio files as one ``.npy`` array per file."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mirformer.atomic import atomic_path
from mirformer.audio import load_audio
from mirformer.errors import AudioError
from mirformer.representations.base import Representation


def output_names(paths: list[str | Path]) -> dict[str, str]:
    """File name of each input's array: ``<stem>.npy``, or ``<stem>-<hash>.npy`` for shared stems.

    Stems are compared ignoring case (``A.wav`` and ``a.wav`` would clash on macOS and Windows).
    ``<hash>`` is the first 8 hex digits of the SHA-1 of the input's absolute path, so the names
    do not depend on the order of the inputs.
    """
    stems = Counter(Path(p).stem.casefold() for p in paths)
    names = {}
    for p in map(str, paths):
        stem = Path(p).stem
        if stems[stem.casefold()] > 1:
            stem += "-" + hashlib.sha1(os.path.abspath(p).encode()).hexdigest()[:8]
        names[p] = stem + ".npy"
    return names


def extract_to_npy(
    paths: list[str | Path],
    out_dir: str | Path,
    *,
    representation: Representation,
    progress: bool = True,
) -> dict:
    """Decode each audio file, encode it and write the result to ``<out_dir>/<stem>.npy``.

    Each array is written atomically (a temporary file renamed into place), so an interrupted
    run leaves only complete files. Inputs whose stems coincide (``a/x.wav``, ``b/x.mp3``) get
    ``<stem>-<hash>.npy`` instead, with a ``UserWarning`` naming them (see ``output_names``).

    Parameters
    ----------
    paths : list of str or Path
        Audio files (anything ``mirformer.audio.load_audio`` decodes); a file given twice is
        done once.
    out_dir : str or Path
        Output folder, created if missing; existing arrays of the same name are replaced.
    representation : Representation
        Decoding resamples to its ``sample_rate``; arrays are its ``encode`` output cast to its
        ``dtype``, [shape=(frames, dim)] or [shape=(frames,)] for tokens.
    progress : bool
        Show a progress bar.

    Returns
    -------
    result : dict
        ``{"written": [output path, ...], "skipped": {input path: reason}}``, in input order;
        a file is skipped when it cannot be decoded (missing, empty, corrupt, silent).
    """
    unique: dict[str, str] = {}
    for p in map(str, paths):
        unique.setdefault(os.path.abspath(p), p)
    paths = list(unique.values())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(paths)
    renamed = {p: n for p, n in names.items() if n != Path(p).stem + ".npy"}
    if renamed:
        listing = ", ".join(f"{p} -> {n}" for p, n in renamed.items())
        warnings.warn(f"{len(renamed)} inputs share a file stem; their arrays are named with a hash of "
                      f"the path: {listing}", stacklevel=2)
    written, skipped = [], {}
    for path in tqdm(paths, desc=f"extract {representation.name}", unit="file", disable=not progress):
        try:
            y = load_audio(path, sr=representation.sample_rate)
        except AudioError as exc:
            skipped[path] = exc.cause
            continue
        features = np.asarray(representation.encode(y), dtype=representation.dtype)
        target = out_dir / names[path]
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, features)
        written.append(str(target))
    return {"written": written, "skipped": skipped}
