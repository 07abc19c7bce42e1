"""White Gaussian noise at a signal-to-noise ratio: ``noise:snr=20,10`` (dB; lower is stronger).

pedalboard has no noise generator, so this is mirformer's own ``add_noise`` (which the
invariance probe uses too): noise power is the signal's mean power over the whole clip less
``snr`` dB, drawn from a numpy Generator seeded per call. The key names numpy, whose generator
streams may change between versions.
"""

from __future__ import annotations

import numpy as np

from mirformer.deformations.base import Family, installed, number, register_family


def add_noise(y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """Add white Gaussian noise ``snr_db`` dB below the signal's mean power (one seed, one noise)."""
    power = float(np.mean(np.square(y, dtype=np.float64)))
    noise = np.random.default_rng(seed).standard_normal(len(y)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (y + noise).astype(y.dtype)


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] plus white noise ``value`` dB below its mean power (same ``seed``, same noise)."""
    return add_noise(y, snr_db=value, seed=seed)


register_family(Family(
    name="noise", param="snr", unit="dB", description="white Gaussian noise at this SNR to the clip's mean power",
    low=-20.0, high=80.0, library=installed("numpy"), apply=apply,
    strength=lambda snr: -snr, label=lambda snr: f"noise {number(snr)} dB SNR",
))
