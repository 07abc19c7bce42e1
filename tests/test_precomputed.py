"""Precomputed embeddings as a representation: a folder (or manifest CSV) of ``.npy`` arrays is
stored exactly as given, ids with "/" included; the frame rate comes from ``frames_per_second`` or
the times files (uneven or disagreeing times refused), clip vectors are one frame at rate 0 and
last as long as their audio; every file that does not fit the dataset is named in one error before
anything is stored; float16 storage; the store key and encoder files follow the files."""

import os

import numpy as np
import pytest

from mirformer.datasets.base import Track
from mirformer.errors import CheckpointError, ConfigError, MirformerError
from mirformer.representations.base import parse_spec
from mirformer.representations import precomputed
from mirformer.representations.precomputed import UNKNOWN_SECONDS, Precomputed, PrecomputedConfig
from mirformer.representations.store import FeatureStore, store_key

IDS = ("blues/blues.00001", "blues/blues.00002", "jazz.00003")  # GTZAN-style ids, with and without "/"
FRAMES = {"blues/blues.00001": 50, "blues/blues.00002": 37, "jazz.00003": 61}
DIM = 6


@pytest.fixture
def tracks(tmp_path, write_tone):
    """Three tracks of 1.5 s, 1 s and 2 s of audio at 8 kHz."""
    audio = tmp_path / "audio"
    audio.mkdir()
    return [Track(i, write_tone(audio / f"{n}.wav", seconds=s, sr=8000), "train", label="x")
            for n, (i, s) in enumerate(zip(IDS, (1.5, 1.0, 2.0)))]


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def _arrays(seed=0, frames=FRAMES):
    rng = np.random.default_rng(seed)
    return {i: rng.standard_normal((n, DIM)).astype(np.float32) for i, n in frames.items()}


def _folder(root, arrays, times=None):
    """``<id>.npy`` per array (and ``<id>.times.npy`` per entry of ``times``) under ``root``."""
    for i, a in arrays.items():
        _save(root / f"{i}.npy", a)
    for i, t in (times or {}).items():
        _save(root / f"{i}.times.npy", t)
    return root


def _rep(spec, dtype="float32"):
    cls, config = parse_spec(spec)
    return cls.from_config(config, context=None, dtype=dtype)


def _stored(rep, tracks, root):
    """Check, then store every track; the store."""
    rep.check_tracks(tracks)
    store = FeatureStore(root, "ds", rep)
    assert store.extract(tracks, progress=False) == {}
    return store


def _refusal(rep, tracks) -> str:
    with pytest.raises(ConfigError) as e:
        rep.check_tracks(tracks)
    return str(e.value)


def test_a_spec_gives_the_config():
    cls, config = parse_spec("npy:/data/emb,frames_per_second=25,allow_extra=true")
    assert cls is Precomputed
    assert config == PrecomputedConfig(path="/data/emb", frames_per_second=25, allow_extra=True)
    assert parse_spec("npy:/data/emb")[1] == PrecomputedConfig(path="/data/emb")
    with pytest.raises(ConfigError, match="frames_per_second must be > 0"):
        parse_spec("npy:/data/emb,frames_per_second=0")


def test_a_folder_is_stored_exactly(tmp_path, tracks):
    arrays = _arrays()
    folder = _folder(tmp_path / "emb", arrays)
    rep = _rep(f"npy:{folder},frames_per_second=25")
    assert (rep.dim, rep.frames_per_second, rep.sample_rate) == (DIM, 25.0, 1000)
    assert Precomputed.frame_rate(PrecomputedConfig(str(folder), 25)) == 25.0
    store = _stored(rep, tracks, tmp_path / "features")
    for i, a in arrays.items():
        np.testing.assert_array_equal(store.get(i), a)
        assert store.seconds(i) == FRAMES[i] / 25  # 50 frames at 25/s: 2.0 s
    assert store.data.dtype == np.float32 and store.data.shape == (50 + 37 + 61, DIM)
    assert (folder / "blues" / "blues.00001.npy").is_file()  # an id with "/" is a sub-folder
    with pytest.raises(MirformerError, match="cannot encode new audio"):
        rep.encode(np.zeros(8000, np.float32))


