"""Turn a saved results dict into a markdown report: score table, grid, figures.

Reads only what training saved (``results.json`` and the files it names); it never trains or
scores. The figures are drawn by ``mirformer.experiments.plots``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from mirformer.atomic import write_text
from mirformer.errors import ConfigError
from mirformer.experiments.plots import METRIC_LABELS, plot_confusion, plot_curves, plot_forest, plot_modes

COLUMNS = ("setup", "F1 train", "F1 test", "loss train", "loss test", "accuracy test")


def _fmt(value, ci: dict | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if ci is None else f"{value:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]"


def _metric(setup: dict, split: str, key: str):
    return setup.get("splits", {}).get(split, {}).get(key)


def chance_macro_f1(priors) -> float:
    """Expected macro F1 of guessing uniformly at random among K classes.

    A uniform guess has recall ``1/K`` for every class and precision ``p_k`` (the class's share
    of the data), so ``F1_k = 2 p_k / (K p_k + 1)``; the result is the mean over classes
    (``1/K`` when classes are balanced). It treats the expected precision as the precision of
    the expected counts, hence approximate for small splits.

    Parameters
    ----------
    priors : array-like [shape=(K,)]
        Class counts or shares (normalised here).

    Returns
    -------
    f1 : float in [0, 1]
    """
    p = np.asarray(priors, dtype=float)
    p = p / p.sum()
    return float(np.mean(2 * p / (len(p) * p + 1)))


def _test_priors(results: dict) -> np.ndarray:
    """Class counts of the test split (confusion row sums of the first setup that has one)."""
    for setup in results["setups"].values():
        cm = _metric(setup, "test", "confusion")
        if cm is not None and np.sum(cm) > 0:
            return np.asarray(cm).sum(axis=1)
    return np.ones(len(results["classes"]))


def results_table(results: dict) -> str:
    """Markdown score table, one row per setup in insertion order, then a chance-level line.

    The columns follow ``results["task"]`` (classification when absent):

    - classification: ``setup | F1 train | F1 test | loss train | loss test | accuracy test``
      (macro F1; loss = class-weighted cross-entropy in nats); chance: macro F1 from
      ``chance_macro_f1`` on the test class counts, accuracy ``1/K``, loss ``ln K``;
    - tagging: ``setup | ROC-AUC train | ROC-AUC test | PR-AUC test | loss train | loss test``
      (macro over tags; loss = binary cross-entropy); chance: ROC-AUC 0.5, PR-AUC the mean
      positive rate of the scored test tags;
    - regression: ``setup | R2 train | R2 test | R2 <target> test ... | MSE test`` (z-scored
      targets); chance: R2 about 0 (always predicting the training mean).

    Values print with two decimals; missing ones as ``n/a``; a test metric with an interval in
    ``results["evidence"]`` as ``0.41 [0.29, 0.53]``.
    """
    task = results.get("task", "classification")
    names = results["classes"]
    if task == "tagging":
        columns = ("setup", "ROC-AUC train", "ROC-AUC test", "PR-AUC test", "loss train", "loss test")
        keys = (("train", "roc_auc"), ("test", "roc_auc"), ("test", "pr_auc"), ("train", "loss"), ("test", "loss"))
    elif task == "regression":
        columns = ("setup", "R2 train", "R2 test", *(f"R2 {n} test" for n in names), "MSE test")
        keys = (("train", "r2"), ("test", "r2"), *(("test", ("r2_per_target", n)) for n in names), ("test", "mse"))
    else:
        columns = COLUMNS
        keys = (("train", "macro_f1"), ("test", "macro_f1"), ("train", "loss"), ("test", "loss"), ("test", "accuracy"))
    lines = ["| " + " | ".join(columns) + " |", "|:---|" + "---:|" * (len(columns) - 1)]
    intervals = (results.get("evidence") or {}).get("intervals", {})
    for name, setup in results["setups"].items():
        cells = [name.replace("|", "\\|")]
        for split, key in keys:
            if isinstance(key, tuple):
                value = (_metric(setup, split, key[0]) or {}).get(key[1])
            else:
                value = _metric(setup, split, key)
            ci = intervals.get(name, {}).get(key) if split == "test" and isinstance(key, str) else None
            cells.append(_fmt(value, ci))
        lines.append("| " + " | ".join(cells) + " |")
    # A blank line ends the table; a text line directly below would render as another row.
    lines += ["", _chance_line(results, task)]
    return "\n".join(lines) + "\n"


def _chance_line(results: dict, task: str) -> str:
    k = len(results["classes"])
    if task == "tagging":
        rates = _test_positive_rates(results)
        pr = f"{np.mean(rates):.2f} (mean positive rate of the scored test tags)" if rates else "n/a"
        return f"Chance (random scores over {k} tags): ROC-AUC 0.50, PR-AUC {pr}."
    if task == "regression":
        return "Chance (always predicting the training mean): R2 about 0.00, MSE about 1.00 (z-scored targets)."
    return (f"Chance (uniform random guessing over K = {k} classes): macro F1 ≈ "
            f"{chance_macro_f1(_test_priors(results)):.2f} (mean of 2p/(Kp+1) over test class shares p), "
            f"accuracy {1 / k:.2f} (1/K), loss {math.log(k):.2f} (ln K).")


def _test_positive_rates(results: dict) -> list[float]:
    """Positive rate of each scored test tag (per-tag counts of the first setup that has them)."""
    for setup in results["setups"].values():
        per_tag, n = _metric(setup, "test", "per_tag"), _metric(setup, "test", "n")
        if per_tag and n:
            return [t["positives"] / n for t in per_tag.values() if t["roc_auc"] is not None]
    return []


def _verdict(test: dict) -> str:
    """A paired test in words: which side is ahead, when the interval excludes 0 and p < 0.05."""
    if test["low"] > 0 and test["p"] < 0.05:
        return "a ahead"
    if test["high"] < 0 and test["p"] < 0.05:
        return "b ahead"
    return "cannot tell"


def _evidence_lines(results: dict, out: Path) -> list[str]:
    """The "How sure" section: the forest plot, then each question's paired tests."""
    evidence = results.get("evidence")
    if not evidence:
        return []
    monitor = results["monitor"]
    label = METRIC_LABELS.get(monitor, monitor)
    chance = chance_macro_f1(_test_priors(results)) if results.get("task", "classification") == "classification" else None
    plot_forest(evidence["intervals"], monitor, out / "forest.png", chance=chance,
                title=f"{results.get('dataset', '')}: test {label}, 95% intervals")
    n = next((t["n"] for t in evidence["paired"]), None)
    md = ["## How sure: intervals and paired tests", "",
          f"Intervals are 95% percentile bootstraps over the test clips ({evidence['n_resamples']} resamples"
          f"{', stratified by class' if results.get('task', 'classification') == 'classification' else ''}); "
          f"paired tests compare two setups on the same {n or ''} clips: the difference a - b of test {label}, "
          f"its 95% bootstrap interval, and the two-sided p-value of a paired permutation test "
          f"({evidence['n_permutations']} permutations). A side is called ahead when the interval excludes 0 and p < 0.05; "
          f"p-values are per comparison, not corrected for the {len(evidence['paired'])} made here.", "",
          "![test scores with 95% intervals](forest.png)", ""]
    by_question: dict[str, list[dict]] = {}
    for test in evidence["paired"]:
        by_question.setdefault(test["question"], []).append(test)
    for question, tests in by_question.items():
        md += [f"### {question[0].upper()}{question[1:]}", "", "| a | b | a - b [95% CI] | p | verdict |",
               "|:---|:---|---:|---:|:---|"]
        md += [f"| {t['a']} | {t['b']} | {t['difference']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}] | {t['p']:.3f} | "
               f"{_verdict(t)} |" for t in tests]
        md += [""]
    return md


