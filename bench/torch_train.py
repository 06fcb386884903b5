"""PyTorch side of bench/train.ts: training throughput of PRG-UNet-XS (bench/torch_unet_xs.py,
the same net) for the same cases, one JSON line per case.

- pretrain: flow-matching MSE (paper eq. 2, ICFM path), Adam step.
- finetune-direct[-k20]: K Euler steps from t=0 to t*=1 unrolled under autograd, flatten ->
  tanh MLP head (784 -> 256 -> 10) -> label-smoothing CE + 1.0 x flow-matching MSE, AdamW step.
- finetune-adjoint[-k20]: the same loss with torch.utils.checkpoint around each solver step
  (stores only the K states and recomputes one step at a time in backward), the memory-saving
  counterpart of the engine's discrete adjoint.

Timing: warm-up step, then the median of --reps steps; img/s = batch / median step time.
Bench-only: never imported by the runtime.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet_xs import UNetXS  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = UNetXS()
    head = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.Tanh(), torch.nn.Linear(256, 10))
    B = a.batch
    x0 = torch.rand(B, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (B,))

    def fm_loss():
        x1 = torch.randn_like(x0)
        t = torch.rand(B)
        tt = t[:, None, None, None]
        return F.mse_loss(net((1 - tt) * x0 + tt * x1, t), x1 - x0)

    if a.case == "pretrain":
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            fm_loss().backward()
            opt.step()

    elif a.case.startswith("finetune"):
        opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=1e-4, weight_decay=0.05)
        use_ckpt = "adjoint" in a.case
        h = 1.0 / a.k

        def euler(x, t):
            return x + h * net(x, t)

        def step():
            opt.zero_grad(set_to_none=True)
            x = x0
            for k in range(a.k):
                t = torch.full((B,), k * h)
                x = checkpoint(euler, x, t, use_reentrant=False) if use_ckpt else euler(x, t)
            logits = head(x.flatten(1))
            loss = F.cross_entropy(logits, y, label_smoothing=0.1) + fm_loss()
            loss.backward()
            opt.step()

    else:
        raise SystemExit(f"unknown case {a.case}")

    step()
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    print(json.dumps({"case": a.case, "img_per_s": B / med, "step_ms": med * 1000, "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
