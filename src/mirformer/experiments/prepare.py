"""``prepare(cfg) -> Prepared``: a dataset made ready for training, its tracks by split (bad files
skipped) and its inputs.

An input is a representation's feature store with its window lengths and fitted statistics.
Inputs come from the config (what the model kinds read under it) or from encoder files, whose
representation and statistics are used unchanged: a downstream dataset is then encoded with the
encoder's own settings (resampled to its rate), never with the config's. Inputs with equal
settings share one feature store; all inputs see the same tracks, so a file unusable in any of
them is skipped for all. Under DDP each rank encodes its own shard of the tracks and the last to
finish consolidates; statistics are computed once and cached beside the features.

Pretraining prepares its dataset unlabelled: no label, class or target is ever read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import ConcatDataset, DataLoader
from torch.utils.data import Dataset as TorchDataset

from mirformer import distributed, encoder_states, paths  # noqa: F401 - encoder_states registers the "encoder:" spec
from mirformer.audio import too_short
from mirformer.datasets.base import Dataset, Track, nested_share
from mirformer.datasets.registry import open_dataset
from mirformer.encoder_file import EncoderFile, read_encoder
from mirformer.errors import MirformerError
from mirformer.experiments.cost import input_cost
from mirformer.experiments.run import log
from mirformer.experiments.sweep import variants
from mirformer.experiments.tokenizer import train_tokenizer
from mirformer.kinds import KINDS, InputSpec, ModelKind, parse_setup
from mirformer.kinds.probe import probe_inputs
from mirformer.representations import Representation, Statistics, representation_class
from mirformer.representations.store import FeatureStore
from mirformer.tasks import Task, make_task
from mirformer.tasks.base import task_class
from mirformer.training.loaders import make_loader
from mirformer.training.snippets import CentredSnippets, RandomSnippets, TiledSnippets


@dataclass
class Input:
    """One prepared input: its feature store, window lengths (frames) and fitted statistics;
    ``about`` is what the report says of it beyond its config (a tokenizer's source and usage)."""

    representation: Representation
    store: FeatureStore
    window: int
    eval_window: int
    scaling: str | None = None
    statistics: Statistics = field(default_factory=Statistics)
    about: dict | None = None

    def describe(self) -> dict:
        """The input as ``results.json`` lists it."""
        rep = self.representation
        out = {"name": rep.name, "window_frames": self.window, "eval_window_frames": self.eval_window,
               "frames_per_second": rep.frames_per_second, **rep.config_dict()}
        return {**out, "about": self.about} if self.about else out


@dataclass
class Prepared:
    """A dataset made ready: ``tracks`` by split, ``inputs`` by name (config inputs by their spec's
    name, encoder inputs by the encoder file's path), the ``task`` (None when unlabelled), and the
    files skipped (unusable) or flagged (usable, worth a look)."""

    cfg: object
    dataset: Dataset
    task: Task | None
    progress: bool
    tracks: dict[str, list[Track]] = field(default_factory=dict)
    inputs: dict[str, Input] = field(default_factory=dict)
    encoders: dict[str, EncoderFile] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)
    costs: dict[str, dict] = field(default_factory=dict)

    def input_cost(self, name: str) -> dict:
        """What the input ``name`` costs before a model reads it (``experiments.cost.input_cost``), once."""
        if name not in self.costs:
            inp = self.inputs[name]
            self.costs[name] = input_cost(inp.representation, inp.store)
        return self.costs[name]

    def tagged(self, tag: str) -> Prepared:
        """The config inputs renamed ``<name><tag>`` (a sweep's variants each prepare their own)."""
        self.inputs = {name if name in self.encoders else name + tag: inp for name, inp in self.inputs.items()}
        return self

    def including(self, other: Prepared) -> Prepared:
        """This preparation with ``other``'s inputs and encoders, and the files either skipped or flagged."""
        self.inputs, self.encoders = {**self.inputs, **other.inputs}, {**self.encoders, **other.encoders}
        self.costs = {**self.costs, **other.costs}
        self.skipped, self.flagged = {**self.skipped, **other.skipped}, {**self.flagged, **other.flagged}
        return self

    # ---- views for training and scoring ---------------------------------------------------------
    def targets(self, tracks: list[Track]) -> list | None:
        return [self.task.target(t) for t in tracks] if self.task is not None else None

    def _windows(self, cls, split: str, inp: Input, length: int, **kwargs):
        ts = self.tracks[split]
        return cls(inp.store, [t.id for t in ts], self.targets(ts), length=length, mean=inp.statistics.mean,
                   std=inp.statistics.std, **kwargs)

    def random_snippets(self, split: str, copies: int, inp: Input, frames: int | None = None) -> ConcatDataset:
        """``copies`` random crops of ``frames`` (default: the training window) per clip of ``split``."""
        return ConcatDataset([self._windows(RandomSnippets, split, inp, frames or inp.window)] * copies)

    def epoch_validation(self, inp: Input, frames: int | None = None) -> TorchDataset:
        """The validation windows read after every epoch: every window (``epoch_validation: tiled``)
        or one centred window per clip (``centre``); final scores always read every window."""
        cls = TiledSnippets if self.cfg.epoch_validation == "tiled" else CentredSnippets
        return self._windows(cls, "validation", inp, frames or inp.eval_window)

    def tiled(self, split: str, inp: Input, frames: int | None = None) -> TiledSnippets:
        """Every window of ``frames`` (default: the evaluation window) of every clip of ``split``."""
        return self._windows(TiledSnippets, split, inp, frames or inp.eval_window)

    def loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        """Training (``shuffle``) or evaluation batches; under DDP each rank reads its share."""
        return make_loader(dataset, batch_size, train=shuffle, seed=self.cfg.seed,
                           num_workers=self.cfg.trainer.num_workers)