def _grid_lines(setups: dict) -> list[str]:
    """The fine-tuning grid of each swept setup: every point's validation score, the selected one marked."""
    lines = []
    for name, setup in setups.items():
        grid, selected = setup.get("grid"), setup.get("selected") or {}
        if not grid:
            continue
        monitor = selected.get("monitor", "")
        lines += [f"### {name}", "", f"| batch | lr | {monitor} | selected |", "|---:|---:|---:|:---:|"]
        for p in grid:
            chosen = p["batch_size"] == selected.get("batch_size") and p["lr"] == selected.get("lr")
            lr = "schedule" if p["lr"] is None else f"{p['lr']:g}"
            lines.append(f"| {p['batch_size']} | {lr} | {_fmt(p['best'].get(monitor))} | {'yes' if chosen else ''} |")
        lines.append("")
    return lines


def write_per_tag(setups: dict, path: str | Path) -> None:
    """Test ROC-AUC and PR-AUC of every tag for every setup, one CSV row per tag."""
    names = [n for n, s in setups.items() if _metric(s, "test", "per_tag")]
    tags = list(_metric(setups[names[0]], "test", "per_tag")) if names else []
    rows = ["tag,positives," + ",".join(f"{n} roc_auc,{n} pr_auc" for n in names)]
    for tag in tags:
        first = _metric(setups[names[0]], "test", "per_tag")[tag]
        cells = [tag if "," not in tag else f'"{tag}"', str(first["positives"])]
        for n in names:
            entry = _metric(setups[n], "test", "per_tag")[tag]
            cells += ["" if entry[k] is None else f"{entry[k]:.4f}" for k in ("roc_auc", "pr_auc")]
        rows.append(",".join(cells))
    write_text(path, "\n".join(rows) + "\n")


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _skipped_lines(results: dict) -> list[str]:
    """One markdown bullet per skipped track, naming the setups when not every setup skipped it.

    The run-level ``results["skipped"]`` (files excluded before any setup ran) comes first.
    """
    setups = results["setups"]
    lines = [f"- `{track_id}`: {reason}" for track_id, reason in (results.get("skipped") or {}).items()]
    by_track: dict[str, tuple[str, list[str]]] = {}
    for name, setup in setups.items():
        for track_id, reason in (setup.get("skipped") or {}).items():
            if track_id not in (results.get("skipped") or {}):
                by_track.setdefault(track_id, (reason, []))[1].append(name)
    for track_id, (reason, names) in by_track.items():
        where = "" if len(names) == len(setups) else f" (in {', '.join(names)})"
        lines.append(f"- `{track_id}`: {reason}{where}")
    return lines


