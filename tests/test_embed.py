"""``mirformer embed`` and the HEAR API: streamed inputs equal whole-signal ones, shapes and times
for short, long and multi-channel files, tiles equal the whole where windows coincide, memory that
does not grow with the audio, and the HEAR contract."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import mirformer.hear as hear
from mirformer.audio import audio_blocks, load_audio
from mirformer.cli import main
from mirformer.config_tree import parse_overrides
from mirformer.embed import Embedder
from mirformer.encoder_file import read_encoder
from mirformer.errors import ConfigError
from mirformer.experiments.presets import resolve
from mirformer.experiments.pretrain import run_pretrain
from helpers import TINY_PATCHIFIER, TINY_RUN

SR = 16000
SETS = [v for k, v in zip(TINY_RUN, TINY_RUN[1:]) if k == "--set"]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, put_tiny_corpus):
    """Tiny SpectroFormer, TokenFormer and Patchifier encoders, pretrained on the tiny corpus."""
    home = tmp_path_factory.mktemp("home")
    os.environ["MIRFORMER_HOME"] = str(home)
    put_tiny_corpus(home)
    cfg = resolve("quickstart", parse_overrides([*SETS, TINY_PATCHIFIER, "trainer.progress=false", "pretrain.epochs=1",
                                                 "patchifier.stage1.epochs=1", "patchifier.stage2.epochs=1"]))
    return run_pretrain(cfg, kinds=["spectroformer", "tokenformer", "patchifier"], run_dir=home / "run", progress=False)


def _tone(path, seconds, sr=SR, channels=1, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    sf.write(path, np.stack([y, 0.5 * y], 1) if channels == 2 else y, sr)
    return path


def _long_tone(path, seconds):
    """``_tone``'s signal, whose period is 2 s, as 2 s tiled: the same samples to float rounding, in
    a tenth of the time (20 minutes took 2 s to compute)."""
    period = 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * SR) / SR) * (1 + 0.5 * np.sin(np.pi * np.arange(2 * SR) / SR))
    assert seconds % 2 == 0
    sf.write(path, np.tile(period, int(seconds) // 2), SR)
    return path


@pytest.mark.parametrize("kind", ["spectroformer", "tokenformer"])
def test_streamed_input_frames_equal_the_whole_signals(encoders, tmp_path, kind):
    embedder = Embedder(read_encoder(encoders[kind]))
    path = _tone(tmp_path / "a.wav", 75.0)  # three 30 s blocks
    streamed = np.concatenate(list(embedder.frames(audio_blocks(path, sr=SR))))
    whole = embedder.frames_of(load_audio(path, sr=SR))
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


@pytest.mark.parametrize("kind", ["spectroformer", "tokenformer", "patchifier"])
def test_embed_command_shapes_and_times(encoders, tmp_path, kind, capsys):
    files = [_tone(tmp_path / "short.wav", 1.2), _tone(tmp_path / "long.flac", 40.0),
             _tone(tmp_path / "stereo.wav", 5.0, sr=44100, channels=2)]
    (tmp_path / "empty.wav").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["embed", *map(str, files), str(tmp_path / "empty.wav"), "--encoder", str(encoders[kind]),
                 "--out", str(out), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().err and not (out / "empty.npy").exists()
    encoder = read_encoder(encoders[kind])
    rep, per = encoder.representation, 32 if kind == "patchifier" else 1
    for path, seconds in zip(files, (1.2, 40.0, 5.0)):
        values, times = np.load(out / (path.stem + ".npy")), np.load(out / (path.stem + ".times.npy"))
        positions = rep.n_frames(round(seconds * SR)) // per
        assert values.shape == (positions, 32) and values.dtype == np.float32 and np.isfinite(values).all()
        expected = rep.times(positions * per).reshape(positions, per).mean(1)
        np.testing.assert_allclose(times, expected)
    assert main(["embed", str(files[1]), "--encoder", str(encoders[kind]), "--out", str(tmp_path / "all"),
                 "--layer", "all", "--quiet"]) == 0
    layers = np.load(tmp_path / "all" / "long.npy")
    np.testing.assert_allclose(layers[:, -1], np.load(out / "long.npy"), atol=1e-6)  # the last layer is the default
    assert layers.shape[1] == 2  # input + one block (n_layers = 1)
    assert main(["embed", str(files[1]), "--encoder", str(encoders[kind]), "--out", str(tmp_path / "clip"),
                 "--pooling", "mean", "--quiet"]) == 0
    assert np.load(tmp_path / "clip" / "long.npy").shape == (32,)


def test_tiles_equal_the_whole_where_windows_coincide(encoders, tmp_path):
    embedder = Embedder(read_encoder(encoders["spectroformer"]))
    y = load_audio(_tone(tmp_path / "a.wav", 10.0), sr=SR)
    frames = embedder.frames_of(y)
    whole = embedder.embed([frames])  # windows of 48 frames from frame 0
    window = embedder.embed([frames[48:96]])  # the second window alone
    np.testing.assert_allclose(whole.values[48:96], window.values, atol=1e-5)
    # Overlapping windows average each frame's states; a frame in one window keeps that window's.
    half = embedder.embed([frames], hop=24)
    np.testing.assert_allclose(half.values[:24], whole.values[:24], atol=1e-5)
    with pytest.raises(ConfigError, match="hop"):
        embedder.embed([frames], hop=100)


@pytest.mark.slow
def test_memory_does_not_grow_with_the_audio(encoders, tmp_path):
    """Peak memory embedding 20 minutes is that of 1 minute (each in a fresh process)."""
    # VmHWM is the child's own peak; ru_maxrss would carry the parent's across fork and exec.
    script = ("import sys; from mirformer.cli import main\n"
              "main(['embed', sys.argv[1], '--encoder', sys.argv[2], '--out', sys.argv[3], '--quiet'])\n"
              "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])")
    procs = {}
    for minutes in (1, 20):  # both at once: each peak is its own process's
        path = _long_tone(tmp_path / f"{minutes}.flac", 60 * minutes)
        procs[minutes] = subprocess.Popen([sys.executable, "-c", script, str(path), str(encoders["spectroformer"]),
                                           str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True)
    peaks = {}
    for minutes, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        peaks[minutes] = int(stdout.split()[-1]) / 1024  # MB
    frames = np.load(tmp_path / "out" / "20.npy", mmap_mode="r")
    assert frames.shape == (1 + 20 * 60 * SR // 256, 32)
    # 20 minutes of float32 audio alone would be 77 MB more.
    assert peaks[20] - peaks[1] < 25, peaks


def test_hear_api_contract(encoders):
    model = hear.load_model(str(encoders["spectroformer"]))
    assert model.sample_rate == SR and model.scene_embedding_size == model.timestamp_embedding_size == 32
    t = torch.arange(3 * SR) / SR
    tone = torch.sin(2 * np.pi * 330 * t) * (1 + 0.3 * torch.sin(2 * np.pi * 2 * t))
    audio = torch.stack([0.01 * tone, 0.9 * tone, 0.5 * torch.rand(3 * SR) - 0.25])  # quiet, loud, noise
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    n = 1 + 3 * SR // 256
    assert embeddings.shape == (3, n, 32) and timestamps.shape == (3, n)
    assert embeddings.dtype == timestamps.dtype == torch.float32 and torch.isfinite(embeddings).all()
    # Frame t is centred on sample t * hop: its timestamp, in milliseconds, increasing.
    torch.testing.assert_close(timestamps[0], torch.arange(n) * 256 / SR * 1000.0)
    assert (timestamps.diff(dim=1) > 0).all()
    # dB against each sound's own peak: the same tone at another loudness embeds the same.
    torch.testing.assert_close(embeddings[0], embeddings[1], atol=1e-3, rtol=0)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 32)
    torch.testing.assert_close(scene, embeddings.mean(1))


@pytest.mark.slow
def test_hear_api_takes_twenty_minutes(encoders):
    model = hear.load_model(str(encoders["tokenformer"]))
    audio = 0.1 * torch.randn(1, 20 * 60 * SR)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (1, 20 * 60 * SR // 256, 32)
    np.testing.assert_allclose(timestamps[0, :2].numpy(), [0.5 * 256 / SR * 1000, 1.5 * 256 / SR * 1000])
    assert json.dumps(float(embeddings.mean()))  # finite, a number


@pytest.mark.slow
def test_models_over_several_codebooks_embed_and_serve_hear(tmp_path, tiny_corpus):
    """Encoders reading 2 codebooks of a residual-VQ tokenizer: streamed ids equal one-shot, `embed`
    and the HEAR API give their embeddings."""
    cfg = resolve("quickstart", parse_overrides([*SETS, "trainer.progress=false", "pretrain.epochs=1",
                                                 "tokenizer.train.vqvae.codebooks=2", "tokenizer.codebooks=2"]))
    found = run_pretrain(cfg, kinds=["tokenformer", "codebookformer"], run_dir=tmp_path / "run", progress=False)
    path = _tone(tmp_path / "a.wav", 65.0)  # three 30 s blocks
    for kind, encoder_path in found.items():
        encoder = read_encoder(encoder_path)
        assert encoder.representation.codebooks == 2
        embedder = Embedder(encoder)
        streamed = np.concatenate(list(embedder.frames(audio_blocks(path, sr=SR))))
        whole = embedder.frames_of(load_audio(path, sr=SR))
        assert streamed.shape == whole.shape and streamed.shape[-1] == 2
        np.testing.assert_array_equal(streamed, whole)
        assert main(["embed", str(path), "--encoder", str(encoder_path), "--out", str(tmp_path / kind), "--quiet"]) == 0
        assert np.load(tmp_path / kind / "a.npy").shape == (encoder.representation.n_frames(65 * SR), 32)
        model = hear.load_model(str(encoder_path))
        assert hear.get_scene_embeddings(torch.rand(2, SR) - 0.5, model).shape == (2, 32)
