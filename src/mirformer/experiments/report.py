"""Turn a saved results dict into a markdown report: score table, grid, figures.

Reads only what training saved (``results.json`` and the files it names); it never trains or
scores. The figures are drawn by ``mirformer.experiments.plots``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mirformer.atomic import write_text
from mirformer.errors import ConfigError
from mirformer.experiments.plots import (METRIC_LABELS, plot_confusion, plot_curves, plot_forest, plot_modes,
                                         plot_cost, plot_layers, plot_sweep)
from mirformer.experiments.robustness_report import robustness_lines
from mirformer.representations import representation_class
from mirformer.tasks import Task, make_task
from mirformer.tasks.base import metric_of


def _fmt(value, ci: dict | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if ci is None else f"{value:.2f} [{ci['low']:.2f}, {ci['high']:.2f}]"


def _metric(setup: dict, split: str, key: str):
    return metric_of(setup, split, key)


def _task(results: dict) -> Task:
    return make_task(results["task"], results["classes"])


def results_table(results: dict) -> str:
    """Markdown score table, one row per setup in insertion order, then the task's chance line.

    The columns are the task's (``Task.columns``): for classification ``F1 train | F1 test |
    loss train | loss test | accuracy test``, for tagging ROC-AUC and PR-AUC, for regression R2 per
    target and MSE. Values print with two decimals; missing ones as ``n/a``; a test metric with an
    interval in ``results["evidence"]`` as ``0.41 [0.29, 0.53]``.
    """
    task = _task(results)
    columns = task.columns
    lines = ["| setup | " + " | ".join(columns) + " |", "|:---|" + "---:|" * len(columns)]
    intervals = (results.get("evidence") or {}).get("intervals", {})
    for name, setup in results["setups"].items():
        cells = [name.replace("|", "\\|")]
        for split, key, sub in columns.values():
            ci = intervals.get(name, {}).get(key) if split == "test" and sub is None else None
            cells.append(_fmt(metric_of(setup, split, key, sub), ci))
        lines.append("| " + " | ".join(cells) + " |")
    # A blank line ends the table; a text line directly below would render as another row.
    lines += ["", task.chance_line(results)]
    return "\n".join(lines) + "\n"


def _verdict(test: dict) -> str:
    """A paired test in words: which side is ahead, when the interval excludes 0 and the Holm-adjusted p < 0.05."""
    if test["low"] > 0 and test["p_holm"] < 0.05:
        return "a ahead"
    if test["high"] < 0 and test["p_holm"] < 0.05:
        return "b ahead"
    return "cannot tell"


def _evidence_lines(results: dict, out: Path) -> list[str]:
    """The "How sure" section: the forest plot, then each question's paired tests."""
    evidence = results.get("evidence")
    if not evidence:
        return []
    monitor = results["monitor"]
    label = METRIC_LABELS.get(monitor, monitor)
    plot_forest(evidence["intervals"], monitor, out / "forest.png", chance=_task(results).chance(results),
                title=f"{results.get('dataset', '')}: test {label}, 95% intervals")
    n = next((t["n"] for t in evidence["paired"]), None)
    md = ["## How sure: intervals and paired tests", "",
          f"Intervals are 95% bootstraps over the test clips ({evidence['n_resamples']} resamples; "
          f"{evidence['method']}); paired tests compare two setups on the same {n or ''} clips: the difference "
          f"a - b of test {label}, its 95% bootstrap interval, and the two-sided p-value of a paired permutation "
          f"test ({evidence['n_permutations']} permutations). Each question below is one family of tests: beside "
          "each raw p-value stands Holm's adjusted one over that family, which keeps the chance of any false "
          "call in the family at 5%. A side is called ahead when the interval excludes 0 and the adjusted "
          "p < 0.05.", "", "![test scores with 95% intervals](forest.png)", ""]
    by_question: dict[str, list[dict]] = {}
    for test in evidence["paired"]:
        by_question.setdefault(test["question"], []).append(test)
    for question, tests in by_question.items():
        md += [f"### {question[0].upper()}{question[1:]}", "",
               f"A family of {len(tests)} comparison{'s' * (len(tests) != 1)}, Holm-adjusted together.", "",
               "| a | b | a - b [95% CI] | p | p (Holm) | verdict |", "|:---|:---|---:|---:|---:|:---|"]
        md += [f"| {t['a']} | {t['b']} | {t['difference']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}] | {t['p']:.3f} | "
               f"{t['p_holm']:.3f} | {_verdict(t)} |" for t in tests]
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


