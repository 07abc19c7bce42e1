import json

import numpy as np
import pytest

from helpers import FrameStats
from mirformer.datasets.base import Track
from mirformer.representations.store import FeatureStore
from mirformer.training.snippets import RandomSnippets, TiledSnippets, window_starts


def test_extract_index_and_values(tmp_path, tracks):
    rep = FrameStats()
    store = FeatureStore(tmp_path / "features", "toy", rep)
    failed = store.extract(tracks, workers=1, progress=False)
    assert failed == {"bad": "empty file (0 bytes)"}
    from mirformer.audio import load_audio

    for t in tracks[:4]:
        np.testing.assert_array_equal(store.get(t.id), rep.encode(load_audio(t.path, sr=8000)))
    assert isinstance(store.data, np.memmap)
    assert not (store.dir / "parts").exists()


def test_config_change_gives_a_new_store(tmp_path, tracks):
    a = FeatureStore(tmp_path, "toy", FrameStats(hop=256))
    b = FeatureStore(tmp_path, "toy", FrameStats(hop=128))
    c = FeatureStore(tmp_path, "other", FrameStats(hop=256))
    assert len({a.dir, b.dir, c.dir}) == 3 and a.dir == FeatureStore(tmp_path, "toy", FrameStats()).dir


def test_resume_uses_finished_parts_and_appends_new_tracks(tmp_path, tracks, monkeypatch):
    rep = FrameStats()
    store = FeatureStore(tmp_path, "toy", rep)
    store.extract(tracks[:2], progress=False)
    first = {t: store.get(t).copy() for t in ("t0", "t1")}
    # An interrupted run left a finished part for t2: it must be used, not recomputed.
    parts = store.dir / "parts"
    parts.mkdir()
    np.savez(parts / "t2.npz", features=np.full((3, 2), 7.0, np.float32), samples=3 * 256)
    calls = []
    import mirformer.representations.store as store_mod

    real = store_mod._encode_one
    monkeypatch.setattr(store_mod, "_encode_one", lambda *a: calls.append(a[1].id) or real(*a))
    again = FeatureStore(tmp_path, "toy", rep)
    again.extract(tracks, progress=False)
    assert calls == ["t3", "bad"]
    assert (again.get("t2") == 7.0).all()
    for t, arr in first.items():
        np.testing.assert_array_equal(again.get(t), arr)
    index = json.loads((again.dir / "index.json").read_text())
    assert set(index["tracks"]) == {"t0", "t1", "t2", "t3"} and "bad" in index["failed"]
    assert index["seconds"] == {"t0": 1.0, "t1": 2.0, "t2": 3 * 256 / 8000, "t3": 3.0}
    # Nothing left to do: a third run encodes nothing.
    calls.clear()
    FeatureStore(tmp_path, "toy", rep).extract(tracks, progress=False)
    assert calls == []


def test_parallel_extraction_equals_serial(tmp_path, tracks):
    a = FeatureStore(tmp_path / "a", "toy", FrameStats())
    b = FeatureStore(tmp_path / "b", "toy", FrameStats())
    a.extract(tracks, workers=1, progress=False)
    b.extract(tracks, workers=2, progress=False)
    for t in tracks[:4]:
        np.testing.assert_array_equal(a.get(t.id), b.get(t.id))


def test_normalisation_over_given_tracks(tmp_path, tracks):
    store = FeatureStore(tmp_path, "toy", FrameStats())
    store.extract(tracks, progress=False)
    mean, std = store.normalisation(["t0", "t1"])
    frames = np.concatenate([store.get("t0"), store.get("t1")])
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, np.maximum(frames.std(0), 1e-5), rtol=1e-4)


def test_window_starts_cover_the_clip():
    assert window_starts(10, 4) == [0, 4, 6]
    assert window_starts(8, 4) == [0, 4]
    assert window_starts(3, 4) == [0]


def test_snippets_shapes_padding_and_normalisation(tmp_path, tracks):
    store = FeatureStore(tmp_path, "toy", FrameStats())
    store.extract(tracks, progress=False)
    ids = ["t0", "t1", "t3"]
    mean, std = np.array([1.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    rand = RandomSnippets(store, ids, [0, 1, 0], length=40, mean=mean, std=std)
    item = rand[0]  # t0: 31 frames, shorter than the window
    assert item["x"].shape == (40, 2) and item["pad"].sum() == 40 - 31
    np.testing.assert_allclose(item["x"][:31].numpy(), (store.get("t0") - mean) / std, rtol=1e-6)
    assert (item["x"][31:] == 0).all() and item["y"] == 0
    tiled = TiledSnippets(store, ids, [0, 1, 0], length=40)
    n = [store.entry(i).n_frames for i in ids]
    assert len(tiled) == sum(len(window_starts(k, 40)) for k in n)
    assert {w[0] for w in tiled.windows} == {0, 1, 2}


def test_float16_log_mel_store_halves_the_store_within_its_rounding(tmp_path, tracks):
    from mirformer.representations.mel import LogMel

    full = FeatureStore(tmp_path, "toy", LogMel(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16))
    half = FeatureStore(tmp_path, "toy", LogMel(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16, dtype="float16"))
    assert full.dir != half.dir  # a store of its own
    full.extract(tracks, progress=False)
    half.extract(tracks, progress=False)
    assert half.data.dtype == np.float16 and half.data.nbytes * 2 == full.data.nbytes
    for t in tracks[:4]:
        a, b = full.get(t.id), half.get(t.id).astype(np.float32)
        # float16 steps are 2 ** (exponent - 10): at most 1/64 dB below 64 dB, 1/32 dB below 128 dB.
        assert np.abs(a).max() < 128 and (np.abs(a - b) <= np.where(np.abs(a) < 64, 1 / 64, 1 / 32)).all()
