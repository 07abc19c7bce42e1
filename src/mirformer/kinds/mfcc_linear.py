"""The classical reference: MFCC summary statistics + a linear model, scored like the neural setups.

The model is the task's (``Task.linear_model``): a class-balanced logistic regression for
classes, one logistic regression per tag, ridge regression for regression targets, its strength
chosen on the validation split by the task's monitored metric. The feature vector follows the
MFCC block of the FMA paper's hand-crafted features (Defferrard et al., 2017), restricted to mean
and standard deviation over time, with deltas added.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import scipy.fft
import soundfile as sf
from scipy.signal import savgol_filter
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from mirformer.audio import load_audio
from mirformer.datasets.base import SPLITS, Track
from mirformer.errors import AudioError, ConfigError
from mirformer.kinds.base import Kind, register_kind
from mirformer.representations.mel import LIBROSA_DEFAULT, log_mel
from mirformer.tasks import Task

HOP_LENGTH = 512  # librosa's default for mfcc, stated so the minimum duration below is explicit
DELTA_WIDTH = 9  # librosa.feature.delta default; it needs at least this many frames


@dataclass
class MFCCLinearConfig:
    sample_rate: int = 22050  # decoding rate in Hz
    n_mfcc: int = 20  # cepstral coefficients per frame, the 0th included
    seconds: float | None = None  # audio read per clip from its start (None: all of it)


def mfcc_summary(y: np.ndarray, *, sr: int, n_mfcc: int = 20) -> np.ndarray:
    """Summarise a signal as MFCC statistics over time.

    MFCCs are ``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)`` (2048-sample FFT, hop 512,
    128 mel bands, log-power in dB, DCT-II), deltas are ``librosa.feature.delta`` (width 9).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal; at least ``(DELTA_WIDTH - 1) * HOP_LENGTH`` samples (9 frames).
    sr : int > 0
        Sample rate of ``y`` in Hz.
    n_mfcc : int > 0
        Number of cepstral coefficients (0th included).

    Returns
    -------
    features : np.ndarray [shape=(4 * n_mfcc,), dtype=float64]
        ``[mean_t(mfcc), std_t(mfcc), mean_t(delta), std_t(delta)]``, each block of length
        ``n_mfcc`` in coefficient order (std is the population std, ``ddof=0``).
    """
    # librosa's own steps, without librosa: its first call compiles numba code for 15 s in a fresh
    # environment, in every worker process. Equal to librosa within 1e-3 (tests/test_baseline.py).
    db = log_mel(y, config=replace(LIBROSA_DEFAULT, sample_rate=sr, hop_length=HOP_LENGTH))  # (T, 128)
    mfcc = scipy.fft.dct(db, type=2, norm="ortho", axis=1)[:, :n_mfcc].T  # (n_mfcc, T)
    delta = savgol_filter(mfcc, DELTA_WIDTH, polyorder=1, deriv=1, axis=-1, mode="interp")  # librosa's delta
    blocks = [mfcc.mean(axis=1), mfcc.std(axis=1), delta.mean(axis=1), delta.std(axis=1)]
    return np.concatenate(blocks).astype(np.float64)


def _track_features(path, *, sr: int, n_mfcc: int, max_seconds: float | None):
    """Features of one file, or ``(None, cause)`` if it cannot be used (runs in worker threads)."""
    min_seconds = (DELTA_WIDTH - 1) * HOP_LENGTH / sr
    try:
        y = load_audio(path, sr=sr, min_seconds=min_seconds, max_seconds=max_seconds)
    except AudioError as exc:
        return None, exc.cause
    return mfcc_summary(y, sr=sr, n_mfcc=n_mfcc), None


def mfcc_features(tracks: list[Track], *, sr: int, n_mfcc: int, max_seconds: float | None, workers: int,
                  progress: bool) -> tuple[np.ndarray, list[Track], dict[str, str]]:
    """``(X [shape=(n_ok, 4 * n_mfcc)], usable tracks, skipped {id: cause})``, in ``workers``
    threads (-1: one per core)."""
    # Threads: decoding, resampling and the log-mel release the GIL, and threads start at once,
    # where worker processes first spent 10 s importing torch and the kinds' modules.
    rows, kept, skipped = [], [], {}
    with ThreadPoolExecutor(workers if workers > 0 else os.cpu_count()) as pool:
        results = pool.map(lambda t: _track_features(t.path, sr=sr, n_mfcc=n_mfcc, max_seconds=max_seconds), tracks)
        bar = tqdm(results, total=len(tracks), desc="mfcc features", unit="file", disable=not progress)
        for t, (x, cause) in zip(tracks, bar):
            if x is None:
                skipped[t.id] = cause
            else:
                rows.append(x)
                kept.append(t)
    X = np.stack(rows) if rows else np.empty((0, 0))
    return X, kept, skipped


def fit_linear(task: Task, data: dict, *, seed: int = 0) -> tuple[dict, Pipeline]:
    """Fit the task's linear model for every strength of ``task.strengths`` on train (features
    standardised), keep the best on validation by the task's monitored metric; ties go to the
    first, most regularised strength. The kept model is not refitted on train + validation (the
    neural setups also train on train only).

    ``data`` is ``{split: (X [shape=(n, d)], targets)}``. Returns ``({strength_name: value}, model)``.
    """
    kernel = task.kernels[task.monitor]
    best, best_score, selected = None, -np.inf, None
    for strength in task.strengths:
        model = make_pipeline(StandardScaler(), task.linear_model(strength, seed=seed)).fit(*data["train"])
        X, y = data["validation"]
        value = kernel(y, task.linear_outputs(model, X))
        if best is None or value > best_score:  # NaN (nothing scorable) never beats the first model
            best, best_score, selected = model, value, {task.strength_name: float(strength)}
    return selected, best


def _seconds(path, limit: float | None) -> float:
    """A file's duration in seconds (from its header), at most ``limit``."""
    seconds = sf.info(str(path)).duration
    return min(seconds, limit) if limit else seconds