def _input_lines(results: dict) -> list[str]:
    """What each representation says of itself beyond its config (a tokenizer's source and usage)."""
    lines = []
    for info in results.get("representations", {}).values():
        if info.get("about"):
            lines += representation_class(info["name"]).report_lines(info["about"])
    return lines


def _number(value) -> str:
    """A cost in a table cell: whole above 100 (thousands separated), else 3 significant digits; a
    dash when not measured."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _si(value, unit: str = "") -> str:
    """A large count with an SI prefix (FLOPs, bytes): ``1.17 M``, ``39.8 MB``; a dash when not measured."""
    if value is None:
        return "–"
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def _cost_lines(results: dict, out: Path) -> list[str]:
    """What each setup costs (``experiments.cost``): a table, and test score against FLOPs per
    second of audio (``cost.png``)."""
    setups = {n: s for n, s in results["setups"].items() if s.get("cost")}
    if not setups:
        return []
    monitor = results["monitor"]
    md = ["## Cost", "", f"Measured in this run on {results.get('machine', 'an unrecorded machine')}. FLOPs are "
          "forward FLOPs per second of audio as torch counts them (matrix products, convolutions, attention; not "
          "FFTs or numpy work): the representation's (its extraction) and the model's on stored frames. Extraction "
          "is one thread reading and encoding, measured when the feature store was filled (the MFCC baseline: its "
          "worker processes); inference is the model alone on the test clips' stored frames; training counts "
          "training steps only.", "",
          "| setup | parameters (trainable) | representation FLOPs/s | model FLOPs/s | extraction (x realtime) | "
          "store (bytes per hour) | training (windows/s) | inference (x realtime) |", "|:---|---:|---:|---:|---:|---:|---:|---:|"]
    points = {}
    for name, s in setups.items():
        c = s["cost"]
        params = c.get("parameters", {})
        trained = (c.get("training") or {}).get("windows_per_second")
        md.append(f"| {name} | {_number(params.get('total'))} ({_number(params.get('trainable'))}) | "
                  f"{_si(c.get('representation_flops_per_second'))} | {_si(c.get('model_flops_per_second'))} | "
                  f"{_number(c.get('extraction_x_realtime'))} | {_si(c.get('store_bytes_per_hour'), 'B')} | "
                  f"{_number(trained)} | {_number(c.get('inference_x_realtime'))} |")
        total = (c.get("representation_flops_per_second") or 0) + (c.get("model_flops_per_second") or 0)
        interval = ((results.get("evidence") or {}).get("intervals", {}).get(name) or {}).get(monitor)
        if total and interval:
            points[name] = (total, interval)
    md.append("")
    if points:
        plot_cost(points, monitor, out / "cost.png")
        md += [f"![test {METRIC_LABELS.get(monitor, monitor)} against FLOPs per second of audio](cost.png)", ""]
    return md


def _modes_lines(results: dict, out: Path) -> list[str]:
    """Where one model was fine-tuned from its pretrained encoder in several modes: their
    validation curves on one plot (``modes_<model>.png``) and a table of their scores."""
    by_model: dict[str, dict[str, dict]] = {}
    for name, setup in results["setups"].items():
        if setup.get("pretrained") and setup.get("history") and not setup.get("sweep"):  # one encoder per value
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


# What a representation's ``about["reconstruction"]`` holds, as the report labels it.
RECONSTRUCTION = {"snr_db": "reconstruction SNR (dB, higher is better)",
                  "log_spectral_distance_db": "log-spectral distance (dB, lower is better)"}


def _sweep_lines(results: dict, out: Path) -> list[str]:
    """A swept setting: test score against its values per model and mode (``sweep.png``), the
    reconstruction quality of each value's input beside it where measured, and a table."""
    setups = results["setups"]
    swept = {n: s for n, s in setups.items() if s.get("sweep")}
    if not swept:
        return []
    monitor = results["monitor"]
    key = next(iter(swept.values()))["sweep"]["key"]
    intervals = (results.get("evidence") or {}).get("intervals", {})
    point = {n: intervals.get(n, {}).get(monitor) or {"value": _metric(s, "test", monitor)} for n, s in setups.items()}
    point = {n: {"low": p["value"], "high": p["value"], **p} for n, p in point.items() if p.get("value") is not None}
    lines: dict[str, list] = {}
    for n, s in swept.items():
        label = f"{s['model']}-{'pretrained' if s.get('pretrained') else 'scratch'}"
        if n in point:
            lines.setdefault(label, []).append((s["sweep"]["value"], point[n]))
    measured: dict[object, dict] = {}  # value -> the reconstruction of the input read at it
    for s in swept.values():
        about = (results.get("representations", {}).get(s.get("input")) or {}).get("about") or {}
        if about.get("reconstruction"):
            measured[s["sweep"]["value"]] = about["reconstruction"]
    side = {label: [(v, m[k]) for v, m in measured.items()] for k, label in RECONSTRUCTION.items()
            if any(k in m for m in measured.values())}
    reference = {n: point[n]["value"] for n, s in setups.items() if not s.get("sweep") and n in point}
    label = METRIC_LABELS.get(monitor, monitor)
    values = list(dict.fromkeys(s["sweep"]["value"] for s in swept.values()))
    # Where the swept setting changes how many clips pretraining read, those are the x axis.
    clips = {s["sweep"]["value"]: s["pretrain_clips"] for s in swept.values() if "pretrain_clips" in s}
    clips = clips if len(set(clips.values())) == len(values) == len(clips) else None
    plot_sweep(lines, key, monitor, out / "sweep.png", side=side or None, reference=reference,
               side_title="the tokenizer's own reconstruction (validation clips)", x=clips,
               title=f"{results.get('dataset', '')}: test {label} against {key}")
    md = [f"## Against {key}", "", f"![test {label} against {key}](sweep.png)", "",
          f"| {key} | " + ("pretraining clips | " if clips else "") + " | ".join([*lines, *side]) + " |",
          "|---:|" + "---:|" * (len(lines) + len(side) + bool(clips))]
    for v in values:
        cells = [str(clips[v])] if clips else []
        cells += [next((_fmt(m["value"], m if "low" in m and m["low"] != m["high"] else None)
                        for value, m in points if value == v), "n/a") for points in lines.values()]
        cells += [next((f"{n:.1f}" for value, n in pts if value == v), "n/a") for pts in side.values()]
        md.append(f"| {v} | " + " | ".join(cells) + " |")
    md += _gap_lines(results, key, values)
    if measured:
        clips = next(iter(measured.values())).get("clips")
        md += ["", f"Reconstruction: each value's tokens decoded by the tokenizer itself, on {clips} validation "
               "clips (SNR of the waveform; log-spectral distance of 1024-point power spectra)."]
    return md + [""]