def _tokenizer_lines(tokenizer: dict) -> list[str]:
    """The VQ tokenizer behind TokenFormer and CodebookFormer: where it came from and how it uses its codes."""
    t = tokenizer
    rate = t["sample_rate"] / t["hop_length"]
    lines = [
        f"TokenFormer and CodebookFormer read level {t['level']} of a VQ-VAE {t['source']} "
        f"(`{t['checkpoint']}`, SHA-1 `{t['sha1'][:12]}`): {t['levels']} level(s), {t['vocab_size']} codes of width "
        f"{t['emb_width']}, hop {t['hop_length']} at {t['sample_rate']} Hz ({rate:.1f} tokens/s), "
        f"windows of {t['window_frames']} tokens.",
        "",
    ]
    if t.get("val_loss") is not None:
        lines += [f"It trained for {t['epochs']} epochs; final validation loss {t['val_loss']:.3f} (Jukebox's "
                  "objective: bandwidth-normalised lmix + multi-resolution STFT + commitment).", ""]
    if "codes_used" in t:
        max_bits = math.log2(t["vocab_size"])
        lines += [
            f"On the training split ({t['n_tokens']:,} tokens): {t['codes_used']} of {t['vocab_size']} codes used "
            f"({100 * t['usage']:.0f}%), entropy {t['entropy_bits']:.2f} bits of a possible {max_bits:.2f} "
            f"(perplexity {t['perplexity']:.1f}).",
            "",
        ]
    return lines


def _modes_lines(results: dict, out: Path) -> list[str]:
    """Where one model was fine-tuned from its pretrained encoder in several modes: their
    validation curves on one plot (``modes_<model>.png``) and a table of their scores."""
    by_model: dict[str, dict[str, dict]] = {}
    for name, setup in results["setups"].items():
        if setup.get("pretrained") and setup.get("history"):
            by_model.setdefault(setup["model"], {})[name.removeprefix(f"{setup['model']}-")] = setup
    monitor = results.get("monitor", "macro_f1")
    lines = []
    for model, modes in by_model.items():
        if len(modes) < 2:
            continue
        file = f"modes_{_slug(model)}.png"
        plot_modes(modes, monitor, out / file, title=f"{model}: fine-tuning modes from one pretrained encoder")
        lines += [f"## Fine-tuning modes: {model}", "", f"![{model} fine-tuning modes]({file})", "",
                  f"| mode | best validation {monitor} | test {monitor} |", "|:---|---:|---:|"]
        for mode, setup in modes.items():
            best = max((row.get(f"val_{monitor}") for row in setup["history"]
                        if row.get(f"val_{monitor}") is not None), default=None)
            lines.append(f"| {mode} | {_fmt(best)} | {_fmt(_metric(setup, 'test', monitor))} |")
        lines.append("")
    return lines


