"""The HEAR 2021 API (hearbenchmark.com) over any mirformer encoder checkpoint.

    import mirformer.hear as hear
    model = hear.load_model("runs/quickstart-.../spectroformer-pretrain/encoder.pt")
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)  # audio: [n_sounds, n_samples]
    scene = hear.get_scene_embeddings(audio, model)

Audio is mono float32 in [-1, 1] at ``model.sample_rate`` (the encoder's input rate), up to 20
minutes per sound; the encoder reads it in tiled windows, so memory does not grow with the
window count beyond the output. A timestamp embedding is the encoder's output at one input
position (a log-mel frame, a VQ token, or a Patchifier patch), stamped with the centre of the
audio that position covers; the scene embedding is their mean. Runs on the audio tensor's device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mirformer.embed import Embedder
from mirformer.encoder_file import read_encoder


class HearModel(torch.nn.Module):
    """An encoder checkpoint with the attributes the HEAR API asks for."""

    def __init__(self, embedder: Embedder):
        super().__init__()
        self.embedder = embedder
        self.network = embedder.model  # registered, so .to(device) moves it
        self.sample_rate = embedder.sample_rate
        self.scene_embedding_size = self.timestamp_embedding_size = embedder.dim


def load_model(model_file_path: str = "") -> HearModel:
    """Load a mirformer encoder checkpoint (``encoder.pt`` of ``mirformer pretrain`` or ``compare``)."""
    if not model_file_path:
        raise ValueError("mirformer.hear.load_model needs the path of an encoder checkpoint (encoder.pt)")
    return HearModel(Embedder(read_encoder(model_file_path))).eval()


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """``audio`` [n_sounds, n_samples] -> (embeddings [n_sounds, n_timestamps, dim], timestamps
    [n_sounds, n_timestamps] in milliseconds, increasing, each the centre of its position's audio)."""
    if audio.ndim != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples], got shape {tuple(audio.shape)}")
    embedder = model.embedder
    model.to(audio.device)
    embedder.device = audio.device
    values, times = [], []
    for sound in audio.detach().float().cpu().numpy():
        emb = embedder.embed([embedder.frames_of(sound)], pooling="none")
        values.append(torch.from_numpy(emb.values))
        times.append(torch.from_numpy(emb.times * 1000.0))
    return torch.stack(values).to(audio.device), torch.stack(times).float().to(audio.device)


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """``audio`` [n_sounds, n_samples] -> [n_sounds, dim]: the mean of each sound's timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
