"""Decode audio files to mono float32 at a given sample rate.

soundfile's bundled libsndfile reads WAV, FLAC, OGG/Vorbis, MP3 and AU; soxr resamples with
the same high-quality setting librosa uses by default (``soxr_hq``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mirformer.errors import AudioError

# Peak amplitude below which a file counts as silent (-120 dBFS): digital silence, not quiet music.
SILENCE_PEAK = 1e-6
# The shortest file that trains and that ``mirformer validate`` passes, unless the user sets
# another (``data.min_seconds``, ``--min-seconds``): one rule for both, applied by ``too_short``.
MIN_SECONDS = 1.0


def too_short(seconds: float, min_seconds: float) -> str | None:
    """The reason a file of ``seconds`` is unusable under a ``min_seconds`` rule, or None."""
    if seconds < min_seconds:
        return f"too short: {seconds:.2f} s < required {min_seconds:.2f} s"
    return None


def load_audio(
    path: str | Path,
    *,
    sr: int,
    min_seconds: float = 0.0,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or Path
        Audio file (WAV, FLAC, OGG/Vorbis, MP3, AU, anything libsndfile reads).
    sr : int > 0
        Target sample rate in Hz.
    min_seconds : float >= 0
        Minimum duration in seconds; shorter files raise ``AudioError``.
    max_seconds : float > 0 or None
        Decode at most this many seconds from the start (None: the whole file).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono signal in [-1, 1] (channels averaged).

    Raises
    ------
    AudioError
        If the file is missing, empty, undecodable, silent or shorter than ``min_seconds``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        with sf.SoundFile(path) as f:
            native_sr = f.samplerate
            frames = -1 if max_seconds is None else int(round(max_seconds * native_sr))
            y = f.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"cannot decode: {exc}") from None
    if y.shape[0] == 0:
        raise AudioError(path, "no audio frames decoded")
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "decoded samples contain NaN or Inf")
    if float(np.abs(y).max()) < SILENCE_PEAK:
        raise AudioError(path, "silent (peak below -120 dBFS)")
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    short = too_short(len(y) / sr, min_seconds)
    if short:
        raise AudioError(path, short)
    return np.ascontiguousarray(y, dtype=np.float32)
