"""One exception family for everything mirformer refuses, each naming the bad value."""

from __future__ import annotations

from pathlib import Path


class MirformerError(Exception):
    """Base class of all errors raised by mirformer."""


class ConfigError(MirformerError, ValueError):
    """An unknown key, a bad value or incompatible options in a configuration."""


# What is wrong with an unusable audio file (``AudioError.kind``): callers tell a missing file from a
# short one without reading the text.
AUDIO_PROBLEMS = ("missing", "empty", "undecodable", "truncated", "non-finite", "silent", "too short")


class AudioError(MirformerError):
    """An audio file that cannot be used: its ``kind`` is one of ``AUDIO_PROBLEMS``, its ``cause``
    the text that says what was found.

    Long jobs catch this per file, skip the file and report ``path`` and ``cause``.
    """

    def __init__(self, path: str | Path, cause: str, *, kind: str):
        assert kind in AUDIO_PROBLEMS, f"audio problem kind must be one of {AUDIO_PROBLEMS}, got {kind!r}"
        self.path = str(path)
        self.cause = cause
        self.kind = kind
        super().__init__(f"{self.path}: {cause}")


class CheckpointError(MirformerError):
    """A checkpoint that cannot be loaded safely or does not match the model."""
