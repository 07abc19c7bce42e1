"""Deformations of audio for robustness tests: importing this package registers every family
module in it (noise, gain, MP3, pitch, time stretch, low-pass, clipping, reverb), so adding a
family is adding one file.

    >>> [d.name for d in parse_deform("noise:snr=20,10")]
    ['noise-snr=20', 'noise-snr=10']
"""

from mirformer.deformations.base import FAMILIES, Deformation, Family, register_family
from mirformer.deformations.spec import parse_deform, parse_deforms
from mirformer.registry import import_submodules

import_submodules(__name__)

__all__ = ["FAMILIES", "Deformation", "Family", "parse_deform", "parse_deforms", "register_family"]
