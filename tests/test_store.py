import json

import numpy as np
import pytest

from helpers import FrameStats
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
    import mirformer.representations.store as store_mod
    from mirformer.representations.frames_file import FramesFile

    interrupted = FramesFile(parts, np.float32)
    interrupted.add(parts / "t2.json", np.full((3, 2), 7.0, np.float32), 3 * 256, 0.0)
    interrupted.close()
    calls = []

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


def test_parallel_extraction_lays_tracks_out_in_track_order(tmp_path, tracks, monkeypatch):
    """Worker threads finish in any order; ``features.npy`` holds the tracks back to back in the
    order of the list all the same, byte for byte from run to run. In the first run the earlier
    tracks take longer to read (t0 finishes last), in the second they take their own time."""
    import time

    rep = FrameStats()
    read, stores = rep.read, []
    for run, delays in enumerate([{"t0": 0.3, "t1": 0.2, "t2": 0.1}, {}]):
        monkeypatch.setattr(rep, "read", lambda track, d=delays: time.sleep(d.get(track.id, 0)) or read(track))
        store = FeatureStore(tmp_path / f"run{run}", "toy", rep)
        assert store.extract(tracks, workers=2, progress=False) == {"bad": "empty file (0 bytes)"}
        stores.append(store)
    first, second = ((s.dir / "features.npy").read_bytes() for s in stores)
    assert first == second
    for store in stores:
        entries = [store.entry(t.id) for t in tracks[:4]]
        assert [e.offset for e in entries] == np.cumsum([0] + [e.n_frames for e in entries[:-1]]).tolist()


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


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_frames_round_trip_exactly_whether_linked_or_copied(tmp_path, tracks, dtype, monkeypatch):
    """One extraction links its frames file as ``features.npy``; a store filled in two runs copies
    the frames into a new one. Both hold ``encode``'s frames bit for bit (in the store's dtype)."""
    from mirformer.audio import load_audio
    from mirformer.representations.mel import LogMel

    rep = LogMel(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16, dtype=dtype)
    copies, copy = [], FeatureStore._copy
    monkeypatch.setattr(FeatureStore, "_copy", lambda self, *a: copies.append(self.dir) or copy(self, *a))
    linked = FeatureStore(tmp_path / "linked", "toy", rep)
    linked.extract(tracks, workers=2, progress=False)
    copied = FeatureStore(tmp_path / "copied", "toy", rep)
    copied.extract(tracks[:2], progress=False)
    copied.extract(tracks, progress=False)
    assert copies == [copied.dir]  # the first run of each linked, the second copied
    for store in (linked, copied):
        assert store.data.shape == (sum(rep.n_frames(round(s * 8000)) for s in (1, 2, 1.5, 3)), 16)
        for t in tracks[:4]:
            want = rep.encode(load_audio(t.path, sr=8000)).astype(dtype)
            assert store.get(t.id).tobytes() == want.tobytes(), (store.dir, t.id)
        assert (store.dir / "features.npy").stat().st_nlink == 1 and not (store.dir / "parts").exists()


def test_a_track_whose_part_was_not_marked_is_encoded_again(tmp_path, tracks, monkeypatch):
    """A run killed while it appends a track's frames (half of them written): that track has no
    part (``.json``), so the rerun encodes it again and never reads the partial frames."""
    import builtins

    import mirformer.representations.frames_file as frames_file

    class KilledAtThirdTrack:  # the frames file: its header, t0, t1, then half of t2
        def __init__(self, path, mode):
            self.file, self.writes = builtins.open(path, mode), 0

        def write(self, data):
            self.writes += 1
            if self.writes == 4:
                self.file.write(bytes(data)[: memoryview(data).nbytes // 2])
                raise KeyboardInterrupt
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

    rep = FrameStats()
    monkeypatch.setattr(frames_file, "open", KilledAtThirdTrack, raising=False)
    with pytest.raises(KeyboardInterrupt):
        FeatureStore(tmp_path, "toy", rep).extract(tracks, progress=False)
    monkeypatch.undo()
    parts = FeatureStore(tmp_path, "toy", rep).dir / "parts"
    assert {p.name for p in parts.glob("*.json")} == {"t0.json", "t1.json"}
    store = FeatureStore(tmp_path, "toy", rep)
    assert store.extract(tracks, progress=False) == {"bad": "empty file (0 bytes)"}
    fresh = FeatureStore(tmp_path / "fresh", "toy", rep)
    fresh.extract(tracks, progress=False)
    for t in tracks[:4]:
        np.testing.assert_array_equal(store.get(t.id), fresh.get(t.id))
