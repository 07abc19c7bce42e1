"""A pretrained Hugging Face audio encoder as a representation, on tiny random-weight models in the
real ``save_pretrained`` format: its frames are the model's own hidden states of the input its
feature extractor prepares, its frame counts the model's, long audio is encoded window by window,
its folders are refused clearly when wrong, and an encoder file refers to the folder by SHA-256."""

import io
import json
import shutil
import sys

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from helpers import tiny_ast, tiny_clap, tiny_hf_encoder, tiny_whisper
from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.base import parse_spec
from mirformer.representations.hf_encoder import HFEncoder, HFEncoderConfig
from mirformer.representations.hf_folders import DEFAULT_NORMALISE, DEFAULT_SAMPLE_RATE

FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
SR = 8000


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest.py)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One folder per family; wav2vec2 also with its pre-layer-norm variant (large-lv60's) and
    without normalisation (a preprocessor_config.json with do_normalize false)."""
    root = tmp_path_factory.mktemp("hf")
    made = {family: tiny_hf_encoder(root / family, family=family) for family in FAMILIES}
    made["wav2vec2-stable"] = tiny_hf_encoder(root / "wav2vec2-stable", do_stable_layer_norm=True,
                                              feat_extract_norm="layer")
    made["wav2vec2-raw"] = tiny_hf_encoder(root / "wav2vec2-raw", normalise=False, seed=1)
    return made


@pytest.fixture(scope="module")
def model_of():
    loaded = {}

    def model(folder):
        if folder not in loaded:
            loaded[folder] = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
        return loaded[folder]

    return model


def _signal(n: int, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(n) + 0.1).astype(np.float32)


def _encoder(folder, **settings) -> HFEncoder:
    return HFEncoder(HFEncoderConfig(path=str(folder), **settings))


@pytest.mark.parametrize("name", [*FAMILIES, "wav2vec2-stable", "wav2vec2-raw"])
def test_frames_are_the_models_hidden_states_of_its_feature_extractors_input(folders, model_of, name):
    y = _signal(4321)
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folders[name], local_files_only=True)
    x = extractor(y, sampling_rate=SR, return_tensors="pt").input_values
    with torch.no_grad():
        states = model_of(folders[name])(x, output_hidden_states=True).hidden_states
    assert len(states) == 3
    for layer in (0, 1, 2, -1, -3):
        rep = _encoder(folders[name], layer=layer)
        np.testing.assert_array_equal(rep.encode(y), states[layer][0].numpy())


def test_a_folder_without_preprocessor_config_reads_as_the_feature_extractors_defaults(folders, tmp_path):
    extractor = transformers.Wav2Vec2FeatureExtractor()
    assert (extractor.sampling_rate, extractor.do_normalize) == (DEFAULT_SAMPLE_RATE, DEFAULT_NORMALISE)
    bare = shutil.copytree(folders["wav2vec2"], tmp_path / "bare")
    (bare / "preprocessor_config.json").unlink()
    rep = _encoder(bare)
    assert rep.sample_rate == 16000 and rep.frames_per_second == 16000 / 20
    assert rep.config_dict() != _encoder(folders["wav2vec2"]).config_dict()  # the rate is in the store key


def test_frame_counts_and_times_for_many_lengths(folders, model_of):
    rep = _encoder(folders["hubert"])
    model = model_of(folders["hubert"])
    assert (rep.folder.hop, rep.folder.field, rep.frames_per_second) == (20, 40, 400.0)
    assert HFEncoder.frame_rate(rep.config) == 400.0
    for n in (0, 1, 9, 10, 39, 40, 41, 59, 60, 61, 79, 80, 81, 137, 1000, 1001, 2019, 2020, 2021):
        frames = rep.encode(_signal(n))
        assert frames.shape == (rep.n_frames(n), 16) and frames.dtype == np.float32
        if n >= rep.folder.field:
            assert rep.n_frames(n) == int(model._get_feat_extract_output_lengths(n))
    assert rep.n_frames(39) == 0 and rep.n_frames(40) == 1
    # Frame t sees samples [20 t, 20 t + 40): its centre is 20 t + 20.
    np.testing.assert_allclose(rep.times(3), np.array([20, 40, 60]) / SR)


def test_long_audio_is_encoded_in_windows_and_short_audio_in_one_pass(folders):
    one_pass = _encoder(folders["wavlm"])
    windowed = _encoder(folders["wavlm"], max_seconds=0.1024)  # rounded down to 800 samples, 40 hops
    assert windowed.window == 800 and one_pass.window == 240000
    short = _signal(777)
    np.testing.assert_array_equal(windowed.encode(short), one_pass.encode(short))
    for n in (800, 801, 839, 840, 1600, 2345):
        y = _signal(n, seed=n)
        want = np.concatenate([one_pass.encode(y[a:a + 800]) for a in range(0, n, 800)])
        got = windowed.encode(y)
        np.testing.assert_array_equal(got, want)
        assert len(got) == windowed.n_frames(n) == len(windowed.times(len(got)))
    times = windowed.times(windowed.n_frames(2345))  # 39 frames per window, on the one-pass grid
    assert np.all(np.diff(times) > 0) and times[39] == (800 + 20) / SR
    streamed = np.concatenate(list(windowed.encode_stream(lambda: iter([y[:5], y[5:1700], y[1700:]]))))
    np.testing.assert_array_equal(streamed, windowed.encode(y))


def test_the_layer_chooses_the_hidden_state_and_the_store_key(folders):
    reps = {layer: _encoder(folders["wav2vec2"], layer=layer) for layer in (0, 1, 2, -1)}
    y = _signal(3000)
    frames = {layer: rep.encode(y) for layer, rep in reps.items()}
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    np.testing.assert_array_equal(frames[-1], frames[2])
    keys = {layer: json.dumps(rep.config_dict(), sort_keys=True) for layer, rep in reps.items()}
    assert len({keys[0], keys[1], keys[2]}) == 3 and keys[-1] == keys[2]


def _changed_copy(folder, to):
    shutil.copytree(folder, to)
    weights = load_file(to / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-3
    save_file(weights, to / "model.safetensors", metadata={"format": "pt"})
    return to


def test_the_store_key_follows_the_weights_not_the_path(folders, tmp_path):
    key = _encoder(folders["wav2vec2"]).config_dict()
    assert _encoder(shutil.copytree(folders["wav2vec2"], tmp_path / "moved")).config_dict() == key
    changed = _encoder(_changed_copy(folders["wav2vec2"], tmp_path / "changed")).config_dict()
    assert changed["sha256"] != key["sha256"]
    assert _encoder(folders["wav2vec2"], max_seconds=1.0).config_dict() != key  # windows change long audio
    assert HFEncoder(HFEncoderConfig(path=str(folders["wav2vec2"])), dtype="float16").config_dict() != key


def test_refusals_name_the_folder_before_loading(folders, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("weights read before the folder was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", never)
    refusals = []

    def refused(error, match, **settings):
        with pytest.raises(error, match=match):
            HFEncoder.check_config(HFEncoderConfig(**settings))
        refusals.append(settings)

    refused(ConfigError, "hf_encoder.path is not set")
    refused(ConfigError, "facebook/wav2vec2-base: no such folder.*model id.*never downloads",
            path="facebook/wav2vec2-base")
    refused(ConfigError, f"{tmp_path / 'nowhere'}: no such folder\\.$", path=str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(ConfigError, f"{empty}: no config.json", path=str(empty))
    no_weights = shutil.copytree(folders["wav2vec2"], tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    refused(CheckpointError, f"{no_weights}: no model.safetensors", path=str(no_weights))
    for layer in (3, -4):
        refused(ConfigError, f"{folders['wav2vec2']}: hf_encoder.layer={layer} does not exist.*3 hidden states",
                path=str(folders["wav2vec2"]), layer=layer)
    refused(ConfigError, "shorter than one frame", path=str(folders["wav2vec2"]), max_seconds=0.001)
    remote = shutil.copytree(folders["wav2vec2"], tmp_path / "remote")
    config = json.loads((remote / "config.json").read_text())
    config.update(model_type="mert_model", auto_map={"AutoModel": "modeling_MERT.MERTModel"})
    (remote / "config.json").write_text(json.dumps(config))
    refused(ConfigError, f"{remote}: its config.json names its own code.*hf_encoder.trust_remote_code=true",
            path=str(remote))
    codec = tmp_path / "codec"
    codec.mkdir()
    (codec / "config.json").write_text(json.dumps({"model_type": "encodec"}))
    refused(ConfigError, f"{codec}: model_type 'encodec' is not a supported encoder", path=str(codec))
    whisper = tmp_path / "whisper"
    whisper.mkdir()
    (whisper / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    refused(ConfigError, f"{whisper}: a Whisper folder's input is its WhisperFeatureExtractor's.*there is none",
            path=str(whisper))
    with pytest.raises(ConfigError, match="layer must be an integer"):
        HFEncoderConfig(path=str(folders["wav2vec2"]), layer="last")
    assert len(refusals) == 11


def _remote_folder(folder, to):
    """``folder`` as a folder with its own code: a config and model class of its own (as MERT's)."""
    shutil.copytree(folder, to)
    (to / "configuration_toy.py").write_text(
        "from transformers import Wav2Vec2Config\n\n\nclass ToyConfig(Wav2Vec2Config):\n    model_type = 'toy'\n")
    (to / "modeling_toy.py").write_text(
        "from transformers import Wav2Vec2Model\n\nfrom .configuration_toy import ToyConfig\n\n\n"
        "class ToyModel(Wav2Vec2Model):\n    config_class = ToyConfig\n")
    config = json.loads((to / "config.json").read_text())
    config.update(model_type="toy", architectures=["ToyModel"],
                  auto_map={"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModel"})
    (to / "config.json").write_text(json.dumps(config))
    return to


def test_a_folder_with_its_own_code_loads_only_when_trusted(folders, tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # not the user's cache
    monkeypatch.setattr(sys, "path", list(sys.path))
    remote = _remote_folder(folders["wav2vec2"], tmp_path / "toy")
    with pytest.raises(ConfigError, match="trust_remote_code"):
        _encoder(remote)
    rep = _encoder(remote, trust_remote_code=True)
    assert type(rep.model).__name__ == "ToyModel"
    y = _signal(2000)
    np.testing.assert_array_equal(rep.encode(y), _encoder(folders["wav2vec2"]).encode(y))
    plain = _encoder(folders["wav2vec2"]).config_dict()["sha256"]
    assert rep.identity != plain  # its code is part of its identity
    (remote / "modeling_toy.py").write_text((remote / "modeling_toy.py").read_text() + "\n# changed\n")
    assert HFEncoder(HFEncoderConfig(path=str(remote), trust_remote_code=True)).identity != rep.identity


def _round_trip(block):
    buffer = io.BytesIO()
    torch.save(block, buffer)  # what an encoder file holds: read back with weights_only=True
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_the_encoder_file_refers_to_the_folder(folders, tmp_path):
    folder = shutil.copytree(folders["data2vec-audio"], tmp_path / "d2v")
    rep = _encoder(folder, layer=1, max_seconds=0.5)
    block = _round_trip(rep.to_block())
    assert set(block) == {"hf_encoder", "dtype"} and block["hf_encoder"]["sha256"] == rep.identity
    y = _signal(5000)
    again = HFEncoder.from_block(block, source=str(tmp_path / "run" / "encoder.pt"))
    assert again.config_dict() == rep.config_dict()
    np.testing.assert_array_equal(again.encode(y), rep.encode(y))
    # Moved beside the encoder file: found there by its name.
    (tmp_path / "run").mkdir()
    folder.rename(tmp_path / "run" / "d2v")
    beside = HFEncoder.from_block(block, source=str(tmp_path / "run" / "encoder.pt"))
    np.testing.assert_array_equal(beside.encode(y), rep.encode(y))
    with pytest.raises(CheckpointError, match="its pretrained encoder is missing.*beside the encoder file"):
        HFEncoder.from_block(block, source=str(tmp_path / "elsewhere" / "encoder.pt"))
    _changed_copy(tmp_path / "run" / "d2v", folder)
    shutil.rmtree(tmp_path / "run" / "d2v")
    with pytest.raises(CheckpointError, match=f"a different one: {folder} has SHA-256"):
        HFEncoder.from_block(block, source=str(tmp_path / "run" / "encoder.pt"))


def test_the_report_names_model_layer_width_and_rate(folders):
    rep = _encoder(folders["wavlm"], layer=-1)
    about = {**rep.about(), "window_frames": 400}
    text = "\n".join(HFEncoder.report_lines(about))
    assert "the output of layer 2 (of 2 layers) of the frozen WavLM encoder" in text
    assert f"SHA-256 `{rep.identity[:12]}`" in text and "16 values per frame" in text
    assert "hop 20 at 8000 Hz (400.0 frames/s" in text and "training windows of 400 frames" in text
    assert "longer than 30 s is encoded in consecutive 30 s pieces" in text
    assert "its transformer's input" in "\n".join(HFEncoder.report_lines({**about, "layer": 0}))


def test_layer_all_stacks_every_hidden_state_input_first_in_one_pass_and_in_windows(folders):
    # The same forward pass gives every hidden state whichever a frame keeps, so the stacked
    # frames equal the single layers' to the bit.
    for name in ("wav2vec2", "hubert"):
        every = _encoder(folders[name], layer="all", max_seconds=0.1024)  # windows of 800 samples
        single = [_encoder(folders[name], layer=layer, max_seconds=0.1024) for layer in range(3)]
        assert (every.layers, every.dim, every.layer) == (3, 3 * 16, "all")
        assert all((rep.layers, rep.dim) == (1, 16) for rep in single)
        for n in (0, 39, 40, 777, 800, 2345):  # 2345: three windows, the last one partial
            y = _signal(n, seed=n)
            frames = every.encode(y)
            assert frames.shape == (every.n_frames(n), 48) and frames.dtype == np.float32
            for layer, rep in enumerate(single):
                np.testing.assert_array_equal(frames[:, layer * 16:(layer + 1) * 16], rep.encode(y))
        streamed = np.concatenate(list(every.encode_stream(lambda: iter([y[:5], y[5:1700], y[1700:]]))))
        np.testing.assert_array_equal(streamed, every.encode(y))


def test_layer_all_has_its_own_store_key_encoder_file_and_report(folders, tmp_path):
    every = _encoder(folders["wavlm"], layer="all")
    keys = {json.dumps(_encoder(folders["wavlm"], layer=layer).config_dict(), sort_keys=True) for layer in range(3)}
    assert every.config_dict()["layer"] == "all" and json.dumps(every.config_dict(), sort_keys=True) not in keys
    block = _round_trip(every.to_block())
    assert block["hf_encoder"]["layer"] == "all"
    again = HFEncoder.from_block(block, source=str(tmp_path / "encoder.pt"))
    assert again.config_dict() == every.config_dict() and (again.layers, again.dim) == (3, 48)
    y = _signal(3000)
    np.testing.assert_array_equal(again.encode(y), every.encode(y))
    text = "\n".join(HFEncoder.report_lines(every.about()))
    assert "every hidden state (2 layers + the input) of the frozen WavLM encoder" in text
    assert "3 x 16 = 48 values per frame" in text


@pytest.mark.parametrize("layer", ["last", "ALL", "", True, 1.0, None])
def test_a_layer_other_than_an_integer_or_all_is_refused(folders, layer):
    with pytest.raises(ConfigError, match=r"layer must be an integer or 'all' \(every hidden state\), got"):
        HFEncoderConfig(path=str(folders["wav2vec2"]), layer=layer)


def test_a_spec_names_the_folder_and_its_settings(folders):
    folder = str(folders["wav2vec2"])
    cls, config = parse_spec(f"hf:{folder},layer=all")
    assert cls is HFEncoder and config == HFEncoderConfig(path=folder, layer="all")
    _, config = parse_spec(f"hf:{folder},layer=1,max_seconds=0.5,trust_remote_code=false")
    assert config == HFEncoderConfig(path=folder, layer=1, max_seconds=0.5)
    assert HFEncoder.from_config(config).layers == 1
    with pytest.raises(ConfigError, match="layer must be an integer or 'all'"):
        parse_spec(f"hf:{folder},layer=last")


# ---- spectrogram-input encoders: Whisper and AST ----------------------------------------------------
@pytest.fixture(scope="module")
def spectrogram_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-spectrogram")
    return {"whisper": tiny_whisper(root / "whisper"), "ast": tiny_ast(root / "ast")}


def _reference(folder, model_of, y):
    """Every hidden state's frames as the model gives them for its own extractor's input (the
    real audio's frames only), computed here without mirformer: Whisper's encoder frames centred in
    the audio (one per 320 samples); AST's patch tokens (after CLS and distillation, band by band)
    averaged over each time column starting within the audio's fbank frames (one per 10)."""
    model = model_of(folder)
    if model.config.model_type == "whisper":
        extractor = transformers.WhisperFeatureExtractor.from_pretrained(folder, local_files_only=True)
        x = extractor(y, sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            states = model.encoder(x, output_hidden_states=True).hidden_states
        return [s[0, :-(-len(y) // 320)].numpy() for s in states]
    extractor = transformers.ASTFeatureExtractor.from_pretrained(folder, local_files_only=True)
    x = extractor(y, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        states = model(x, output_hidden_states=True).hidden_states
    fbank = 1 + (len(y) - 400) // 160
    columns = min(5, -(-fbank // 10))
    return [np.stack([np.mean([s[0, 2 + band * 5 + column].numpy() for band in range(2)], axis=0)
                      for column in range(columns)]) for s in states]


@pytest.mark.parametrize("name, sr, lengths", [
    ("whisper", 16000, (1, 319, 320, 321, 2000, 15999, 16000)),
    ("ast", 16000, (400, 1599, 1600, 1601, 3000, 4799, 4800, 8000)),
])
def test_spectrogram_encoders_frames_are_the_models_hidden_states_of_its_extractors_input(
        spectrogram_folders, model_of, name, sr, lengths):
    folder = spectrogram_folders[name]
    reps = {layer: _encoder(folder, layer=layer) for layer in (0, 1, 2, -1, "all")}
    assert reps[0].sample_rate == sr and reps["all"].dim == 48
    for n in lengths:
        y = _signal(n, seed=n) * 0.5
        want = _reference(folder, model_of, y)
        assert len(want) == 3 and len(want[0]) == reps[0].n_frames(n) > 0
        for layer, rep in reps.items():
            got = rep.encode(y)
            assert got.shape == (rep.n_frames(n), rep.dim) and got.dtype == np.float32
            # The same pass over the same input: equal to the bit.
            np.testing.assert_array_equal(got, (
                np.concatenate(want, axis=1) if layer == "all" else want[layer]))


def test_spectrogram_encoders_frame_counts_rates_and_times(spectrogram_folders):
    whisper, ast = _encoder(spectrogram_folders["whisper"]), _encoder(spectrogram_folders["ast"])
    # Whisper: two mel hops of 160 per frame, frame t centred on sample 320 t; one 1 s chunk a pass.
    assert (whisper.frames_per_second, whisper.window, HFEncoder.frame_rate(whisper.config)) == (50.0, 16000, 50.0)
    assert [whisper.n_frames(n) for n in (0, 1, 320, 321, 16000, 16001, 32000)] == [0, 1, 1, 2, 50, 51, 100]
    np.testing.assert_allclose(whisper.times(52)[[0, 1, 49, 50, 51]], [0, 0.02, 0.98, 1.0, 1.02])
    # AST: a column per 10 fbank frames (1600 samples), each seeing 16 frames: centred on 1600 t + 1400;
    # its 5 columns cover 0.5 s, the longest pass.
    assert (ast.frames_per_second, ast.window, HFEncoder.frame_rate(ast.config)) == (10.0, 8000, 10.0)
    assert [ast.n_frames(n) for n in (0, 399, 400, 1599, 1600, 1999, 2000, 3200, 8000, 8399, 8400)] == \
        [0, 0, 1, 1, 1, 1, 2, 2, 5, 5, 6]  # 8400: a full window and 400 samples more
    np.testing.assert_allclose(ast.times(6), (1400 + 1600 * np.arange(6)) / 16000)
    for rep in (whisper, ast):
        assert rep.encode(np.zeros(0, np.float32)).shape == (0, 16)


@pytest.mark.parametrize("name", ["whisper", "ast"])
def test_spectrogram_encoders_window_long_audio_and_stream_it(spectrogram_folders, name):
    folder = spectrogram_folders[name]
    one_pass = _encoder(folder, layer="all")
    windowed = _encoder(folder, layer="all", max_seconds=0.3)  # 4800 samples: 15 hops, 3 hops
    single = [_encoder(folder, layer=layer, max_seconds=0.3) for layer in range(3)]
    window = windowed.window
    assert window == 4800
    y = _signal(5 * window // 2 + 37, seed=3)
    want = np.concatenate([one_pass.encode(y[a:a + window]) for a in range(0, len(y), window)])
    got = windowed.encode(y)
    np.testing.assert_array_equal(got, want)
    assert len(got) == windowed.n_frames(len(y)) and np.all(np.diff(windowed.times(len(got))) > 0)
    for layer, rep in enumerate(single):
        np.testing.assert_array_equal(got[:, layer * 16:(layer + 1) * 16], rep.encode(y))
    streamed = np.concatenate(list(windowed.encode_stream(lambda: iter([y[:5], y[5:window + 99], y[window + 99:]]))))
    np.testing.assert_array_equal(streamed, got)
    # Longer than the model reads in one pass: the window stops at its fixed input.
    assert _encoder(folder, max_seconds=30.0).window == {"whisper": 16000, "ast": 8000}[name]


def test_whispers_dither_is_off_so_frames_repeat(spectrogram_folders, tmp_path):
    noisy = shutil.copytree(spectrogram_folders["whisper"], tmp_path / "noisy")
    pre = json.loads((noisy / "preprocessor_config.json").read_text())
    (noisy / "preprocessor_config.json").write_text(json.dumps({**pre, "dither": 1.0}))
    y = _signal(3000)
    rep = _encoder(noisy)
    np.testing.assert_array_equal(rep.encode(y), rep.encode(y))
    np.testing.assert_array_equal(rep.encode(y), _encoder(spectrogram_folders["whisper"]).encode(y))


def test_spectrogram_folders_are_refused_before_loading_when_their_input_does_not_fit(
        spectrogram_folders, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("weights read before the folder was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", never)

    def changed(name, **settings):
        folder = shutil.copytree(spectrogram_folders[name], tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}")
        pre = json.loads((folder / "preprocessor_config.json").read_text())
        (folder / "preprocessor_config.json").write_text(json.dumps({**pre, **settings}))
        return HFEncoderConfig(path=str(folder))

    with pytest.raises(ConfigError, match="reads 8000 Hz; AST's fbank frames .* only at 16000 Hz"):
        HFEncoder.check_config(changed("ast", sampling_rate=8000))
    with pytest.raises(ConfigError, match="ASTFeatureExtractor gives 32 mel bins x 128 frames; the model reads 32 x"):
        HFEncoder.check_config(changed("ast", max_length=128))
    with pytest.raises(ConfigError, match="WhisperFeatureExtractor gives 80 mel bins x 100 frames; its encoder reads"):
        HFEncoder.check_config(changed("whisper", feature_size=80))
    with pytest.raises(ConfigError, match="input is its WhisperFeatureExtractor's.*it names Wav2Vec2FeatureExtractor"):
        HFEncoder.check_config(changed("whisper", feature_extractor_type="Wav2Vec2FeatureExtractor"))
    with pytest.raises(ConfigError, match="max_seconds=0.01 is shorter than one frame's input"):
        HFEncoder.check_config(HFEncoderConfig(path=str(spectrogram_folders["ast"]), max_seconds=0.01))


def test_spectrogram_encoders_store_key_encoder_file_and_report(spectrogram_folders, tmp_path):
    folder = shutil.copytree(spectrogram_folders["ast"], tmp_path / "ast")
    rep = _encoder(folder, layer="all")
    block = _round_trip(rep.to_block())
    again = HFEncoder.from_block(block, source=str(tmp_path / "encoder.pt"))
    y = _signal(6000)
    assert again.config_dict() == rep.config_dict()
    np.testing.assert_array_equal(again.encode(y), rep.encode(y))
    text = "\n".join(HFEncoder.report_lines(rep.about()))
    assert "every hidden state (2 layers + the input) of the frozen AST encoder" in text
    assert "hop 1600 at 16000 Hz (10.0 frames/s, its input prepared by its ASTFeatureExtractor)" in text
    # The extractor's settings are not in the weights' SHA-256: they key the store and the file apart.
    pre = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**pre, "mean": 0.0}))
    assert _encoder(folder, layer="all").config_dict() != rep.config_dict()
    with pytest.raises(CheckpointError, match="a different one: .* preprocessor_config.json"):
        HFEncoder.from_block(block, source=str(tmp_path / "encoder.pt"))


# ---- CLAP's audio tower ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clap_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-clap")
    return {"unfused": tiny_clap(root / "unfused"), "fused": tiny_clap(root / "fused", fusion=True)}


@pytest.mark.parametrize("name", ["unfused", "fused"])
def test_clap_frames_are_the_audio_towers_pooled_output_one_per_window(clap_folders, model_of, name):
    folder = clap_folders[name]
    extractor = transformers.ClapFeatureExtractor.from_pretrained(folder, local_files_only=True)
    tower = model_of(folder).audio_model

    def pooled(y):
        inputs = extractor(y, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            return tower(input_features=inputs.input_features.float(), is_longer=inputs.is_longer).pooler_output[0]

    one_pass, windowed = _encoder(folder), _encoder(folder, max_seconds=0.25)
    assert (one_pass.window, one_pass.frames_per_second, one_pass.dim) == (16000, 1.0, 16)  # at most 1 s a pass
    assert (windowed.window, windowed.frames_per_second, HFEncoder.frame_rate(windowed.config)) == (4000, 4.0, 4.0)
    short = _signal(7000)
    np.testing.assert_array_equal(one_pass.encode(short), pooled(short).numpy()[None])
    y = _signal(10000, seed=1)  # 4000 + 4000 + 2000: the last window repeated to fill its pass
    generator = np.random.get_state()
    got = windowed.encode(y)
    after = np.random.get_state()  # the extractor drew nothing from NumPy's global generator
    np.testing.assert_array_equal(after[1], generator[1])
    assert after[2] == generator[2]
    np.testing.assert_array_equal(got, np.stack([pooled(y[a:a + 4000]).numpy() for a in (0, 4000, 8000)]))
    assert [windowed.n_frames(n) for n in (0, 1, 4000, 4001, 10000)] == [0, 1, 1, 2, 3]
    np.testing.assert_allclose(windowed.times(3), [0.125, 0.375, 0.625])  # each window's centre
    streamed = np.concatenate(list(windowed.encode_stream(lambda: iter([y[:5], y[5:6100], y[6100:]]))))
    np.testing.assert_array_equal(streamed, got)
    text = "\n".join(HFEncoder.report_lines(windowed.about()))
    assert "the audio tower's pooled output, one per window, of the frozen CLAP encoder" in text
    assert "16 values per frame, hop 4000 at 16000 Hz (4.0 frames/s, its input prepared by its ClapFeatureExtractor)" \
        in text


def test_clap_folders_are_refused_when_their_layer_or_input_does_not_fit(clap_folders, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("weights read before the folder was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", never)
    folder = str(clap_folders["unfused"])
    for layer in (0, 1, "all"):
        with pytest.raises(ConfigError, match=f"pooled output, one per window: hf_encoder.layer must be -1.*{layer!r}"):
            HFEncoder.check_config(HFEncoderConfig(path=folder, layer=layer))
    fusion = r"prepares fusion input .*, which its audio tower \(enable_fusion false\)"
    for settings, match in (({"truncation": "fusion"}, fusion),
                            ({"feature_size": 32}, "gives 32 mel bins x 101 frames; its audio tower reads 16 x at most "
                                                   "256"),
                            ({"max_length_s": 3}, "gives 16 mel bins x 301 frames")):
        changed = shutil.copytree(folder, tmp_path / f"clap{len(list(tmp_path.iterdir()))}")
        pre = json.loads((changed / "preprocessor_config.json").read_text())
        (changed / "preprocessor_config.json").write_text(json.dumps({**pre, **settings}))
        with pytest.raises(ConfigError, match=f"{changed}: its ClapFeatureExtractor {match}"):
            HFEncoder.check_config(HFEncoderConfig(path=str(changed)))
