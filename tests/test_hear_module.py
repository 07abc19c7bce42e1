"""Any HEAR 2021 module as a representation: its frames are the module's own timestamp embeddings
(checked by hand on ``hear_toy``), ``times`` are its timestamps, ``n_frames`` its counts over many
lengths (derived, or measured where no rule fits), the refusals (no such module, a missing
function, a missing weights file, uneven timestamps, changed weights), the store key following the
weights, and the round trip through mirformer's own HEAR module with a pretrained encoder file."""

import io
import sys
import types

import numpy as np
import pytest
import torch

import hear_toy
from helpers import TINY_RUN
from mirformer.config_tree import parse_overrides
from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.hear_module import HearConfig, HearModule, file_sha256

SR = hear_toy.SR
# Lengths around the toy's hop and the 2 s probe, and odd ones beyond.
LENGTHS = [1, 79, 80, 81, 159, 160, 2399, 2400, 15999, 16000, 16001, 16079, 16080, 16081, 20000, 33333, 47999, 48000]


def _sine(n: int, hz: float = 1000.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)


def _module(monkeypatch, name: str, **functions) -> str:
    """Register a variant of ``hear_toy`` as module ``name`` (``functions`` replace its own; None drops one)."""
    module = types.ModuleType(name)
    for f in ("load_model", "get_timestamp_embeddings", "get_scene_embeddings"):
        if functions.get(f, getattr(hear_toy, f)) is not None:
            setattr(module, f, functions.get(f, getattr(hear_toy, f)))
    monkeypatch.setitem(sys.modules, name, module)
    return name


def _weights(path, gain: float) -> str:
    path.write_text(str(gain))
    return str(path)


@pytest.fixture(scope="module")
def toy():
    return HearModule("hear_toy")


