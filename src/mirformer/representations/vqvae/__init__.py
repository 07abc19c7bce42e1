"""OpenAI Jukebox's VQ-VAE audio tokenizer: model, chunked encoding and checkpoint import/export."""

from mirformer.representations.vqvae.checkpoint import load_jukebox_vqvae, save_vqvae
from mirformer.representations.vqvae.chunked import encode_chunked
from mirformer.representations.vqvae.config import JUKEBOX, SMALL, VQVAEConfig
from mirformer.representations.vqvae.model import VQVAE

__all__ = ["JUKEBOX", "SMALL", "VQVAE", "VQVAEConfig", "encode_chunked", "load_jukebox_vqvae", "save_vqvae"]
