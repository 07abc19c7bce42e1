"""The report's figures: confusion matrices, training curves, fine-tuning modes, reconstructions.

Each function draws one PNG from saved numbers. Figures are ``matplotlib.figure.Figure`` objects
rendered by Agg without pyplot, so importing this module leaves the caller's backend (a
notebook's, say) alone and no figure outlives its function.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from mirformer.atomic import atomic_path

# A monitor metric's display name.
METRIC_LABELS = {"macro_f1": "macro F1", "roc_auc": "ROC-AUC", "r2": "R2"}


def _save(fig: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)


def plot_confusion(confusion, classes: list[str], path: str | Path, *, title: str) -> None:
    """Write a row-normalised confusion matrix as a PNG, raw counts written in the cells.

    Parameters
    ----------
    confusion : array-like of int [shape=(K, K)]
        Counts; rows = true class, columns = predicted class, both in ``classes`` order.
    classes : list of str [length=K]
        Class names for the axes.
    path : str or Path
        PNG to write (atomically).
    title : str
        Figure title.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    k = len(classes)
    assert cm.shape == (k, k), f"confusion shape {cm.shape} does not match {k} classes"
    rows = cm.sum(axis=1, keepdims=True)
    # Colour is recall, so classes of different sizes compare; an empty row stays 0, not NaN.
    recall = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)

    side = max(4.5, 0.45 * k + 2.5)  # inches; keeps cells readable as K grows
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0)
    fontsize = max(5, 10 - k // 6)
    for i in range(k):
        for j in range(k):
            colour = "white" if recall[i, j] > 0.5 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour, fontsize=fontsize)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class (recall)")
    _save(fig, path)


def _series(history: list[dict], key: str) -> tuple[list, list]:
    """(epochs, values) for ``key``, leaving out entries where it is missing, None or not finite."""
    points = [
        (entry.get("epoch", i), entry[key])
        for i, entry in enumerate(history)
        if entry.get(key) is not None and math.isfinite(entry[key])
    ]
    return [e for e, _ in points], [v for _, v in points]


