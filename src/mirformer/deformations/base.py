"""What a deformation family declares, one setting of one (``Deformation``), and the registry.

A family (noise, gain, MP3, ...) is one ``Family`` registered by its own module in this package:
the spec's parameter and unit, the valid values, the library (with its version) that implements
it, how strong a value is, and the function that deforms audio. A setting is a family and one
value; its ``name`` and ``key`` are safe in file names and cache keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from mirformer.errors import ConfigError, MirformerError


def installed(distribution: str) -> str:
    """``"name-version"`` of an installed distribution, e.g. ``"pedalboard-0.9.26"``."""
    return f"{distribution}-{version(distribution)}"


def number(value: float, *, sign: bool = False) -> str:
    """``value`` as written in names and labels: ``20``, ``0.9``, ``-1`` (``+1`` with ``sign``)."""
    return format(value + 0.0, "+.10g" if sign else ".10g")  # + 0.0 turns -0.0 into 0


@dataclass(frozen=True)
class Family:
    """One kind of deformation, declared once by its module.

    Attributes
    ----------
    name : str
        The spec's family name, ``"noise"`` in ``noise:snr=20``.
    param : str
        The spec's parameter name, ``"snr"``.
    unit : str
        Unit of the value: ``"dB"``, ``"kbit/s"``, ``"Hz"``, ...
    description : str
        One line for help texts.
    low, high : float
        Valid values lie in ``[low, high]``.
    library : str
        What implements it, with version (``installed(...)``): it goes into every setting's cache key.
    apply : callable
        ``apply(y, *, sr, value, seed) -> y2``: mono float32 [shape=(n,)] at ``sr`` Hz to mono
        [shape=(n,)] (time stretch: [shape=(about n / value,)]); ``seed`` matters only to random families.
    strength : callable
        ``strength(value) -> float``, larger for a stronger deformation (for sorting).
    label : callable
        ``label(value) -> str`` for tables: ``"noise 20 dB SNR"``.
    choices : tuple of float
        When not empty, the only valid values (MPEG bitrates), all within ``[low, high]``.
    settings : str
        The fixed choices inside the family that shape its output (a filter's order, a codec's
        quality), as a key-safe string: part of every setting's cache key, like ``library``.
    """

    name: str
    param: str
    unit: str
    description: str
    low: float
    high: float
    library: str
    apply: Callable[..., np.ndarray]
    strength: Callable[[float], float]
    label: Callable[[float], str]
    choices: tuple[float, ...] = ()
    settings: str = ""

    def valid(self) -> str:
        """The valid values in words, for error messages."""
        if self.choices:
            return f"one of {', '.join(number(c) for c in self.choices)} {self.unit}"
        return f"from {number(self.low)} to {number(self.high)} {self.unit}"

    def problem(self, value: float) -> str | None:
        """Why ``value`` is not a valid setting, or None."""
        if not self.low <= value <= self.high or (self.choices and value not in self.choices):
            return f"{self.param}={number(value)} is out of range: {self.param} takes {self.valid()}"
        return None


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` available by its name (its module calls this once)."""
    assert family.name not in FAMILIES, f"deformation family {family.name!r} registered twice"
    FAMILIES[family.name] = family
    return family


def family_of(name: str) -> Family:
    """The registered family ``name``; ``ConfigError`` listing the known ones otherwise."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown deformation family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


@dataclass(frozen=True)
class Deformation:
    """One setting of one family: ``Deformation("noise", 20.0)`` is white noise at 20 dB SNR.

    Built by ``parse_deform`` from a spec; a value outside the family's range is a ``ConfigError``.
    """

    family: str
    value: float

    def __post_init__(self):
        object.__setattr__(self, "value", float(self.value) + 0.0)
        why = family_of(self.family).problem(self.value)
        if why:
            raise ConfigError(f"deformation {self.family}: {why}")

    @property
    def name(self) -> str:
        """File- and key-safe: ``"noise-snr=20"``, ``"pitch-semitones=-1"``, ``"mp3-kbps=64"``."""
        return f"{self.family}-{FAMILIES[self.family].param}={number(self.value)}"

    @property
    def label(self) -> str:
        """For tables: ``"noise 20 dB SNR"``, ``"MP3 64 kbit/s"``, ``"pitch -1 semitone"``."""
        return FAMILIES[self.family].label(self.value)

    @property
    def key(self) -> str:
        """Cache key: the name, the implementing library's version and the family's fixed settings
        (``"mp3-kbps=64@lameenc-1.9.0+libsndfile-1.2.2+q2"``), so audio made by another version or
        with other settings is never reused."""
        family = FAMILIES[self.family]
        return f"{self.name}@{family.library}" + (f"+{family.settings}" if family.settings else "")

    @property
    def strength(self) -> float:
        """Larger for a stronger deformation, within the family (for sorting)."""
        return float(FAMILIES[self.family].strength(self.value))

    def apply(self, y: np.ndarray, *, sr: int, seed: int) -> np.ndarray:
        """Deform one signal.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
            Mono audio at ``sr`` Hz (any float dtype; used as float32). Not modified.
        sr : int > 0
            Its sample rate in Hz (8000 to 96000 are supported).
        seed : int
            Seed of the random families (noise); the others ignore it.

        Returns
        -------
        y2 : np.ndarray [shape=(n,), float32]
            Finite, aligned with ``y``; for time stretch [shape=(about n / rate,)].
        """
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1 or len(y) == 0:
            raise MirformerError(f"{self.label}: expects mono audio of shape (n,) with n > 0, got shape {y.shape}")
        out = np.asarray(FAMILIES[self.family].apply(y, sr=int(sr), value=self.value, seed=int(seed)), np.float32)
        if out.ndim != 1 or not np.isfinite(out).all():
            raise MirformerError(f"{self.label} at {sr} Hz gave shape {out.shape} with "
                                 f"{np.count_nonzero(~np.isfinite(out))} non-finite samples")
        return out
