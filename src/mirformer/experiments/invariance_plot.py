"""Table and figure of the representation-invariance probe (``invariance.probe_invariance``).

Draws with ``matplotlib.figure.Figure`` (Agg, no pyplot), so the caller's backend is untouched
and no figure outlives its function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mirformer.atomic import atomic_path, write_text
from mirformer.experiments.invariance import summarise_transforms

HEADER = ("transformation", "files", "token agreement", "codebook distance", "log-mel diff (dB)")


def invariance_table(df: pd.DataFrame) -> str:
    """Markdown table of the per-transformation means of ``probe_invariance``'s output.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per (file, transformation), as ``probe_invariance`` returns.

    Returns
    -------
    table : str
        Columns ``transformation | files | token agreement | codebook distance | log-mel diff (dB)``;
        agreement as a percentage, distances with three significant digits.
    """
    summary = summarise_transforms(df)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for name, row in summary.iterrows():
        cells = (name, str(int(row["n_files"])), f"{100 * row['token_agreement']:.1f}%",
                 f"{row['vector_distance']:.3g}", f"{row['mel_diff_db']:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_invariance(df: pd.DataFrame, path: str | Path) -> None:
    """Write a two-panel bar chart (token agreement, log-mel change) per transformation as a PNG.

    Bars are means over files, dots the single files.

    Parameters
    ----------
    df : pandas.DataFrame
        ``probe_invariance``'s output.
    path : str or Path
        PNG file, written atomically.
    """
    summary = summarise_transforms(df)
    names = list(summary.index)
    ypos = np.arange(len(names))
    fig = Figure(figsize=(10.0, 0.45 * len(names) + 1.6), layout="constrained")
    panels = (("token_agreement", "token agreement (positions with the same token)", "{:.0%}"),
              ("mel_diff_db", "mean |log-mel difference| (dB)", "{:.2g}"))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (column, label, fmt) in zip(axes, panels):
        means = summary[column].to_numpy()
        ax.barh(ypos, means, color="tab:blue" if column == "token_agreement" else "tab:orange", alpha=0.8)
        for y, name, mean in zip(ypos, names, means):
            values = df.loc[df["transform"] == name, column].to_numpy()
            ax.plot(values, np.full(len(values), y), "k.", markersize=4)
            # label right of the bar and of every dot, so neither hides it
            ax.text(max(mean, values.max()), y, "  " + fmt.format(mean), va="center", fontsize=8)
        top = 1.0 if column == "token_agreement" else max(float(df[column].max()), 1e-12)
        ax.set_xlim(0, top * 1.18)  # room for the labels
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    axes[0].set_yticks(ypos, names)
    axes[0].invert_yaxis()  # first transformation (identity) on top
    fig.suptitle(f"Representation invariance: bars mean over {df['file'].nunique()} files, dots single files")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)


def write_invariance_report(df: pd.DataFrame, out_dir: str | Path) -> str:
    """Write ``invariance.csv`` (every row), ``invariance.md`` (table) and ``invariance.png``.

    Each file is written atomically.

    Parameters
    ----------
    df : pandas.DataFrame
        ``probe_invariance``'s output.
    out_dir : str or Path
        Folder, created if missing.

    Returns
    -------
    table : str
        The markdown table (``invariance_table``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "invariance.csv") as tmp:
        df.to_csv(tmp, index=False)
    table = invariance_table(df)
    write_text(out_dir / "invariance.md", table)
    plot_invariance(df, out_dir / "invariance.png")
    return table
