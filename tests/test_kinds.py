"""The contract every registered model kind keeps (the test a new kind copies): its config is its
own section of the comparison's config, it reads a representation of a layout it declares and
refuses others, builds from real representations, runs downstream and through every pretraining
stage, saves and loads (with a fresh head), and names the parameter groups its strategies freeze."""

import numpy as np
import pytest
import torch

from helpers import random_vqvae
from mirformer.config_tree import parse_overrides
from mirformer.errors import ConfigError
from mirformer.experiments.presets import resolve
from mirformer.kinds import KINDS, MODES, known_setups, parse_setup
from mirformer.representations import Statistics, representation_class
from mirformer.representations.vq import VQTokens

NEURAL = [k for k in KINDS.values() if k.pretrains]  # the probe has no encoder of its own: tests/test_probe.py
SMALL = parse_overrides([
    "encoder={d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 64}", "mel.n_mels=32", "window_seconds=0.2",
    "patchifier.model={n_mels: 32, filters: 4, decoder_width: 32, encoder: {d_model: 32, n_layers: 1, n_heads: 2, "
    "d_ff: 64, max_len: 4}}", "patchifier.mel.n_mels=32", "patchifier.window_patches=2"])


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return VQTokens(random_vqvae(tmp_path_factory.mktemp("vq") / "vq.pth.tar", l_bins=16))


def _representation(kind, cfg, tokens):
    spec = kind.input(cfg)
    cls = representation_class(spec.representation)
    return tokens if cls.discrete else cls(spec.config)


def _batch(rep, frames):
    if rep.layout.discrete:
        x = torch.randint(0, rep.layout.vocab, (2, frames))
    else:
        x = torch.randn(2, frames, rep.dim)
    return x, torch.zeros(2, frames, dtype=torch.bool)


def test_registry_order_and_setups():
    assert list(KINDS) == ["spectroformer", "tokenformer", "codebookformer", "patchifier", "probe", "mfcc-linear"]
    assert parse_setup("patchifier-linear-probe") == (KINDS["patchifier"], "linear-probe")
    assert parse_setup("mfcc-linear") == (KINDS["mfcc-linear"], None)
    assert len(known_setups()) == 4 * len(MODES) + 1
    with pytest.raises(ConfigError, match="unknown setup"):
        parse_setup("patchifier-pretrained")


@pytest.mark.parametrize("kind", NEURAL, ids=lambda k: k.name)
def test_every_kind_builds_runs_pretrains_and_round_trips(kind, tokens, tmp_path):
    cfg = resolve("quickstart", SMALL)
    assert isinstance(kind.settings(cfg), kind.config_class)
    rep = _representation(kind, cfg, tokens)
    kind.check_input(rep)
    stats = Statistics(counts=np.ones(rep.layout.vocab)) if rep.layout.discrete else Statistics()
    torch.manual_seed(0)
    model = kind.build(cfg, rep, stats, n_outputs=3, head=kind.head, pooling="cls").eval()
    window = kind.input(cfg).window or 8
    x, pad = _batch(rep, window)
    assert model(x, pad).shape == (2, 3)
    for stage in kind.pretraining(cfg, rep):
        crop = stage.frames or window
        loss = stage.objective(model.train(), {"x": x[:, :crop], "pad": pad[:, :crop]})
        assert torch.isfinite(loss), stage.name
    # The strategies freeze groups the model has; pretraining-only groups exist to be frozen.
    groups = set(model.parts())
    assert {g for frozen in kind.freezes.values() for g in frozen} <= groups
    assert set(kind.pretraining_only) <= groups
    model.save(tmp_path / "m.pt")
    again = kind.load(tmp_path / "m.pt").eval()
    torch.testing.assert_close(again(x, pad), model.eval()(x, pad), rtol=0, atol=0)
    fresh = kind.load(tmp_path / "m.pt", n_outputs=5)
    assert fresh.eval()(x, pad).shape == (2, 5)


@pytest.mark.parametrize("kind", NEURAL, ids=lambda k: k.name)
def test_every_kind_refuses_a_layout_it_cannot_read(kind, tokens):
    cfg = resolve("quickstart", SMALL)
    other = representation_class("mel")(cfg.mel) if kind.input(cfg).representation == tokens.name else tokens
    with pytest.raises(ConfigError, match=f"{kind.name} reads"):
        kind.check_input(other)


def test_a_frame_model_reads_any_representation_of_frames(tokens):
    """SpectroFormer's input is a name in its own config: a token model's input is refused there,
    before any data is built."""
    cfg = resolve("quickstart", {**SMALL, "spectroformer": {"input": "vq-tokens"}})
    spec = KINDS["spectroformer"].input(cfg)
    assert (spec.representation, spec.config) == ("vq-tokens", cfg.tokenizer)
    with pytest.raises(ConfigError, match="spectroformer reads frames"):
        KINDS["spectroformer"].check_input(tokens)
