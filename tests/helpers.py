"""Settings and small stand-ins shared by several test files."""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from mirformer.experiments.config import SETUPS
from mirformer.representations import Layout, Representation
from mirformer.representations.vqvae.config import VQVAEConfig
from mirformer.training.fit import TrainerConfig, fit_stage

# The built-in corpus, tiny: 3 classes, 3 s clips at 16 kHz.
TINY_DATA = ('data.options={"preset": "quickstart", "config": {"clip_seconds": 3.0, "sample_rate": 16000, '
             '"max_scores_per_class": 4, "max_clips_per_score": 2, '
             '"classes": ["bach_chorale", "fiddle_tunes", "folk_china"]}}')
# Tiny models and one or two epochs on 16 kHz audio (the same data rate, so the baseline reads it as is).
TINY = [
    "--set", "mel={sample_rate: 16000, n_fft: 512, hop_length: 256, n_mels: 32, ref: '1.0'}",
    "--set", "encoder={d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 256}",
    "--set", "window_seconds=0.768", "--set", "spectroformer.mask.block_frames=4",  # 48 frames at hop 256
    "--set", "pretrain.epochs=2", "--set", "finetune.epochs=2", "--set", "scratch.epochs=2",
    "--set", "workers=1", "--set", "mfcc_linear.sample_rate=16000",
    "--set", "deform=[]",  # clean test clips only (tests/test_robustness.py scores deformed ones)
    # A tiny one-level VQ-VAE with hop 256: tokens at the mel frame rate, so windows of 48 both.
    "--set", "tokenizer.train={vqvae: {sample_rate: 16000, downs_t: [8], width: 8, depth: 1, emb_width: 8, "
             "l_bins: 32}, epochs: 1, crop_seconds: 0.5, crops_per_track: 1, batch_size: 4, bandwidth_seconds: 5}",
]
# TINY on the tiny corpus, in dB against each clip's peak: the thesis' six setups and the baseline
# (the quickstart preset also runs Patchifier), the report's intervals quickly.
TINY_RUN = [
    "--set", TINY_DATA, *TINY,
    "--set", "mel={sample_rate: 16000, n_fft: 512, hop_length: 256, n_mels: 32, ref: max}",
    "--set", "setups=[" + ", ".join(SETUPS) + "]",
    "--set", "evidence={n_resamples: 200, n_permutations: 200}",
]
# The tiny Patchifier for comparisons on TINY_RUN's data (16 kHz, hop 256: 32-frame patches of 0.5 s).
TINY_PATCHIFIER = ("patchifier={model: {n_mels: 32, filters: 4, decoder_width: 32, encoder: {d_model: 32, "
                   "n_layers: 1, n_heads: 2, d_ff: 64, max_len: 8}}, mel: {sample_rate: 16000, n_fft: 512, "
                   "hop_length: 256, n_mels: 32, ref: max}, window_patches: 2, stage1: {epochs: 2, "
                   "snippets_per_track: 4, batch_size: 16}, stage2: {epochs: 2, batch_size: 8}}")


class FrameStats(Representation):
    """A small real representation: per-frame log energy and zero-crossing rate."""

    name, input_name, label = "framestats", "framestats", "frame statistics"
    layout = Layout(dim=2)

    def __init__(self, hop=256, sample_rate=8000):
        self.hop, self.sample_rate = hop, sample_rate
        self.frames_per_second = sample_rate / hop

    def config_dict(self):
        return {"hop": self.hop, "sample_rate": self.sample_rate}

    def n_frames(self, n_samples):
        return n_samples // self.hop

    def encode(self, y):
        n = len(y) // self.hop
        f = y[: n * self.hop].reshape(n, self.hop)
        energy = np.log(np.mean(f**2, axis=1) + 1e-8)
        zcr = np.mean(np.abs(np.diff(np.sign(f), axis=1)) > 0, axis=1)
        return np.stack([energy, zcr], 1).astype(np.float32)

    def to_block(self):
        return {"hop": self.hop, "sample_rate": self.sample_rate}

    @classmethod
    def from_block(cls, block, *, source):
        return cls(block["hop"], block["sample_rate"])


