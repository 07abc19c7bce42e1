"""``frame_segments``: each segment holds exactly its frames' input (zero-padded or clipped), frames
come as soon as their input has arrived, ``max_frames`` caps segments, and memory stays bounded."""

import tracemalloc

import numpy as np
import pytest

from mirformer.streaming import frame_segments


def _blocks(x, cuts):
    return [x[a:b] for a, b in zip([0, *cuts], [*cuts, len(x)])]


def test_padded_segments_of_a_small_signal():
    """Frames every 3 items reading [3t - 2, 3t + 2): the first two and the last see zeros."""
    x = np.arange(1, 11, dtype=np.float32)  # items 0..9 hold 1..10
    segs = list(frame_segments(_blocks(x, [4, 5]), hop=3, left=2, right=2, n_frames=lambda n: 1 + n // 3))
    assert [(s.first, s.stop, s.start) for s in segs] == [(0, 1, -2), (1, 2, 1), (2, 4, 4)]
    np.testing.assert_array_equal(segs[0].data, [0, 0, 1, 2])
    np.testing.assert_array_equal(segs[1].data, [2, 3, 4, 5])
    np.testing.assert_array_equal(segs[2].data, [5, 6, 7, 8, 9, 10, 0])  # frames 2 and 3, then a zero


def test_clipped_segments_say_where_they_start():
    x = np.arange(1, 11, dtype=np.float32)
    segs = list(frame_segments(_blocks(x, [4, 5]), hop=3, left=2, right=2, n_frames=lambda n: 1 + n // 3, pad=False))
    assert [(s.first, s.stop, s.start) for s in segs] == [(0, 1, 0), (1, 2, 1), (2, 4, 4)]
    np.testing.assert_array_equal(segs[0].data, [1, 2])
    np.testing.assert_array_equal(segs[2].data, [5, 6, 7, 8, 9, 10])


@pytest.mark.parametrize("pad", [True, False])
@pytest.mark.parametrize("max_frames", [None, 1, 7])
@pytest.mark.parametrize("shape", [(), (3,)])
def test_segments_hold_exactly_each_frames_input(pad, max_frames, shape):
    """Random hops, spans and blocks (empty ones too), of samples and of (frames, dim) arrays: the
    segments cover frames 0..n_frames(total) in order, each with the input its frames read."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        hop, left, right = int(rng.integers(1, 6)), int(rng.integers(0, 9)), int(rng.integers(1, 9))
        x = rng.standard_normal((int(rng.integers(0, 80)), *shape))
        cuts = sorted(rng.integers(0, len(x) + 1, int(rng.integers(0, 8))))
        n_frames = lambda n: max(0, (n + left) // hop)  # noqa: E731 - any count the input can serve
        segs = list(frame_segments(_blocks(x, cuts), hop=hop, left=left, right=right, n_frames=n_frames,
                                   pad=pad, max_frames=max_frames))
        assert [s.first for s in segs] == [0, *(s.stop for s in segs)][: len(segs)]
        assert (segs[-1].stop if segs else 0) == n_frames(len(x))
        padded = np.concatenate([np.zeros((left, *shape)), x, np.zeros((hop * len(x) + right, *shape))])
        for s in segs:
            lo, hi = s.first * hop - left, (s.stop - 1) * hop + right
            if pad:
                assert s.start == lo
                np.testing.assert_array_equal(s.data, padded[lo + left : hi + left])
            else:
                assert s.start == max(lo, 0)
                np.testing.assert_array_equal(s.data, x[max(lo, 0) : min(hi, len(x))])
            if max_frames and s is not segs[-1]:
                assert s.stop - s.first == max_frames


def test_a_frame_comes_as_soon_as_its_input_has_arrived():
    """Items one by one, frame t reading [2t - 1, 2t + 3): frame t comes once item 2t + 2 has
    arrived (and the next item, read ahead to know whether the stream has ended)."""
    produced = []

    def items():
        for i in range(20):
            produced.append(i)
            yield np.array([i], np.int64)

    for s in frame_segments(items(), hop=2, left=1, right=3, n_frames=lambda n: n // 2):
        if len(produced) < 20:
            assert s.stop - s.first == 1 and len(produced) == 2 * s.first + 3 + 1
    # The last item completes the rest in one segment.
    assert (s.first, s.stop) == (9, 10)


def test_ids_keep_their_dtype():
    ids = np.arange(10, dtype=np.int64)
    segs = list(frame_segments(_blocks(ids, [6]), hop=2, left=0, right=4, n_frames=lambda n: n // 2))
    assert [(s.first, s.stop) for s in segs] == [(0, 2), (2, 5)]
    assert all(s.data.dtype == np.int64 for s in segs)
    np.testing.assert_array_equal(segs[1].data, [4, 5, 6, 7, 8, 9, 0, 0])


def test_memory_does_not_grow_with_the_stream():
    """Streaming 20x more blocks does not raise the peak: only what later frames read is kept."""

    def peak(n_blocks: int) -> int:
        block = np.ones(1000)  # 8 kB
        tracemalloc.start()
        for _ in frame_segments((block for _ in range(n_blocks)), hop=10, left=50, right=60,
                                n_frames=lambda n: n // 10):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(100), peak(2000)  # 0.8 and 16 MB of input
    assert large < small + 50_000, (small, large)
