"""Settings are selected on the validation split and only the selected one is scored on test, for
the fine-tuning grid and for the baseline's regularisation strength, on data where the best
setting on validation is not the best on test (so selecting on test would give another answer).
"""

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mirformer.experiments.downstream as downstream_mod
from mirformer.config_tree import parse_overrides
from mirformer.experiments.compare import run_compare
from mirformer.experiments.downstream import Setup, downstream_module
from mirformer.experiments.prepare import prepare
from mirformer.kinds import KINDS
from mirformer.kinds.mfcc_linear import fit_linear
from mirformer.tasks.classification import Classification
from mirformer.tasks.regression import Regression
from mirformer.experiments.presets import resolve
from mirformer.training.predict import predict_clips
from mirformer.training.fit import load_module_weights
from helpers import TINY

SR = 16000


def _rotated_validation(root):
    """Low, middle and high tones; the validation split's labels are rotated, so a model that
    learns the training rule scores worst on validation and best on test."""
    names = ["low", "mid", "high"]
    rows = ["path,label,split"]
    for i in range(45):
        split = ("train", "train", "train", "validation", "test")[i % 5]
        pitch = (i // 5) % 3
        t = np.arange(int(1.5 * SR)) / SR
        sf.write(root / f"c{i:02d}.wav", 0.4 * np.sin(2 * np.pi * 220.0 * 2**pitch * t), SR)
        rows.append(f"c{i:02d}.wav,{names[(pitch + (split == 'validation')) % 3]},{split}")
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root / "clips.csv"


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.state_dict().values()])


@pytest.mark.slow
def test_grid_selects_on_validation_and_scores_only_the_selected_point_on_test(tmp_path, monkeypatch):
    sets = [v for k, v in zip(TINY, TINY[1:]) if k == "--set"]
    cfg = resolve("quickstart", parse_overrides([
        *sets, "data.name=csv", f"data.root={_rotated_validation(tmp_path)}", "setups=[spectroformer-scratch]",
        "scratch.epochs=3", "scratch.snippets_per_track=4", "scratch.optim.lr=1e-3",
        "scratch.grid={lr: [0.0, 3e-3]}", "trainer.progress=false"]))  # lr 0 never learns; 3e-3 learns the training rule
    predicted = []  # (split size, weights) of every clip-level prediction the runner makes
    real = downstream_mod.predict_clips
    monkeypatch.setattr(downstream_mod, "predict_clips",
                        lambda model, windows, **kw: predicted.append((windows.ids, _weights(model)))
                        or real(model, windows, **kw))
    results = run_compare(cfg, tmp_path / "run", progress=False)
    result = results["setups"]["spectroformer-scratch"]

    prepared = prepare(cfg, progress=False)
    test_ids = [t.id for t in prepared.tracks["test"]]
    setup = Setup("spectroformer-scratch", KINDS["spectroformer"], cfg.scratch, input="mel")

    def evaluate(checkpoint):
        """A fresh model with ``checkpoint``'s weights, scored on test."""
        module = downstream_module(setup, cfg.scratch, prepared)
        load_module_weights(module, checkpoint)
        outputs = predict_clips(module.model, prepared.tiled("test", prepared.inputs["mel"])).numpy()
        return prepared.task.metrics(outputs, prepared.task.targets(prepared.tracks["test"])), _weights(module.model)

    on_val = [p["best"]["val_macro_f1"] for p in result["grid"]]
    on_test = [evaluate(p["checkpoint"])[0]["macro_f1"] for p in result["grid"]]
    assert int(np.argmax(on_val)) != int(np.argmax(on_test))  # the two splits disagree
    chosen = result["grid"][int(np.argmax(on_val))]
    assert (result["selected"]["lr"], result["checkpoint"]) == (chosen["lr"], chosen["checkpoint"])
    # Test was predicted once, by the selected checkpoint's weights, and the report holds those scores.
    expected, weights = evaluate(result["checkpoint"])
    on_test_split = [w for ids, w in predicted if ids == test_ids]
    assert len(on_test_split) == 1 and torch.equal(on_test_split[0], weights)
    assert result["splits"]["test"] == expected
    assert all(set(p) == {"batch_size", "lr", "best", "checkpoint"} for p in result["grid"])  # no test scores


def _synthetic(seed: int, task: str) -> dict:
    """A noisy linear rule; small splits, so validation and test prefer different strengths."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(12)
    data = {}
    for split, n in (("train", 30), ("validation", 40), ("test", 40)):
        X = rng.standard_normal((n, 12))
        z = X @ w + 2.0 * rng.standard_normal(n)
        data[split] = (X, (z > 0).astype(np.int64) + (z > 2)) if task == "classification" else (X, z[:, None])
    return data


@pytest.mark.parametrize("task, seed", [("classification", 7), ("regression", 17)])
def test_baseline_selects_its_strength_on_validation(task, seed):
    data = _synthetic(seed, task)
    classes = ["a", "b", "c"] if task == "classification" else ["z"]
    if task == "classification":
        grid, key = Classification.strengths, "C"
        fits = [make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, class_weight="balanced",
                                                                   random_state=0)).fit(*data["train"]) for c in grid]

        def score(model, split):
            return f1_score(data[split][1], model.predict(data[split][0]), average="macro", zero_division=0.0)
    else:
        grid, key = Regression.strengths, "alpha"
        fits = [make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(*data["train"]) for a in grid]

        def score(model, split):
            return r2_score(data[split][1], model.predict(data[split][0]))
    on_val = [score(m, "validation") for m in fits]
    on_test = [score(m, "test") for m in fits]
    assert int(np.argmax(on_val)) != int(np.argmax(on_test))  # the two splits disagree

    task_ = (Classification if task == "classification" else Regression)(classes)
    selected, model = fit_linear(task_, data, seed=0)
    splits = {s: task_.metrics(task_.linear_outputs(model, X), y) for s, (X, y) in data.items()}
    best = int(np.argmax(on_val))
    assert selected == {key: grid[best]}
    metric = "macro_f1" if task == "classification" else "r2"
    assert splits["test"][metric] == pytest.approx(on_test[best], abs=1e-6)
    assert splits["validation"][metric] == pytest.approx(on_val[best], abs=1e-6)