def _gap_lines(results: dict, key: str, values: list) -> list[str]:
    """Does a gap between two models move along the sweep (``stats.gap_change``)?"""
    gaps = (results.get("evidence") or {}).get("gaps")
    if not gaps:
        return []
    md = ["", f"Does the gap move from {key} = {values[0]} to {values[-1]}? The change of the paired difference "
          "a - b (on the same test clips), its 95% bootstrap interval, and the p-value of a permutation test that "
          "exchanges the two values clip by clip.", "",
          f"| question | a | b | gap at {values[0]} | gap at {values[-1]} | change [95% CI] | p |",
          "|:---|:---|:---|---:|---:|---:|---:|"]
    for g in gaps:
        a, b = (results["setups"][n]["model"] for n in g["first"])
        md.append(f"| {g['question']} | {a} | {b} | {_signed(g['gap_first'])} | {_signed(g['gap_last'])} | "
                  f"{_signed(g['difference'])} [{_signed(g['low'])}, {_signed(g['high'])}] | {g['p']:.3f} |")
    return md


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _layer_lines(results: dict, out: Path) -> list[str]:
    """Layer by layer (``experiments.layers``): validation and test score against the layer per
    representation and strategy (``layers.png``), the chosen layer and where it stands on test."""
    groups = (results.get("evidence") or {}).get("layers")
    if not groups:
        return []
    metric = METRIC_LABELS.get(results["monitor"], results["monitor"])
    plot_layers(groups, results["monitor"], out / "layers.png")
    md = ["## Layer by layer", "", "One probe per layer; the layer is chosen on validation, and every layer is "
          f"scored on test. ![validation and test {metric} against the layer](layers.png)", ""]
    for g in groups:
        chosen = next(r for r in g["layers"] if r["layer"] == g["chosen"])
        stand = ("is also the best on test" if g["best_on_test"] == g["chosen"] else
                 f"ranks {g['rank_on_test']} of {len(g['layers'])} on test; against the best there, layer "
                 f"{g['best_on_test']}, chosen - best = {g['chosen_vs_best']['difference']:+.2f} "
                 f"[{g['chosen_vs_best']['low']:+.2f}, {g['chosen_vs_best']['high']:+.2f}], "
                 f"p = {g['chosen_vs_best']['p']:.3f}")
        md += [f"### {g['label']}, {g['strategy']}", "", f"Representation `{g['representation']}`.", "",
               f"Chosen on validation: layer {g['chosen']} (test {metric} {_fmt(chosen['test']['value'], chosen['test'])}); "
               f"it {stand}.", "", f"| layer | validation {metric} | test {metric} |", "|---:|---:|---:|"]
        md += [f"| {r['layer']}{' (chosen)' if r['layer'] == g['chosen'] else ''} | "
               f"{_fmt(r['validation']['value'], r['validation'])} | {_fmt(r['test']['value'], r['test'])} |"
               for r in g["layers"]]
        md += [""]
    return md


