"""The user's own data: a folder of class folders and a CSV manifest, each task, split and error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import counts, outputs
from mirformer.datasets.base import DATASETS, Problem
from mirformer.datasets.csv_manifest import CSVManifest
from mirformer.datasets.folder import ClassFolder
from mirformer.errors import ConfigError

DOG = [f"dog/d{i}.wav" for i in range(8)] + ["dog/live/d8.flac", "dog/live/2020/d9.MP3"]
CAT = [f"cat/c{i}.wav" for i in range(9)] + ["cat/c9.aiff"]
BIRD = ["bird/b0.au", "bird/b1.aif", "bird/b2.flac"]
IGNORED = [".DS_Store", "readme.wav", ".git/x.wav", "dog/.hidden.wav", "dog/.cache/x.wav", "dog/notes.txt",
           "cat/cover.jpg", "cat/c10.m4a", "empty/notes.txt"]


def touch(root: Path, rels) -> None:
    """Empty files: listing and splitting never open them."""
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- folder of class folders

def test_folder_lists_audio_and_splits_each_class(tmp_path):
    touch(tmp_path, DOG + CAT + BIRD + IGNORED)
    ds = ClassFolder(tmp_path)
    tracks = ds.tracks()
    assert DATASETS["folder"] is ClassFolder and ds.task == "classification"
    assert [t.id for t in tracks] == sorted(DOG + CAT + BIRD)
    assert all(t.label == t.id.split("/")[0] and t.path == tmp_path / t.id for t in tracks)
    assert outputs(ds) == ["bird", "cat", "dog"]
    # seed 0, 80/10/10: one of each ten-file class to validation and test, bird (3) all train.
    assert {t.id: t.split for t in tracks if t.split != "train"} == {
        "cat/c0.wav": "validation", "cat/c9.aiff": "test", "dog/d2.wav": "validation", "dog/d0.wav": "test"}
    assert {t.id: t.split for t in ClassFolder(tmp_path, seed=1).tracks() if t.split != "train"} == {
        "cat/c9.aiff": "validation", "cat/c6.wav": "test", "dog/d2.wav": "validation",
        "dog/live/2020/d9.MP3": "test"}
    wide = ClassFolder(tmp_path, fractions=(0.6, 0.2, 0.2)).tracks()
    assert sorted((t.split, t.id) for t in wide if t.split != "train") == [
        ("test", "bird/b1.aif"), ("test", "cat/c1.wav"), ("test", "cat/c3.wav"), ("test", "dog/d4.wav"),
        ("test", "dog/live/2020/d9.MP3"), ("validation", "bird/b0.au"), ("validation", "cat/c0.wav"),
        ("validation", "cat/c9.aiff"), ("validation", "dog/d0.wav"), ("validation", "dog/d2.wav")]


def test_folder_uses_split_folders_when_present(tmp_path):
    touch(tmp_path, ["train/dog/a.wav", "train/dog/deep/b.wav", "train/cat/c.flac", "val/dog/d.wav",
                     "val/cat/e.wav", "test/cat/f.ogg", "test/dog/g.wav", "test/.tmp/h.wav"])
    tracks = ClassFolder(tmp_path).tracks()
    assert [(t.id, t.split, t.label) for t in tracks] == [
        ("test/cat/f.ogg", "test", "cat"), ("test/dog/g.wav", "test", "dog"),
        ("train/cat/c.flac", "train", "cat"), ("train/dog/a.wav", "train", "dog"),
        ("train/dog/deep/b.wav", "train", "dog"), ("val/cat/e.wav", "validation", "cat"),
        ("val/dog/d.wav", "validation", "dog")]


def test_folder_validate_reports_bad_files_by_id(tmp_path, write_tone):
    for rel in ("dog/a.wav", "cat/b.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write_tone(tmp_path / rel, seconds=1.0, sr=8000)
    write_tone(tmp_path / "cat" / "c.flac", seconds=1.0, sr=8000, fmt="FLAC")
    (tmp_path / "dog" / "broken.wav").write_bytes(b"not audio at all")
    report = ClassFolder(tmp_path).validate(sr=8000, progress=False)
    assert list(report.bad) == ["dog/broken.wav"] and report.bad["dog/broken.wav"].kind == "undecodable"
    assert report.bad["dog/broken.wav"].text.startswith("cannot decode")
    assert counts(report, "classification") == {"train": {"cat": 2, "dog": 1}, "validation": {}, "test": {}}


@pytest.mark.parametrize("files, message", [
    (None, "not found"),
    ([], r"0 class folder\(s\)"),
    (["dog/a.txt", "a.wav"], r"0 class folder\(s\)"),
    (["dog/a.wav", "dog/b.wav"], r"1 class folder\(s\) with audio files \['dog'\]"),
    (["train/dog/a.wav", "train/cat/b.wav", "val/dog/c.wav", "valid/cat/d.wav", "test/dog/e.wav"],
     "2 validation folders"),
    (["train/dog/a.wav", "validation/dog/c.wav", "test/e.wav"], "split folder .*test holds no class folder"),
])
def test_folder_errors(tmp_path, files, message):
    root = tmp_path / "data"
    if files is not None:
        root.mkdir()
        touch(root, files)
    with pytest.raises(ConfigError, match=message):
        ClassFolder(root).tracks()


# ---------------------------------------------------------------- CSV manifest

def test_csv_classification_with_split_column(tmp_path, write_tone):
    elsewhere = tmp_path / "elsewhere" / "d.wav"
    manifest = write_csv(tmp_path / "data" / "set.csv", (
        "path,label,split,source\n"
        "clips/a.wav,rock,Train,radio\n"
        "clips/b.wav,jazz,VAL,cd\n"
        " clips/c.wav , jazz ,dev,cd\n"
        f"{elsewhere},rock,Test,radio\n"
        "clips/e.wav,rock,valid,cd\n"
        "clips/f.wav,jazz,validation,cd\n"))
    for rel in ("clips/a.wav", "clips/b.wav"):
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_tone(tmp_path / "data" / rel, seconds=1.0, sr=8000)
    ds = CSVManifest(manifest)
    assert DATASETS["csv"] is CSVManifest and ds.task == "classification"
    assert [(t.id, t.split, t.label) for t in ds.tracks()] == [
        (str(elsewhere), "test", "rock"), ("clips/a.wav", "train", "rock"), ("clips/b.wav", "validation", "jazz"),
        ("clips/c.wav", "validation", "jazz"), ("clips/e.wav", "validation", "rock"),
        ("clips/f.wav", "validation", "jazz")]
    paths = {t.id: t.path for t in ds.tracks()}
    assert paths["clips/a.wav"] == tmp_path / "data" / "clips" / "a.wav" and paths[str(elsewhere)] == elsewhere
    assert ds.tracks()[1].meta == {"source": "radio"}
    assert outputs(ds) == ["jazz", "rock"]
    report = ds.validate(sr=8000, progress=False)
    assert report.bad == dict.fromkeys([str(elsewhere), "clips/c.wav", "clips/e.wav", "clips/f.wav"],
                                       Problem("missing", "file not found"))


def test_csv_classification_random_split_is_stratified(tmp_path):
    rows = [f"clips/a{i}.wav,rock" for i in range(5)] + [f"clips/b{i}.wav,jazz" for i in range(5)]
    manifest = write_csv(tmp_path / "m.csv", "path,label\n" + "\n".join(rows) + "\n")
    tracks = CSVManifest(manifest, fractions=(0.6, 0.2, 0.2)).tracks()
    assert {t.id: t.split for t in tracks if t.split != "train"} == {
        "clips/a0.wav": "validation", "clips/a3.wav": "test", "clips/b2.wav": "validation", "clips/b4.wav": "test"}


def test_csv_tagging(tmp_path):
    manifest = write_csv(tmp_path / "tags.csv", (
        "path,labels\n"
        "t/a.wav,rock;guitar\n"
        "t/b.wav,\"['jazz', 'sax']\"\n"
        "t/c.wav,\n"
        "t/d.wav, rock ; ; guitar;rock \n"))
    ds = CSVManifest(manifest)
    assert ds.task == "tagging"
    assert [(t.id, t.labels, t.split) for t in ds.tracks()] == [
        ("t/a.wav", ("rock", "guitar"), "train"), ("t/b.wav", ("jazz", "sax"), "train"),
        ("t/c.wav", (), "train"), ("t/d.wav", ("rock", "guitar"), "train")]
    assert outputs(ds) == ["guitar", "jazz", "rock", "sax"]


REGRESSION = ("path,id,artist,valence,arousal,year,split\n"
              "a.wav,s1,X,0.5,3.0,1999,train\n"
              "b.wav,s2,Y,1.5,5.0,2001,train\n"
              "c.wav,s3,Z,-1.0,4.0,1987,train\n"
              "d.wav,s4,W,2.0,6.5,2010,validation\n"
              "e.wav,s5,V,0.0,2.0,2003,test\n")


def test_csv_regression_zscored_on_train(tmp_path):
    ds = CSVManifest(write_csv(tmp_path / "r.csv", REGRESSION))
    assert ds.task == "regression"
    assert ds.target_names == ["valence", "arousal", "year"] == outputs(ds)  # every numeric column
    picked = CSVManifest(tmp_path / "r.csv", targets=["arousal", "valence"])
    assert picked.target_names == ["arousal", "valence"]
    raw = np.array([[3.0, 0.5], [5.0, 1.5], [4.0, -1.0], [6.5, 2.0], [2.0, 0.0]])
    mean, std = raw[:3].mean(axis=0), raw[:3].std(axis=0, ddof=0)
    tracks = picked.tracks()
    assert [(t.id, t.split) for t in tracks] == [
        ("s1", "train"), ("s2", "train"), ("s3", "train"), ("s4", "validation"), ("s5", "test")]
    np.testing.assert_allclose([t.targets for t in tracks], (raw - mean) / std, rtol=0, atol=1e-12)
    assert [t.meta["raw_targets"] for t in tracks] == [tuple(r) for r in raw]
    assert tracks[0].meta["artist"] == "X" and tracks[0].meta["year"] == "1999"
    np.testing.assert_allclose(picked.target_stats["mean"], [4.0, 1 / 3], atol=1e-12)
    np.testing.assert_allclose(picked.target_stats["std"], std, atol=1e-12)


@pytest.mark.parametrize("text, options, where", [
    ("file,label\nx.wav,a\n", {}, "row 1: no 'path' column"),
    ("path,label,split\na.wav,x,train\n\nb.wav,y,holdout\n", {}, "row 4: unknown split 'holdout'"),
    ("path,valence,split\na.wav,0.5,train\nb.wav,high,train\n", {"targets": ["valence"]},
     "row 3: target 'valence' must be a finite number, got 'high'"),
    ("path,valence,split\na.wav,0.5,train\nb.wav,high,train\n", {}, "row 1: no target column"),
    ("path,id,label\na.wav,x,rock\nb.wav,x,jazz\n", {}, "row 3: id 'x' already used on row 2"),
    ("path,label\na.wav,rock\nb.wav,rock\nb.wav,jazz\n", {}, "row 4: id 'b.wav' already used on row 3"),
    ("path,label,labels\na.wav,rock,rock\n", {}, "row 1: both 'label' (classification) and 'labels'"),
    ("path,artist\na.wav,X\n", {}, "row 1: no target column"),
    ("path,label\na.wav,\n", {}, "row 2: empty label"),
    ("path,labels\na.wav,\"['rock', 3]\"\n", {}, "row 2: labels \"['rock', 3]\" is not a list of strings"),
    ("path,label\na.wav,rock,extra\n", {}, "row 2: 3 cells, expected 2"),
])
def test_csv_errors_name_file_and_row(tmp_path, text, options, where):
    manifest = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ConfigError) as err:
        CSVManifest(manifest, **options)
    assert f"{manifest}, {where}" in str(err.value)


@pytest.mark.parametrize("text, options, message", [
    (REGRESSION, {"targets": ["tempo"]}, r"targets \['tempo'\] are not target columns"),
    ("path,label\na.wav,rock\n", {"targets": ["x"]}, "names regression columns, but .* has a label column"),
    ("path,valence,split\na.wav,0.5,train\nb.wav,0.5,train\n", {}, "constant"),
    ("path,label\n", {}, "no rows below its header"),
])
def test_csv_option_and_content_errors(tmp_path, text, options, message):
    with pytest.raises(ConfigError, match=message):
        CSVManifest(write_csv(tmp_path / "m.csv", text), **options)


def test_csv_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=f"CSV manifest {tmp_path / 'nope.csv'} not found"):
        CSVManifest(tmp_path / "nope.csv")
