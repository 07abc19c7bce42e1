"""One exception family for everything mirformer refuses, each naming the bad value."""

from __future__ import annotations

from pathlib import Path


class MirformerError(Exception):
    """Base class of all errors raised by mirformer."""


class ConfigError(MirformerError, ValueError):
    """An unknown key, a bad value or incompatible options in a configuration."""


class AudioError(MirformerError):
    """An audio file that cannot be used: missing, empty, undecodable, silent or too short.

    Long jobs catch this per file, skip the file and report ``path`` and ``cause``.
    """

    def __init__(self, path: str | Path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class CheckpointError(MirformerError):
    """A checkpoint that cannot be loaded safely or does not match the model."""
