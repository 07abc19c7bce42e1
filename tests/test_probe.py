"""Any representation as rows of the table: probes on frozen frames, layer by layer, and the round
trip of a mirformer encoder through its HEAR module."""

import json
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch

from mirformer.cli import main
from mirformer.config_tree import parse_overrides
from mirformer.datasets.folder import ClassFolder
from mirformer.errors import ConfigError
from mirformer.experiments.evaluate import run_evaluate
from mirformer.experiments.outputs import load_outputs
from mirformer.experiments.presets import resolve
from mirformer.experiments.pretrain import run_pretrain
from mirformer.models.probe import Probe
from mirformer.representations import REPRESENTATIONS, Layout, Representation
from mirformer.representations.base import parse_spec

from helpers import TINY, tiny_hf_encoder

SR, HOP = 16000, 256
PITCHES = {"low": 300.0, "mid": 600.0, "high": 1200.0}
SPLITS = {"train": 8, "validation": 4, "test": 4}


def _tone_folder(root):
    """train/validation/test folders of three classes of tones (one pitch each, random level)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    for split, n in SPLITS.items():
        for label, hz in PITCHES.items():
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                y = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * hz * rng.uniform(0.97, 1.03) * t)
                sf.write(root / split / label / f"{i}.wav", y + 0.01 * rng.standard_normal(len(t)), SR)
    return root


def _cfg(root, *extra):
    sets = [v for k, v in zip(TINY, TINY[1:]) if k == "--set"]
    return resolve("quickstart", parse_overrides([*sets, f"data={{name: folder, root: {root}}}",
                                                  "setups=[spectroformer-pretrained-finetuned]",
                                                  "evidence={n_resamples: 200, n_permutations: 200}",
                                                  "trainer.progress=false", *extra]))


@dataclass(frozen=True)
class LayeredConfig:
    path: str = ""
    layer: object = "all"


class Layered(Representation):
    """Three stacked layers of four values per frame: only layer 1 hears the pitch (the log energy
    of four bands); layers 0 and 2 are noise drawn from a hash of the audio."""

    name, input_name, label, config_class, spec_prefix = "layered-test", "layered", "layered frames", LayeredConfig, "layered"
    sample_rate, frames_per_second, layers, layout = SR, SR / HOP, 3, Layout(dim=12)

    @classmethod
    def frame_rate(cls, config):
        return SR / HOP

    @classmethod
    def from_config(cls, config, *, context=None, dtype="float32"):
        return cls()

    def config_dict(self):
        return {"layers": 3}

    def n_frames(self, n_samples):
        return n_samples // HOP

    def encode(self, y):
        frames = y[: len(y) // HOP * HOP].reshape(-1, HOP)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        hz = np.fft.rfftfreq(HOP, 1 / SR)
        edges = (200, 450, 900, 1800, 4000)
        bands = np.stack([power[:, (hz >= lo) & (hz < hi)].sum(1) for lo, hi in zip(edges, edges[1:])], 1)
        noise = np.random.default_rng(zlib.crc32(y.tobytes())).standard_normal((len(frames), 2, 4))
        return np.concatenate([noise[:, 0], np.log(bands + 1e-6), noise[:, 1]], 1).astype(np.float32)

    def to_block(self):
        return {}

    @classmethod
    def from_block(cls, block, *, source):
        return cls()


@pytest.fixture
def layered(monkeypatch):
    monkeypatch.setitem(REPRESENTATIONS, Layered.name, Layered)


def test_a_spec_names_a_representation_and_its_settings():
    cls, config = parse_spec("hear:mirformer.hear,weights=runs/x/encoder.pt")
    assert cls.name == "hear" and (config.module, config.weights) == ("mirformer.hear", "runs/x/encoder.pt")
    for bad, why in [("nope:x", "PREFIX:VALUE"), ("hear:", "PREFIX:VALUE"), ("hear:m,colour=red", "colour"),
                     ("hear:m,weights", "KEY=VALUE")]:
        with pytest.raises(ConfigError, match=why):
            parse_spec(bad)


def test_a_probe_reads_one_layer_or_a_learned_mix_of_the_mean_frame():
    torch.manual_seed(0)
    x, pad = torch.randn(2, 5, 3 * 4), torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    probe = Probe(width=4, layers=3, layer=1, n_outputs=2, head="linear").eval()
    mean = torch.stack([x[0].mean(0), x[1, :3].mean(0)]).reshape(2, 3, 4)
    torch.testing.assert_close(probe(x, pad), probe.head(mean[:, 1]))
    mixed = Probe(width=4, layers=3, layer="weighted", n_outputs=2, head="linear").eval()
    torch.testing.assert_close(mixed(x, pad), mixed.head(mean.mean(1)))  # equal weights at the start
    assert [p.shape for p in mixed.parameters() if p.requires_grad][0] == (3,)


@pytest.mark.slow  # 2.5-3 s
def test_layer_all_chooses_the_layer_that_carries_the_label(tmp_path, layered):
    """Only layer 1 of three hears the pitch: it is chosen on validation, every layer is scored on
    test, and the report draws them; the weighted mix is one row."""
    root = _tone_folder(tmp_path / "tones")
    cfg = _cfg(root, "probe={layer: all, stage: {epochs: 15, batch_size: 8, pooling: mean, optim: {lr: 0.01}}}")
    results = run_evaluate(cfg, representations=["layered:x"], run_dir=tmp_path / "run", progress=False)
    names = ["layered-x-L0-linear-probe", "layered-x-L1-linear-probe", "layered-x-L2-linear-probe"]
    assert list(results["setups"]) == names
    [group] = results["evidence"]["layers"]
    assert group["chosen"] == 1 and group["best_on_test"] == 1 and len(group["layers"]) == 3
    scores = {r["layer"]: r["test"]["value"] for r in group["layers"]}
    assert scores[1] >= 0.9 and max(scores[0], scores[2]) < 0.75, scores
    assert (tmp_path / "run" / "layers.png").stat().st_size > 0
    assert "Chosen on validation: layer 1" in (tmp_path / "run" / "report.md").read_text()

    cfg = _cfg(root, "probe={layer: weighted, stage: {epochs: 15, batch_size: 8, pooling: mean, optim: {lr: 0.01}}}")
    results = run_evaluate(cfg, representations=["layered:x"], run_dir=tmp_path / "mix", progress=False)
    [(name, setup)] = results["setups"].items()
    assert name == "layered-x-weighted-linear-probe" and setup["splits"]["test"]["macro_f1"] >= 0.75
    assert "layers" not in results["evidence"]  # one row: nothing to choose among


def test_the_weighted_mix_learns_to_read_the_layer_that_carries_the_label():
    torch.manual_seed(0)
    y = torch.randint(0, 3, (60,))
    x = 0.3 * torch.randn(60, 12, 3, 4)
    x[:, :, 1, :3] += 2 * torch.nn.functional.one_hot(y, 3)[:, None].float()
    probe = Probe(width=4, layers=3, layer="weighted", n_outputs=3, head="linear")
    opt = torch.optim.AdamW(probe.parameters(), lr=0.03)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(probe(x.reshape(60, 12, 12)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert probe.layer_weights.softmax(0)[1] > 0.8


@pytest.mark.slow
def test_round_trip_through_the_hear_module_gives_the_linear_probe_scores(tmp_path, capsys):
    """A mirformer encoder read through ``hear:mirformer.hear`` with its file as weights scores as
    ``evaluate --encoder`` in linear-probe mode (its states, layer by layer) on the same data: exactly."""
    root = _tone_folder(tmp_path / "tones")
    encoder = run_pretrain(_cfg(root), run_dir=tmp_path / "pre", progress=False)["spectroformer"]
    common = ["--preset", "quickstart", *TINY, "--set", f"data={{name: folder, root: {root}}}",
              "--set", "evidence={n_resamples: 200, n_permutations: 200}", "--set", "probe.stage.epochs=3", "--quiet"]
    assert main(["evaluate", "--encoder", str(encoder), "--mode", "linear-probe", "--layer", "last",
                 "--out", str(tmp_path / "direct"), *common]) == 0
    assert main(["evaluate", "--representation", f"hear:mirformer.hear,weights={encoder}", "--baseline",
                 "--out", str(tmp_path / "hear"), *common]) == 0
    direct = json.loads((tmp_path / "direct" / "results.json").read_text())["setups"]
    through = json.loads((tmp_path / "hear" / "results.json").read_text())["setups"]
    assert list(direct) == ["spectroformer-folder-linear-probe"]
    assert list(through) == ["hear-mirformer.hear-linear-probe", "mfcc-linear"]
    a, b = direct["spectroformer-folder-linear-probe"], through["hear-mirformer.hear-linear-probe"]
    assert a["splits"] == b["splits"] and a["history"] == b["history"]
    for split in ("validation", "test"):
        ids_a, _, out_a = load_outputs(tmp_path / "direct" / a["outputs"], split)
        ids_b, _, out_b = load_outputs(tmp_path / "hear" / b["outputs"], split)
        assert list(ids_a) == list(ids_b)
        np.testing.assert_array_equal(out_a, out_b)
    assert "| hear-mirformer.hear-linear-probe |" in capsys.readouterr().out
    # Every layer of the encoder (its embedded input and its one block's output), chosen on validation.
    assert main(["evaluate", "--encoder", str(encoder), "--layer", "all", "--out", str(tmp_path / "all"), *common]) == 0
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    assert list(results["setups"]) == ["spectroformer-folder-L0-linear-probe", "spectroformer-folder-L1-linear-probe"]
    assert results["setups"]["spectroformer-folder-L1-linear-probe"]["splits"] == a["splits"]
    assert results["evidence"]["layers"][0]["chosen"] in (0, 1)


def test_representations_are_refused_before_any_work(tmp_path):
    root = _tone_folder(tmp_path / "tones")
    with pytest.raises(ConfigError, match="no-such-module"):
        run_evaluate(_cfg(root), representations=["hear:no-such-module"], run_dir=tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="at least one --encoder checkpoint or --representation"):
        run_evaluate(_cfg(root), run_dir=tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="--mode full would train them"):
        run_evaluate(_cfg(root, "probe.layer=all"), [tmp_path / "enc.pt"], modes=["full"], progress=False)
    with pytest.raises(ConfigError, match="probe.strategies must list some of"):
        _cfg(root, "probe.strategies=[full]")
    assert not (tmp_path / "r" / "results.json").exists()


def test_compare_puts_a_representation_beside_its_setups(tmp_path, layered):
    """``representations=[...]`` in a comparison: the probe is a row of the same report, tested
    against the baseline like every setup."""
    from mirformer.experiments.compare import run_compare

    cfg = _cfg(_tone_folder(tmp_path / "tones"), "setups=[mfcc-linear]", "representations=[layered:x]",
               "probe.stage={epochs: 6, batch_size: 8, pooling: mean, optim: {lr: 0.01}}")
    results = run_compare(cfg, tmp_path / "run", progress=False)
    assert list(results["setups"]) == ["layered-x-linear-probe", "mfcc-linear"]
    asked = {(t["a"], t["b"], t["question"]) for t in results["evidence"]["paired"]}
    assert ("layered-x-linear-probe", "mfcc-linear", "against the MFCC baseline") in asked
    assert results["representations"]["layered:x"]["name"] == "layered-test"
    # What each row costs (experiments.cost), measured in the run: 6 epochs of 24 training windows.
    cost = results["setups"]["layered-x-linear-probe"]["cost"]
    assert cost["training"]["windows"] == 6 * 24 and cost["training"]["windows_per_second"] > 0
    assert cost["parameters"] == {"total": 4 * 3 + 3, "trainable": 4 * 3 + 3}  # a linear head on one layer's 4
    assert cost["model_flops_per_second"] == 2 * 4 * 3 / 0.768 and cost["inference_x_realtime"] > 0
    assert results["setups"]["mfcc-linear"]["cost"]["extraction_x_realtime"] > 0 and results["machine"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Cost" in report and (tmp_path / "run" / "cost.png").stat().st_size > 0


def test_precomputed_embeddings_are_checked_against_the_dataset_then_probed(tmp_path):
    """One clip vector per track (its band energies): probed as a row; a NaN, a missing track or a
    vector of another size is refused, by id, before anything is stored or trained."""
    root = _tone_folder(tmp_path / "tones")
    emb = tmp_path / "emb"
    for track in ClassFolder(root).tracks():
        y, _ = sf.read(track.path, dtype="float32")
        (emb / track.id).parent.mkdir(parents=True, exist_ok=True)
        np.save(emb / f"{track.id}.npy", Layered().encode(y)[:, 4:8].mean(0))
    results = run_evaluate(_cfg(root, "probe.stage={epochs: 10, batch_size: 8, pooling: mean, optim: {lr: 0.01}}",
                                "deform=[noise:snr=0]"),
                           representations=[f"npy:{emb}"], run_dir=tmp_path / "run", progress=False)
    [(name, setup)] = results["setups"].items()
    assert name == "npy-emb-linear-probe" and setup["splits"]["test"]["macro_f1"] >= 0.75
    assert results["representations"][f"npy:{emb}"]["eval_window_frames"] == 1  # one vector per clip
    # Deformed audio cannot reach precomputed embeddings: said, not scored as if it did.
    assert "robustness" not in setup and "precomputed" in setup["robustness_skipped"]
    assert "not scored on deformed clips" in (tmp_path / "run" / "report.md").read_text()

    bad = np.load(emb / "test/mid/1.wav.npy")
    bad[2] = np.nan
    np.save(emb / "test/mid/1.wav.npy", bad)
    (emb / "train/low/3.wav.npy").unlink()
    np.save(emb / "validation/high/0.wav.npy", np.zeros(5, np.float32))
    with pytest.raises(ConfigError) as caught:
        run_evaluate(_cfg(root), representations=[f"npy:{emb}"], run_dir=tmp_path / "bad", progress=False)
    for track in ("test/mid/1.wav", "train/low/3.wav", "validation/high/0.wav"):
        assert track in str(caught.value)
    assert not (tmp_path / "bad" / "results.json").exists()


def test_a_hugging_face_folder_is_probed_layer_by_layer(tmp_path):
    """A tiny random HuBERT saved with ``save_pretrained``: every hidden state stored stacked in
    one feature store, one probe per state, each reading its own slice."""
    folder = tiny_hf_encoder(tmp_path / "hubert", family="hubert")
    cfg = _cfg(_tone_folder(tmp_path / "tones"), "probe={layer: all, stage: {epochs: 2, pooling: mean}}")
    results = run_evaluate(cfg, representations=[f"hf:{folder}"], run_dir=tmp_path / "run", progress=False)
    rep = results["representations"][f"hf:{folder}"]
    width = rep["about"]["hidden_size"]
    assert rep["about"]["layer"] == "all" and rep["about"]["layers"] == 2  # 2 layers + the input: 3 states
    assert list(results["setups"]) == [f"hf-hubert-L{i}-linear-probe" for i in range(3)]
    for i in range(3):
        head = torch.load(results["setups"][f"hf-hubert-L{i}-linear-probe"]["checkpoint"], weights_only=True)
        assert head["state_dict"]["model.head.net.1.weight"].shape == (3, width)
    assert [g["label"] for g in results["evidence"]["layers"]] == ["hf-hubert"]


def test_a_numbered_layer_picks_from_a_precomputed_stack(tmp_path):
    """Precomputed (frames, layers, width) arrays cannot be narrowed by their spec: ``--layer 1``
    probes the second layer of the stack, the one that hears the pitch."""
    root = _tone_folder(tmp_path / "tones")
    for track in ClassFolder(root).tracks():
        y, _ = sf.read(track.path, dtype="float32")
        (tmp_path / "emb" / track.id).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "emb" / f"{track.id}.npy", Layered().encode(y).reshape(-1, 3, 4))
    scores = {}
    for layer in (0, 1):
        cfg = _cfg(root, f"probe={{layer: {layer}, stage: {{epochs: 15, batch_size: 8, pooling: mean, optim: {{lr: 0.01}}}}}}")
        results = run_evaluate(cfg, representations=[f"npy:{tmp_path / 'emb'},frames_per_second={SR / HOP}"],
                               run_dir=tmp_path / f"L{layer}", progress=False)
        [setup] = results["setups"].values()
        assert setup["layer"] == layer and setup["layers"] == 3
        scores[layer] = setup["splits"]["test"]["macro_f1"]
    assert scores[1] >= 0.9 and scores[0] < 0.75, scores
