"""Clip outputs are the mean of that clip's window outputs and line up with the right track ids:
in ``predict_clips``, in the validation metrics that select checkpoints, and in ``predictions.csv``.

The model outputs the first frame of each window, so every window's output is known from the
stored features alone. Clips have unequal numbers of windows, come in another order than the
store's, and batches cross clip boundaries.
"""

import csv

import lightning as L
import numpy as np
import soundfile as sf
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from mirformer.config_tree import parse_overrides
from mirformer.experiments.downstream import score
from mirformer.experiments.outputs import load_outputs
from mirformer.experiments.prepare import prepare
from mirformer.experiments.presets import resolve
from mirformer.representations.store import FeatureStore
from mirformer.tasks.regression import Regression
from mirformer.training.predict import predict_clips
from mirformer.training.modules import DownstreamModule, OptimConfig
from mirformer.training.snippets import CentredSnippets, TiledSnippets, window_starts
from helpers import TINY, FrameStats


class FirstFrame(nn.Module):
    """A stand-in model whose output for a window is the window's first (normalised) frame."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def parts(self):  # no parameter groups for the fine-tuning strategies to freeze
        return {}

    def forward(self, x, pad):
        return x[:, 0, : self.n_classes]


def expected_clip_outputs(store, ids, length, mean, std, n) -> torch.Tensor:
    """Each clip's mean over its windows' first frames, computed from the store directly."""
    rows = []
    for tid in ids:
        frames = (np.asarray(store.get(tid), np.float64) - mean) / std
        rows.append(frames[window_starts(store.entry(tid).n_frames, length), :n].mean(0))
    return torch.tensor(np.array(rows), dtype=torch.float32)


def test_predict_clips_averages_each_clips_windows(tmp_path, tracks):
    store = FeatureStore(tmp_path, "toy", FrameStats())
    store.extract(tracks, progress=False)
    ids = ["t3", "t0", "t2", "t1"]  # not the store's order; 31, 62, 46 and 93 frames
    mean, std = np.array([-3.0, 0.1], np.float32), np.array([2.0, 0.5], np.float32)
    windows = TiledSnippets(store, ids, None, length=20, mean=mean, std=std)
    counts = [sum(1 for t, _ in windows.windows if t == i) for i in range(4)]
    assert counts == [5, 2, 3, 4]  # unequal numbers of windows per clip
    outputs = predict_clips(FirstFrame(2), windows, batch_size=3)
    torch.testing.assert_close(outputs, expected_clip_outputs(store, ids, 20, mean, std, 2))


def test_centred_validation_reads_one_middle_window_per_clip(tmp_path, tracks):
    store = FeatureStore(tmp_path, "toy", FrameStats())
    store.extract(tracks, progress=False)
    ids = ["t3", "t0", "t2", "t1"]  # 31, 62, 46 and 93 frames
    mean, std = np.array([-3.0, 0.1], np.float32), np.array([2.0, 0.5], np.float32)
    centred = CentredSnippets(store, ids, [0, 1, 2, 3], length=40, mean=mean, std=std)
    assert len(centred) == 4
    for i, tid in enumerate(ids):
        item, n = centred[i], store.entry(tid).n_frames
        frames = (np.asarray(store.get(tid), np.float32) - mean) / std
        start = max(0, (n - 40) // 2)
        real = min(40, n)
        np.testing.assert_allclose(item["x"][:real].numpy(), frames[start : start + real], rtol=1e-6)
        assert item["track"] == i and item["y"] == i and int(item["pad"].sum()) == 40 - real


def test_validation_metrics_use_clip_averages(tmp_path, tracks):
    store = FeatureStore(tmp_path, "toy", FrameStats())
    store.extract(tracks, progress=False)
    ids = ["t2", "t0", "t3", "t1"]
    targets = torch.tensor([[0.5, -1.0], [2.0, 0.0], [-1.5, 1.0], [0.0, 2.5]])
    task = Regression(["energy", "zcr"])
    module = DownstreamModule(FirstFrame(2), task=task, optim=OptimConfig(lr=1e-3), val_targets=targets.numpy())
    windows = TiledSnippets(store, ids, list(targets.numpy()), length=20)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    logged = trainer.validate(module, DataLoader(windows, batch_size=3), verbose=False)[0]
    expected = task.metrics(expected_clip_outputs(store, ids, 20, 0.0, 1.0, 2).numpy(), targets.numpy())
    assert logged["val/loss"] == torch.tensor(expected["loss"]).item()
    assert abs(logged["val/r2"] - expected["r2"]) < 1e-6


def _manifest(root):
    """Tones of 1.5 to 4.6 s (2 to 6 windows of 48 frames at 62.5 Hz), regression targets."""
    rows = ["path,pitch,loudness,split"]
    for i, seconds in enumerate([4.6, 1.5, 2.9, 3.7, 1.8, 4.2, 2.2, 3.1, 1.6, 4.4, 2.6, 3.4]):
        sr, freq, amp = 16000, 200.0 + 60 * i, 0.1 + 0.05 * i
        t = np.arange(int(seconds * sr)) / sr
        sf.write(root / f"c{i:02d}.wav", amp * np.sin(2 * np.pi * freq * t), sr)
        rows.append(f"c{i:02d}.wav,{freq},{amp},{('train', 'validation', 'test')[i % 3]}")
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root / "clips.csv"


def test_predictions_csv_lines_up_clip_averages_with_track_ids(tmp_path):
    sets = [v for k, v in zip(TINY, TINY[1:]) if k == "--set"]
    cfg = resolve("quickstart", parse_overrides([*sets, "data.name=csv", f"data.root={_manifest(tmp_path)}",
                                                 "setups=[spectroformer-scratch]", "trainer.progress=false"]))
    prepared = prepare(cfg, progress=False)
    mel = prepared.inputs["mel"]
    stage = tmp_path / "run" / "stage"
    result = score(FirstFrame(2), prepared, mel, stage, tmp_path / "run")

    with open(stage / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for split in ("train", "validation", "test"):
        tracks = prepared.tracks[split]
        ids = [t.id for t in tracks]
        assert [r["track_id"] for r in rows if r["split"] == split] == ids
        expected = expected_clip_outputs(mel.store, ids, mel.eval_window, mel.statistics.mean, mel.statistics.std, 2)
        written = torch.tensor([[float(v) for v in r["predicted"].split(";")] for r in rows if r["split"] == split])
        torch.testing.assert_close(written, expected, atol=6e-5, rtol=0)  # 4 decimals in the CSV
        assert [r["target"] for r in rows if r["split"] == split] == [prepared.task.describe(t) for t in tracks]
        saved_ids, saved_targets, saved = load_outputs(tmp_path / "run" / result["outputs"], split)
        assert saved_ids.tolist() == ids  # the clip outputs the report's intervals are computed from
        torch.testing.assert_close(torch.from_numpy(saved), expected, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(saved_targets, prepared.task.targets(tracks))
        metrics = prepared.task.metrics(expected.numpy(), prepared.task.targets(tracks))
        assert abs(result["splits"][split]["r2"] - metrics["r2"]) < 1e-5
    counts = {len(window_starts(mel.store.entry(t.id).n_frames, mel.eval_window)) for t in prepared.tracks["test"]}
    assert len(counts) == 4  # every test clip has its own number of windows
