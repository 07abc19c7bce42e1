"""The presets: named diffs of the base comparison config, and ``resolve`` (base, preset, overrides)."""

from __future__ import annotations

from dataclasses import asdict

from mirformer.config_tree import from_dict, merge, to_dict
from mirformer.errors import ConfigError
from mirformer.experiments.config import SETUPS, CompareConfig
from mirformer.representations.mel import THESIS
from mirformer.representations.vqvae.config import SMALL

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
        "window_seconds": 128 * 512 / 22050,  # 128 frames (3 s)
        "spectroformer": {"mask": {"block_frames": 5}},
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
        "patchifier": QUICK_PATCHIFIER,
        "setups": [*SETUPS[:-1], "patchifier-pretrained-finetuned", "patchifier-scratch", "mfcc-linear"],
        # Every setup also scored on deformed test clips (about a minute more on 2 cores).
        "deform": ["noise:snr=20", "mp3:kbps=64", "pitch:semitones=1"],
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
    "window_seconds": 1344 * 128 / 44100,  # 1344 frames (3.9 s)
    "feature_dtype": "float16",  # the thesis-setting log-mel of FMA medium: about 45 GB instead of 89
    "pretrain": {"epochs": 500, "batch_size": 64, "optim": {"warmup": 8000}},
    "finetune": {"epochs": 40, "batch_size": 32, "optim": {"lr": 5e-5}, "grid": THESIS_GRID},
    "scratch": {"epochs": 40, "batch_size": 64, "optim": {"warmup": 8000}},
    "mfcc_linear": {"sample_rate": 44100},
    "trainer": {"num_workers": 4},
}

# Standard benchmarks at a size a single GPU trains in hours: 22.05 kHz / hop 512 log-mel
# (Patchifier's rate), a d256 encoder, a one-level VQ-VAE whose tokens share the mel frame
# rate, the thesis' fine-tuning grid. Metrics follow the dataset's task.
_BENCHMARK = {
    "mel": {"sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "ref": "1.0"},
    "encoder": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "max_len": 2048},
    "window_seconds": 256 * 512 / 22050,  # 256 frames (5.9 s)
    "spectroformer": {"mask": {"block_frames": 5}},
    "tokenizer": {"train": {"vqvae": SMALL_HOP512, "epochs": 20, "crop_seconds": 1.0, "crops_per_track": 4,
                            "batch_size": 8, "lr": 1e-3}},
    "pretrain": {"epochs": 100, "batch_size": 32, "snippets_per_track": 4, "optim": {"warmup": 1000, "lr_scale": 0.3}},
    "finetune": {"epochs": 40, "batch_size": 32, "snippets_per_track": 2, "optim": {"lr": 5e-5}, "grid": THESIS_GRID},
    "scratch": {"epochs": 40, "batch_size": 32, "snippets_per_track": 2, "optim": {"warmup": 1000, "lr_scale": 0.3}},
    "trainer": {"num_workers": 4},
}
# The built-in corpus at full size (30 s clips): the benchmarks' model, in dB against each clip's
# peak, a shorter schedule, no grid.
PRESETS["styles-full"] = merge(_BENCHMARK, {
    "name": "styles-full",
    "data": {"options": {"preset": "full"}},
    "mel": {"ref": "max"},
    "tokenizer": {"train": {"epochs": 10, "crops_per_track": 2}},
    "pretrain": {"epochs": 20, "snippets_per_track": 2},
    "finetune": {"epochs": 20, "batch_size": 16, "snippets_per_track": 1, "optim": {"lr": 1e-4},
                 "grid": {"batch_size": [], "lr": []}},
    "scratch": {"epochs": 20, "batch_size": 16, "snippets_per_track": 1},
    "trainer": {"num_workers": 0},
})
# GTZAN: the fault-filtered split (Kereliuk et al. 2015); accuracy is the published metric.
PRESETS["gtzan"] = merge(_BENCHMARK, {"name": "gtzan", "data": {"name": "gtzan", "options": {"split": "filtered"}}})
# MagnaTagATune: top-50 tags, the hex-folder split; macro ROC-AUC / PR-AUC. The audio is 16 kHz,
# so features stay at 16 kHz: hop 256 (62.5 frames/s, 3 s windows as musicnn) and a VQ-VAE with 8
# stride-2 stages (hop 256).
PRESETS["mtat"] = merge(_BENCHMARK, {
    "name": "mtat",
    "data": {"name": "mtat", "options": {"n_tags": 50}},
    "mel": {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96},
    "window_seconds": 188 * 256 / 16000,  # 188 frames (3 s)
    "tokenizer": {"train": {"vqvae": {**SMALL_HOP512, "downs_t": [8], "sample_rate": 16000}}},
    "pretrain": {"epochs": 30},
    "mfcc_linear": {"sample_rate": 16000},
})
# Emo Music: static arousal / valence, the artist-hash split (JukeMIR); R2 per dimension.
PRESETS["emomusic"] = merge(_BENCHMARK, {"name": "emomusic", "data": {"name": "emomusic"}})

# Patchifier on the built-in corpus: both pretraining stages (longer than in the quickstart), then
# the paper's four fine-tuning modes from the one pretrained encoder (its Fig. 2), a from-scratch
# run and the baseline.
PRESETS["patchifier-quickstart"] = merge(PRESETS["quickstart"], {
    "name": "patchifier-quickstart",
    "patchifier": {"stage1": {"epochs": 10}, "stage2": {"epochs": 60}},
    "setups": ["patchifier-linear-probe", "patchifier-frozen-frontend", "patchifier-frozen-encoder", "patchifier-full",
               "patchifier-scratch", "mfcc-linear"],
})
# The codebook question (DASB: more codebooks reconstruct better and classify worse) on the
# built-in corpus: log-mel against the tokens of a residual-VQ VAE with 8 codebooks read 1, 2, 4 or
# 8 at a time; each token setup runs once per count, pretraining included. Shorter schedules than
# the quickstart's keep 18 downstream stages and 9 pretrainings in minutes on 2 cores.
PRESETS["codebooks-quickstart"] = merge(PRESETS["quickstart"], {
    "name": "codebooks-quickstart",
    "tokenizer": {"train": {"vqvae": {**SMALL_HOP512, "codebooks": 8}, "epochs": 12}, "reconstruction_clips": 16},
    "sweep": {"key": "tokenizer.codebooks", "values": [1, 2, 4, 8]},
    "pretrain": {"epochs": 10, "optim": {"warmup": 65}},  # warmups at the quickstart's share of the steps
    "finetune": {"epochs": 12},
    "scratch": {"epochs": 12, "optim": {"warmup": 75}},
    "setups": [*SETUPS],
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
