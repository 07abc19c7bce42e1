"""Deformations: each changes the audio by the amount asked, measured (SNR, dB, a sine's pitch, the
MP3 frame headers, a filter's attenuation, the peak, a reverb tail); specs parse or fail naming
the spec and the cause; every family gives finite, deterministic float32 mono at 22.05, 44.1 and 48 kHz."""

import pickle
import re
from importlib.metadata import version

import numpy as np
import pytest
import soundfile as sf

from mirformer.deformations import FAMILIES, Deformation, parse_deform, parse_deforms
from mirformer.deformations.mp3 import encode_mp3
from mirformer.errors import ConfigError

RATES = (22050, 44100, 48000)
# MPEG Layer III bitrate indices 1-14 (ISO 11172-3, 13818-3), written out here rather than taken
# from the module under test.
HEADER_KBPS = {"MPEG-1": (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
               "MPEG-2": (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
HEADER_RATES = {3: ("MPEG-1", (44100, 48000, 32000)), 2: ("MPEG-2", (22050, 24000, 16000)),
                0: ("MPEG-2", (11025, 12000, 8000))}  # version bits 0: MPEG-2.5, same bitrates as MPEG-2


def sine(freq, *, sr, seconds=1.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def notes(*, sr, seconds=1.0, amp=0.3):
    """Music-like: 8th-second notes with 3 harmonics, decaying, and faint noise."""
    rng = np.random.default_rng(0)
    t = np.arange(sr // 8) / sr
    y = np.concatenate([sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) * np.exp(-8 * t)
                        for f in 110 * 2 ** (rng.integers(0, 36, int(seconds * 8)) / 12)])
    return (amp * y / np.abs(y).max() + 0.001 * rng.standard_normal(len(y))).astype(np.float32)


def power(y):
    return float(np.mean(np.square(y, dtype=np.float64)))


def db(power_ratio):
    return 10 * np.log10(power_ratio)


def peak_hz(y, sr):
    """The largest spectral peak's frequency: Hann window, 8x zero padding, parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), 8 * len(y)))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (8 * len(y))


def cents(f, want):
    return 1200 * np.log2(f / want)


def lag(a, b, most=2048):
    """Samples by which ``b`` lags ``a``: the cross-correlation's peak within +-``most``."""
    n = len(a)
    xc = np.fft.irfft(np.fft.rfft(b, 2 * n) * np.conj(np.fft.rfft(a, 2 * n)))
    lags = np.r_[np.arange(most), np.arange(-most, 0)]
    return int(lags[np.argmax(xc[lags])])


def deform(spec, y, *, sr, seed=0):
    [d] = parse_deform(spec)
    return d.apply(y, sr=sr, seed=seed)


# --- noise ---

@pytest.mark.parametrize("snr", [30, 20, 0, -5])
def test_noise_is_added_at_the_asked_snr(snr):
    y = notes(sr=22050)
    out = deform(f"noise:snr={snr}", y, sr=22050, seed=1)
    assert abs(db(power(y) / power(out.astype(np.float64) - y)) - snr) < 0.2


def test_noise_is_fixed_by_the_seed():
    y = notes(sr=22050)
    same = [deform("noise:snr=10", y, sr=22050, seed=5) for _ in range(2)]
    assert np.array_equal(*same)
    assert not np.allclose(same[0], deform("noise:snr=10", y, sr=22050, seed=6))


# --- gain ---

@pytest.mark.parametrize("gain", [-20, -0.5, 12])
def test_gain_changes_the_level_by_the_asked_db_without_clipping(gain):
    y = notes(sr=22050, amp=0.9)
    out = deform(f"gain:db={gain}", y, sr=22050)
    assert abs(db(power(out) / power(y)) - gain) < 0.01
    if gain > 0:
        assert np.abs(out).max() > 1.0  # float output keeps what went past full scale


# --- pitch and time stretch ---

@pytest.mark.parametrize("semitones", [1, -1, 12])
def test_pitch_moves_a_sine_by_the_asked_semitones_and_keeps_its_length(semitones):
    sr = 44100
    y = sine(440, sr=sr)
    out = deform(f"pitch:semitones={semitones}", y, sr=sr)
    assert len(out) == len(y)
    assert abs(cents(peak_hz(out[sr // 8:-sr // 8], sr), 440 * 2 ** (semitones / 12))) < 10


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_stretch_changes_the_length_by_the_rate_and_keeps_the_pitch(rate):
    sr = 44100
    y = sine(440, sr=sr)
    out = deform(f"stretch:rate={rate}", y, sr=sr)
    assert abs(len(out) - len(y) / rate) <= 0.01 * len(y) / rate
    assert abs(cents(peak_hz(out[sr // 8:-sr // 8], sr), 440)) < 10


# --- MP3 ---

def frames(mp3: bytes):
    """(kbit/s of every frame, rate in Hz, samples per frame), walking the frame headers from the
    first byte to the last: anything else in the file (a tag, junk) fails the walk."""
    kbps, i = [], 0
    while i < len(mp3):
        h = int.from_bytes(mp3[i:i + 4], "big")
        assert h >> 21 == 0x7FF and (h >> 17) & 3 == 1, f"no MPEG Layer III frame header at byte {i}"
        family, rates = HEADER_RATES[(h >> 19) & 3]
        rate = rates[(h >> 10) & 3]
        kbps.append(HEADER_KBPS[family][((h >> 12) & 15) - 1])
        per_frame = 1152 if family == "MPEG-1" else 576
        i += per_frame // 8 * kbps[-1] * 1000 // rate + ((h >> 9) & 1)  # frame bytes, plus the padding slot
    return kbps, rate, per_frame


@pytest.mark.parametrize("sr, kbps", [(44100, 64), (44100, 32), (44100, 320), (48000, 128), (22050, 32),
                                      (22050, 160)])
def test_mp3_is_written_at_the_asked_bitrate_and_rate(sr, kbps):
    mp3 = encode_mp3(notes(sr=sr), sr=sr, kbps=kbps)
    written, rate, per_frame = frames(mp3)
    assert rate == sr and set(written) == {kbps}
    assert abs(len(mp3) * 8 / (len(written) * per_frame / sr) / 1000 - kbps) < 0.02 * kbps


@pytest.mark.parametrize("sr, kbps, valid", [(22050, 320, "8, 16, 24"), (44100, 8, "32, 40, 48")])
def test_mp3_refuses_a_bitrate_the_rate_has_not(sr, kbps, valid):
    # LAME would quietly write another bitrate (or resample): refused, naming the valid ones.
    with pytest.raises(ConfigError, match=f"{sr} Hz cannot be {kbps} kbit/s; valid bitrates: {valid}"):
        deform(f"mp3:kbps={kbps}", notes(sr=sr), sr=sr)


@pytest.mark.parametrize("sr", [*RATES, 96000])
def test_mp3_output_is_aligned_with_the_input_and_as_long(sr):
    y = notes(sr=sr)
    out = deform("mp3:kbps=128", y, sr=sr)
    assert len(out) == len(y)
    assert abs(lag(y, out)) <= 2


def test_mp3_at_a_lower_bitrate_is_further_from_the_input():
    y = notes(sr=44100)
    error = {k: power(deform(f"mp3:kbps={k}", y, sr=44100) - y) for k in (64, 320)}
    assert error[64] > 3 * error[320]


def test_mp3_keeps_audio_past_full_scale():
    # LAME takes 16-bit PCM: audio past 1.0 is scaled down for it and back, not clipped.
    y = notes(sr=44100, amp=1.5)
    out = deform("mp3:kbps=128", y, sr=44100)
    assert np.abs(out).max() > 1.3
    assert db(power(y) / power(out - y)) > 15


# --- low-pass ---

@pytest.mark.parametrize("sr", RATES)
def test_lowpass_attenuates_an_octave_above_and_passes_below(sr):
    cutoff = 2000

    def level(freq):
        y = sine(freq, sr=sr)
        middle = slice(sr // 4, -sr // 4)
        return db(power(deform(f"lowpass:hz={cutoff}", y, sr=sr)[middle]) / power(y[middle]))

    assert level(2 * cutoff) < -48  # 4th order, both ways: 8 x 6 dB per octave
    assert abs(level(cutoff) + 6.02) < 0.1  # -3 dB one way, twice
    assert abs(level(cutoff / 4)) < 0.1


def test_lowpass_is_zero_phase():
    y = notes(sr=22050)
    assert lag(y, deform("lowpass:hz=3000", y, sr=22050)) == 0


def test_lowpass_cutoff_must_be_below_half_the_rate():
    with pytest.raises(ConfigError, match=r"12000 Hz must be below half the sample rate \(11025 Hz at 22050 Hz\)"):
        deform("lowpass:hz=12000", notes(sr=22050), sr=22050)


# --- clipping ---

@pytest.mark.parametrize("clip", [-1, -6, -20])
def test_clip_sets_the_peak_the_asked_db_below_the_clips_own(clip):
    for amp in (0.05, 0.9):
        y = notes(sr=22050, amp=amp)
        out = deform(f"clip:db={clip}", y, sr=22050)
        assert abs(np.abs(out).max() - np.abs(y).max() * 10 ** (clip / 20)) < 1e-4 * amp


def test_clip_is_independent_of_the_level():
    y = notes(sr=22050)
    np.testing.assert_allclose(deform("clip:db=-6", 0.1 * y, sr=22050) / 0.1, deform("clip:db=-6", y, sr=22050),
                               atol=1e-5)


# --- reverb ---

def test_reverb_tail_grows_with_the_room():
    sr = 22050
    impulse = np.zeros(sr, np.float32)
    impulse[0] = 1.0
    tails = []
    for room in (0.1, 0.5, 0.9):
        out = deform(f"reverb:room={room}", impulse, sr=sr)
        assert len(out) == len(impulse)
        tails.append(power(out[sr // 10:]))  # after 100 ms: the reverberation alone
    assert 0 < tails[0] < tails[1] < tails[2]


# --- every family ---

ONE_OF_EACH = ["noise:snr=10", "gain:db=-6", "mp3:kbps=64", "pitch:semitones=2", "stretch:rate=1.1",
               "lowpass:hz=4000", "clip:db=-6", "reverb:room=0.5"]


def test_one_of_each_covers_every_family():
    assert sorted(s.split(":")[0] for s in ONE_OF_EACH) == sorted(FAMILIES)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("spec", ONE_OF_EACH)
def test_every_family_gives_finite_deterministic_float32_mono(spec, sr):
    y = notes(sr=sr, seconds=0.5)
    before = y.copy()
    [d] = parse_deform(spec)
    out = d.apply(y, sr=sr, seed=3)
    assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()
    assert len(out) == (round(len(y) / d.value) if d.family == "stretch" else len(y))
    assert not np.array_equal(out, y)
    assert np.array_equal(out, d.apply(y, sr=sr, seed=3))
    assert np.array_equal(y, before)  # the input is not modified


def test_every_family_declares_itself():
    for name, family in FAMILIES.items():
        assert family.name == name and family.param and family.unit and family.description
        assert family.low < family.high and all(family.low <= c <= family.high for c in family.choices)
        library, _, rest = family.library.partition("+")
        dist, _, ver = library.rpartition("-")
        assert ver == version(dist), f"{name}: library {family.library!r} is not the installed {dist}"


# --- specs ---

def test_a_spec_gives_one_setting_per_value():
    settings = parse_deform("noise:snr=20,10")
    assert settings == [Deformation("noise", 20.0), Deformation("noise", 10.0)]
    assert [d.name for d in settings] == ["noise-snr=20", "noise-snr=10"]
    assert [d.label for d in settings] == ["noise 20 dB SNR", "noise 10 dB SNR"]
    assert settings[0].key == f"noise-snr=20@numpy-{version('numpy')}"


@pytest.mark.parametrize("spec, names, labels", [
    ("mp3:kbps=64,32", ["mp3-kbps=64", "mp3-kbps=32"], ["MP3 64 kbit/s", "MP3 32 kbit/s"]),
    ("pitch:semitones=-1,2", ["pitch-semitones=-1", "pitch-semitones=2"], ["pitch -1 semitone", "pitch +2 semitones"]),
    ("gain:db=-20,6", ["gain-db=-20", "gain-db=6"], ["gain -20 dB", "gain +6 dB"]),
    ("stretch:rate=0.9", ["stretch-rate=0.9"], ["time stretch x0.9"]),
    ("lowpass:hz=4000", ["lowpass-hz=4000"], ["low-pass 4000 Hz"]),
    ("clip:db=-6", ["clip-db=-6"], ["clipping at -6 dB re peak"]),
    ("reverb:room=0.5", ["reverb-room=0.5"], ["reverb room 0.5"]),
    (" noise : snr = 20.0 , 1e1 ", ["noise-snr=20", "noise-snr=10"], ["noise 20 dB SNR", "noise 10 dB SNR"]),
    ("pitch:semitones=-0", ["pitch-semitones=0"], ["pitch +0 semitones"]),
    ("lowpass:hz=1234.56789", ["lowpass-hz=1234.56789"], ["low-pass 1234.56789 Hz"]),  # no rounding: names stay apart
])
def test_names_and_labels(spec, names, labels):
    settings = parse_deform(spec)
    assert [d.name for d in settings] == names and [d.label for d in settings] == labels


def test_names_and_keys_are_safe_in_file_names_and_keys_name_the_library():
    for spec in ONE_OF_EACH + ["pitch:semitones=-1.5", "noise:snr=-5"]:
        [d] = parse_deform(spec)
        assert re.fullmatch(r"[a-z0-9]+-[a-z]+=-?[0-9.]+", d.name), d.name
        assert d.key.startswith(f"{d.name}@{FAMILIES[d.family].library}") and re.fullmatch(r"[A-Za-z0-9.=+@_-]+", d.key)
    [mp3] = parse_deform("mp3:kbps=64")
    assert f"lameenc-{version('lameenc')}" in mp3.key and f"libsndfile-{sf.__libsndfile_version__}" in mp3.key
    assert mp3.key.endswith("+q2")  # a fixed setting inside the family is part of the key too
    [pitch] = parse_deform("pitch:semitones=1")
    assert pitch.key == f"pitch-semitones=1@pedalboard-{version('pedalboard')}+offline-formants-move"
    [noise] = parse_deform("noise:snr=20")
    assert noise.key == f"noise-snr=20@numpy-{version('numpy')}"


@pytest.mark.parametrize("spec", ["noise:snr=30,20,10,-5", "gain:db=0,-3,12,-40", "mp3:kbps=320,128,32,8",
                                  "pitch:semitones=0,-1,2,12", "stretch:rate=1,1.1,0.8,2", "lowpass:hz=8000,2000,500",
                                  "clip:db=-1,-6,-20", "reverb:room=0,0.3,1"])
def test_strength_grows_with_the_deformation(spec):
    strengths = [d.strength for d in parse_deform(spec)]
    assert strengths == sorted(strengths) and len(set(strengths)) == len(strengths)


@pytest.mark.parametrize("spec, cause", [
    ("nois:snr=20", r"unknown family 'nois'; known: clip, gain, lowpass, mp3, noise, pitch, reverb, stretch"),
    ("noise:db=20", r"noise takes snr=\.\.\., not 'db'"),
    ("noise:snr=loud", r"'loud' is not a number; snr takes from -20 to 80 dB"),
    ("noise:snr=nan", r"'nan' is not a number"),
    ("noise:snr=inf", r"'inf' is not a number"),
    ("noise:snr=20,,10", r"'' is not a number"),
    ("noise:snr=200", r"snr=200 is out of range: snr takes from -20 to 80 dB"),
    ("clip:db=0", r"db=0 is out of range: db takes from -40 to -0.1 dB"),
    ("stretch:rate=0", r"rate=0 is out of range: rate takes from 0.5 to 2 x"),
    ("mp3:kbps=100", r"kbps=100 is out of range: kbps takes one of 8, 16, .*, 256, 320 kbit/s"),
    ("noise:snr=", r"no values; snr takes from -20 to 80 dB"),
    ("noise:snr= , ", r"'' is not a number"),
    ("noise", r"expected FAMILY:PARAM=V1,V2,\.\.\."),
    ("noise=20", r"expected FAMILY:PARAM=V1,V2,\.\.\."),
    ("noise:snr=20,20.0", r"noise snr=20 is asked twice"),
])
def test_bad_specs_name_the_spec_and_the_cause(spec, cause):
    with pytest.raises(ConfigError, match=re.escape(repr(spec)) + ".*" + cause):
        parse_deform(spec)


def test_specs_together_refuse_a_setting_asked_twice():
    assert parse_deforms([]) == []
    assert [d.name for d in parse_deforms(["noise:snr=20", "mp3:kbps=64"])] == ["noise-snr=20", "mp3-kbps=64"]
    with pytest.raises(ConfigError, match=r"specs 'noise:snr=20', 'noise:snr=10,20': noise snr=20 is asked twice"):
        parse_deforms(["noise:snr=20", "noise:snr=10,20"])
    with pytest.raises(ConfigError, match="a list of specs"):
        parse_deforms("noise:snr=20")


def test_a_setting_checks_its_value_and_survives_pickling():
    with pytest.raises(ConfigError, match="unknown deformation family 'echo'"):
        Deformation("echo", 1.0)
    with pytest.raises(ConfigError, match="snr=500 is out of range"):
        Deformation("noise", 500)
    d = Deformation("noise", 20)
    assert d.value == 20.0 and isinstance(d.value, float) and d == parse_deform("noise:snr=20.0")[0]
    assert pickle.loads(pickle.dumps(d)) == d  # joblib workers receive it
