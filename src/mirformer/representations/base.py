"""The one interface every representation implements, and the registry that names them.

A representation turns mono audio at its own sample rate into a (frames, dim) float array (or
(frames,) int tokens). It knows nothing of labels or training. Its ``config_dict`` is hashed by
the feature store, so any parameter that changes the output must appear there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar

import numpy as np

from mirformer.errors import ConfigError


class Representation(ABC):
    """Audio -> feature frames.

    Attributes
    ----------
    name : str
        Registry name (``"mel"``, ...).
    sample_rate : int
        Rate in Hz the audio must have before ``encode``.
    frames_per_second : float
        Output frames per second of audio.
    dim : int
        Feature dimension of one frame.
    dtype : numpy dtype
        dtype of the stored features (float16/float32 features, int16 tokens).
    """

    name: ClassVar[str]
    sample_rate: int
    frames_per_second: float
    dim: int
    dtype: np.dtype = np.dtype(np.float32)

    @abstractmethod
    def config_dict(self) -> dict:
        """Every parameter that changes the output (hashed into the feature-store key)."""

    @abstractmethod
    def encode(self, y: np.ndarray) -> np.ndarray:
        """Encode mono audio ``y`` [shape=(n,)] at ``sample_rate`` to [shape=(frames, dim)]."""

    @abstractmethod
    def n_frames(self, n_samples: int) -> int:
        """Frames ``encode`` returns for ``n_samples`` samples (computed, not by encoding)."""


REPRESENTATIONS: dict[str, Callable[..., Representation]] = {}


def register_representation(cls):
    """Class decorator: make a representation available by its ``name``."""
    REPRESENTATIONS[cls.name] = cls
    return cls


def get_representation(name: str, **params) -> Representation:
    if name not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {name!r}; known: {sorted(REPRESENTATIONS)}")
    return REPRESENTATIONS[name](**params)
