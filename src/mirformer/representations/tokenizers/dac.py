"""DAC, the Descript Audio Codec (Kumar et al. 2023; ``transformers.DacModel``) as a tokenizer:
the 16, 24 and 44.1 kHz models."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from mirformer.representations.tokenizers.codec import CodecTokenizer, register_codec
from mirformer.streaming import frame_segments


@register_codec
class DacTokenizer(CodecTokenizer):
    """DAC's residual codebooks.

    The encoder is fully convolutional with zero padding at each layer, so a frame depends on a
    fixed span of samples around it (``_reach``). Long audio is encoded in chunks of whole frames,
    each with that span as context on both sides (the left one rounded up to whole frames, so the
    strided convolutions sample the same grid), and only the frames that read no padding but the
    signal's own are kept: ids equal ``model.encode`` of the whole signal.

    Each id's vector is its codebook entry through its quantiser's ``out_proj`` (a 1x1
    convolution), bias included: DAC sums one ``out_proj`` output per codebook, bias and all, so
    the vectors of the first N codebooks add up to the latent of N codebooks.
    """

    model_type, model_class, kind = "dac", "DacModel", "DAC"

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        config = model.config
        self.hop_length, self.vocab_size = int(config.hop_length), int(config.codebook_size)
        self.n_codebooks = int(config.n_codebooks)
        self._convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv1d)]  # the order they run in
        first, last = 0, 0  # frame t reads samples [t * hop + first, t * hop + last]
        for conv in reversed(self._convs):
            (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
            first, last = first * s - p, last * s - p + (k - 1) * d
        self._reach = (-first, last)

    def n_frames(self, n_samples: int) -> int:
        for conv in self._convs:
            (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
            n_samples = (n_samples + 2 * p - d * (k - 1) - 1) // s + 1
            if n_samples <= 0:
                return 0
        return n_samples

    @torch.inference_mode()
    def encode_stream(self, blocks: Iterable[np.ndarray], *, codebooks: int) -> Iterator[np.ndarray]:
        self._check_codebooks(codebooks)
        hop, (before, after) = self.hop_length, self._reach
        for seg in frame_segments(self._audio(blocks), hop=hop, left=-(-before // hop) * hop,
                                  right=max(after + 1, hop), n_frames=self.n_frames, pad=False,
                                  max_frames=self._chunk_frames(1)):
            codes = self.model.encode(torch.from_numpy(seg.data).view(1, 1, -1), n_quantizers=codebooks).audio_codes
            first = seg.first - seg.start // hop  # the segment's first frame is frame seg.start // hop
            yield codes[0, :, first : first + seg.stop - seg.first].T.numpy()

    def _vectors(self) -> torch.Tensor:
        return torch.stack([q.out_proj(q.codebook.weight.T[None])[0].T for q in self.model.quantizer.quantizers])

    @torch.inference_mode()
    def decode(self, ids: np.ndarray) -> np.ndarray:
        codes = torch.as_tensor(np.asarray(ids, np.int64)).T[None]  # (1, c, frames)
        return self.model.decode(audio_codes=codes).audio_values[0].numpy()
