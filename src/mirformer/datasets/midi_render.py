"""Render a music21 score through a General MIDI SoundFont into fixed-length mono clips.

The chain: music21 score -> ``pretty_midi`` notes in seconds (repeats written out, ties merged,
tempo marks and dynamics honoured) -> each part given a General MIDI program from ``GM_POOL``, the
tempo scaled -> one short MIDI file per clip window -> ``midirenderer`` with the TimGM6mb
SoundFont that ships with pretty_midi (48 kHz stereo WAV) -> mono, resampled with soxr, leading
silence trimmed, peak-normalised.

Notes are read from the score directly rather than through music21's MIDI writer, which takes
seconds per long score (its tie stripping is quadratic) and fails on some ABC meter changes.
"""

from __future__ import annotations

import io
from pathlib import Path

import midirenderer
import numpy as np
import pretty_midi
import soundfile as sf
import soxr
from music21 import chord, dynamics, note, repeat, tempo

from mirformer.audio import SILENCE_PEAK

SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"

# Melodic General MIDI programs (0-based) shared by every class: pianos, harpsichord, mallets,
# organs, accordion, guitars, strings, harp, voices, brass, reeds and flutes. Drums, effects and
# synth programs are left out so that every part still sounds like the notes it plays.
GM_POOL = (0, 1, 4, 6, 11, 16, 19, 21, 24, 25, 26, 40, 41, 42, 46, 48, 49, 52, 53, 56, 57, 60,
           61, 65, 68, 70, 71, 73, 74)

PEAK_DBFS = -1.0  # every clip is normalised to this peak level
MAX_LEAD_SECONDS = 1.0  # silence trimmed from a window's start; a window with more is dropped
LEAD_THRESHOLD = 1e-3  # |sample| below this fraction of the window's peak (-60 dB) is "silence"
DEFAULT_VELOCITY = 90  # MIDI velocity before a part's first dynamic mark, as music21 writes it
DEFAULT_QPM = 120.0  # quarter notes per minute of a score without tempo marks, as in music21


def load_soundfont() -> bytes:
    """The General MIDI SoundFont's bytes (TimGM6mb, about 6 MB)."""
    return SOUNDFONT.read_bytes()


def score_to_midi(score) -> pretty_midi.PrettyMIDI:
    """The pitched notes of a music21 score, in seconds, one ``pretty_midi`` instrument per part.

    Parameters
    ----------
    score : music21.stream.Score or music21.stream.Part
        A parsed score. Repeats are written out, tied notes merged, tempo marks (else
        ``DEFAULT_QPM``) and dynamic marks (MIDI velocity ``127 * volumeScalar``) honoured.
        Unpitched (percussion) notes and grace notes are left out.

    Returns
    -------
    pm : pretty_midi.PrettyMIDI
        One instrument (program 0) per part that has notes.

    Raises
    ------
    ValueError
        If the score has no pitched notes.
    """
    if score.recurse().getElementsByClass(repeat.RepeatMark).first() is not None:
        try:
            score = score.expandRepeats()
        except repeat.ExpanderException:
            pass  # inconsistent repeat marks: play the score as written
    seconds = _tempo_map(score)
    pm = pretty_midi.PrettyMIDI()
    for part in list(score.parts) or [score]:
        notes = _part_notes(part)
        if notes:
            onsets, offsets = seconds([n[0] for n in notes]), seconds([n[1] for n in notes])
            inst = pretty_midi.Instrument(program=0, name=part.partName or "")
            inst.notes = [pretty_midi.Note(velocity=velocity, pitch=pitch, start=float(on), end=float(off))
                          for (_, _, pitch, velocity), on, off in zip(notes, onsets, offsets)]
            pm.instruments.append(inst)
    if not pm.instruments:
        raise ValueError("score has no pitched notes")
    return pm


def _tempo_map(score):
    """A function mapping offsets in quarter notes to seconds, from the score's tempo marks."""
    quarters, seconds = [0.0], [0.0]
    boundaries = score.metronomeMarkBoundaries() or [
        (0.0, score.highestTime, tempo.MetronomeMark(number=DEFAULT_QPM))]
    for start, end, mark in boundaries:
        if end > start:
            quarters.append(float(end))
            seconds.append(seconds[-1] + float(end - start) * mark.secondsPerQuarter())
    return lambda q: np.interp(q, quarters, seconds)


