"""The built-in rendered dataset: one tiny build per module, checked for determinism, splits,
clip lengths, resumption and the Dataset interface."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from music21 import note, stream, tempo, tie

from helpers import outputs
from mirformer.datasets.base import DATASETS, SPLITS, Track
from mirformer.datasets.midi_render import MAX_LEAD_SECONDS, PEAK_DBFS, plan_windows, score_to_midi
from mirformer.datasets import music21_styles as m21
from mirformer.errors import ConfigError, MirformerError

# Four cheap classes, four scores each, 2 s clips: a build takes a few seconds.
TINY = m21.StylesConfig(clip_seconds=2.0, sample_rate=16000, seed=0, max_scores_per_class=4,
                        max_clips_per_score=2,
                        classes=("renaissance_polyphony", "bach_chorale", "fiddle_tunes", "folk_china"))


def read(root: Path, rel: str) -> np.ndarray:
    return sf.read(root / rel, dtype="float32")[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("styles") / "a"
    m21.build(TINY, root, workers=2, progress=False)
    return root


@pytest.fixture(scope="module")
def manifest(built):
    import pandas as pd

    return pd.read_csv(built / m21.MANIFEST)


def test_manifest_columns_and_classes(manifest):
    assert tuple(manifest.columns) == m21.COLUMNS
    assert set(manifest.label) == set(TINY.classes)
    assert manifest.id.is_unique
    assert manifest.groupby("label").source.nunique().eq(TINY.max_scores_per_class).all()
    assert manifest.groupby("source").size().le(TINY.max_clips_per_score).all()
    assert manifest.tempo_factor.between(*m21.TEMPO_RANGE).all()


@pytest.mark.slow  # 2.5-3 s
def test_same_seed_gives_identical_manifest_and_audio(built, manifest, tmp_path):
    other = tmp_path / "b"
    m21.build(TINY, other, workers=1, progress=False)  # in-process, unlike the fixture's pool
    assert (other / m21.MANIFEST).read_text() == (built / m21.MANIFEST).read_text()
    for rel in manifest.path:
        np.testing.assert_array_equal(read(other, rel), read(built, rel))


def test_no_score_in_two_splits_and_every_class_in_every_split(manifest):
    assert manifest.groupby("source").split.nunique().eq(1).all()
    for label, group in manifest.groupby("label"):
        assert set(group.split) == set(SPLITS), label


def test_clips_have_exact_length_and_are_not_silent(built, manifest):
    for rel in manifest.path:
        info = sf.info(built / rel)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 32000), rel
        y = read(built, rel)
        assert abs(np.abs(y).max() - 10 ** (PEAK_DBFS / 20)) < 1e-3, rel
        assert np.sqrt(np.mean(y ** 2)) > 0.01, rel


def test_resume_renders_only_what_is_missing(built, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(built, root)
    (root / m21.MANIFEST).unlink()
    sidecar = sorted((root / "scores" / "fiddle_tunes").glob("*.json"))[0]
    clips = [c["path"] for c in json.loads(sidecar.read_text())["clips"]]
    sidecar.unlink()
    for rel in clips:
        (root / rel).unlink()
    kept = {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")}
    m21.build(TINY, root, workers=1, progress=False)
    assert (root / m21.MANIFEST).read_text() == (built / m21.MANIFEST).read_text()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # nothing else re-rendered
    for rel in clips:
        np.testing.assert_array_equal(read(root, rel), read(built, rel))


def test_finished_build_is_not_rendered_again(built, monkeypatch):
    monkeypatch.setattr(m21, "_render", lambda task: pytest.fail(f"re-rendered {task[0]}"))
    assert m21.build(TINY, built, workers=1, progress=False) == built / m21.MANIFEST


def test_root_of_another_config_is_refused(built):
    with pytest.raises(ConfigError, match="use another root"):
        m21.build(replace(TINY, seed=1), built, progress=False)


def test_tracks(built, manifest):
    tracks = m21.Music21Styles(built).tracks()  # the config is read from the root
    assert len(tracks) == len(manifest)
    t = tracks[0]
    assert isinstance(t, Track) and t.path.is_absolute() and t.path.is_file()
    assert t.split in SPLITS and t.label in TINY.classes
    assert set(t.meta) == {"source", "instruments", "tempo_factor", "start_seconds"}
    assert isinstance(t.meta["instruments"], tuple) and isinstance(t.meta["start_seconds"], float)
    assert outputs(m21.Music21Styles(built)) == sorted(TINY.classes)


def test_unlabelled_corpus_uses_no_labelled_score(built, tmp_path, monkeypatch):
    monkeypatch.setenv("MIRFORMER_HOME", str(tmp_path))  # the labelled build goes to its default root
    shutil.copytree(built, m21.default_root(TINY))  # the module's build of the same config: found finished
    corpus = m21.Music21StylesUnlabelled(tmp_path / "u", config=TINY, scores_per_class=3, workers=1, progress=False)
    corpus.prepare()
    import pandas as pd

    labelled = pd.read_csv(m21.default_root(TINY) / m21.MANIFEST)
    unlabelled = pd.read_csv(tmp_path / "u" / m21.MANIFEST)
    assert set(unlabelled.source).isdisjoint(labelled.source)
    assert unlabelled.groupby("label").source.nunique().eq(3).all()
    tracks = corpus.tracks()
    assert len(tracks) == len(unlabelled) and all(t.label is None and t.path.is_file() for t in tracks)
    assert {t.split for t in tracks} <= {"train", "validation"}
    with pytest.raises(ConfigError, match="no labels"):
        corpus.require_labels()


def test_unprepared_dataset_says_so(tmp_path):
    with pytest.raises(MirformerError, match="not prepared"):
        m21.Music21Styles(tmp_path, config=TINY).tracks()


def test_registered_and_default_root_follows_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRFORMER_HOME", str(tmp_path))
    assert DATASETS["music21-styles"] is m21.Music21Styles
    ds = m21.Music21Styles(preset="quickstart", config={"seed": 1})
    assert ds.config == replace(m21.QUICKSTART, seed=1)
    assert ds.root == m21.default_root(ds.config)
    assert ds.root.parent == tmp_path / "datasets" / "music21-styles"
    assert m21.default_root(m21.QUICKSTART) != ds.root
    assert m21.default_root(replace(TINY, clip_seconds=2)) == m21.default_root(TINY)  # 2 == 2.0
    assert m21.Music21Styles().config == m21.FULL


@pytest.mark.parametrize("bad", [{"clip_seconds": 0}, {"sample_rate": 22050.0}, {"score_fraction": 1.5},
                                 {"max_scores_per_class": 2}, {"classes": ("jazz",)}, {"classes": ()}])
def test_bad_config_raises(bad):
    with pytest.raises(ConfigError):
        m21.StylesConfig(**bad)


def test_unknown_key_or_preset_raises():
    with pytest.raises(ConfigError, match="unknown"):
        m21.StylesConfig.from_dict({"clip_secs": 5})
    with pytest.raises(ConfigError, match="preset"):
        m21.resolve_config(preset="huge")


def test_candidates_are_distinct_and_in_their_collections():
    for label, candidates in ((label, fn()) for label, fn in m21.CLASSES.items()):
        assert len(candidates) >= 40 and len(set(candidates)) == len(candidates), label
    assert all(s.startswith("essenFolksong/han") for s in m21.CLASSES["folk_china"]())
    assert not any(s.startswith("essenFolksong/han") for s in m21.CLASSES["folk_europe"]())


def test_scores_per_class_keeps_imbalance_below_the_cap():
    assert [m21.scores_per_class(m21.QUICKSTART, n) for n in (2, 10, 49, 104, 2897)] == [2, 3, 8, 16, 25]
    assert m21.scores_per_class(m21.FULL, 49) == 49


def test_assign_splits_deals_by_score():
    scores = {"a": [(f"s{i}", 1) for i in range(10)], "b": [(f"t{i}", 2) for i in range(3)]}
    splits = m21.assign_splits(scores, seed=0)
    assert sorted(splits[f"s{i}"] for i in range(10)).count("train") == 8
    assert sorted(splits[f"t{i}"] for i in range(3)) == ["test", "train", "validation"]
    with pytest.raises(ConfigError, match="needs 3"):
        m21.assign_splits({"a": [("s0", 5), ("s1", 5)]}, seed=0)


@pytest.mark.parametrize("duration, expected",
                         [(2.5, []), (3.0, [0.0]), (7.5, [0.0, 4.5]), (100.0, [0.0, 97.0])])
def test_plan_windows(duration, expected):
    starts = plan_windows(duration, clip_seconds=2.0, max_clips=2)
    assert starts == expected
    assert all(s + 2.0 + MAX_LEAD_SECONDS <= duration + 1e-9 for s in starts)


def test_score_to_midi_merges_ties_and_follows_tempo():
    part = stream.Part([tempo.MetronomeMark(number=60)])
    first, second = note.Note("C4", quarterLength=2), note.Note("C4", quarterLength=1)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    part.append([first, second, note.Rest(), note.Note("E4", quarterLength=1)])
    (inst,) = score_to_midi(stream.Score([part])).instruments
    assert [(n.pitch, n.start, n.end) for n in inst.notes] == [(60, 0.0, 3.0), (64, 4.0, 5.0)]