def _parameters(model: Pipeline) -> int:
    """The fitted linear model's weights and biases (one model per tag for tagging)."""
    final = model[-1]
    models = getattr(final, "estimators_", [final])
    return int(sum(m.coef_.size + np.size(m.intercept_) for m in models))


@register_kind
class MFCCLinear(Kind):
    name, order, config_class = "mfcc-linear", 1000, MFCCLinearConfig
    neural, reference, label = False, True, "the MFCC baseline"

    def setups(self) -> dict[str, str | None]:
        return {self.name: None}

    def fit(self, tracks: list[Track], task: Task, settings: MFCCLinearConfig, *, seed: int = 0, workers: int = 1,
            progress: bool = True, also: dict[str, list[Track]] | None = None) -> tuple[dict, dict]:
        """Features of every usable file, the linear model selected on validation, its scores.

        ``tracks`` are labelled tracks of every split in ``SPLITS``. Returns the setup's result
        (``name``, ``model``, ``pretrained``, ``task``, ``history`` (empty), ``skipped`` (id ->
        cause), ``selected`` (the strength), ``splits`` (``task.metrics`` per split)) and every
        split's clip outputs ``{split: (track ids, targets, outputs)}``.

        ``also`` names more labelled clips (deformed test clips) that the fitted model scores too:
        their outputs join the split's under their name, and ``result["also"][name]["skipped"]``
        says which of them had no features.

        Raises ``ConfigError`` if a track has an unknown split or target, or a split has no usable file.
        """
        for t in tracks:
            if t.split not in SPLITS:
                raise ConfigError(f"track {t.id!r}: split {t.split!r} not in {SPLITS}")
        task.targets(tracks)  # every target readable, before the audio is decoded
        t0 = time.perf_counter()
        X, kept, skipped = mfcc_features(tracks, sr=settings.sample_rate, n_mfcc=settings.n_mfcc,
                                         max_seconds=settings.seconds, workers=workers, progress=progress)
        extraction = time.perf_counter() - t0
        split_of = np.array([t.split for t in kept])
        y = task.targets(kept)
        data = {s: (X[split_of == s], y[split_of == s]) for s in SPLITS}
        for s, (_, ys) in data.items():
            if len(ys) == 0:
                raise ConfigError(f"split {s!r} has no usable files ({len(skipped)} skipped)")
        selected, model = fit_linear(task, data, seed=seed)
        outputs, spent = {}, {}
        for s in SPLITS:
            t0 = time.perf_counter()
            outputs[s] = ([t.id for t in kept if t.split == s], data[s][1], task.linear_outputs(model, data[s][0]))
            spent[s] = time.perf_counter() - t0
        result_also = {}
        for name, more in (also or {}).items():
            X_more, kept_more, skipped_more = mfcc_features(more, sr=settings.sample_rate, n_mfcc=settings.n_mfcc,
                                                            max_seconds=settings.seconds, workers=workers,
                                                            progress=progress)
            y_more = task.targets(kept_more)
            outputs[name] = ([t.id for t in kept_more], y_more,
                             task.linear_outputs(model, X_more) if kept_more else np.empty((0, task.n_outputs)))
            result_also[name] = {"skipped": skipped_more}
        seconds = {s: sum(_seconds(t.path, settings.seconds) for t in kept if t.split == s) for s in SPLITS}
        weights = _parameters(model)
        cost = {"parameters": {"total": weights, "trainable": weights},
                # Decoding and MFCCs in ``workers`` threads; the linear model alone on the test clips' features.
                "extraction_x_realtime": sum(seconds.values()) / extraction, "extraction_workers": workers,
                "inference_x_realtime": seconds["test"] / spent["test"] if spent["test"] else None}
        result = {"name": self.name, "model": self.name, "pretrained": False, "task": task.name, "history": [],
                  "skipped": skipped, "selected": selected, "cost": cost,
                  "splits": {s: task.metrics(outputs[s][2], outputs[s][1]) for s in SPLITS}}
        if also:
            result["also"] = result_also
        return result, outputs
