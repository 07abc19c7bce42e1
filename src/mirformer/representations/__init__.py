"""Representations of audio: importing this package registers every representation module in it."""

from mirformer.registry import import_submodules
from mirformer.representations.base import REPRESENTATIONS, Layout, Representation, Statistics, representation_class

import_submodules(__name__)

__all__ = ["REPRESENTATIONS", "Layout", "Representation", "Statistics", "representation_class"]