def _part_notes(part) -> list[list]:
    """``[start, end (quarter notes), MIDI pitch, velocity]`` of a part's notes, ties merged."""
    notes: list[list] = []
    held: dict[int, list] = {}  # MIDI pitch -> note whose tie continues
    velocity = DEFAULT_VELOCITY
    for el in part.flatten():
        if isinstance(el, dynamics.Dynamic) and el.volumeScalar is not None:
            velocity = int(np.clip(round(127 * el.volumeScalar), 1, 127))
        elif isinstance(el, (note.Note, chord.Chord)) and el.quarterLength > 0:
            start, end = float(el.offset), float(el.offset + el.quarterLength)
            for component in el.notes if isinstance(el, chord.Chord) else (el,):
                pitch, tie = component.pitch.midi, component.tie.type if component.tie else None
                current = held.pop(pitch, None)
                if current is not None and tie in ("stop", "continue"):
                    current[1] = end
                else:
                    current = [start, end, pitch, velocity]
                    notes.append(current)
                if tie in ("start", "continue"):
                    held[pitch] = current
    return notes


def draw_programs(n_parts: int, *, rng: np.random.Generator) -> list[int]:
    """General MIDI programs for ``n_parts`` parts, drawn from ``GM_POOL``.

    Half of the draws give every part the same program (a piano, an organ, a choir), half an
    ensemble with one independent draw per part.
    """
    if rng.random() < 0.5:
        return [int(rng.choice(GM_POOL))] * n_parts
    return [int(p) for p in rng.choice(GM_POOL, size=n_parts)]


def arrange(pm: pretty_midi.PrettyMIDI, *, programs: list[int],
            tempo_factor: float) -> pretty_midi.PrettyMIDI:
    """Give each part its program and play the notes ``tempo_factor`` times faster from time 0.

    Parameters
    ----------
    pm : pretty_midi.PrettyMIDI
        Output of ``score_to_midi``.
    programs : list of int in [0, 127], length ``len(pm.instruments)``
        General MIDI program per part.
    tempo_factor : float > 0
        Speed factor: a note at ``t`` seconds after the first onset moves to ``t / tempo_factor``.

    Returns
    -------
    pm : pretty_midi.PrettyMIDI
        A new object; its first onset is at 0 s and ``get_end_time()`` is the performance length.
    """
    assert len(programs) == len(pm.instruments), (len(programs), len(pm.instruments))
    assert tempo_factor > 0, tempo_factor
    t0 = min(n.start for inst in pm.instruments for n in inst.notes)
    out = pretty_midi.PrettyMIDI()
    for inst, program in zip(pm.instruments, programs):
        part = pretty_midi.Instrument(program=program, name=inst.name)
        part.notes = [
            pretty_midi.Note(velocity=n.velocity, pitch=n.pitch,
                             start=(n.start - t0) / tempo_factor, end=(n.end - t0) / tempo_factor)
            for n in inst.notes
        ]
        out.instruments.append(part)
    return out


