import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.vqvae import checkpoint as ckpt_mod
from mirformer.representations.vqvae.checkpoint import (
    load_jukebox_vqvae,
    load_official_state,
    official_state_dict,
    save_vqvae,
)
from mirformer.representations.vqvae.bottleneck import BottleneckBlock
from mirformer.representations.vqvae.config import JUKEBOX, SMALL, VQVAEConfig
from mirformer.representations.vqvae.model import VQVAE, Resnet1D
from mirformer.representations.vqvae.chunked import encode_chunked

# Jukebox's state_dict for the default config: key, shape, dtype (copied from the reference spec).
LISTING = Path(__file__).parent / "data" / "jukebox_vqvae_state_dict.tsv"
# Three levels like Jukebox (hops 8, 32, 128) at a fraction of the compute.
TINY = dataclasses.replace(SMALL, levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), multipliers=(2, 1, 1),
                           width=8, depth=2, emb_width=16, l_bins=32)


@torch.no_grad()
def random_codebooks(model: VQVAE, *, seconds: float = 0.5, levels=None) -> VQVAE:
    """Codebooks of encoder outputs of random audio (as the lazy init does), then eval mode."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, int(seconds * model.config.sample_rate)) * 2 - 1
    for level in levels or range(model.config.levels):
        h = model.encoders[level](x)  # (1, D, T_L)
        model.bottleneck.level_blocks[level].init_k(h.transpose(1, 2).reshape(-1, model.config.emb_width))
    return model.eval()


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (conftest.py)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return random_codebooks(VQVAE(TINY))


def resnet_dilations(stack: Resnet1D) -> list[int]:
    return [block.model[1].dilation[0] for block in stack.model]


# --- config -------------------------------------------------------------------------------------

def test_default_config_is_jukebox():
    assert JUKEBOX.hop_lengths == (8, 32, 128)
    assert SMALL.hop_lengths == (128,)
    assert VQVAEConfig(levels=1, downs_t=(7,), strides_t=(2,), multipliers=(1,)).hop_lengths == (128,)
    assert VQVAEConfig.from_dict(JUKEBOX.to_dict()) == JUKEBOX


@pytest.mark.parametrize("changes", [
    dict(levels=0), dict(downs_t=(3, 2)), dict(strides_t=(3, 2, 2)), dict(multipliers=(2, 0, 1)),
    dict(l_bins=0), dict(width=2.5), dict(mu=1.0), dict(threshold=0.0), dict(commit=-1.0), dict(m_conv=0.01),
])
def test_bad_config_raises_naming_the_value(changes):
    (name, value), = changes.items()
    with pytest.raises(ConfigError, match=name):
        dataclasses.replace(JUKEBOX, **changes)


def test_unknown_config_key_raises():
    with pytest.raises(ConfigError, match="hop"):
        VQVAEConfig.from_dict({**JUKEBOX.to_dict(), "hop": 8})


# --- architecture -------------------------------------------------------------------------------

def test_default_state_dict_equals_jukebox_listing():
    """The official layout is Jukebox's listing; the model's own state dict adds the EMA statistics."""
    listing = [line.split("\t") for line in LISTING.read_text().splitlines()]
    model = VQVAE()
    state = official_state_dict(model)
    assert len(listing) == len(state) == 669
    assert [(k, str(tuple(v.shape)), str(v.dtype).removeprefix("torch.")) for k, v in state.items()] == \
        [tuple(row) for row in listing]
    ema = [f"bottleneck.level_blocks.{i}.{k}" for i in range(3) for k in ("k_sum", "k_elem", "initialised")]
    assert sorted(model.state_dict()) == sorted([*state, *ema])


def test_dilation_orders_and_level_blocks():
    model = VQVAE()
    enc0, dec0 = model.encoders[0].level_blocks[0], model.decoders[0].level_blocks[0]
    for s in range(3):
        assert resnet_dilations(enc0.model[s][1]) == [3**j for j in range(8)]  # 1, 3, ..., 2187
        assert resnet_dilations(dec0.model[s + 1][0]) == [3**j for j in reversed(range(8))]
    assert resnet_dilations(model.encoders[2].level_blocks[2].model[0][1]) == [1, 3, 9, 27]
    assert resnet_dilations(model.decoders[2].level_blocks[0].model[1][0]) == [27, 9, 3, 1]
    # Every level has its own blocks 0..L, so encoders[2] does not share encoders[0]'s.
    assert [len(e.level_blocks) for e in model.encoders] == [1, 2, 3]
    assert [len(d.level_blocks) for d in model.decoders] == [1, 2, 3]
    # Decoder convs are Jukebox's: the last transposed conv of a level block outputs emb_width.
    assert model.decoders[1].level_blocks[1].model[2][1].weight.shape == (32, 64, 4)


def test_receptive_field_is_analytical():
    model = VQVAE()
    # Level 2: per level block i, down convs (k4) at jumps J, J*2.., residual stacks 2*(1+3+9+27)
    # after each, the k3 conv to D at jump hop_i.
    def block(jump, downs, dilations):
        field = 0
        for _ in range(downs):
            field += 3 * jump
            jump *= 2
            field += 2 * sum(dilations) * jump
        return field + 2 * jump, jump

    field, jump = 1, 1
    for downs in (3, 2, 2):
        f, jump = block(jump, downs, [1, 3, 9, 27])
        field += f
    assert model.receptive_field(2) == field == 21038
    assert model.receptive_field(0) == 1 + block(1, 3, [3**j for j in range(8)])[0] == 91878


# --- encode / decode ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [22016, 22050, 1000, 127])
def test_token_counts_are_floor_t_over_hop(tiny, n):
    x = torch.rand(2, n, 1) * 2 - 1
    tokens = tiny.encode(x)
    assert [tuple(z.shape) for z in tokens] == [(2, n // h) for h in TINY.hop_lengths]
    assert all(z.dtype == torch.int64 and (z.numel() == 0 or int(z.max()) < TINY.l_bins) for z in tokens)
    assert [tuple(z.shape) for z in tiny.encode(x, start_level=1, end_level=2)] == [(2, n // 32)]


def test_thirty_seconds_at_jukebox_hops():
    # Jukebox's conv geometry (kernels, strides, paddings) with 2 channels: the same token counts.
    thin = VQVAE(dataclasses.replace(JUKEBOX, width=2, depth=1, multipliers=(1, 1, 1), emb_width=2, l_bins=4))
    tokens = thin.encode(torch.rand(1, 30 * 44100, 1) * 2 - 1)
    assert [z.shape[1] for z in tokens] == [165375, 41343, 10335]
    # The real top level's geometry (depth 4, dilations 1-27, multipliers) at 2 channels: widths
    # change no length, and the full 32-channel model took 3-5 s here.
    assert VQVAE().config == JUKEBOX
    real = VQVAE(dataclasses.replace(JUKEBOX, width=2, emb_width=2, l_bins=4))
    (top,) = real.encode(torch.rand(1, 30 * 44100, 1) * 2 - 1, start_level=2)
    assert top.shape == (1, 10335)


def test_encode_decode_shapes(tiny):
    x = torch.rand(2, 4096, 1) * 2 - 1
    tokens = tiny.encode(x)
    for level in range(3):
        y = tiny.decode(tokens[level:], start_level=level)
        assert y.shape == (2, 4096, 1) and y.dtype == torch.float32
    assert tiny.dequantise(tokens[2], 2).shape == (2, 32, TINY.emb_width)
    assert torch.equal(tiny.dequantise(tokens[0], 0)[1, 5], tiny.codebooks(0)[0][tokens[0][1, 5]])
    assert tiny.codebooks(1).shape == (1, TINY.l_bins, TINY.emb_width)


def test_forward_returns_what_the_losses_need():
    torch.manual_seed(0)
    model = VQVAE(TINY).train()
    x = torch.rand(2, 2048, 1) * 2 - 1
    out = model(x)
    for level, hop in enumerate(TINY.hop_lengths):
        assert out["tokens"][level].shape == (2, 2048 // hop)
        assert out["latents"][level].shape == out["quantised"][level].shape == (2, 2048 // hop, TINY.emb_width)
        assert out["recons"][level].shape == (2, 2048, 1)
        expected = ((out["latents"][level] - out["quantised"][level]) ** 2).mean()
        torch.testing.assert_close(out["commit_losses"][level], expected)
        assert {"fit", "pn", "entropy", "used_curr", "usage", "dk"} <= set(out["metrics"][level])
    # Straight-through: the reconstruction loss reaches the encoder.
    sum(((r - x) ** 2).mean() for r in out["recons"]).backward()
    assert model.encoders[2].level_blocks[0].model[0][0].weight.grad.abs().sum() > 0
    # The quantised latents are the codes of the tokens (checked in eval mode: training moves k).
    out = model.eval()(x)
    for level in range(3):
        torch.testing.assert_close(out["quantised"][level], model.dequantise(out["tokens"][level], level))
        assert out["tokens"][level].equal(model.encode(x, start_level=level, end_level=level + 1)[0])
        assert not out["quantised"][level].requires_grad and "dk" not in out["metrics"][level]
    with pytest.raises(AssertionError, match="multiple"):
        model(torch.zeros(1, 1000, 1))


# --- chunked encoding ---------------------------------------------------------------------------

def test_chunked_encode_equals_one_shot(tiny, monkeypatch):
    torch.manual_seed(1)
    y = (torch.rand(5 * 22050 + 77) * 2 - 1).numpy()
    lengths = []
    encode = tiny.encode
    monkeypatch.setattr(tiny, "encode", lambda x, **kw: lengths.append(x.shape[1]) or encode(x, **kw))
    for level, hop in enumerate(TINY.hop_lengths):
        lengths.clear()
        got = encode_chunked(tiny, y, level=level, chunk_seconds=0.4)
        expected = encode(torch.from_numpy(y).view(1, -1, 1), start_level=level, end_level=level + 1)[0][0]
        assert got.dtype == np.int64 and got.shape == (len(y) // hop,)
        np.testing.assert_array_equal(got, expected.numpy())
        context = math.ceil(tiny.receptive_field(level) / hop) * hop
        assert len(lengths) >= 3 and max(lengths) <= round(0.4 * 22050 / hop) * hop + 2 * context
    assert encode_chunked(tiny, y[:100], level=2).shape == (0,)


def test_streamed_blocks_encode_as_one_shot(tiny):
    """Audio arriving in blocks of any lengths (``encode_stream``, as ``mirformer embed`` reads a file)."""
    from mirformer.representations.vqvae.chunked import encode_stream

    torch.manual_seed(3)
    y = (torch.rand(4 * 22050 + 123) * 2 - 1).numpy()
    cuts = [0, 5000, 5001, 21000, 52000, len(y)]  # blocks shorter and longer than a chunk, one of 1 sample
    blocks = [y[a:b] for a, b in zip(cuts, cuts[1:])]
    for level in range(len(TINY.hop_lengths)):
        expected = tiny.encode(torch.from_numpy(y).view(1, -1, 1), start_level=level, end_level=level + 1)[0][0]
        got = np.concatenate(list(encode_stream(tiny, blocks, level=level, chunk_seconds=0.3)))
        np.testing.assert_array_equal(got, expected.numpy())


def test_encoding_in_threads_leaves_onednn_as_it_was(tiny):
    """Encodes run oneDNN-free; threads encoding at once must not leave it off for the process."""
    from concurrent.futures import ThreadPoolExecutor

    y = (torch.rand(22050) * 2 - 1).numpy()
    assert torch.backends.mkldnn.enabled
    with ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(lambda _: encode_chunked(tiny, y, level=0, chunk_seconds=0.2), range(16)))
    assert torch.backends.mkldnn.enabled
    assert all(np.array_equal(t, tokens[0]) for t in tokens)


def test_chunked_encode_equals_one_shot_jukebox():
    torch.manual_seed(2)
    model = random_codebooks(VQVAE(), levels=(1, 2))
    y = torch.rand(3 * 44100 + 5) * 2 - 1
    for level in (1, 2):  # level 0's 2.1 s receptive field needs > 6 s to test: covered by TINY
        expected = model.encode(y.view(1, -1, 1), start_level=level, end_level=level + 1)[0][0]
        assert len(np.unique(expected)) > 100
        np.testing.assert_array_equal(encode_chunked(model, y, level=level, chunk_seconds=0.75), expected.numpy())


# --- EMA codebook -------------------------------------------------------------------------------

def make_block(l_bins=8, emb_width=4) -> BottleneckBlock:
    return BottleneckBlock(dataclasses.replace(SMALL, l_bins=l_bins, emb_width=emb_width))


def test_lazy_init_takes_encoder_vectors():
    torch.manual_seed(0)
    block = make_block()
    x = torch.randn(20, 4)
    block.init_k(x)
    assert all((x == row).all(dim=1).any() for row in block.k)
    assert torch.equal(block.k_sum, block.k) and torch.equal(block.k_elem, torch.ones(8))
    few = torch.randn(3, 4)
    block.init_k(few)  # fewer vectors than codes: tiled, with noise of std 0.01 / sqrt(D)
    nearest = torch.cdist(block.k, few).min(dim=1).values
    assert (nearest > 0).all() and (nearest < 0.05).all()
    assert list(block.state_dict()) == ["k", "k_sum", "k_elem", "initialised"]  # saved, unlike in Jukebox
    assert block.initialised.dtype == torch.bool and block.initialised.ndim == 0 and bool(block.initialised)


def test_ema_update_and_restart():
    torch.manual_seed(0)
    block = make_block().train()
    centres = torch.eye(4) * 4
    block.k.copy_(torch.cat([centres, 100 + torch.randn(4, 4)]))  # codes 4..7 far from all data
    block.restore_k()  # k_sum = k, k_elem = 1
    mu = block.mu
    sums, counts = block.k_sum.clone(), block.k_elem.clone()
    for step in range(3):
        x = centres[torch.arange(24) % 3] + 0.1 * torch.randn(24, 4)  # near codes 0, 1, 2; 3 unused
        old_k = block.k.clone()
        tokens, x_q, commit, metrics = block(x.T[None], update_k=True)  # x: (N=1, D, T=24)
        expected = torch.cdist(x, old_k).argmin(dim=1)
        assert torch.equal(tokens[0], expected)
        torch.testing.assert_close(x_q[0].T, old_k[expected])  # forward value is the code (straight-through)
        batch_counts = torch.bincount(expected, minlength=8).float()
        sums = mu * sums + (1 - mu) * torch.nn.functional.one_hot(expected, 8).float().T @ x
        counts = mu * counts + (1 - mu) * batch_counts
        torch.testing.assert_close(block.k_sum, sums)
        torch.testing.assert_close(block.k_elem, counts)
        used = counts >= 1.0
        if step == 0:
            assert used.tolist() == [True] * 3 + [False] * 5
        torch.testing.assert_close(block.k[used], sums[used] / counts[used, None])
        # Codes whose EMA count fell below the threshold restart from this batch's encoder vectors.
        assert all((x == row).all(dim=1).any() for row in block.k[~used])
        assert metrics["used_curr"] == (batch_counts >= 1).sum()
        assert metrics["usage"] == pytest.approx(used.float().mean().item())
        prob = batch_counts / 24
        assert metrics["entropy"] == pytest.approx(-(prob * torch.log(prob + 1e-8)).sum().item(), abs=1e-5)


def test_restore_k_and_eval_mode_do_not_learn(tiny):
    block = tiny.bottleneck.level_blocks[0]
    block.restore_k(num_tokens=3200)
    torch.testing.assert_close(block.k_elem, torch.full((TINY.l_bins,), 100.0))
    torch.testing.assert_close(block.k_sum, block.k * 100.0)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    tiny(torch.rand(2, 2048, 1) * 2 - 1)  # eval mode
    assert all(torch.equal(v, before[k]) for k, v in tiny.state_dict().items())
    torch.testing.assert_close(block.k_elem, torch.full((TINY.l_bins,), 100.0))


def test_fresh_model_initialises_codebooks_on_first_training_batch():
    torch.manual_seed(0)
    model = VQVAE(TINY)
    assert not model.codebooks(0).any()
    model.eval()(torch.rand(2, 2048, 1))
    assert not model.codebooks(0).any()  # no init in eval mode
    model.train()(torch.rand(2, 2048, 1))
    assert all(model.codebooks(level).abs().sum() > 0 for level in range(3))


# --- checkpoints --------------------------------------------------------------------------------

def jukebox_checkpoint(path: Path, state: dict, **hps) -> Path:
    hps = dict(sr=44100, levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), l_bins=2048, **hps)
    torch.save({"hps": hps, "model": {"module." + k: v for k, v in state.items()}, "step": 3}, path)
    return path


@pytest.fixture(scope="module")
def seeded_jukebox():
    torch.manual_seed(3)
    model = VQVAE()
    for block in model.bottleneck.level_blocks:
        block.k.normal_()
    return model.eval()


def test_official_layout_round_trip(seeded_jukebox, tmp_path):
    path = jukebox_checkpoint(tmp_path / "vqvae.pth.tar", official_state_dict(seeded_jukebox))
    loaded = load_jukebox_vqvae(path)
    assert not loaded.training and loaded.config == JUKEBOX
    state = official_state_dict(seeded_jukebox)
    assert all(torch.equal(v, state[k]) for k, v in official_state_dict(loaded).items())
    torch.testing.assert_close(loaded.bottleneck.level_blocks[2].k_sum, state["bottleneck.level_blocks.2.k"])
    x = torch.rand(1, 22050, 1) * 2 - 1
    assert torch.equal(loaded.encode(x, start_level=2)[0], seeded_jukebox.encode(x, start_level=2)[0])


def test_mismatches_are_listed(seeded_jukebox, tmp_path):
    state = official_state_dict(seeded_jukebox)
    del state["decoders.1.out.bias"]
    state["encoders.0.extra.weight"] = torch.zeros(2, 3)
    state["bottleneck.level_blocks.0.k"] = torch.zeros(1024, 64)
    with pytest.raises(CheckpointError) as err:
        load_jukebox_vqvae(jukebox_checkpoint(tmp_path / "bad.pth.tar", state))
    message = str(err.value)
    assert "missing decoders.1.out.bias (1,)" in message
    assert "unexpected encoders.0.extra.weight (2, 3)" in message
    assert "mis-shaped bottleneck.level_blocks.0.k: file (1024, 64), model (2048, 64)" in message


def test_pickled_hps_need_trust(seeded_jukebox, tmp_path):
    path = jukebox_checkpoint(tmp_path / "np.pth.tar", official_state_dict(seeded_jukebox),
                              bandwidth={"l2": np.float64(0.01), "spec": np.array(4.0)})
    with pytest.raises(CheckpointError, match=r"pickled.*trust_pickle=True.*--trust-checkpoint"):
        load_jukebox_vqvae(path)
    loaded = load_jukebox_vqvae(path, trust_pickle=True)
    assert torch.equal(loaded.codebooks(1), seeded_jukebox.codebooks(1))


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_jukebox_vqvae(tmp_path / "missing.pth.tar")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_jukebox_vqvae(tmp_path / "junk.pth.tar")
    torch.save({"weights": [1, 2]}, tmp_path / "odd.pth.tar")
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        load_jukebox_vqvae(tmp_path / "odd.pth.tar")


def test_save_then_load_through_the_same_function(tiny, tmp_path):
    path = tmp_path / "run" / "vqvae.pth.tar"
    save_vqvae(tiny, path, step=7, extra={"loss": 0.5})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"hps", "model", "opt", "step", ckpt_mod.CONFIG_KEY, "loss"}
    assert raw["step"] == 7 and raw["opt"] is None and raw["hps"]["l_bins"] == TINY.l_bins
    loaded = load_jukebox_vqvae(path)  # architecture from the stored config
    assert loaded.config == TINY
    x = torch.rand(1, 4096, 1) * 2 - 1
    assert all(torch.equal(a, b) for a, b in zip(loaded.encode(x), tiny.encode(x)))
    torch.save(official_state_dict(tiny), tmp_path / "bare.pt")  # a bare state_dict with an explicit config
    assert torch.equal(load_jukebox_vqvae(tmp_path / "bare.pt", config=TINY).codebooks(2), tiny.codebooks(2))
    assert list(raw["model"]) == list(official_state_dict(tiny))  # no EMA statistics, as Jukebox
    with pytest.raises(CheckpointError, match="step"):
        save_vqvae(tiny, path, extra={"step": 1})
    assert sorted(p.name for p in path.parent.iterdir()) == ["vqvae.pth.tar"]  # no temporary left


def test_export_has_exactly_jukebox_keys(seeded_jukebox, tmp_path):
    """``save_vqvae`` writes the 669 official entries; the model's full state dict (with the EMA
    statistics) is refused by name where an official one is expected."""
    save_vqvae(seeded_jukebox, tmp_path / "vqvae.pth.tar")
    raw = torch.load(tmp_path / "vqvae.pth.tar", map_location="cpu", weights_only=True)
    assert list(raw["model"]) == [line.split("\t")[0] for line in LISTING.read_text().splitlines()]
    with pytest.raises(CheckpointError, match="unexpected bottleneck.level_blocks.0.k_sum"):
        load_official_state(VQVAE(), seeded_jukebox.state_dict())


def test_encoder_files_embed_the_official_layout(tiny, tmp_path):
    """A tokenizer inside an encoder file: the official state dict, read back strictly with the
    EMA statistics rebuilt from the codebooks."""
    from mirformer.encoder_file import read_encoder, save_encoder
    from mirformer.models.encoder import EncoderConfig
    from mirformer.models.former import Former
    from mirformer.representations import Statistics
    from mirformer.representations.tokenizers.vqvae import VQVAETokenizer
    from mirformer.representations.vq import VQTokens

    rep = VQTokens(VQVAETokenizer(tiny, level=1, identity="0" * 40, source="memory"))
    model = Former(frontend="embedding", encoder=EncoderConfig(d_model=8, n_layers=1, n_heads=2, d_ff=16, max_len=16),
                   input_dim=TINY.l_bins)
    save_encoder(tmp_path / "encoder.pt", kind="tokenformer", model=model, representation=rep, scaling="none",
                 statistics=Statistics(), window=16, eval_window=16, about={})
    block = torch.load(tmp_path / "encoder.pt", weights_only=True)["input"]["vqvae"]["state_dict"]
    assert list(block) == list(official_state_dict(tiny))
    vq = read_encoder(tmp_path / "encoder.pt").representation.tokenizer.model
    assert not vq.training and all(torch.equal(v, tiny.state_dict()[k]) for k, v in block.items())
    torch.testing.assert_close(vq.bottleneck.level_blocks[1].k_sum, tiny.codebooks(1)[0])
    assert bool(vq.bottleneck.level_blocks[1].initialised)
