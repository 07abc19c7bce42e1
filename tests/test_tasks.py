import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.utils.class_weight import compute_class_weight

from mirformer.tasks import TASKS
from mirformer.tasks.classification import Classification, class_weights
from mirformer.tasks.regression import Regression
from mirformer.tasks.tagging import Tagging
from mirformer.training.schedule import inverse_sqrt_warmup


def test_class_weights_match_sklearn_balanced():
    y = np.array([0] * 50 + [1] * 10 + [2] * 3 + [3] * 1)
    ours = class_weights(y, 4)
    ref = compute_class_weight("balanced", classes=np.arange(4), y=y)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_absent_class_gets_zero_weight():
    assert class_weights([0, 0, 2], 3)[1] == 0


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 200)
    logits = rng.normal(size=(200, 5)) + 2.0 * np.eye(5)[targets] * (rng.random(200) < 0.6)[:, None]
    task = Classification(list("abcde"))
    m = task.metrics(logits, targets)
    preds = logits.argmax(1)
    assert abs(m["macro_f1"] - f1_score(targets, preds, average="macro")) < 1e-6
    assert abs(m["accuracy"] - accuracy_score(targets, preds)) < 1e-6
    assert m["confusion"] == confusion_matrix(targets, preds, labels=range(5)).tolist()
    task.weights = w = class_weights(targets, 5)
    weighted = task.metrics(logits, targets)["loss"]
    ref = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets), weight=torch.tensor(w).double())
    assert abs(weighted - float(ref)) < 1e-5
    # The training loss is the same weighted cross-entropy.
    assert float(task.loss(torch.tensor(logits), torch.tensor(targets))) == pytest.approx(weighted, rel=1e-5)


def test_macro_f1_with_a_class_never_seen_matches_sklearn_default():
    y, p = np.array([0, 0, 1, 2, 2, 1]), np.array([0, 1, 1, 2, 0, 1])
    m = Classification(list("abcd")).metrics(np.eye(4)[p], y)
    assert abs(m["macro_f1"] - f1_score(y, p, average="macro")) < 1e-6


def test_schedule_peaks_at_warmup_with_thesis_value():
    rates = [inverse_sqrt_warmup(s, d_model=768, warmup=8000) for s in range(0, 20000, 100)]
    peak_step = int(np.argmax(rates)) * 100 + 1
    assert abs(peak_step - 8000) <= 100
    assert abs(max(rates) - 768**-0.5 * 8000**-0.5) / max(rates) < 1e-2  # about 4e-4
    assert 3.9e-4 < max(rates) < 4.1e-4


def test_tagging_metrics_match_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random((60, 5)) < 0.3).astype(int)
    y[:, 4] = 0  # a tag with no positive: undefined, left out of the macro means
    logits = rng.normal(size=(60, 5)) + 1.5 * y
    m = Tagging(list("abcde")).metrics(logits, y)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y[:, :4], logits[:, :4], average="macro"), abs=1e-6)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y[:, :4], logits[:, :4], average="macro"), abs=1e-6)
    for j, tag in enumerate("abcd"):
        assert m["per_tag"][tag]["roc_auc"] == pytest.approx(roc_auc_score(y[:, j], logits[:, j]), abs=1e-6)
        assert m["per_tag"][tag]["pr_auc"] == pytest.approx(average_precision_score(y[:, j], logits[:, j]), abs=1e-6)
        assert m["per_tag"][tag]["positives"] == y[:, j].sum()
    assert m["per_tag"]["e"] == {"roc_auc": None, "pr_auc": None, "positives": 0} and m["tags_scored"] == 4
    bce = -np.mean(y * np.log(1 / (1 + np.exp(-logits))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-logits))))
    assert m["loss"] == pytest.approx(bce, rel=1e-5)


def test_tagging_ties_score_like_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.array([[1], [0], [1], [0], [0], [1]])
    scores = np.array([[0.5], [0.5], [0.2], [0.2], [0.9], [0.9]])  # tied scores across classes
    m = Tagging(["t"]).metrics(scores, y)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y[:, 0], scores[:, 0]))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y[:, 0], scores[:, 0]))


def test_regression_metrics_match_sklearn():
    from sklearn.metrics import mean_squared_error, r2_score

    rng = np.random.default_rng(2)
    y = rng.normal(size=(40, 2))
    pred = y * np.array([0.8, 0.3]) + rng.normal(scale=0.5, size=(40, 2))
    m = Regression(["arousal", "valence"]).metrics(pred, y)
    per = r2_score(y, pred, multioutput="raw_values")
    assert m["r2_per_target"]["arousal"] == pytest.approx(per[0], abs=1e-5)
    assert m["r2_per_target"]["valence"] == pytest.approx(per[1], abs=1e-5)
    assert m["r2"] == pytest.approx(r2_score(y, pred), abs=1e-5)
    assert m["mse"] == m["loss"] == pytest.approx(mean_squared_error(y, pred), rel=1e-5)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_kernel_is_the_metric_the_task_reports(name):
    """One implementation: the interval kernels and the reported metrics agree on the same outputs."""
    rng = np.random.default_rng(3)
    task = TASKS[name](["a", "b", "c"])
    y = {"classification": rng.integers(0, 3, 50), "tagging": (rng.random((50, 3)) < 0.4).astype(np.float32),
         "regression": rng.normal(size=(50, 3))}[name]
    outputs = rng.normal(size=(50, 3))
    m = task.metrics(outputs, y)
    for metric, kernel in task.kernels.items():
        assert kernel(y, outputs) == m[metric]
