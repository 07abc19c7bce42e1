import librosa
import numpy as np
import pytest
import torch

from mirformer.errors import ConfigError, MirformerError
from mirformer.representations.vqvae.losses import (
    MULTISPEC_CONFIGS,
    Bandwidth,
    compute_bandwidth,
    lmix_loss,
    multispectral_loss,
    spectral_convergence,
    vqvae_loss,
)

BW = Bandwidth(l1=0.1, l2=0.02, spec=50.0)


def _audio(n=2, t=4096, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (0.3 * torch.randn(n, t, 1, generator=g)).to(dtype)


@pytest.mark.parametrize("linf_k, top_mean", [(2, (9 + 4 + 16 + 0) / 4), (2048, 30 / 6)])
def test_lmix_matches_hand_computation(linf_k, top_mean):
    x = torch.zeros(2, 3, 1)
    x_hat = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]).unsqueeze(-1)  # squared: [1 4 9], [16 0 0]
    loss = lmix_loss(x, x_hat, bandwidth_l2=2.0, linf_k=linf_k)
    assert loss.item() == pytest.approx((1.0 * 30 / 6 + 0.02 * top_mean) / 2.0)


def test_lmix_weights():
    x, x_hat = torch.zeros(1, 4, 1), torch.tensor([[[1.0], [0.0], [0.0], [3.0]]])
    assert lmix_loss(x, x_hat, bandwidth_l2=1.0, linf=0.0).item() == pytest.approx(10 / 4)
    assert lmix_loss(x, x_hat, bandwidth_l2=1.0, l2=0.0, linf=1.0, linf_k=1).item() == pytest.approx(9.0)


