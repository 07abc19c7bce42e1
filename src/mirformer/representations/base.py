"""What a representation declares, and the registry that names them.

A representation turns mono audio at its own sample rate into frames: continuous vectors, or
discrete ids of one or more codebooks. It knows nothing of labels, models or training. Each one
is one registered class in its own file of this package, declaring:

- its config (``config_class``, reached in a comparison's config tree at ``config_key``) and how
  it is built from it (``from_config``), checked before any heavy work (``check_config``);
- its feature-store key (``config_dict``: every parameter that changes the output);
- how it encodes audio whole (``encode``) and streamed block by block (``encode_stream``, equal
  to ``encode`` of the whole signal), its frame rate and time stamps;
- its feature ``layout`` (continuous frames of ``dim`` values, or ids with a vocabulary and a
  number of codebooks) and storage ``dtype``;
- its default scaling and the statistics it fits on a training split (``fit_statistics``);
- what it writes into an encoder file and reads back (``to_block`` / ``from_block``);
- for an external representation (another's encoder, precomputed embeddings), the prefix a
  ``--representation`` spec names it by (``spec_prefix``, see ``parse_spec``), how many layers a
  frame stacks (``layers``), and how one track is read (``read``) and checked (``check_tracks``).

The pipeline, the encoder file, ``embed`` and ``mirformer.hear`` use only this interface.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import yaml

from mirformer.audio import load_audio
from mirformer.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """What one frame holds: ``dim`` continuous values (``dim == 0``: one scalar, as a waveform
    sample), or, when ``vocab > 0``, the ids of ``codebooks`` codebooks, each in [0, vocab)."""

    dim: int = 0
    vocab: int = 0
    codebooks: int = 1

    @property
    def discrete(self) -> bool:
        return self.vocab > 0

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """The shape of one stored frame: () for a scalar or one id, (dim,) or (codebooks,)."""
        if self.discrete:
            return () if self.codebooks == 1 else (self.codebooks,)
        return (self.dim,) if self.dim else ()


@dataclass
class Statistics:
    """What a representation fitted on a training split: ``(x - mean) / std`` per dimension scales
    its frames (None: unscaled), ``counts`` is how often each id occurs (discrete layouts)."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    counts: np.ndarray | None = None


class BuildContext(Protocol):
    """What a representation may need from the dataset it is built for (``from_config``)."""

    dataset_id: str  # the dataset's identity (name and root)
    tracks: dict[str, list]  # its tracks by split
    progress: bool

    def log(self, message: str) -> None: ...

    def train_tokenizer(self, train_config) -> tuple[Path, dict]:
        """Train a VQ-VAE (``train_config``: ``VQVAETrainConfig``) on the training split; return its
        checkpoint (the official Jukebox layout) and a summary of its fit."""


# The scalings a model kind may ask for (``InputSpec.scaling``), beside the representation's own
# default: "standardise" (per dimension, with the training split's mean and std), "none", and
# "paper" (dB x 0.01: Patchifier's, so log-mel in dB lies in [-1, 1]).
PAPER_SCALE = 100.0
SCALINGS = ("standardise", "none", "paper")