def plan_windows(duration: float, *, clip_seconds: float, max_clips: int) -> list[float]:
    """Start times of up to ``max_clips`` non-overlapping clip windows spread over a performance.

    Parameters
    ----------
    duration : float >= 0
        Performance length in seconds.
    clip_seconds : float > 0
        Clip length in seconds.
    max_clips : int >= 1
        Most windows to place.

    Returns
    -------
    starts : list of float
        Window starts in seconds, evenly spaced from 0; empty if the performance is too short.
        Each window keeps ``MAX_LEAD_SECONDS`` of slack before the end for trimmed silence.
    """
    usable = duration - MAX_LEAD_SECONDS
    n = min(max_clips, int(usable // clip_seconds)) if usable > 0 else 0
    if n <= 1:
        return [0.0] * n
    step = (usable - clip_seconds) / (n - 1)
    return [round(i * step, 3) for i in range(n)]


def render_clip(
    pm: pretty_midi.PrettyMIDI,
    *,
    start: float,
    clip_seconds: float,
    sample_rate: int,
    soundfont: bytes,
) -> tuple[np.ndarray, float] | None:
    """Render one clip window of a performance to mono audio.

    Notes sounding in ``[start, start + clip_seconds + MAX_LEAD_SECONDS)`` are rendered (notes
    cut by the window edges are shortened), leading silence is trimmed and ``clip_seconds`` kept.

    Parameters
    ----------
    pm : pretty_midi.PrettyMIDI
        Output of ``arrange``.
    start : float >= 0
        Window start in seconds.
    clip_seconds : float > 0
        Clip length in seconds.
    sample_rate : int > 0
        Output sample rate in Hz.
    soundfont : bytes
        SoundFont file contents (``load_soundfont()``).

    Returns
    -------
    clip : np.ndarray [shape=(round(clip_seconds * sample_rate),), dtype=float32]
        Mono audio peak-normalised to ``PEAK_DBFS``.
    lead : float
        Seconds of leading silence trimmed; the clip starts at ``start + lead``.
    None
        Instead of the pair, if the window is silent or starts with more than
        ``MAX_LEAD_SECONDS`` of silence.
    """
    stop = start + clip_seconds + MAX_LEAD_SECONDS
    window = pretty_midi.PrettyMIDI()
    for inst in pm.instruments:
        part = pretty_midi.Instrument(program=inst.program, name=inst.name)
        part.notes = [
            pretty_midi.Note(velocity=n.velocity, pitch=n.pitch,
                             start=max(n.start, start) - start, end=min(n.end, stop) - start)
            for n in inst.notes
            if n.end > start and n.start < stop
        ]
        window.instruments.append(part)
    # The render ends at the last MIDI event; a no-op controller (volume at its default, 100) at
    # the window's end makes it exactly as long as the window, final rests included.
    window.instruments[0].control_changes.append(
        pretty_midi.ControlChange(number=7, value=100, time=stop - start))
    midi = io.BytesIO()
    window.write(midi)
    y, native_sr = sf.read(io.BytesIO(midirenderer.render_wave_from(soundfont, midi.getvalue())),
                           dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if native_sr != sample_rate:
        y = soxr.resample(y, native_sr, sample_rate, quality="HQ")
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak < SILENCE_PEAK:
        return None
    lead = int(np.argmax(np.abs(y) >= LEAD_THRESHOLD * peak))
    n = int(round(clip_seconds * sample_rate))
    clip = y[lead:lead + n]
    if lead > MAX_LEAD_SECONDS * sample_rate or len(clip) < n:
        return None
    clip = clip * (10 ** (PEAK_DBFS / 20) / float(np.abs(clip).max()))
    return clip.astype(np.float32), lead / sample_rate


def render_score(
    score,
    *,
    rng: np.random.Generator,
    tempo_factor: float,
    clip_seconds: float,
    max_clips: int,
    sample_rate: int,
    soundfont: bytes,
) -> tuple[list[int], float, list[tuple[int, float, np.ndarray]]]:
    """Render up to ``max_clips`` clips of a music21 score, its programs drawn with ``rng``.

    Parameters
    ----------
    score : music21.stream.Score
        A parsed score (see ``score_to_midi``).
    rng : np.random.Generator
        Draws the parts' programs (``draw_programs``).
    tempo_factor, clip_seconds, max_clips, sample_rate, soundfont
        As in ``arrange``, ``plan_windows`` and ``render_clip``.

    Returns
    -------
    programs : list of int
        General MIDI program of each part.
    duration : float
        Performance length in seconds, after the tempo factor.
    clips : list of (int, float, np.ndarray)
        ``(window index, start in seconds, audio [shape=(round(clip_seconds * sample_rate),)])``
        of each clip; windows that render silent are left out, so indices may skip.
    """
    pm = score_to_midi(score)
    programs = draw_programs(len(pm.instruments), rng=rng)
    performance = arrange(pm, programs=programs, tempo_factor=tempo_factor)
    duration = performance.get_end_time()
    clips = []
    for k, start in enumerate(plan_windows(duration, clip_seconds=clip_seconds, max_clips=max_clips)):
        rendered = render_clip(performance, start=start, clip_seconds=clip_seconds,
                               sample_rate=sample_rate, soundfont=soundfont)
        if rendered is not None:
            audio, lead = rendered
            clips.append((k, round(start + lead, 3), audio))
    return programs, duration, clips
