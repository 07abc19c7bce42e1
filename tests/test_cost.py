"""What a setup costs: FLOPs as torch counts them (a known layer exactly), parameters that train,
a store's extraction speed and size per hour, and training windows counted step by step."""

import numpy as np
import torch
import torch.nn as nn

from mirformer.datasets.base import Track
from mirformer.experiments.cost import flops, model_cost, parameters
from mirformer.models.probe import Probe
from mirformer.representations.store import FeatureStore

from helpers import FrameStats


def test_a_linear_layer_costs_two_flops_per_multiply_add():
    assert flops(nn.Linear(8, 4), torch.zeros(3, 5, 8)) == 2 * 3 * 5 * 8 * 4


def test_a_probe_costs_its_head_per_second_of_audio_and_trains_its_head_alone():
    probe = Probe(width=16, layers=3, layer=1, n_outputs=5, head="linear")
    window = {"x": torch.zeros(40, 48), "pad": torch.zeros(40, dtype=torch.bool)}
    cost = model_cost(probe, window, window_seconds=2.0)
    assert cost["model_flops_per_second"] == 2 * 16 * 5 / 2.0  # the pooling's sums are not matrix products
    assert cost["parameters"] == {"total": 16 * 5 + 5, "trainable": 16 * 5 + 5}
    assert "model_flops_per_clip" in model_cost(probe, window, window_seconds=None)
    probe.head.net[1].bias.requires_grad_(False)
    assert parameters(probe) == {"total": 85, "trainable": 80}


def test_a_store_knows_its_extraction_speed_and_size_per_hour(tmp_path, write_tone):
    tracks = [Track(f"t{i}", write_tone(tmp_path / f"t{i}.wav", seconds=1.0 + i, sr=8000), "train") for i in range(3)]
    store = FeatureStore(tmp_path / "features", "toy", FrameStats())
    store.extract(tracks, progress=False)
    store.reload()
    seconds = sum(store.seconds(t.id) for t in tracks)
    assert np.isclose(seconds, 6.0)
    assert store.bytes_per_hour() == (store.dir / "features.npy").stat().st_size * 3600 / seconds
    spent = store.index["encode_seconds"]
    assert 0 < spent < 5 and np.isclose(store.extraction_speed(), seconds / spent)