def test_times_files_give_the_frame_rate(tmp_path, tracks):
    arrays = _arrays()
    # 50 frames/s, the centres of frames from 0.5 s on (the first half second had none)
    times = {i: 0.51 + 0.02 * np.arange(n) for i, n in FRAMES.items()}
    folder = _folder(tmp_path / "emb", arrays, times)
    rep = _rep(f"npy:{folder}")
    assert rep.frames_per_second == pytest.approx(50.0)
    store = _stored(rep, tracks, tmp_path / "features")
    for i, a in arrays.items():
        np.testing.assert_array_equal(store.get(i), a)
        assert store.seconds(i) == pytest.approx(0.5 + FRAMES[i] * 0.02, abs=1e-3)  # last centre + half a frame


def test_frames_need_a_rate(tmp_path):
    folder = _folder(tmp_path / "emb", _arrays())
    with pytest.raises(ConfigError, match=r"give frames_per_second= .*\.times\.npy"):
        Precomputed.check_config(PrecomputedConfig(str(folder)))


@pytest.mark.parametrize("change, heading", [
    (lambda t: np.concatenate([t[:10], t[10:] + 0.005]), "uneven: 0.025 s after frame 9"),
    (lambda t: t * 2, "another rate than 50 frames/s"),  # 25 frames/s where the others have 50
], ids=["uneven", "another-rate"])
def test_times_that_disagree_are_refused_by_id(tmp_path, tracks, change, heading):
    times = {i: 0.01 + 0.02 * np.arange(n) for i, n in FRAMES.items()}
    times["jazz.00003"] = change(times["jazz.00003"])
    rep = _rep(f"npy:{_folder(tmp_path / 'emb', _arrays(), times)}")
    message = _refusal(rep, tracks)
    assert heading in message and "1 track(s): jazz.00003" in message and "blues.00001" not in message


def test_clip_vectors_are_one_frame_at_rate_zero(tmp_path, tracks):
    rng = np.random.default_rng(1)
    vectors = {i: rng.standard_normal(DIM).astype(np.float32) for i in IDS}
    folder = _folder(tmp_path / "emb", vectors)
    config = PrecomputedConfig(str(folder))
    assert Precomputed.frame_rate(config) == 0.0
    rep = _rep(f"npy:{folder}")
    lost = Track("jazz.00003", tmp_path / "gone.wav", "train")  # its audio is not here: length unknown
    store = _stored(rep, [*tracks[:2], lost], tmp_path / "features")
    for i, v in vectors.items():
        np.testing.assert_array_equal(store.get(i), v[None])
    assert [store.seconds(i) for i in IDS] == [1.5, 1.0, UNKNOWN_SECONDS]
    assert rep.n_frames(1500) == 1 and rep.times(1).tolist() == [0.0]
    with pytest.raises(ConfigError, match="one \\(dim,\\) vector per clip.*drop frames_per_second=25"):
        Precomputed.check_config(PrecomputedConfig(str(folder), frames_per_second=25))


def test_a_manifest_names_the_files(tmp_path, tracks):
    arrays = _arrays()
    elsewhere = tmp_path / "elsewhere" / "jazz.npy"  # an absolute path in the manifest
    _save(tmp_path / "m" / "a" / "one.npy", arrays[IDS[0]])
    _save(tmp_path / "m" / "a" / "one_t.npy", 0.02 * np.arange(FRAMES[IDS[0]]) + 0.01)
    _save(tmp_path / "m" / "two.npy", arrays[IDS[1]])
    _save(elsewhere, arrays[IDS[2]])
    manifest = tmp_path / "m" / "list.csv"
    manifest.write_text(f"track_id,path,times_path\n{IDS[0]},a/one.npy,a/one_t.npy\n{IDS[1]},two.npy,\n"
                        f"{IDS[2]},{elsewhere},\n")
    rep = _rep(f"npy:{manifest},frames_per_second=50")
    store = _stored(rep, tracks, tmp_path / "features")
    for i, a in arrays.items():
        np.testing.assert_array_equal(store.get(i), a)
    assert store.seconds(IDS[0]) == 1.0 and store.seconds(IDS[1]) == 0.74  # times; 37 frames at 50/s
    manifest.write_text(f"track_id,path\n{IDS[0]},two.npy\n{IDS[0]},a/one.npy\n")
    with pytest.raises(ConfigError, match="repeated track ids \\['blues/blues.00001'\\]"):
        _rep(f"npy:{manifest},frames_per_second=50")


