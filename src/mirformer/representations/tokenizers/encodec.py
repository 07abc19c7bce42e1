"""EnCodec (Défossez et al. 2022; ``transformers.EncodecModel``) as a tokenizer: 24 kHz and 48 kHz."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from mirformer.errors import ConfigError
from mirformer.representations.tokenizers.codec import CodecTokenizer, register_codec
from mirformer.streaming import frame_segments


@register_codec
class EncodecTokenizer(CodecTokenizer):
    """EnCodec's residual codebooks, in one of the two ways the official models encode.

    **24 kHz** (causal convolutions, no chunks): the whole signal is one sequence, ``ceil(n /
    hop)`` frames. It is encoded in chunks of whole frames: the convolutions before the LSTM
    re-read a left context of their receptive field (rounded up to whole frames, so the strided
    convolutions sample the same grid and pad only where a one-shot encode pads: reflection at
    the start, extra padding at the very end), the two-layer LSTM carries its (h, c) from chunk
    to chunk, and the last convolution re-reads the LSTM's last ``kernel - 1`` frames.

    **48 kHz** (``chunk_length_s`` set): the model itself encodes 1 s chunks every
    ``chunk_stride`` samples (1% overlap), each normalised by its RMS; the ids are those chunks'
    frames one after the other (``ceil(chunk / hop)`` each, the last ones shorter), exactly as
    ``model.encode`` returns them, so the frames are 150 per 0.99 s, not one per ``hop_length``.
    It is a stereo model: mono audio is given as both channels. ``decode`` cannot restore each
    chunk's level (the RMS scales are not tokens): its chunks come back normalised.

    ``codebooks`` ids come from the smallest bandwidth with at least that many codebooks; residual
    quantisation makes the first ones the same at every bandwidth.
    """

    model_type, model_class, kind = "encodec", "EncodecModel", "EnCodec"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        config, quantizer = model.config, model.quantizer
        self.hop_length, self.vocab_size = int(config.hop_length), int(config.codebook_size)
        self._bandwidths = {bw: quantizer.get_num_quantizers_for_bandwidth(bw) for bw in config.target_bandwidths}
        self.n_codebooks = max(self._bandwidths.values())
        self.chunk = config.chunk_length  # samples per native chunk, or None: one sequence
        if self.chunk is not None:
            if config.chunk_stride is None:
                raise ConfigError(f"{self.source}: chunk_length_s is set but overlap is not")
            return
        if not config.use_causal_conv or config.normalize or config.norm_type != "weight_norm":
            raise ConfigError(f"{self.source}: an EnCodec without chunks must be causal, unnormalised and "
                              f"weight-normed to encode in bounded memory (like facebook/encodec_24khz); got "
                              f"use_causal_conv={config.use_causal_conv}, normalize={config.normalize}, "
                              f"norm_type={config.norm_type!r}")
        layers = list(model.encoder.layers)
        lstm = next(i for i, layer in enumerate(layers) if type(layer).__name__ == "EncodecLSTM")
        self._convs, self._lstm, self._head = layers[:lstm], layers[lstm].lstm, layers[lstm + 1 :]
        lookback, jump = 0, 1  # samples a frame reads before its own hop; samples per step so far
        for conv in _convs(self._convs):
            lookback += int(conv.padding_total) * jump
            jump *= int(conv.stride)
        assert jump == self.hop_length, f"the encoder's strides multiply to {jump}, not the hop {self.hop_length}"
        self._context = -(-lookback // self.hop_length)  # in frames
        head = _convs(self._head)
        assert all(int(c.stride) == 1 for c in head), "EnCodec's last convolution has stride 1"
        self._head_context = sum(int(c.padding_total) for c in head)

    def _bandwidth(self, codebooks: int) -> float:
        self._check_codebooks(codebooks)
        return min(bw for bw, n in self._bandwidths.items() if n >= codebooks)

    def n_frames(self, n_samples: int) -> int:
        if self.chunk is None:
            return -(-n_samples // self.hop_length)
        stride = self.model.config.chunk_stride
        return sum(-(-min(self.chunk, n_samples - start) // self.hop_length) for start in range(0, n_samples, stride))

    def encode_stream(self, blocks: Iterable[np.ndarray], *, codebooks: int) -> Iterator[np.ndarray]:
        bandwidth = self._bandwidth(codebooks)
        encode = self._stream_sequence if self.chunk is None else self._stream_chunks
        for codes in encode(self._audio(blocks), bandwidth):
            yield codes[:, :codebooks].numpy()

    @torch.inference_mode()
    def _stream_sequence(self, samples: Iterator[np.ndarray], bandwidth: float) -> Iterator[torch.Tensor]:
        """Ids (frames, codebooks) of a causal model's one sequence, chunk by chunk."""
        hop, lstm_state, head_input = self.hop_length, None, None
        # A chunk longer than any padding keeps the reflection padding of the first chunk as in one pass.
        chunk = self._chunk_frames(max(self._context, self._head_context) + 1)
        for seg in frame_segments(samples, hop=hop, left=self._context * hop, right=hop, n_frames=self.n_frames,
                                  pad=False, max_frames=chunk):
            x = torch.from_numpy(seg.data).view(1, 1, -1)
            for layer in self._convs:
                x = layer(x)
            x = x[..., seg.first - seg.start // hop :].permute(2, 0, 1)  # (frames, 1, channels)
            y, lstm_state = self._lstm(x, lstm_state)
            x = (y + x).permute(1, 2, 0)  # EncodecLSTM.forward, its state carried over
            seen = 0 if head_input is None else head_input.shape[-1]
            if head_input is not None:
                x = torch.cat([head_input, x], -1)
            head_input = x[..., x.shape[-1] - self._head_context :]
            for layer in self._head:
                x = layer(x)
            yield self.model.quantizer.encode(x[..., seen:], bandwidth)[:, 0].T

    @torch.inference_mode()
    def _stream_chunks(self, samples: Iterator[np.ndarray], bandwidth: float) -> Iterator[torch.Tensor]:
        """Ids (frames, codebooks) of a chunked model's chunks, as ``model.encode`` makes them."""
        stride, buf = self.model.config.chunk_stride, np.zeros(0, np.float32)
        for block in samples:
            buf = np.concatenate([buf, block])
            while len(buf) >= self.chunk:  # a whole chunk; the model's next one starts ``stride`` later
                yield self._encode(buf[: self.chunk], bandwidth, chunks=1)
                buf = buf[stride:]
        if len(buf):
            yield self._encode(buf, bandwidth, chunks=None)

    def _encode(self, y: np.ndarray, bandwidth: float, *, chunks: int | None) -> torch.Tensor:
        """``model.encode`` of mono ``y`` [shape=(n,)] (on every channel): ids (frames, codebooks) of its
        first ``chunks`` chunks (None: all)."""
        x = torch.from_numpy(y).view(1, 1, -1).repeat(1, self.model.config.audio_channels, 1)
        out = self.model.encode(x, bandwidth=bandwidth)
        codes = out.audio_codes[:chunks, 0]  # (chunks, codebooks, frames)
        if chunks is None and out.last_frame_pad_length:
            frames = [*codes[:-1], codes[-1][:, : -out.last_frame_pad_length]]
        else:
            frames = list(codes)
        return torch.cat(frames, -1).T

    def _vectors(self) -> torch.Tensor:
        return torch.stack([layer.codebook.embed for layer in self.model.quantizer.layers[: self.n_codebooks]])

    @torch.inference_mode()
    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Mono audio [shape=(n,)] of ids (frames, c). A chunked model's ids are cut into its chunks
        of ``ceil(chunk / hop)`` frames (the last ones of a signal may be cut differently) and decoded
        without their scales, so each chunk has the normalised level."""
        codes = torch.as_tensor(np.asarray(ids, np.int64)).T  # (c, frames)
        if self.chunk is None:
            audio = self.model.decode(codes[None, None], [None]).audio_values
        else:
            per_chunk = math.ceil(self.chunk / self.hop_length)
            parts = list(codes.split(per_chunk, -1))
            pad = per_chunk - parts[-1].shape[-1]
            parts[-1] = torch.nn.functional.pad(parts[-1], (0, pad))
            audio = self.model.decode(torch.stack(parts)[:, None], [None] * len(parts),
                                      last_frame_pad_length=pad).audio_values
        return audio[0].mean(0).numpy()


def _convs(layers: list) -> list:
    """The ``EncodecConv1d`` modules of ``layers``, in the order they run."""
    return [m for layer in layers for m in layer.modules() if type(m).__name__ == "EncodecConv1d"]