def kinds_of(cfg, *, pretrained: bool | None = None) -> list[ModelKind]:
    """The neural kinds ``cfg``'s setups use, in registry order (``pretrained``: only those, or only
    those not, with a setup that starts from a pretrained encoder)."""
    used: dict[str, bool] = {}
    for setup in cfg.setups:
        kind, mode = parse_setup(setup)
        if kind.neural:
            used[kind.name] = used.get(kind.name, False) or mode != "scratch"
    return [k for k in KINDS.values() if k.name in used and (pretrained is None or used[k.name] == pretrained)]


def input_specs(cfg, kinds: list[ModelKind]) -> dict[str, InputSpec]:
    """Each distinct input ``kinds`` read under ``cfg``, by name: continuous frames first (their
    stores can be filled before a tokenizer trains)."""
    specs: dict[str, InputSpec] = {}
    for kind in kinds:
        spec = kind.input(cfg)
        specs.setdefault(spec.name, spec)
    return dict(sorted(specs.items(), key=lambda item: representation_class(item[1].representation).discrete))


class _Context:
    """What a representation may need to be built for this dataset: its tracks, and a tokenizer
    trained on its training split (``mirformer.representations.base.BuildContext``)."""

    def __init__(self, cfg, dataset: Dataset, tracks: list[Track], progress: bool):
        self.cfg, self.dataset, self.progress = cfg, dataset, progress
        self.dataset_id = dataset.identity
        self.tracks = {s: [t for t in tracks if t.split == s] for s in ("train", "validation", "test")}

    def log(self, message: str) -> None:
        log(message, self.progress)

    def train_tokenizer(self, train_config):
        return train_tokenizer(self.cfg, self.dataset, self.tracks, train_config, progress=self.progress)


def prepare(cfg, *, data=None, labelled: bool = True, kinds: list[ModelKind] | None = None,
            encoders: list[Path] = (), inputs: dict[str, InputSpec] | None = None, fraction: float = 1.0,
            progress: bool = True) -> Prepared:
    """Open ``data`` (default: the config's) and prepare what ``kinds`` read under ``cfg`` (default:
    every neural kind of its setups), the ``inputs`` given by name (a probe's representations) and
    what the ``encoders`` files read.

    ``labelled=False`` prepares it for pretraining: only its training and validation splits are
    needed and its labels are never read. ``fraction`` keeps that share of the training split
    (``datasets.base.nested_share``), before any statistics are fitted on it.
    """
    progress = progress and distributed.is_main()
    kinds = kinds_of(cfg) if kinds is None else kinds
    specs = {**input_specs(cfg, kinds), **(inputs or {})}
    # Bad settings and unreadable checkpoints fail here, before any data is built or tokenizer trained.
    for spec in specs.values():
        representation_class(spec.representation).check_config(spec.config)
    for kind in kinds:
        kind.check(cfg, *kind.input(cfg).frames(cfg))
    files = {str(Path(p)): read_encoder(p) for p in encoders}
    d = data or cfg.data
    dataset = open_dataset(d.name, d.root, workers=cfg.workers, progress=progress, **d.options)
    with distributed.main_first():  # rendering the built-in corpus: once, the other ranks then find it done
        dataset.prepare()
    tracks = dataset.tracks()
    task = None
    if labelled:
        dataset.require_labels()
        task = make_task(dataset.task, task_class(dataset.task).output_names(dataset))
    prepared = Prepared(cfg=cfg, dataset=dataset, task=task, progress=progress, encoders=files)
    context = _Context(cfg, dataset, tracks, progress)
    for name, spec in specs.items():
        rep = representation_class(spec.representation).from_config(spec.config, context=context,
                                                                    dtype=cfg.feature_dtype)
        for kind in kinds:
            if kind.input(cfg).name == name:
                kind.check_input(rep)
        rep.check_tracks(tracks)  # precomputed files against the dataset, before anything is stored
        window, eval_window = spec.frames(cfg, rep.frames_per_second)
        _add_input(prepared, name, Input(rep, _store(dataset, rep), window, eval_window, spec.scaling), tracks,
                   d.min_seconds)
    for path, f in files.items():
        _add_input(prepared, path, Input(f.representation, _store(dataset, f.representation), f.window,
                                         f.eval_window, f.scaling, f.statistics), tracks, d.min_seconds)
    splits = ("train", "validation", "test") if labelled else ("train", "validation")
    prepared.tracks = {s: [t for t in tracks if t.split == s and t.id not in prepared.skipped] for s in splits}
    if fraction < 1:
        kept = nested_share([t.id for t in prepared.tracks["train"]], fraction, seed=cfg.seed)
        prepared.tracks["train"] = [t for t in prepared.tracks["train"] if t.id in kept]
    prepared.flagged = {i: note for i, note in prepared.flagged.items() if i not in prepared.skipped}
    for split, ts in prepared.tracks.items():
        if not ts:
            raise MirformerError(f"no usable tracks in the {split} split of {dataset.name} at {dataset.root} "
                                 f"({len(prepared.skipped)} skipped as unreadable or too short)")
    for name in specs:
        _fit_statistics(prepared, name)
    if task is not None:
        task.fit(prepared.tracks["train"])
    return prepared