class Wide(L.LightningModule):
    """A 16M-parameter linear map (a 200 MB checkpoint with Adam's moments), so writes take a while."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(2048, 2048)

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.net(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-4)


def fit_wide(stage_dir: Path, epochs: int) -> list[dict]:
    data = TensorDataset(torch.randn(4, 2048))
    rows, _ = fit_stage(Wide(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=4), stage_dir=stage_dir,
                        epochs=epochs, monitor="val/loss", mode="min",
                        trainer_cfg=TrainerConfig(accelerator="cpu", devices=1, progress=False), seed=0)
    return rows


TRAINER = TrainerConfig(accelerator="cpu", devices=1, progress=False, log_every_n_steps=1)


class Toy(Dataset):
    """Class c: a spectrogram with energy in band group c, plus noise."""

    def __init__(self, n=24, length=16, dim=8, n_classes=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % n_classes
        self.x = torch.randn(n, length, dim, generator=g) * 0.3
        for i, c in enumerate(self.y):
            self.x[i, :, c * 2 : c * 2 + 2] += 2.0
        self.n_classes = n_classes

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "pad": torch.zeros(len(self.x[i]), dtype=torch.bool), "y": int(self.y[i]), "track": i}


# A one-level VQ-VAE of hop 8 at 8 kHz with 16 codes: trains in seconds.
TINY_VQVAE = VQVAEConfig(sample_rate=8000, levels=1, downs_t=(3,), strides_t=(2,), emb_width=8, l_bins=16, width=8,
                         depth=2, multipliers=(1,))


def random_vqvae(path, *, levels: int = 2, l_bins: int = 32, codebooks: int = 1) -> Path:
    """A VQ-VAE with random weights and codebooks at 8 kHz (levels of hop 4 and 8, ``codebooks``
    residual codebooks each), saved in the official Jukebox layout."""
    from mirformer.representations.vqvae.checkpoint import save_vqvae
    from mirformer.representations.vqvae.model import VQVAE

    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(sample_rate=8000, levels=levels, downs_t=(2, 1)[:levels], strides_t=(2, 2)[:levels],
                              emb_width=8, l_bins=l_bins, width=8, depth=2, multipliers=(1, 1)[:levels],
                              codebooks=codebooks))
    for block in model.bottleneck.level_blocks:
        for c, stage in enumerate(getattr(block, "stages", [block])):
            stage.k.normal_(std=0.5**c)  # each residual codebook finer than the one before
    save_vqvae(model, path)
    return Path(path)


def outputs(dataset) -> list[str]:
    """A dataset's output names, as its task reads them."""
    from mirformer.tasks.base import task_class

    return task_class(dataset.task).output_names(dataset)


def counts(report, task: str | None) -> dict:
    """Good files of a validation report per split and label, as ``mirformer validate`` tables them."""
    from mirformer.tasks.base import label_counts

    return label_counts(task, report.good)


# A tiny raw-waveform encoder's shape: hop 20 (strides 5, 2, 2), receptive field 40 samples.
TINY_ENCODER = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                    conv_dim=(8, 8, 8), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
                    num_conv_pos_embedding_groups=2)


def tiny_hf_encoder(folder, *, family: str = "wav2vec2", sample_rate: int = 8000, normalise: bool = True,
                    seed: int = 0, **settings) -> Path:
    """A random-weight ``transformers`` audio encoder of ``family`` (wav2vec2, hubert, wavlm,
    data2vec-audio) saved as its model pages are (``save_pretrained``: config.json,
    model.safetensors, preprocessor_config.json)."""
    import transformers

    config_class = {"wav2vec2": transformers.Wav2Vec2Config, "hubert": transformers.HubertConfig,
                    "wavlm": transformers.WavLMConfig, "data2vec-audio": transformers.Data2VecAudioConfig}[family]
    if family == "data2vec-audio":  # its position embedding is a stack of convolutions: two small ones
        settings = {"num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5, **settings}
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(config_class(**{**TINY_ENCODER, **settings}))
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=sample_rate, do_normalize=normalise).save_pretrained(folder)
    return Path(folder)


def tiny_whisper(folder, *, seed: int = 0) -> Path:
    """A random-weight Whisper (encoder and decoder) with its ``WhisperFeatureExtractor``, saved as
    its model pages are: 16 kHz (its mel filters reach 8 kHz), 16 mel bins every 160 samples, 1 s
    chunks (100 mel frames, 50 encoder frames of 320 samples), 2 encoder layers of width 16."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.WhisperConfig(num_mel_bins=16, d_model=16, encoder_layers=2, decoder_layers=1,
                                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                        decoder_ffn_dim=32, max_source_positions=50, max_target_positions=8,
                                        vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                        decoder_start_token_id=1, begin_suppress_tokens=None, suppress_tokens=None)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, chunk_length=1,
                                         n_fft=400).save_pretrained(folder)
    return Path(folder)


def tiny_ast(folder, *, seed: int = 0) -> Path:
    """A random-weight AST with its ``ASTFeatureExtractor``, saved as its model pages are: 16 kHz,
    32 mel bins x 64 fbank frames, 16 x 16 patches with strides 10 (2 bands x 5 columns), 2 layers
    of width 16."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.ASTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                    patch_size=16, frequency_stride=10, time_stride=10, max_length=64, num_mel_bins=32)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(folder)
    return Path(folder)


def tiny_clap(folder, *, fusion: bool = False, seed: int = 0) -> Path:
    """A random-weight CLAP (audio tower and text tower) with its ``ClapFeatureExtractor``, saved as
    its model pages are: 16 kHz, 16 mel bins every 160 samples, 1 s inputs; a two-stage HTSAT whose
    pooled output has 16 values; ``fusion``: the fused variant (truncation "fusion")."""
    import transformers

    torch.manual_seed(seed)
    audio = dict(num_mel_bins=16, spec_size=64, window_size=4, patch_size=4, patch_stride=4,
                 patch_embeds_hidden_size=8, hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
                 projection_dim=8, num_hidden_layers=2, enable_fusion=fusion)
    text = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                projection_dim=8, max_position_embeddings=32)
    config = transformers.ClapConfig(text_config=text, audio_config=audio, projection_dim=8)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, max_length_s=1,
                                      fft_window_size=400, frequency_max=8000,
                                      truncation="fusion" if fusion else "rand_trunc").save_pretrained(folder)
    return Path(folder)
