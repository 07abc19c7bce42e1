"""MP3 re-encoding at a constant bitrate: ``mp3:kbps=64,32`` (kbit/s; lower is stronger).

Encoded by LAME through ``lameenc`` at exactly the asked bitrate (CBR), decoded back by
libsndfile's mpg123 through ``soundfile``. Not pedalboard's MP3Compressor: it takes only a VBR
quality, so it cannot honour a bitrate. LAME on its own does not honour one either: left to
choose, it resamples (44.1 kHz at 32 kbit/s becomes 22.05 kHz) and quietly writes the nearest
bitrate its MPEG version has (320 at 22.05 kHz becomes 160). So the output rate is set, and a
bitrate the rate's MPEG version lacks is refused. Audio at a rate MP3 lacks (88.2, 96 kHz) is
resampled (soxr) to the next MP3 rate for the codec and back.
"""

from __future__ import annotations

import io

import lameenc
import numpy as np
import soundfile as sf
import soxr
from librosa.util import fix_length

from mirformer.deformations.base import Family, installed, number, register_family
from mirformer.errors import ConfigError

# Bitrates (kbit/s) of MPEG-1 Layer III (32, 44.1, 48 kHz), MPEG-2 (16, 22.05, 24 kHz) and
# MPEG-2.5 (8, 11.025, 12 kHz; LAME caps these at 64).
MPEG1 = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
MPEG2 = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
KBPS = {8000: MPEG2[:8], 11025: MPEG2[:8], 12000: MPEG2[:8], 16000: MPEG2, 22050: MPEG2, 24000: MPEG2,
        32000: MPEG1, 44100: MPEG1, 48000: MPEG1}
# Samples by which the decoded audio lags the input: LAME's encoder delay (576) plus mpg123's
# decoder delay (529). A player skips it by reading the gapless info of a LAME tag; lameenc
# writes none, so it is trimmed here. Measured by a click's position: 1105 at all 108 pairs of
# MP3 rate and valid bitrate; tests/test_deformations.py checks the alignment by cross-correlation.
DELAY = 576 + 529
QUALITY = 2  # LAME's -q 2, its recommended "near best" algorithm choice


def mp3_rate(sr: int) -> int:
    """The rate in Hz audio at ``sr`` Hz is encoded at: ``sr`` when MP3 has it, else the next MP3
    rate above (48 kHz above 48 kHz)."""
    return min((r for r in KBPS if r >= sr), default=48000)


def encode_mp3(y: np.ndarray, *, sr: int, kbps: int) -> bytes:
    """A constant-bitrate MP3 of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio in [-1, 1] (16-bit PCM is what LAME takes: beyond that it is clipped).
    sr : int
        Its rate in Hz, one MP3 has (``KBPS``).
    kbps : int
        Bitrate in kbit/s, one of ``KBPS[sr]``; every frame header carries it.

    Returns
    -------
    mp3 : bytes
        MPEG audio frames, no tag.
    """
    if kbps not in KBPS.get(sr, ()):
        valid = ", ".join(map(str, KBPS[sr])) if sr in KBPS else f"none: MP3 rates are {sorted(KBPS)} Hz"
        raise ConfigError(f"MP3 at {sr} Hz cannot be {number(kbps)} kbit/s; valid bitrates: {valid}")
    encoder = lameenc.Encoder()
    encoder.set_channels(1)
    encoder.set_in_sample_rate(sr)
    encoder.set_out_sample_rate(sr)
    encoder.set_bit_rate(int(kbps))
    encoder.set_quality(QUALITY)
    encoder.silence()
    pcm = np.round(np.clip(y, -1, 1) * 32767).astype("<i2")
    return bytes(encoder.encode(pcm.tobytes())) + bytes(encoder.flush())


def apply(y: np.ndarray, *, sr: int, value: float, seed: int) -> np.ndarray:
    """``y`` [shape=(n,)] through an MP3 at ``value`` kbit/s and back, aligned, [shape=(n,)]."""
    rate = mp3_rate(sr)
    x = y if rate == sr else soxr.resample(y, sr, rate, quality="HQ")
    # Encoded at its own level, as an encoder would meet the file; only audio past full scale is
    # scaled down (and back), so that the 16-bit input LAME takes clips nothing.
    scale = max(1.0, float(np.max(np.abs(x))))
    decoded, decoded_rate = sf.read(io.BytesIO(encode_mp3(x / scale, sr=rate, kbps=int(value))), dtype="float32")
    assert decoded_rate == rate, f"the MP3 decoded at {decoded_rate} Hz, encoded at {rate} Hz"
    x = fix_length(decoded[DELAY:], size=len(x)) * scale
    return x if rate == sr else fix_length(soxr.resample(x, rate, sr, quality="HQ"), size=len(y))


register_family(Family(
    name="mp3", param="kbps", unit="kbit/s", description="MP3 (LAME, constant bitrate) at this bitrate and back",
    low=8.0, high=320.0, choices=tuple(float(k) for k in sorted(set(MPEG1 + MPEG2))),
    settings=f"q{QUALITY}", library=f"{installed('lameenc')}+libsndfile-{sf.__libsndfile_version__}", apply=apply,
    strength=lambda kbps: -kbps, label=lambda kbps: f"MP3 {number(kbps)} kbit/s",
))
