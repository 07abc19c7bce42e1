"""A mirformer encoder's frozen states as a representation (``encoder:PATH[,layer=all]``): what
``mirformer embed`` and ``mirformer.hear`` give, one vector per encoder position (a frame, a
token, or Patchifier's patch), from one layer or every layer stacked, so a probe reads a
mirformer encoder exactly as it reads another's.

It sits above ``representations`` (it runs an encoder file's network through ``Embedder``) and
registers itself there when imported, as ``experiments.prepare`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np

from mirformer.embed import Embedder
from mirformer.encoder_file import read_encoder
from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.base import Layout, Representation, register_representation
from mirformer.representations.hear_module import file_sha256


@dataclass(frozen=True)
class EncoderStatesConfig:
    """An encoder file's states.

    Parameters
    ----------
    path : str
        An encoder file (``encoder.pt`` of ``mirformer pretrain`` or ``compare``).
    layer : int or "all"
        ``Encoder.layers``' index (0 the embedded input, -1 the output), or every layer stacked.
    batch_size : int
        Windows run at once (the states do not depend on it).
    """

    path: str = ""
    layer: int | str = -1
    batch_size: int = 16

    def __post_init__(self):
        if self.layer != "all" and (not isinstance(self.layer, Integral) or isinstance(self.layer, bool)):
            raise ConfigError(f"encoder states: layer must be a number or 'all', got {self.layer!r}")


@register_representation
class EncoderStates(Representation):
    """States [shape=(positions, layers * d_model)] of an encoder file's network, read in its
    evaluation windows without overlap from its own input (log-mel, tokens), scaled by its own
    statistics, at its input's sample rate."""

    name, input_name, label = "encoder-states", "encoder-states", "mirformer encoder states"
    config_class, spec_prefix = EncoderStatesConfig, "encoder"

    def __init__(self, config: EncoderStatesConfig, *, dtype: str = "float32"):
        self.config, self.dtype = config, np.dtype(dtype)
        try:
            self.file = read_encoder(config.path)
        except CheckpointError as e:
            raise ConfigError(str(e)) from None
        self.embedder = Embedder(self.file, batch_size=config.batch_size)
        self.embedder.check(layer=None if config.layer == "all" else config.layer, pooling="none", hop=None)
        self.sha256 = file_sha256(config.path)
        rep, e = self.file.representation, self.embedder
        self.sample_rate = rep.sample_rate
        self.frames_per_second = rep.frames_per_second / e.per_position
        self.layers = e.n_layers + 1 if config.layer == "all" else 1
        self.layout = Layout(dim=self.layers * e.dim)

    @classmethod
    def check_config(cls, config: EncoderStatesConfig) -> None:
        if not Path(config.path).is_file():
            raise ConfigError(f"encoder states: {config.path or '(no path)'} is not an encoder file")

    @classmethod
    def frame_rate(cls, config: EncoderStatesConfig) -> float:
        return cls(config).frames_per_second

    @classmethod
    def from_config(cls, config: EncoderStatesConfig, *, context=None, dtype: str = "float32") -> EncoderStates:
        return cls(config, dtype=dtype)

    def settings(self) -> EncoderStatesConfig:
        return self.config

    def about(self) -> dict:
        return {"encoder": str(Path(self.config.path).resolve()), "sha256": self.sha256, "kind": self.file.kind,
                "layer": self.config.layer, "layers": self.embedder.n_layers + 1}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        which = "every layer" if about["layer"] == "all" else f"layer {about['layer']}"
        return ["## Encoder states", "",
                f"The probes read the frozen states ({which} of {about['layers']}) of the {about['kind']} encoder "
                f"`{about['encoder']}` (SHA-256 `{about['sha256'][:12]}`).", ""]

    def config_dict(self) -> dict:
        return {"sha256": self.sha256, "layer": self.config.layer}

    def encode(self, y: np.ndarray) -> np.ndarray:
        layer = None if self.config.layer == "all" else self.config.layer
        values = self.embedder.embed([self.embedder.frames_of(y)], layer=layer, pooling="none").values
        return values.reshape(len(values), -1)

    def n_frames(self, n_samples: int) -> int:
        return self.file.representation.n_frames(n_samples) // self.embedder.per_position

    def times(self, n_frames: int) -> np.ndarray:
        per = self.embedder.per_position
        return self.file.representation.times(n_frames * per).reshape(n_frames, per).mean(1)

    def to_block(self) -> dict:
        return {"encoder_states": {"path": str(Path(self.config.path).resolve()), "layer": self.config.layer,
                                   "sha256": self.sha256}}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> EncoderStates:
        b = block["encoder_states"]
        rep = cls(EncoderStatesConfig(path=b["path"], layer=b["layer"]))
        if rep.sha256 != b["sha256"]:
            raise CheckpointError(f"{source} refers to the encoder {b['path']} with SHA-256 {b['sha256']}; that file "
                                  f"now has {rep.sha256}")
        return rep
