"""Every file mirformer writes is atomic: a writer killed (SIGKILL) in the middle of a write
leaves the previous file whole, and nothing partial is ever read back.

A child process writes the same file over and over; the parent watches the folder and kills the
child the moment any file there is shorter than a finished one, i.e. while a write is under way.
A writer that wrote in place would leave the target itself truncated.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import json
import pytest
import torch

from helpers import fit_wide

TESTS = Path(__file__).parent
WRITERS = {
    # write_json: results.json, config.json, fit.json, history.json, index.json
    "json": ("from mirformer.atomic import write_json\n"
             "save = lambda i, path: write_json(path, {'i': i, 'blob': 'x' * 40_000_000})"),
    # Lightning's checkpoints (last.ckpt, best.ckpt) go through this CheckpointIO.
    "checkpoint": ("import torch\nfrom mirformer.training.fit import AtomicCheckpointIO\n"
                   "save = lambda i, path: AtomicCheckpointIO().save_checkpoint("
                   "{'i': i, 'w': torch.full((10_000_000,), float(i))}, path)"),
}
LOOP = ("import sys\n{writer}\npath = sys.argv[1]\n"
        "for i in range(10_000):\n    save(i, path)\n    print('saved', i, flush=True)\n")


def _kill_mid_write(cmd: list[str], folder: Path, target: Path, saved_marker: str, *, timeout: float = 90.0) -> None:
    """Run ``cmd``; after its first ``saved_marker`` line (``target`` then holds a finished file),
    SIGKILL it as soon as a file in ``folder`` is shorter than 90% of that finished file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            if line.startswith(saved_marker):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not ready.wait(0.05):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the writer never finished a first file"
        full = target.stat().st_size
        while time.monotonic() < deadline:
            for entry in os.scandir(folder):
                if entry.is_file() and entry.stat().st_size < 0.9 * full:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return
            assert proc.poll() is None, proc.stderr.read()
        pytest.fail("never saw a write in progress")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_killed_writer_leaves_the_previous_file_whole(tmp_path, writer):
    target = tmp_path / ("out.json" if writer == "json" else "last.ckpt")
    _kill_mid_write([sys.executable, "-c", LOOP.format(writer=WRITERS[writer]), str(target)], tmp_path, target,
                    "saved")
    if writer == "json":
        obj = json.loads(target.read_text())
        assert len(obj["blob"]) == 40_000_000
    else:
        obj = torch.load(target, weights_only=True)
        assert torch.equal(obj["w"], torch.full((10_000_000,), float(obj["i"])))
    # The killed write's temporary file is left behind, hidden, never under the target's name.
    assert [p.name for p in tmp_path.iterdir() if p != target and not p.name.startswith(".")] == []


# The child announces each epoch whose checkpoints are written (at the end of the epoch).
CHILD = """import sys
from pathlib import Path
import mirformer.training.fit as fit
from helpers import fit_wide

def announce(self, trainer, pl_module):
    if trainer.current_epoch > 0:
        print("checkpointed", trainer.current_epoch - 1, flush=True)

fit.History.on_train_epoch_start = announce  # a method, not a subclass: the checkpoint keeps its keys
fit_wide(Path(sys.argv[1]), 1000)
"""


@pytest.mark.slow
def test_stage_killed_while_checkpointing_resumes(tmp_path):
    stage = tmp_path / "stage"
    _kill_mid_write([sys.executable, "-c", CHILD, str(stage)], stage / "checkpoints",
                    stage / "checkpoints" / "last.ckpt", "checkpointed")
    last = torch.load(stage / "checkpoints" / "last.ckpt", weights_only=True)  # whole, not truncated
    rows = fit_wide(stage, last["epoch"] + 3)
    assert [r["epoch"] for r in rows] == list(range(last["epoch"] + 3))
    assert torch.load(stage / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == last["epoch"] + 2
