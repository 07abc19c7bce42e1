"""A run folder: where it is, what it records about its run (resolved config, seed, versions, how
the run is split over processes), and the one line of progress a run prints (rank 0 only)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mirformer import __version__, distributed, paths
from mirformer.atomic import write_json
from mirformer.training.loaders import per_device_batch


def config_hash(cfg) -> str:
    """Hash of everything that changes results: not progress bars, loader or render processes,
    nor the resamples of the report's intervals (recomputed from saved outputs at every finish),
    nor the deformations the test clips are also scored under (they add scores, never change one).

    Precision, devices and strategy stay in: a bf16 or multi-GPU run never reuses fp32 results.
    """
    d = asdict(cfg)
    for key in ("progress", "num_workers", "log_every_n_steps"):
        d["trainer"].pop(key)
    d.pop("workers")
    d.pop("evidence")
    d.pop("deform")
    if d["trainer"]["compile"] is None:  # runs from before the option keep their folders
        d["trainer"].pop("compile")
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]


def default_run_dir(cfg, prefix: str = "") -> Path:
    """``$MIRFORMER_HOME/runs/<prefix><name>-<config hash>``."""
    return paths.runs_dir() / f"{prefix}{cfg.name}-{config_hash(cfg)}"


def _stages(node, path: str = "") -> dict[str, object]:
    """Every section of a config tree with a batch size (training stages, grids aside), by dotted path."""
    found = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            key = f"{path}{f.name}"
            if any(g.name == "batch_size" for g in dataclasses.fields(value)) and not isinstance(value.batch_size, list):
                found[key] = value
            found.update(_stages(value, f"{key}."))
    return found


def distributed_settings(cfg) -> dict:
    """How the run is split over processes: each stage's global batch and what one process reads.

    Batch sizes in the config are global (``mirformer.training.loaders``), so the learning rates
    apply unchanged whatever the number of devices and nodes. A batch (or grid point) that does
    not divide over the processes fails here, before any work.
    """
    stages = {}
    for key, stage in _stages(cfg).items():
        lr = getattr(stage, "lr", None) if not hasattr(stage, "optim") else stage.optim.lr
        stages[key] = {"batch_size": stage.batch_size, "per_process": per_device_batch(stage.batch_size),
                       "lr": "schedule" if lr is None else lr}
        for b in getattr(getattr(stage, "grid", None), "batch_size", ()):
            per_device_batch(b)
    return {"world_size": distributed.world_size(),
            "rule": "batch_size is the global batch; each process reads batch_size / world_size; lr as configured",
            "stages": stages}


def versions() -> dict:
    import lightning

    return {"mirformer": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
            "lightning": lightning.__version__, "numpy": np.__version__, "platform": platform.platform()}


def start_run(run_dir: Path, cfg, **extra) -> Path:
    """Create the run folder and, on rank 0, write ``config.json``: the resolved config, the seed,
    the versions, how the run is split over processes and ``extra``."""
    run_dir = Path(run_dir)
    split = distributed_settings(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        write_json(run_dir / "config.json", {"config": asdict(cfg), **extra, "seed": cfg.seed,
                                             "versions": versions(), "distributed": split})
    return run_dir


def log(message: str, progress: bool = True) -> None:
    """One progress line, on rank 0 only."""
    if progress and distributed.is_main():
        print(f"[mirformer] {message}", flush=True)
