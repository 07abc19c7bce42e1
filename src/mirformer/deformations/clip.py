"""Hard clipping below the clip's own peak: ``clip:db=-6`` (dB, < 0; lower is stronger).

The threshold is ``db`` below each clip's peak, not below full scale, so the same setting clips
a quiet and a loud recording alike.
"""

from __future__ import annotations

import numpy as np
import pedalboard

from mirformer.deformations.base import Family, installed, number, register_family


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] hard-clipped at ``value`` dB re its peak (pedalboard.Clipping)."""
    peak = float(np.max(np.abs(y)))
    if peak == 0:
        return y.copy()  # silence has nothing to clip
    return pedalboard.Clipping(threshold_db=20 * np.log10(peak) + value)(y, sr)


register_family(Family(
    name="clip", param="db", unit="dB", description="hard clipping this many dB below the clip's peak",
    low=-40.0, high=-0.1, library=installed("pedalboard"), apply=apply,
    strength=lambda db: -db, label=lambda db: f"clipping at {number(db)} dB re peak",
))
