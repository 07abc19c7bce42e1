import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirformer.datasets.base import Track


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread: they gain nothing from threads, and on a busy machine
    OpenMP's waits make them 10-100x slower. A module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test writes under its own MIRFORMER_HOME, never the user's."""
    monkeypatch.setenv("MIRFORMER_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def put_tiny_corpus(tmp_path_factory):
    """``put(home)``: the built-in corpus as ``helpers.TINY_DATA`` asks for it, rendered once per
    session (a render takes about 2 s) and copied to its folder under the MIRFORMER_HOME ``home``,
    where ``compare``, ``pretrain`` and ``extract`` find it finished and render nothing. A copy
    holds exactly the files a render there would write (the corpus is deterministic given its
    config: tests/test_music21_styles.py)."""
    rendered = []

    def put(home) -> None:
        if not rendered:
            from helpers import TINY_DATA
            from mirformer.datasets.registry import open_dataset

            source = tmp_path_factory.mktemp("tiny-corpus")
            before = os.environ.get("MIRFORMER_HOME")
            os.environ["MIRFORMER_HOME"] = str(source)
            try:
                dataset = open_dataset("music21-styles", workers=1, progress=False,
                                       **json.loads(TINY_DATA.split("=", 1)[1]))
                dataset.prepare()
            finally:
                if before is None:
                    del os.environ["MIRFORMER_HOME"]
                else:
                    os.environ["MIRFORMER_HOME"] = before
            rendered.append((source, Path(dataset.root).relative_to(source)))
        source, folder = rendered[0]
        shutil.copytree(source / folder, Path(home) / folder)

    return put


@pytest.fixture
def tiny_corpus(isolated_home, put_tiny_corpus):
    """``helpers.TINY_DATA``'s corpus already rendered under this test's MIRFORMER_HOME
    (``put_tiny_corpus``). Not for tests whose promise includes the rendering itself."""
    put_tiny_corpus(os.environ["MIRFORMER_HOME"])


@pytest.fixture
def write_tone():
    def write(path, *, seconds=1.0, sr=22050, freq=440.0, channels=1, amp=0.5, fmt=None):
        t = np.arange(int(seconds * sr)) / sr
        y = amp * np.sin(2 * np.pi * freq * t)
        y = np.stack([y] * channels, axis=1) if channels > 1 else y
        sf.write(path, y, sr, format=fmt)
        return path

    return write


class SimulatedCrash(RuntimeError):
    """Raised inside a training stage to stand for a job killed mid-epoch."""


@pytest.fixture
def crash_once(monkeypatch):
    """Arm a crash: ``crash_once(stage, epoch)`` makes the next training stage whose folder is named
    ``stage`` raise ``SimulatedCrash`` after its first optimiser step of ``epoch`` (after the
    checkpoint of the epoch before, so one step of work is lost). Returns the list of
    ``(stage, global step)`` at which every stage launch started, to see where a rerun resumed."""
    import mirformer.training.fit as fit

    armed, starts = {}, []

    def stage_of(trainer) -> str:
        return Path(trainer.checkpoint_callback.dirpath).parent.name

    class Probe(fit.History):
        def on_train_start(self, trainer, pl_module):
            starts.append((stage_of(trainer), trainer.global_step))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if armed.get(stage_of(trainer)) == trainer.current_epoch:
                del armed[stage_of(trainer)]
                raise SimulatedCrash(f"crash in epoch {trainer.current_epoch} at step {trainer.global_step}")

    monkeypatch.setattr(fit, "History", Probe)

    def arm(stage: str, epoch: int) -> list:
        armed[stage] = epoch
        return starts

    return arm


@pytest.fixture
def tracks(tmp_path, write_tone):
    """Tones of 1, 2, 1.5 and 3 s at 8 kHz, and an empty file."""
    out = []
    for i, seconds in enumerate([1.0, 2.0, 1.5, 3.0]):
        p = write_tone(tmp_path / f"t{i}.wav", seconds=seconds, sr=8000, freq=200 + 100 * i)
        out.append(Track(f"t{i}", p, "train", "a"))
    (tmp_path / "bad.wav").write_bytes(b"")
    out.append(Track("bad", tmp_path / "bad.wav", "train", "a"))
    return out


@pytest.fixture(scope="module")
def fma_root(tmp_path_factory):
    """A ten-track FMA in its real layout (``fma_layout``), bad files included."""
    from fma_layout import build_fma

    return build_fma(tmp_path_factory.mktemp("fma"))


@pytest.fixture
def vq_tracks(tmp_path):
    """Eight 2 s modulated tones at 8 kHz, six to train and two to validate a tiny VQ-VAE on."""
    rng = np.random.default_rng(0)
    out = {"train": [], "validation": []}
    t = np.arange(8000 * 2) / 8000
    for i in range(8):
        f = 100 * (i + 1)
        y = 0.4 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(size=t.size)
        path = tmp_path / f"c{i}.wav"
        sf.write(path, y, 8000)
        out["train" if i < 6 else "validation"].append(Track(f"c{i}", path, "train" if i < 6 else "validation"))
    return out
