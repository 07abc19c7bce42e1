"""Registries of declarations (datasets, representations, model kinds, tasks): a package whose
modules each register one declaration imports them all, so adding one is adding one file."""

from __future__ import annotations

import importlib
import pkgutil
import sys


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (each registers its declarations), in name order."""
    path = sys.modules[package].__path__
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{info.name}")