def _missing(folder):
    (folder / "blues" / "blues.00002.npy").unlink()
    return "missing: no array for these tracks: 1 track(s): blues/blues.00002"


def _extra(folder):
    _save(folder / "rock" / "rock.00009.npy", np.zeros((5, DIM), np.float32))
    return "extra: arrays for no track of the dataset (allow_extra=true accepts them): 1 track(s): rock/rock.00009"


def _poke(value):
    def poke(folder):
        a = np.load(folder / "jazz.00003.npy")
        a[[3, 40], 2] = value
        np.save(folder / "jazz.00003.npy", a)
        return f"NaN or infinite values: 1 track(s): jazz.00003 (2 {'NaN' if np.isnan(value) else 'infinite'})"
    return poke


def _wrong_dim(folder):
    np.save(folder / "blues" / "blues.00001.npy", np.zeros((50, DIM + 1), np.float32))
    return f"not {DIM} values per frame as most arrays have: 1 track(s): blues/blues.00001 ({DIM + 1})"


def _wrong_ndim(folder):
    np.save(folder / "blues" / "blues.00001.npy", np.zeros((50, 2, DIM), np.float32))
    return "not (frames, dim) as most arrays are: 1 track(s): blues/blues.00001 (shape (50, 2, 6))"


def _unreadable(folder):
    (folder / "jazz.00003.npy").write_bytes(b"not an array")
    return "unreadable: 1 track(s): jazz.00003 (jazz.00003.npy:"


@pytest.mark.parametrize("spoil", [_missing, _extra, _poke(np.nan), _poke(np.inf), _poke(-np.inf), _wrong_dim,
                                   _wrong_ndim, _unreadable],
                         ids=["missing", "extra", "nan", "inf", "-inf", "dim", "ndim", "unreadable"])
def test_files_that_do_not_fit_are_named_before_anything_is_stored(tmp_path, tracks, spoil):
    folder = _folder(tmp_path / "emb", _arrays())
    expected = spoil(folder)
    rep = _rep(f"npy:{folder},frames_per_second=25")
    assert expected in _refusal(rep, tracks)
    assert not (tmp_path / "features").exists()


def test_a_store_filled_unchecked_refuses_a_misshapen_file(tmp_path, tracks):
    folder = _folder(tmp_path / "emb", _arrays())
    rep = _rep(f"npy:{folder},frames_per_second=25")
    np.save(folder / "jazz.00003.npy", np.zeros((30, 2 * DIM), np.float32))  # 60 frames of DIM if reshaped
    with pytest.raises(ConfigError, match=r"jazz.00003.npy: shape \(30, 12\) \(expected 6 values per frame\)"):
        FeatureStore(tmp_path / "features", "ds", rep).extract(tracks, progress=False)


def test_extra_files_are_allowed_when_asked(tmp_path, tracks):
    arrays = _arrays()
    folder = _folder(tmp_path / "emb", arrays)
    _extra(folder)
    rep = _rep(f"npy:{folder},frames_per_second=25,allow_extra=true")
    store = _stored(rep, tracks, tmp_path / "features")
    assert sorted(store.index["tracks"]) == sorted(IDS)
    np.testing.assert_array_equal(store.get("jazz.00003"), arrays["jazz.00003"])


def test_one_error_lists_every_problem_and_caps_long_lists(tmp_path, tracks, monkeypatch):
    monkeypatch.setattr(precomputed, "SCAN_VALUES", 2 * DIM)  # two frames per chunk: the NaN in different chunks
    folder = _folder(tmp_path / "emb", _arrays())
    for n in range(12):
        _save(folder / "extra" / f"x{n:02d}.npy", np.zeros((3, DIM), np.float32))
    _missing(folder)
    _poke(np.nan)(folder)
    times = 0.02 * np.arange(10)  # 10 times for 50 frames
    _save(folder / "blues" / "blues.00001.times.npy", times)
    message = _refusal(_rep(f"npy:{folder},frames_per_second=50"), tracks)
    assert "12 track(s): extra/x00, extra/x01" in message and "extra/x09 and 2 more" in message
    assert "extra/x10" not in message
    assert "no array for these tracks: 1 track(s): blues/blues.00002" in message
    assert "jazz.00003 (2 NaN)" in message
    assert "times files wrong: 1 track(s): blues/blues.00001 (shape (10,), the array has 50 frames)" in message


