"""The report's "Robustness" section: a figure per deformation family (``robustness.png``), what
each setting costs each setup, and whether two representations lose differently."""

from __future__ import annotations

from pathlib import Path

from mirformer.experiments.plots import METRIC_LABELS, plot_robustness


def _cell(m: dict) -> str:
    return f"{m['value']:.2f} [{m['low']:.2f}, {m['high']:.2f}]"


def _change(t: dict) -> str:
    return f"{t['difference']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}]"


def _verdict(t: dict) -> str:
    """A loss or gain is called when its interval excludes 0 and the Holm-adjusted p < 0.05."""
    if t["high"] < 0 and t["p_holm"] < 0.05:
        return "loses"
    if t["low"] > 0 and t["p_holm"] < 0.05:
        return "gains"
    return "cannot tell"


def _families(results: dict, losses: list[dict]) -> dict:
    """``plot_robustness``'s panels: per family, clean then its settings from weakest to strongest."""
    evidence, monitor = results["evidence"], results["monitor"]
    settings = {d["name"]: d for d in results["deformations"]}
    families: dict = {}
    for d in sorted(settings.values(), key=lambda d: d["strength"]):
        unit = f", {d['unit']}" if d["unit"] and d["unit"] != d["param"] else ""
        panel = families.setdefault(f"{d['family']} ({d['param']}{unit})",
                                    {"ticks": ["clean"], "lines": {}, "at": {}})
        panel["at"][d["name"]] = len(panel["ticks"])
        panel["ticks"].append(f"{d['value']:g}")
    for row in losses:
        d = settings[row["deformation"]]
        panel = next(p for p in families.values() if d["name"] in p["at"])
        points = panel["lines"].setdefault(row["setup"], [(0, evidence["intervals"][row["setup"]][monitor])])
        points.append((panel["at"][d["name"]], row["deformed"]))
    return {k: {"ticks": p["ticks"], "lines": p["lines"]} for k, p in families.items()}


def robustness_lines(results: dict, out: Path) -> list[str]:
    """The section, or nothing when the run scored no deformation."""
    robustness = (results.get("evidence") or {}).get("robustness")
    unscored = [f"- {name}: {s['robustness_skipped']}" for name, s in results["setups"].items()
                if s.get("robustness_skipped")]
    if not robustness or not robustness["losses"]:
        return ["## Robustness: deformed test clips", "", "Setups not scored on deformed clips:", "", *unscored,
                ""] if unscored else []
    monitor = results["monitor"]
    label = METRIC_LABELS.get(monitor, monitor)
    plot_robustness(_families(results, robustness["losses"]), monitor, out / "robustness.png")
    intervals = results["evidence"]["intervals"]
    settings = {d["name"]: d for d in results["deformations"]}
    md = ["## Robustness: deformed test clips", "",
          "Each setting deformed every test clip once (a seed fixed per clip; the library and its version in "
          "the copy's cache key), and every setup's selected model scored the deformed clips with the clean "
          "run's statistics: nothing was retrained. The change is deformed - clean on the same clips, with its "
          "95% bootstrap interval and a paired permutation test; Holm's adjustment runs over the setups of one "
          "setting. A setup is called to lose (or gain) when the interval excludes 0 and the adjusted p < 0.05.",
          "", f"![test {label} against the strength of each deformation](robustness.png)", "",
          f"| setting | setup | clips | clean test {label} | deformed [95% CI] | change [95% CI] | p | p (Holm) | verdict |",
          "|:---|:---|---:|---:|---:|---:|---:|---:|:---|"]
    for t in robustness["losses"]:
        md.append(f"| {settings[t['deformation']]['label']} | {t['setup']} | {t['n']} | "
                  f"{_cell(intervals[t['setup']][monitor])} | {_cell(t['deformed'])} | {_change(t)} | {t['p']:.3f} | "
                  f"{t['p_holm']:.3f} | {_verdict(t)} |")
    if robustness["gaps"]:
        md += ["", "Does the gap between two representations move under a deformation? The paired difference "
               "a - b on clean and on deformed clips, its change (a difference of paired differences) with a 95% "
               "bootstrap interval, and the p-value of a permutation test exchanging clean and deformed clip by "
               "clip.", "",
               "| setting | question | a | b | gap clean | gap deformed | change [95% CI] | p |",
               "|:---|:---|:---|:---|---:|---:|---:|---:|"]
        md += [f"| {settings[g['deformation']]['label']} | {g['question']} | {g['a']} | {g['b']} | "
               f"{g['gap_first']:+.2f} | {g['gap_last']:+.2f} | {_change(g)} | {g['p']:.3f} |"
               for g in robustness["gaps"]]
    skipped = [f"- {settings[d]['label']}, {name}: " + ", ".join(f"`{i}` ({why})" for i, why in e["skipped"].items())
               for name, s in results["setups"].items() for d, e in (s.get("robustness") or {}).items()
               if e.get("skipped")]
    if unscored:
        md += ["", "Setups not scored on deformed clips:", "", *unscored]
    if skipped:
        md += ["", "Clips left out of a setting (the deformed copy could not be made or read, or became too short):",
               "", *skipped]
    return md + [""]
