"""Hidden states of a pretrained audio encoder, frozen: a local Hugging Face ``transformers`` folder.

A folder is what ``save_pretrained`` writes and the model pages distribute: ``config.json``,
``model.safetensors`` and usually ``preprocessor_config.json`` (the input's sample rate and whether
each input is normalised). It is read offline (``local_files_only=True``, safetensors only);
mirformer never downloads, and a model id in place of a folder is refused.

Covered: raw-waveform encoders with a convolutional feature encoder, ``transformers``' own
wav2vec 2.0, HuBERT, WavLM and data2vec-audio, and, only with ``trust_remote_code``, a folder that
brings its own code in the same design (MERT). Spectrogram-input encoders (Whisper, AST) are not
covered. The input is prepared as the folder's ``Wav2Vec2FeatureExtractor`` does: with
``do_normalize``, each input is shifted and scaled to zero mean and unit variance.

Frames are ``hidden_states[layer]`` (``output_hidden_states=True``): layer 0 is the transformer's
input (the projected convolutional features plus the convolutional position embedding), layer
``num_hidden_layers`` (or -1) the last layer's output. One frame per ``hop`` samples (the
product of the convolution strides: 320 at 16 kHz, 50 frames/s, for wav2vec 2.0), each seeing a
receptive field of ``field`` samples (400); ``times`` gives that field's centre.

Long audio: the transformer attends over its whole input, so a signal up to ``max_seconds`` is
encoded in one pass, and a longer one in consecutive non-overlapping windows of ``max_seconds``
(rounded down to whole hops), each encoded (and normalised) alone. That is a windowed
approximation of one pass, as the HEAR and MARBLE harnesses encode long clips; it bounds memory
and keeps each window within the lengths the model was trained on.

An encoder file does not embed the weights (90 MB to 1.2 GB): it refers to the folder by path and
SHA-256, like a codec tokenizer (``tokenizers.codec``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError, MirformerError
from mirformer.representations.base import Layout, Representation, register_representation
from mirformer.representations.tokenizers.codec import WEIGHTS, folder_sha256

HF_ENCODER_VERSION = "1"
FAMILIES = {"wav2vec2": "wav2vec 2.0", "hubert": "HuBERT", "wavlm": "WavLM", "data2vec-audio": "data2vec-audio"}
DTYPES = ("float32", "float16")
# Wav2Vec2FeatureExtractor's defaults, for a folder without preprocessor_config.json.
DEFAULT_SAMPLE_RATE, DEFAULT_NORMALISE = 16000, True
_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # "owner/name", as the hub spells a model


@dataclass(frozen=True)
class HFEncoderConfig:
    """A pretrained encoder's hidden state as frames.

    Parameters
    ----------
    path : str
        A local folder with ``config.json`` and ``model.safetensors`` (and usually
        ``preprocessor_config.json``), as ``save_pretrained`` writes it; never a model id.
    layer : int
        Which hidden state: 0 the transformer's input, 1..L each layer's output, -1 the last
        (negative counts from the end, as Python indexes).
    max_seconds : float > 0
        Longest audio encoded in one pass; longer audio is encoded in non-overlapping windows of
        this length (rounded down to whole hops).
    trust_remote_code : bool
        Run the folder's own Python code (MERT and other models ``transformers`` does not
        ship); without it, such a folder is refused.
    """

    path: str = ""
    layer: int = -1
    max_seconds: float = 30.0
    trust_remote_code: bool = False

    def __post_init__(self):
        if not isinstance(self.layer, Integral) or isinstance(self.layer, bool):
            raise ConfigError(f"HFEncoderConfig.layer must be an integer, got {self.layer!r}")
        if not isinstance(self.max_seconds, Real) or isinstance(self.max_seconds, bool) or not self.max_seconds > 0:
            raise ConfigError(f"HFEncoderConfig.max_seconds must be > 0, got {self.max_seconds!r}")
        if not isinstance(self.trust_remote_code, bool):
            raise ConfigError(f"HFEncoderConfig.trust_remote_code must be true or false, "
                              f"got {self.trust_remote_code!r}")


@dataclass(frozen=True)
class EncoderFolder:
    """What a folder's JSON files say, read before any weights: its ``model_type``, whether it
    needs its own code (``remote``), its input's ``sample_rate`` (Hz) and normalisation, its
    ``hidden_size``, ``n_states`` hidden states (layers + 1), and its convolutions' kernels and
    strides (samples)."""

    path: Path
    model_type: str
    remote: bool
    sample_rate: int
    normalise: bool
    hidden_size: int
    n_states: int
    kernels: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def hop(self) -> int:
        """Samples between frames."""
        return math.prod(self.strides)

    @property
    def field(self) -> int:
        """Samples one frame sees through the convolutions (its receptive field)."""
        return 1 + sum((k - 1) * math.prod(self.strides[:i]) for i, k in enumerate(self.kernels))

    def frames(self, n_samples: int) -> int:
        """Frames of one pass over ``n_samples`` samples: each valid convolution in turn."""
        n = n_samples
        for k, s in zip(self.kernels, self.strides):
            if n < k:
                return 0
            n = (n - k) // s + 1
        return n

    def state(self, layer: int) -> int:
        """The index in [0, n_states) of hidden state ``layer`` (negative: from the end)."""
        if not -self.n_states <= layer < self.n_states:
            raise ConfigError(f"{self.path}: hf_encoder.layer={layer} does not exist: the model has "
                              f"{self.n_states} hidden states, 0..{self.n_states - 1} (or -1..-{self.n_states})")
        return layer % self.n_states

    def window(self, max_seconds: float) -> int:
        """Samples per encoded window: ``max_seconds`` rounded down to whole hops."""
        window = int(max_seconds * self.sample_rate) // self.hop * self.hop
        if window < self.field:
            raise ConfigError(f"{self.path}: hf_encoder.max_seconds={max_seconds:g} is shorter than one frame's "
                              f"{self.field} samples at {self.sample_rate} Hz")
        return window


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return value


def read_folder(config: HFEncoderConfig) -> EncoderFolder:
    """The encoder folder ``config`` names, from its JSON files alone; every refusal names the
    folder and comes before any weights are read."""
    if not config.path:
        raise ConfigError("hf_encoder.path is not set: give the folder of a Hugging Face audio encoder "
                          "(config.json + model.safetensors, as save_pretrained writes them)")
    folder = Path(config.path).expanduser()
    if not folder.exists():
        hint = (" It looks like a Hugging Face model id: mirformer reads local folders only and never downloads; "
                "save the model with save_pretrained, or download its model page's files, into a folder and give "
                "that folder's path." if _MODEL_ID.fullmatch(config.path) else "")
        raise ConfigError(f"{config.path}: no such folder.{hint}")
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder: an encoder folder holds config.json and {WEIGHTS}")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder}: no config.json: an encoder folder holds config.json and {WEIGHTS}, "
                          "as save_pretrained writes them")
    c = _json(folder / "config.json")
    model_type = c.get("model_type")
    remote = bool(c.get("auto_map"))  # the folder names its own classes: its Python files would run
    if remote and not config.trust_remote_code:
        raise ConfigError(f"{folder}: its config.json names its own code (auto_map {c['auto_map']}), which loading "
                          "would run; set hf_encoder.trust_remote_code=true only for a folder you trust")
    if not remote and model_type not in FAMILIES:
        raise ConfigError(f"{folder}: model_type {model_type!r} is not a supported encoder; supported: "
                          f"{', '.join(FAMILIES)} (or a folder with its own code, with hf_encoder.trust_remote_code)")
    kernels, strides = c.get("conv_kernel"), c.get("conv_stride")
    if not (kernels and strides and len(kernels) == len(strides)):
        raise ConfigError(f"{folder}: config.json gives no convolutional feature encoder (conv_kernel, conv_stride): "
                          "only raw-waveform encoders of the wav2vec 2.0 design are supported")
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}: the encoder's weights are read from safetensors only "
                              "(download the whole folder of the model page)")
    pre = _json(folder / "preprocessor_config.json") if (folder / "preprocessor_config.json").is_file() else {}
    extractor = pre.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
    if extractor != "Wav2Vec2FeatureExtractor":
        raise ConfigError(f"{folder}: its feature extractor is {extractor}; only raw-waveform input "
                          "(Wav2Vec2FeatureExtractor) is supported")
    found = EncoderFolder(path=folder, model_type=str(model_type), remote=remote,
                          sample_rate=int(pre.get("sampling_rate", DEFAULT_SAMPLE_RATE)),
                          normalise=bool(pre.get("do_normalize", DEFAULT_NORMALISE)),
                          hidden_size=int(c["hidden_size"]), n_states=int(c["num_hidden_layers"]) + 1,
                          kernels=tuple(map(int, kernels)), strides=tuple(map(int, strides)))
    found.state(config.layer)
    found.window(config.max_seconds)
    return found


def folder_identity(folder: EncoderFolder) -> str:
    """SHA-256 hex of the folder's ``config.json`` and weights, and, for a folder with its own
    code, of its Python files too (they run when it loads)."""
    digest = folder_sha256(folder.path)
    if not folder.remote:
        return digest
    h = hashlib.sha256(digest.encode())
    for code in sorted(folder.path.glob("*.py")):
        h.update(code.name.encode() + b"\0" + code.read_bytes())
    return h.hexdigest()


def _load_model(folder: EncoderFolder, *, trust_remote_code: bool) -> torch.nn.Module:
    """The folder's model on the CPU, in eval mode, frozen."""
    import transformers  # lazily: importing it takes seconds, and most runs read no pretrained encoder

    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar would break ours
    try:
        model = transformers.AutoModel.from_pretrained(folder.path, local_files_only=True, use_safetensors=True,
                                                       dtype=torch.float32, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        raise CheckpointError(f"{folder.path}: the encoder does not load: {e}") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return model.eval().requires_grad_(False)


@register_representation
class HFEncoder(Representation):
    """Hidden state ``config.layer`` of a frozen pretrained encoder: (frames, hidden_size) float32,
    one frame per ``hop`` samples at the folder's ``sample_rate``, stored as ``dtype``.

    Parameters
    ----------
    config : HFEncoderConfig
    dtype : {"float32", "float16"}
        How the feature store keeps the frames (computed in float32 either way).
    identity : str or None
        The folder's SHA-256 when already known (an encoder file's), else computed.
    """

    name, input_name, label, config_key, config_class = ("hf-encoder", "hf-encoder", "pretrained-encoder",
                                                         "hf_encoder", HFEncoderConfig)

    def __init__(self, config: HFEncoderConfig, *, dtype: str = "float32", identity: str | None = None):
        if dtype not in DTYPES:
            raise ConfigError(f"HFEncoder dtype must be one of {DTYPES}, got {dtype!r}")
        self.config, self.dtype = config, np.dtype(dtype)
        self.folder = read_folder(config)
        self.identity = identity or folder_identity(self.folder)
        self.state = self.folder.state(config.layer)
        self.window = self.folder.window(config.max_seconds)
        self.sample_rate = self.folder.sample_rate
        self.frames_per_second = self.sample_rate / self.folder.hop
        self.layout = Layout(dim=self.folder.hidden_size)
        self.model = _load_model(self.folder, trust_remote_code=config.trust_remote_code)

    # ---- from a comparison's config -----------------------------------------------------------
    @classmethod
    def default_config(cls) -> HFEncoderConfig:
        return HFEncoderConfig()

    @classmethod
    def check_config(cls, config: HFEncoderConfig) -> None:
        read_folder(config)

    @classmethod
    def frame_rate(cls, config: HFEncoderConfig) -> float:
        folder = read_folder(config)
        return folder.sample_rate / folder.hop

    @classmethod
    def from_config(cls, config: HFEncoderConfig, *, context=None, dtype: str = "float32") -> HFEncoder:
        return cls(config, dtype=dtype)

    def settings(self) -> HFEncoderConfig:
        return self.config

    def about(self) -> dict:
        f = self.folder
        return {"path": str(f.path), "sha256": self.identity, "model_type": f.model_type,
                "family": FAMILIES.get(f.model_type, f.model_type), "layer": self.state, "layers": f.n_states - 1,
                "hidden_size": f.hidden_size, "sample_rate": f.sample_rate, "hop_length": f.hop,
                "normalise": f.normalise, "max_seconds": self.window / f.sample_rate}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        """Which encoder, which hidden state, its width and rate."""
        a = about
        state = "its transformer's input" if a["layer"] == 0 else f"the output of layer {a['layer']}"
        windows = f", training windows of {a['window_frames']} frames" if a.get("window_frames") else ""
        normalised = ", each input normalised to zero mean and unit variance" if a["normalise"] else ""
        return ["## Pretrained encoder", "",
                f"The models read {state} (of {a['layers']} layers) of the frozen {a['family']} encoder "
                f"`{a['path']}` (SHA-256 `{a['sha256'][:12]}`): {a['hidden_size']} values per frame, hop "
                f"{a['hop_length']} at {a['sample_rate']} Hz ({a['sample_rate'] / a['hop_length']:.1f} frames/s"
                f"{normalised}){windows}. Audio longer than {a['max_seconds']:g} s is encoded in consecutive "
                f"{a['max_seconds']:g} s pieces, each alone (an approximation of one pass over the whole).", ""]

    # ---- encoding -----------------------------------------------------------------------------
    def config_dict(self) -> dict:
        # preprocessor_config.json is not in the SHA-256: its rate and normalisation are keyed apart.
        d = {"sha256": self.identity, "layer": self.state, "window": self.window, "sample_rate": self.sample_rate,
             "normalise": self.folder.normalise, "version": HF_ENCODER_VERSION}
        return d if self.dtype == np.float32 else {**d, "dtype": self.dtype.name}

    def _encode_window(self, y: np.ndarray) -> np.ndarray:
        """One pass over ``y`` (n,) float32, n <= window -> (frames(n), hidden_size) float32."""
        n = self.folder.frames(len(y))
        if n == 0:  # shorter than one receptive field: the convolutions would fail
            return np.zeros((0, self.dim), np.float32)
        if self.folder.normalise:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, to the bit
            y = (y - y.mean()) / np.sqrt(y.var() + 1e-7)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(y))[None], output_hidden_states=True)
        frames = out.hidden_states[self.state][0].float().numpy()
        if len(frames) != n:  # a folder's own code with a different feature encoder than its config says
            raise MirformerError(f"{self.folder.path}: {len(frames)} frames for {len(y)} samples; its config's "
                                 f"convolutions give {n}")
        return frames

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> (n_frames(n), hidden_size) float32: one pass up to
        ``window`` samples, else one pass per consecutive window."""
        y = np.asarray(y, np.float32)
        parts = [self._encode_window(y[a:a + self.window]) for a in range(0, len(y), self.window)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        """``encode`` of the whole, window by window (holding one window of audio)."""
        held, n, given = [], 0, False
        for block in blocks():
            held.append(np.asarray(block, np.float32))
            n += len(held[-1])
            while n >= self.window:
                y = np.concatenate(held)
                yield self._encode_window(y[: self.window])
                held, n, given = [y[self.window:]], n - self.window, True
        if n or not given:
            yield self._encode_window(np.concatenate(held) if held else np.zeros(0, np.float32))

    def n_frames(self, n_samples: int) -> int:
        full, rest = divmod(n_samples, self.window)
        return full * self.folder.frames(self.window) + self.folder.frames(rest)

    def times(self, n_frames: int) -> np.ndarray:
        """Centre of each frame's receptive field in seconds [shape=(n_frames,)], windows placed
        end to end."""
        i = np.arange(n_frames)
        window, frame = np.divmod(i, self.folder.frames(self.window))
        return (window * self.window + frame * self.folder.hop + self.folder.field / 2) / self.sample_rate

    # ---- the encoder file ---------------------------------------------------------------------
    def to_block(self) -> dict:
        """A reference to the folder (path, SHA-256, what it was read with), not the weights."""
        c = self.config
        return {"hf_encoder": {"path": str(self.folder.path.resolve()), "sha256": self.identity,
                               "model_type": self.folder.model_type, "layer": c.layer,
                               "max_seconds": float(c.max_seconds), "trust_remote_code": c.trust_remote_code,
                               "sample_rate": self.sample_rate, "normalise": self.folder.normalise},
                "dtype": self.dtype.name}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> HFEncoder:
        """The encoder an encoder file at ``source`` refers to: its folder at the stored path or,
        if that is missing, a folder of the same name beside the encoder file, with the stored
        SHA-256 and input settings."""
        info = block["hf_encoder"]
        stored, expected = Path(info["path"]), info["sha256"]
        beside = Path(source).parent / stored.name
        wanted = (f"the {info['model_type']} encoder folder {stored} (SHA-256 {expected}); put that folder at {stored} "
                  f"or beside the encoder file as {beside}")
        found = [f for f in dict.fromkeys([stored, beside]) if f.is_dir()]
        if not found:
            raise CheckpointError(f"{source}: its pretrained encoder is missing: {wanted}")
        seen = []
        for path in found:
            config = HFEncoderConfig(path=str(path), layer=info["layer"], max_seconds=info["max_seconds"],
                                     trust_remote_code=info["trust_remote_code"])
            folder = read_folder(config)
            identity = folder_identity(folder)
            if identity == expected and (folder.sample_rate, folder.normalise) == (info["sample_rate"],
                                                                                   info["normalise"]):
                return cls(config, dtype=block["dtype"], identity=identity)
            seen.append(f"{path} has SHA-256 {identity}, {folder.sample_rate} Hz, normalise {folder.normalise}")
        raise CheckpointError(f"{source}: its pretrained encoder is a different one: {'; '.join(seen)}; the encoder "
                              f"was trained with {wanted}, {info['sample_rate']} Hz, normalise {info['normalise']}")
