"""Opening datasets by name: importing this module registers every built-in loader."""

from __future__ import annotations

import inspect
from pathlib import Path

# Importing a loader registers it by its name.
from mirformer.datasets import (  # noqa: F401
    audio_folder,
    csv_manifest,
    emomusic,
    fma,
    folder,
    gtzan,
    jamendo,
    mtat,
    music21_styles,
)
from mirformer.datasets.base import DATASETS, Dataset
from mirformer.errors import ConfigError


def open_dataset(name: str, root: str | Path | None = None, *, workers: int | None = None,
                 progress: bool = True, **options) -> Dataset:
    """Construct dataset ``name`` at ``root`` with its dataset-specific ``options``.

    ``workers`` and ``progress`` are passed to loaders that build data (the rendered corpus).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    cls = DATASETS[name]
    params = inspect.signature(cls).parameters
    if root is None and params["root"].default is inspect.Parameter.empty:
        raise ConfigError(f"dataset {name!r} needs the folder you unpacked it to: pass --data-root DIR "
                          "(or --set data.root=DIR)")
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(f"dataset {name!r} takes no option(s) {unknown}; it takes {sorted(set(params) - {'root'})}")
    extra = {k: v for k, v in (("workers", workers), ("progress", progress)) if k in params}
    return cls(root, **options, **extra)
