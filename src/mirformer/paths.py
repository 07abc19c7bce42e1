"""Where mirformer writes: one home directory for datasets, feature caches and runs."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MIRFORMER_HOME"


def home() -> Path:
    """The mirformer home: ``$MIRFORMER_HOME`` if set, else ``~/.cache/mirformer``."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mirformer"


def datasets_dir() -> Path:
    return home() / "datasets"


def features_dir() -> Path:
    return home() / "features"


def runs_dir() -> Path:
    return home() / "runs"
