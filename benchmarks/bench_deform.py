"""Speed and fidelity of every deformation family: mirformer's choice beside the alternatives.

For each family, one setting done by mirformer (``mirformer.deformations``) and, side by side,
by the other library's implementation where one exists: audiomentations (AddGaussianSNR, Gain,
PitchShift, TimeStretch, LowPassFilter, ClippingDistortion, Mp3Compression; imported if
installed, else "not installed") and pedalboard's alternatives (PitchShift, LowpassFilter,
LadderFilter, MP3Compressor). Speed: x realtime (seconds of audio per wall second) on 30 s of
synthetic notes at 44.1 kHz, the median of ``--repeats`` after a warm-up, on one thread.
Fidelity, by family: SNR measured (noise); gain error (gain); worst pitch error in cents of a
440 Hz sine over -1, +1, +12 semitones and the length change (pitch); length and pitch error
over rates 0.8 and 1.25 (stretch); for both also the log-mel error in dB of a round trip on
notes (+1 then -1 semitone, x1.25 then x0.8: a sine is the easy case, music shows the
smearing); lag by cross-correlation, length change, SNR to the input and the bitrate in the
frame headers (MP3); level at a quarter of, at and one octave above the cut-off (low-pass); the
output's peak against the asked threshold (clip); level change and the impulse tail's decay
(reverb). A row marked * is mirformer's choice.

audiomentations is not a mirformer dependency (it pins soxr < 1); compare in a scratch venv that
also has what importing mirformer.deformations needs:

    python benchmarks/bench_deform.py                  # mirformer and pedalboard only
    python3.11 -m venv /tmp/amenv
    /tmp/amenv/bin/pip install audiomentations==0.43.1 pedalboard==0.9.26 lameenc==1.9.0 torch pandas pyyaml tqdm
    PYTHONPATH=src /tmp/amenv/bin/python benchmarks/bench_deform.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import librosa
import numpy as np
import pedalboard
import soundfile as sf
from threadpoolctl import threadpool_limits

from mirformer.deformations import Deformation
from mirformer.deformations.mp3 import MPEG1, encode_mp3

try:
    import audiomentations as am
except ImportError:
    am = None

SR = 44100
Deform = Callable[[np.ndarray, int], np.ndarray]  # (y [shape=(n,)], sr) -> y2


def notes(seconds: float, sr: int = SR) -> np.ndarray:
    """Music-like mono audio: half-second notes with 3 harmonics and a decay, plus faint noise."""
    rng = np.random.default_rng(0)
    t = np.arange(sr // 2) / sr
    out = []
    for _ in range(int(seconds * 2)):
        freq = 110 * 2 ** (rng.integers(0, 36) / 12)
        out.append(sum(0.1 / h * np.sin(2 * np.pi * freq * h * t) for h in (1, 2, 3)) * np.exp(-3 * t))
    y = np.concatenate(out)
    return (y + 0.003 * rng.standard_normal(len(y))).astype(np.float32)


def sine(freq: float, seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def db(power_ratio: float) -> float:
    return 10 * np.log10(power_ratio)


def power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


def peak_hz(y: np.ndarray, sr: int) -> float:
    """Frequency of the largest spectral peak: Hann window, 8x zero padding, parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), 8 * len(y)))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * len(y))


def cents(f: float, want: float) -> float:
    return 1200 * np.log2(f / want)


