"""Frames files: where the feature store writes encoded frames while extracting.

One frames file per extraction call holds raw frames in the store's dtype, track after track,
after ``HEADER_BYTES`` of room for an .npy header; a small ``.json`` part per track says where its
frames are. Each frame is written once and read back as it is: no zip (``np.savez`` of a 30 s
log-mel took 2-4 ms, a CRC over 3.5 MB among it, and reading it back 1.4 ms), and when one call
fills the whole store its frames file becomes ``features.npy`` (header written into the room, file
linked) with no second copy.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np

from mirformer.atomic import write_json

# Room for the .npy header at the start of a frames file: 128 bytes hold the header of any store
# up to 10^12 frames of 10^6 values.
HEADER_BYTES = 128


class FramesFile:
    """A new ``<uuid>.frames`` in ``parts``, to which one thread appends tracks' frames: raw bytes
    in ``dtype`` after ``HEADER_BYTES`` of room."""

    def __init__(self, parts: Path, dtype: np.dtype):
        self.parts, self.dtype, self.name = parts, np.dtype(dtype), f"{uuid.uuid4().hex}.frames"
        self._file = open(parts / self.name, "wb")
        self._file.write(bytes(HEADER_BYTES))

    def add(self, part: Path, frames: np.ndarray, samples: int, seconds: float) -> None:
        """Append ``frames`` [shape=(n_frames, *frame_shape)], then write the track's ``part``
        (.json, atomically): where they are, ``samples`` (decoded length) and ``seconds`` spent."""
        data = np.ascontiguousarray(frames, self.dtype)
        offset = self._file.tell()
        self._file.write(data.data)
        self._file.flush()  # handed to the OS before the part that points at them
        write_json(part, {"samples": int(samples), "encode_seconds": float(seconds), "frames": self.name,
                          "offset": offset, "shape": list(data.shape)})

    def close(self) -> None:
        self._file.close()


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The .npy (version 2.0) header of a C-ordered array of ``dtype`` and ``shape``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return out.getvalue()


def whole_file(parts: Path, marks: dict[str, dict], frame_bytes: int) -> Path | None:
    """The frames file that holds exactly the tracks of ``marks`` (their parts), back to back from
    ``HEADER_BYTES`` to its end, or None when they are spread over several or it holds more."""
    names = {m["frames"] for m in marks.values()}
    if len(names) != 1:
        return None
    path, end = parts / names.pop(), HEADER_BYTES
    for offset, n in sorted((m["offset"], m["shape"][0]) for m in marks.values()):
        if offset != end:
            return None
        end += n * frame_bytes
    return path if end == path.stat().st_size else None
