"""Every setup's per-clip outputs (``outputs.npz``): what its metrics, intervals and paired tests
are computed from, so a report can be recomputed from the run folder alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirformer.atomic import atomic_path

OUTPUTS = "outputs.npz"


def save_outputs(path: Path, splits: dict[str, tuple[list[str], np.ndarray, np.ndarray]]) -> None:
    """Write ``{split: (track ids, targets, outputs)}`` as one ``.npz``, atomically."""
    arrays = {}
    for split, (ids, targets, outputs) in splits.items():
        arrays |= {f"{split}_ids": np.asarray(ids, dtype=str), f"{split}_targets": np.asarray(targets),
                   f"{split}_outputs": np.asarray(outputs, dtype=np.float32)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_outputs(path: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids, targets, outputs) of one split of a saved ``outputs.npz``."""
    with np.load(path) as z:
        return z[f"{split}_ids"], z[f"{split}_targets"], z[f"{split}_outputs"]
