"""A dataset made ready for training: its tracks by split, bad files skipped, and its inputs.

An input is a representation's feature store with its window lengths and scaling. Inputs come
from the config (what a model kind reads under it) or from an encoder checkpoint, whose
representation and scaling are used unchanged: a downstream dataset is then encoded with the
encoder's own settings (resampled to its rate), never with the config's. Inputs with equal
settings share one feature store; all inputs see the same tracks, so a file unusable in any of
them is skipped for all.

Pretraining prepares its dataset unlabelled: no label, class or target is ever read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from mirformer import distributed, paths
from mirformer.audio import too_short
from mirformer.datasets.base import Track
from mirformer.datasets.registry import open_dataset
from mirformer.encoder_file import EncoderFile, read_encoder
from mirformer.errors import MirformerError
from mirformer.experiments.config import CompareConfig, DataConfig
from mirformer.experiments.tokenizer import check_tokenizer, prepare_tokenizer, token_window
from mirformer.kinds import KINDS, InputSpec, ModelKind, parse_setup
from mirformer.representations.base import Representation
from mirformer.representations.mel import LogMel
from mirformer.representations.store import FeatureStore
from mirformer.representations.vq import codebook_usage
from mirformer.tasks import make_task
from mirformer.training.snippets import CentredSnippets, RandomSnippets, TiledSnippets

# Patchifier's "paper" scaling, dB x 0.01, as the (x - mean) / std every input goes through.
PAPER_SCALE = 100.0


def kinds_of(cfg: CompareConfig, *, pretrained: bool | None = None) -> list[ModelKind]:
    """The kinds ``cfg``'s setups use, in registry order (``pretrained``: only those, or only
    those not, with a setup that starts from a pretrained encoder)."""
    used = {}
    for setup in cfg.setups:
        if setup != "mfcc-linear":
            kind, mode = parse_setup(setup)
            used[kind.name] = used.get(kind.name, False) or mode != "scratch"
    return [k for k in KINDS.values() if k.name in used and (pretrained is None or used[k.name] == pretrained)]


def input_specs(cfg: CompareConfig, kinds: list[ModelKind]) -> dict[str, InputSpec]:
    """Each distinct input ``kinds`` read under ``cfg``, by name, log-mel first."""
    specs = {}
    for kind in kinds:
        spec = kind.input(cfg)
        specs.setdefault(spec.name, spec)
    return dict(sorted(specs.items(), key=lambda item: item[1].representation != "mel"))


@dataclass
class Inputs:
    """One prepared input: its feature store, window lengths and scaling ((x - mean) / std per dimension)."""

    rep: Representation
    store: FeatureStore
    length: int  # frames per training window
    eval_length: int  # frames per evaluation window
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    counts: np.ndarray | None = None  # tokens: how often the training split uses each code


class PreparedData:
    """``data`` (the config's ``data`` by default) made ready: ``tracks`` by split, ``inputs`` by name.

    ``labelled=False`` prepares it for pretraining: only its training and validation splits are
    needed and its labels are never read.
    """

    def __init__(self, cfg: CompareConfig, *, data: DataConfig | None = None, labelled: bool = True,
                 progress: bool = True):
        self.cfg, self.data_cfg, self.labelled = cfg, data or cfg.data, labelled
        self.progress = progress and distributed.is_main()
        self.skipped: dict[str, str] = {}
        self.flagged: dict[str, str] = {}  # usable files worth a look (``Dataset.flag``): they train
        self.tokenizer: dict | None = None
        self.task = None
        self.inputs: dict[str, Inputs] = {}
        self.encoders: dict[Path, EncoderFile] = {}

    def log(self, msg: str) -> None:
        if self.progress:  # rank 0 only
            print(f"[mirformer] {msg}", flush=True)

    def prepare_data(self, *, kinds: list[ModelKind] | None = None, encoders: list[Path] = ()) -> None:
        """Open the dataset and prepare what ``kinds`` read under the config (default: every kind of
        the config's setups) and what the ``encoders`` checkpoints read."""
        cfg = self.cfg
        kinds = kinds_of(cfg) if kinds is None else kinds
        specs = input_specs(cfg, kinds)
        # Bad settings and unreadable checkpoints fail here, before any data is built or tokenizer trained.
        given, tokens_per_second = check_tokenizer(cfg) if any(s.representation == "tokens" for s in specs.values()) \
            else (None, None)
        for kind in kinds:
            spec = kind.input(cfg)
            window = spec.window or token_window(cfg, tokens_per_second)
            kind.check(cfg, window, spec.eval_window or window)
        self.encoders = {Path(p): read_encoder(p) for p in encoders}
        d = self.data_cfg
        self.dataset = open_dataset(d.name, d.root, workers=cfg.workers, progress=self.progress, **d.options)
        with distributed.main_first():  # rendering the built-in corpus: once, the other ranks then find it done
            self.dataset.prepare()
        tracks = self.dataset.tracks()
        if self.labelled:
            self.classes = self.dataset.classes()
            self.task = make_task(self.dataset.task, self.classes)
        for name, spec in specs.items():
            if spec.representation == "mel":
                rep = LogMel(spec.mel, dtype=cfg.feature_dtype)
            else:
                rep, self.tokenizer = prepare_tokenizer(cfg, self.dataset, tracks, given, log=self.log,
                                                        progress=self.progress)
            window = spec.window or token_window(cfg, rep.frames_per_second)
            self.add_input(name, rep, window, spec.eval_window or window, tracks)
        for path, encoder in self.encoders.items():
            self.add_input(self.encoder_key(path), encoder.representation, encoder.window, encoder.eval_window, tracks)
        splits = ("train", "validation", "test") if self.labelled else ("train", "validation")
        self.tracks = {s: [t for t in tracks if t.split == s and t.id not in self.skipped] for s in splits}
        self.flagged = {i: note for i, note in self.flagged.items() if i not in self.skipped}
        for split, ts in self.tracks.items():
            if not ts:
                raise MirformerError(f"no usable tracks in the {split} split of {self.dataset.name} at "
                                     f"{self.dataset.root} ({len(self.skipped)} skipped as unreadable or too short)")
        self.scale(specs)
        if self.task is not None:
            self.task.fit(self.tracks["train"])

    def add_input(self, name: str, rep: Representation, window: int, eval_window: int, tracks: list[Track]) -> None:
        """Store one input of every track; skip files that do not decode or are shorter than ``data.min_seconds``.

        Under DDP each rank encodes its own shard of the tracks and the last to finish consolidates.
        """
        inp = self.inputs[name] = Inputs(rep, FeatureStore(paths.features_dir(), self.dataset.identity, rep), window,
                                         eval_window)
        self.log(f"{name} features: {inp.store.dir}")
        inp.store.extract(tracks, workers=self.cfg.workers, progress=self.progress, shard=distributed.shard_spec())
        distributed.barrier()
        inp.store.reload()
        failed = inp.store.failures(tracks)
        for t in tracks:
            why = failed.get(t.id) or too_short(inp.store.seconds(t.id), self.data_cfg.min_seconds)
            if why:
                self.skipped[t.id] = self.dataset.explain(t.id, why)
            elif note := self.dataset.flag(t.id, inp.store.seconds(t.id)):
                self.flagged[t.id] = note

    def scale(self, specs: dict[str, InputSpec]) -> None:
        """Each input's scaling: fitted on this data's training split, or the encoder's own."""
        train_ids = [t.id for t in self.tracks["train"]]
        for name, spec in specs.items():
            inp = self.inputs[name]
            if spec.scaling == "paper":
                inp.mean, inp.std = np.zeros(inp.rep.dim, np.float32), np.full(inp.rep.dim, PAPER_SCALE, np.float32)
            elif spec.representation == "mel":
                with distributed.main_first():  # computed once and cached beside the features
                    inp.mean, inp.std = inp.store.normalisation(train_ids)
            else:
                # Counted per track: a large training split never holds all its tokens in memory at once.
                inp.counts = sum(np.bincount(np.asarray(inp.store.get(i), np.int64), minlength=inp.rep.vocab_size)
                                 for i in train_ids)
                self.tokenizer.update(codebook_usage(inp.counts))
                self.log(f"tokenizer: {self.tokenizer['codes_used']}/{inp.rep.vocab_size} codes used on the training "
                         f"split, entropy {self.tokenizer['entropy_bits']:.2f} bits")
        for path, encoder in self.encoders.items():
            inp = self.inputs[self.encoder_key(path)]
            inp.mean, inp.std, inp.counts = encoder.mean, encoder.std, encoder.counts

    @staticmethod
    def encoder_key(path: Path) -> str:
        return f"encoder:{Path(path)}"

    def input_of(self, kind: str | ModelKind | Inputs, encoder: Path | None = None) -> Inputs:
        """The input a setup reads: its encoder's, or what its kind reads under the config."""
        if isinstance(kind, Inputs):
            return kind
        if encoder is not None:
            return self.inputs[self.encoder_key(encoder)]
        kind = KINDS[kind] if isinstance(kind, str) else kind
        return self.inputs[kind.input(self.cfg).name]

    def targets(self, tracks: list[Track]) -> list | None:
        return [self.task.target(t) for t in tracks] if self.task is not None else None

    def random_snippets(self, split: str, copies: int, inp: Inputs | str | ModelKind,
                        frames: int | None = None) -> ConcatDataset:
        """``copies`` random crops of ``frames`` (default: the training window) per clip of ``split``."""
        ts, inp = self.tracks[split], self.input_of(inp)
        one = RandomSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=frames or inp.length,
                             mean=inp.mean, std=inp.std)
        return ConcatDataset([one] * copies)

    def epoch_validation(self, inp: Inputs | str | ModelKind, frames: int | None = None) -> Dataset:
        """The validation windows read after every epoch: every window (``epoch_validation: tiled``)
        or one centred window per clip (``centre``); final scores always read every window."""
        if self.cfg.epoch_validation == "tiled":
            return self.tiled("validation", inp, frames)
        ts, inp = self.tracks["validation"], self.input_of(inp)
        return CentredSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=frames or inp.eval_length,
                               mean=inp.mean, std=inp.std)

    def tiled(self, split: str, inp: Inputs | str | ModelKind, frames: int | None = None) -> TiledSnippets:
        """Every window of ``frames`` (default: the evaluation window) of every clip of ``split``."""
        ts, inp = self.tracks[split], self.input_of(inp)
        return TiledSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=frames or inp.eval_length,
                             mean=inp.mean, std=inp.std)
