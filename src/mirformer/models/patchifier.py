"""Patchifier ("Spectrograms are sequences of patches", Zhao & Li): a log-mel spectrogram cut into
non-overlapping patches, a VGG-style CNN turning each patch into one vector, a BERT-style
bottleneck over the patch sequence, a light decoder back to patch pixels.

Axis legend: B batch, L frames, F mel bands, P frames per patch, N = L // P patches, D d_model,
C downstream outputs. A patch is F x P (bands x frames); a window of N patches is one input.
Windows may hold any number of patches up to the position table (``encoder.max_len``); padding
patches are never attended to, so evaluation can read whole clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from mirformer.errors import CheckpointError, ConfigError
from mirformer.models.encoder import Encoder, EncoderConfig, padding_if_any
from mirformer.models.heads import HEADS, POOLINGS, make_head, pool
from mirformer.models.saved import load_weights, read_saved


def _bottleneck() -> EncoderConfig:
    # The paper's bottleneck: 8 layers, 4 heads, width 256, learned positions, no input scaling.
    return EncoderConfig(d_model=256, n_layers=8, n_heads=4, d_ff=1024, dropout=0.1, max_len=64,
                         positions="learned", scale_inputs=False)


@dataclass
class PatchifierConfig:
    n_mels: int = 64  # F
    patch_frames: int = 32  # P
    filters: int = 16  # of the first down module; doubled by each next one
    n_down: int = 5  # down modules of the feature extractor (and up layers of the decoder)
    decoder_width: int = 512  # hidden width of the MLP from the bottleneck into the decoder
    encoder: EncoderConfig = field(default_factory=_bottleneck)  # max_len: the most patches per window

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        step = 2 ** self.n_down
        if self.n_mels % step or self.patch_frames % step:
            raise ConfigError(f"patchifier: n_mels ({self.n_mels}) and patch_frames ({self.patch_frames}) must be "
                              f"multiples of 2**n_down = {step}")


def patchify(x: torch.Tensor, patch_frames: int) -> torch.Tensor:
    """Frames (B, L, F) -> patches (B, N, F, P), N = L // P; frames past the last whole patch are dropped."""
    B, L, F = x.shape
    n = L // patch_frames
    return x[:, : n * patch_frames].reshape(B, n, patch_frames, F).transpose(2, 3)


def unpatchify(patches: torch.Tensor) -> torch.Tensor:
    """Patches (B, N, F, P) -> frames (B, N * P, F): the inverse of ``patchify``."""
    B, N, F, P = patches.shape
    return patches.transpose(2, 3).reshape(B, N * P, F)


def patch_padding(pad: torch.Tensor | None, patch_frames: int, n_patches: int) -> torch.Tensor | None:
    """Frame padding (B, L) -> patch padding (B, N): a patch holding any padding frame is padding."""
    if pad is None:
        return None
    return pad[:, : n_patches * patch_frames].reshape(len(pad), n_patches, patch_frames).any(-1)


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class PatchEncoder(nn.Module):
    """The feature extractor: patches (M, F, P) -> latents (M, D).

    ``n_down`` VGG-style modules of two 3x3 convolutions with batch norm, the first of each with
    stride 2 instead of pooling, ``filters`` channels doubling module by module; the remaining
    (channels, F / 2**n_down, P / 2**n_down) map is flattened and projected to D.
    """

    def __init__(self, cfg: PatchifierConfig):
        super().__init__()
        layers, c_in = [], 1
        for i in range(cfg.n_down):
            c_out = cfg.filters * 2**i
            layers += _conv(c_in, c_out, stride=2) + _conv(c_out, c_out)
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.out_shape = (c_in, cfg.n_mels // 2**cfg.n_down, cfg.patch_frames // 2**cfg.n_down)
        self.proj = nn.Linear(c_in * self.out_shape[1] * self.out_shape[2], cfg.encoder.d_model)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(patches.unsqueeze(1)).flatten(1))


class PatchDecoder(nn.Module):
    """Latents (M, D) -> patches (M, F, P): an MLP to the extractor's last map, then ``n_down``
    layers of 2x upsampling + 3x3 convolution (batch norm and ReLU on all but the last)."""

    def __init__(self, cfg: PatchifierConfig, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        c, h, w = shape
        self.mlp = nn.Sequential(nn.Linear(cfg.encoder.d_model, cfg.decoder_width), nn.GELU(),
                                 nn.Linear(cfg.decoder_width, c * h * w))
        layers, c_in = [], c
        for i in range(cfg.n_down):
            last = i == cfg.n_down - 1
            c_out = 1 if last else max(cfg.filters, c_in // 2)
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1)] if last else _conv(c_in, c_out)
            c_in = c_out
        self.ups = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.ups(self.mlp(z).view(len(z), *self.shape)).squeeze(1)


