"""Table and figure of the representation-invariance probe (``invariance.probe_invariance``).

Draws with ``matplotlib.figure.Figure`` (Agg, no pyplot), so the caller's backend is untouched
and no figure outlives its function.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mirformer.atomic import atomic_path, write_text
from mirformer.experiments.invariance import codebook_columns, summarise_transforms

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
        Columns ``transformation | files | token agreement | codebook distance | log-mel diff (dB)``,
        with several codebooks a ``codebook c`` agreement column each after ``token agreement``
        (which then counts frames whose every codebook kept its token); agreement as a
        percentage, distances with three significant digits.
    """
    summary = summarise_transforms(df)
    books = codebook_columns(df)
    header = [*HEADER[:3], *(f"codebook {c.rsplit('_', 1)[1]}" for c in books), *HEADER[3:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in summary.iterrows():
        cells = (name, str(int(row["n_files"])), f"{100 * row['token_agreement']:.1f}%",
                 *(f"{100 * row[c]:.1f}%" for c in books),
                 f"{row['vector_distance']:.3g}", f"{row['mel_diff_db']:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_invariance(df: pd.DataFrame, path: str | Path) -> None:
    """Write a bar chart per transformation as a PNG: token agreement and log-mel change, and with
    several codebooks a middle panel of each codebook's agreement.

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
    books = codebook_columns(df)
    fig = Figure(figsize=(10.0 + 4.0 * bool(books), 0.45 * len(names) + 1.6), layout="constrained")
    axes = list(fig.subplots(1, 3 if books else 2, sharey=True))
    token_ax, mel_ax = axes[0], axes[-1]
    panels = ((token_ax, "token_agreement", "token agreement (frames with the same tokens)", "{:.0%}"),
              (mel_ax, "mel_diff_db", "mean |log-mel difference| (dB)", "{:.2g}"))
    for ax, column, label, fmt in panels:
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
    if books:
        ax, height = axes[1], 0.8 / len(books)
        colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(books)))
        for c, (column, colour) in enumerate(zip(books, colours)):
            ax.barh(ypos - 0.4 + (c + 0.5) * height, summary[column].to_numpy(), height=height, color=colour,
                    label=f"codebook {c + 1}")
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("token agreement per codebook")
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    token_ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    token_ax.set_yticks(ypos, names)
    token_ax.invert_yaxis()  # first transformation (identity) on top
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
