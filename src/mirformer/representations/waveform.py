"""Raw mono audio as a representation, so VQ-VAE training reads random crops from a memory map."""

from __future__ import annotations

import numpy as np

from mirformer.representations.base import Representation, register_representation


@register_representation
class Waveform(Representation):
    """Mono float32 samples at ``sample_rate`` (one "frame" per sample)."""

    name = "waveform"
    dim = 0

    def __init__(self, sample_rate: int = 22050):
        self.sample_rate = sample_rate
        self.frames_per_second = float(sample_rate)

    def config_dict(self) -> dict:
        return {"sample_rate": self.sample_rate}

    def encode(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def n_frames(self, n_samples: int) -> int:
        return n_samples
