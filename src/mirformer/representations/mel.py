"""Log-mel spectrogram in dB: librosa's numbers (within 1e-3 dB), computed with torch.

The reference is ``librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
n_mels=n_mels, fmin=fmin, fmax=fmax, window="hann", center=center, pad_mode="constant",
power=power)`` followed by ``librosa.power_to_db(S, ref=1.0 or np.max, amin=amin, top_db=top_db)``,
transposed to (frames, mels). Window and filterbank are librosa's own arrays.

Speed (``benchmarks/bench_mel.py``: 2.3-2.9x librosa on 2 cores, 2x on 1): the FFT is
``torch.fft.rfft`` (MKL); the signal goes through in chunks of frames, so each chunk's spectrum
is still in cache for the passes after the FFT (a 30 s clip's whole complex STFT is 21 MB); the
sparse filterbank is applied block by block with ``torch.mm``.

Precision: librosa windows and transforms float32 audio in float64 and rounds the spectrum to
complex64; here the FFT runs in float32, so the spectrum carries errors of about 1e-7 of the
frame's largest bin. In dB this shows only in bands far below the clip's peak: at most 7e-4 dB on
19 rendered Bach chorales, at -79 dB, just above the ``top_db=80`` floor. With ``top_db=None`` bands
quieter than that differ more. A float64 FFT would agree to 2e-5 dB but take 1.5-2x the time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
import math
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real

import librosa
import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided

from mirformer.errors import ConfigError, MirformerError
from mirformer.representations.base import Layout, Spectrogram, check_settings, register_representation
from mirformer.streaming import frame_segments

# Bump when a change here changes the output, so feature stores keyed by config_dict recompute.
MEL_VERSION = "1"

# Complex spectrum per chunk: 2 MiB, 1020 frames at n_fft 512, 255 at 2048. Measured on the
# 2 MiB-L2 development machine: 1-2 MiB fastest; 4 MiB and a whole 30 s clip at once 1.2-1.4x
# slower; 256 KiB and less slower still (per-chunk overhead).
CHUNK_BYTES = 1 << 21
# Groups of consecutive mel bands, each multiplied with only the FFT bins it covers.
MEL_GROUPS = 4



@dataclass(frozen=True)
class MelConfig:
    """Parameters of the log-mel spectrogram (librosa's names and meanings).

    Parameters
    ----------
    sample_rate : int > 0
        Sample rate of the input in Hz.
    n_fft : int > 0
        FFT length and Hann window length in samples.
    hop_length : int > 0
        Samples between successive frames.
    n_mels : int > 0
        Number of mel bands (Slaney mel scale and area normalisation, librosa's defaults).
    fmin : float >= 0
        Lowest band edge in Hz.
    fmax : float > fmin, <= sample_rate / 2, or None
        Highest band edge in Hz (None: ``sample_rate / 2``).
    center : bool
        If True, frame ``t`` is centred on sample ``t * hop_length``; the signal is padded with
        ``n_fft // 2`` zeros at both ends (librosa's ``pad_mode="constant"``).
    power : float > 0
        Exponent of the magnitude (2.0: power spectrogram, 1.0: magnitude).
    ref : {"1.0", "max"}
        dB reference: 1.0 (absolute level) or the clip's largest mel value (0 dB at the peak).
        The number 1.0 is accepted and stored as ``"1.0"``.
    amin : float > 0
        Floor applied to the mel values (and to the reference) before the logarithm.
    top_db : float >= 0 or None
        Clip the output at ``max - top_db`` dB (None: no clipping).
    """

    sample_rate: int = 44100
    n_fft: int = 512
    hop_length: int = 128
    n_mels: int = 86
    fmin: float = 0.0
    fmax: float | None = None
    center: bool = True
    power: float = 2.0
    ref: str = "1.0"
    amin: float = 1e-10
    top_db: float | None = 80.0

    def __post_init__(self):
        check_settings(self, positive_ints=("sample_rate", "n_fft", "hop_length", "n_mels"), db_ref="ref",
                       top_db="top_db")
        if not isinstance(self.center, bool):
            raise ConfigError(f"MelConfig.center must be True or False, got {self.center!r}")
        nyquist = self.sample_rate / 2
        if not _is_real(self.fmin) or not 0 <= self.fmin < nyquist:
            raise ConfigError(f"MelConfig.fmin must be in [0, {nyquist:g}) Hz, got {self.fmin!r}")
        if self.fmax is not None and (not _is_real(self.fmax) or not self.fmin < self.fmax <= nyquist):
            raise ConfigError(
                f"MelConfig.fmax must be in ({self.fmin:g}, {nyquist:g}] Hz or None, got {self.fmax!r}")
        if not _is_real(self.power) or not self.power > 0:
            raise ConfigError(f"MelConfig.power must be > 0, got {self.power!r}")
        if not _is_real(self.amin) or not self.amin > 0:
            raise ConfigError(f"MelConfig.amin must be > 0, got {self.amin!r}")

    def n_frames(self, n_samples: int) -> int:
        """Frames of a signal of ``n_samples`` samples (librosa's count)."""
        padded = n_samples + 2 * (self.n_fft // 2) if self.center else n_samples
        return 1 + (padded - self.n_fft) // self.hop_length if padded >= self.n_fft else 0


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


# The thesis setting: 44.1 kHz, n_fft 512 (11.6 ms Hann), hop 128 (2.9 ms), 86 mel bands.
THESIS = MelConfig()
# librosa.feature.melspectrogram's defaults.
LIBROSA_DEFAULT = MelConfig(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128)


@lru_cache(maxsize=16)
def _mel_blocks(config: MelConfig) -> tuple[tuple[int, int, int, int, torch.Tensor], ...]:
    """librosa's filterbank cut into blocks ``(band0, band1, bin0, bin1, weights)``.

    Each mel band is non-zero over a few FFT bins only (2% of the matrix at the thesis
    setting), so the bands are split into ``MEL_GROUPS`` equal groups of consecutive bands and
    each group is multiplied with just the bins it covers: 26% of the dense matmul's work. ``weights`` is
    ``basis[band0:band1, bin0:bin1].T`` [shape=(bin1 - bin0, band1 - band0), float32].
    """
    basis = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                fmin=config.fmin, fmax=config.fmax)
    edges = np.linspace(0, config.n_mels, min(MEL_GROUPS, config.n_mels) + 1).round().astype(int)
    blocks = []
    for band0, band1 in zip(edges[:-1], edges[1:]):
        bins = np.flatnonzero(basis[band0:band1].any(axis=0))
        bin0, bin1 = (bins[0], bins[-1] + 1) if len(bins) else (0, 1)  # empty filters: a zero block
        weights = torch.from_numpy(np.ascontiguousarray(basis[band0:band1, bin0:bin1].T))
        blocks.append((int(band0), int(band1), int(bin0), int(bin1), weights))
    return tuple(blocks)


@lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    """librosa's periodic Hann window [shape=(n_fft,), float32]."""
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


def _segment(y: np.ndarray, start: int, stop: int, config: MelConfig) -> np.ndarray:
    """Samples under frames ``[start, stop)``, zero-padded where a centred frame overhangs ``y``."""
    pad = config.n_fft // 2 if config.center else 0
    lo = start * config.hop_length - pad
    hi = (stop - 1) * config.hop_length + config.n_fft - pad
    seg = y[max(lo, 0) : min(hi, len(y))]
    if lo < 0 or hi > len(y):
        seg = np.pad(seg, (max(0, -lo), max(0, hi - len(y))))
    return seg


def _log_mel_frames(y: np.ndarray, config: MelConfig) -> np.ndarray:
    """``10 log10(max(amin, |STFT|^power @ basis))`` [shape=(frames, n_mels), float32] of ``y`` [shape=(n,)].

    Works through chunks of frames cut from ``y``: each frame is exactly the full STFT's, and
    the chunk's complex spectrum and power stay in cache through all the passes over them.
    torch does the FFT and the matmuls (MKL); the elementwise passes are numpy's, which is 2-3x
    faster on the strided complex abs and starts no thread team (each torch op with more than
    one thread synchronises its threads, costly when another process holds a core).
    """
    n_fft = config.n_fft
    n_frames = config.n_frames(len(y))
    out = np.empty((n_frames, config.n_mels), np.float32)
    window = _hann(n_fft)
    blocks = _mel_blocks(config)
    step = max(1, CHUNK_BYTES // (8 * (n_fft // 2 + 1)))
    for start in range(0, n_frames, step):
        c = min(step, n_frames - start)
        seg = _segment(y, start, start + c, config)
        assert len(seg) == (c - 1) * config.hop_length + n_fft, (len(seg), c)  # as_strided must stay inside
        frames = as_strided(seg, shape=(c, n_fft), strides=(config.hop_length * seg.strides[0], seg.strides[0]))
        spec = torch.fft.rfft(torch.from_numpy(frames * window)).numpy()  # (c, n_fft // 2 + 1) complex64
        power = torch.from_numpy(np.abs(spec) ** config.power)  # librosa's formula
        chunk = out[start : start + c]
        chunk_t = torch.from_numpy(chunk)
        for band0, band1, bin0, bin1, weights in blocks:
            torch.mm(power[:, bin0:bin1], weights, out=chunk_t[:, band0:band1])
        np.maximum(chunk, config.amin, out=chunk)
        np.log10(chunk, out=chunk)
        chunk *= 10.0
    return out


def _power_to_db(db: np.ndarray, config: MelConfig, peak: float | None = None) -> np.ndarray:
    """The rest of ``librosa.power_to_db`` on ``10 log10(max(amin, S))``, in place.

    With ``ref="max"`` librosa subtracts ``10 log10(max(amin, max(S)))``: that is ``max(db)``, as
    the logarithm is monotonic. ``peak`` is that maximum when ``db`` is a part of the signal's frames.
    """
    peak = db.max() if peak is None else np.float32(peak)
    if not np.isfinite(peak):
        raise MirformerError(f"mel spectrogram has a non-finite value ({peak}): the audio is not finite or loud "
                             "beyond float32")
    if config.ref == "max":
        db -= peak
        peak = np.float32(0.0)  # the new maximum
    if config.top_db is not None:
        np.maximum(db, peak - config.top_db, out=db)
    return db


def log_mel(y: np.ndarray, *, config: MelConfig = THESIS) -> np.ndarray:
    """Log-mel spectrogram in dB, before any normalisation.

    Equals ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, ...), ...).T`` with the
    parameters of ``config`` within 1e-3 dB (see the module docstring).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal at ``config.sample_rate`` Hz; cast to float32.
    config : MelConfig
        Spectrogram parameters (default: the thesis setting).

    Returns
    -------
    db : np.ndarray [shape=(frames, n_mels), dtype=float32]
        Mel band levels in dB. ``frames = config.n_frames(n)``: ``1 + n // hop_length`` when
        centred with an even ``n_fft``.

    Raises
    ------
    MirformerError
        If ``y`` is not one-dimensional, or not finite (NaN or infinite samples).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise MirformerError(f"log_mel expects mono audio of shape (n,), got shape {y.shape}")
    with torch.inference_mode():
        db = _log_mel_frames(np.asarray(y, dtype=np.float32), config)
    return _power_to_db(db, config) if len(db) else db


def _raw_frames_stream(blocks: Iterable[np.ndarray], config: MelConfig) -> Iterator[np.ndarray]:
    """``10 log10(max(amin, S))`` frames of a signal given as consecutive blocks: the frames of the
    whole signal, each computed once it has all its samples (a centred frame at either end sees
    the same zero padding)."""
    left = config.n_fft // 2 if config.center else 0  # frame t starts at sample t * hop - left
    samples = (np.asarray(block, np.float32) for block in blocks)
    uncentred = dataclasses.replace(config, center=False)
    for seg in frame_segments(samples, hop=config.hop_length, left=left, right=config.n_fft - left,
                              n_frames=config.n_frames, pad=True):
        yield _log_mel_frames(seg.data, uncentred)


def log_mel_stream(blocks: Callable[[], Iterable[np.ndarray]], *, config: MelConfig = THESIS) -> Iterator[np.ndarray]:
    """Log-mel of a long signal in bounded memory: ``log_mel`` of the whole, block by block.

    Parameters
    ----------
    blocks : callable
        Returns an iterator over the signal's consecutive blocks (mono float32 at
        ``config.sample_rate``, any lengths). Called twice when ``ref="max"`` or ``top_db`` needs
        the whole signal's peak before the first frame can be given.
    config : MelConfig

    Yields
    ------
    frames : np.ndarray [shape=(frames, n_mels), float32]
        Consecutive frames in dB; together, ``log_mel`` of the concatenated blocks.
    """
    peak = None
    if config.ref == "max" or config.top_db is not None:
        peak = max((float(f.max()) for f in _raw_frames_stream(blocks(), config) if len(f)), default=0.0)
    for frames in _raw_frames_stream(blocks(), config):
        yield _power_to_db(frames, config, peak)


@register_representation
class LogMel(Spectrogram):
    """Log-mel spectrogram frames in dB [shape=(frames, n_mels)], stored as ``dtype``.

    Parameters
    ----------
    config : MelConfig
        Spectrogram parameters (default: the thesis setting, ``THESIS``).
    dtype : {"float32", "float16"}
        How the feature store keeps the frames (computed in float32 either way); float16 halves
        the store, rounding values within 64 dB of 0 by at most 1/64 dB (1/32 dB up to 128 dB).
    **fields
        Instead of ``config``: ``MelConfig`` fields, e.g. ``LogMel(n_mels=64)``.
    """

    name, input_name, label, config_key, config_class = "mel", "mel", "log-mel", "mel", MelConfig

    def __init__(self, config: MelConfig | None = None, *, dtype: str = "float32", **fields):
        if config is not None and fields:
            raise ConfigError(f"LogMel takes a MelConfig or its fields, not both; got fields {sorted(fields)}")
        if config is None:
            known = {f.name for f in dataclasses.fields(MelConfig)}
            unknown = sorted(set(fields) - known)
            if unknown:
                raise ConfigError(f"unknown MelConfig field(s) {unknown}; known: {sorted(known)}")
            config = MelConfig(**fields)
        super().__init__(config, dtype=dtype)
        self.layout = Layout(dim=config.n_mels)

    @classmethod
    def default_config(cls) -> MelConfig:
        # The thesis setting in dB against each clip's peak: a clip's level does not shift its frames.
        return MelConfig(ref="max")

    def config_dict(self) -> dict:
        d = {**dataclasses.asdict(self.config), "version": MEL_VERSION}
        if self.dtype != np.float32:  # float16 stores are stores of their own; float32 keys stay as they were
            d["dtype"] = self.dtype.name
        return d

    def encode(self, y: np.ndarray) -> np.ndarray:
        return log_mel(y, config=self.config)

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        return log_mel_stream(blocks, config=self.config)

    def n_frames(self, n_samples: int) -> int:
        return self.config.n_frames(n_samples)

    def times(self, n_frames: int) -> np.ndarray:
        """Centre of each frame's window in seconds [shape=(n_frames,)]."""
        offset = 0 if self.config.center else self.config.n_fft / 2
        return (np.arange(n_frames) * self.config.hop_length + offset) / self.sample_rate

    def __repr__(self) -> str:
        return f"LogMel({self.config})"