def test_frames_are_the_modules_own_and_check_by_hand(toy):
    y = _sine(2400)
    frames = toy.encode(y)
    own, _ = hear_toy.get_timestamp_embeddings(torch.from_numpy(y)[None], hear_toy.load_model())
    np.testing.assert_array_equal(frames, own[0].numpy())
    assert frames.dtype == np.float32 and frames.shape == (30, 4) and toy.dim == 4 and toy.sample_rate == SR
    # A 1000 Hz sine of amplitude 0.5: RMS 0.5 / sqrt(2), all its mean square (0.125) in the middle band.
    np.testing.assert_allclose(frames[:, 0], 0.5 / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(frames[:, 2], 0.125, rtol=1e-6)
    np.testing.assert_allclose(frames[:, [1, 3]], 0.0, atol=1e-9)
    assert toy.encode(np.zeros(0, np.float32)).shape == (0, 4) and toy.n_frames(0) == 0


def test_times_are_the_modules_timestamps(toy):
    assert toy.frames_per_second == 100.0  # a hop of 80 samples at 8 kHz, exactly
    for n in (800, 16000, 33333):
        _, timestamps = hear_toy.get_timestamp_embeddings(torch.zeros(1, n), hear_toy.load_model())
        np.testing.assert_allclose(toy.times(toy.n_frames(n)), timestamps[0].double().numpy() / 1000.0, atol=1e-9)
    np.testing.assert_allclose(toy.times(2), [0.005, 0.015])  # frame centres


def test_frame_counts_over_many_lengths(toy, monkeypatch):
    assert toy.counting == "derived"  # n // 80: floor((n + 0) / 80)
    for n in LENGTHS:
        assert toy.n_frames(n) == len(toy.encode(_sine(n))) == n // 80, n

    def chunked(audio, model):
        """One frame more per started 20000 samples (as a module reading chunks might add): no floor rule."""
        emb, ts = hear_toy.get_timestamp_embeddings(audio, model)
        extra = audio.shape[1] // 20000
        ts = torch.cat([ts, ts[:, -1:] + 10.0 * torch.arange(1, extra + 1)], 1) if extra else ts
        return torch.cat([emb, emb[:, -1:].expand(-1, extra, -1)], 1), ts

    rep = HearModule(_module(monkeypatch, "hear_chunked", get_timestamp_embeddings=chunked))
    assert rep.counting == "measured"
    for n in LENGTHS:
        assert rep.n_frames(n) == len(rep.encode(_sine(n))) == n // 80 + n // 20000, n


def test_refusals_name_the_module_and_what_is_missing(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="'no_such_hear_module' cannot be imported"):
        HearModule("no_such_hear_module")
    with pytest.raises(ConfigError, match="'hear_partial' lacks the HEAR API function.s. get_scene_embeddings"):
        HearModule(_module(monkeypatch, "hear_partial", get_scene_embeddings=None))
    with pytest.raises(ConfigError, match=r"'hear_toy': its weights file .*missing.txt does not exist"):
        HearModule("hear_toy", weights=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="hear.module is empty"):
        HearModule.check_config(HearConfig())

    def uneven(audio, model):
        emb, ts = hear_toy.get_timestamp_embeddings(audio, model)
        return emb, ts + 3.0 * (torch.arange(ts.shape[1]) % 2)  # every other stamp 3 ms late

    with pytest.raises(ConfigError, match="'hear_uneven': its timestamps are not evenly spaced"):
        HearModule(_module(monkeypatch, "hear_uneven", get_timestamp_embeddings=uneven))
    with pytest.raises(ConfigError, match="without timestamp_embedding_size"):
        HearModule(_module(monkeypatch, "hear_bare", load_model=lambda path="": types.SimpleNamespace(
            sample_rate=SR, scene_embedding_size=4)))


def test_store_key_follows_the_weights_and_a_changed_file_is_refused(tmp_path):
    one = HearModule("hear_toy", weights=_weights(tmp_path / "one.txt", 1.0))
    two = HearModule("hear_toy", weights=_weights(tmp_path / "two.txt", 2.0))
    same = HearModule("hear_toy", weights=_weights(tmp_path / "also-one.txt", 1.0))
    assert one.config_dict() != two.config_dict() and one.config_dict() == same.config_dict()
    assert one.config_dict() == {"module": "hear_toy", "module_version": "0.1", "version": "1",
                                 "weights_sha256": file_sha256(tmp_path / "one.txt")}
    y = _sine(1600, hz=300.0)
    np.testing.assert_array_equal(two.encode(y), 2 * one.encode(y))
    block = two.to_block()
    again = HearModule.from_block(block, source="enc.pt")
    assert again.config_dict() == two.config_dict()
    old = file_sha256(tmp_path / "two.txt")
    _weights(tmp_path / "two.txt", 3.0)
    with pytest.raises(CheckpointError, match=f"has changed: SHA-256 {file_sha256(tmp_path / 'two.txt')}, the "
                                              f"encoder was trained with {old}"):
        HearModule.from_block(block, source="enc.pt")


def test_configured_and_reported(tmp_path):
    config = HearConfig("hear_toy", _weights(tmp_path / "w.txt", 1.0))
    HearModule.check_config(config)
    assert HearModule.frame_rate(config) == 100.0
    rep = HearModule.from_config(config, context=None)
    assert rep is HearModule.from_config(config, context=None) and rep.settings() == config  # loaded once
    text = "\n".join(rep.report_lines({**rep.about(), "window_frames": 300}))
    for part in ("`hear_toy` 0.1", str(tmp_path / "w.txt"), file_sha256(tmp_path / "w.txt")[:12], "8000 Hz",
                 "4 values", "100 frames/s", "300 frames"):
        assert part in text, part


def test_round_trip_through_mirformers_hear_module(tmp_path, tiny_corpus):
    """``hear:mirformer.hear`` over a tiny pretrained SpectroFormer encoder file gives that HEAR
    module's own embeddings and timestamps, and survives an encoder file's block."""
    import mirformer.hear as hear
    from mirformer.experiments.presets import resolve
    from mirformer.experiments.pretrain import run_pretrain

    sets = [v for k, v in zip(TINY_RUN, TINY_RUN[1:]) if k == "--set"]
    cfg = resolve("quickstart", parse_overrides([*sets, "trainer.progress=false", "pretrain.epochs=1"]))
    encoder = run_pretrain(cfg, kinds=["spectroformer"], run_dir=tmp_path / "run", progress=False)["spectroformer"]
    rep = HearModule("mirformer.hear", weights=str(encoder))
    assert rep.sample_rate == 16000 and rep.dim == 32 and rep.frames_per_second == 16000 / 256
    assert rep.counting == "derived"  # 1 + n // 256
    model = hear.load_model(str(encoder))
    t = np.arange(3 * 16000 + 77) / 16000
    y = (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.3 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.from_numpy(y)[None], model)
    frames = rep.encode(y)
    np.testing.assert_array_equal(frames, embeddings[0].numpy())
    assert len(frames) == rep.n_frames(len(y)) == 1 + len(y) // 256
    np.testing.assert_allclose(rep.times(len(frames)), timestamps[0].double().numpy() / 1000.0, atol=1e-7)
    for n in (100, 4000, 32000, 32255, 32256, 40000):
        assert rep.n_frames(n) == 1 + n // 256, n
    buffer = io.BytesIO()
    torch.save(rep.to_block(), buffer)
    buffer.seek(0)
    again = HearModule.from_block(torch.load(buffer, weights_only=True), source="test")
    np.testing.assert_array_equal(again.encode(y), frames)
