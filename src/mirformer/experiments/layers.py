"""Layer by layer: the probes of one representation and strategy at each of its layers, the layer
chosen on validation (as MARBLE chooses it), every layer's test score with its interval, and
where the chosen layer stands against the layer that scored best on test."""

from __future__ import annotations

from pathlib import Path

from mirformer import stats
from mirformer.experiments.outputs import load_outputs


def layer_groups(setups: dict) -> dict[tuple[str, str], list[str]]:
    """Setups probing one representation with one strategy at numbered layers (two or more), by
    (representation, strategy), in layer order."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, s in setups.items():
        if isinstance(s.get("layer"), int) and s.get("representation"):
            groups.setdefault((s["representation"], s["strategy"]), []).append(name)
    return {k: sorted(v, key=lambda n: setups[n]["layer"]) for k, v in groups.items() if len(v) > 1}


def layer_evidence(results: dict, run_dir: Path, task, intervals: dict, *, seed: int, n_resamples: int,
                   n_permutations: int) -> list[dict]:
    """Per group of ``layer_groups``: each layer's validation and test score with 95% intervals,
    the layer chosen on validation, the best layer on test, and the paired test of the two."""
    monitor, setups, out = results["monitor"], results["setups"], []
    kernel = task.kernels[monitor]
    for (representation, strategy), names in layer_groups(setups).items():
        rows = []
        for name in names:
            _, y, outputs = load_outputs(Path(run_dir) / setups[name]["outputs"], "validation")
            rows.append({"setup": name, "layer": setups[name]["layer"],
                         "validation": stats.interval(kernel, y, outputs, groups=task.strata(y), seed=seed,
                                                      n_resamples=n_resamples),
                         "test": intervals[name][monitor]})
        chosen = max(rows, key=lambda r: r["validation"]["value"])  # the first of a tie
        best = max(rows, key=lambda r: r["test"]["value"])
        group = {"representation": representation, "label": setups[names[0]]["label"], "strategy": strategy,
                 "metric": monitor,
                 "layers": rows,
                 "chosen": chosen["layer"], "best_on_test": best["layer"],
                 "rank_on_test": 1 + sum(r["test"]["value"] > chosen["test"]["value"] for r in rows)}
        if best is not chosen:
            ids_a, y, a = load_outputs(Path(run_dir) / setups[chosen["setup"]]["outputs"])
            ids_b, _, b = load_outputs(Path(run_dir) / setups[best["setup"]]["outputs"])
            assert list(ids_a) == list(ids_b), "the probes of one representation score the same test clips"
            group["chosen_vs_best"] = stats.paired(kernel, y, a, b, groups=task.strata(y), seed=seed,
                                                   n_resamples=n_resamples, n_permutations=n_permutations)
        out.append(group)
    return out
