"""The report's uncertainty: the tasks' metric kernels against scikit-learn, intervals and paired
tests against direct ``scipy.stats`` calls on fixed predictions, a clearly better setup found and
identical ones not, Holm's adjustment, the questions a run's declarations ask (the best setup
chosen on validation), and the report's table and forest plot."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, mean_squared_error, r2_score, roc_auc_score

from mirformer import stats as st
from mirformer.experiments.outputs import OUTPUTS, save_outputs
from mirformer.experiments.questions import evidence_of_run
from mirformer.experiments.report import write_report
from mirformer.tasks.classification import Classification, accuracy, macro_f1
from mirformer.tasks.regression import mse, r2
from mirformer.tasks.tagging import Tagging, pr_auc, roc_auc

RNG = np.random.default_rng(0)
N, K = 240, 6
Y = RNG.integers(0, K, N)
Y[:2] = [5, 5]  # every class present
GOOD = RNG.normal(size=(N, K)) + 2.5 * np.eye(K)[Y]  # right about 85% of the time
POOR = RNG.normal(size=(N, K)) + 0.3 * np.eye(K)[Y]
CLS = Classification([f"c{k}" for k in range(K)])


def test_metrics_equal_scikit_learn():
    pred = GOOD.argmax(1)
    assert macro_f1(Y, GOOD) == pytest.approx(f1_score(Y, pred, average="macro"), abs=1e-12)
    assert accuracy(Y, GOOD) == pytest.approx(accuracy_score(Y, pred), abs=1e-12)
    # A class absent from targets and predictions is not averaged, as scikit-learn's default.
    y3, p3 = np.array([0, 0, 2, 2, 2]), np.array([0, 2, 2, 2, 0])
    assert macro_f1(y3, p3) == pytest.approx(f1_score(y3, p3, average="macro"), abs=1e-12)
    tags = (RNG.random((N, 5)) < 0.3).astype(int)
    tags[:, 4] = 0  # a tag without positives is left out
    scores = np.round(RNG.normal(size=(N, 5)) + tags, 1)  # ties
    scored = range(4)
    assert roc_auc(tags, scores) == pytest.approx(np.mean([roc_auc_score(tags[:, j], scores[:, j]) for j in scored]))
    assert pr_auc(tags, scores) == pytest.approx(
        np.mean([average_precision_score(tags[:, j], scores[:, j]) for j in scored]))
    y, p = RNG.normal(size=(N, 2)), RNG.normal(size=(N, 2))
    assert r2(y, p) == pytest.approx(r2_score(y, p))
    y[:, 1] = 0.5  # a constant target, as a resample of a small split may give
    assert r2(y, p) == pytest.approx(r2_score(y, p))
    p[:, 1] = 0.5
    assert r2(y, p) == pytest.approx(r2_score(y, p))
    assert mse(y, p) == pytest.approx(mean_squared_error(y, p))


def test_interval_is_scipys_stratified_bootstrap():
    got = st.interval(macro_f1, Y, GOOD, groups=CLS.strata(Y), seed=3, n_resamples=1000)
    groups = [np.flatnonzero(Y == c) for c in range(K)]
    want = stats.bootstrap(groups, lambda *i: f1_score(Y[np.concatenate(i)], GOOD[np.concatenate(i)].argmax(1),
                                                       average="macro"),
                           vectorized=False, n_resamples=1000, method="percentile", rng=np.random.default_rng(3))
    assert got["low"] == pytest.approx(want.confidence_interval.low, abs=1e-12)
    assert got["high"] == pytest.approx(want.confidence_interval.high, abs=1e-12)
    assert got["low"] < got["value"] == macro_f1(Y, GOOD) < got["high"]
    # Regression: one sample of clips.
    y, p = RNG.normal(size=(60, 2)), RNG.normal(size=(60, 2))
    got = st.interval(r2, y, p, groups=[np.arange(60)], seed=1, n_resamples=1000)
    want = stats.bootstrap([np.arange(60)], lambda i: r2_score(y[i], p[i]), vectorized=False, n_resamples=1000,
                           method="percentile", rng=np.random.default_rng(1))
    assert (got["low"], got["high"]) == pytest.approx(tuple(want.confidence_interval), abs=1e-12)


def test_strata_pool_single_clip_classes():
    y = np.array([0, 0, 0, 1, 2, 3, 3])
    groups = CLS.strata(y)
    assert sorted(np.concatenate(groups).tolist()) == list(range(7)) and min(map(len, groups)) >= 2
    # One lone clip joins the smallest class; several lone clips form a stratum of their own.
    assert [g.tolist() for g in CLS.strata(np.array([0, 0, 0, 1, 1, 2]))] == [[0, 1, 2], [3, 4, 5]]
    assert [g.tolist() for g in CLS.strata(np.array([0, 0, 1, 2]))] == [[0, 1], [2, 3]]
    assert [g.tolist() for g in Tagging(list("abc")).strata(np.zeros((4, 3)))] == [[0, 1, 2, 3]]


@pytest.mark.slow  # 2.5-3 s
def test_paired_test_is_scipys_and_finds_the_better_setup():
    got = st.paired(macro_f1, Y, GOOD, POOR, groups=CLS.strata(Y), seed=5, n_resamples=1000, n_permutations=999)
    both = np.concatenate([GOOD, POOR])
    want = stats.permutation_test(
        (np.arange(N), np.arange(N) + N),
        lambda a, b: f1_score(Y, both[a].argmax(1), average="macro") - f1_score(Y, both[b].argmax(1), average="macro"),
        permutation_type="samples", vectorized=False, n_resamples=999, rng=np.random.default_rng(5))
    assert got["p"] == pytest.approx(want.pvalue) and got["p"] < 0.01
    assert got["difference"] == pytest.approx(want.statistic) and 0 < got["low"] < got["difference"] < got["high"]
    # The same setup twice: no difference, nothing detected.
    same = st.paired(macro_f1, Y, GOOD, GOOD.copy(), groups=CLS.strata(Y), seed=5, n_resamples=1000)
    assert same["difference"] == same["low"] == same["high"] == 0.0 and same["p"] == 1.0
    # Two setups of equal skill whose errors differ: not called either way.
    other = RNG.normal(size=(N, K)) + 2.5 * np.eye(K)[Y]
    tie = st.paired(macro_f1, Y, GOOD, other, groups=CLS.strata(Y), seed=5, n_resamples=1000)
    assert tie["low"] < 0 < tie["high"] and tie["p"] > 0.05


def _run(tmp_path):
    """A run folder with four setups' saved outputs, as ``compare`` leaves it."""
    ids = [f"t{i}" for i in range(N)]
    outputs = {"spectroformer-pretrained-finetuned": GOOD, "spectroformer-scratch": POOR,
               "tokenformer-pretrained-finetuned": POOR + 0.1, "mfcc-linear": GOOD[::-1]}
    models = {"spectroformer-pretrained-finetuned": ("spectroformer", True, "mel"),
              "spectroformer-scratch": ("spectroformer", False, "mel"),
              "tokenformer-pretrained-finetuned": ("tokenformer", True, "tokens"),
              "mfcc-linear": ("mfcc-linear", False, None)}
    # Validation disagrees with test: the poorest setup on test is the best on validation.
    validation = {"spectroformer-pretrained-finetuned": 0.5, "spectroformer-scratch": 0.9,
                  "tokenformer-pretrained-finetuned": 0.3, "mfcc-linear": 0.5}
    setups = {}
    for name, out in outputs.items():
        (tmp_path / name).mkdir()
        order = slice(None, None, -1) if name == "mfcc-linear" else slice(None)  # another clip order
        save_outputs(tmp_path / name / OUTPUTS, {"test": (ids[order], Y[order], out)})
        model, pretrained, inp = models[name]
        cm = np.zeros((K, K), int)
        np.add.at(cm, (Y[order], out.argmax(1)), 1)
        setups[name] = {"model": model, "pretrained": pretrained, "input": inp, "strategy": "full" if pretrained else None,
                        "outputs": f"{name}/{OUTPUTS}", "history": [],
                        "splits": {"validation": {"macro_f1": validation[name]},
                                   "test": {"macro_f1": macro_f1(Y[order], out), "accuracy": accuracy(Y[order], out),
                                            "loss": 1.0, "confusion": cm.tolist(), "n": N}}}
    return {"dataset": "toy", "task": "classification", "monitor": "macro_f1", "classes": [f"c{k}" for k in range(K)],
            "representations": {"mel": {"name": "mel"}, "tokens": {"name": "vq-tokens"}}, "setups": setups}


