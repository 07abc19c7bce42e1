"""Which questions a report answers, and their evidence from a run folder's saved outputs.

The questions come from the setups' declarations, never from their names:

- each setup against the reference setups (``ModelKind.reference``: the MFCC baseline);
- each pretrained setup against its model kind from scratch;
- between kinds of one architecture (``ModelKind.architecture``: they differ only in their
  input), a model reading continuous frames against the models reading discrete ids, in the same
  mode ("does the log-mel model beat the token models?");
- a swept setting (``experiments.sweep``): each value against the first, per model and mode;
- the best setup, chosen by its validation score, against every other.

Each question is a family of paired tests: beside each raw p-value stands Holm's adjusted one
over that family. Everything is recomputed from ``outputs.npz`` files (``evidence_of_run``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirformer import stats
from mirformer.experiments.layers import layer_evidence
from mirformer.experiments.outputs import load_outputs
from mirformer.kinds import KINDS
from mirformer.representations import REPRESENTATIONS
from mirformer.tasks import make_task


def _kind(setup: dict):
    return KINDS.get(setup.get("model"))


def _representation(results: dict, setup: dict):
    """The representation class a setup's input reads (None for the baseline)."""
    return REPRESENTATIONS.get((results.get("representations", {}).get(setup.get("input")) or {}).get("name"))


def best_on_validation(results: dict) -> str | None:
    """The setup with the best validation score of the monitored metric (the first of a tie).

    Chosen on validation, so the test clips that then compare it with the others played no
    part in choosing it."""
    monitor = results["monitor"]
    scored = {n: s.get("splits", {}).get("validation", {}).get(monitor) for n, s in results["setups"].items()}
    scored = {n: v for n, v in scored.items() if v is not None and np.isfinite(v)}
    return max(scored, key=scored.get) if scored else None


def questions(results: dict) -> list[tuple[str, str, str]]:
    """The paired comparisons a report answers, as (a, b, question), in report order."""
    setups = results["setups"]
    references = [n for n, s in setups.items() if _kind(s) is not None and _kind(s).reference]
    trained = [n for n in setups if n not in references]
    out = [(n, r, f"against {_kind(setups[r]).label}") for r in references for n in trained]
    for n in trained:
        if setups[n].get("pretrained"):
            out += [(n, m, "does pretraining help?") for m in trained
                    if setups[m].get("model") == setups[n].get("model") and not setups[m].get("pretrained")
                    and _same_value(setups[m], setups[n])]
    out += continuous_against_discrete(results, trained)
    out += _sweep_questions(setups)
    best = best_on_validation(results)
    if best is not None:
        out += [(best, n, "is the best setup (on validation) ahead of the others?") for n in setups if n != best]
    return out


def continuous_against_discrete(results: dict, trained: list[str]) -> list[tuple[str, str, str]]:
    """Between kinds of one architecture, in the same mode (and at the same value of a sweep): each
    model reading continuous frames against each reading ids."""
    setups, out = results["setups"], []
    for n in trained:
        s, rep = setups[n], _representation(results, setups[n])
        if rep is None or rep.discrete or _kind(s) is None:
            continue
        for m in trained:
            other, other_rep = setups[m], _representation(results, setups[m])
            if (other_rep is not None and other_rep.discrete and _kind(other) is not None
                    and _kind(other).architecture == _kind(s).architecture
                    and other.get("pretrained") == s.get("pretrained") and other.get("strategy") == s.get("strategy")
                    and _same_value(other, s)):
                out.append((n, m, f"does the {rep.label} model beat the {other_rep.label} models?"))
    return out


def gap_pairs(results: dict) -> list[dict]:
    """Where both sides of a continuous-against-discrete question are swept: the same two models at
    the first and at the last value of the sweep (does the gap move along it?)."""
    setups, by_pair = results["setups"], {}
    for n, m, question in continuous_against_discrete(results, list(setups)):
        a, b = setups[n], setups[m]
        if a.get("sweep") and b.get("sweep"):
            key = (a["model"], b["model"], a.get("strategy"), a.get("pretrained"), question)
            by_pair.setdefault(key, []).append((n, m))
    return [{"question": key[-1], "first": pairs[0], "last": pairs[-1]} for key, pairs in by_pair.items()
            if len(pairs) > 1]


def _same_value(a: dict, b: dict) -> bool:
    """Two setups comparable under a sweep: at the same value, or one of them not swept."""
    return a.get("sweep") is None or b.get("sweep") is None or a["sweep"] == b["sweep"]


