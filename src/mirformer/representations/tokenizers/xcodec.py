"""X-Codec (Ye et al. 2025; ``transformers.XcodecModel``) as a tokenizer: 16 kHz, 50 Hz, acoustic and
semantic features through one residual quantiser."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from mirformer.representations.tokenizers.codec import CodecTokenizer, register_codec


@register_codec
class XcodecTokenizer(CodecTokenizer):
    """X-Codec's residual codebooks, encoded from the whole signal in one pass.

    The encoder joins two views of the signal at ``hop_length`` samples a frame: a DAC encoder
    (convolutions) and a semantic model (HuBERT or WavLM, frozen) whose hidden states, averaged over
    its layers, go through a small convolutional encoder; one linear layer (``fc``) mixes the two
    and a residual quantiser quantises the mix. Frames: the semantic model's, on the signal padded
    by ``hop_length // 2`` on each side (``n_frames``); the model pads the acoustic input the same
    way where its frames would otherwise differ.

    **Not streamed**: the semantic model attends over the whole signal (a non-causal transformer,
    after a convolutional front end whose first layer normalises over the whole signal), so every
    id depends on every sample and no chunking reproduces ``model.encode``. ``encode_stream``
    joins its blocks and encodes the signal at once: memory and time grow with its length
    (quadratically in the attention), and ``chunk_seconds`` has no effect.

    ``codebooks`` ids come from ``model.encode`` at the smallest of ``config.target_bandwidths``
    with at least that many quantisers (the model's own ``get_num_quantizers_for_bandwidth``);
    residual quantisation makes the first ones the same at every bandwidth.

    Each id's vector is its codebook entry: the quantiser has no projection, so the vectors of a
    frame's ids sum to ``model.quantizer.decode``, in the space of ``fc``'s output
    (``config.codebook_dim``: acoustic + semantic widths). The decoder's ``fc2`` (a linear layer
    with a bias) comes after that sum; its bias is added once per frame, not once per codebook, so
    it belongs to no codebook's vectors and they stop before it.
    """

    model_type, model_class, kind = "xcodec", "XcodecModel", "X-Codec"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        config, quantizer = model.config, model.quantizer
        self.hop_length, self.vocab_size = int(config.hop_length), int(config.codebook_size)
        self._bandwidths = {bw: min(quantizer.get_num_quantizers_for_bandwidth(bw), len(quantizer.quantizers))
                            for bw in config.target_bandwidths}  # encode runs only the quantisers it has
        self.n_codebooks = max(self._bandwidths.values())
        # The semantic branch's convolutions, in the order they run: they set the frame count.
        self._convs = [m for part in (model.semantic_model.feature_extractor, model.encoder_semantic)
                       for m in part.modules() if isinstance(m, nn.Conv1d)]

    def _bandwidth(self, codebooks: int) -> float:
        self._check_codebooks(codebooks)
        return min(bw for bw, n in self._bandwidths.items() if n >= codebooks)

    def n_frames(self, n_samples: int) -> int:
        n = n_samples + 2 * (self.hop_length // 2)  # the model pads the semantic model's input by half a hop a side
        for conv in self._convs:
            (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
            n = (n + 2 * p - d * (k - 1) - 1) // s + 1
            if n <= 0:
                return 0
        return n

    @torch.inference_mode()
    def encode_stream(self, blocks: Iterable[np.ndarray], *, codebooks: int) -> Iterator[np.ndarray]:
        bandwidth = self._bandwidth(codebooks)
        y = np.concatenate([np.zeros(0, np.float32), *self._audio(blocks)])  # the whole signal: see the class
        if self.n_frames(len(y)) == 0:
            return  # too short for one frame (the model's own encode fails on it)
        codes = self.model.encode(torch.from_numpy(y).view(1, 1, -1), bandwidth=bandwidth).audio_codes
        yield codes[0, :codebooks].T.numpy()

    def _vectors(self) -> torch.Tensor:
        return torch.stack([q.codebook.embed for q in self.model.quantizer.quantizers[: self.n_codebooks]])

    @torch.inference_mode()
    def decode(self, ids: np.ndarray) -> np.ndarray:
        codes = torch.as_tensor(np.asarray(ids, np.int64)).T[None]  # (1, c, frames)
        return self.model.decode(codes).audio_values[0, 0].numpy()
