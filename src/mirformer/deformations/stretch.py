"""Time stretch keeping pitch: ``stretch:rate=0.9,1.1`` (rate > 1 faster and shorter; stronger the
further the rate from 1, on a log scale so that 0.5 and 2 are equally strong).

Rubber Band's offline engine through ``pedalboard.time_stretch``: the output has
``round(n / rate)`` samples.
"""

from __future__ import annotations

import math

import numpy as np
import pedalboard

from mirformer.deformations.base import Family, installed, number, register_family


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] played ``value`` times as fast, [shape=(about n / value,)]."""
    return pedalboard.time_stretch(y, sr, stretch_factor=value)[0]


register_family(Family(
    name="stretch", param="rate", unit="x", description="tempo change by this factor (>1 faster), pitch kept",
    low=0.5, high=2.0, library=installed("pedalboard"), apply=apply,
    strength=lambda rate: abs(math.log(rate)), label=lambda rate: f"time stretch x{number(rate)}",
))
