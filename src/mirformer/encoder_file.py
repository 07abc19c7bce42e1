"""The pretrained-encoder checkpoint: the contract between pretraining and everything after it.

One file holds all an encoder needs away from the run that made it: the network's spec and
weights, its kind, the input it reads (log-mel settings and storage, or the whole VQ tokenizer),
the scaling fitted on the pretraining data (per-band mean and std, or Patchifier's x 0.01) and
its window lengths, and what it was pretrained on. ``mirformer evaluate``, ``mirformer embed``
and ``mirformer.hear`` read nothing else, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from mirformer.atomic import write_torch
from mirformer.errors import CheckpointError
from mirformer.representations.base import Representation
from mirformer.representations.mel import LogMel, MelConfig
from mirformer.representations.vq import VQTokens

FORMAT = "mirformer-encoder"
VERSION = 1


@dataclass
class EncoderFile:
    """A read encoder checkpoint. ``load_model`` builds its network (``n_outputs``: with a fresh head).

    ``mean`` / ``std`` scale its input frames as ``(x - mean) / std`` (None for token ids);
    ``counts`` is how often the pretraining data used each token.
    """

    path: Path
    kind: str
    representation: Representation
    scaling: str
    mean: np.ndarray | None
    std: np.ndarray | None
    counts: np.ndarray | None
    window: int
    eval_window: int
    about: dict

    def load_model(self, *, n_outputs: int | None = None, head: str | None = None, pooling: str = "cls") -> nn.Module:
        from mirformer.kinds import KINDS

        return KINDS[self.kind].load(self.path, n_outputs=n_outputs, head=head, pooling=pooling)


def _input_block(rep: Representation, *, scaling: str, mean, std, counts, window: int, eval_window: int) -> dict:
    block = {"scaling": scaling, "window": int(window), "eval_window": int(eval_window),
             "mean": None if mean is None else torch.as_tensor(np.asarray(mean, np.float32)),
             "std": None if std is None else torch.as_tensor(np.asarray(std, np.float32)),
             "counts": None if counts is None else torch.as_tensor(np.asarray(counts, np.int64))}
    if isinstance(rep, LogMel):
        return {**block, "representation": "mel", "mel": dataclasses.asdict(rep.config), "dtype": rep.dtype.name}
    if isinstance(rep, VQTokens):
        from mirformer.representations.vqvae.checkpoint import official_state_dict

        vq = rep.model
        return {**block, "representation": "tokens", "level": rep.level, "sha1": rep.sha1,
                "vqvae": {"config": vq.config.to_dict(), "state_dict": official_state_dict(vq)}}
    raise CheckpointError(f"cannot save an encoder reading {type(rep).__name__}")


def save_encoder(path: str | Path, *, kind: str, model: nn.Module, representation: Representation, scaling: str,
                 mean, std, counts, window: int, eval_window: int, about: dict) -> None:
    """Write ``model`` with its input settings and scaling, atomically (``EncoderFile`` reads it)."""
    write_torch(path, {"format": FORMAT, "version": VERSION, "kind": kind, "spec": model.spec(),
                       "state_dict": model.state_dict(),
                       "input": _input_block(representation, scaling=scaling, mean=mean, std=std, counts=counts,
                                             window=window, eval_window=eval_window),
                       "about": about})


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
    block = ckpt["input"]
    if block["representation"] == "mel":
        rep = LogMel(MelConfig(**block["mel"]), dtype=block["dtype"])
    else:
        from mirformer.representations.vqvae.checkpoint import load_official_state
        from mirformer.representations.vqvae.model import VQVAE, VQVAEConfig

        vq = VQVAE(VQVAEConfig.from_dict(block["vqvae"]["config"]))
        try:
            load_official_state(vq, block["vqvae"]["state_dict"])
        except CheckpointError as e:
            raise CheckpointError(f"{path}: its embedded tokenizer {e}") from None
        vq.eval()
        rep = VQTokens.from_model(vq, level=block["level"], sha1=block["sha1"], source=f"{path} (embedded tokenizer)")

    def array(key):
        return None if block[key] is None else block[key].numpy()

    return EncoderFile(path=path, kind=ckpt["kind"], representation=rep, scaling=block["scaling"], mean=array("mean"),
                       std=array("std"), counts=array("counts"), window=block["window"],
                       eval_window=block["eval_window"], about=ckpt["about"])