def _store(dataset: Dataset, rep: Representation) -> FeatureStore:
    return FeatureStore(paths.features_dir(), dataset.identity, rep)


def _add_input(prepared: Prepared, name: str, inp: Input, tracks: list[Track], min_seconds: float) -> None:
    """Store one input of every track; skip files that do not decode or are shorter than ``min_seconds``."""
    cfg, dataset = prepared.cfg, prepared.dataset
    prepared.inputs[name] = inp
    log(f"{name} features: {inp.store.dir}", prepared.progress)
    inp.store.extract(tracks, workers=cfg.workers, progress=prepared.progress, shard=distributed.shard_spec())
    distributed.barrier()
    inp.store.reload()
    failed = inp.store.failures(tracks)
    for t in tracks:
        why = failed.get(t.id) or too_short(inp.store.seconds(t.id), min_seconds)
        if why:
            prepared.skipped[t.id] = dataset.explain(t.id, why)
        elif note := dataset.flag(t.id, inp.store.seconds(t.id)):
            prepared.flagged[t.id] = note


def _fit_statistics(prepared: Prepared, name: str) -> None:
    """A config input's statistics, fitted on this data's training split (cached beside the features)."""
    inp = prepared.inputs[name]
    rep = inp.representation
    with distributed.main_first():  # computed once by rank 0; the others read the cache
        inp.statistics = rep.fit_statistics(inp.store, [t.id for t in prepared.tracks["train"]], scaling=inp.scaling)
    about = rep.about()
    if about is not None:
        summary = rep.summarise(inp.statistics)
        inp.about = {**about, "window_frames": inp.window, **summary}
        numbers = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        if numbers:
            log(f"{name} on the training split: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()),
                prepared.progress)


def extract_stores(cfg, *, shard: tuple[int, int] | None = None, consolidate: bool = False,
                   progress: bool = True) -> dict[str, str]:
    """Fill the feature stores ``cfg`` reads ahead of training, in shards: N processes on one machine
    or N cluster jobs (``mirformer extract store --shard K/N``) each encode a disjoint share of the
    tracks into one store folder; whichever finishes last writes the memory-mapped store (every
    value of a swept setting's, and the probed ``representations``'). With
    ``consolidate``, only fold the parts written so far into the stores. Returns each input's
    store folder and state.

    A representation that trains first (a tokenizer without a checkpoint) is skipped: ``compare``
    trains it, then extracts its store itself.
    """
    dataset = open_dataset(cfg.data.name, cfg.data.root, workers=cfg.workers, progress=progress, **cfg.data.options)
    dataset.prepare()
    tracks = dataset.tracks()
    states = {}
    specs = {name + run.tag: spec for run in variants(cfg)
             for name, spec in input_specs(run.cfg, kinds_of(run.cfg)).items()}
    specs.update(probe_inputs(cfg, cfg.representations))
    for name, spec in specs.items():
        cls = representation_class(spec.representation)
        if cls.needs_training(spec.config):
            states[name] = f"skipped: {cls.name} trains first, in `mirformer compare`, which then extracts its store"
            continue
        rep = cls.from_config(spec.config, context=None, dtype=cfg.feature_dtype)
        rep.check_tracks(tracks)
        store = _store(dataset, rep)
        if consolidate:
            done = store.consolidate(tracks)
        else:
            done = store.extract(tracks, workers=cfg.workers, progress=progress, shard=shard) is not None
        states[name] = f"{store.dir}: " + ("complete" if done else "waiting for the other shards' parts")
    return states