def _examples_lines(results: dict) -> list[str]:
    """The pictures pretraining stages drew of their validation examples (input, masked, reconstruction)."""
    lines = []
    for stage, png in (results.get("examples") or {}).items():
        lines += [f"### {stage}", "", f"![{stage} reconstructions]({png})", ""]
    return ["## Pretraining reconstructions", "", *lines] if lines else []


def write_report(results: dict, out_dir: str | Path) -> str:
    """Write ``report.md``, ``confusion_<setup>.png`` (test split) and ``curves.png``.

    Parameters
    ----------
    results : dict
        ``{"dataset": str, "classes": [...], "setups": {name: setup}}`` and optionally
        ``"skipped"`` (track id -> reason, files no setup used) and ``"tokenizer"`` (the VQ
        tokenizer's source, shape and codebook usage, as ``run_compare`` saves it); other keys
        are ignored.
        A setup without a test confusion gets no confusion figure; ``curves.png`` is written
        only if some setup has a per-epoch history.
    out_dir : str or Path
        Directory for the report (created if missing).

    Returns
    -------
    table : str
        The markdown table of ``results_table``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setups, classes = results["setups"], results["classes"]
    slugs = {name: _slug(name) for name in setups}
    if len(set(slugs.values())) != len(slugs):
        raise ConfigError(f"setup names collide as file names: {slugs}")
    dataset = results.get("dataset", "unknown dataset")
    table = results_table(results)

    task = results.get("task", "classification")
    what = {"classification": "classes", "tagging": "tags", "regression": "regression targets"}[task]
    md = [f"# Results: {dataset}", ""]
    md += [f"Dataset `{dataset}`, {task}, {len(classes)} {what}: {', '.join(classes)}.", ""]
    md += ["## Scores (clip level: window outputs averaged per clip)", "", table]
    md += _evidence_lines(results, out)
    grid = _grid_lines(setups)
    if grid:
        md += ["## Fine-tuning grid (selected on validation; only the selected setting is scored on test)", "",
               *grid]
    if task == "tagging":
        write_per_tag(setups, out / "per_tag_test.csv")
        md += ["Per-tag test ROC-AUC and PR-AUC of every setup: [per_tag_test.csv](per_tag_test.csv).", ""]
    if results.get("tokenizer"):
        md += ["## Tokenizer", "", *_tokenizer_lines(results["tokenizer"])]
    if any(s.get("history") or s.get("pretrain_history") for s in setups.values()):
        plot_curves(results, out / "curves.png")
        md += ["## Training curves", "", "![training curves](curves.png)", ""]
    md += _modes_lines(results, out)
    md += _examples_lines(results)
    if task == "classification":
        md += ["## Confusion matrices (test split)", ""]
        for name, setup in setups.items():
            cm = _metric(setup, "test", "confusion")
            md += [f"### {name}", ""]
            if cm is None:
                md += ["No test confusion matrix saved.", ""]
                continue
            file = f"confusion_{slugs[name]}.png"
            plot_confusion(cm, classes, out / file, title=f"{name}: test (n = {int(np.sum(cm))})")
            md += [f"![{name} confusion matrix]({file})", ""]
    skipped = _skipped_lines(results)
    if skipped:
        md += [f"## Skipped files ({len(skipped)})", "", *skipped, ""]
    flagged = results.get("flagged") or {}
    if flagged:
        md += [f"## Files that trained but are worth a look ({len(flagged)})", "",
               "Far shorter than the dataset's clips, or listed by its maintainers; `data.min_seconds` decides "
               "whether short files train.", "", *[f"- `{i}`: {note}" for i, note in flagged.items()], ""]
    write_text(out / "report.md", "\n".join(md))
    return table