def _numpy_spec_distance(a, b, n_fft, hop, win):
    """Frobenius norm of the STFT magnitude difference, one frame at a time (torch.stft's definition)."""
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    pa, pb = (np.pad(s, n_fft // 2, mode="reflect") for s in (a, b))
    total = 0.0
    for start in range(0, len(pa) - n_fft + 1, hop):
        fa = np.abs(np.fft.rfft(pa[start : start + n_fft] * window))
        fb = np.abs(np.fft.rfft(pb[start : start + n_fft] * window))
        total += np.sum((fa - fb) ** 2)
    return np.sqrt(total)


def test_multispectral_matches_reimplementation():
    x, x_hat = _audio(seed=0), _audio(seed=1)
    cfg = MULTISPEC_CONFIGS[2]
    expected = np.mean([_numpy_spec_distance(x[i, :, 0].numpy(), x_hat[i, :, 0].numpy(), *cfg) for i in range(2)])
    got = multispectral_loss(x, x_hat, bandwidth_spec=4.0, configs=(cfg,))
    assert got.item() == pytest.approx(expected / 4.0, rel=1e-9)
    # several configs: the mean of the single-config losses
    singles = [multispectral_loss(x, x_hat, bandwidth_spec=1.0, configs=(c,)).item() for c in MULTISPEC_CONFIGS]
    assert multispectral_loss(x, x_hat, bandwidth_spec=1.0).item() == pytest.approx(np.mean(singles), rel=1e-9)


def test_multispectral_averages_channels():
    x = _audio()
    stereo = torch.cat([x + 0.1, x - 0.1], dim=-1)  # mean over channels is x
    assert multispectral_loss(stereo, torch.zeros_like(stereo), bandwidth_spec=1.0).item() == pytest.approx(
        multispectral_loss(x, torch.zeros_like(x), bandwidth_spec=1.0).item(), rel=1e-9)


def test_multispectral_zero_for_identical_and_decreasing():
    x, noise = _audio(seed=0, dtype=torch.float32), _audio(seed=1, dtype=torch.float32)
    assert multispectral_loss(x, x.clone(), bandwidth_spec=1.0).item() == 0.0
    losses = [multispectral_loss(x, x + a * noise, bandwidth_spec=1.0).item() for a in (1.0, 0.3, 0.1, 0.01)]
    assert losses[0] > 0 and all(a > b for a, b in zip(losses, losses[1:])), losses


def test_spectral_convergence():
    x = _audio()
    assert torch.all(spectral_convergence(x, x) == 0)
    assert spectral_convergence(x, 2 * x) == pytest.approx(torch.ones(2), rel=1e-9)  # |2X| - |X| = |X|
    assert torch.all(spectral_convergence(torch.zeros_like(x), x) == 0)  # silent target scores 0


def test_bandwidth_matches_numpy_and_librosa():
    rng = np.random.default_rng(0)
    signals = [0.2 * rng.standard_normal(3000) + 0.05, 0.5 * np.sin(np.arange(5000) / 7.0)]
    bw = compute_bandwidth(signals)
    pooled = np.concatenate(signals)
    assert bw.l2 == pytest.approx(np.var(pooled), rel=1e-10)
    assert bw.l1 == pytest.approx(np.mean(np.abs(pooled)), rel=1e-10)
    stfts = [librosa.stft(s, n_fft=2048, hop_length=256, win_length=1536, pad_mode="reflect") for s in signals]
    norms = [np.linalg.norm(np.abs(s)) for s in stfts]
    assert bw.spec == pytest.approx(np.mean(norms), rel=1e-6)


def test_bandwidth_segments():
    y = np.random.default_rng(0).standard_normal(10_500)
    bw = compute_bandwidth([y], segment_length=5000)  # two examples, last 500 samples dropped
    expected = compute_bandwidth([y[:5000], y[5000:10_000]])
    assert (bw.l1, bw.l2, bw.spec) == pytest.approx((expected.l1, expected.l2, expected.spec), rel=1e-12)
    with pytest.raises(MirformerError, match="no audio"):
        compute_bandwidth([y[:4000]], segment_length=5000)
    with pytest.raises(MirformerError, match="1-D"):
        compute_bandwidth([np.zeros((2, 3000))])


def test_vqvae_loss_total_metrics_and_gradients():
    x = _audio(dtype=torch.float32)
    recons = [(x + a * _audio(seed=s, dtype=torch.float32)).requires_grad_()
              for s, a in ((1, 0.1), (2, 0.2), (3, 0.3))]
    commits = [torch.tensor(c, requires_grad=True) for c in (0.5, 1.0, 2.0)]
    loss, metrics = vqvae_loss(x, recons, commits, bandwidth={"l1": BW.l1, "l2": BW.l2, "spec": BW.spec})
    expected = sum(lmix_loss(x, r, bandwidth_l2=BW.l2) + multispectral_loss(x, r, bandwidth_spec=BW.spec)
                   for r in recons) + 0.02 * 3.5
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for level in (1, 2, 3):
        assert {f"recons_loss_l{level}", f"multispectral_loss_l{level}", f"commit_loss_l{level}"} <= set(metrics)
    assert metrics["recons_loss_l1"] < metrics["recons_loss_l3"]
    assert metrics["commit_loss"].item() == pytest.approx(3.5)
    assert all(not m.requires_grad for m in metrics.values())
    loss.backward()
    for r in recons:
        assert r.grad is not None and torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    assert commits[0].grad.item() == pytest.approx(0.02)


def test_gradient_finite_at_perfect_reconstruction():
    x = _audio(dtype=torch.float32)
    x_hat = x.clone().requires_grad_()
    multispectral_loss(x, x_hat, bandwidth_spec=1.0).backward()
    assert torch.isfinite(x_hat.grad).all()


def test_window_made_in_inference_mode_still_trains():
    x = _audio(t=2048, dtype=torch.float32)
    with torch.inference_mode():
        multispectral_loss(x, x, bandwidth_spec=1.0, configs=((256, 64, 200),))
    x_hat = (x + 0.1).requires_grad_()
    multispectral_loss(x, x_hat, bandwidth_spec=1.0, configs=((256, 64, 200),)).backward()
    assert x_hat.grad.abs().sum() > 0


def test_half_precision_promoted():
    x = _audio(dtype=torch.bfloat16)
    assert multispectral_loss(x, x * 0.5, bandwidth_spec=1.0).dtype == torch.float32


@pytest.mark.parametrize("call, error", [
    (lambda: lmix_loss(torch.zeros(2, 8, 1), torch.zeros(2, 9, 1), bandwidth_l2=1.0), MirformerError),
    (lambda: lmix_loss(torch.zeros(2, 8), torch.zeros(2, 8), bandwidth_l2=1.0), MirformerError),
    (lambda: multispectral_loss(torch.zeros(1, 1024, 1), torch.zeros(1, 1024, 1), bandwidth_spec=1.0),
     MirformerError),  # reflect padding needs T > n_fft // 2
    (lambda: Bandwidth(l1=0.1, l2=0.0, spec=1.0), ConfigError),
    (lambda: vqvae_loss(torch.zeros(1, 2048, 1), [torch.zeros(1, 2048, 1)], [], bandwidth=BW), MirformerError),
    (lambda: vqvae_loss(torch.zeros(1, 2048, 1), [torch.zeros(1, 2048, 1)], [torch.zeros(())],
                        bandwidth={"l1": 1.0}), ConfigError),
])
def test_bad_input_raises(call, error):
    with pytest.raises(error):
        call()
