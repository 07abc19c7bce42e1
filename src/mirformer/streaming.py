"""Frames on a hop grid from a stream of blocks, in bounded memory.

Log-mel frames of audio, VQ tokens of audio and the encoder's windows of feature frames are all
"frames": output frame ``t`` reads the input items ``[t * hop - left, t * hop + right)``.
``frame_segments`` turns consecutive blocks of input into segments, each holding exactly the
input of the frames it completes, and keeps only the input that later frames still read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    """The input of output frames ``[first, stop)``: ``data[i]`` is input item ``start + i``
    (zeros where that item is outside the signal)."""

    first: int
    stop: int
    start: int
    data: np.ndarray


def frame_segments(blocks: Iterable[np.ndarray], *, hop: int, left: int, right: int,
                   n_frames: Callable[[int], int], pad: bool = True,
                   max_frames: int | None = None) -> Iterator[Segment]:
    """The segments of input that complete a stream's frames, in order.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i, ...)]
        Consecutive blocks of the input (any lengths, one dtype and trailing shape): samples
        (n_i,), feature frames (n_i, dim) or token ids (n_i,); joined along axis 0.
    hop : int > 0
        Input items from one output frame to the next.
    left, right : int
        Frame ``t`` reads items ``[t * hop - left, t * hop + right)``; ``left + right > 0``.
    n_frames : callable
        ``n_frames(total)``: the number of frames of an input of ``total`` items, asked once the
        stream has ended. Before that, frame ``t`` is given once item ``t * hop + right - 1`` has
        arrived.
    pad : bool
        True: a segment holds ``(stop - first - 1) * hop + left + right`` items, zeros outside the
        input (``start`` may be negative). False: clipped to the input.
    max_frames : int > 0 or None
        Frames per segment: each holds ``max_frames`` but the last, so whatever reads a segment
        works in bounded memory. None: each block completes its frames in one segment.

    Yields
    ------
    segment : Segment
        ``first``, ``stop``: the frames it completes; ``start``: the input index of ``data[0]``;
        ``data`` [shape=(items, ...)]: their input.
    """
    assert hop > 0 and left + right > 0, f"need hop > 0 and left + right > 0, got {hop}, {left}, {right}"
    assert max_frames is None or max_frames > 0, f"max_frames must be > 0 or None, got {max_frames}"
    buf, start, total, done = None, 0, 0, 0  # buf[0] is item ``start``; frames < done given
    blocks = iter(blocks)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)  # one block ahead: the last one completes every frame
        block = np.asarray(block)
        buf = np.concatenate([block[:0] if buf is None else buf, block])  # a copy: blocks may be reused
        total += len(block)
        last = following is None
        ready = n_frames(total) if last else max(0, (total - right) // hop + 1)
        assert ready >= done, f"n_frames({total}) = {ready}, but {done} frames were given"
        while done < ready:
            stop = ready if max_frames is None else min(done + max_frames, ready)
            if not last and max_frames is not None and stop - done < max_frames:
                break  # a short segment only at the end
            yield _segment(buf, start, total, done * hop - left, (stop - 1) * hop + right, done, stop, pad)
            done = stop
            cut = min(max(0, done * hop - left), total) - start  # what later frames no longer read
            if cut > 0:
                buf, start = buf[cut:], start + cut
        block = following


def _segment(buf: np.ndarray, start: int, total: int, lo: int, hi: int, first: int, stop: int,
             pad: bool) -> Segment:
    """Items ``[lo, hi)`` of the input held from ``start`` in ``buf`` (``total`` so far)."""
    data = buf[max(lo, 0) - start : min(hi, total) - start]
    if not pad:
        return Segment(first, stop, max(lo, 0), data)
    before, after = max(0, -lo), max(0, hi - total)
    if before or after:
        zeros = np.zeros((before + after, *buf.shape[1:]), buf.dtype)
        data = np.concatenate([zeros[:before], data, zeros[before:]])
    return Segment(first, stop, lo, data)