def test_float16_storage(tmp_path, tracks):
    arrays = _arrays()
    folder = _folder(tmp_path / "emb", arrays)
    rep = _rep(f"npy:{folder},frames_per_second=25", dtype="float16")
    store = _stored(rep, tracks, tmp_path / "features")
    assert store.data.dtype == np.float16
    for i, a in arrays.items():
        np.testing.assert_array_equal(store.get(i), a.astype(np.float16))
    assert store.key != FeatureStore(tmp_path, "ds", _rep(f"npy:{folder},frames_per_second=25")).key
    _poke(1e5)(folder)  # float16 reaches 65504
    assert "values beyond float16's range (±65504): 1 track(s): jazz.00003 (2 values)" in _refusal(
        _rep(f"npy:{folder},frames_per_second=25", dtype="float16"), tracks)
    _rep(f"npy:{folder},frames_per_second=25").check_tracks(tracks)  # float32 holds them
    with pytest.raises(ConfigError, match="dtype must be one of"):
        _rep(f"npy:{folder},frames_per_second=25", dtype="float64")


def test_the_store_key_follows_the_files(tmp_path):
    folder = _folder(tmp_path / "emb", _arrays())
    spec = f"npy:{folder},frames_per_second=25"
    key = store_key("ds", _rep(spec))
    assert store_key("ds", _rep(spec)) == key
    path = folder / "jazz.00003.npy"
    before = path.stat()
    np.save(path, np.ones((61, DIM), np.float32))  # same size, other values: seen by the modification time
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert path.stat().st_size == before.st_size
    changed = store_key("ds", _rep(spec))
    assert changed != key
    np.save(path, np.ones((62, DIM), np.float32))  # another size at the first modification time
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store_key("ds", _rep(spec)) not in (key, changed)
    assert store_key("ds", _rep(spec + ",allow_extra=true")) == store_key("ds", _rep(spec))


def test_an_encoder_file_refers_to_the_files(tmp_path, tracks):
    folder = _folder(tmp_path / "emb", _arrays())
    rep = _rep(f"npy:{folder},frames_per_second=25")
    block = rep.to_block()
    again = Precomputed.from_block(block, source="enc.pt")
    assert again.config_dict() == rep.config_dict() and again.dim == DIM
    lines = Precomputed.report_lines({**rep.about(), "window_frames": 75})
    assert lines[2] == (f"Precomputed embeddings read from `{folder}`: 3 tracks of {DIM} values, 25 frames/s, "
                        "windows of 75 frames.")
    np.save(folder / "jazz.00003.npy", np.ones((3, DIM), np.float32))
    with pytest.raises(CheckpointError, match=f"enc.pt: its precomputed embeddings {folder} have changed: "
                                              f"fingerprint [0-9a-f]{{64}}, .* with {block['npy']['fingerprint']}"):
        Precomputed.from_block(block, source="enc.pt")
    block["npy"]["path"] = str(tmp_path / "gone")
    with pytest.raises(CheckpointError, match="are missing"):
        Precomputed.from_block(block, source="enc.pt")


def test_every_layer_of_a_model_is_stored_stacked(tmp_path, tracks):
    """(frames, layers, width) arrays, as ``mirformer embed --layer all`` writes them: stored as
    frames of layers x width values, first layer first, and declared as layers for a probe."""
    rng = np.random.default_rng(1)
    arrays = {i: rng.standard_normal((n, 3, 4)).astype(np.float32) for i, n in FRAMES.items()}
    rep = _rep(f"npy:{_folder(tmp_path / 'emb', arrays)},frames_per_second=25")
    assert (rep.layers, rep.dim) == (3, 12)
    store = _stored(rep, tracks, tmp_path / "features")
    for i, a in arrays.items():
        np.testing.assert_array_equal(store.get(i), a.reshape(len(a), 12))
    _save(tmp_path / "emb" / "jazz.00003.npy", rng.standard_normal((61, 4, 3)).astype(np.float32))
    rep = _rep(f"npy:{tmp_path / 'emb'},frames_per_second=25")
    assert "jazz.00003 (4 x 3)" in _refusal(rep, tracks)
