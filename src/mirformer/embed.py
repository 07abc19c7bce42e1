"""Embeddings of audio from any encoder checkpoint, in bounded memory: ``mirformer embed`` and
``mirformer.hear`` use them.

Audio of any length is decoded block by block (downmixed, resampled to the encoder's rate with a
streaming resampler), turned into the encoder's input frames block by block (log-mel equal to
the whole signal's, VQ tokens equal to a one-shot encode), scaled as the encoder was trained, and
read by the encoder in tiled windows of its evaluation length, every ``hop`` frames. Each
encoder position (a frame, a token, or Patchifier's patch) gets the mean of its states over the
windows that hold it, from one layer or all. Only a block or two of audio and of frames, a
batch of windows and the output being written are held.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mirformer.atomic import atomic_path
from mirformer.audio import audio_blocks
from mirformer.encoder_file import EncoderFile
from mirformer.errors import ConfigError
from mirformer.streaming import frame_segments

POOLINGS = ("none", "cls", "mean")


@dataclass
class Embedding:
    """``values``: (positions, dim) per position or (dim,) for the clip; with every layer asked for,
    (positions, layers, dim) or (layers, dim). ``times``: each position's centre in seconds
    (None for a clip)."""

    values: np.ndarray
    times: np.ndarray | None


class Embedder:
    """An encoder checkpoint's network, ready to embed audio.

    Parameters
    ----------
    encoder : EncoderFile
    device : str or torch.device
    batch_size : int
        Windows run at once.
    """

    def __init__(self, encoder: EncoderFile, *, device: str | torch.device = "cpu", batch_size: int = 16):
        self.encoder, self.device, self.batch_size = encoder, torch.device(device), batch_size
        self.model = encoder.load_model().eval().to(self.device)
        self.rep = encoder.representation
        self.sample_rate = self.rep.sample_rate
        self.window = encoder.eval_window  # frames
        self.per_position = self.model.frames_per_position
        self.n_layers = self.model.encoder.cfg.n_layers
        self.dim = self.model.encoder.cfg.d_model

    # ---- input frames --------------------------------------------------------------------
    def frames(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        """The encoder's scaled input frames of the audio ``blocks()`` gives, block by block
        (ids as int64, continuous frames scaled by the encoder's statistics as float32)."""
        stats = self.encoder.statistics
        for f in self.rep.encode_stream(blocks):
            if self.rep.layout.discrete:
                yield f.astype(np.int64)
            elif stats.mean is None:
                yield f.astype(np.float32)
            else:
                yield ((f - stats.mean) / stats.std).astype(np.float32)

    def frames_of(self, y: np.ndarray) -> np.ndarray:
        """The scaled input frames of a whole signal held in memory (mono, at ``sample_rate``)."""
        parts = list(self.frames(lambda: iter([np.asarray(y, np.float32)])))
        return np.concatenate(parts) if parts else np.empty((0,))

    def check(self, *, layer: int | None, pooling: str, hop: int | None) -> int:
        """Refuse options this encoder cannot give, before any audio is read; return the hop in frames."""
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        hop = hop or self.window
        if hop % self.per_position or not 0 < hop <= self.window:
            raise ConfigError(f"hop must be a multiple of {self.per_position} frames and at most the window "
                              f"({self.window} frames), got {hop}")
        if layer is not None and not -self.n_layers - 1 <= layer <= self.n_layers:
            raise ConfigError(f"layer must be in 0..{self.n_layers} (or -1, or all), got {layer}")
        return hop

    # ---- encoding ------------------------------------------------------------------------
    @torch.inference_mode()
    def _states(self, windows: list[np.ndarray], layer: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows (each <= ``window`` frames) -> states (n, layers, P + 1, D) and position padding (n, P)."""
        x = np.zeros((len(windows), self.window, *windows[0].shape[1:]), dtype=windows[0].dtype)
        pad = torch.ones(len(windows), self.window, dtype=torch.bool)
        for i, w in enumerate(windows):
            x[i, : len(w)], pad[i, : len(w)] = w, False
        states, ppad = self.model.hidden_states(torch.from_numpy(x).to(self.device), pad.to(self.device))
        chosen = states if layer is None else [states[layer]]
        positions = states[-1].shape[1] - 1
        ppad = torch.zeros(len(windows), positions, dtype=torch.bool) if ppad is None else ppad.cpu()
        return torch.stack(chosen, 1).float().cpu(), ppad

    def embed(self, frames: Iterable[np.ndarray], *, layer: int | None = -1, pooling: str = "none",
              hop: int | None = None, write: Callable[[np.ndarray], None] | None = None) -> Embedding:
        """Embed a stream of scaled input frames (see ``frames``).

        Parameters
        ----------
        frames : iterable of np.ndarray
            Consecutive blocks of frames.
        layer : int or None
            Encoder layer (``Encoder.layers``: 0 the embedded input, -1 or ``n_layers`` the
            output); None: every layer, on an axis after the positions.
        pooling : {"none", "cls", "mean"}
            ``none``: one vector per position (frame, token or patch) with its time; ``cls`` /
            ``mean``: one clip vector, the mean over windows of their CLS state or of the mean
            of their positions.
        hop : int or None
            Frames from one window's start to the next (a multiple of a position's frames);
            None: the window length, so windows do not overlap.
        write : callable or None
            With pooling ``none``: called with each finished block of position vectors instead of
            keeping them (the returned values are then empty); bounds the memory of long audio.
        """
        hop = self.check(layer=layer, pooling=pooling, hop=hop)
        acc = _Accumulator(hop // self.per_position, write)
        batch: list[tuple[int, np.ndarray]] = []

        def run(final: bool) -> None:
            if batch and (final or len(batch) == self.batch_size):
                states, ppad = self._states([w for _, w in batch], layer)
                for (s, _), st, pp in zip(batch, states, ppad):
                    acc.add(s // self.per_position, st, pp, pooling)
                batch.clear()

        def n_windows(total: int) -> int:  # from frame 0 every hop, until one reaches the end
            return 0 if total == 0 else 1 + max(0, -(-(total - self.window) // hop))

        # Window k reads frames [k * hop, k * hop + window); the last ones are cut short by the end.
        total = 0
        for seg in frame_segments(frames, hop=hop, left=0, right=self.window, n_frames=n_windows, pad=False):
            for s in range(seg.first * hop, seg.stop * hop, hop):
                batch.append((s, seg.data[s - seg.start : s - seg.start + self.window]))
                run(final=False)
            total = seg.start + len(seg.data)  # the frames so far: the last window reaches the end
        run(final=True)
        n_positions = total // self.per_position
        values = acc.finish(n_positions, pooling)
        if pooling != "none":
            return Embedding(values if layer is None else values[0], None)
        times = self.rep.times(n_positions * self.per_position).reshape(n_positions, self.per_position).mean(1)
        return Embedding(values if layer is None or not len(values) else values[:, 0], times)

    def embed_file(self, path: str | Path, out: Path, *, layer: int | None = -1, pooling: str = "none",
                   hop: int | None = None) -> tuple[Path, int]:
        """Embed one audio file of any length into ``out`` (``.npy``, with ``<stem>.times.npy`` for
        positions), atomically, holding a block or two of audio and a batch of windows at a time.
        Returns the file written and its number of positions (1 for a clip vector)."""
        frames = self.frames(audio_blocks(path, sr=self.sample_rate))
        if pooling != "none":
            emb = self.embed(frames, layer=layer, pooling=pooling, hop=hop)
            with atomic_path(out) as tmp, open(tmp, "wb") as f:
                np.save(f, emb.values)
            return out, 1
        row = (self.n_layers + 1, self.dim) if layer is None else (self.dim,)
        with _RowWriter(out, row) as writer:
            emb = self.embed(frames, layer=layer, pooling=pooling, hop=hop, write=writer.append)
            writer.close()
        with atomic_path(out.with_suffix(".times.npy")) as tmp, open(tmp, "wb") as f:
            np.save(f, emb.times)
        return out, len(emb.times)


class _Accumulator:
    """Mean states per position over the windows holding it; positions before the next window's
    start are finished and handed to ``write`` (or kept)."""

    def __init__(self, hop_positions: int, write):
        self.hop, self.write = hop_positions, write
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}
        self.kept: list[np.ndarray] = []
        self.clip, self.windows, self.next = None, 0, 0

    def add(self, first: int, states: torch.Tensor, ppad: torch.Tensor, pooling: str) -> None:
        """States (layers, P + 1, D) of the window whose first position is ``first``."""
        real = ~ppad
        if pooling != "none":
            v = states[:, 0] if pooling == "cls" else states[:, 1:][:, real].mean(1)
            self.clip = v if self.clip is None else self.clip + v
            self.windows += 1
            return
        for p in torch.nonzero(real).flatten().tolist():
            i = first + p
            self.sums[i] = states[:, 1 + p] + self.sums[i] if i in self.sums else states[:, 1 + p].clone()
            self.counts[i] = self.counts.get(i, 0) + 1
        self.flush(first + self.hop)

    def flush(self, upto: int) -> None:
        done = [i for i in sorted(self.sums) if i < upto]
        if done:
            assert done == list(range(self.next, self.next + len(done))), "positions must finish in order"
            rows = np.stack([(self.sums.pop(i) / self.counts.pop(i)).numpy() for i in done])
            self.write(rows) if self.write else self.kept.append(rows)
            self.next += len(done)

    def finish(self, n_positions: int, pooling: str) -> np.ndarray:
        if pooling != "none":
            return (self.clip / max(1, self.windows)).numpy()
        self.flush(n_positions)
        if self.write or not self.kept:
            return np.empty((0, 0, 0), np.float32)
        return np.concatenate(self.kept)


class _RowWriter:
    """Writes rows of shape ``row`` to ``path`` as one ``.npy`` of shape (rows, *row) in bounded
    memory: the rows go to a temporary file first, then after the header (whose shape is known
    only at the end), atomically."""

    def __init__(self, path: Path, row: tuple[int, ...]):
        self.path, self.row, self.n = Path(path), row, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.raw_path = self.path.with_name(f".{self.path.name}.rows")
        self.raw = open(self.raw_path, "wb")

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, *self.row)
        self.raw.write(rows.data)
        self.n += len(rows)

    def close(self) -> None:
        self.raw.close()
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (self.n, *self.row)})
            with open(self.raw_path, "rb") as raw:
                while chunk := raw.read(1 << 20):  # 1 MB at a time: memory must not follow the output
                    f.write(chunk)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.raw.close()
        if os.path.exists(self.raw_path):
            os.unlink(self.raw_path)
