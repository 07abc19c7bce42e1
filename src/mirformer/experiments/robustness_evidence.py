"""How much each setup loses on deformed test clips, and whether two representations lose
differently, from the outputs ``experiments.robustness`` saved.

- Per setup and setting: the deformed score with its 95% bootstrap interval, and the paired
  difference deformed - clean on the clips both have (interval, permutation p-value), Holm-adjusted
  over the setups of one setting (one question: "what does this deformation cost?").
- Per continuous-against-discrete pair of ``questions`` (the log-mel model against the token
  models, same architecture and mode): does the gap between them move from clean to deformed
  (``stats.gap_change``, a difference of paired differences)?
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirformer import stats
from mirformer.experiments.outputs import load_outputs
from mirformer.experiments.questions import continuous_against_discrete


def _common(*loaded: tuple) -> tuple[np.ndarray, list[np.ndarray]]:
    """Targets and every set's outputs on the clips all of them have, in the first's order."""
    ids = [list(i) for i, _, _ in loaded]
    others = [set(these) for these in ids[1:]]
    keep = [i for i in ids[0] if all(i in other for other in others)]
    where = [{i: k for k, i in enumerate(these)} for these in ids]
    y = loaded[0][1][[where[0][i] for i in keep]]
    return y, [out[[w[i] for i in keep]] for (_, _, out), w in zip(loaded, where)]


def robustness_evidence(results: dict, run_dir: Path, task, *, seed: int, n_resamples: int,
                        n_permutations: int) -> dict:
    """``{"losses": [...], "gaps": [...]}`` (empty lists without deformations); see the module doc."""
    run_dir, monitor = Path(run_dir), results["monitor"]
    kernel, setups = task.kernels[monitor], results["setups"]
    settings = results.get("deformations") or []
    losses, gaps = [], []
    for d in settings:
        family = []
        for name, s in setups.items():
            entry = (s.get("robustness") or {}).get(d["name"])
            if not entry or not s.get("outputs"):
                continue
            deformed, clean = load_outputs(run_dir / entry["outputs"]), load_outputs(run_dir / s["outputs"])
            y, (out_d, out_c) = _common(deformed, clean)
            family.append({"setup": name, "deformation": d["name"], "metric": monitor, "n": int(len(y)),
                           "deformed": stats.interval(kernel, deformed[1], deformed[2], groups=task.strata(deformed[1]),
                                                      seed=seed, n_resamples=n_resamples),
                           **stats.paired(kernel, y, out_d, out_c, groups=task.strata(y), seed=seed,
                                          n_resamples=n_resamples, n_permutations=n_permutations)})
        for row, adjusted in zip(family, stats.holm([r["p"] for r in family])):
            row.update(p_holm=adjusted, family=len(family))
        losses += family
        for a, b, question in continuous_against_discrete(results, list(setups)):
            entries = [(setups[n].get("robustness") or {}).get(d["name"]) for n in (a, b)]
            if not all(entries):
                continue
            loaded = [load_outputs(run_dir / setups[a]["outputs"]), load_outputs(run_dir / setups[b]["outputs"]),
                      *(load_outputs(run_dir / e["outputs"]) for e in entries)]
            y, (a_clean, b_clean, a_def, b_def) = _common(*loaded)
            gaps.append({"a": a, "b": b, "deformation": d["name"], "question": question, "metric": monitor,
                         "n": int(len(y)),
                         **stats.gap_change(kernel, y, (a_clean, b_clean), (a_def, b_def), groups=task.strata(y),
                                            seed=seed, n_resamples=n_resamples, n_permutations=n_permutations)})
    return {"losses": losses, "gaps": gaps}
