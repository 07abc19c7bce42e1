"""A level change: ``gain:db=-20`` (dB; stronger the further from 0).

No clipping or limiting: the deformed audio is stored as float, so a positive gain may take
samples past 1.0 and keeps them.
"""

from __future__ import annotations

import numpy as np
import pedalboard

from mirformer.deformations.base import Family, installed, number, register_family


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] scaled by ``value`` dB (pedalboard.Gain)."""
    return pedalboard.Gain(gain_db=value)(y, sr)


register_family(Family(
    name="gain", param="db", unit="dB", description="level change in dB, not clipped",
    low=-60.0, high=60.0, library=installed("pedalboard"), apply=apply,
    strength=abs, label=lambda db: f"gain {number(db, sign=True)} dB",
))
