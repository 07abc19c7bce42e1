"""Training throughput of SpectroFormer's encoder against the thesis code's setup, in one run.

Baseline: ``torch.nn.TransformerEncoder`` with dropout 0.1 everywhere (attention probabilities
included), fp32 — what the thesis code trained. mirformer: the same size through
``scaled_dot_product_attention`` without attention-probability dropout, in fp32 and bf16 autocast.
Each case: forward + backward + Adam step on random log-mel input, warm-up then the median of
``--repeats`` timed steps; prints tokens per second and the ratio to the baseline.

    python benchmarks/bench_encoder.py                 # thesis size: d768, 4 layers, 12 heads, seq 1344
    python benchmarks/bench_encoder.py --size small    # d256, 4 layers, 4 heads, seq 512, batch 8
    python benchmarks/bench_encoder.py --size quickstart --repeats 20  # d128, 3 layers, seq 128, batch 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former

SIZES = {
    "thesis": dict(d_model=768, n_layers=4, n_heads=12, d_ff=3072, seq=1344, batch=2),
    "small": dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, seq=512, batch=8),
    "quickstart": dict(d_model=128, n_layers=3, n_heads=4, d_ff=512, seq=128, batch=16),
}
N_MELS, N_CLASSES = 86, 16


class ThesisBaseline(nn.Module):
    """Projection + nn.TransformerEncoder (dropout 0.1 everywhere, post-norm) + linear head."""

    def __init__(self, d_model, n_layers, n_heads, d_ff):
        super().__init__()
        self.proj = nn.Linear(N_MELS, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, N_CLASSES)

    def forward(self, x, pad=None):
        return self.head(self.encoder(self.proj(x))[:, 0])


def time_steps(model, x, y, *, autocast_bf16: bool, warmup: int, repeats: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=SIZES, default="thesis")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    s = SIZES[args.size]
    torch.manual_seed(0)
    x = torch.randn(s["batch"], s["seq"], N_MELS)
    y = torch.randint(0, N_CLASSES, (s["batch"],))
    tokens = s["batch"] * s["seq"]
    enc = EncoderConfig(d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"], d_ff=s["d_ff"],
                        dropout=0.1, max_len=s["seq"])
    cases = [
        ("nn.TransformerEncoder fp32, dropout 0.1 (thesis code)",
         lambda: ThesisBaseline(s["d_model"], s["n_layers"], s["n_heads"], s["d_ff"]), False),
        ("mirformer fp32 (fused attention)", lambda: Former(frontend="projection", encoder=enc, input_dim=N_MELS,
                                                            n_classes=N_CLASSES), False),
        ("mirformer bf16 autocast (fused attention)", lambda: Former(frontend="projection", encoder=enc,
                                                                     input_dim=N_MELS, n_classes=N_CLASSES), True),
    ]
    print(f"size {args.size}: {s}, {args.threads} threads, median of {args.repeats} steps")
    base_rate = None
    for name, make, bf16 in cases:
        torch.manual_seed(0)
        seconds = time_steps(make(), x, y, autocast_bf16=bf16, warmup=args.warmup, repeats=args.repeats)
        rate = tokens / seconds
        base_rate = base_rate or rate
        print(f"{name:<55} {rate:10.0f} tok/s   {rate / base_rate:5.2f}x")


if __name__ == "__main__":
    main()
