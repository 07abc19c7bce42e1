"""The comparison's configuration: one typed dataclass tree; presets are diffs of the base."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mirformer.audio import MIN_SECONDS
from mirformer.config import from_dict, merge, to_dict
from mirformer.errors import ConfigError
from mirformer.experiments.train_vqvae import VQVAETrainConfig
from mirformer.kinds import setup_names
from mirformer.kinds.base import KINDS
from mirformer.models.encoder import EncoderConfig
from mirformer.models.heads import HEADS, POOLINGS
from mirformer.models.patchifier import PatchifierConfig
from mirformer.objectives.patch_masking import PatchMaskConfig
from mirformer.objectives.spectro_masking import SpectroMaskConfig
from mirformer.objectives.token_masking import TokenMaskConfig
from mirformer.representations.mel import THESIS, LogMel, MelConfig
from mirformer.representations.vqvae.model import SMALL
from mirformer.training.fit import TrainerConfig
from mirformer.training.modules import OptimConfig
from mirformer.training.strategies import check_strategy


@dataclass
class DataConfig:
    name: str = "music21-styles"
    root: str | None = None  # None: the built-in corpus under the mirformer home
    options: dict = field(default_factory=dict)  # dataset-specific (the built-in corpus' render config)
    # Shorter files are skipped, the same rule `mirformer validate --min-seconds` reports by.
    min_seconds: float = MIN_SECONDS


@dataclass
class GridConfig:
    """A sweep over batch size x static learning rate, selected on the validation split.

    An empty list keeps the stage's own value; both empty: no sweep.
    """

    batch_size: list = field(default_factory=list)
    lr: list = field(default_factory=list)

    def __post_init__(self):
        # YAML 1.1 reads "2e-5" as a string; a list's items are not checked by the config loader.
        try:
            self.batch_size = [int(b) for b in self.batch_size]
            self.lr = [float(r) for r in self.lr]
        except (TypeError, ValueError):
            raise ConfigError(f"grid.batch_size must list integers and grid.lr numbers, got "
                              f"{self.batch_size!r} and {self.lr!r}") from None

    def points(self, batch_size: int, lr: float | None) -> list[tuple[int, float | None]]:
        return [(b, r) for b in (self.batch_size or [batch_size]) for r in (self.lr or [lr])]


@dataclass
class StageConfig:
    epochs: int = 10
    batch_size: int = 64
    snippets_per_track: int = 1  # random crops drawn from each training clip per epoch
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Downstream stages only: what trains (mirformer.training.strategies) and what the head reads.
    strategy: str = "full"  # full | linear-probe | mlp-probe | frozen-frontend | frozen-encoder
    pooling: str = "cls"  # cls | mean
    head: str | None = None  # linear | mlp | pooler; None: mlp for mlp-probe, else the model's own
    grid: GridConfig = field(default_factory=GridConfig)

    def __post_init__(self):
        check_strategy(self.strategy)
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.head is not None and self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS} (or None), got {self.head!r}")
        if self.grid.lr and self.optim.lr is None:
            raise ConfigError("grid.lr sweeps a static learning rate; this stage uses the warmup schedule "
                              "(optim.lr is None): set optim.lr or leave grid.lr empty")


@dataclass
class PretrainConfig(StageConfig):
    """The pretraining stage, and its data: None, the comparison's own ``data`` (its training and
    validation splits); or any dataset, labelled or not (``name: audio`` for a folder of audio).
    Labels are never read in pretraining."""

    data: DataConfig | None = None


@dataclass
class TokenizerConfig:
    """The VQ tokenizer of TokenFormer and CodebookFormer.

    With ``checkpoint`` set (OpenAI's ``vqvae.pth.tar``, or any file in its layout), its
    ``level`` is used as is; without, a VQ-VAE with architecture ``train.vqvae`` is first trained
    on the dataset's training split (tokens from a VQ-VAE trained on that dataset).
    """

    checkpoint: str | None = None
    level: int | None = None  # None: the top level (Jukebox: 2, hop 128 at 44.1 kHz)
    trust_checkpoint: bool = False  # allow a checkpoint that only loads as a full pickle
    train: VQVAETrainConfig = field(default_factory=VQVAETrainConfig)


@dataclass
class EvidenceConfig:
    """The report's uncertainty: 95% bootstrap intervals over test clips and paired permutation
    tests (``mirformer.experiments.evidence``), with these many resamples each."""

    n_resamples: int = 2000
    n_permutations: int = 2000

    def __post_init__(self):
        if self.n_resamples < 1 or self.n_permutations < 1:
            raise ConfigError(f"evidence.n_resamples and n_permutations must be >= 1, got {self.n_resamples} "
                              f"and {self.n_permutations}")


def _patchifier_stage(epochs: int, crops: int) -> StageConfig:
    return StageConfig(epochs=epochs, batch_size=32, snippets_per_track=crops, optim=OptimConfig(name="adamw", lr=1e-4))


@dataclass
class PatchifierSetupConfig:
    """Patchifier's input, model and two-stage pretraining (Zhao & Li's recipe by default).

    Downstream it trains with the comparison's ``finetune`` / ``scratch`` stages, like every model.
    """

    model: PatchifierConfig = field(default_factory=PatchifierConfig)
    # 22,050 Hz, 64 bands, hop 512; dB against each clip's peak, so "paper" scaling lies in [-0.8, 0].
    mel: MelConfig = field(default_factory=lambda: MelConfig(sample_rate=22050, n_fft=1024, hop_length=512,
                                                             n_mels=64, ref="max"))
    scaling: str = "paper"  # dB x 0.01 (the paper); "standardise": per band over the training split
    window_patches: int = 8  # patches per training window (8 x 32 frames: 5.9 s)
    mask: PatchMaskConfig = field(default_factory=PatchMaskConfig)  # stage II ratio, augmentations
    # Stage I: 25 random patch crops per clip and epoch; AdamW, lr 1e-4, batch 32 (the paper's).
    stage1: StageConfig = field(default_factory=lambda: _patchifier_stage(10, 25))
    stage2: StageConfig = field(default_factory=lambda: _patchifier_stage(10, 1))
    train_extractor: bool = True  # whether the feature extractor keeps training in stage II

    def __post_init__(self):
        if self.scaling not in ("paper", "standardise"):
            raise ConfigError(f"patchifier.scaling must be 'paper' or 'standardise', got {self.scaling!r}")


# The thesis' Table 6: each model pretrained + fine-tuned and trained from scratch; then the baseline.
SETUPS = tuple(f"{kind}-{mode}" for kind in ("spectroformer", "tokenformer", "codebookformer")
               for mode in ("pretrained-finetuned", "scratch")) + ("mfcc-linear",)
# Every setup a comparison can run: each kind pretrained + fine-tuned, from scratch, or pretrained
# and fine-tuned with one named strategy (e.g. "patchifier-linear-probe").
KNOWN_SETUPS = tuple(name for kind in KINDS for name in setup_names(kind)) + ("mfcc-linear",)


@dataclass
class CompareConfig:
    name: str = "base"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    mel: MelConfig = field(default_factory=lambda: MelConfig(ref="max"))
    # How feature stores keep log-mel frames: "float16" halves them (FMA medium: 89 -> 45 GB).
    feature_dtype: str = "float32"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    snippet_frames: int = 1344  # model input length in frames (3.9 s at 44.1 kHz, hop 128)
    mask: SpectroMaskConfig = field(default_factory=SpectroMaskConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    # Token window length; None: the seconds of ``snippet_frames`` mel frames (the thesis: both
    # 1344, as mel hop 128 and Jukebox's top-level hop 128 at 44.1 kHz give the same rate).
    token_snippet_frames: int | None = None
    token_mask: TokenMaskConfig = field(default_factory=TokenMaskConfig)
    pretrain: PretrainConfig = field(default_factory=lambda: PretrainConfig(epochs=10, optim=OptimConfig(warmup=8000)))
    finetune: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, batch_size=32,
                                                                      optim=OptimConfig(lr=5e-5)))
    scratch: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, optim=OptimConfig(warmup=8000)))
    patchifier: PatchifierSetupConfig = field(default_factory=PatchifierSetupConfig)
    setups: list = field(default_factory=lambda: list(SETUPS))
    baseline_seconds: float | None = None  # audio per clip the MFCC baseline reads (None: all)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    workers: int = 2  # processes for rendering and feature extraction
    eval_batch_size: int = 32
    # After every epoch, validate on every window of every clip ("tiled") or on one centred
    # window per clip ("centre", cheaper); the final scores of every split read every window.
    epoch_validation: str = "tiled"
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)

    def __post_init__(self):
        if self.epoch_validation not in ("tiled", "centre"):
            raise ConfigError(f"epoch_validation must be 'tiled' or 'centre', got {self.epoch_validation!r}")
        if self.feature_dtype not in LogMel.DTYPES:
            raise ConfigError(f"feature_dtype must be one of {LogMel.DTYPES}, got {self.feature_dtype!r}")
        unknown = sorted(set(self.setups) - set(KNOWN_SETUPS))
        if unknown:
            raise ConfigError(f"unknown setup(s) {unknown}; known: {list(KNOWN_SETUPS)}")


# mirformer's small VQ-VAE (one level, 256 codes of width 32) with 9 stride-2 stages: hop 512 at 22.05 kHz.
SMALL_HOP512 = {**SMALL.to_dict(), "downs_t": [9]}

# A small Patchifier for minutes on 2 cores: the quickstart's log-mel (22.05 kHz, hop 512, 64 bands,
# shared with SpectroFormer's store), d_model 128, 4 layers, windows of 4 patches (3 s, as the
# other models'), whole 5 s clips (7 patches) in one evaluation window.
QUICK_PATCHIFIER = {
    "model": {"filters": 8, "decoder_width": 256,
              "encoder": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_ff": 512, "max_len": 16}},
    "window_patches": 4,
    "stage1": {"epochs": 2, "batch_size": 32, "snippets_per_track": 15},
    "stage2": {"epochs": 12, "batch_size": 32, "snippets_per_track": 1},
}

PRESETS: dict[str, dict] = {
    # Minutes on a 2-core laptop: 5 s clips, 22.05 kHz / hop 512 log-mel, a small encoder.
    "quickstart": {
        "name": "quickstart",
        "data": {"options": {"preset": "quickstart"}},
        "mel": {"sample_rate": 22050, "n_fft": 1024, "hop_length": 512, "n_mels": 64, "ref": "max"},
        "encoder": {"d_model": 128, "n_layers": 3, "n_heads": 4, "d_ff": 512, "dropout": 0.1, "max_len": 1024},
        "snippet_frames": 128,
        "mask": {"block_frames": 5},
        # A one-level VQ-VAE with hop 512, so tokens and mel frames share the 43 Hz rate, as the
        # thesis' mel hop and Jukebox's top-level hop (both 128 at 44.1 kHz) do.
        "tokenizer": {"train": {"vqvae": SMALL_HOP512, "epochs": 4, "crop_seconds": 1.0, "crops_per_track": 1,
                                "batch_size": 8, "lr": 1e-3, "val_crops": "centre"}},
        # One 3 s crop of each 5 s training clip per epoch; warmups at the same share of the steps as before.
        "pretrain": {"epochs": 18, "batch_size": 32, "snippets_per_track": 1,
                     "optim": {"warmup": 115, "lr_scale": 0.5}},
        "finetune": {"epochs": 18, "batch_size": 16, "snippets_per_track": 1, "optim": {"lr": 3e-4}},
        "scratch": {"epochs": 18, "batch_size": 16, "snippets_per_track": 1,
                    "optim": {"warmup": 115, "lr_scale": 0.5}},
        "epoch_validation": "centre",
        "baseline_seconds": None,
        "patchifier": QUICK_PATCHIFIER,
        "setups": [*SETUPS[:-1], "patchifier-pretrained-finetuned", "patchifier-scratch", "mfcc-linear"],
    },
    # The built-in corpus at full size (30 s clips), a mid-size encoder, longer training.
    "styles-full": {
        "name": "styles-full",
        "data": {"options": {"preset": "full"}},
        "mel": {"sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "ref": "max"},
        "encoder": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "max_len": 2048},
        "snippet_frames": 256,
        "mask": {"block_frames": 5},
        "tokenizer": {"train": {"vqvae": SMALL_HOP512, "epochs": 10, "crop_seconds": 1.0, "crops_per_track": 2,
                                "batch_size": 8, "lr": 1e-3}},
        "pretrain": {"epochs": 20, "batch_size": 32, "snippets_per_track": 2,
                     "optim": {"warmup": 1000, "lr_scale": 0.3}},
        "finetune": {"epochs": 20, "batch_size": 16, "optim": {"lr": 1e-4}},
        "scratch": {"epochs": 20, "batch_size": 16, "optim": {"warmup": 1000, "lr_scale": 0.3}},
    },
}


# The thesis (Duda 2022, Tables 3-5) on FMA medium's top genres: the base config is the thesis'
# model and masking; this adds its data, features and schedule. Pretraining runs 156k steps:
# 19,922 training clips / batch 64 = 312 steps per epoch, 500 epochs. TokenFormer and
# CodebookFormer read Jukebox's top level (hop 128 at 44.1 kHz) when tokenizer.checkpoint is
# OpenAI's vqvae.pth.tar; without it, a Jukebox-architecture VQ-VAE is trained on the training split.
THESIS_GRID = {"batch_size": [16, 32], "lr": [2e-5, 5e-5]}
PRESETS["thesis-fma-medium"] = {
    "name": "thesis-fma-medium",
    "data": {"name": "fma", "options": {"subset": "medium", "labels": "genre_top"}},
    "mel": asdict(THESIS),
    "snippet_frames": 1344,
    "feature_dtype": "float16",  # the thesis-setting log-mel of FMA medium: about 45 GB instead of 89
    "pretrain": {"epochs": 500, "batch_size": 64, "optim": {"warmup": 8000}},
    "finetune": {"epochs": 40, "batch_size": 32, "optim": {"lr": 5e-5}, "grid": THESIS_GRID},
    "scratch": {"epochs": 40, "batch_size": 64, "optim": {"warmup": 8000}},
    "trainer": {"num_workers": 4},
}

# Standard benchmarks at a size a single GPU trains in hours: 22.05 kHz / hop 512 log-mel
# (Patchifier's rate), a d256 encoder, a one-level VQ-VAE whose tokens share the mel frame
# rate, the thesis' fine-tuning grid. Metrics follow the dataset's task.
_BENCHMARK = {
    "mel": {"sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "ref": "1.0"},
    "encoder": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "max_len": 2048},
    "snippet_frames": 256,  # 5.9 s
    "mask": {"block_frames": 5},
    "tokenizer": {"train": {"vqvae": SMALL_HOP512, "epochs": 20, "crop_seconds": 1.0, "crops_per_track": 4,
                            "batch_size": 8, "lr": 1e-3}},
    "pretrain": {"epochs": 100, "batch_size": 32, "snippets_per_track": 4, "optim": {"warmup": 1000, "lr_scale": 0.3}},
    "finetune": {"epochs": 40, "batch_size": 32, "snippets_per_track": 2, "optim": {"lr": 5e-5}, "grid": THESIS_GRID},
    "scratch": {"epochs": 40, "batch_size": 32, "snippets_per_track": 2, "optim": {"warmup": 1000, "lr_scale": 0.3}},
    "trainer": {"num_workers": 4},
}
# GTZAN: the fault-filtered split (Kereliuk et al. 2015); accuracy is the published metric.
PRESETS["gtzan"] = merge(_BENCHMARK, {"name": "gtzan", "data": {"name": "gtzan", "options": {"split": "filtered"}}})
# MagnaTagATune: top-50 tags, the hex-folder split; macro ROC-AUC / PR-AUC. The audio is 16 kHz,
# so features stay at 16 kHz: hop 256 (62.5 frames/s, 3 s windows as musicnn) and a VQ-VAE with 8
# stride-2 stages (hop 256).
PRESETS["mtat"] = merge(_BENCHMARK, {
    "name": "mtat",
    "data": {"name": "mtat", "options": {"n_tags": 50}},
    "mel": {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96},
    "snippet_frames": 188,
    "tokenizer": {"train": {"vqvae": {**SMALL_HOP512, "downs_t": [8], "sample_rate": 16000}}},
    "pretrain": {"epochs": 30},
})
# Emo Music: static arousal / valence, the artist-hash split (JukeMIR); R2 per dimension.
PRESETS["emomusic"] = merge(_BENCHMARK, {"name": "emomusic", "data": {"name": "emomusic"}})


def resolve(preset: str | None = None, overrides: dict | None = None) -> CompareConfig:
    """Base config, then the preset's diff, then the user's overrides.

    Merging happens on dicts of the full base, so a preset that sets ``finetune.epochs`` keeps the
    base's ``finetune.optim``. Overriding ``data.name`` drops the preset's dataset options: they
    belong to its dataset (the overrides' own options still apply).
    """
    resolved = to_dict(CompareConfig())
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        resolved = merge(resolved, PRESETS[preset])
    data = (overrides or {}).get("data") or {}
    if data.get("name", resolved["data"]["name"]) != resolved["data"]["name"]:
        resolved["data"]["options"] = {}
    return from_dict(CompareConfig, merge(resolved, overrides or {}))


# Patchifier on the built-in corpus: both pretraining stages (longer than in the quickstart), then
# the paper's four fine-tuning modes from the one pretrained encoder (its Fig. 2), a from-scratch
# run and the baseline.
PRESETS["patchifier-quickstart"] = merge(PRESETS["quickstart"], {
    "name": "patchifier-quickstart",
    "patchifier": {"stage1": {"epochs": 10}, "stage2": {"epochs": 60}},
    "setups": ["patchifier-linear-probe", "patchifier-frozen-frontend", "patchifier-frozen-encoder", "patchifier-full",
               "patchifier-scratch", "mfcc-linear"],
})
# The paper's model and recipe (Zhao & Li) on GTZAN's fault-filtered split alone: its pretraining
# set (MagnaTagATune) and downstream set differ in the paper, which needs cross-dataset
# pretraining; here both stages pretrain on GTZAN's training split. Stage II reads whole 30 s clips
# (40 patches); evaluation windows hold 64 patches, so every clip is read in one window.
PRESETS["patchifier-paper"] = merge(PRESETS["gtzan"], {
    "name": "patchifier-paper",
    "patchifier": {"window_patches": 40, "stage1": {"epochs": 100}, "stage2": {"epochs": 300}},
    "finetune": {"epochs": 100, "batch_size": 32, "snippets_per_track": 1, "optim": {"name": "adamw", "lr": 1e-4},
                 "grid": {"batch_size": [], "lr": []}},
    "setups": ["patchifier-linear-probe", "patchifier-frozen-frontend", "patchifier-frozen-encoder", "patchifier-full",
               "mfcc-linear"],
})