class Representation(ABC):
    """Audio -> frames. Subclasses set the class attributes and implement the abstract methods.

    Class attributes
    ----------------
    name : str
        Registry name and feature-store folder prefix (``"mel"``, ``"vq-tokens"``).
    input_name : str
        A comparison's name for the input it feeds (``results.json``'s ``representations``).
    label : str
        How reports name it in a question ("does the log-mel model beat the token models?").
    discrete : bool
        Whether its frames are ids (``layout.vocab > 0``), known before it is built.
    config_key : str or None
        Where its config lives in a comparison's config tree (None: not configured there).
    config_class : type or None
        The dataclass of that config.
    default_scaling : str
        One of ``SCALINGS``.
    spec_prefix : str or None
        How a ``--representation`` spec names it (``"hf"`` in ``hf:models/hubert,layer=all``);
        the value after the colon sets the config field ``spec_field``.
    frames_from_samples : bool
        Whether it encodes the track's audio, so that ``n_frames`` follows from the audio's length
        (False for precomputed frames, which only their files know and no change of the audio
        reaches: they cost no extraction and are not scored on deformed clips).

    Attributes
    ----------
    sample_rate : int
        Rate in Hz the audio must have before ``encode``.
    frames_per_second : float
    layout : Layout
    dtype : numpy dtype
        How the feature store keeps the frames.
    layers : int
        Layers a frame stacks: ``dim = layers * width``, the first layer's ``width`` values first
        (1 for a single representation; an encoder's every hidden state with ``layer: all``).
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()  # older names, as encoder files of earlier versions give them
    input_name: ClassVar[str]
    label: ClassVar[str]
    discrete: ClassVar[bool] = False
    config_key: ClassVar[str | None] = None
    config_class: ClassVar[type | None] = None
    default_scaling: ClassVar[str] = "standardise"
    spec_prefix: ClassVar[str | None] = None
    spec_field: ClassVar[str] = "path"
    frames_from_samples: ClassVar[bool] = True

    sample_rate: int
    frames_per_second: float
    layout: Layout
    dtype: np.dtype = np.dtype(np.float32)
    layers: int = 1

    # ---- configuration ------------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> Any:
        """The config a comparison starts from (only for representations with a ``config_key``)."""
        raise NotImplementedError(f"{cls.name} has no comparison config")

    @classmethod
    def check_config(cls, config) -> None:
        """Raise ``ConfigError`` for a config that cannot work, before any data is built."""

    @classmethod
    def frame_rate(cls, config) -> float:
        """Frames per second of the representation ``config`` describes, known before it is built
        (window lengths are checked against the models before any heavy work)."""
        raise NotImplementedError(f"{cls.name} has no comparison config")

    @classmethod
    def needs_training(cls, config) -> bool:
        """Whether ``from_config`` trains something first (so a store cannot be filled ahead)."""
        return False

    @classmethod
    def from_config(cls, config, *, context: BuildContext, dtype: str = "float32") -> Representation:
        """The representation ``config`` describes, for the dataset of ``context``; ``dtype``: how
        continuous frames are stored ("float32" or "float16")."""
        raise NotImplementedError(f"{cls.name} cannot be built from a comparison config")

    def settings(self):
        """The config (of ``config_class``) this representation equals, or None when it cannot be
        compared with one (a tokenizer embedded in an encoder file)."""
        return None

    def about(self) -> dict | None:
        """What a report says of this representation beyond its config (a tokenizer's source), or None."""
        return None

    # ---- encoding -----------------------------------------------------------------------------
    @abstractmethod
    def config_dict(self) -> dict:
        """Every parameter that changes the output (hashed into the feature-store key)."""

    @abstractmethod
    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio ``y`` [shape=(n,)] at ``sample_rate`` -> frames [shape=(n_frames(n), *frame_shape)]."""

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        """The frames of a long signal, in bounded memory: ``encode`` of the whole, block by block.

        ``blocks`` returns an iterator over the signal's consecutive blocks (mono float32 at
        ``sample_rate``, any lengths); it may be called more than once. This default holds the
        whole signal; representations that can stream override it.
        """
        parts = [np.asarray(b, np.float32) for b in blocks()]
        yield self.encode(np.concatenate(parts) if parts else np.zeros(0, np.float32))

    @abstractmethod
    def n_frames(self, n_samples: int) -> int:
        """Frames ``encode`` returns for ``n_samples`` samples (computed, not by encoding)."""

    def times(self, n_frames: int) -> np.ndarray:
        """Centre of each frame in seconds [shape=(n_frames,)]: by default, of its hop."""
        return (np.arange(n_frames) + 0.5) / self.frames_per_second

    @property
    def dim(self) -> int:
        """Values per continuous frame (0 for ids and scalars)."""
        return self.layout.dim

    # ---- tracks of a dataset ------------------------------------------------------------------
    def check_tracks(self, tracks: list) -> None:
        """Raise ``ConfigError`` naming every track (``id``, ``path``) this representation cannot
        read, before any is stored; nothing to check for a representation of the audio itself."""

    def read(self, track) -> tuple[np.ndarray, int]:
        """The frames of one track and its length in samples at ``sample_rate``: its audio file
        decoded and encoded. Raises ``AudioError`` for a file that cannot be used."""
        y = load_audio(track.path, sr=self.sample_rate)
        return self.encode(y), len(y)

    # ---- statistics ---------------------------------------------------------------------------
    def fit_statistics(self, store, train_ids: list[str], *, scaling: str | None = None) -> Statistics:
        """The scaling ``scaling`` (None: ``default_scaling``) fitted on the stored frames of
        ``train_ids`` (a ``FeatureStore`` of this representation)."""
        scaling = scaling or self.default_scaling
        if scaling not in SCALINGS:
            raise ConfigError(f"{self.name}: scaling must be one of {SCALINGS}, got {scaling!r}")
        if scaling != "none" and self.layout.discrete:
            raise ConfigError(f"{self.name} gives discrete ids, which cannot be scaled ({scaling!r})")
        if scaling == "paper":
            return Statistics(np.zeros(self.dim, np.float32), np.full(self.dim, PAPER_SCALE, np.float32))
        if scaling == "standardise":
            return Statistics(*store.normalisation(train_ids))
        return Statistics()

    def summarise(self, statistics: Statistics) -> dict:
        """What the report says of the fitted statistics (a tokenizer's code usage); {} by default."""
        return {}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        """The report's section (markdown lines) on an input's ``about`` (``about()``, its window
        and ``summarise``); none by default."""
        return []

    # ---- the encoder file ---------------------------------------------------------------------
    @abstractmethod
    def to_block(self) -> dict:
        """Everything needed to rebuild this representation away from its files (tensors and
        primitives only, so ``torch.load(weights_only=True)`` reads it)."""

    @classmethod
    @abstractmethod
    def from_block(cls, block: dict, *, source: str) -> Representation:
        """Rebuild from ``to_block``'s dict; ``source`` names where it was read (for messages)."""


class Spectrogram(Representation):
    """A representation computed from its config alone, at ``config.sample_rate`` with a hop of
    ``config.hop_length`` (log-mel, constant-Q): built from the config, written into an encoder file
    as it, stored as float32 or float16. Subclasses set ``config_class`` and ``config_key``."""

    DTYPES = ("float32", "float16")

    def __init__(self, config=None, *, dtype: str = "float32"):
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__} expects a {self.config_class.__name__}, got {config!r}")
        if dtype not in self.DTYPES:
            raise ConfigError(f"{type(self).__name__} dtype must be one of {self.DTYPES}, got {dtype!r}")
        # float16 halves a feature store; dB values within 64 dB of 0 round by at most 1/64 dB.
        self.config, self.dtype = config, np.dtype(dtype)
        self.sample_rate = config.sample_rate
        self.frames_per_second = self.frame_rate(config)

    @classmethod
    def default_config(cls):
        return cls.config_class()

    @classmethod
    def frame_rate(cls, config) -> float:
        return config.sample_rate / config.hop_length

    @classmethod
    def from_config(cls, config, *, context=None, dtype: str = "float32") -> Spectrogram:
        return cls(config, dtype=dtype)

    def settings(self):
        return self.config

    def to_block(self) -> dict:
        return {self.config_key: dataclasses.asdict(self.config), "dtype": self.dtype.name}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> Spectrogram:
        return cls(cls.config_class(**block[cls.config_key]), dtype=block["dtype"])


