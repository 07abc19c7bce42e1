import math

import matplotlib.image as mpimg
import pytest

from mirformer.experiments.plots import plot_confusion, plot_curves
from mirformer.experiments.report import results_table, write_report
from mirformer.tasks.classification import chance_macro_f1

CLASSES = ["baroque", "classical", "romantic"]


def _split(f1, acc, loss, confusion):
    return {"macro_f1": f1, "accuracy": acc, "loss": loss, "confusion": confusion, "n": sum(map(sum, confusion))}


def _results():
    cm = [[3, 1, 0], [0, 4, 0], [1, 0, 3]]
    return {
        "dataset": "music21-styles",
        "task": "classification",
        "classes": CLASSES,
        "seed": 0,  # other keys are ignored
        "skipped": {"bad-0": "cannot decode: Format not recognised"},  # excluded before any setup ran
        "setups": {
            "spectroformer-pretrained-finetuned": {
                "splits": {"train": _split(0.914, 0.92, 0.2549, cm), "test": _split(0.8333, 0.8333, 0.5, cm)},
                "history": [
                    {"epoch": 0, "train_loss": 1.1, "val_loss": 1.0, "train_macro_f1": None, "val_macro_f1": 0.4},
                    {"epoch": 1, "train_loss": 0.7, "val_loss": 0.8, "train_macro_f1": 0.6, "val_macro_f1": 0.6},
                    {"epoch": 2, "train_loss": 0.4, "val_loss": 0.7, "val_macro_f1": 0.7},
                ],
                "pretrain_history": [{"epoch": 0, "train_loss": 2.0, "val_loss": 2.1}, {"epoch": 1, "train_loss": 1.5}],
                "skipped": {"bad-1": "empty file (0 bytes)"},
            },
            "spectroformer-scratch": {
                "splits": {"train": _split(0.5, 0.5, 1.0, cm), "test": _split(0.456, 0.5, 1.2345, cm)},
                "history": [{"epoch": 0, "train_loss": 1.2}, {"epoch": 1}],
                "skipped": {"bad-1": "empty file (0 bytes)"},
            },
            "mfcc-linear": {
                "splits": {"train": _split(1.0, 1.0, 0.1, cm), "test": _split(0.6666, 0.6666, 0.9, cm)},
                "history": [],
                "skipped": {"bad-1": "empty file (0 bytes)", "bad-2": "too short: 0.05 s < required 0.19 s"},
            },
        },
    }


def _is_png(path, min_side=200):
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min(image.shape[:2]) >= min_side
    return image


def test_table_rows_and_values():
    table = results_table(_results())
    lines = table.splitlines()
    assert lines[0] == "| setup | F1 train | F1 test | loss train | loss test | accuracy test |"
    assert lines[2] == "| spectroformer-pretrained-finetuned | 0.91 | 0.83 | 0.25 | 0.50 | 0.83 |"
    assert lines[3] == "| spectroformer-scratch | 0.50 | 0.46 | 1.00 | 1.23 | 0.50 |"
    assert lines[4] == "| mfcc-linear | 1.00 | 0.67 | 0.10 | 0.90 | 0.67 |"
    assert lines[5] == ""  # the chance line is outside the table
    assert "K = 3" in lines[6] and "accuracy 0.33" in lines[6] and f"loss {math.log(3):.2f}" in lines[6]


def test_table_missing_values():
    results = _results()
    del results["setups"]["spectroformer-scratch"]["splits"]["train"]
    results["setups"]["mfcc-linear"]["splits"]["test"]["loss"] = None
    lines = results_table(results).splitlines()
    assert lines[3] == "| spectroformer-scratch | n/a | 0.46 | n/a | 1.23 | 0.50 |"
    assert lines[4] == "| mfcc-linear | 1.00 | 0.67 | 0.10 | n/a | 0.67 |"


@pytest.mark.parametrize(
    "priors, expected",
    [([5, 5, 5], 1 / 3), ([1, 1, 1, 1], 0.25), ([3, 1], (2 * 0.75 / 2.5 + 2 * 0.25 / 1.5) / 2)],
)
def test_chance_macro_f1(priors, expected):
    assert chance_macro_f1(priors) == pytest.approx(expected)


def test_write_report(tmp_path):
    table = write_report(_results(), tmp_path / "report")
    out = tmp_path / "report"
    names = ["spectroformer-pretrained-finetuned", "spectroformer-scratch", "mfcc-linear"]
    for name in names:
        _is_png(out / f"confusion_{name}.png")
    _is_png(out / "curves.png")
    md = (out / "report.md").read_text()
    assert "# Results: music21-styles" in md and table in md
    assert "](curves.png)" in md and all(f"](confusion_{n}.png)" in md for n in names)
    assert "## Skipped files (3)" in md
    assert "- `bad-0`: cannot decode: Format not recognised\n" in md
    assert "- `bad-1`: empty file (0 bytes)\n" in md  # skipped by every setup: listed once
    assert "- `bad-2`: too short: 0.05 s < required 0.19 s (in mfcc-linear)" in md
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_curves_tolerate_sparse_history(tmp_path):
    results = _results()
    results["setups"]["spectroformer-scratch"]["history"] = [{"epoch": 0}, {"val_loss": None}]
    del results["setups"]["spectroformer-pretrained-finetuned"]["pretrain_history"]
    plot_curves(results, tmp_path / "curves.png")
    _is_png(tmp_path / "curves.png")


def test_baseline_only_report_has_no_curves(tmp_path):
    results = _results()
    results["setups"] = {"mfcc-linear": results["setups"]["mfcc-linear"]}
    write_report(results, tmp_path)
    assert not (tmp_path / "curves.png").exists()
    assert "curves.png" not in (tmp_path / "report.md").read_text()


def test_confusion_with_empty_row(tmp_path):
    plot_confusion([[2, 0, 0], [0, 0, 0], [1, 0, 1]], CLASSES, tmp_path / "c.png", title="empty row")
    _is_png(tmp_path / "c.png")
    with pytest.raises(AssertionError, match="does not match 2 classes"):
        plot_confusion([[1, 0, 0]] * 3, CLASSES[:2], tmp_path / "bad.png", title="bad")


def test_report_names_the_tokenizer_and_its_usage(tmp_path):
    results = _results()
    about = {"source": "trained on the training split", "checkpoint": "/x/vqvae.pth.tar",
             "sha1": "0123456789abcdef", "level": 0, "levels": 1, "sample_rate": 22050,
             "hop_length": 512, "vocab_size": 256, "emb_width": 32, "window_frames": 128,
             "codes_used": 200, "usage": 200 / 256, "entropy_bits": 6.5, "perplexity": 2**6.5,
             "n_tokens": 92000, "epochs": 4, "val_loss": 1.6912}
    results["representations"] = {"mel": {"name": "mel"}, "tokens": {"name": "vq-tokens", "about": about}}
    write_report(results, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "## Tokenizer" in md and "VQ-VAE trained on the training split (`/x/vqvae.pth.tar`" in md
    assert "hop 512 at 22050 Hz (43.1 tokens/s)" in md and "trained for 4 epochs; final validation loss 1.691" in md
    assert "200 of 256 codes used (78%), entropy 6.50 bits of a possible 8.00 (perplexity 90.5)" in md
