"""What a local Hugging Face audio encoder folder holds, read before any weights are: its family,
how its input is prepared (sample rate, normalisation, a spectrogram extractor's settings), its
frame geometry (hop, receptive field, frames per pass) and how many hidden states it gives; and
how the model is loaded from it, offline. ``hf_encoder`` turns a folder into frames."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import ClassVar
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError, MirformerError
from mirformer.representations.tokenizers.codec import WEIGHTS, folder_sha256

HF_ENCODER_VERSION = "1"
FAMILIES = {"wav2vec2": "wav2vec 2.0", "hubert": "HuBERT", "wavlm": "WavLM", "data2vec-audio": "data2vec-audio",
            "whisper": "Whisper", "audio-spectrogram-transformer": "AST", "clap": "CLAP"}
DTYPES = ("float32", "float16")
ALL = "all"  # HFEncoderConfig.layer: every hidden state
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
    layer : int or "all"
        Which hidden state: 0 the transformer's input, 1..L each layer's output, -1 the last
        (negative counts from the end, as Python indexes); ``"all"``: every one, stacked in a
        frame in that order (0 first). CLAP: -1 only (its pooled output).
    max_seconds : float > 0
        Longest audio encoded in one pass; longer audio is encoded in non-overlapping windows of
        this length (rounded down to whole hops; at most the input a fixed-input model reads).
    trust_remote_code : bool
        Run the folder's own Python code (MERT and other models ``transformers`` does not
        ship); without it, such a folder is refused.
    """

    path: str = ""
    layer: int | str = -1
    max_seconds: float = 30.0
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.layer != ALL and (not isinstance(self.layer, Integral) or isinstance(self.layer, bool)):
            raise ConfigError(f"HFEncoderConfig.layer must be an integer or {ALL!r} (every hidden state), "
                              f"got {self.layer!r}")
        if not isinstance(self.max_seconds, Real) or isinstance(self.max_seconds, bool) or not self.max_seconds > 0:
            raise ConfigError(f"HFEncoderConfig.max_seconds must be > 0, got {self.max_seconds!r}")
        if not isinstance(self.trust_remote_code, bool):
            raise ConfigError(f"HFEncoderConfig.trust_remote_code must be true or false, "
                              f"got {self.trust_remote_code!r}")




