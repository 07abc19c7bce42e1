import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test writes under its own MIRFORMER_HOME, never the user's."""
    monkeypatch.setenv("MIRFORMER_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def write_tone():
    def write(path, *, seconds=1.0, sr=22050, freq=440.0, channels=1, amp=0.5, fmt=None):
        t = np.arange(int(seconds * sr)) / sr
        y = amp * np.sin(2 * np.pi * freq * t)
        y = np.stack([y] * channels, axis=1) if channels > 1 else y
        sf.write(path, y, sr, format=fmt)
        return path

    return write
