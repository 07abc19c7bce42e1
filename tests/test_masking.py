import torch

from mirformer.objectives.spectro_masking import SpectroMaskConfig, mask_spectrogram, masked_huber


def test_fractions_of_masked_frames_and_actions():
    # Short blocks give enough blocks (64 x 84) for the zero/noise/keep shares to be measured
    # to +-0.006 (one standard deviation); the thesis' 42-frame blocks are checked below.
    cfg = SpectroMaskConfig(block_frames=4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1344, 86) + 5.0  # offset: zeroed cells are recognisable
    inputs, mask, targets = mask_spectrogram(x, None, cfg, g)
    assert torch.equal(targets, x)
    frame_masked = mask.all(-1)  # masked frame blocks cover every channel
    assert abs(frame_masked.float().mean().item() - 0.25) < 0.01
    # One channel block of 25% (21 or 22 of 86 bands) per example, over all frames.
    channel_masked = mask.all(1)
    assert set(channel_masked.sum(1).tolist()) <= {21, 22}
    # Inside masked frames, outside the channel block: 70% zero, 20% noise, 10% kept.
    keep_ch = ~channel_masked[:, None, :].expand_as(mask)
    cells = frame_masked[..., None].expand_as(mask) & keep_ch
    zero = (inputs[cells] == 0).float().mean().item()
    kept = (inputs[cells] == x[cells]).float().mean().item()
    assert abs(zero - 0.7) < 0.03 and abs(kept - 0.1) < 0.03
    assert abs(1 - zero - kept - 0.2) < 0.03
    # Outside the mask the input is untouched; the batch itself is never modified.
    assert torch.equal(inputs[~mask], x[~mask])
    assert (x > 0).float().mean() > 0.99


def test_thesis_blocks_cover_a_quarter_of_frames():
    _, mask, _ = mask_spectrogram(torch.randn(8, 1344, 86), None, SpectroMaskConfig(), torch.Generator().manual_seed(3))
    assert mask.all(-1).sum(1).tolist() == [8 * 42] * 8  # 8 blocks of 42 frames = 25% of 1344


def test_blocks_are_contiguous_and_block_long():
    cfg = SpectroMaskConfig(block_frames=10, frame_ratio=0.3)
    _, mask, _ = mask_spectrogram(torch.randn(4, 200, 16), None, cfg, torch.Generator().manual_seed(1))
    frames = mask.all(-1)
    for row in frames:
        runs = torch.diff(torch.cat([torch.tensor([0]), row.int(), torch.tensor([0])])).nonzero().flatten()
        lengths = (runs[1::2] - runs[0::2])
        assert all(int(n) % 10 == 0 for n in lengths)
    assert frames.sum(1).tolist() == [60] * 4


def test_padding_is_never_masked():
    pad = torch.zeros(8, 100, dtype=torch.bool)
    pad[:, 70:] = True
    inputs, mask, _ = mask_spectrogram(torch.randn(8, 100, 16), pad, SpectroMaskConfig(block_frames=5),
                                       torch.Generator().manual_seed(2))
    assert not mask[pad].any()
    assert (inputs[pad] == 0).all()


def test_loss_counts_masked_cells_only():
    pred, target = torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)
    mask = torch.zeros(2, 4, 3, dtype=torch.bool)
    mask[0, 0, 0] = True
    target[0, 0, 0] = 0.5
    target[1] = 100.0  # unmasked errors do not count
    assert abs(masked_huber(pred, target, mask).item() - 0.5 * 0.5**2) < 1e-7
