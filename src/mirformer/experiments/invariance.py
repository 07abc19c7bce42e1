"""Probe: do tokens change under transformations a listener does not hear, where log-mel does not?

Each signal is transformed (polarity inversion, sub-hop time shifts, a gain change, faint white
noise; plus the identity as a control) and both the original and the transformed signal are
tokenized and turned into log-mel spectrograms. Per (file, transformation) the probe reports
how many token positions keep their token (all of a frame's codebooks, and each codebook on its
own for a residual tokenizer or codec), how far the quantised vectors move, and how far the
log-mel moves in dB. It computes only; ``invariance_plot`` writes the table and figure.

The probe depends on no model class: anything with the ``Tokenizer`` attributes works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mirformer.audio import load_audio
from mirformer.deformations.noise import add_noise
from mirformer.errors import AudioError, ConfigError, MirformerError
from mirformer.representations.mel import THESIS, MelConfig, log_mel

METRICS = ("token_agreement", "vector_distance", "mel_diff_db")
COLUMNS = ("file", "transform", *METRICS, "n_tokens", "n_frames")


@runtime_checkable
class Tokenizer(Protocol):
    """What the probe needs of an audio tokenizer.

    Attributes
    ----------
    sample_rate : int
        Rate in Hz of the audio ``tokenize`` takes.
    hop_length : int
        Samples per token: token ``t`` stands for samples from ``t * hop_length`` on.
    """

    sample_rate: int
    hop_length: int

    def tokenize(self, y: np.ndarray) -> np.ndarray:
        """Mono audio [shape=(n,), float32] -> token ids [shape=(T,) or (T, C) for C codebooks, int],
        ``T`` about ``n / hop_length``."""

    def vectors(self, tokens: np.ndarray) -> np.ndarray:
        """Token ids [shape=(T,) or (T, C)] -> their quantised vectors [shape=(T, D), float]."""


@dataclass(frozen=True)
class Transform:
    """A named, deterministic, length-preserving change of a signal [shape=(n,)] -> [shape=(n,)]."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]


def invert_polarity(y: np.ndarray) -> np.ndarray:
    """``-y``: sounds the same, identical magnitude spectrum."""
    return -y


def shift(y: np.ndarray, samples: int) -> np.ndarray:
    """Delay by ``samples``: prepend that many zeros, drop as many from the end (length kept)."""
    return np.concatenate([np.zeros(samples, y.dtype), y[: len(y) - samples]])


