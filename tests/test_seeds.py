"""``compare --seeds``: one resumable run per seed sharing features, and a summary whose mean and
standard deviation are numpy's over the per-seed results."""

import json

import numpy as np
import pytest

from mirformer.cli import main
from helpers import TINY_RUN


@pytest.mark.slow
def test_seeds_run_apart_and_summarise(tmp_path, capsys, tiny_corpus):
    out = tmp_path / "seeds"
    args = ["compare", "--preset", "quickstart", *TINY_RUN, "--set", "setups=[spectroformer-scratch, mfcc-linear]",
            "--seeds", "0,1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "mean ± std" in capsys.readouterr().out
    runs = {s: json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)}
    assert [json.loads((out / f"seed-{s}" / "config.json").read_text())["seed"] for s in (0, 1)] == [0, 1]
    # The seed changes training, not the features both runs read.
    scratch = [r["setups"]["spectroformer-scratch"] for r in runs.values()]
    assert scratch[0]["history"] != scratch[1]["history"]
    assert runs[0]["representations"] == runs[1]["representations"]
    summary = json.loads((out / "results.json").read_text())
    for name in ("spectroformer-scratch", "mfcc-linear"):
        for metric in ("macro_f1", "accuracy"):
            values = [r["setups"][name]["splits"]["test"][metric] for r in runs.values()]
            got = summary["setups"][name][metric]
            assert got["values"] == values and got["mean"] == np.mean(values) and got["std"] == np.std(values, ddof=1)
            assert got["intervals"] == [r["evidence"]["intervals"][name][metric] for r in runs.values()]
    report = (out / "report.md").read_text()
    m = summary["setups"]["spectroformer-scratch"]["macro_f1"]
    assert f"{m['mean']:.2f} ± {m['std']:.2f} |" in report and "[seed 1](seed-1/report.md)" in report
    # Each seed resumes on its own: a rerun trains nothing.
    before = (out / "seed-1" / "spectroformer-scratch" / "result.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "seed-1" / "spectroformer-scratch" / "result.json").stat().st_mtime_ns == before


def test_seeds_must_be_two_different_integers(capsys):
    with pytest.raises(SystemExit):  # argparse's usage error
        main(["compare", "--seeds", "0,x"])
    assert "comma-separated integers" in capsys.readouterr().err
    assert main(["compare", "--seeds", "1,1", "--quiet"]) == 2
    assert "at least two different seeds" in capsys.readouterr().err
