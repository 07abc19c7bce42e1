"""Filling a comparison's feature stores ahead of training, in shards: N processes on one machine
or N cluster jobs (``mirformer extract store --shard K/N``) each encode a disjoint share of the
tracks into one store folder; whichever finishes last writes the memory-mapped store."""

from __future__ import annotations

from pathlib import Path

from mirformer import paths
from mirformer.datasets.registry import open_dataset
from mirformer.experiments.data import input_specs, kinds_of
from mirformer.experiments.config import CompareConfig
from mirformer.representations.mel import LogMel
from mirformer.representations.store import FeatureStore
from mirformer.representations.vq import VQTokens


def extract_stores(cfg: CompareConfig, *, shard: tuple[int, int] | None = None, consolidate: bool = False,
                   progress: bool = True) -> dict[str, str]:
    """Encode this shard's tracks into every store ``cfg`` reads, or (``consolidate``) only fold the
    parts written so far into the stores; return each input's store folder and state.

    Token stores need a given tokenizer (``tokenizer.checkpoint``): a tokenizer that ``compare``
    trains exists only once it has trained, and ``compare`` then extracts its tokens itself.
    """
    dataset = open_dataset(cfg.data.name, cfg.data.root, workers=cfg.workers, progress=progress, **cfg.data.options)
    dataset.prepare()
    tracks = dataset.tracks()
    states = {}
    for name, spec in input_specs(cfg, kinds_of(cfg)).items():
        if spec.representation == "mel":
            rep = LogMel(spec.mel, dtype=cfg.feature_dtype)
        elif cfg.tokenizer.checkpoint:
            rep = VQTokens(Path(cfg.tokenizer.checkpoint).expanduser(), level=cfg.tokenizer.level,
                           trust_pickle=cfg.tokenizer.trust_checkpoint)
        else:
            states[name] = "skipped: the tokenizer is trained by `mirformer compare`, which extracts its tokens"
            continue
        store = FeatureStore(paths.features_dir(), dataset.identity, rep)
        if consolidate:
            done = store.consolidate(tracks)
        else:
            done = store.extract(tracks, workers=cfg.workers, progress=progress, shard=shard) is not None
        states[name] = f"{store.dir}: " + ("complete" if done else "waiting for the other shards' parts")
    return states