def _sweep_questions(setups: dict) -> list[tuple[str, str, str]]:
    """A swept setting: each value's setup against the same model and mode at the first value."""
    out, first = [], {}
    for n, s in setups.items():
        if s.get("sweep"):
            same = (s.get("model"), s.get("pretrained"), s.get("strategy"))
            if same not in first:
                first[same] = n
                continue
            base = setups[first[same]]["sweep"]
            out.append((n, first[same], f"does {base['key']} change the score (each value against {base['value']})?"))
    return out


def _aligned(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets and both setups' outputs on the test clips they share, in a's order."""
    (ids_a, y, out_a), (ids_b, _, out_b) = a, b
    where = {i: k for k, i in enumerate(ids_b)}
    keep = [k for k, i in enumerate(ids_a) if i in where]
    return y[keep], out_a[keep], out_b[[where[ids_a[k]] for k in keep]]


def evidence_of_run(results: dict, run_dir: Path, *, seed: int = 0, n_resamples: int = stats.N_BOOTSTRAP,
                    n_permutations: int = stats.N_PERMUTATIONS, progress: bool = False) -> dict:
    """Intervals of every test metric of every setup that saved its outputs, and the paired tests
    of ``questions`` on the monitored metric, Holm-adjusted per question; from the run folder."""
    from tqdm.auto import tqdm

    task, monitor = make_task(results["task"], results["classes"]), results["monitor"]
    loaded = {n: load_outputs(Path(run_dir) / s["outputs"]) for n, s in results["setups"].items() if s.get("outputs")}
    asked = [(a, b, q) for a, b, q in questions(results) if a in loaded and b in loaded]
    bar = tqdm(total=len(loaded) + len(asked), desc="confidence intervals", unit="setup", disable=not progress)
    intervals = {}
    for name, (_, y, outputs) in loaded.items():
        groups = task.strata(y)
        intervals[name] = {m: stats.interval(kernel, y, outputs, groups=groups, seed=seed, n_resamples=n_resamples)
                           for m, kernel in task.kernels.items()}
        bar.update()
    tests = []
    for a, b, question in asked:
        y, out_a, out_b = _aligned(loaded[a], loaded[b])
        tests.append({"a": a, "b": b, "question": question, "metric": monitor, "n": int(len(y)),
                      **stats.paired(task.kernels[monitor], y, out_a, out_b, groups=task.strata(y), seed=seed,
                                     n_resamples=n_resamples, n_permutations=n_permutations)})
        bar.update()
    bar.close()
    for question in dict.fromkeys(t["question"] for t in tests):
        family = [t for t in tests if t["question"] == question]
        for t, adjusted in zip(family, stats.holm([t["p"] for t in family])):
            t.update(p_holm=adjusted, family=len(family))
    layers = layer_evidence(results, run_dir, task, intervals, seed=seed, n_resamples=n_resamples,
                            n_permutations=n_permutations)
    gaps = []
    for pair in gap_pairs(results):  # (a, b) at the sweep's first value, then at its last
        (ids, y, a1), (_, _, b1) = (loaded[n] for n in pair["first"])
        (ids_last, _, a2), (_, _, b2) = (loaded[n] for n in pair["last"])
        assert list(ids) == list(ids_last), "swept setups score the same test clips"
        gaps.append({**pair, "metric": monitor,
                     **stats.gap_change(task.kernels[monitor], y, (a1, b1), (a2, b2), groups=task.strata(y), seed=seed,
                                        n_resamples=n_resamples, n_permutations=n_permutations)})
    from mirformer.experiments.robustness_evidence import robustness_evidence  # it reads this module's questions

    robustness = robustness_evidence(results, run_dir, task, seed=seed, n_resamples=n_resamples,
                                     n_permutations=n_permutations) if results.get("deformations") else None
    return {"split": "test", "confidence": stats.CONFIDENCE, "n_resamples": n_resamples,
            "n_permutations": n_permutations, "seed": seed,
            "method": "percentile bootstrap over clips (stratified by class for classification); "
                      "paired permutation test, two-sided; Holm's adjustment over each question's tests",
            "intervals": intervals, "paired": tests, **({"layers": layers} if layers else {}),
            **({"gaps": gaps} if gaps else {}), **({"robustness": robustness} if robustness else {})}
