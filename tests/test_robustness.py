"""Robustness: the test clips deformed once per setting, every setup scored on them with the
model it was scored with, the loss against clean with intervals and paired tests; a run with
deformations added resumes the clean run, and finished deformed copies, stores and scores are reused."""

import json

import numpy as np
import pytest
import soundfile as sf

from helpers import TINY_RUN
from mirformer import paths
from mirformer.cli import main
from mirformer.datasets.base import Track
from mirformer.deformations import parse_deforms
from mirformer.errors import ConfigError
from mirformer.experiments.deformed_audio import clip_seed, deform_test
from mirformer.experiments.outputs import load_outputs
from mirformer.experiments.presets import resolve
from mirformer.experiments.run import config_hash

SETUPS = ["--set", "setups=[spectroformer-scratch, tokenformer-scratch, mfcc-linear]"]


def test_deformed_copies_are_made_once_per_clip_with_a_seed_of_their_own(tmp_path, write_tone):
    tracks = [Track(f"a/t{i}", write_tone(tmp_path / f"t{i}.wav", seconds=1.0, sr=16000, freq=300 + 100 * i), "test")
              for i in range(3)]
    (tmp_path / "bad.wav").write_bytes(b"RIFF not audio")
    tracks.append(Track("bad", tmp_path / "bad.wav", "test"))
    noise, = parse_deforms(["noise:snr=10"])
    clips = deform_test("toy", tracks, noise, seed=0, progress=False)
    assert [t.id for t in clips.tracks] == ["a/t0", "a/t1", "a/t2"] and list(clips.skipped) == ["bad"]
    assert "bad" in clips.skipped and clips.skipped["bad"]
    y, sr = sf.read(clips.tracks[0].path, dtype="float32")
    clean, _ = sf.read(tracks[0].path, dtype="float32")
    assert sr == 16000 and len(y) == len(clean)
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((y - clean).astype(np.float64) ** 2))
    assert measured == pytest.approx(10, abs=0.3)
    # Each clip's noise is its own (not one sequence shared by every clip), fixed by seed, setting and id.
    assert clip_seed(0, noise, "a/t0") == clip_seed(0, noise, "a/t0") != clip_seed(0, noise, "a/t1")
    assert clip_seed(0, noise, "a/t0") != clip_seed(1, noise, "a/t0")
    # Made once: a second call rewrites nothing, and a lost copy alone is made again, identically.
    stamps = {t.id: t.path.stat().st_mtime_ns for t in clips.tracks}
    again = deform_test("toy", tracks, noise, seed=0, progress=False)
    assert {t.id: t.path.stat().st_mtime_ns for t in again.tracks} == stamps
    first = sf.read(clips.tracks[1].path)[0]
    clips.tracks[1].path.unlink()
    remade = deform_test("toy", tracks, noise, seed=0, progress=False)
    assert np.array_equal(sf.read(remade.tracks[1].path)[0], first)
    assert [t.path.stat().st_mtime_ns for t in remade.tracks][::2] == [stamps["a/t0"], stamps["a/t2"]]
    # Another seed, another copy of its own.
    other = deform_test("toy", tracks, noise, seed=1, progress=False)
    assert other.identity != clips.identity
    assert not np.array_equal(sf.read(other.tracks[0].path)[0], y)


def test_deformations_are_settings_that_do_not_change_the_run_folder(capsys):
    cfg = resolve("quickstart", {"deform": ["noise:snr=20,10", "mp3:kbps=64"]})
    assert config_hash(cfg) == config_hash(resolve("quickstart"))
    with pytest.raises(ConfigError, match="noize"):
        resolve("quickstart", {"deform": ["noize:snr=20"]})
    assert main(["compare", "--deform", "gain:db=-6", "--deform", "mp3:kbps=64", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["deform"] == ["gain:db=-6", "mp3:kbps=64"]
    assert main(["compare", "--set", "deform=[gain:db=-3]", "--deform", "gain:db=-6", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["deform"] == ["gain:db=-6"]  # the flags win
    assert main(["compare", "--set", "deform=[]", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["deform"] == []
    assert resolve("quickstart").deform == ["noise:snr=20", "mp3:kbps=64", "pitch:semitones=1"]


@pytest.mark.slow
def test_a_gain_invariant_setup_loses_nothing_and_scores_are_reused(tmp_path, capsys, tiny_corpus):
    """Log-mel in dB against each clip's peak does not see a gain: its model scores the deformed
    clips as the clean ones and the paired test cannot tell them apart; the MFCC baseline (whose
    first coefficient is the level) and the token model see the change."""
    out = tmp_path / "run"
    run = ["compare", "--preset", "quickstart", *TINY_RUN, *SETUPS, "--out", str(out), "--quiet"]
    assert main([*run, "--deform", "gain:db=-20"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [d["name"] for d in results["deformations"]] == [d.name for d in parse_deforms(["gain:db=-20"])]
    gain = results["deformations"][0]["name"]
    entries = {n: s["robustness"][gain] for n, s in results["setups"].items()}
    assert set(entries) == {"spectroformer-scratch", "tokenformer-scratch", "mfcc-linear"}
    outputs = {n: (load_outputs(out / s["outputs"]), load_outputs(out / entries[n]["outputs"]))
               for n, s in results["setups"].items()}
    (ids, y, clean), (ids_d, y_d, deformed) = outputs["spectroformer-scratch"]
    assert list(ids) == list(ids_d) and np.array_equal(y, y_d)
    np.testing.assert_allclose(deformed, clean, atol=1e-3)
    for name in ("mfcc-linear", "tokenformer-scratch"):  # each read its own features of the deformed clips
        (_, _, clean), (_, _, deformed) = outputs[name]
        assert np.abs(deformed - clean).max() > 1e-3, name
    losses = {r["setup"]: r for r in results["evidence"]["robustness"]["losses"]}
    invariant = losses["spectroformer-scratch"]
    assert invariant["difference"] == 0 and invariant["p"] == 1.0 and invariant["p_holm"] == 1.0
    assert invariant["family"] == 3 and invariant["n"] == len(ids)
    report = (out / "report.md").read_text()
    assert "## Robustness: deformed test clips" in report and (out / "robustness.png").exists()
    row = next(line for line in report.splitlines() if line.startswith(f"| {results['deformations'][0]['label']} "
                                                                        "| spectroformer-scratch |"))
    assert row.endswith("| cannot tell |")
    gaps = results["evidence"]["robustness"]["gaps"]
    assert [(g["a"], g["b"]) for g in gaps] == [("spectroformer-scratch", "tokenformer-scratch")]

    # A setting added later scores only it: the run folder, training, the first setting's copies,
    # stores and scores are reused; a lost score is made again, the same.
    copies = list((paths.features_dir()).glob("*/audio/*.wav"))
    assert copies and all(gain in str(p) for p in copies)
    stamps = {p: p.stat().st_mtime_ns
              for p in [*out.rglob("fit.json"), *out.rglob("robustness/*/result.json"), *copies,
                        *paths.features_dir().glob("*/*/features.npy")]}
    lost = out / "tokenformer-scratch" / "robustness" / gain / "result.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    capsys.readouterr()
    assert main([*run, "--deform", "gain:db=-20", "--deform", "noise:snr=0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {n: list(s["robustness"]) for n, s in results["setups"].items()} == {
        n: [gain, "noise-snr=0"] for n in entries}
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != lost)
    assert json.loads(lost.read_text())["splits"] == before["splits"]
