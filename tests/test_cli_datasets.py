"""Real-format datasets through the ``mirformer`` command: validate reports, compare skips and lists."""

import json

import pytest

from mirformer.cli import main
from fma_layout import NO_AUDIO, TRIMMED


def test_validate_command_reports_fma_bad_files(fma_root, capsys):
    assert main(["validate", "fma", str(fma_root), "--sr", "16000", "--option", "subset=medium", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "fma at" in out and "8 files, 4 bad" in out
    assert f"  133297: empty file (0 bytes) ({NO_AUDIO})" in out
    assert "  000140: file not found" in out and f"({TRIMMED})" in out
    assert "Hip-Hop" in out and "validation" in out
    assert "4 good file(s) worth a look" in out and "  003573: 2.0 s, far shorter than fma's 30 s clips" in out


def test_validate_unknown_option_is_an_error(fma_root, capsys):
    assert main(["validate", "fma", str(fma_root), "--option", "subset=tiny"]) == 2
    assert "unknown FMA subset 'tiny'" in capsys.readouterr().err


def test_compare_preset_needs_a_data_root(capsys):
    assert main(["compare", "--preset", "thesis-fma-medium", "--quiet"]) == 2
    assert "--data-root" in capsys.readouterr().err


def _validate_bad(fma_root, capsys, *extra) -> dict[str, str]:
    """``mirformer validate``'s bad files, parsed from its output: {id: reason}."""
    main(["validate", "fma", str(fma_root), "--sr", "16000", "--option", "subset=medium", *extra])
    lines = capsys.readouterr().out.split("good files per")[0].split("worth a look")[0].splitlines()
    return dict(line.strip().split(": ", 1) for line in lines if line.startswith("  "))


@pytest.mark.slow
def test_validate_and_compare_apply_one_rule_for_bad_files(fma_root, tmp_path, capsys):
    """The files `validate` reports are exactly the files `compare` skips, with the same reasons,
    under the default minimum duration and under a user's ``data.min_seconds``."""
    args = ["compare", "--preset", "thesis-fma-medium", "--data-root", str(fma_root), "--quiet",
            "--set", "mel={sample_rate: 16000, n_fft: 512, hop_length: 256, n_mels: 32}",
            "--set", "encoder={d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 256}",
            "--set", "window_seconds=0.768", "--set", "spectroformer.mask.block_frames=4", "--set", "workers=1",
            "--set", "trainer.num_workers=0", "--set", "scratch.epochs=1",
            "--set", 'setups=["spectroformer-scratch"]']
    bad = _validate_bad(fma_root, capsys)
    # 001486 is 0.5 s: under the default 1 s minimum it is bad for both.
    assert set(bad) == {"000140", "001486", "099134", "133297"}
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    results = json.loads((tmp_path / "default" / "results.json").read_text())
    assert results["skipped"] == bad
    assert results["skipped"]["133297"] == f"empty file (0 bytes) ({NO_AUDIO})"
    assert results["counts"] == {"train": 1, "validation": 1, "test": 2}
    report = (tmp_path / "default" / "report.md").read_text()
    assert "## Skipped files (4)" in report and "`099134`: MPEG audio frames found but not decodable" in report

    # A user who keeps short clips keeps them in both.
    bad = _validate_bad(fma_root, capsys, "--min-seconds", "0.25")
    assert set(bad) == {"000140", "099134", "133297"}
    assert main([*args, "--set", "data.min_seconds=0.25", "--out", str(tmp_path / "short")]) == 0
    results = json.loads((tmp_path / "short" / "results.json").read_text())
    assert results["skipped"] == bad and results["counts"] == {"train": 2, "validation": 1, "test": 2}
    # The known-trimmed 0.5 s file now trains, and the report says so with the maintainers' note.
    assert results["flagged"]["001486"] == f"0.5 s, far shorter than fma's 30 s clips; {TRIMMED}"
    report = (tmp_path / "short" / "report.md").read_text()
    assert "## Files that trained but are worth a look (5)" in report
    assert f"- `001486`: 0.5 s, far shorter than fma's 30 s clips; {TRIMMED}" in report
