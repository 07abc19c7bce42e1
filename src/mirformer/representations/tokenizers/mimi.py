"""Mimi (Défossez et al. 2024, Moshi's codec; ``transformers.MimiModel``) as a tokenizer: 24 kHz, 12.5 Hz."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from mirformer.errors import ConfigError
from mirformer.representations.tokenizers.codec import CodecTokenizer, register_codec
from mirformer.streaming import frame_segments


@register_codec
class MimiTokenizer(CodecTokenizer):
    """Mimi's split residual codebooks: first the semantic one(s), then the acoustic ones.

    The encoder is a causal SEANet (convolutions, ``hop1 = prod(upsampling_ratios)`` samples per
    frame: 25 Hz), a causal transformer whose attention sees a sliding window of its last
    ``sliding_window`` frames, and a causal strided convolution (``downsample``, stride ``s = 2``)
    to the token rate: ``hop_length = hop1 * s`` (1920 samples, 12.5 Hz), ``ceil(n / hop_length)``
    frames. Encoding streams in chunks of whole frames, carrying each stage's state:

    - the SEANet re-reads a left context of its receptive field, rounded up to whole frames (so the
      strided convolutions sample the same grid, and pad only where a one-shot encode pads: zeros at
      the start, extra padding at the very end);
    - the transformer keeps its key/value cache (the model's own ``DynamicCache``: the last
      ``sliding_window - 1`` frames of each layer) and absolute positions (its rotary embedding);
    - the downsampling re-reads the transformer's last ``s`` frames (its kernel is ``2 s``).

    The ids equal ``model.encode(x, num_quantizers=N).audio_codes`` of the whole signal, up to float
    rounding: a chunk's attention sums its keys in another order than the whole signal's, so its
    latents differ from a one-shot encode's by about 1e-6 of their size, and an id can differ only
    where two codebook entries are equally near to that precision.

    ``codebooks`` ids come from encoding that many quantisers: the semantic quantiser(s) always
    run, the acoustic ones are residual, so the first N ids are the same for any larger N.
    """

    model_type, model_class, kind = "mimi", "MimiModel", "Mimi"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        config, encoder = model.config, model.encoder
        if encoder is None or encoder.downsample is None or not config.use_causal_conv:
            raise ConfigError(f"{self.source}: a Mimi must have an encoder with causal convolutions and a downsampling "
                              "to the token rate to encode in bounded memory (like kyutai/mimi)")
        self._seanet, self._transformer, self._downsample = (encoder.encoder_seanet, encoder.encoder_transformer,
                                                             encoder.downsample)
        self.vocab_size, self.n_codebooks = int(config.codebook_size), int(config.num_quantizers)
        self._semantic = int(config.num_semantic_quantizers)
        lookback, jump = 0, 1  # samples a SEANet frame reads before its own hop; samples per step so far
        for conv in (m for m in self._seanet.modules() if type(m).__name__ == "MimiConv1d"):
            lookback += int(conv.padding_total) * jump
            jump *= int(conv.stride)
        self._seanet_hop, self._stride = jump, int(self._downsample.stride)
        self.hop_length = jump * self._stride
        self._context = -(-lookback // jump)  # in SEANet frames
        # The carried tail is one token frame: the downsampling's kernel spans two (causal, stride s).
        assert int(self._downsample.padding_total) == self._stride, "Mimi's downsampling has kernel 2 * stride"

    def n_frames(self, n_samples: int) -> int:
        return -(-n_samples // self.hop_length)

    @torch.inference_mode()
    def encode_stream(self, blocks: Iterable[np.ndarray], *, codebooks: int) -> Iterator[np.ndarray]:
        self._check_codebooks(codebooks)
        hop, s, channels = self._seanet_hop, self._stride, self.model.config.audio_channels
        cache, tail = None, None  # the transformer's key/value cache; its last s output frames
        # Chunks of whole token frames, so every chunk after the first starts on the downsampling's grid.
        for seg in frame_segments(self._audio(blocks), hop=hop, left=self._context * hop, right=hop,
                                  n_frames=lambda n: -(-n // hop), pad=False, max_frames=self._chunk_frames(1) * s):
            x = torch.from_numpy(seg.data).view(1, 1, -1).repeat(1, channels, 1)
            x = self._seanet(x)[..., seg.first - seg.start // hop :]  # (1, hidden, frames)
            out = self._transformer(x.transpose(1, 2), cache=cache, use_cache=True)
            x, cache = out.last_hidden_state.transpose(1, 2), out.cache
            skip = 0 if tail is None else 1  # output 0 reads padding before the tail; its frame was given before
            if tail is not None:
                x = torch.cat([tail, x], -1)
            tail = x[..., -s:]
            latents = self._downsample(x)[..., skip:]
            codes = self.model.quantizer.encode(latents, max(codebooks, self._semantic))  # (quantisers, 1, frames)
            yield codes[:codebooks, 0].T.numpy()

    def _vectors(self) -> torch.Tensor:
        """Each codebook's entries through its quantiser's ``output_proj``: the semantic and the acoustic
        quantiser each sum their codebooks' entries and project the sum with a 1x1 convolution without
        bias (``bias=False`` in ``transformers``: a bias would be added once per quantiser, not once per
        codebook, and is refused), so the vectors of a frame's ids sum to ``model.quantizer.decode``."""
        books = []
        for rvq in (self.model.quantizer.semantic_residual_vector_quantizer,
                    self.model.quantizer.acoustic_residual_vector_quantizer):
            proj = rvq.output_proj  # None where the quantiser works at the latent's own width
            assert proj is None or proj.bias is None, "Mimi's output projections have no bias"
            for layer in rvq.layers:
                embed = layer.codebook.embed  # (vocab, codebook_dim)
                books.append(embed if proj is None else proj(embed.T[None])[0].T)
        return torch.stack(books)

    @torch.inference_mode()
    def decode(self, ids: np.ndarray) -> np.ndarray:
        codes = torch.as_tensor(np.asarray(ids, np.int64)).T[None]  # (1, c, frames)
        return self.model.decode(codes).audio_values[0].mean(0).numpy()
