"""Decode audio files to mono float32 at a given sample rate, whole or block by block.

soundfile's bundled libsndfile reads WAV, FLAC, OGG/Vorbis, MP3 and AU; soxr resamples with
the same high-quality setting librosa uses by default (``soxr_hq``). Every check of a decoded
file (missing, empty, undecodable, truncated, not finite, silent, too short) lives here, shared
by ``load_audio`` and the streaming ``audio_blocks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
# A decode that falls this far short of the frames the header declares is a truncated file, not
# the small overshoot of an MP3 length estimate.
TRUNCATED_SHARE, TRUNCATED_SECONDS = 0.95, 0.5
DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError)


def too_short(seconds: float, min_seconds: float) -> str | None:
    """The reason a file of ``seconds`` is unusable under a ``min_seconds`` rule, or None."""
    if seconds < min_seconds:
        return f"too short: {seconds:.2f} s < required {min_seconds:.2f} s"
    return None


def check_file(path: Path) -> None:
    """``AudioError`` for a missing or empty file, before any decoder sees it."""
    if not path.is_file():
        raise AudioError(path, "file not found", kind="missing")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)", kind="empty")


def decode_error(path: Path, exc: Exception) -> AudioError:
    """The ``AudioError`` for a decoder's exception: what the file holds when libsndfile refuses it."""
    cause = undecodable(path, exc) if isinstance(exc, sf.LibsndfileError) else f"cannot decode: {exc}"
    return AudioError(path, cause, kind="undecodable")


def undecodable(path: Path, exc: Exception) -> str:
    """Why ``path`` does not open: what its bytes hold, with the decoder's own text as a detail.

    libsndfile says "File does not exist or is not a regular file" for any MP3 in which it finds
    no audio frame, so the bytes are looked at: an ID3 tag and nothing after it, no MPEG frame
    sync at all, or an unknown format.
    """
    data = path.read_bytes()
    detail = f"(libsndfile: {exc})"
    start = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # ID3v2: a 10-byte header, then a syncsafe size
        start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
        if len(data) <= start + 4:
            return f"an ID3 tag only ({len(data)} bytes), no audio frame {detail}"
    if path.suffix.lower() == ".mp3" or start:
        if not _has_mpeg_frame(data[start:]):
            return f"no MPEG audio frame in its {len(data) - start} bytes after any tag {detail}"
        return f"MPEG audio frames found but not decodable (corrupt or cut short) {detail}"
    return f"cannot decode: not a format libsndfile reads, or corrupt {detail}"


def _has_mpeg_frame(data: bytes) -> bool:
    """Whether ``data`` holds an MPEG audio frame header: an 11-bit sync, a valid version, layer,
    bitrate and sample-rate index."""
    i = data.find(b"\xff")
    while 0 <= i < len(data) - 3:
        b1, b2 = data[i + 1], data[i + 2]
        if b1 & 0xE0 == 0xE0 and b1 & 0x18 != 0x08 and b1 & 0x06 and b2 >> 4 not in (0, 15) and b2 & 0x0C != 0x0C:
            return True
        i = data.find(b"\xff", i + 1)
    return False


def truncated(read: int, declared: int, sr: int) -> str | None:
    """The reason a file that decodes ``read`` of the ``declared`` frames its header gives is cut
    short, or None."""
    if declared > 0 and read < TRUNCATED_SHARE * declared and declared - read > TRUNCATED_SECONDS * sr:
        return f"truncated: decodes {read / sr:.2f} s of the {declared / sr:.2f} s its header declares"
    return None


def _mono(y: np.ndarray) -> np.ndarray:
    """Frames (n, channels) -> mono (n,), the channels averaged (float32 in, float32 out)."""
    if y.shape[1] == 1:
        return y[:, 0]
    # Channel by channel: ``y.mean(axis=1)`` loops frame by frame over the short channel axis, 15x
    # slower (15 ms for 30 s of stereo); for two channels the same values, (a + b) / 2.
    total = y[:, 0] + y[:, 1]
    for channel in range(2, y.shape[1]):
        total += y[:, channel]
    total /= y.shape[1]
    return total