def apply_gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by ``gain_db`` dB (amplitude factor ``10 ** (gain_db / 20)``)."""
    return (y * 10 ** (gain_db / 20)).astype(y.dtype)


def standard_transforms(
    *,
    hop_length: int,
    shifts: Sequence[int] | None = None,
    gain_db: float = -6.0,
    snr_db: float = 40.0,
    seed: int = 0,
) -> list[Transform]:
    """The probe's transformations, the identity (control) first.

    Parameters
    ----------
    hop_length : int > 1
        The tokenizer's hop in samples.
    shifts : sequence of int in [1, hop_length) or None
        Delays in samples (None: those of ``1, 2, hop_length // 2, hop_length - 1`` below ``hop_length``;
        duplicates dropped).
    gain_db : float
        Gain change in dB.
    snr_db : float
        Signal-to-noise ratio of the added white noise in dB.
    seed : int
        Seed of the noise.

    Returns
    -------
    transforms : list of Transform
        Names ``identity``, ``polarity``, ``shift {s}``, ``gain {gain_db:+g} dB``, ``noise {snr_db:g} dB SNR``.
    """
    if hop_length < 2:
        raise ConfigError(f"hop_length must be >= 2 for sub-hop shifts, got {hop_length}")
    if shifts is None:
        shifts = [s for s in (1, 2, hop_length // 2, hop_length - 1) if s < hop_length]
    bad = [s for s in shifts if not 1 <= s < hop_length]
    if bad:
        # A shift of a whole hop or more moves content to another token position.
        raise ConfigError(f"shifts must lie in [1, {hop_length - 1}] (below one hop), got {bad}")
    return [
        Transform("identity", np.copy),
        Transform("polarity", invert_polarity),
        *(Transform(f"shift {s}", partial(shift, samples=s)) for s in sorted(set(shifts))),
        Transform(f"gain {gain_db:+g} dB", partial(apply_gain, gain_db=gain_db)),
        Transform(f"noise {snr_db:g} dB SNR", partial(add_noise, snr_db=snr_db, seed=seed)),
    ]


def _tokens(tokenizer: Tokenizer, y: np.ndarray, name: str) -> np.ndarray:
    tokens = np.asarray(tokenizer.tokenize(y))
    if tokens.ndim not in (1, 2) or not np.issubdtype(tokens.dtype, np.integer):
        raise MirformerError(f"{name}: tokenize must return integer tokens of shape (T,) or (T, C), got shape "
                             f"{tokens.shape} dtype {tokens.dtype}")
    return tokens


def change_between(
    y: np.ndarray,
    y2: np.ndarray,
    *,
    tokenizer: Tokenizer,
    mel_config: MelConfig,
    name: str = "signal",
) -> dict[str, float]:
    """Token and log-mel change between ``y`` and its transformed copy ``y2``.

    Positions are compared index by index, over those both signals have: token ``t`` with
    token ``t``, mel frame ``t`` with frame ``t``. For a shift of ``s < hop`` samples this is the
    best alignment there is: content moves by less than one token, and by ``s`` samples against
    a mel window of ``n_fft`` samples (at the thesis setting 512, hop 128, so under a quarter of
    the window). The first and last positions of a shifted signal also see the zeros shifted in
    and the samples dropped; over seconds of audio that is negligible.

    Parameters
    ----------
    y, y2 : np.ndarray [shape=(n,)], [shape=(n2,)]
        Original and transformed mono signal at ``tokenizer.sample_rate`` Hz.
    tokenizer : Tokenizer
        Object with ``sample_rate``, ``hop_length``, ``tokenize`` and ``vectors``.
    mel_config : MelConfig
        Its ``sample_rate`` equals the tokenizer's and ``ref`` is ``"1.0"``.
    name : str
        Used in error messages.

    Returns
    -------
    row : dict
        ``token_agreement`` (fraction in [0, 1] of positions with the same token, in every codebook),
        with several codebooks ``agreement_codebook_{c}`` (the same for codebook c alone, from 1),
        ``vector_distance`` (mean L2 distance between the positions' quantised vectors),
        ``mel_diff_db`` (mean absolute log-mel difference in dB over all cells),
        ``n_tokens`` and ``n_frames`` (positions compared).
    """
    a, b = _tokens(tokenizer, y, name), _tokens(tokenizer, y2, name)
    n_tokens = min(len(a), len(b))
    if n_tokens == 0:
        raise MirformerError(f"{name}: the tokenizer returned no tokens for {len(y)} samples")
    a, b = a[:n_tokens], b[:n_tokens]
    distance = np.linalg.norm(np.asarray(tokenizer.vectors(a), np.float64) - tokenizer.vectors(b), axis=1)
    mel_a, mel_b = log_mel(y, config=mel_config), log_mel(y2, config=mel_config)
    n_frames = min(len(mel_a), len(mel_b))
    mel_a, mel_b = mel_a[:n_frames], mel_b[:n_frames]
    same = (a == b).reshape(n_tokens, -1)  # (T, C)
    per_codebook = {f"agreement_codebook_{c + 1}": float(same[:, c].mean()) for c in range(same.shape[1])}
    return {
        "token_agreement": float(same.all(1).mean()),
        **(per_codebook if same.shape[1] > 1 else {}),
        "vector_distance": float(distance.mean()),
        "mel_diff_db": float(np.mean(np.abs(mel_a.astype(np.float64) - mel_b))),
        "n_tokens": n_tokens,
        "n_frames": n_frames,
    }


def probe_invariance(
    signals: dict[str, np.ndarray],
    *,
    tokenizer: Tokenizer,
    mel_config: MelConfig = THESIS,
    shifts: Sequence[int] | None = None,
    gain_db: float = -6.0,
    snr_db: float = 40.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Token and log-mel change under each of ``standard_transforms`` for every signal.

    With ``mel_config.power == 2`` a gain of ``g`` dB moves every log-mel cell above the ``amin``
    floor by exactly ``g`` dB, and with ``top_db`` the clipped cells too, as the clipping level
    follows the peak; polarity inversion leaves the log-mel unchanged up to rounding.

    Parameters
    ----------
    signals : dict of str to np.ndarray [shape=(n,)]
        Mono signals at ``tokenizer.sample_rate`` Hz, keyed by file name; ``n >= hop_length``.
    tokenizer : Tokenizer
        Object with ``sample_rate``, ``hop_length``, ``tokenize`` and ``vectors``.
    mel_config : MelConfig
        Log-mel parameters; ``sample_rate`` must equal the tokenizer's and ``ref`` be ``"1.0"``
        (``"max"`` would hide gain changes). Default: the thesis setting (44.1 kHz).
    shifts : sequence of int in [1, hop_length) or None
        Delays in samples (None: ``1, 2, hop // 2, hop - 1``).
    gain_db : float
        Gain change in dB.
    snr_db : float
        SNR of the added white noise in dB.
    seed : int
        Noise seed; every signal gets the same noise sequence (order-independent results).

    Returns
    -------
    df : pandas.DataFrame
        One row per (file, transformation), columns ``COLUMNS``: ``file``, ``transform``,
        ``token_agreement``, ``vector_distance``, ``mel_diff_db``, ``n_tokens``, ``n_frames``; with
        several codebooks also ``agreement_codebook_1`` .. ``agreement_codebook_C`` after
        ``token_agreement``.
    """
    if not isinstance(tokenizer, Tokenizer):
        raise ConfigError(f"tokenizer needs sample_rate, hop_length, tokenize and vectors; got {tokenizer!r}")
    if mel_config.sample_rate != tokenizer.sample_rate:
        raise ConfigError(f"mel_config.sample_rate {mel_config.sample_rate} Hz differs from the tokenizer's "
                          f"{tokenizer.sample_rate} Hz")
    if mel_config.ref != "1.0":
        raise ConfigError(f"mel_config.ref must be '1.0' (absolute levels), got {mel_config.ref!r}")
    if not signals:
        raise MirformerError("probe_invariance got no signals")
    transforms = standard_transforms(hop_length=tokenizer.hop_length, shifts=shifts, gain_db=gain_db,
                                     snr_db=snr_db, seed=seed)
    rows = []
    for name, y in signals.items():
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1 or len(y) < tokenizer.hop_length or not np.all(np.isfinite(y)):
            raise MirformerError(f"{name}: need finite mono audio of at least {tokenizer.hop_length} samples, "
                                 f"got shape {y.shape}")
        for t in transforms:
            row = change_between(y, t.apply(y), tokenizer=tokenizer, mel_config=mel_config, name=name)
            rows.append({"file": name, "transform": t.name, **row})
    return pd.DataFrame(rows, columns=[*COLUMNS[:3], *codebook_columns(rows[0]), *COLUMNS[3:]])


def codebook_columns(row) -> list[str]:
    """The per-codebook agreement columns of a row or frame (none for one codebook)."""
    return [c for c in row.keys() if c.startswith("agreement_codebook_")]


def summarise_transforms(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per transformation, in the order first seen.

    Parameters
    ----------
    df : pandas.DataFrame
        ``probe_invariance``'s output.

    Returns
    -------
    summary : pandas.DataFrame
        Index ``transform``; columns ``n_files`` and the means of ``token_agreement``, of each
        ``agreement_codebook_{c}`` there is, of ``vector_distance`` and ``mel_diff_db``.
    """
    grouped = df.groupby("transform", sort=False)
    summary = grouped[[METRICS[0], *codebook_columns(df), *METRICS[1:]]].mean()
    summary.insert(0, "n_files", grouped["file"].nunique())
    return summary


def load_signals(
    paths: Iterable[str | Path],
    *,
    sample_rate: int,
    max_seconds: float | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decode audio files for the probe, skipping the unusable ones.

    Parameters
    ----------
    paths : iterable of str or Path
        Audio files.
    sample_rate : int > 0
        Target rate in Hz (the tokenizer's).
    max_seconds : float > 0 or None
        Decode at most this many seconds from each file's start.

    Returns
    -------
    signals : dict of str to np.ndarray [shape=(n,), float32]
        Keyed by file name (the full path where two files share a name).
    skipped : dict of str to str
        Path -> reason, for files ``load_audio`` refused (``AudioError``).
    """
    signals, skipped = {}, {}
    for path in paths:
        try:
            y = load_audio(path, sr=sample_rate, max_seconds=max_seconds)
        except AudioError as exc:
            skipped[exc.path] = exc.cause
            continue
        key = Path(path).name
        signals[str(path) if key in signals else key] = y
    return signals, skipped
