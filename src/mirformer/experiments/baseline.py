"""Classical baseline: MFCC summary statistics + a linear model, scored like the neural setups.

The model is a class-balanced logistic regression (classification), one logistic regression per
tag (tagging) or ridge regression (regression), its strength chosen on the validation split.
The feature vector follows the MFCC block of the FMA paper's hand-crafted features (Defferrard
et al., 2017), restricted to mean and standard deviation over time, with deltas added.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from mirformer.audio import load_audio
from mirformer.datasets.base import SPLITS, Track
from mirformer.errors import AudioError, ConfigError
from mirformer.experiments.evidence import save_outputs

NAME = "mfcc-linear"
# Inverse regularisation strengths tried on the validation split, smallest first: ties go to
# the more regularised model.
C_GRID = (0.01, 0.1, 1.0, 10.0)
ALPHA_GRID = (1000.0, 100.0, 10.0, 1.0, 0.1)  # ridge penalties, strongest first for the same reason
MAX_ITER = 5000
HOP_LENGTH = 512  # librosa's default for mfcc, stated so the minimum duration below is explicit
DELTA_WIDTH = 9  # librosa.feature.delta default; it needs at least this many frames


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
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, hop_length=HOP_LENGTH)  # (n_mfcc, T)
    delta = librosa.feature.delta(mfcc, width=DELTA_WIDTH)  # (n_mfcc, T)
    blocks = [mfcc.mean(axis=1), mfcc.std(axis=1), delta.mean(axis=1), delta.std(axis=1)]
    return np.concatenate(blocks).astype(np.float64)


def _track_features(path, *, sr: int, n_mfcc: int, max_seconds: float | None):
    """Features of one file, or ``(None, cause)`` if it cannot be used (runs in workers)."""
    min_seconds = (DELTA_WIDTH - 1) * HOP_LENGTH / sr
    try:
        y = load_audio(path, sr=sr, min_seconds=min_seconds, max_seconds=max_seconds)
    except AudioError as exc:
        return None, exc.cause
    return mfcc_summary(y, sr=sr, n_mfcc=n_mfcc), None


def _extract(tracks, *, sr, n_mfcc, max_seconds, workers, progress):
    """Return ``(X [shape=(n_ok, 4 * n_mfcc)], usable tracks, skipped {id: cause})``."""
    jobs = (delayed(_track_features)(t.path, sr=sr, n_mfcc=n_mfcc, max_seconds=max_seconds) for t in tracks)
    # loky workers start fresh interpreters, so forking a parent that holds torch threads is avoided.
    results = Parallel(n_jobs=workers, return_as="generator")(jobs)
    rows, kept, skipped = [], [], {}
    bar = tqdm(results, total=len(tracks), desc="mfcc features", unit="file", disable=not progress)
    for t, (x, cause) in zip(tracks, bar):
        if x is None:
            skipped[t.id] = cause
        else:
            rows.append(x)
            kept.append(t)
    X = np.stack(rows) if rows else np.empty((0, 0))
    return X, kept, skipped


def _fit(X: np.ndarray, y: np.ndarray, *, C: float, seed: int) -> Pipeline:
    clf = LogisticRegression(C=C, max_iter=MAX_ITER, class_weight="balanced", random_state=seed)
    return make_pipeline(StandardScaler(), clf).fit(X, y)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # sklearn's default label set: classes absent from both truth and predictions are not averaged.
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0.0))


def _class_weights(y_train: np.ndarray, n_classes: int) -> np.ndarray:
    """``w_c = N / (n_classes * count_c)``, 0 for a class absent from train (sklearn's "balanced").

    The same weights as ``mirformer.tasks.class_weights`` (which the neural setups use), kept in
    numpy here so feature workers never import torch.
    """
    counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
    return np.divide(len(y_train), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)


def _split_metrics(model: Pipeline, X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> dict:
    """Macro F1, accuracy, weighted cross-entropy (nats), confusion (rows true, columns predicted).

    The loss is ``sum_i w[y_i] * -ln p_i(y_i) / sum_i w[y_i]``, what
    ``torch.nn.functional.cross_entropy(weight=w)`` gives the neural setups, so losses compare.
    """
    n_classes = len(weights)
    labels = list(range(n_classes))
    # A class missing from train has no column in predict_proba; it gets probability 0 here.
    proba = np.zeros((len(y), n_classes))
    proba[:, model.classes_] = model.predict_proba(X)
    y_pred = model.predict(X)
    return {
        "macro_f1": _macro_f1(y, y_pred),
        "accuracy": float(accuracy_score(y, y_pred)),
        "loss": float(log_loss(y, proba, labels=labels, sample_weight=weights[y])),
        "confusion": confusion_matrix(y, y_pred, labels=labels).tolist(),
        "n": int(len(y)),
    }


def _check_tracks(tracks: list[Track], classes: list[str], task: str) -> None:
    if not classes or len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be non-empty and unique, got {classes!r}")
    known = set(classes)
    for t in tracks:
        if t.split not in SPLITS:
            raise ConfigError(f"track {t.id!r}: split {t.split!r} not in {SPLITS}")
        if task == "classification" and t.label not in known:
            raise ConfigError(f"track {t.id!r}: label {t.label!r} not in classes {classes}")
        if task == "regression" and (t.targets is None or len(t.targets) != len(classes)):
            raise ConfigError(f"track {t.id!r}: expected {len(classes)} targets {classes}, got {t.targets!r}")


def _targets(kept: list[Track], classes: list[str], task: str) -> np.ndarray:
    """Class indices (N,), multi-hot tags (N, T) or regression targets (N, K)."""
    if task == "classification":
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[t.label] for t in kept], dtype=np.int64)
    if task == "regression":
        return np.array([t.targets for t in kept], dtype=np.float64).reshape(len(kept), len(classes))
    index = {c: i for i, c in enumerate(classes)}
    Y = np.zeros((len(kept), len(classes)), dtype=np.int64)
    for row, t in enumerate(kept):
        Y[row, [index[tag] for tag in t.labels or () if tag in index]] = 1
    return Y


def _fit_scored(data: dict, classes: list[str], task: str, seed: int) -> tuple[dict, dict]:
    """Tagging or regression: fit each strength of the grid on train, keep the best on validation.

    Scores are ``mirformer.tasks``' metrics of the model's decision values (per-tag logits, or
    predicted targets), the same functions the neural setups are scored with.
    """
    import torch

    from mirformer.tasks import regression_metrics, tagging_metrics

    def score(model, X, Y):
        # scikit-learn returns one column as a vector (one target or tag): shape it like Y.
        if task == "tagging":
            return tagging_metrics(torch.tensor(model.decision_function(X)).reshape(Y.shape), torch.tensor(Y),
                                   names=classes)
        return regression_metrics(torch.tensor(model.predict(X)).reshape(Y.shape), torch.tensor(Y), names=classes)

    monitor = "roc_auc" if task == "tagging" else "r2"
    best, best_score, selected = None, -np.inf, None
    for strength in (C_GRID if task == "tagging" else ALPHA_GRID):
        if task == "tagging":
            # A tag without positives in train gets a constant predictor (sklearn warns; scored as undefined).
            est = OneVsRestClassifier(LogisticRegression(C=strength, max_iter=MAX_ITER, random_state=seed))
        else:
            est = Ridge(alpha=strength)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not present in all training examples.*")
            model = make_pipeline(StandardScaler(), est).fit(*data["train"])
        value = score(model, *data["validation"])[monitor]
        if best is None or value > best_score:  # NaN (no scorable tag) never beats the first model
            best, best_score, selected = model, value, {"C" if task == "tagging" else "alpha": float(strength)}
    return selected, {s: score(best, *data[s]) for s in SPLITS}, best


def run_mfcc_baseline(
    tracks: list[Track],
    *,
    classes: list[str],
    task: str = "classification",
    sample_rate: int = 22050,
    n_mfcc: int = 20,
    max_seconds: float | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    outputs: Path | None = None,
) -> dict:
    """Train and score the MFCC + linear-model baseline.

    Each file becomes the ``4 * n_mfcc`` vector of ``mfcc_summary``, standardised. For
    classification a class-balanced logistic regression is fitted on the train split for every
    C in ``C_GRID`` and the C with the best validation macro F1 is kept; tagging fits one
    logistic regression per tag (C by validation macro ROC-AUC), regression a ridge regression
    (alpha in ``ALPHA_GRID`` by validation mean R2). The kept model is not refitted on train +
    validation (the neural setups also train on train only) and is scored on every split.

    Parameters
    ----------
    tracks : list of Track
        Labelled tracks; every split in ``SPLITS`` needs usable files.
    classes : list of str
        Output names (classes, tags or regression targets); an index in this list is an output index.
    task : str
        ``"classification"`` (``Track.label``), ``"tagging"`` (``Track.labels``; tags outside
        ``classes`` are ignored) or ``"regression"`` (``Track.targets``).
    sample_rate : int > 0
        Decoding rate in Hz.
    n_mfcc : int > 0
        Cepstral coefficients per frame.
    max_seconds : float > 0 or None
        Use at most this many seconds from the start of each file (None: whole file).
    seed : int
        ``random_state`` of the classifier.
    workers : int
        Feature-extraction processes (joblib convention: -1 = all cores).
    progress : bool
        Show a progress bar over files.
    outputs : Path or None
        Where to save every split's per-clip outputs (``model_outputs``) with their track ids and
        targets (``mirformer.experiments.evidence.save_outputs``).

    Returns
    -------
    results : dict
        The setup schema shared with the neural setups: ``name``, ``model``, ``pretrained``,
        ``selected`` (``{"C": float}``), ``splits`` (per split: ``macro_f1``, ``accuracy``,
        ``loss`` = cross-entropy in nats weighted by the train split's balanced class weights,
        as the neural setups report it, ``confusion`` [shape=(n_classes, n_classes)]
        with rows = true and columns = predicted class in ``classes`` order, ``n``), ``history``
        (empty) and ``skipped`` (track id -> cause, files that could not be used). Tagging and
        regression report ``mirformer.tasks.tagging_metrics`` / ``regression_metrics`` per split
        and ``selected`` ``{"C"}`` / ``{"alpha"}``.

    Raises
    ------
    ConfigError
        If a track has an unknown split or label, a split has no usable file, or the train split
        has fewer than two classes.
    """
    _check_tracks(tracks, classes, task)
    X, kept, skipped = _extract(
        tracks, sr=sample_rate, n_mfcc=n_mfcc, max_seconds=max_seconds, workers=workers, progress=progress
    )
    y = _targets(kept, classes, task)
    split_of = np.array([t.split for t in kept])
    data = {s: (X[split_of == s], y[split_of == s]) for s in SPLITS}
    for s, (_, ys) in data.items():
        if len(ys) == 0:
            raise ConfigError(f"split {s!r} has no usable files ({len(skipped)} skipped)")
    selected, splits, model = fit_linear(data, classes=classes, task=task, seed=seed)
    if outputs is not None:
        save_outputs(outputs, {s: ([t.id for t in kept if t.split == s], data[s][1],
                                   model_outputs(model, data[s][0], task=task, n_outputs=len(classes))) for s in SPLITS})
    return {"name": NAME, "model": NAME, "pretrained": False, "task": task, "history": [], "skipped": skipped,
            "selected": selected, "splits": splits}


def fit_linear(data: dict, *, classes: list[str], task: str, seed: int = 0) -> tuple[dict, dict]:
    """Fit the linear model for every strength of the grid on train, keep the best on validation.

    Only the kept model is scored, on every split; it is not refitted on train + validation.

    Parameters
    ----------
    data : dict
        ``{split: (X [shape=(n, d)], y)}`` for every split in ``SPLITS``; ``y`` as ``_targets`` gives it.
    classes : list of str
        Output names.
    task : str
        ``"classification"`` (C by validation macro F1), ``"tagging"`` (C by validation macro
        ROC-AUC) or ``"regression"`` (alpha by validation mean R2). Ties go to the first, most
        regularised strength.
    seed : int
        ``random_state`` of the logistic regressions.

    Returns
    -------
    selected : dict
        ``{"C": float}`` or ``{"alpha": float}``.
    splits : dict
        Metrics of the kept model per split (see ``run_mfcc_baseline``).
    model : Pipeline
        The kept model.
    """
    if task != "classification":
        return _fit_scored(data, classes, task, seed)
    X_train, y_train = data["train"]
    if len(np.unique(y_train)) < 2:
        raise ConfigError(f"train split has {len(np.unique(y_train))} class(es); need at least 2")
    best_model, best_C, best_f1 = None, None, -1.0
    for C in C_GRID:
        model = _fit(X_train, y_train, C=C, seed=seed)
        f1 = _macro_f1(data["validation"][1], model.predict(data["validation"][0]))
        if f1 > best_f1:
            best_model, best_C, best_f1 = model, C, f1
    weights = _class_weights(y_train, len(classes))
    return {"C": float(best_C)}, {s: _split_metrics(best_model, *data[s], weights) for s in SPLITS}, best_model


def model_outputs(model: Pipeline, X: np.ndarray, *, task: str, n_outputs: int) -> np.ndarray:
    """Per-clip outputs as the neural setups save them (``outputs.npz``): log-probabilities per
    class (argmax: the predicted class), decision values per tag, or predicted targets."""
    if task == "classification":
        logp = np.full((len(X), n_outputs), -np.inf)
        logp[:, model.classes_] = model.predict_log_proba(X)
        return np.maximum(logp, np.finfo(np.float32).min)
    values = model.decision_function(X) if task == "tagging" else model.predict(X)
    return np.asarray(values).reshape(len(X), n_outputs)
