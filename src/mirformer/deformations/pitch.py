"""Pitch shift keeping time: ``pitch:semitones=-1,1`` (stronger the further from 0).

Rubber Band's offline engine through ``pedalboard.time_stretch`` (stretch 1, the shift in
semitones). Not ``pedalboard.PitchShift``, Rubber Band's real-time engine: on a 440 Hz sine it
missed the asked pitch by 20.5 cents at 44.1 kHz (23.5 at 48 kHz), the offline engine by under
0.1 (``benchmarks/bench_deform.py``). Formants move with the pitch, as in a resampled recording
and in audiomentations' pitch shifts (pedalboard's default keeps them: slower, and more smearing
in a +1/-1 round trip on notes).
"""

from __future__ import annotations

import numpy as np
import pedalboard
from librosa.util import fix_length

from mirformer.deformations.base import Family, installed, number, register_family


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] shifted by ``value`` semitones, [shape=(n,)]."""
    shifted = pedalboard.time_stretch(y, sr, stretch_factor=1.0, pitch_shift_in_semitones=value,
                                       preserve_formants=False)[0]
    return fix_length(shifted, size=len(y))  # Rubber Band keeps the length; this makes it a promise


def label(semitones: float) -> str:
    return f"pitch {number(semitones, sign=True)} semitone{'' if abs(semitones) == 1 else 's'}"


register_family(Family(
    name="pitch", param="semitones", unit="semitones", description="pitch shift in semitones, duration kept",
    low=-12.0, high=12.0, settings="offline-formants-move", library=installed("pedalboard"), apply=apply,
    strength=abs, label=label,
))
