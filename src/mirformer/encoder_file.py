"""The pretrained-encoder checkpoint: the contract between pretraining and everything after it.

One file holds all an encoder needs away from the run that made it: the network's spec and
weights, its kind, the representation it reads (written and read back by the representation
itself: log-mel settings and storage, or a whole embedded tokenizer), the statistics fitted on
the pretraining data (per-band mean and std, Patchifier's x 0.01, a tokenizer's code counts) and
its window lengths, and what it was pretrained on. ``mirformer evaluate``, ``mirformer embed``
and ``mirformer.hear`` read nothing else, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from mirformer.atomic import write_torch
from mirformer.errors import CheckpointError
from mirformer.kinds import KINDS
from mirformer.representations import Representation, Statistics, representation_class

FORMAT = "mirformer-encoder"
VERSION = 1


@dataclass
class EncoderFile:
    """A read encoder checkpoint. ``load_model`` builds its network (``n_outputs``: with a fresh head).

    ``statistics`` scale its input frames as ``(x - mean) / std`` (None for ids) and say how often
    the pretraining data used each id (``counts``).
    """

    path: Path
    kind: str
    representation: Representation
    scaling: str
    statistics: Statistics
    window: int
    eval_window: int
    about: dict

    def load_model(self, *, n_outputs: int | None = None, head: str | None = None, pooling: str = "cls") -> nn.Module:
        return KINDS[self.kind].load(self.path, n_outputs=n_outputs, head=head, pooling=pooling)


def _tensor(array, dtype) -> torch.Tensor | None:
    return None if array is None else torch.as_tensor(np.asarray(array, dtype))


def save_encoder(path: str | Path, *, kind: str, model: nn.Module, representation: Representation, scaling: str,
                 statistics: Statistics, window: int, eval_window: int, about: dict) -> None:
    """Write ``model`` with its input settings and statistics, atomically (``read_encoder`` reads it)."""
    block = {"representation": representation.name, "scaling": scaling, "window": int(window),
             "eval_window": int(eval_window), "mean": _tensor(statistics.mean, np.float32),
             "std": _tensor(statistics.std, np.float32), "counts": _tensor(statistics.counts, np.int64),
             **representation.to_block()}
    write_torch(path, {"format": FORMAT, "version": VERSION, "kind": kind, "spec": model.spec(),
                       "state_dict": model.state_dict(), "input": block, "about": about})


def read_encoder(path: str | Path) -> EncoderFile:
    """Read an encoder checkpoint with ``weights_only=True``; refuse anything else by name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such encoder checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported with the file
        # torch's text advises weights_only=False, which an encoder file never needs: keep its cause only.
        cause = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable encoder checkpoint (a truncated or foreign file, or one "
                              f"holding pickled Python objects): {cause}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mirformer encoder checkpoint (an encoder.pt written by "
                              "`mirformer pretrain` or `mirformer compare`); older ones lack the input settings: "
                              "pretrain again")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: encoder format version {ckpt.get('version')}, this mirformer reads {VERSION}")
    if ckpt["kind"] not in KINDS:
        raise CheckpointError(f"{path}: model kind {ckpt['kind']!r} is not one this mirformer knows ({sorted(KINDS)})")
    block = ckpt["input"]
    rep = representation_class(block["representation"]).from_block(block, source=str(path))

    def array(key):
        return None if block[key] is None else block[key].numpy()

    return EncoderFile(path=path, kind=ckpt["kind"], representation=rep, scaling=block["scaling"],
                       statistics=Statistics(array("mean"), array("std"), array("counts")), window=block["window"],
                       eval_window=block["eval_window"], about=ckpt["about"])
