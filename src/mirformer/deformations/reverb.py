"""Reverberation: ``reverb:room=0.5`` (room size 0 to 1; larger is stronger).

pedalboard.Reverb (Freeverb) at its default mix: wet 0.33, dry 0.4, damping 0.5, width 1. At
that mix the level on noise changes by -1.5 to -0.6 dB from room 0 to 1, so the setting adds
reverberation without being also a gain change. The tail beyond the input's end is dropped:
the output is as long as the input.
"""

from __future__ import annotations

import numpy as np
import pedalboard

from mirformer.deformations.base import Family, installed, number, register_family

WET, DRY, DAMPING = 0.33, 0.4, 0.5


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] in a room of size ``value``, [shape=(n,)]."""
    return pedalboard.Reverb(room_size=value, damping=DAMPING, wet_level=WET, dry_level=DRY, width=1.0)(y, sr)


register_family(Family(
    name="reverb", param="room", unit="0-1", description="Freeverb reverberation of this room size (wet 0.33, dry 0.4)",
    low=0.0, high=1.0, settings=f"wet{WET}-dry{DRY}-damping{DAMPING}", library=installed("pedalboard"), apply=apply,
    strength=lambda room: room, label=lambda room: f"reverb room {number(room)}",
))
