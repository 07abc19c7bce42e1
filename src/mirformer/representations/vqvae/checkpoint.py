"""Read and write VQ-VAE checkpoints in Jukebox's layout (``vqvae.pth.tar``).

Jukebox's ``save_checkpoint`` writes ``{'hps': dict, 'model': state_dict, 'opt': ..., 'step': int}``
and its reader only strips a DDP ``module.`` prefix from the keys before a strict
``load_state_dict``. ``save_vqvae`` writes the same layout plus ``'mirformer_config'`` (the
``VQVAEConfig`` as a plain dict), so the released file and a mirformer-trained VQ-VAE load through
``load_jukebox_vqvae`` alike. ``official_state_dict`` and ``load_official_state`` are that layout's
state dict alone (the model's own adds the codebooks' EMA statistics, which Jukebox leaves out),
for other files that embed a VQ-VAE.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from mirformer.atomic import write_torch
from mirformer.errors import CheckpointError
from mirformer.representations.vqvae.bottleneck import BottleneckBlock
from mirformer.representations.vqvae.config import VQVAEConfig
from mirformer.representations.vqvae.model import VQVAE

CONFIG_KEY = "mirformer_config"


def _read(path: Path, trust_pickle: bool) -> object:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if trust_pickle or not found:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0]})") from e
        raise CheckpointError(
            f"{path} holds pickled Python objects ({found.group(1)}, e.g. numpy scalars in 'hps'), which "
            "torch.load(weights_only=True) refuses because unpickling them can run arbitrary code. If you "
            "trust the file's source, pass trust_pickle=True to load the full pickle (mirformer extract / "
            "probe-invariance: --trust-checkpoint; mirformer compare: --set tokenizer.trust_checkpoint=true)."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({e})") from e


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _ema_keys(model: VQVAE) -> set[str]:
    return {f"{name}.{key}" for name, m in model.named_modules() if isinstance(m, BottleneckBlock)
            for key in BottleneckBlock.EMA_STATE}


def official_state_dict(model: VQVAE) -> dict[str, torch.Tensor]:
    """``model``'s state dict in Jukebox's layout, on the CPU: every key but the codebooks' EMA
    statistics (669 entries for the default config, only ``k`` per bottleneck level)."""
    ema = _ema_keys(model)
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if k not in ema}


def load_official_state(model: VQVAE, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a state dict in Jukebox's layout into ``model``, then rebuild the EMA statistics from
    the codebooks (``restore_k``).

    Raises
    ------
    CheckpointError
        If its keys or shapes differ from ``official_state_dict(model)``'s (all differences listed).
    """
    expected = official_state_dict(model)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(state_dict) if _shape(expected[k]) != _shape(state_dict[k]))
    if missing or unexpected or misshaped:
        lines = [f"does not match the VQ-VAE built from {model.config}:"]
        lines += [f"  missing {k} {_shape(expected[k])}" for k in missing]
        lines += [f"  unexpected {k} {_shape(state_dict[k])}" for k in unexpected]
        lines += [f"  mis-shaped {k}: file {_shape(state_dict[k])}, model {_shape(expected[k])}" for k in misshaped]
        raise CheckpointError("\n".join(lines))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    assert not unexpected and set(missing) == _ema_keys(model), (missing, unexpected)
    model.restore_k()


def load_jukebox_vqvae(path: str | Path, *, config: VQVAEConfig | None = None, trust_pickle: bool = False) -> VQVAE:
    """Build a ``VQVAE`` and load a Jukebox-layout checkpoint into it.

    Parameters
    ----------
    path : str or Path
        ``vqvae.pth.tar`` from Jukebox, a file written by ``save_vqvae``, or a bare state_dict.
    config : VQVAEConfig or None
        Architecture to build. None: the file's ``'mirformer_config'`` if it has one, else
        Jukebox's (``JUKEBOX``).
    trust_pickle : bool
        Load with ``weights_only=False``, which can run arbitrary code from the file: only for
        files from a trusted source whose ``hps`` hold pickled objects (numpy scalars).

    Returns
    -------
    model : VQVAE
        In eval mode, with every level's EMA statistics restored from its codebook.

    Raises
    ------
    CheckpointError
        The file is missing or unreadable, holds pickled objects and ``trust_pickle`` is False,
        has no state_dict, or its keys or shapes differ from the model's (all differences listed).
    """
    path = Path(path)
    ckpt = _read(path, trust_pickle)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(ckpt).__name__}")
    if "model" in ckpt:
        state = ckpt["model"]
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt  # a bare state_dict
    else:
        raise CheckpointError(f"{path}: no 'model' entry and not a state_dict; top-level keys {sorted(map(str, ckpt))}")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DDP prefix, as Jukebox strips it

    if config is None:
        config = VQVAEConfig.from_dict(ckpt[CONFIG_KEY]) if CONFIG_KEY in ckpt else VQVAEConfig()
    model = VQVAE(config)
    try:
        load_official_state(model, state)
    except CheckpointError as e:
        raise CheckpointError(f"{path} {e}") from None
    return model.eval()


def save_vqvae(model: VQVAE, path: str | Path, *, step: int = 0, extra: dict | None = None) -> None:
    """Write ``model`` atomically in Jukebox's checkpoint layout, loadable with ``weights_only=True``.

    Parameters
    ----------
    model : VQVAE
        Its ``official_state_dict`` is stored.
    path : str or Path
        Output file (``*.pth.tar`` by Jukebox's convention).
    step : int >= 0
        Training step, stored as ``'step'``.
    extra : dict or None
        Further top-level entries (metrics, ...); plain Python values and tensors only, so the
        file stays loadable without unpickling objects.
    """
    cfg = model.config
    hps = dict(  # Jukebox's hparam names, for tools that read them
        sr=cfg.sample_rate, levels=cfg.levels, downs_t=list(cfg.downs_t), strides_t=list(cfg.strides_t),
        emb_width=cfg.emb_width, l_bins=cfg.l_bins, l_mu=cfg.mu, commit=cfg.commit, width=cfg.width,
        depth=cfg.depth, hvqvae_multipliers=list(cfg.multipliers), m_conv=cfg.m_conv,
        dilation_growth_rate=cfg.dilation_growth_rate, dilation_cycle=None,
        vqvae_reverse_decoder_dilation=cfg.reverse_decoder_dilation, revival_threshold=cfg.threshold,
    )
    ckpt = {
        "hps": hps,
        "model": official_state_dict(model),
        "opt": None,
        "step": int(step),
        CONFIG_KEY: cfg.to_dict(),
    }
    clash = set(extra or {}) & set(ckpt)
    if clash:
        raise CheckpointError(f"extra entries {sorted(clash)} would overwrite the checkpoint's own")
    ckpt.update(extra or {})
    write_torch(path, ckpt)
