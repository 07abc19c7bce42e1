"""Low-pass filtering: ``lowpass:hz=4000`` (cut-off in Hz, below half the sample rate; lower is stronger).

A 4th-order Butterworth (scipy) run forwards and backwards: zero phase, so the output stays
aligned with the input, and the magnitude response squared: -6 dB at the cut-off, -54 dB one
octave above at 4 kHz / 44.1 kHz, flat (0.00 dB) two octaves below. pedalboard's filters are not
real low-passes by that measure: LowpassFilter (first order) is -7.6 dB one octave above the
cut-off, LadderFilter LPF24 -27 dB and already -9 dB at the cut-off (``benchmarks/bench_deform.py``).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

from mirformer.deformations.base import Family, installed, number, register_family
from mirformer.errors import ConfigError

ORDER = 4  # of one pass; the two passes together fall at 8 x 6 = 48 dB per octave


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] low-passed at ``value`` Hz (-6 dB there), [shape=(n,)]."""
    if value >= sr / 2:
        raise ConfigError(f"low-pass cut-off {number(value)} Hz must be below half the sample rate "
                          f"({number(sr / 2)} Hz at {sr} Hz)")
    return sosfiltfilt(butter(ORDER, value, fs=sr, output="sos"), y)


register_family(Family(
    name="lowpass", param="hz", unit="Hz", description="zero-phase Butterworth low-pass, -6 dB at this cut-off",
    low=20.0, high=20000.0, settings=f"butter{ORDER}-filtfilt", library=installed("scipy"), apply=apply,
    strength=lambda hz: -hz, label=lambda hz: f"low-pass {number(hz)} Hz",
))