class Patchifier(nn.Module):
    """Feature extractor (``frontend``) -> bottleneck (``encoder``) -> decoder / downstream head.

    Parameters
    ----------
    config : PatchifierConfig
    n_classes : int
        Downstream outputs C; 0 for a pretraining-only model.
    head : str
        ``"pooler"`` (BERT's pooler + linear, the paper's), ``"linear"`` or ``"mlp"``.
    pooling : str
        ``"cls"`` or ``"mean"`` (of the non-padding patches).
    """

    kind = "patchifier"

    def __init__(self, config: PatchifierConfig, *, n_classes: int = 0, head: str = "pooler", pooling: str = "cls"):
        super().__init__()
        if head not in HEADS or pooling not in POOLINGS:
            raise ConfigError(f"head must be one of {HEADS} and pooling one of {POOLINGS}, got {head!r}, {pooling!r}")
        self.config, self.n_classes, self.head_kind, self.pooling = config, n_classes, head, pooling
        self.frontend = PatchEncoder(config)
        self.encoder = Encoder(config.encoder)
        self.mask_token = nn.Parameter(torch.randn(config.encoder.d_model) * 0.02)
        self.decoder = PatchDecoder(config, self.frontend.out_shape)
        d = config.encoder.d_model
        self.head = make_head(head, d, n_classes, config.encoder.dropout) if n_classes else None

    def parts(self) -> dict[str, list[nn.Module | nn.Parameter]]:
        """Parameter groups by role: what the fine-tuning strategies freeze, what pretraining stages train."""
        return {"frontend": [self.frontend], "encoder": [self.encoder], "decoder": [self.decoder], "mask": [self.mask_token],
                "head": [self.head] if self.head is not None else []}

    def extract(self, patches: torch.Tensor, patch_pad: torch.Tensor | None = None) -> torch.Tensor:
        """Patches (B, N, F, P) -> latents (B, N, D); padding patches get zeros and stay out of batch norm."""
        B, N = patches.shape[:2]
        if patch_pad is None:
            return self.frontend(patches.flatten(0, 1)).view(B, N, -1)
        z = patches.new_zeros(B, N, self.config.encoder.d_model)
        real = ~patch_pad
        if bool(real.any()):
            z[real] = self.frontend(patches[real]).to(z.dtype)
        return z

    def forward_encoder(self, x: torch.Tensor, pad: torch.Tensor | None = None,
                        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frames (B, L, F), frame padding (B, L), patches to mask (B, N) ->
        (states (B, N + 1, D) with CLS first, patch padding (B, N) or None)."""
        patches = patchify(x, self.config.patch_frames)
        ppad = patch_padding(pad, self.config.patch_frames, patches.shape[1])
        z = self.extract(patches, ppad)
        if mask is not None:
            z = torch.where(mask[..., None], self.mask_token.to(z.dtype), z)
        return self.encoder(z, padding_if_any(ppad)), ppad

    @property
    def frames_per_position(self) -> int:
        return self.config.patch_frames  # one patch per encoder position

    def hidden_states(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Every bottleneck layer's states (``Encoder.layers``) over the patches, and the patches' padding."""
        patches = patchify(x, self.config.patch_frames)
        ppad = patch_padding(pad, self.config.patch_frames, patches.shape[1])
        return self.encoder.layers(self.extract(patches, ppad), padding_if_any(ppad)), ppad

    def forward_decoder(self, states: torch.Tensor) -> torch.Tensor:
        """Patch states (M, D) -> reconstructed patches (M, F, P)."""
        return self.decoder(states)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, L, F), frame padding (B, L) -> (B, C) outputs from the pooled states."""
        assert self.head is not None, "model built with n_classes=0 has no downstream head"
        h, ppad = self.forward_encoder(x, pad)
        return self.head(pool(h, ppad, self.pooling))

    # ---- checkpoints: plain tensors and primitives only (torch.load(weights_only=True))
    def spec(self) -> dict:
        return {"kind": self.kind, "config": asdict(self.config), "n_classes": self.n_classes, "head": self.head_kind,
                "pooling": self.pooling}

    def save(self, path: str | Path) -> None:
        from mirformer.atomic import write_torch

        write_torch(path, {"spec": self.spec(), "state_dict": self.state_dict()})


def load_patchifier(path: str | Path, *, n_classes: int | None = None, head: str = "pooler",
                    pooling: str = "cls") -> Patchifier:
    """Load a saved Patchifier; with ``n_classes`` given, attach a fresh ``head`` reading ``pooling``.

    Only the downstream head may be missing from the checkpoint; any other mismatch raises
    ``CheckpointError``.
    """
    ckpt = read_saved(path)
    spec = ckpt["spec"]
    if spec.get("kind") != Patchifier.kind:
        raise CheckpointError(f"{path}: not a Patchifier checkpoint (kind {spec.get('kind')!r})")
    config = PatchifierConfig(**spec["config"])
    fresh_head = n_classes is not None
    if not fresh_head:
        n_classes, head, pooling = spec["n_classes"], spec["head"], spec["pooling"]
    return load_weights(Patchifier(config, n_classes=n_classes, head=head, pooling=pooling), ckpt["state_dict"], path,
                        fresh_head=fresh_head, what="the Patchifier")