def _check_truncated(path: Path, read: int, declared: int, sr: int) -> None:
    cut = truncated(read, declared, sr)
    if cut:
        raise AudioError(path, cut, kind="truncated")


def _peak(path: Path, y: np.ndarray) -> float:
    """The largest absolute sample of ``y`` (0.0 for none); ``AudioError`` if any is NaN or infinite."""
    # Its max and min (NaN propagates through both): two passes that allocate nothing, where
    # ``isfinite`` and ``abs`` would each write a copy of the signal.
    high, low = float(y.max(initial=0.0)), float(y.min(initial=0.0))
    if not (np.isfinite(high) and np.isfinite(low)):
        raise AudioError(path, "decoded samples contain NaN or Inf", kind="non-finite")
    return max(high, -low)


def _check_loud(path: Path, peak: float, cause: str) -> None:
    """``AudioError`` with ``cause`` for a peak amplitude below ``SILENCE_PEAK``."""
    if peak < SILENCE_PEAK:
        raise AudioError(path, cause, kind="silent")


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
        If the file is missing, empty, undecodable, truncated, not finite, silent or shorter than
        ``min_seconds``.
    """
    path = Path(path)
    check_file(path)
    try:
        with sf.SoundFile(path) as f:
            native_sr, declared = f.samplerate, f.frames
            frames = -1 if max_seconds is None else int(round(max_seconds * native_sr))
            y = f.read(frames=frames, dtype="float32", always_2d=True)
    except DECODE_ERRORS as exc:
        raise decode_error(path, exc) from None
    if y.shape[0] == 0:
        raise AudioError(path, "no audio frames decoded", kind="empty")
    _check_truncated(path, y.shape[0], declared if frames < 0 else min(declared, frames), native_sr)
    y = _mono(y)
    _check_loud(path, _peak(path, y), "silent (peak below -120 dBFS)")
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    short = too_short(len(y) / sr, min_seconds)
    if short:
        raise AudioError(path, short, kind="too short")
    return np.ascontiguousarray(y, dtype=np.float32)


def audio_blocks(path: str | Path, *, sr: int, block_seconds: float = 30.0) -> Callable[[], Iterator[np.ndarray]]:
    """A factory of iterators over ``path``'s consecutive mono blocks at ``sr`` Hz, for audio too
    long to hold: ``load_audio``'s checks, block by block, with a streaming resampler.

    Parameters
    ----------
    path : str or Path
        Audio file, as for ``load_audio``.
    sr : int > 0
        Target sample rate in Hz.
    block_seconds : float > 0
        Seconds of the file decoded per block.

    Returns
    -------
    blocks : callable
        Each call returns an iterator over float32 blocks [shape=(n_i,)], about ``block_seconds``
        each; together the mono signal at ``sr`` Hz.

    Raises
    ------
    AudioError
        For a missing, empty or undecodable file at once; for non-finite samples when an
        iterator reaches them; for a truncated or silent file when an iterator reaches its end.
    """
    path = Path(path)
    check_file(path)
    try:
        info = sf.info(path)
    except DECODE_ERRORS as exc:
        raise decode_error(path, exc) from None
    native = info.samplerate

    def blocks() -> Iterator[np.ndarray]:
        resampler = soxr.ResampleStream(native, sr, 1, dtype="float32", quality="HQ") if native != sr else None
        peak, read = 0.0, 0
        try:
            with sf.SoundFile(path) as f:
                # Not ``f.blocks``: it reads as many frames as the header declares, and where the
                # decoder gives fewer (a truncated MP3) repeats its buffer's stale samples.
                size = max(1, int(block_seconds * native))
                while len(block := f.read(size, dtype="float32", always_2d=True)):
                    y = _mono(block)
                    peak, read = max(peak, _peak(path, y)), read + len(y)
                    yield resampler.resample_chunk(y) if resampler else y
                if resampler:
                    yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        except DECODE_ERRORS as exc:
            raise decode_error(path, exc) from None
        _check_truncated(path, read, info.frames, native)
        _check_loud(path, peak, "silent (peak below -120 dBFS) or no audio frames")

    return blocks
