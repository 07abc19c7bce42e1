"""Learning-rate schedules."""

from __future__ import annotations


def inverse_sqrt_warmup(step: int, *, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The thesis' (and Vaswani et al.'s) rate: ``scale * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5)``.

    ``step`` counts from 0; ``s = step + 1`` so the first step has a small non-zero rate. Peaks at
    ``s = warmup`` with ``scale * (d_model * warmup)^-0.5`` (about 4e-4 for d_model 768, warmup 8000).
    """
    s = step + 1
    return scale * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)
