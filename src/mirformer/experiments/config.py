"""The comparison's configuration: one typed dataclass tree, assembled from the registries.

``CompareConfig`` holds the shared settings below, one section per representation with a
config (at its ``config_key``: ``mel``, ``tokenizer``, ...) and one section per model kind (at
its name: ``spectroformer``, ``patchifier``, ``mfcc_linear``, ...), each the dataclass its own
file declares. Presets (``mirformer.experiments.presets``) are diffs of this base.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass

from mirformer.audio import MIN_SECONDS
from mirformer.deformations import parse_deforms
from mirformer.errors import ConfigError
from mirformer.experiments.sweep import SweepConfig
from mirformer.kinds import KINDS, known_setups
from mirformer.models.encoder import EncoderConfig
from mirformer.representations import REPRESENTATIONS
from mirformer.representations.base import Spectrogram
from mirformer.training.fit import TrainerConfig
from mirformer.training.modules import OptimConfig
from mirformer.training.stages import DownstreamConfig, StageConfig


@dataclass
class DataConfig:
    name: str = "music21-styles"
    root: str | None = None  # None: the built-in corpus under the mirformer home
    options: dict = field(default_factory=dict)  # dataset-specific (the built-in corpus' render config)
    # Shorter files are skipped, the same rule `mirformer validate --min-seconds` reports by.
    min_seconds: float = MIN_SECONDS


@dataclass
class PretrainConfig(StageConfig):
    """The pretraining stage, and its data: None, the comparison's own ``data`` (its training and
    validation splits); or any dataset, labelled or not (``name: audio`` for a folder of audio).
    Labels are never read in pretraining. ``fraction``: the share of its training split used,
    chosen by a seeded hash of each track (``datasets.base.nested_share``: a smaller share lies
    inside a larger one); validation stays whole."""

    data: DataConfig | None = None
    fraction: float = 1.0

    def __post_init__(self):
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"pretrain.fraction must be in (0, 1], got {self.fraction!r}")


@dataclass
class EvidenceConfig:
    """The report's uncertainty: 95% bootstrap intervals over test clips and paired permutation
    tests (``mirformer.stats``), with these many resamples each."""

    n_resamples: int = 2000
    n_permutations: int = 2000

    def __post_init__(self):
        if self.n_resamples < 1 or self.n_permutations < 1:
            raise ConfigError(f"evidence.n_resamples and n_permutations must be >= 1, got {self.n_resamples} "
                              f"and {self.n_permutations}")


# The thesis' Table 6: each model pretrained + fine-tuned and trained from scratch; then the baseline.
SETUPS = tuple(f"{kind}-{mode}" for kind in ("spectroformer", "tokenformer", "codebookformer")
               for mode in ("pretrained-finetuned", "scratch")) + ("mfcc-linear",)
EPOCH_VALIDATION = ("tiled", "centre")


@dataclass
class SharedConfig:
    """The settings every comparison has, whatever its representations and kinds."""

    name: str = "base"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # shared by the kinds of one architecture
    # A training window in seconds, for kinds that do not set their own length in frames: the
    # thesis' 1344 frames at hop 128 and 44.1 kHz (3.9 s), in every representation's own frames.
    window_seconds: float = 1344 * 128 / 44100
    # How feature stores keep continuous frames: "float16" halves them (FMA medium: 89 -> 45 GB).
    feature_dtype: str = "float32"
    pretrain: PretrainConfig = field(default_factory=lambda: PretrainConfig(epochs=10, optim=OptimConfig(warmup=8000)))
    finetune: DownstreamConfig = field(default_factory=lambda: DownstreamConfig(epochs=10, batch_size=32,
                                                                                optim=OptimConfig(lr=5e-5)))
    scratch: DownstreamConfig = field(default_factory=lambda: DownstreamConfig(epochs=10,
                                                                               optim=OptimConfig(warmup=8000)))
    setups: list = field(default_factory=lambda: list(SETUPS))
    # Other representations, probed frozen beside the setups (specs: hf:DIR, hear:MODULE, npy:DIR,
    # encoder:CKPT; see the probe section for how).
    representations: list = field(default_factory=list)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    workers: int = 2  # processes for rendering and feature extraction
    eval_batch_size: int = 32
    # After every epoch, validate on every window of every clip ("tiled") or on one centred
    # window per clip ("centre", cheaper); the final scores of every split read every window.
    epoch_validation: str = "tiled"
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    # Deformations the test clips are scored under besides clean (``mirformer.deformations``
    # specs such as "noise:snr=20,10" or "mp3:kbps=64"); every trained setup is scored again.
    deform: list = field(default_factory=list)
    sweep: SweepConfig = field(default_factory=SweepConfig)  # one setting varied across setups


def _check(self) -> None:
    if self.epoch_validation not in EPOCH_VALIDATION:
        raise ConfigError(f"epoch_validation must be one of {EPOCH_VALIDATION}, got {self.epoch_validation!r}")
    if self.feature_dtype not in Spectrogram.DTYPES:
        raise ConfigError(f"feature_dtype must be one of {Spectrogram.DTYPES}, got {self.feature_dtype!r}")
    if not self.window_seconds > 0:
        raise ConfigError(f"window_seconds must be > 0, got {self.window_seconds!r}")
    parse_deforms(self.deform)  # a bad spec fails here, before any work
    unknown = sorted(set(self.setups) - set(known_setups()))
    if unknown:
        raise ConfigError(f"unknown setup(s) {unknown}; known: {known_setups()}")


def _sections() -> list[tuple[str, type, object]]:
    """One section per configured representation, then one per kind."""
    reps = [(r.config_key, r.config_class, field(default_factory=r.default_config))
            for r in REPRESENTATIONS.values() if r.config_key]
    kinds = [(k.config_key, k.config_class, field(default_factory=k.config_class)) for k in KINDS.values()]
    taken = {f.name for f in fields(SharedConfig)}
    for key, _, _ in reps + kinds:
        if key in taken:
            raise ConfigError(f"two config sections are called {key!r}: rename a representation or kind")
        taken.add(key)
    return reps + kinds


CompareConfig = make_dataclass("CompareConfig", _sections(), bases=(SharedConfig,),
                               namespace={"__post_init__": _check, "__module__": __name__,
                                          "__doc__": __doc__.split("\n\n")[1]})
