"""Real-format datasets through the ``mirformer`` command: validate reports, compare skips and lists."""

import json

import pytest

from mirformer.cli import main
from test_fma import NO_AUDIO, TRIMMED, root  # noqa: F401  (the FMA fixture in the real layout)


def test_validate_command_reports_fma_bad_files(root, capsys):  # noqa: F811
    assert main(["validate", "fma", str(root), "--sr", "16000", "--option", "subset=medium", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "fma at" in out and "8 files, 4 bad" in out
    assert f"  133297: empty file (0 bytes) ({NO_AUDIO})" in out
    assert "  000140: file not found" in out and f"({TRIMMED})" in out
    assert "Hip-Hop" in out and "validation" in out


def test_validate_unknown_option_is_an_error(root, capsys):  # noqa: F811
    assert main(["validate", "fma", str(root), "--option", "subset=tiny"]) == 2
    assert "unknown FMA subset 'tiny'" in capsys.readouterr().err


def test_compare_preset_needs_a_data_root(capsys):
    assert main(["compare", "--preset", "thesis-fma-medium", "--quiet"]) == 2
    assert "--data-root" in capsys.readouterr().err


@pytest.mark.slow
def test_thesis_preset_on_fma_skips_and_lists_bad_files(root, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    args = ["compare", "--preset", "thesis-fma-medium", "--data-root", str(root), "--out", str(out), "--quiet",
            "--set", "mel={sample_rate: 16000, n_fft: 512, hop_length: 256, n_mels: 32}",
            "--set", "encoder={d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 256}",
            "--set", "snippet_frames=48", "--set", "mask.block_frames=4", "--set", "workers=1",
            "--set", "trainer.num_workers=0", "--set", "scratch.epochs=1",
            "--set", 'setups=["spectroformer-scratch"]']
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "fma" and results["task"] == "classification"
    assert results["classes"] == ["Electronic", "Folk", "Hip-Hop", "Pop", "Rock"]
    # 001486's 0.5 s still fills a quarter of a 48-frame window (0.19 s), so it trains, padded and masked.
    assert set(results["skipped"]) == {"000140", "099134", "133297"}
    assert results["skipped"]["133297"] == f"empty file (0 bytes) ({NO_AUDIO})"
    assert results["counts"] == {"train": 2, "validation": 1, "test": 2}
    report = (out / "report.md").read_text()
    assert "## Skipped files (3)" in report and "`099134`: cannot decode" in report
