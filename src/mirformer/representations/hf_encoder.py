"""Hidden states of a pretrained audio encoder, frozen: a local Hugging Face ``transformers`` folder.

A folder is what ``save_pretrained`` writes and the model pages distribute: ``config.json``,
``model.safetensors`` and usually ``preprocessor_config.json`` (how the input is prepared). It is
read offline (``local_files_only=True``, safetensors only); mirformer never downloads, and a model
id in place of a folder is refused.

Covered:

- raw-waveform encoders with a convolutional feature encoder, ``transformers``' own wav2vec 2.0,
  HuBERT, WavLM and data2vec-audio, and, only with ``trust_remote_code``, a folder that brings its
  own code in the same design (MERT). The input is prepared as the folder's
  ``Wav2Vec2FeatureExtractor`` does: with ``do_normalize``, each input is shifted and scaled to
  zero mean and unit variance. One frame per ``hop`` samples (the product of the convolution
  strides: 320 at 16 kHz, 50 frames/s, for wav2vec 2.0), each seeing a receptive field of
  ``field`` samples (400); ``times`` gives that field's centre.
- Whisper's encoder: its ``WhisperFeatureExtractor`` pads every input to the model's fixed chunk
  (30 s) before its log-mel; the encoder gives one frame per two mel hops (320 samples at 16 kHz,
  50 frames/s) over the whole chunk, and a frame is kept when its centre lies in the real audio.
  The extractor's dither (training-time noise) is off, so frames repeat.
- AST (audio-spectrogram-transformer), 16 kHz: its ``ASTFeatureExtractor`` pads every input to
  ``max_length`` Kaldi fbank frames (10 ms hop); its tokens are overlapping 16 x 16 patches on a
  grid of frequency x time, not a time series. A frame here is the mean of one time column's
  patch tokens (one per ``time_stride`` fbank frames: 100 ms), kept when the column starts in the
  real audio; the CLS and distillation tokens, a summary of the whole input, are not frames.
- CLAP's audio tower (HTSAT, ``model_type`` clap): its hidden states are a Swin pyramid of
  changing widths over a frequency x time image, not a time series; a frame is the tower's pooled
  output, one per window (at most the ``ClapFeatureExtractor``'s ``max_length_s``, 10 s), a
  shorter last window repeated to fill its pass as the extractor does ("repeatpad"). ``layer``
  must be -1.

Frames (but CLAP's) are ``hidden_states[layer]`` (``output_hidden_states=True``): layer 0 is the transformer's
input (the projected features plus the position embedding), layer ``num_hidden_layers`` (or -1)
the last layer's output (Whisper's after its final layer norm). With ``layer: all`` a frame stacks
every hidden state, ``hidden_states[0]`` first: ``(num_hidden_layers + 1) * hidden_size`` values,
so a model can weigh the layers itself (as SUPERB's weighted sum does).

Long audio: the transformer attends over its whole input, so a signal up to ``max_seconds`` is
encoded in one pass, and a longer one in consecutive non-overlapping windows of ``max_seconds``
(rounded down to whole hops, and at most what a fixed-input model reads: Whisper's chunk, AST's
``max_length``, CLAP's ``max_length_s``, so no extractor crops at random), each encoded (and
normalised) alone. That is a windowed approximation of one pass, as the HEAR and MARBLE harnesses
encode long clips; it bounds memory and keeps each window within the lengths the model was
trained on.

An encoder file does not embed the weights (90 MB to 1.2 GB): it refers to the folder by path and
SHA-256, like a codec tokenizer (``tokenizers.codec``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.base import Layout, Representation, register_representation
from mirformer.representations.hf_folders import (ALL, DTYPES, FAMILIES, HF_ENCODER_VERSION, INPUT_WORDS, HFEncoderConfig,
                                                  described, folder_identity, load_model, read_folder)


@register_representation
class HFEncoder(Representation):
    """Hidden state ``config.layer`` of a frozen pretrained encoder, or every one stacked:
    (frames, layers * hidden_size) float32, one frame per ``hop`` samples at the folder's
    ``sample_rate``, stored as ``dtype``.

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
    spec_prefix, spec_field = "hf", "path"  # --representation hf:models/hubert,layer=all

    def __init__(self, config: HFEncoderConfig, *, dtype: str = "float32", identity: str | None = None):
        if dtype not in DTYPES:
            raise ConfigError(f"HFEncoder dtype must be one of {DTYPES}, got {dtype!r}")
        self.config, self.dtype = config, np.dtype(dtype)
        self.folder = read_folder(config)
        self.identity = identity or folder_identity(self.folder)
        self.states = self.folder.states(config.layer)  # hidden_states' indices a frame stacks, in order
        self.layers = len(self.states)
        self.window = self.folder.window(config.max_seconds)
        self.sample_rate = self.folder.sample_rate
        self.frames_per_second = self.sample_rate / self.folder.hop
        self.layout = Layout(dim=self.layers * self.folder.hidden_size)
        self.extractor = self.folder.extractor()
        self.model = self.folder.encoder(load_model(self.folder, trust_remote_code=config.trust_remote_code))

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

    @property
    def layer(self) -> int | str:
        """The hidden state's index in [0, n_states), or ``"all"``."""
        return ALL if self.config.layer == ALL else self.states[0]

    def about(self) -> dict:
        f = self.folder
        return {"path": str(f.path), "sha256": self.identity, "model_type": f.model_type,
                "family": FAMILIES.get(f.model_type, f.model_type), "layer": self.layer, "layers": f.n_states - 1,
                "hidden_size": f.hidden_size, "sample_rate": f.sample_rate, "hop_length": f.hop,
                "normalise": f.inputs.get("normalise", False), "extractor": f.extractor_class, "pooled": f.pooled,
                "max_seconds": self.window / f.sample_rate}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        """Which encoder, which hidden state, its width and rate."""
        a = about
        if a.get("pooled"):
            read, width = "the audio tower's pooled output, one per window,", f"{a['hidden_size']} values per frame"
        elif a["layer"] == ALL:
            read = f"every hidden state ({a['layers']} layers + the input)"
            width = f"{a['layers'] + 1} x {a['hidden_size']} = {(a['layers'] + 1) * a['hidden_size']} values per frame"
        else:
            state = "its transformer's input" if a["layer"] == 0 else f"the output of layer {a['layer']}"
            read, width = f"{state} (of {a['layers']} layers)", f"{a['hidden_size']} values per frame"
        windows = f", training windows of {a['window_frames']} frames" if a.get("window_frames") else ""
        prepared = (f", its input prepared by its {a['extractor']}" if a.get("extractor") else
                    ", each input normalised to zero mean and unit variance" if a["normalise"] else "")
        return ["## Pretrained encoder", "",
                f"The models read {read} of the frozen {a['family']} encoder "
                f"`{a['path']}` (SHA-256 `{a['sha256'][:12]}`): {width}, hop "
                f"{a['hop_length']} at {a['sample_rate']} Hz ({a['sample_rate'] / a['hop_length']:.1f} frames/s"
                f"{prepared}){windows}. Audio longer than {a['max_seconds']:g} s is encoded in consecutive "
                f"{a['max_seconds']:g} s pieces, each alone (an approximation of one pass over the whole).", ""]

    # ---- encoding -----------------------------------------------------------------------------
    def config_dict(self) -> dict:
        # preprocessor_config.json is not in the SHA-256: what it says of the input is keyed apart.
        d = {"sha256": self.identity, "layer": self.layer, "window": self.window, **self.folder.inputs,
             "version": HF_ENCODER_VERSION}
        return d if self.dtype == np.float32 else {**d, "dtype": self.dtype.name}

    def _encode_window(self, y: np.ndarray) -> np.ndarray:
        """One pass over ``y`` (n,) float32, n <= window -> (frames(n), dim) float32."""
        if self.folder.frames(len(y)) == 0:  # shorter than one frame's input: the model would fail
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            states = self.folder.hidden_states(self.model, self.extractor, y)
        return torch.cat([states[s] for s in self.states], dim=-1).float().numpy()

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> (n_frames(n), dim) float32: one pass up to
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
        """Centre of each frame's input in seconds [shape=(n_frames,)], windows placed end to end."""
        i = np.arange(n_frames)
        window, frame = np.divmod(i, self.folder.frames(self.window))
        return (window * self.window + frame * self.folder.hop + self.folder.offset) / self.sample_rate

    # ---- the encoder file ---------------------------------------------------------------------
    def to_block(self) -> dict:
        """A reference to the folder (path, SHA-256, what it was read with), not the weights."""
        c = self.config
        return {"hf_encoder": {"path": str(self.folder.path.resolve()), "sha256": self.identity,
                               "model_type": self.folder.model_type, "layer": c.layer,
                               "max_seconds": float(c.max_seconds), "trust_remote_code": c.trust_remote_code,
                               **self.folder.inputs},
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
            inputs = folder.inputs
            if identity == expected and inputs == {key: info.get(key) for key in inputs}:
                return cls(config, dtype=block["dtype"], identity=identity)
            seen.append(f"{path} has SHA-256 {identity}, {described(inputs)}")
        stored_inputs = {key: value for key, value in info.items() if key in INPUT_WORDS}
        raise CheckpointError(f"{source}: its pretrained encoder is a different one: {'; '.join(seen)}; the encoder "
                              f"was trained with {wanted}, {described(stored_inputs)}")
