"""``mirformer embed`` on long audio against embedding the file held whole, in one run.

Streamed (mirformer): ``Embedder.embed_file``, which decodes, resamples and computes the
encoder's input block by block (30 s) and writes the rows as they finish. Reference: the same
encoder reading the same windows from a file decoded whole into memory (``load_audio``), its
whole input computed at once and its output kept in memory before one ``np.save``. Each runs in
a fresh process for each length; the table gives seconds of audio per wall second and the
process' peak resident memory (VmHWM), and the ratios streamed / whole.

The audio is synthetic notes (decoding cost does not depend on the music); give ``--audio`` to
use your own file instead of the generated ones.

    python benchmarks/bench_embed.py --encoder runs/pre/spectroformer-pretrain/encoder.pt --minutes 1 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from mirformer.encoder_file import read_encoder

CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from mirformer.audio import load_audio
from mirformer.embed import Embedder
from mirformer.encoder_file import read_encoder

mode, audio, encoder, out = sys.argv[1:5]
embedder = Embedder(read_encoder(encoder))
t0 = time.perf_counter()
if mode == "streamed":
    embedder.embed_file(audio, Path(out) / "streamed.npy")
else:
    emb = embedder.embed([embedder.frames_of(load_audio(audio, sr=embedder.sample_rate))])
    np.save(Path(out) / "whole.npy", emb.values)
seconds = time.perf_counter() - t0
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak}))
"""


def write_notes(path: Path, minutes: float, sr: int = 44100) -> Path:
    """Stereo notes with harmonics and a little noise, ``minutes`` long, as FLAC at ``sr``."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, format="FLAC") as f:
        for _ in range(int(minutes * 120)):  # half-second notes
            t = np.arange(sr // 2) / sr
            freq = 110 * 2 ** (rng.integers(0, 36) / 12)
            y = sum(0.1 / h * np.sin(2 * np.pi * freq * h * t) for h in (1, 2, 3)) + 0.01 * rng.standard_normal(len(t))
            f.write(np.stack([y, np.roll(y, 50)], 1).astype(np.float32))
    return path


def run(mode: str, audio: Path, encoder: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(audio), encoder, str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", required=True, action="append", help="an encoder checkpoint (repeat)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--audio", help="your own audio file instead of generated notes")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {Path(args.audio).name: Path(args.audio)} if args.audio else {
            f"{m:g} min": write_notes(tmp / f"{m:g}.flac", m) for m in args.minutes}
        print(f"{'encoder':<14} {'audio':<8} {'streamed x rt':>13} {'whole x rt':>10} {'speed ratio':>11} "
              f"{'streamed MB':>11} {'whole MB':>9} {'memory ratio':>12}")
        for encoder in args.encoder:
            kind = read_encoder(encoder).kind
            for name, audio in files.items():
                seconds = sf.info(audio).duration
                streamed, whole = run("streamed", audio, encoder, tmp), run("whole", audio, encoder, tmp)
                a = np.load(tmp / "streamed.npy", mmap_mode="r")
                b = np.load(tmp / "whole.npy", mmap_mode="r")
                assert a.shape == b.shape, (a.shape, b.shape)
                print(f"{kind:<14} {name:<8} {seconds / streamed['seconds']:>13.1f} {seconds / whole['seconds']:>10.1f} "
                      f"{whole['seconds'] / streamed['seconds']:>11.2f} {streamed['peak_mb']:>11.0f} "
                      f"{whole['peak_mb']:>9.0f} {streamed['peak_mb'] / whole['peak_mb']:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
