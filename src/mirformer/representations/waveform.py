"""Raw mono audio as a representation, so VQ-VAE training reads random crops from a memory map."""

from __future__ import annotations

import numpy as np

from mirformer.representations.base import Layout, Representation, register_representation


@register_representation
class Waveform(Representation):
    """Mono float32 samples at ``sample_rate`` (one "frame" per sample)."""

    name, input_name, label = "waveform", "waveform", "waveform"
    layout = Layout()  # one scalar per frame
    default_scaling = "none"

    def __init__(self, sample_rate: int = 22050):
        self.sample_rate = sample_rate
        self.frames_per_second = float(sample_rate)

    def config_dict(self) -> dict:
        return {"sample_rate": self.sample_rate}

    def encode(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def encode_stream(self, blocks):
        for block in blocks():
            yield np.asarray(block, dtype=np.float32)

    def n_frames(self, n_samples: int) -> int:
        return n_samples

    def to_block(self) -> dict:
        return {"sample_rate": self.sample_rate}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> Waveform:
        return cls(block["sample_rate"])
