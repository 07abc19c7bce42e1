"""Neural codecs as tokenizers, on tiny random-weight models in the real ``save_pretrained`` format:
their ids equal the ``transformers`` model's own ``encode`` of the whole signal, streamed in any
blocks; their codebook vectors sum to the model's quantised latent; their folders are refused
clearly when wrong."""

import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers
from safetensors.torch import load_file, save_file

from mirformer.audio import load_audio
from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.tokenizers.base import open_tokenizer
from mirformer.representations.vq import VQTokens

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest.py)


def _fit_codebooks(layers, latents: torch.Tensor) -> None:
    """Codebook entries drawn from the residuals each layer sees (a fresh model's are zeros), so
    every codebook uses many ids. ``latents``: (1, dim, frames)."""
    residual = latents[0].T
    for layer in layers:
        embed = residual[torch.randint(len(residual), (layer.codebook.codebook_size,))]
        embed = embed + 0.1 * (residual - residual.mean(0)).std() * torch.randn_like(embed)
        if hasattr(layer.codebook, "embed_sum"):  # Mimi: entries are embed_sum / cluster_usage (ones)
            layer.codebook.embed_sum.copy_(embed)
            layer.codebook._embed = None
        else:
            layer.codebook.embed.copy_(embed)
        residual = residual - embed[torch.cdist(residual, embed).argmin(-1)]


def _encodec_24k():
    """Like facebook/encodec_24khz (causal, one sequence, hop 320); 4-bit codebooks at 75 Hz: 2, 4, 8 of them."""
    config = transformers.EncodecConfig(sampling_rate=24000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                        hidden_size=8, codebook_size=16, target_bandwidths=[0.6, 1.2, 2.4])
    model = transformers.EncodecModel(config).eval()
    with torch.no_grad():
        _fit_codebooks(model.quantizer.layers, model.encoder(_signal(24000)[None, None]))
    return model


def _encodec_48k():
    """Like facebook/encodec_48khz: stereo, 1 s chunks with 1% overlap, each normalised by its RMS, not causal."""
    config = transformers.EncodecConfig(sampling_rate=48000, audio_channels=2, normalize=True, chunk_length_s=1.0,
                                        overlap=0.01, use_causal_conv=False, norm_type="time_group_norm",
                                        upsampling_ratios=[8, 5, 4, 2], num_filters=4, hidden_size=8,
                                        codebook_size=16, target_bandwidths=[1.2, 2.4, 4.8])
    model = transformers.EncodecModel(config).eval()
    with torch.no_grad():
        x = _signal(48000)[None, None].repeat(1, 2, 1)
        _fit_codebooks(model.quantizer.layers, model.encoder(x / x.pow(2).mean().sqrt()))
    return model


def _dac():
    """Like descript/dac_24khz (hop 320), 4 codebooks of 16 entries."""
    config = transformers.DacConfig(sampling_rate=24000, encoder_hidden_size=4, downsampling_ratios=[2, 4, 5, 8],
                                    decoder_hidden_size=16, n_codebooks=4, codebook_size=16, codebook_dim=4)
    model = transformers.DacModel(config).eval()
    with torch.no_grad():
        for m in model.modules():  # a fresh DAC's weights (std 0.02, zero biases) leave almost no signal
            if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                m.reset_parameters()
        residual = model.encoder(_signal(24000)[None, None])
        for q in model.quantizer.quantizers:  # entries drawn from the directions each one sees (it compares cosines)
            z = torch.nn.functional.normalize(q.in_proj(residual)[0].T)
            embed = z[torch.randint(len(z), (q.codebook.num_embeddings,))]
            q.codebook.weight.copy_(embed + 0.1 * (z - z.mean(0)).std() * torch.randn_like(embed))
            residual = residual - q(residual)[0]
    return model


def _mimi():
    """Like kyutai/mimi (hop 1920 at 24 kHz: SEANet, sliding-window transformer, downsampling by 2; one semantic
    codebook and acoustic ones), with a window of 5 frames so a few seconds cross it many times."""
    config = transformers.MimiConfig(sampling_rate=24000, upsampling_ratios=[8, 6, 5, 4], num_filters=4,
                                     hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                     intermediate_size=32, codebook_size=16, codebook_dim=8,
                                     vector_quantization_hidden_dimension=8, num_quantizers=4, upsample_groups=16,
                                     sliding_window=5, layer_scale_initial_scale=1.0)
    model = transformers.MimiModel(config).eval()
    with torch.no_grad():
        for m in model.modules():  # a fresh transformer's weights (std 0.02) barely change its input
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(std=m.in_features**-0.5)
        latents = model.encoder(_signal(24000 * 2)[None, None]).latents
        split = model.quantizer
        for rvq in (split.semantic_residual_vector_quantizer, split.acoustic_residual_vector_quantizer):
            _fit_codebooks(rvq.layers, rvq.input_proj(latents))
    return model