def lag(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which ``b`` lags ``a`` (cross-correlation peak, |lag| < 4096)."""
    n = min(len(a), len(b))
    xc = np.fft.irfft(np.fft.rfft(b[:n], 2 * n) * np.conj(np.fft.rfft(a[:n], 2 * n)))
    lags = np.r_[np.arange(4096), np.arange(-4096, 0)]
    return int(lags[np.argmax(xc[lags])])


def ours(family: str, value: float, seed: int = 0) -> Deform:
    d = Deformation(family, value)
    return lambda y, sr: d.apply(y, sr=sr, seed=seed)


def plugin(p) -> Deform:
    return lambda y, sr: p(y, sr)


def augment(name: str, **kwargs) -> Deform | None:
    """An audiomentations transform applied always (p=1), or None when not installed."""
    if am is None:
        return None
    t = getattr(am, name)(p=1.0, **kwargs)
    return lambda y, sr: np.asarray(t(samples=y, sample_rate=sr), np.float32).reshape(-1)


# Fidelity: one line per implementation, from the deform callable alone.
def noise_fidelity(f: Deform) -> str:
    y = notes(5)
    return f"SNR {db(power(y) / power(f(y, SR) - y)):.2f} dB (asked 20)"


def gain_fidelity(f: Deform) -> str:
    y = notes(5)
    return f"error {db(power(f(y, SR)) / power(y)) + 20:+.4f} dB (asked -20)"


def round_trip(make: Callable[[float], Deform], there: float, back: float) -> float:
    """Mean absolute log-mel difference in dB (80 dB range) between 10 s of notes and the same
    deformed by ``there`` and then by ``back`` (+1 then -1 semitone): what the deformation smears."""
    y = notes(10)
    z = librosa.util.fix_length(make(back)(make(there)(y, SR), SR), size=len(y))
    mel = [librosa.power_to_db(librosa.feature.melspectrogram(y=a, sr=SR), ref=1.0, amin=1e-10) for a in (y, z)]
    floor = mel[0].max() - 80
    return float(np.mean(np.abs(np.maximum(mel[1], floor) - np.maximum(mel[0], floor))))


def pitch_fidelity(make: Callable[[float], Deform]) -> str:
    y, worst, grow = sine(440), 0.0, 0
    for s in (-1, 1, 12):
        z = make(s)(y, SR)
        worst = max(worst, abs(cents(peak_hz(z[SR // 4:-SR // 4], SR), 440 * 2 ** (s / 12))))
        grow = max(grow, abs(len(z) - len(y)))
    return f"worst {worst:.1f} cents, length +-{grow}; round trip +1/-1: {round_trip(make, 1, -1):.2f} dB"


def stretch_fidelity(make: Callable[[float], Deform]) -> str:
    y, worst_len, worst_cents = sine(440), 0.0, 0.0
    for rate in (0.8, 1.25):
        z = make(rate)(y, SR)
        worst_len = max(worst_len, abs(len(z) - len(y) / rate))
        worst_cents = max(worst_cents, abs(cents(peak_hz(z[SR // 4:-SR // 4], SR), 440)))
    return (f"length off by {worst_len:.0f} samples, pitch {worst_cents:.1f} cents; "
            f"round trip x1.25/x0.8: {round_trip(make, 1.25, 0.8):.2f} dB")


def mp3_fidelity(f: Deform) -> str:
    y = notes(5)
    z = f(y, SR)
    k = lag(y, z)
    aligned = z[k:] if k >= 0 else np.r_[np.zeros(-k, np.float32), z]
    n = min(len(y), len(aligned))
    return f"lag {k}, length {len(z) - len(y):+d}, SNR {db(power(y[:n]) / power(aligned[:n] - y[:n])):.1f} dB"


def header_kbps(mp3: bytes) -> int:
    """Bitrate index of the first MPEG-1 Layer III frame header (``encode_mp3`` writes no tag before it)."""
    assert mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0, "not an MPEG frame header"
    return MPEG1[(mp3[2] >> 4) - 1]


def lowpass_fidelity(f: Deform, hz: float = 4000) -> str:
    def level(freq):
        y = sine(freq, 1.0)
        m = slice(SR // 4, 3 * SR // 4)
        return db(power(f(y, SR)[m]) / power(y[m]))
    return f"{level(hz / 4):.2f} / {level(hz):.2f} / {level(2 * hz):.1f} dB at fc/4, fc, 2fc"


def clip_fidelity(f: Deform) -> str:
    y = notes(5)
    got = 20 * np.log10(np.max(np.abs(f(y, SR))) / np.max(np.abs(y)))
    return f"peak at {got:.4f} dB re peak"


def reverb_fidelity(f: Deform) -> str:
    y = notes(5)
    impulse = np.zeros(3 * SR, np.float32)
    impulse[0] = 1.0
    tail = f(impulse, SR)[1:] ** 2
    decay = np.cumsum(tail[::-1])[::-1]  # energy still to come (Schroeder)
    t30 = np.argmax(decay < decay[0] * 1e-3) / SR
    return f"level {db(power(f(y, SR)) / power(y)):+.2f} dB, impulse tail -30 dB after {t30:.2f} s"


Case = tuple[str, str, Deform | None, Callable[[], str]]


def case(setting: str, name: str, f: Deform | None, measure: Callable[[Deform], str]) -> Case:
    """(setting, implementation, deform or None if not installed, its fidelity line)."""
    return setting, name, f, lambda: measure(f)


def swept(setting: str, name: str, make: Callable[[float], Deform | None], value: float,
          measure: Callable[[Callable[[float], Deform]], str]) -> Case:
    """A case whose fidelity measure runs several values (``make(value)`` is the deform)."""
    return setting, name, make(value), lambda: measure(make)


def cases() -> list[Case]:
    def am_pitch(method):
        return lambda s: augment("PitchShift", min_semitones=s, max_semitones=s, method=method)

    def am_stretch(method):
        return lambda r: augment("TimeStretch", min_rate=r, max_rate=r, leave_length_unchanged=False, method=method)

    def am_lowpass(zero_phase):
        return augment("LowPassFilter", min_cutoff_freq=4000, max_cutoff_freq=4000, min_rolloff=24, max_rolloff=24,
                       zero_phase=zero_phase)

    def formants_kept(s):
        return lambda y, sr: pedalboard.time_stretch(y, sr, pitch_shift_in_semitones=s, preserve_formants=True)[0]

    ladder = pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF24, cutoff_hz=4000, resonance=0, drive=1)
    return [
        case("noise snr=20", "mirformer add_noise (numpy) *", ours("noise", 20), noise_fidelity),
        case("noise snr=20", "audiomentations AddGaussianSNR",
             augment("AddGaussianSNR", min_snr_db=20, max_snr_db=20), noise_fidelity),
        case("gain db=-20", "pedalboard.Gain *", ours("gain", -20), gain_fidelity),
        case("gain db=-20", "audiomentations Gain", augment("Gain", min_gain_db=-20, max_gain_db=-20), gain_fidelity),
        swept("pitch +1", "pedalboard.time_stretch(pitch) *", lambda s: ours("pitch", s), 1, pitch_fidelity),
        swept("pitch +1", "pedalboard.time_stretch(pitch), formants kept", formants_kept, 1, pitch_fidelity),
        swept("pitch +1", "pedalboard.PitchShift", lambda s: plugin(pedalboard.PitchShift(semitones=s)), 1,
              pitch_fidelity),
        swept("pitch +1", "audiomentations PitchShift signalsmith", am_pitch("signalsmith_stretch"), 1, pitch_fidelity),
        swept("pitch +1", "audiomentations PitchShift librosa", am_pitch("librosa_phase_vocoder"), 1, pitch_fidelity),
        swept("stretch rate=1.25", "pedalboard.time_stretch *", lambda r: ours("stretch", r), 1.25, stretch_fidelity),
        swept("stretch rate=1.25", "audiomentations TimeStretch signalsmith", am_stretch("signalsmith_stretch"), 1.25,
              stretch_fidelity),
        swept("stretch rate=1.25", "audiomentations TimeStretch librosa", am_stretch("librosa_phase_vocoder"), 1.25,
              stretch_fidelity),
        case("mp3 kbps=64", "lameenc CBR + soundfile *", ours("mp3", 64),
             lambda f: mp3_fidelity(f) + f", {header_kbps(encode_mp3(notes(1), sr=SR, kbps=64))} kbit/s in headers"),
        case("mp3 kbps=64", "audiomentations Mp3Compression lameenc",
             augment("Mp3Compression", min_bitrate=64, max_bitrate=64, backend="lameenc", preserve_delay=True),
             mp3_fidelity),
        case("mp3 VBR q=9", "pedalboard.MP3Compressor (no bitrate)", plugin(pedalboard.MP3Compressor(vbr_quality=9)),
             mp3_fidelity),
        case("lowpass hz=4000", "scipy butter(4) sosfiltfilt *", ours("lowpass", 4000), lowpass_fidelity),
        case("lowpass hz=4000", "pedalboard.LowpassFilter", plugin(pedalboard.LowpassFilter(cutoff_frequency_hz=4000)),
             lowpass_fidelity),
        case("lowpass hz=4000", "pedalboard.LadderFilter LPF24", plugin(ladder), lowpass_fidelity),
        case("lowpass hz=4000", "audiomentations LowPassFilter 24 dB/oct", am_lowpass(False), lowpass_fidelity),
        case("lowpass hz=4000", "audiomentations LowPassFilter 24 dB/oct zero-phase", am_lowpass(True),
             lowpass_fidelity),
        case("clip db=-6", "pedalboard.Clipping re peak *", ours("clip", -6), clip_fidelity),
        case("clip percentile=20", "audiomentations ClippingDistortion",
             augment("ClippingDistortion", min_percentile_threshold=20, max_percentile_threshold=20), clip_fidelity),
        case("reverb room=0.5", "pedalboard.Reverb *", ours("reverb", 0.5), reverb_fidelity),
    ]


def speed(f: Deform, y: np.ndarray, repeats: int) -> float:
    f(y, SR)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(y, SR)
        times.append(time.perf_counter() - t0)
    return len(y) / SR / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the audio timed")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    threadpool_limits(1)  # numpy's BLAS; the rest (FFTs, Rubber Band, LAME, the filters) is single-threaded
    y = notes(args.seconds)
    print(f"pedalboard {pedalboard.__version__}, libsndfile {sf.__libsndfile_version__}, audiomentations "
          f"{am.__version__ if am else 'not installed'}; {args.seconds:g} s at {SR} Hz, median of {args.repeats}, "
          "1 thread; * = mirformer's choice")
    print("| setting | implementation | x realtime | fidelity |\n|---|---|---:|---|")
    for setting, name, f, fidelity in cases():
        if f is None:
            print(f"| {setting} | {name} | not installed | |")
            continue
        print(f"| {setting} | {name} | {speed(f, y, args.repeats):.0f} | {fidelity()} |", flush=True)


if __name__ == "__main__":
    main()