def plot_curves(results: dict, path: str | Path) -> None:
    """Write per-epoch curves of every setup with a history as one PNG.

    Panels: fine-tuning loss, the task's validation metric (macro F1, ROC-AUC or R2; ``monitor``
    in results, macro F1 by default) and, if any setup has ``pretrain_history``, pretraining
    loss; train solid, validation dashed, one colour per setup. Missing or None values are
    skipped point by point.

    Parameters
    ----------
    results : dict
        ``{"setups": {name: setup}}``; setups with neither ``history`` nor
        ``pretrain_history`` (the classical baseline) are left out.
    path : str or Path
        PNG to write (atomically).
    """
    setups = {n: s for n, s in results["setups"].items() if s.get("history") or s.get("pretrain_history")}
    panels = [
        ("history", "train_loss", "val_loss", "fine-tuning loss", "loss"),
    ]
    monitor = results.get("monitor", "macro_f1")
    label = METRIC_LABELS.get(monitor, monitor)
    panels.append(("history", f"train_{monitor}", f"val_{monitor}", label, label))
    if any(s.get("pretrain_history") for s in setups.values()):
        panels.append(("pretrain_history", "train_loss", "val_loss", "pretraining loss", "loss"))

    fig = Figure(figsize=(5.0 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = {name: f"C{i % 10}" for i, name in enumerate(setups)}
    for ax, (field, train_key, val_key, title, ylabel) in zip(axes, panels):
        drawn = False
        for name, setup in setups.items():
            history = setup.get(field) or []
            for key, style in ((train_key, "-"), (val_key, "--")):
                epochs, values = _series(history, key)
                if values:
                    ax.plot(epochs, values, style, color=colours[name], marker="o", markersize=3)
                    drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)

    handles = [Line2D([], [], color=c, label=n) for n, c in colours.items()]
    handles += [
        Line2D([], [], color="black", linestyle="-", label="train"),
        Line2D([], [], color="black", linestyle="--", label="validation"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False)
    _save(fig, path)




def plot_modes(setups: dict, monitor: str, path: str | Path, *, title: str) -> None:
    """Validation metric per epoch of several fine-tuning modes of one model on one plot (the
    Patchifier paper's Fig. 2), each labelled with its best score.

    Parameters
    ----------
    setups : dict
        ``{mode label: setup}``; each setup's ``history`` holds ``val_<monitor>`` per epoch.
    monitor : str
        The task's validation metric (``macro_f1``, ``roc_auc``, ``r2``).
    path : str or Path
        PNG to write (atomically).
    title : str
        Figure title.
    """
    label = METRIC_LABELS.get(monitor, monitor)
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (mode, setup) in enumerate(setups.items()):
        epochs, values = _series(setup.get("history") or [], f"val_{monitor}")
        best = f" (best {max(values):.2f})" if values else ""
        ax.plot(epochs, values, "-", color=f"C{i % 10}", marker="o", markersize=3, label=f"{mode}{best}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"validation {label}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    _save(fig, path)


def plot_examples(examples: dict, path: str | Path, *, title: str) -> None:
    """Rows of (input, masked input, reconstruction) spectrograms: what a pretraining stage learned.

    Parameters
    ----------
    examples : dict
        ``input``, ``masked``, ``reconstruction``: arrays [shape=(n, F, T)] (bands x frames), one
        row per example, all drawn on the input's colour scale.
    path : str or Path
        PNG to write (atomically).
    title : str
        Figure title.
    """
    columns = ("input", "masked", "reconstruction")
    n, F, T = np.asarray(examples["input"]).shape
    low, high = float(np.nanmin(examples["input"])), float(np.nanmax(examples["input"]))
    width = min(4.0, 1.0 + T / 40)
    fig = Figure(figsize=(3 * width + 0.5, 1.6 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for row in range(n):
        for col, key in enumerate(columns):
            ax = axes[row][col]
            ax.imshow(np.asarray(examples[key][row]), origin="lower", aspect="auto", vmin=low, vmax=high,
                      cmap="magma", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(key)
    fig.suptitle(f"{title} ({F} bands x {T} frames)")
    _save(fig, path)


def plot_forest(intervals: dict, metric: str, path: str | Path, *, title: str, chance: float | None = None) -> None:
    """Every setup's test ``metric`` with its 95% interval, one row each, best on top.

    Parameters
    ----------
    intervals : dict
        ``{setup: {metric: {"value", "low", "high"}}}`` (``evidence_of_run``'s ``intervals``).
    metric : str
    path : str or Path
        PNG to write (atomically).
    title : str
    chance : float or None
        A dashed line at chance level.
    """
    rows = sorted(((name, m[metric]) for name, m in intervals.items() if metric in m), key=lambda r: r[1]["value"])
    fig = Figure(figsize=(7, 0.9 + 0.35 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    for y, (name, m) in enumerate(rows):
        ax.plot([m["low"], m["high"]], [y, y], color="tab:blue", lw=2)
        ax.plot(m["value"], y, "o", color="tab:blue")
    if chance is not None:
        ax.axvline(chance, color="grey", ls="--", lw=1, label="chance")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.set_xlabel(f"test {METRIC_LABELS.get(metric, metric)} (95% bootstrap interval)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def plot_sweep(lines: dict, key: str, metric: str, path: str | Path, *, title: str, side: dict | None = None,
               side_title: str = "", reference: dict | None = None, x: dict | None = None) -> None:
    """Test score against a swept setting, one line per model and mode, with 95% intervals; beside
    it, what the setting itself measures (a tokenizer's reconstruction quality).

    Parameters
    ----------
    lines : dict
        ``{label: [(value, {"value", "low", "high"}), ...]}`` in the sweep's order.
    key : str
        The swept config key (the x axis; its values are categories, evenly spaced).
    metric : str
    path : str or Path
        PNG to write (atomically).
    title : str
    side : dict or None
        ``{measure label: [(value, number), ...]}``: a second panel, one line per measure.
    side_title : str
        That panel's title.
    reference : dict or None
        ``{label: number}``: horizontal lines for setups the sweep leaves alone (log-mel, the baseline).
    x : dict or None
        ``{value: number}``: a numeric x axis on a log scale instead of evenly spaced values (the
        pretraining clips each share of a pretraining set gives).
    """
    values = list(dict.fromkeys(str(v) for points in lines.values() for v, _ in points))
    fig = Figure(figsize=(10.5 if side else 6.5, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 2 if side else 1, 1)
    for i, (label, points) in enumerate(lines.items()):
        if x:  # dodge the bars by a factor on the log scale
            at = np.array([x[v] for v, _ in points], float) * 1.03 ** (i - len(lines) / 2)
        else:
            at = np.array([values.index(str(v)) for v, _ in points]) + 0.06 * (i - len(lines) / 2)
        ys = np.array([[m["value"], m["low"], m["high"]] for _, m in points])
        ax.errorbar(at, ys[:, 0], yerr=[ys[:, 0] - ys[:, 1], ys[:, 2] - ys[:, 0]], fmt="-o", ms=4, capsize=3,
                    color=f"C{i % 10}", label=label)
    for j, (label, number) in enumerate((reference or {}).items()):
        ax.axhline(number, color=f"C{(len(lines) + j) % 10}", ls=("--", ":", "-.")[j % 3], lw=1.2, label=label)
    if x:
        ax.set_xscale("log")
        ax.set_xticks(sorted(x.values()), [f"{n}\n({v})" for v, n in sorted(x.items(), key=lambda item: item[1])])
        ax.minorticks_off()
        ax.set_xlabel(f"pretraining clips ({key})")
    else:
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(key)
    ax.set_ylabel(f"test {METRIC_LABELS.get(metric, metric)} (95% interval)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    if side:
        ax2 = fig.add_subplot(1, 2, 2)
        for j, (label, points) in enumerate(side.items()):
            ax2.plot([values.index(str(v)) for v, _ in points], [n for _, n in points], "-s", color=f"C{j}",
                     label=label)
        ax2.set_xticks(range(len(values)), values)
        ax2.set_xlabel(key)
        ax2.set_title(side_title, fontsize=10)
        ax2.grid(alpha=0.3)
        ax2.legend(frameon=False, fontsize=8)
    _save(fig, path)


def plot_layers(groups: list[dict], metric: str, path: str | Path) -> None:
    """Validation and test score against the layer, one panel per representation and strategy,
    with 95% intervals; the layer chosen on validation marked.

    Parameters
    ----------
    groups : list of dict
        ``experiments.layers.layer_evidence``'s groups: ``label`` (the rows' name), ``strategy``,
        ``layers`` (``[{"layer", "validation", "test"}]``, each score ``{"value", "low", "high"}``)
        and ``chosen``.
    metric : str
    path : str or Path
        PNG to write (atomically).
    """
    fig = Figure(figsize=(5.5 * len(groups), 4.0), layout="constrained")
    for k, g in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), k + 1)
        layers = np.array([r["layer"] for r in g["layers"]])
        for j, split in enumerate(("validation", "test")):
            ys = np.array([[r[split]["value"], r[split]["low"], r[split]["high"]] for r in g["layers"]])
            ax.errorbar(layers + 0.08 * (j - 0.5), ys[:, 0], yerr=[ys[:, 0] - ys[:, 1], ys[:, 2] - ys[:, 0]],
                        fmt="-o", ms=4, capsize=3, color=f"C{j}", label=split)
        ax.axvline(g["chosen"], color="0.4", ls=":", lw=1.2, label=f"chosen on validation ({g['chosen']})")
        ax.set_xticks(layers)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (95% interval)")
        ax.set_title(f"{g['label']}, {g['strategy']}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    _save(fig, path)


def plot_cost(points: dict, metric: str, path: str | Path) -> None:
    """Test score against forward FLOPs per second of audio (log scale), one point per setup with
    its 95% interval.

    Parameters
    ----------
    points : dict
        ``{setup: (flops per second, {"value", "low", "high"})}``.
    metric : str
    path : str or Path
        PNG to write (atomically).
    """
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, (x, m)) in enumerate(points.items()):
        ax.errorbar([x], [m["value"]], yerr=[[m["value"] - m["low"]], [m["high"] - m["value"]]], fmt="o", ms=5,
                    capsize=3, color=f"C{i % 10}", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("forward FLOPs per second of audio (representation + model)")
    ax.set_ylabel(f"test {METRIC_LABELS.get(metric, metric)} (95% interval)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def plot_robustness(families: dict, metric: str, path: str | Path) -> None:
    """Test score against the strength of each deformation family, one panel per family and one
    line per setup, with 95% intervals; the clean clips first.

    Parameters
    ----------
    families : dict
        ``{family: {"ticks": [label, ...], "lines": {setup: [(position, {"value", "low", "high"}), ...]}}}``;
        the ticks label positions 0.. (``"clean"`` first, then the settings, weakest first).
    metric : str
    path : str or Path
        PNG to write (atomically).
    """
    fig = Figure(figsize=(4.6 * len(families) + 1.8, 4.0), layout="constrained")
    for k, (family, panel) in enumerate(families.items()):
        ax = fig.add_subplot(1, len(families), k + 1)
        n = len(panel["lines"])
        for i, (name, points) in enumerate(panel["lines"].items()):
            at = np.array([p for p, _ in points]) + 0.05 * (i - n / 2)  # dodged so the bars do not overlap
            ys = np.array([[m["value"], m["low"], m["high"]] for _, m in points])
            ax.errorbar(at, ys[:, 0], yerr=[ys[:, 0] - ys[:, 1], ys[:, 2] - ys[:, 0]], fmt="-o", ms=4, capsize=3,
                        color=f"C{i % 10}", label=name)
        ax.set_xticks(range(len(panel["ticks"])), panel["ticks"], fontsize=8)
        ax.set_title(family, fontsize=10)
        ax.set_ylabel(f"test {METRIC_LABELS.get(metric, metric)} (95% interval)")
        ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=7)
    _save(fig, path)
