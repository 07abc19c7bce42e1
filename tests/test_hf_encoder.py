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

from helpers import tiny_hf_encoder
from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.hf_encoder import DEFAULT_NORMALISE, DEFAULT_SAMPLE_RATE, HFEncoder, HFEncoderConfig

FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
SR = 8000


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight over a shared machine's cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    whisper = tmp_path / "whisper"
    whisper.mkdir()
    (whisper / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    refused(ConfigError, f"{whisper}: model_type 'whisper' is not a supported encoder", path=str(whisper))
    with pytest.raises(ConfigError, match="layer must be an integer"):
        HFEncoderConfig(path=str(folders["wav2vec2"]), layer="last")
    assert len(refusals) == 10


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
