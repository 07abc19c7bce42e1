"""Repeated seeds: one comparison per seed, then the spread across seeds.

``run_seeds`` runs ``compare`` once per seed, each in its own resumable run folder
(``seed-<k>/``) under one folder; feature stores are shared (they do not depend on the seed),
while everything after feature extraction, the trained tokenizer included, follows the seed.
The summary gives every setup's test metrics per seed, with each seed's 95% interval, and their
mean and sample standard deviation (``ddof=1``) across seeds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from mirformer import distributed, paths
from mirformer.atomic import write_json, write_text
from mirformer.errors import ConfigError
from mirformer.experiments.compare import run_compare
from mirformer.experiments.config import CompareConfig
from mirformer.experiments.run import config_hash
from mirformer.tasks.base import task_class


def seeds_dir(cfg: CompareConfig, seeds: list[int]) -> Path:
    """``runs/<preset>-<config hash without the seed>-seeds-<k>-<k>...``."""
    return paths.runs_dir() / f"{cfg.name}-{config_hash(replace(cfg, seed=0))}-seeds-{'-'.join(map(str, seeds))}"


def run_seeds(cfg: CompareConfig, seeds: list[int], run_dir: Path | None = None, *, progress: bool = True) -> dict:
    """Run (or resume) the comparison once per seed; write the summary (``results.json``,
    ``report.md``) into ``run_dir``. Returns the summary on rank 0, ``{}`` on other ranks."""
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds needs at least two different seeds, got {seeds}")
    distributed.launch(cfg.trainer)
    top = Path(run_dir) if run_dir else seeds_dir(cfg, seeds)
    runs = {seed: run_compare(replace(cfg, seed=seed), top / f"seed-{seed}", progress=progress) for seed in seeds}
    if not distributed.is_main():
        return {}
    summary = summarise_seeds(runs)
    summary["run_dir"] = str(top)
    write_json(top / "results.json", summary)
    summary["table"] = write_seeds_report(summary, top)
    return summary


def summarise_seeds(runs: dict[int, dict]) -> dict:
    """Per setup and test metric: each seed's value and interval, their mean and std (ddof=1)."""
    first = next(iter(runs.values()))
    task = first["task"]
    names = [n for n in first["setups"] if all(n in r["setups"] for r in runs.values())]
    setups = {}
    for name in names:
        setups[name] = {}
        for metric in task_class(task).kernels:
            values = [r["setups"][name]["splits"]["test"][metric] for r in runs.values()]
            intervals = [(r.get("evidence") or {}).get("intervals", {}).get(name, {}).get(metric) for r in runs.values()]
            setups[name][metric] = {"values": values, "intervals": intervals, "mean": float(np.mean(values)),
                                    "std": float(np.std(values, ddof=1))}
    return {"name": first["name"], "dataset": first["dataset"], "task": task, "monitor": first["monitor"],
            "seeds": list(runs), "runs": {str(s): f"seed-{s}" for s in runs}, "setups": setups}


def seeds_table(summary: dict, metric: str) -> str:
    """``| setup | seed 0 | seed 1 | ... | mean ± std |``, each seed's cell with its interval."""
    seeds = summary["seeds"]
    lines = ["| setup | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|:---|" + "---:|" * (len(seeds) + 1)]
    for name, metrics in summary["setups"].items():
        m = metrics[metric]
        cells = [f"{v:.2f}" + (f" [{ci['low']:.2f}, {ci['high']:.2f}]" if ci else "")
                 for v, ci in zip(m["values"], m["intervals"])]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['mean']:.2f} ± {m['std']:.2f} |")
    return "\n".join(lines) + "\n"


def write_seeds_report(summary: dict, out: Path) -> str:
    """``report.md`` of a several-seed run; returns the monitored metric's table."""
    seeds, task = summary["seeds"], summary["task"]
    md = [f"# Results across {len(seeds)} seeds: {summary['dataset']}", "",
          f"Seeds {', '.join(map(str, seeds))}: everything after feature extraction (the trained tokenizer "
          "included) follows the seed. Each cell is a seed's test score with its 95% bootstrap interval over "
          "clips; the last column is the mean and sample standard deviation (ddof = 1) across seeds. Each "
          "seed's own report: " + ", ".join(f"[seed {s}](seed-{s}/report.md)" for s in seeds) + ".", ""]
    tables = {}
    for metric in task_class(task).kernels:
        tables[metric] = seeds_table(summary, metric)
        md += [f"## Test {metric}", "", tables[metric]]
    write_text(out / "report.md", "\n".join(md))
    return tables[summary["monitor"]]