def check_settings(config, *, positive_ints: tuple[str, ...], db_ref: str | None = None,
                   top_db: str | None = None) -> None:
    """Checks every spectrogram-like config makes: ``positive_ints`` are integers > 0; ``db_ref``
    names a dB reference, "1.0" (absolute) or "max" (each clip's peak; the number 1.0, as YAML
    overrides give it, becomes "1.0"); ``top_db`` names a dynamic range >= 0 or None."""
    kind = type(config).__name__
    for name in positive_ints:
        value = getattr(config, name)
        if not isinstance(value, Integral) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{kind}.{name} must be a positive integer, got {value!r}")
    if db_ref is not None:
        ref = getattr(config, db_ref)
        if isinstance(ref, Real) and not isinstance(ref, bool) and ref == 1.0:
            object.__setattr__(config, db_ref, "1.0")
        if getattr(config, db_ref) not in ("1.0", "max"):
            raise ConfigError(f"{kind}.{db_ref} must be one of ('1.0', 'max'), got {ref!r}")
    if top_db is not None:
        value = getattr(config, top_db)
        if value is not None and (not isinstance(value, Real) or isinstance(value, bool) or not value >= 0):
            raise ConfigError(f"{kind}.{top_db} must be >= 0 or None, got {value!r}")


REPRESENTATIONS: dict[str, type[Representation]] = {}


def register_representation(cls):
    """Class decorator: make a representation available by its ``name``."""
    REPRESENTATIONS[cls.name] = cls
    return cls


def parse_spec(spec: str) -> tuple[type[Representation], Any]:
    """A ``--representation`` spec -> (its class, its config).

    ``PREFIX:VALUE[,KEY=VALUE...]``: the representation whose ``spec_prefix`` is PREFIX, VALUE its
    ``spec_field`` and each KEY another field of its config, read as YAML (``layer=all``,
    ``layer=3``, ``trust_remote_code=true``). Example: ``hear:mirformer.hear,weights=enc.pt``.
    """
    prefixes = {cls.spec_prefix: cls for cls in REPRESENTATIONS.values() if cls.spec_prefix}
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in prefixes or not rest:
        raise ConfigError(f"representation spec {spec!r} must be PREFIX:VALUE[,KEY=VALUE...] with PREFIX one of "
                          f"{sorted(prefixes)}, e.g. hf:models/hubert,layer=all")
    cls = prefixes[prefix]
    value, *options = rest.split(",")
    types = {f.name: f.type for f in dataclasses.fields(cls.config_class)}
    fields = set(types)
    settings = {cls.spec_field: value}
    for option in options:
        key, eq, text = option.partition("=")
        if not eq or key not in fields or key == cls.spec_field:
            raise ConfigError(f"representation spec {spec!r}: {option!r} is not KEY=VALUE with KEY one of "
                              f"{sorted(fields - {cls.spec_field})}")
        settings[key] = text if types[key] in (str, "str") else yaml.safe_load(text)  # a path stays text
    return cls, cls.config_class(**settings)


def representation_class(name: str) -> type[Representation]:
    """The representation registered as ``name`` (or under an older name, one of its ``aliases``)."""
    for cls in REPRESENTATIONS.values():
        if name == cls.name or name in cls.aliases:
            return cls
    raise ConfigError(f"unknown representation {name!r}; known: {sorted(REPRESENTATIONS)}")
