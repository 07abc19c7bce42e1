"""Weight decay on matrices and kernels only: which parameters of the real models decay, the
groups the training modules build, and that an AdamW step leaves the others unchanged."""

import dataclasses

import pytest
import numpy as np
import torch

from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former
from mirformer.models.patchifier import Patchifier, PatchifierConfig
from mirformer.tasks.classification import Classification
from mirformer.training.modules import DownstreamModule, PretrainModule
from mirformer.training.optim import OptimConfig, param_groups

ENCODER = EncoderConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=64)
# Every matrix of a transformer block, by name within ``encoder.blocks.<i>``.
BLOCK_MATRICES = {"attn.qkv.weight", "attn.proj.weight", "mlp.0.weight", "mlp.2.weight"}


def _former(frontend: str, positions: str = "sinusoidal") -> Former:
    torch.manual_seed(0)
    return Former(frontend=frontend, encoder=dataclasses.replace(ENCODER, positions=positions), input_dim=12, n_classes=3,
                  codebook_dim=8)


def _patchifier() -> Patchifier:
    torch.manual_seed(0)
    return Patchifier(PatchifierConfig(n_mels=16, patch_frames=8, filters=4, n_down=2, decoder_width=16,
                                       encoder=dataclasses.replace(ENCODER, positions="learned", max_len=8)),
                      n_classes=3)


def _split(model, weight_decay=0.1) -> tuple[set[str], set[str]]:
    """(names that decay, names that do not) in ``param_groups``."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, weight_decay)
    return ({names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]},
            {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]})


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
@pytest.mark.parametrize("frontend,decaying", [("projection", {"frontend.proj.weight"}),
                                               ("embedding", set()),
                                               ("codebook", {"frontend.proj.weight"})])
def test_former_decays_its_matrices_only(frontend, decaying, positions):
    model = _former(frontend, positions)
    decay, keep = _split(model)
    blocks = {f"encoder.blocks.{i}.{m}" for i in range(2) for m in BLOCK_MATRICES}
    heads = {"pretrain_head.net.0.weight", "pretrain_head.net.3.weight", "head.net.1.weight"}
    assert decay == decaying | blocks | heads
    assert keep == {n for n, _ in model.named_parameters()} - decay
    assert {"encoder.cls", "encoder.norm.weight", "encoder.norm.bias", "encoder.blocks.0.norm1.weight",
            "encoder.blocks.1.attn.qkv.bias", "pretrain_head.net.2.weight", "head.net.1.bias"} <= keep
    assert ("encoder.positions" in keep) == (positions == "learned")
    assert ("frontend.embed.weight" in keep) == (frontend == "embedding")  # an nn.Embedding table
    assert all(p.ndim >= 2 for n, p in model.named_parameters() if n in decay)


def test_patchifier_decays_kernels_and_matrices_only():
    model = _patchifier()
    decay, keep = _split(model)
    params = dict(model.named_parameters())
    assert "frontend.convs.0.weight" in decay and params["frontend.convs.0.weight"].ndim == 4  # a 3x3 kernel
    assert {"decoder.ups.5.weight", "frontend.proj.weight", "decoder.mlp.0.weight", "head.net.0.weight"} <= decay
    assert {"mask_token", "encoder.cls", "encoder.positions", "frontend.convs.1.weight", "frontend.convs.1.bias",
            "decoder.ups.2.weight", "decoder.ups.5.bias"} <= keep  # convs.1 and ups.2 are BatchNorms
    assert decay == {n for n, p in params.items() if p.ndim >= 2} - {"encoder.positions"}


def test_no_decay_keeps_one_group_and_frozen_parameters_stay_out():
    model = _former("projection", "learned")
    all_params = list(model.parameters())
    assert len(param_groups(model, 0.0)) == 1 and param_groups(model, 0.0)[0]["params"] == all_params
    model.encoder.requires_grad_(False)
    decay, keep = _split(model)
    assert not any(n.startswith("encoder.") for n in decay | keep)
    assert decay | keep == {n for n, p in model.named_parameters() if p.requires_grad}


def test_an_adamw_step_without_gradient_decays_only_the_matrices():
    """lr 0.1, weight decay 0.5, zero gradients: AdamW multiplies each decaying parameter by
    1 - 0.1 * 0.5 and leaves biases, gains, CLS, positions and embeddings as they were."""
    for model in (_former("embedding", "learned"), _patchifier()):
        module = PretrainModule(model, objective=None, optim=OptimConfig(name="adamw", lr=0.1, weight_decay=0.5))
        opt = module.configure_optimizers()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        decay, keep = _split(model)
        for n, p in model.named_parameters():
            expected = before[n] * (1 - 0.1 * 0.5) if n in decay else before[n]
            assert torch.equal(p.detach(), expected), n
        assert "encoder.positions" in keep and {"frontend.embed.weight", "mask_token"} & keep


def test_modules_build_the_same_optimiser_without_weight_decay():
    """weight_decay 0: one group of every trainable parameter, as a plain list gives, so runs stay
    bit-identical; a downstream module leaves out what its strategy freezes."""
    model = _former("projection")
    opt = PretrainModule(model, objective=None, optim=OptimConfig(lr=1e-3)).configure_optimizers()
    plain = torch.optim.Adam(list(model.parameters()), lr=1e-3)
    assert opt.state_dict()["param_groups"] == plain.state_dict()["param_groups"]
    probe = DownstreamModule(_former("projection"), task=Classification(["a", "b", "c"]),
                             optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=0.1), val_targets=np.zeros(1),
                             frozen=("frontend", "encoder", "decoder"))
    groups = probe.configure_optimizers().param_groups
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(1, 0.1), (1, 0.0)]  # the head's