def _xcodec():
    """Like hf-audio/xcodec-hubert-librispeech (16 kHz, hop 320: a DAC encoder beside a HuBERT, one residual
    quantiser), 4-bit codebooks at 50 Hz: 2, 4, 8 of them at 0.4, 0.8, 1.6 kbps."""
    acoustic = dict(encoder_hidden_size=4, downsampling_ratios=[8, 5, 4, 2], decoder_hidden_size=16,
                    upsampling_ratios=[8, 5, 4, 2], hidden_size=8)
    semantic = dict(model_type="hubert", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, conv_dim=[8] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    config = transformers.XcodecConfig(sample_rate=16000, target_bandwidths=[0.4, 0.8, 1.6], codebook_size=16,
                                       acoustic_model_config=acoustic, semantic_model_config=semantic)
    model = transformers.XcodecModel(config).eval()
    with torch.no_grad():
        for m in model.acoustic_encoder.modules():  # its fresh weights (std 0.02, zero biases) leave almost no signal
            if isinstance(m, torch.nn.Conv1d):
                m.reset_parameters()
        for m in model.modules():  # nor do fresh linear layers (std 0.02) mix much
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(std=m.in_features**-0.5)
        latents = []  # what the quantiser reads: fc's output, (1, frames, dim)
        hook = model.fc.register_forward_hook(lambda module, args, out: latents.append(out))
        model.encode(_signal(16000)[None, None])
        hook.remove()
        _fit_codebooks(model.quantizer.quantizers, latents[0].transpose(1, 2))
    return model


# name: (builder, samples of the test signal: several of the tokenizer's chunks, not whole frames)
CODECS = {"encodec_24k": (_encodec_24k, 36000 + 77), "encodec_48k": (_encodec_48k, 48000 * 3 + 3001),
          "dac": (_dac, 24000 + 901), "mimi": (_mimi, 24000 * 3 + 777), "xcodec": (_xcodec, 16000 * 2 + 901)}
CHUNK_SECONDS = {"encodec_24k": 0.05, "encodec_48k": 0.05, "dac": 0.05, "mimi": 0.25, "xcodec": 0.05}  # many chunks
WHOLE_SIGNAL = {"xcodec"}  # its semantic model attends over the whole signal: encoded in one pass, never in chunks


def _signal(n: int, *, seed: int = 0) -> torch.Tensor:
    """A gliding tone with noise: (n,) float32."""
    t = np.arange(n) / 24000
    y = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * np.random.default_rng(seed).standard_normal(n)
    return torch.from_numpy(y.astype(np.float32))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each tiny codec saved as its model page distributes it: name -> folder."""
    root, out = tmp_path_factory.mktemp("codecs"), {}
    for seed, (name, (build, _)) in enumerate(CODECS.items()):
        torch.manual_seed(seed)
        build().save_pretrained(root / name)
        out[name] = root / name
    return out


def _model(folder):
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    cls = {"encodec": transformers.EncodecModel, "dac": transformers.DacModel, "mimi": transformers.MimiModel,
           "xcodec": transformers.XcodecModel}
    return cls[config.model_type].from_pretrained(folder, local_files_only=True).eval()


@torch.inference_mode()
def _reference(model, name: str, y: torch.Tensor, codebooks: int) -> np.ndarray:
    """The model's own ``encode`` of the whole signal: ids (frames, codebooks)."""
    x = y.view(1, 1, -1)
    if name == "encodec_24k":  # the smallest bandwidth with that many codebooks
        bandwidth = {2: 0.6, 4: 1.2, 8: 2.4}[codebooks]
        return model.encode(x, bandwidth=bandwidth).audio_codes[0, 0].T.numpy()
    if name == "encodec_48k":  # chunks one after the other, the last one's padding cut off
        out = model.encode(x.repeat(1, 2, 1), bandwidth={2: 1.2, 4: 2.4, 8: 4.8}[codebooks])
        chunks = list(out.audio_codes[:, 0])
        if out.last_frame_pad_length:
            chunks[-1] = chunks[-1][..., : -out.last_frame_pad_length]
        return torch.cat(chunks, -1).T.numpy()
    if name == "dac":
        return model.encode(x, n_quantizers=codebooks).audio_codes[0].T.numpy()
    if name == "xcodec":  # the smallest bandwidth with that many codebooks
        return model.encode(x, bandwidth={2: 0.4, 4: 0.8, 8: 1.6}[codebooks]).audio_codes[0].T.numpy()
    return model.encode(x, num_quantizers=codebooks).audio_codes[0].T.numpy()


@pytest.mark.parametrize("name", list(CODECS))
def test_ids_equal_the_models_own_encode_chunked_and_streamed(folders, name):
    tok, n = open_tokenizer(folders[name]), CODECS[name][1]
    y = _signal(n, seed=1)
    codebooks = 4 if tok.n_codebooks >= 4 else 2
    ref = _reference(_model(folders[name]), name, y, codebooks)
    assert len(np.unique(ref[:, 0])) > 3 and len(np.unique(ref[:, -1])) > 3  # ids that can tell a mistake
    whole = tok.encode(y.numpy(), codebooks=codebooks)
    assert whole.dtype == np.int64 and whole.shape == ref.shape == (tok.n_frames(n), codebooks)
    np.testing.assert_array_equal(whole, ref)
    tok.chunk_seconds = CHUNK_SECONDS[name]
    np.testing.assert_array_equal(tok.encode(y.numpy(), codebooks=codebooks), ref)
    for size in (1000, 7):
        blocks = (y.numpy()[i : i + size] for i in range(0, n, size))
        parts = list(tok.encode_stream(blocks, codebooks=codebooks))
        if name in WHOLE_SIGNAL:  # the blocks joined, then encoded at once
            assert len(parts) == 1
        else:
            assert len(parts) > 3  # given as it arrives, not at the end
        np.testing.assert_array_equal(np.concatenate(parts), ref)


def _exposing_latents(model, name: str):
    """``model`` with its quantiser replaced by one whose "ids" are the latents themselves, channel c as
    codebook c, on a grid of 2**-24: what ids cannot show (a change too small to move a latent to
    another codebook entry) shows in them."""
    def ids(z, n):  # (1, dim, frames) -> (n, 1, frames)
        return torch.round(z[0, :n] * 2**24).long()[:, None]

    if name == "dac":  # its encode calls quantizer(latents, n) for (latents, codes (1, n, frames), ...)
        model.quantizer.forward = lambda z, n: (z, ids(z, n)[:, 0][None], z, 0.0, 0.0)
    elif name == "mimi":
        model.quantizer.encode = ids
    else:
        count = model.quantizer.get_num_quantizers_for_bandwidth
        model.quantizer.encode = lambda z, bandwidth: ids(z, count(bandwidth))
    return model


@pytest.mark.parametrize("name", list(CODECS))
def test_chunks_latents_equal_the_models_to_float_rounding(folders, name):
    tok, n = open_tokenizer(folders[name]), CODECS[name][1]
    y = _signal(n, seed=1)
    ref = _reference(_exposing_latents(_model(folders[name]), name), name, y, 2) / 2**24
    _exposing_latents(tok.model, name)
    tok.chunk_seconds = CHUNK_SECONDS[name]
    latents = tok.encode(y.numpy(), codebooks=2) / 2**24
    assert latents.shape == ref.shape
    # Float rounding only: measured at most 2e-6 of the largest latent (the LSTM's and the attention's sums
    # run in another order in chunks); one frame of context short changes DAC's latents by 1e-4 of it.
    np.testing.assert_allclose(latents, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("name", list(CODECS))
def test_short_signals_and_frame_counts(folders, name):
    tok = open_tokenizer(folders[name])
    model = _model(folders[name])
    for n in (1, tok.hop_length - 1, tok.hop_length, tok.hop_length * 5 + 3):
        y = _signal(n, seed=n)
        ids = tok.encode(y.numpy(), codebooks=2)
        assert ids.shape == (tok.n_frames(n), 2)
        # The models' own encodes fail on a signal shorter than DAC's strided kernels or than one X-Codec frame.
        if (name != "dac" or n > 1) and tok.n_frames(n):
            np.testing.assert_array_equal(ids, _reference(model, name, y, 2))
    assert tok.encode(np.zeros(0, np.float32), codebooks=2).shape == (0, 2)


@pytest.mark.parametrize("name", list(CODECS))
def test_fewer_codebooks_are_a_prefix(folders, name):
    tok = open_tokenizer(folders[name])
    y = _signal(CODECS[name][1], seed=2).numpy()
    every = tok.encode(y, codebooks=tok.n_codebooks)
    for n in range(1, tok.n_codebooks):
        np.testing.assert_array_equal(tok.encode(y, codebooks=n), every[:, :n])


@torch.inference_mode()
def _quantised_latent(model, name: str, ids: np.ndarray) -> torch.Tensor:
    """The model's dequantisation of ids (frames, c): (frames, dim), what its decoder reads."""
    codes = torch.as_tensor(ids).T[None]  # (1, c, frames)
    if name.startswith("encodec") or name == "xcodec":
        return model.quantizer.decode(codes.transpose(0, 1))[0].T
    if name == "dac":
        return model.quantizer.from_codes(codes)[0][0].T
    return model.quantizer.decode(codes)[0].T


@pytest.mark.parametrize("name", list(CODECS))
def test_codebook_vectors_sum_to_the_models_quantised_latent(folders, name):
    tok, model = open_tokenizer(folders[name]), _model(folders[name])
    books = tok.codebooks()
    assert books.dtype == torch.float32 and books.shape[:2] == (tok.n_codebooks, tok.vocab_size)
    ids = tok.encode(_signal(CODECS[name][1], seed=3).numpy(), codebooks=tok.n_codebooks)
    for c in (1, 2, tok.n_codebooks):
        summed = sum(books[k][torch.as_tensor(ids[:, k])] for k in range(c))
        latent = _quantised_latent(model, name, ids[:, :c])
        assert summed.shape == latent.shape
        torch.testing.assert_close(summed, latent, atol=1e-5, rtol=1e-5)
    assert tok.describe()["emb_width"] == books.shape[-1]


@pytest.mark.parametrize("name", list(CODECS))
def test_decode_gives_audio_of_the_signals_length(folders, name):
    tok, n = open_tokenizer(folders[name]), CODECS[name][1]
    ids = tok.encode(_signal(n, seed=4).numpy(), codebooks=2)
    audio = tok.decode(ids)
    assert audio.ndim == 1 and audio.dtype == np.float32 and np.isfinite(audio).all() and audio.std() > 0
    assert abs(len(audio) - n) <= tok.hop_length


def _sha256(folder) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return h.hexdigest()


def _changed_copy(folder, to):
    """A copy of codec ``folder`` at ``to`` with one weight changed."""
    shutil.copytree(folder, to)
    weights = load_file(to / "model.safetensors")
    key = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[key] = weights[key] + 0.5
    save_file(weights, to / "model.safetensors", metadata={"format": "pt"})
    return to


def test_identity_is_the_folders_sha256(folders, tmp_path):
    tok = open_tokenizer(folders["dac"])
    assert tok.identity == _sha256(folders["dac"])
    about = tok.describe()
    assert about["kind"] == "DAC" and about["sha1"] == tok.identity and about["hop_length"] == 320
    changed = open_tokenizer(_changed_copy(folders["dac"], tmp_path / "dac"))
    assert changed.identity != tok.identity and changed.identity == _sha256(tmp_path / "dac")
    kinds = {open_tokenizer(folders[name]).describe()["kind"] for name in CODECS}
    assert kinds == {"EnCodec", "DAC", "Mimi", "X-Codec"}


def test_refusals_name_the_folder(folders, tmp_path):
    with pytest.raises(ConfigError, match="no such tokenizer") as e:
        open_tokenizer(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(e.value)
    with pytest.raises(ConfigError, match="facebook/encodec_24khz: no such tokenizer"):
        open_tokenizer("facebook/encodec_24khz")  # a model id is not a folder: refused, never looked up
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=f"{tmp_path / 'empty'}: no config.json"):
        open_tokenizer(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        open_tokenizer(bad)
    (bad / "config.json").write_text('{"model_type": "wav2vec2"}')
    with pytest.raises(ConfigError, match=r"model_type 'wav2vec2' is not a supported codec; supported: dac, encodec, "
                                          "mimi, xcodec"):
        open_tokenizer(bad)
    shutil.copytree(folders["dac"], tmp_path / "noweights")
    (tmp_path / "noweights" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'noweights'}: no model.safetensors"):
        open_tokenizer(tmp_path / "noweights")
    tok = open_tokenizer(folders["mimi"])
    for n in (0, tok.n_codebooks + 1):
        with pytest.raises(ConfigError, match=f"{n} codebooks asked for; the codec has 4"):
            tok.encode(np.zeros(100, np.float32), codebooks=n)
    with pytest.raises(ConfigError, match="5 codebooks asked for"):
        VQTokens(folders["dac"], codebooks=5)
    with pytest.raises(ConfigError, match="no levels"):
        open_tokenizer(folders["dac"], level=0)


@pytest.mark.parametrize("name, frames_per_second, dim", [("encodec_24k", 75.0, 8), ("xcodec", 50.0, 24)])
def test_token_representation_and_its_encoder_file_block(folders, tmp_path, name, frames_per_second, dim):
    stored, beside = tmp_path / "stored" / name, tmp_path / "run" / name
    shutil.copytree(folders[name], stored)
    rep = VQTokens(stored, codebooks=2)
    y = _signal(12000, seed=5).numpy()
    ids = rep.encode(y)
    assert ids.shape == (rep.n_frames(len(y)), 2) and rep.frames_per_second == frames_per_second
    assert rep.config_dict()["checkpoint_sha1"] == _sha256(stored)
    assert rep.vectors(ids).shape == (len(ids), dim)
    block = rep.to_block()
    assert "model.safetensors" not in str(block) and block["codec"]["path"] == str(stored)
    source = tmp_path / "run" / "encoder.pt"
    again = VQTokens.from_block(block, source=str(source))  # the folder where it was
    np.testing.assert_array_equal(again.encode(y), ids)
    assert again.codebooks == 2
    (tmp_path / "run").mkdir()
    shutil.move(stored, beside)  # moved beside the encoder file
    np.testing.assert_array_equal(VQTokens.from_block(block, source=str(source)).encode(y), ids)
    shutil.rmtree(beside)
    with pytest.raises(CheckpointError, match="its tokenizer is missing"):
        VQTokens.from_block(block, source=str(source))
    _changed_copy(folders[name], beside)
    with pytest.raises(CheckpointError, match="different codec") as e:
        VQTokens.from_block(block, source=str(source))
    assert block["codec"]["sha256"] in str(e.value) and _sha256(beside) in str(e.value)


def test_extract_tokens_cli(folders, tmp_path, capsys):
    from mirformer.cli import main

    for name, seconds in (("a", 1.0), ("b", 0.5)):
        sf.write(tmp_path / f"{name}.wav", _signal(int(24000 * seconds), seed=6).numpy(), 24000, subtype="FLOAT")
    assert main(["extract", "tokens", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--tokenizer",
                 str(folders["mimi"]), "--codebooks", "2", "--out", str(tmp_path / "t")]) == 0
    assert "hop 1920 at 24000 Hz" in capsys.readouterr().out
    a, b = np.load(tmp_path / "t" / "a.npy"), np.load(tmp_path / "t" / "b.npy")
    assert a.shape == (13, 2) and b.shape == (7, 2) and a.dtype == np.int16
    y = load_audio(tmp_path / "a.wav", sr=24000)
    np.testing.assert_array_equal(a, open_tokenizer(folders["mimi"]).encode(y, codebooks=2))


def test_probe_invariance_cli_per_codebook(folders, tmp_path):
    """The thesis' invariance probe on a codec: agreement of all codebooks and of each alone."""
    import pandas as pd

    from mirformer.cli import main

    sf.write(tmp_path / "a.wav", _signal(24000, seed=7).numpy(), 24000, subtype="FLOAT")
    assert main(["probe-invariance", str(tmp_path / "a.wav"), "--tokenizer", str(folders["dac"]), "--codebooks", "2",
                 "--out", str(tmp_path / "p"), "--n-fft", "512", "--hop", "128", "--n-mels", "32"]) == 0
    df = pd.read_csv(tmp_path / "p" / "invariance.csv")
    both, first, second = df["token_agreement"], df["agreement_codebook_1"], df["agreement_codebook_2"]
    assert ((both <= first) & (both <= second)).all() and (both < 1).any()  # a codebook that differs counts
    assert df[df["transform"].str.contains("polarity")].iloc[0].mel_diff_db < 1e-3