@dataclass(frozen=True)
class EncoderFolder:
    """What a folder's JSON files say, read before any weights: its ``model_type``, whether it
    needs its own code (``remote``), its input's ``sample_rate`` (Hz), its ``hidden_size`` and
    ``n_states`` hidden states (layers + 1). Each kind of encoder adds how it frames its input."""

    path: Path
    model_type: str
    remote: bool
    sample_rate: int
    hidden_size: int
    n_states: int

    extractor_class: ClassVar[str] = ""  # the transformers feature extractor it reads its input with ("": none)
    pooled: ClassVar[bool] = False  # one pooled vector per pass, not hidden states over time

    # What a kind of encoder implements: its hop and the frames of one pass, ...
    @property
    def hop(self) -> int:
        """Samples between frames."""
        raise NotImplementedError

    def frames(self, n_samples: int) -> int:
        """Frames of one pass over ``n_samples`` samples (at most ``longest``)."""
        raise NotImplementedError

    @property
    def offset(self) -> float:
        """Samples from a pass's start to its first frame's centre."""
        raise NotImplementedError

    @property
    def longest(self) -> int | None:
        """Most samples one pass reads (None: no limit but memory)."""
        return None

    @property
    def inputs(self) -> dict:
        """How the input is prepared, beyond the weights (keyed and checked apart from the SHA-256)."""
        raise NotImplementedError

    def hidden_states(self, model: torch.nn.Module, extractor, y: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Every hidden state of one pass over ``y`` (n,) float32: ``n_states`` tensors
        (frames(n), hidden_size)."""
        raise NotImplementedError

    # ... and, if it needs them, its feature extractor and the part of the model that encodes.
    def extractor(self):
        """The folder's ``transformers`` feature extractor, or None when the waveform is read as is."""
        return None

    def encoder(self, model: torch.nn.Module) -> torch.nn.Module:
        """The part of the loaded model that encodes audio."""
        return model

    def states(self, layer: int | str) -> tuple[int, ...]:
        """The indices in [0, n_states) of hidden state ``layer`` (negative: from the end), or of
        every one for ``"all"``."""
        if layer == ALL:
            return tuple(range(self.n_states))
        if not -self.n_states <= layer < self.n_states:
            raise ConfigError(f"{self.path}: hf_encoder.layer={layer} does not exist: the model has "
                              f"{self.n_states} hidden states, 0..{self.n_states - 1} (or -1..-{self.n_states}), "
                              f"or {ALL!r}")
        return (layer % self.n_states,)

    def window(self, max_seconds: float) -> int:
        """Samples per encoded window: ``max_seconds``, at most ``longest``, rounded down to whole hops."""
        longest = int(max_seconds * self.sample_rate)
        window = (longest if self.longest is None else min(longest, self.longest)) // self.hop * self.hop
        if self.frames(window) == 0:
            raise ConfigError(f"{self.path}: hf_encoder.max_seconds={max_seconds:g} is shorter than one frame's "
                              f"input at {self.sample_rate} Hz")
        return window


@dataclass(frozen=True)
class WaveformFolder(EncoderFolder):
    """A raw-waveform encoder's folder: also whether each input is normalised, and its
    convolutions' kernels and strides (samples)."""

    normalise: bool
    kernels: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def field(self) -> int:
        """Samples one frame sees through the convolutions (its receptive field)."""
        return 1 + sum((k - 1) * math.prod(self.strides[:i]) for i, k in enumerate(self.kernels))

    @property
    def offset(self) -> float:
        return self.field / 2

    @property
    def inputs(self) -> dict:
        return {"sample_rate": self.sample_rate, "normalise": self.normalise}

    def frames(self, n_samples: int) -> int:
        """Each valid convolution in turn."""
        n = n_samples
        for k, s in zip(self.kernels, self.strides):
            if n < k:
                return 0
            n = (n - k) // s + 1
        return n

    def hidden_states(self, model, extractor, y):
        if self.normalise:  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, to the bit
            y = (y - y.mean()) / np.sqrt(y.var() + 1e-7)
        states = model(torch.from_numpy(np.ascontiguousarray(y))[None], output_hidden_states=True).hidden_states
        n = self.frames(len(y))
        if states[0].shape[1] != n:  # a folder's own code with a different feature encoder than its config says
            raise MirformerError(f"{self.path}: {states[0].shape[1]} frames for {len(y)} samples; its config's "
                                 f"convolutions give {n}")
        return tuple(s[0] for s in states)


@dataclass(frozen=True)
class SpectrogramFolder(EncoderFolder):
    """An encoder whose own feature extractor (``extractor_class``) prepares a fixed-size
    spectrogram from the waveform, as ``preprocessor_config.json`` describes it (``preprocessor``)."""

    preprocessor: dict

    overrides: ClassVar[dict] = {}  # settings of the extractor that differ from the folder's

    @property
    def inputs(self) -> dict:
        text = json.dumps(self.preprocessor, sort_keys=True)
        return {"sample_rate": self.sample_rate, "preprocessor": hashlib.sha256(text.encode()).hexdigest()}

    def extractor(self):
        import transformers

        try:
            return getattr(transformers, self.extractor_class).from_pretrained(
                self.path, local_files_only=True, **self.overrides)
        except (OSError, ValueError, TypeError, ImportError) as e:
            raise CheckpointError(f"{self.path}: its {self.extractor_class} does not load: {e}") from None

    def features(self, extractor, y: np.ndarray):
        """The extractor's model inputs for one waveform ``y`` (n,) float32, n <= longest."""
        return extractor(y, sampling_rate=self.sample_rate, return_tensors="pt")


@dataclass(frozen=True)
class WhisperFolder(SpectrogramFolder):
    """Whisper's encoder: ``mel_hop`` samples between mel frames, ``chunk`` samples per input."""

    mel_hop: int
    chunk: int

    extractor_class = "WhisperFeatureExtractor"
    overrides: ClassVar[dict] = {"dither": 0.0}  # training-time noise: off, so frames repeat

    @property
    def hop(self) -> int:
        return 2 * self.mel_hop  # conv2's stride

    @property
    def offset(self) -> float:
        return 0.0  # frame t is centred on mel frame 2t, centred (STFT center=True) on sample 2t mel_hop

    @property
    def longest(self) -> int:
        return self.chunk

    def frames(self, n_samples: int) -> int:
        """Frames centred in the audio: ceil(n / hop)."""
        return -(-n_samples // self.hop)

    def encoder(self, model):
        return model.get_encoder()

    def hidden_states(self, model, extractor, y):
        x = self.features(extractor, y)["input_features"].float()
        states = model(x, output_hidden_states=True).hidden_states
        n = self.frames(len(y))
        return tuple(s[0, :n] for s in states)


@dataclass(frozen=True)
class ASTFolder(SpectrogramFolder):
    """AST: fbank frames (400 samples, hop 160) padded to ``max_length``, cut into ``patch`` x
    ``patch`` patches with strides ``frequency_stride`` (mel bins) and ``time_stride`` (fbank
    frames): ``bands`` x ``columns`` patch tokens after the CLS and distillation tokens."""

    patch: int
    time_stride: int
    bands: int
    columns: int
    max_length: int

    extractor_class = "ASTFeatureExtractor"
    FRAME, SHIFT = 400, 160  # the Kaldi fbank's 25 ms frames every 10 ms, at 16 kHz

    @property
    def hop(self) -> int:
        return self.time_stride * self.SHIFT

    @property
    def offset(self) -> float:
        return ((self.patch - 1) * self.SHIFT + self.FRAME) / 2  # the centre of a column's patch frames

    @property
    def longest(self) -> int:
        # Every column within the padded input, none of the audio cut off at max_length frames.
        return self.hop * min(self.columns, (self.FRAME + self.max_length * self.SHIFT - 1) // self.hop)

    def frames(self, n_samples: int) -> int:
        """Columns starting at an fbank frame of the audio."""
        fbank = 0 if n_samples < self.FRAME else 1 + (n_samples - self.FRAME) // self.SHIFT
        return min(self.columns, -(-fbank // self.time_stride))

    def hidden_states(self, model, extractor, y):
        x = self.features(extractor, y)["input_values"].float()
        states = model(x, output_hidden_states=True).hidden_states
        n = self.frames(len(y))
        # Tokens: CLS, distillation, then the patches band by band (ASTPatchEmbeddings flattens (band, column)).
        return tuple(s[0, 2:].reshape(self.bands, self.columns, -1).mean(0)[:n] for s in states)


@dataclass(frozen=True)
class ClapFolder(SpectrogramFolder):
    """CLAP's audio tower (HTSAT): its pooled output, one vector per pass of ``span`` samples
    (``max_seconds``, at most the extractor's ``max_length_s``), the pass's only "hidden state"."""

    span: int

    extractor_class = "ClapFeatureExtractor"
    pooled = True

    @property
    def hop(self) -> int:
        return self.span

    @property
    def offset(self) -> float:
        return self.span / 2

    @property
    def longest(self) -> int:
        return self.span

    def frames(self, n_samples: int) -> int:
        """One per pass, however short: the extractor repeats the audio to fill it ("repeatpad")."""
        return int(n_samples > 0)

    def states(self, layer: int | str) -> tuple[int, ...]:
        if layer != -1:
            raise ConfigError(f"{self.path}: a CLAP folder's frames are its audio tower's pooled output, one per "
                              f"window: hf_encoder.layer must be -1 (the default), got {layer!r}")
        return (0,)

    def encoder(self, model):
        return model.audio_model

    def hidden_states(self, model, extractor, y):
        # No randomness: inputs up to max_length_s are never cropped, and the fusion mode's random
        # choice of an input to treat as longer has one candidate here (NumPy draws nothing).
        inputs = self.features(extractor, y)
        pooled = model(input_features=inputs["input_features"].float(), is_longer=inputs["is_longer"]).pooler_output
        return (pooled,)  # (1, hidden_size)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not readable JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return value


def _waveform(folder: Path, c: dict, pre: dict, remote: bool) -> WaveformFolder:
    kernels, strides = c.get("conv_kernel"), c.get("conv_stride")
    if not (kernels and strides and len(kernels) == len(strides)):
        raise ConfigError(f"{folder}: config.json gives no convolutional feature encoder (conv_kernel, conv_stride): "
                          "only raw-waveform encoders of the wav2vec 2.0 design are supported")
    extractor = pre.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
    if extractor != "Wav2Vec2FeatureExtractor":
        raise ConfigError(f"{folder}: its feature extractor is {extractor}; a raw-waveform encoder's input is "
                          "Wav2Vec2FeatureExtractor's")
    return WaveformFolder(path=folder, model_type=str(c.get("model_type")), remote=remote,
                          sample_rate=int(pre.get("sampling_rate", DEFAULT_SAMPLE_RATE)),
                          hidden_size=int(c["hidden_size"]), n_states=int(c["num_hidden_layers"]) + 1,
                          normalise=bool(pre.get("do_normalize", DEFAULT_NORMALISE)),
                          kernels=tuple(map(int, kernels)), strides=tuple(map(int, strides)))


def _whisper(folder: Path, c: dict, pre: dict, config: HFEncoderConfig) -> WhisperFolder:
    mel_frames = int(pre.get("nb_max_frames", 0))
    if pre.get("feature_size") != c.get("num_mel_bins") or mel_frames != 2 * int(c.get("max_source_positions", 0)):
        raise ConfigError(f"{folder}: its WhisperFeatureExtractor gives {pre.get('feature_size')} mel bins x "
                          f"{mel_frames} frames; its encoder reads {c.get('num_mel_bins')} x "
                          f"{2 * int(c.get('max_source_positions', 0))}")
    return WhisperFolder(path=folder, model_type="whisper", remote=False, sample_rate=int(pre["sampling_rate"]),
                         hidden_size=int(c["d_model"]), n_states=int(c["encoder_layers"]) + 1, preprocessor=pre,
                         mel_hop=int(pre["hop_length"]), chunk=int(pre["n_samples"]))


def _ast(folder: Path, c: dict, pre: dict, config: HFEncoderConfig) -> ASTFolder:
    if int(pre.get("sampling_rate", 0)) != 16000:
        raise ConfigError(f"{folder}: its ASTFeatureExtractor reads {pre.get('sampling_rate')} Hz; AST's fbank "
                          "frames (400 samples every 160) are 25 ms every 10 ms only at 16000 Hz, the rate supported")
    mel, length, patch = int(c["num_mel_bins"]), int(c["max_length"]), int(c["patch_size"])
    if (pre.get("num_mel_bins"), pre.get("max_length")) != (mel, length):
        raise ConfigError(f"{folder}: its ASTFeatureExtractor gives {pre.get('num_mel_bins')} mel bins x "
                          f"{pre.get('max_length')} frames; the model reads {mel} x {length}")
    return ASTFolder(path=folder, model_type="audio-spectrogram-transformer", remote=False, sample_rate=16000,
                     hidden_size=int(c["hidden_size"]), n_states=int(c["num_hidden_layers"]) + 1, preprocessor=pre,
                     patch=patch, time_stride=int(c["time_stride"]), max_length=length,
                     bands=(mel - patch) // int(c["frequency_stride"]) + 1,
                     columns=(length - patch) // int(c["time_stride"]) + 1)


def _clap(folder: Path, c: dict, pre: dict, config: HFEncoderConfig) -> ClapFolder:
    import transformers  # its config.json may leave the audio tower's settings at their defaults

    audio = transformers.ClapConfig.from_dict(c).audio_config
    sample_rate = int(pre["sampling_rate"])
    longest = int(pre["max_length_s"] * sample_rate)  # every input is repeated or padded to this length
    mel_frames = longest // int(pre["hop_length"]) + 1
    width = audio.spec_size * (audio.spec_size // audio.num_mel_bins)  # reshape_mel2img's frames
    if pre.get("feature_size") != audio.num_mel_bins or mel_frames > width:
        raise ConfigError(f"{folder}: its ClapFeatureExtractor gives {pre.get('feature_size')} mel bins x {mel_frames} "
                          f"frames; its audio tower reads {audio.num_mel_bins} x at most {width}")
    if pre.get("truncation") == "fusion" and not audio.enable_fusion:
        raise ConfigError(f"{folder}: its ClapFeatureExtractor prepares fusion input (truncation 'fusion'), which "
                          "its audio tower (enable_fusion false) does not read")
    return ClapFolder(path=folder, model_type="clap", remote=False, sample_rate=sample_rate,
                      hidden_size=audio.patch_embeds_hidden_size * 2 ** (len(audio.depths) - 1), n_states=1,
                      preprocessor=pre, span=max(1, min(int(config.max_seconds * sample_rate), longest)))


# Spectrogram-input encoders: how each folder is read, and its feature extractor's class.
SPECTROGRAM = {"whisper": (_whisper, WhisperFolder), "audio-spectrogram-transformer": (_ast, ASTFolder),
               "clap": (_clap, ClapFolder)}


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
    has_pre = (folder / "preprocessor_config.json").is_file()
    pre = _json(folder / "preprocessor_config.json") if has_pre else {}
    if not remote and model_type in SPECTROGRAM:
        read, kind = SPECTROGRAM[model_type]
        if pre.get("feature_extractor_type") != kind.extractor_class:
            raise ConfigError(f"{folder}: a {FAMILIES[model_type]} folder's input is its {kind.extractor_class}'s, "
                              f"described by preprocessor_config.json: "
                              + (f"it names {pre.get('feature_extractor_type')}" if has_pre else "there is none"))
        found = read(folder, c, pre, config)
    else:
        found = _waveform(folder, c, pre, remote)
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}: the encoder's weights are read from safetensors only "
                              "(download the whole folder of the model page)")
    found.states(config.layer)
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


def load_model(folder: EncoderFolder, *, trust_remote_code: bool) -> torch.nn.Module:
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


# What an EncoderFolder's ``inputs`` may hold, in words.
INPUT_WORDS = {"sample_rate": "{} Hz", "normalise": "normalise {}", "preprocessor": "preprocessor_config.json {:.12}"}


def described(inputs: dict) -> str:
    """``inputs`` (``EncoderFolder.inputs``) in words: "16000 Hz, normalise True"."""
    return ", ".join(INPUT_WORDS[key].format(value) for key, value in inputs.items())
