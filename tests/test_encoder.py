import pytest
import torch

from mirformer.errors import CheckpointError
from mirformer.models.encoder import Encoder, EncoderConfig
from mirformer.models.former import Former, load_former

CFG = EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, max_len=64)


def test_cls_is_prepended_not_overwriting_a_frame():
    torch.manual_seed(0)
    enc = Encoder(CFG).eval()
    x = torch.randn(2, 10, 32)
    h = enc(x)
    assert h.shape == (2, 11, 32)
    # Changing the first real frame changes its own state: it was not replaced by CLS.
    x2 = x.clone()
    x2[:, 0] += 1.0
    h2 = enc(x2)
    assert not torch.allclose(h[:, 1], h2[:, 1])


def test_padding_is_not_attended_to():
    torch.manual_seed(0)
    model = Former(frontend="projection", encoder=CFG, input_dim=8, n_classes=3).eval()
    x = torch.randn(1, 12, 8)
    pad = torch.zeros(1, 12, dtype=torch.bool)
    pad[:, 8:] = True
    garbage = x.clone()
    garbage[:, 8:] = 100 * torch.randn(1, 4, 8)
    a, b = model(x, pad), model(garbage, pad)
    torch.testing.assert_close(a, b)
    # ...and equals the unpadded input's output.
    torch.testing.assert_close(a, model(x[:, :8]), atol=1e-5, rtol=1e-5)


def test_shapes_of_heads():
    model = Former(frontend="projection", encoder=CFG, input_dim=8, n_classes=5)
    x = torch.randn(3, 20, 8)
    assert model(x).shape == (3, 5)
    assert model.forward_pretrain(x).shape == (3, 20, 8)


def test_checkpoint_round_trip_and_head_swap(tmp_path):
    torch.manual_seed(0)
    pre = Former(frontend="projection", encoder=CFG, input_dim=8, n_classes=0)
    pre.save(tmp_path / "enc.pt")
    same = load_former(tmp_path / "enc.pt")
    for (k, v), (k2, v2) in zip(pre.state_dict().items(), same.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    ft = load_former(tmp_path / "enc.pt", n_classes=4)
    assert ft.head is not None and ft.n_classes == 4
    assert torch.equal(ft.encoder.cls, pre.encoder.cls)


def test_mismatched_checkpoint_is_refused(tmp_path):
    pre = Former(frontend="projection", encoder=CFG, input_dim=8)
    state = pre.state_dict()
    state.pop("frontend.proj.weight")
    torch.save({"spec": pre.spec(), "state_dict": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="frontend.proj.weight"):
        load_former(tmp_path / "bad.pt")


def test_pickled_checkpoint_is_refused(tmp_path):
    torch.save({"spec": object(), "state_dict": {}}, tmp_path / "pickle.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_former(tmp_path / "pickle.pt")


def test_bf16_autocast_runs():
    model = Former(frontend="projection", encoder=CFG, input_dim=8, n_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 16, 8))
    out.float().sum().backward()
    assert model.frontend.proj.weight.grad is not None