def _examples_lines(results: dict) -> list[str]:
    """The pictures pretraining stages drew of their validation examples (input, masked, reconstruction)."""
    lines = []
    for stage, png in (results.get("examples") or {}).items():
        lines += [f"### {stage}", "", f"![{stage} reconstructions]({png})", ""]
    return ["## Pretraining reconstructions", "", *lines] if lines else []


def _confusion_lines(results: dict, out: Path, slugs: dict[str, str]) -> list[str]:
    """A confusion matrix (test split) of every setup whose metrics hold one."""
    setups, classes = results["setups"], results["classes"]
    if not any(_metric(s, "test", "confusion") is not None for s in setups.values()):
        return []
    md = ["## Confusion matrices (test split)", ""]
    for name, setup in setups.items():
        cm = _metric(setup, "test", "confusion")
        md += [f"### {name}", ""]
        if cm is None:
            md += ["No test confusion matrix saved.", ""]
            continue
        file = f"confusion_{slugs[name]}.png"
        plot_confusion(cm, classes, out / file, title=f"{name}: test (n = {int(np.sum(cm))})")
        md += [f"![{name} confusion matrix]({file})", ""]
    return md


def write_report(results: dict, out_dir: str | Path) -> str:
    """Write ``report.md`` and its figures: ``forest.png``, ``sweep.png`` (a swept setting),
    ``robustness.png`` (deformed test clips), ``curves.png``, ``modes_<model>.png``,
    ``confusion_<setup>.png`` (test split), and ``per_tag_test.csv`` where setups score tags.

    Parameters
    ----------
    results : dict
        ``{"dataset": str, "task": str, "classes": [...], "setups": {name: setup}}`` and
        optionally ``"evidence"``, ``"representations"`` (an input's ``about``: a tokenizer's source,
        shape and codebook usage), ``"skipped"`` (track id -> reason, files no setup used) and
        ``"flagged"``, as ``finish`` saves them; other keys are ignored. A setup without a test
        confusion gets no confusion figure; ``curves.png`` is written only if some setup has a
        per-epoch history.
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
    task = _task(results)
    md = [f"# Results: {dataset}", ""]
    md += [f"Dataset `{dataset}`, {task.name}, {len(classes)} {task.outputs_are}: {', '.join(classes)}.", ""]
    md += ["## Scores (clip level: window outputs averaged per clip)", "", table]
    md += _evidence_lines(results, out)
    md += _sweep_lines(results, out)
    md += _layer_lines(results, out)
    md += robustness_lines(results, out)
    grid = _grid_lines(setups)
    if grid:
        md += ["## Fine-tuning grid (selected on validation; only the selected setting is scored on test)", "",
               *grid]
    if any(_metric(s, "test", "per_tag") for s in setups.values()):
        write_per_tag(setups, out / "per_tag_test.csv")
        md += ["Per-tag test ROC-AUC and PR-AUC of every setup: [per_tag_test.csv](per_tag_test.csv).", ""]
    md += _input_lines(results)
    md += _cost_lines(results, out)
    if any(s.get("history") or s.get("pretrain_history") for s in setups.values()):
        plot_curves(results, out / "curves.png")
        md += ["## Training curves", "", "![training curves](curves.png)", ""]
    md += _modes_lines(results, out)
    md += _examples_lines(results)
    md += _confusion_lines(results, out, slugs)
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