def test_run_evidence_questions_and_report(tmp_path):
    results = _run(tmp_path)
    evidence = evidence_of_run(results, tmp_path, n_resamples=1000, n_permutations=200)
    asked = {(t["a"], t["b"], t["question"]) for t in evidence["paired"]}
    assert ("spectroformer-pretrained-finetuned", "spectroformer-scratch", "does pretraining help?") in asked
    assert ("spectroformer-pretrained-finetuned", "tokenformer-pretrained-finetuned",
            "does the log-mel model beat the token models?") in asked
    assert ("spectroformer-scratch", "mfcc-linear", "against the MFCC baseline") in asked
    # The best setup is chosen on validation, not on the test clips it is then compared on.
    best = [t for t in evidence["paired"] if t["question"] == "is the best setup (on validation) ahead of the others?"]
    assert {t["a"] for t in best} == {"spectroformer-scratch"} and len(best) == 3
    # The baseline's clips come in another order: paired by track id, its outputs are GOOD's.
    vs_base = next(t for t in evidence["paired"] if t["a"] == "spectroformer-pretrained-finetuned"
                   and t["b"] == "mfcc-linear" and t["question"] == "against the MFCC baseline")
    assert vs_base["n"] == N and vs_base["difference"] == 0.0 and vs_base["p"] == 1.0
    # Each question is a family: its tests' Holm-adjusted p-values.
    for question in {t["question"] for t in evidence["paired"]}:
        family = [t for t in evidence["paired"] if t["question"] == question]
        assert [t["p_holm"] for t in family] == st.holm([t["p"] for t in family])
        assert all(t["family"] == len(family) and t["p_holm"] >= t["p"] for t in family)
    results["evidence"] = json.loads(json.dumps(evidence))
    table = write_report(results, tmp_path)
    ci = evidence["intervals"]["spectroformer-pretrained-finetuned"]["macro_f1"]
    assert f"| {ci['value']:.2f} [{ci['low']:.2f}, {ci['high']:.2f}] |" in table
    report = (tmp_path / "report.md").read_text()
    assert "### Does pretraining help?" in report and "a ahead" in report and (tmp_path / "forest.png").exists()
    assert "| p | p (Holm) | verdict |" in report and "A family of 3 comparisons, Holm-adjusted together." in report


