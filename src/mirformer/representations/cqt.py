"""Constant-Q spectrogram in dB: librosa's ``cqt``, log-frequency bins a semitone (or a fraction of
one) apart, the time-frequency layout much of MIR uses for pitch and harmony.

``librosa.amplitude_to_db(np.abs(librosa.cqt(y, sr=..., hop_length=..., fmin=..., n_bins=...,
bins_per_octave=...)), ref=1.0 or np.max, top_db=...)``, transposed to (frames, bins). A model
that reads continuous frames reads it like log-mel: ``--set spectroformer.input=cqt``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import librosa
import numpy as np

from mirformer.errors import ConfigError, MirformerError
from mirformer.representations.base import Layout, Spectrogram, check_settings, register_representation

CQT_VERSION = "1"


@dataclass(frozen=True)
class CQTConfig:
    """Parameters of the constant-Q spectrogram (librosa's names and meanings).

    Parameters
    ----------
    sample_rate : int > 0
        Sample rate of the input in Hz.
    hop_length : int > 0
        Samples between frames; a multiple of ``2 ** (octaves - 1)`` (librosa downsamples by
        octave). Frame ``t`` is centred on sample ``t * hop_length``.
    fmin : float > 0
        Centre of the lowest bin in Hz (default C1, 32.7 Hz).
    n_bins : int > 0
        Number of bins; the highest lies below the Nyquist frequency.
    bins_per_octave : int > 0
        Bins per octave (12: one per semitone).
    ref : {"1.0", "max"}
        dB reference: 1.0 (absolute level) or the clip's largest magnitude (0 dB at the peak).
    top_db : float >= 0 or None
        Clip the output at ``max - top_db`` dB (None: no clipping).
    """

    sample_rate: int = 22050
    hop_length: int = 512
    fmin: float = 32.70319566257483  # C1
    n_bins: int = 84  # seven octaves, C1 to B7
    bins_per_octave: int = 12
    ref: str = "max"
    top_db: float | None = 80.0

    def __post_init__(self):
        check_settings(self, positive_ints=("sample_rate", "hop_length", "n_bins", "bins_per_octave"), db_ref="ref",
                       top_db="top_db")
        top = self.fmin * 2 ** ((self.n_bins - 1) / self.bins_per_octave)
        if not 0 < self.fmin or top >= self.sample_rate / 2:
            raise ConfigError(f"CQTConfig: bins from fmin={self.fmin:g} Hz reach {top:.0f} Hz, at or above the "
                              f"Nyquist frequency {self.sample_rate / 2:g} Hz; lower fmin or n_bins")
        octaves = int(np.ceil(self.n_bins / self.bins_per_octave))
        if self.hop_length % 2 ** (octaves - 1):
            raise ConfigError(f"CQTConfig.hop_length={self.hop_length} must be a multiple of 2**{octaves - 1} for "
                              f"{octaves} octaves")


@register_representation
class CQT(Spectrogram):
    """Constant-Q magnitudes in dB [shape=(frames, n_bins)], stored as ``dtype`` ("float32" or
    "float16"). Streamed encoding decodes the signal whole first: the lowest bins' filters span
    about half a second, and librosa's octave-by-octave downsampling is not written for blocks."""

    name, input_name, label, config_key, config_class = "cqt", "cqt", "constant-Q", "cqt", CQTConfig

    def __init__(self, config: CQTConfig | None = None, *, dtype: str = "float32"):
        super().__init__(config, dtype=dtype)
        self.layout = Layout(dim=self.config.n_bins)

    def config_dict(self) -> dict:
        return {**dataclasses.asdict(self.config), "version": CQT_VERSION, "dtype": self.dtype.name}

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> dB (1 + n // hop_length, n_bins) float32."""
        c = self.config
        y = np.asarray(y, np.float32)
        if len(y) == 0:
            return np.zeros((0, c.n_bins), np.float32)
        magnitude = np.abs(librosa.cqt(y, sr=c.sample_rate, hop_length=c.hop_length, fmin=c.fmin, n_bins=c.n_bins,
                                       bins_per_octave=c.bins_per_octave))
        if not np.all(np.isfinite(magnitude)):
            raise MirformerError("constant-Q magnitudes are not finite: the audio is not finite")
        db = librosa.amplitude_to_db(magnitude, ref=np.max if c.ref == "max" else 1.0, top_db=c.top_db)
        return np.ascontiguousarray(db.T, dtype=np.float32)

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.config.hop_length if n_samples else 0

    def times(self, n_frames: int) -> np.ndarray:
        """Centre of each frame in seconds [shape=(n_frames,)]."""
        return np.arange(n_frames) * self.config.hop_length / self.sample_rate
