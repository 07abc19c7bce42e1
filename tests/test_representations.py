"""The contract every registered representation keeps (the test a new representation copies): its
frames have the declared layout and count, streaming block by block equals encoding the whole
signal, time stamps follow the frames, it survives an encoder file's round trip, and its default
statistics fit on a feature store. A representation without an example here fails the registry test."""

import numpy as np
import pytest
import torch

import mirformer.encoder_states  # noqa: F401 - registers "encoder-states" (it sits above the registry's package)
from helpers import random_vqvae, tiny_hf_encoder
from mirformer.datasets.base import Track
from mirformer.representations import REPRESENTATIONS
from mirformer.representations.store import FeatureStore

SR = 8000


def _examples(tmp_path_factory) -> dict:
    """One small instance of every registered representation, at 8 kHz where it has a choice."""
    from mirformer.encoder_states import EncoderStates, EncoderStatesConfig
    from mirformer.representations.cqt import CQT, CQTConfig
    from mirformer.representations.precomputed import Precomputed, PrecomputedConfig
    from mirformer.representations.hear_module import HearModule
    from mirformer.representations.hf_encoder import HFEncoder, HFEncoderConfig
    from mirformer.representations.mel import LogMel, MelConfig
    from mirformer.representations.vq import VQCodebookVectors, VQTokens
    from mirformer.representations.waveform import Waveform

    vq = random_vqvae(tmp_path_factory.mktemp("vq") / "vq.pth.tar")
    mel = LogMel(MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=24, ref="max"))
    return {
        "mel": mel,
        "cqt": CQT(CQTConfig(sample_rate=SR, hop_length=64, fmin=110.0, n_bins=36)),
        "vq-tokens": VQTokens(vq),
        "vq-codebooks": VQCodebookVectors(vq, level=0),
        "waveform": Waveform(SR),
        "hf-encoder": HFEncoder(HFEncoderConfig(path=str(tiny_hf_encoder(tmp_path_factory.mktemp("hf") / "wav2vec2")),
                                                max_seconds=1.0)),  # 2.3 s signals: windows too
        "hear": HearModule("hear_toy"),  # tests/hear_toy.py: a tiny HEAR module at 8 kHz
        "npy": Precomputed(PrecomputedConfig(path=str(_embedding_folder(tmp_path_factory.mktemp("npy"))),
                                             frames_per_second=10.0)),
        "encoder-states": EncoderStates(EncoderStatesConfig(path=str(_encoder_file(
            tmp_path_factory.mktemp("encoder") / "encoder.pt", mel)), layer="all")),
    }


def _embedding_folder(folder):
    """Precomputed embeddings of the two tracks the store test writes (t0, t1): 6 and 11 frames of 3."""
    rng = np.random.default_rng(0)
    for track, frames in (("t0", 6), ("t1", 11)):
        np.save(folder / f"{track}.npy", rng.standard_normal((frames, 3)).astype(np.float32))
    return folder


def _from_audio(rep) -> None:
    """Skip a contract about encoding audio for a representation whose frames are read from files."""
    if not rep.frames_from_samples:
        pytest.skip(f"{rep.name} reads its frames from files; tests/test_precomputed.py checks it")


def _encoder_file(path, mel):
    """A random SpectroFormer over ``mel`` in windows of 20 frames (2.3 s signals: several)."""
    from mirformer.encoder_file import save_encoder
    from mirformer.models.encoder import EncoderConfig
    from mirformer.models.former import Former
    from mirformer.representations import Statistics

    torch.manual_seed(0)
    model = Former(frontend="projection", encoder=EncoderConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=32),
                   input_dim=mel.dim)
    stats = Statistics(np.full(mel.dim, -40.0, np.float32), np.full(mel.dim, 20.0, np.float32))
    save_encoder(path, kind="spectroformer", model=model, representation=mel, scaling="standardise", statistics=stats,
                 window=20, eval_window=20, about={})
    return path


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return _examples(tmp_path_factory)


def _signal(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
            ).astype(np.float32)


def test_every_registered_representation_has_an_example(examples):
    assert set(examples) == set(REPRESENTATIONS)


@pytest.mark.parametrize("name", sorted(REPRESENTATIONS))
def test_frames_layout_and_count(examples, name):
    rep = examples[name]
    _from_audio(rep)
    for seconds in (0.3, 1.7):
        y = _signal(seconds)
        frames = rep.encode(y)
        assert frames.shape == (rep.n_frames(len(y)), *rep.layout.frame_shape)
        assert np.issubdtype(frames.dtype, np.integer) == rep.layout.discrete
    times = rep.times(rep.n_frames(len(y)))
    assert len(times) == len(frames) and np.all(np.diff(times) > 0)
    assert times[-1] <= len(y) / rep.sample_rate + 1 / rep.frames_per_second


@pytest.mark.parametrize("name", sorted(REPRESENTATIONS))
def test_streamed_frames_equal_the_whole_signals(examples, name):
    rep = examples[name]
    _from_audio(rep)
    y = _signal(2.3)
    cuts = [0, 1000, 1003, 5000, 9111, len(y)]  # blocks of odd sizes, one of 3 samples

    def blocks():
        return iter([y[a:b] for a, b in zip(cuts, cuts[1:])])

    streamed = np.concatenate(list(rep.encode_stream(blocks)))
    np.testing.assert_array_equal(streamed, rep.encode(y))


@pytest.mark.parametrize("name", sorted(REPRESENTATIONS))
def test_encoder_file_block_round_trip(examples, name):
    rep = examples[name]
    block = rep.to_block()
    # What an encoder file holds: tensors and primitives only, read back with weights_only=True.
    buffer = __import__("io").BytesIO()
    torch.save(block, buffer)
    buffer.seek(0)
    again = type(rep).from_block(torch.load(buffer, weights_only=True), source="test")
    assert again.config_dict() == rep.config_dict() and again.layout == rep.layout
    _from_audio(rep)
    y = _signal(0.9)
    np.testing.assert_array_equal(again.encode(y), rep.encode(y))


@pytest.mark.parametrize("name", sorted(REPRESENTATIONS))
def test_default_statistics_fit_on_a_store(examples, name, tmp_path):
    import soundfile as sf

    rep = examples[name]
    tracks = []
    for i, seconds in enumerate((0.6, 1.1)):
        sf.write(tmp_path / f"t{i}.wav", _signal(seconds), SR)
        tracks.append(Track(f"t{i}", tmp_path / f"t{i}.wav", "train"))
    store = FeatureStore(tmp_path / "features", "toy", rep)
    store.extract(tracks, progress=False)
    stats = rep.fit_statistics(store, [t.id for t in tracks])
    frames = np.concatenate([np.asarray(store.get(t.id)) for t in tracks])
    if stats.mean is not None:
        np.testing.assert_allclose(stats.mean, frames.mean(0), rtol=1e-4, atol=1e-5)
    if stats.counts is not None:
        assert stats.counts.sum() == len(frames) and len(stats.counts) == rep.layout.vocab