def test_holm_adjustment():
    """Holm's step-down values, worked by hand: sorted p (0.01, 0.02, 0.03, 0.04) times (4, 3, 2, 1),
    made non-decreasing, capped at 1, in the original order."""
    assert st.holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert st.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert st.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # 2 x 0.6 capped; then at least that
    assert st.holm([]) == []


def test_a_gap_that_does_not_move_cannot_be_told_and_one_that_closes_can():
    """The difference of paired differences: the same two setups under two conditions."""
    from mirformer.stats import gap_change

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    right = np.eye(2)[y] * 2.0  # logits that pick the right class
    wrong = np.eye(2)[1 - y] * 2.0
    good = np.where(rng.random(200)[:, None] < 0.9, right, wrong)  # 90% right
    poor = np.where(rng.random(200)[:, None] < 0.6, right, wrong)  # 60% right
    accuracy = lambda t, o: float(np.mean(o.argmax(1) == t))  # noqa: E731
    groups = [np.flatnonzero(y == c) for c in (0, 1)]
    same = gap_change(accuracy, y, (good, poor), (good, poor), groups=groups, n_resamples=300, n_permutations=300)
    assert same["difference"] == 0 and same["p"] == 1.0 and same["low"] == same["high"] == 0
    closed = gap_change(accuracy, y, (good, poor), (good, good), groups=groups, n_resamples=300, n_permutations=300)
    assert np.isclose(closed["gap_first"], accuracy(y, good) - accuracy(y, poor)) and closed["gap_last"] == 0
    assert np.isclose(closed["difference"], -closed["gap_first"]) and closed["high"] < 0 and closed["p"] < 0.01


@pytest.mark.parametrize("kernel", [macro_f1, accuracy])
def test_kernels_rows_form_gives_the_same_intervals_and_p_values(kernel):
    """A kernel's ``rows`` form (every resample in one call) against the kernel called once per
    resample: the same resamples are drawn, so the same numbers come out."""
    one_at_a_time = lambda t, o: kernel(t, o)  # noqa: E731 - no ``rows``: scipy loops
    groups = CLS.strata(Y)
    other = RNG.normal(size=(N, K)) + 1.0 * np.eye(K)[Y]
    for fn in (st.interval, st.paired, st.gap_change):
        args = {st.interval: (Y, GOOD), st.paired: (Y, GOOD, POOR),
                st.gap_change: (Y, (GOOD, POOR), (other, POOR))}[fn]
        fast = fn(kernel, *args, groups=groups, seed=7, n_resamples=500)
        slow = fn(one_at_a_time, *args, groups=groups, seed=7, n_resamples=500)
        assert fast == pytest.approx(slow, abs=1e-12), fn.__name__


@pytest.mark.parametrize("kernel", [macro_f1, accuracy])
def test_kernels_rows_form_is_the_kernel_on_each_row(kernel):
    rng = np.random.default_rng(1)
    y, out = rng.integers(0, K, 12), rng.normal(size=(12, K))  # 12 clips: rows miss classes
    y_rows, out_rows = rng.integers(0, 12, (50, 12)), rng.integers(0, 12, (50, 12))
    want = [kernel(y[i], out[j]) for i, j in zip(y_rows, out_rows)]
    assert kernel.rows(y, out, y_rows, out_rows) == pytest.approx(want, abs=1e-12)
