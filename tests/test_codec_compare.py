"""A neural codec's folder as the comparison's tokenizer: `compare` reads its first N codebooks,
the pretrained encoder file refers to the folder (path and SHA-256), and `evaluate` and `embed`
read that encoder file alone."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import transformers

from helpers import TINY_RUN
from mirformer.cli import main
from mirformer.encoder_file import read_encoder
from mirformer.representations.tokenizers.codec import folder_sha256


@pytest.fixture(scope="module")
def encodec(tmp_path_factory):
    """A tiny EnCodec like facebook/encodec_24khz (causal, hop 320: 75 frames/s), up to 8 codebooks
    of 16 entries drawn around its encoder's output (a fresh model's codebooks are zeros)."""
    torch.manual_seed(0)
    config = transformers.EncodecConfig(sampling_rate=24000, upsampling_ratios=[8, 5, 4, 2], num_filters=4,
                                        hidden_size=8, codebook_size=16, target_bandwidths=[0.6, 1.2, 2.4])
    model = transformers.EncodecModel(config).eval()
    with torch.no_grad():
        t = torch.arange(24000) / 24000
        residual = model.encoder((0.3 * torch.sin(2 * torch.pi * 220 * t * (1 + t)))[None, None])[0].T
        for layer in model.quantizer.layers:
            embed = residual[torch.randint(len(residual), (16,))] + 0.01 * torch.randn(16, 8)
            layer.codebook.embed.copy_(embed)
            residual = residual - embed[torch.cdist(residual, embed).argmin(-1)]
    folder = tmp_path_factory.mktemp("codecs") / "encodec_24khz"
    model.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_compare_evaluate_and_embed_with_a_codec_folder(encodec, tmp_path, capsys, tiny_corpus):
    out = tmp_path / "run"
    assert main(["compare", "--preset", "quickstart", *TINY_RUN, "--set", f"tokenizer.checkpoint={encodec}",
                 "--set", "tokenizer.codebooks=2", "--set", "setups=[tokenformer-pretrained-finetuned, "
                 "codebookformer-scratch]", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    tokens = results["representations"]["tokens"]
    assert tokens["codebooks"] == 2 and tokens["frames_per_second"] == 75.0
    assert tokens["window_frames"] == round(0.768 * 75)  # window_seconds in the codec's own frames
    assert tokens["about"]["kind"] == "EnCodec" and tokens["about"]["sha1"] == folder_sha256(encodec)
    assert list(results["setups"]) == ["tokenformer-pretrained-finetuned", "codebookformer-scratch"]
    report = (out / "report.md").read_text()
    assert "the EnCodec codec from the given checkpoint (the first 2 of its 8 codebooks)" in report and "SHA-256" in report

    encoder_path = out / "tokenformer-pretrain" / "encoder.pt"
    rep = read_encoder(encoder_path).representation
    block = rep.to_block()
    assert block["codec"]["path"] == str(encodec.resolve()) and block["codec"]["sha256"] == folder_sha256(encodec)
    # The encoder's own tokenizer settings are refused as overrides: evaluation leaves them out.
    data = [a for k, v in zip(TINY_RUN[::2], TINY_RUN[1::2]) if not v.startswith("tokenizer") for a in (k, v)]
    assert main(["evaluate", "--preset", "quickstart", *data, "--encoder", str(encoder_path),
                 "--out", str(tmp_path / "evaluate"), "--quiet"]) == 0
    evaluated = json.loads((tmp_path / "evaluate" / "results.json").read_text())
    assert len(evaluated["setups"]) == 1 and evaluated["representations"][str(encoder_path)]["codebooks"] == 2

    t = np.arange(3 * 16000) / 16000
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 16000)  # resampled to 24 kHz
    assert main(["embed", str(tmp_path / "a.wav"), "--encoder", str(encoder_path), "--out", str(tmp_path / "e"),
                 "--quiet"]) == 0
    assert np.load(tmp_path / "e" / "a.npy").shape == (3 * 75, 32)
