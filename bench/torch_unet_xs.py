"""PRG-UNet-XS in PyTorch eager, for the engine benchmark's side-by-side (bench/engine.ts).

The same net as src/prg/nets/unet.ts with the XS preset (same layer shapes, 620 705 parameters):
sinusoidal time embedding of 1000·t (dim 32, [cos, sin]) -> Linear 128 -> SiLU -> Linear 128;
input conv 3x3 1->32; down: ResBlock 32->32, conv s2; ResBlock 32->64, conv s2; ResBlock 64->64;
middle ResBlock 64->64; up: concat skip -> ResBlock(128->64), nearest x2; concat -> ResBlock(128->64),
nearest x2; concat -> ResBlock(96->32); out GroupNorm(8), SiLU, conv 3x3 -> 1.
ResBlock = GN(8) -> SiLU -> conv3x3 -> + Linear(SiLU(emb)) per channel -> GN(8) -> SiLU -> conv3x3,
plus a 1x1 conv skip when channels change.

Timing: torch.set_num_threads(threads), warm-up then the median of --reps runs of
  inference forward (no_grad), training forward (loss, autograd on) and forward + backward.
Prints one JSON line. With --serve it prints a ready line, then reads case names (infer,
train_fwd, train_fwdbwd) from stdin and answers each with {"ms": ...} for one run, so
bench/engine.ts can interleave torch and ORT runs under the same machine load.
Bench-only: never imported by the runtime.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F


def timestep_embedding(t, dim, scale=1000.0, max_period=10000.0):
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32)
    freqs = scale * torch.exp(-math.log(max_period) * k / half)
    args = t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups=8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class UNetXS(nn.Module):
    def __init__(self, c=1, base=32, temb=32, hidden=128):
        super().__init__()
        self.temb = temb
        self.fc1 = nn.Linear(temb, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.inp = nn.Conv2d(c, base, 3, padding=1)
        self.d0 = ResBlock(base, base, hidden)
        self.ds0 = nn.Conv2d(base, base, 3, stride=2, padding=1)
        self.d1 = ResBlock(base, 2 * base, hidden)
        self.ds1 = nn.Conv2d(2 * base, 2 * base, 3, stride=2, padding=1)
        self.d2 = ResBlock(2 * base, 2 * base, hidden)
        self.mid = ResBlock(2 * base, 2 * base, hidden)
        self.u2 = ResBlock(4 * base, 2 * base, hidden)
        self.u1 = ResBlock(4 * base, 2 * base, hidden)
        self.u0 = ResBlock(3 * base, base, hidden)
        self.out_norm = nn.GroupNorm(8, base)
        self.out_conv = nn.Conv2d(base, c, 3, padding=1)

    def forward(self, x, t):
        emb = self.fc2(F.silu(self.fc1(timestep_embedding(t, self.temb))))
        e = F.silu(emb)
        h = self.inp(x)
        s0 = self.d0(h, e)
        s1 = self.d1(self.ds0(s0), e)
        s2 = self.d2(self.ds1(s1), e)
        h = self.mid(s2, e)
        h = self.u2(torch.cat([h, s2], 1), e)
        h = F.interpolate(h, scale_factor=2, mode="nearest")[:, :, : s1.shape[2], : s1.shape[3]]
        h = self.u1(torch.cat([h, s1], 1), e)
        h = F.interpolate(h, scale_factor=2, mode="nearest")[:, :, : s0.shape[2], : s0.shape[3]]
        h = self.u0(torch.cat([h, s0], 1), e)
        return self.out_conv(F.silu(self.out_norm(h)))


def median_ms(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = UNetXS()
    params = sum(p.numel() for p in net.parameters())
    x0 = torch.randn(a.batch, 1, 28, 28)
    x1 = torch.randn(a.batch, 1, 28, 28)
    t = torch.rand(a.batch)
    tt = t[:, None, None, None]
    xt = (1 - tt) * x0 + tt * x1
    u = x1 - x0

    def infer():
        with torch.no_grad():
            net(xt, t)

    def train_fwd():
        return F.mse_loss(net(xt, t), u)

    def train_fwdbwd():
        net.zero_grad(set_to_none=True)
        train_fwd().backward()

    info = {"params": params, "threads": torch.get_num_threads(), "torch_version": torch.__version__}
    if a.serve:
        cases = {"infer": infer, "train_fwd": train_fwd, "train_fwdbwd": train_fwdbwd}
        print(json.dumps({"ready": True, **info}), flush=True)
        for line in sys.stdin:
            name = line.strip()
            if not name:
                continue
            if name not in cases:
                print(json.dumps({"error": f"unknown case {name}"}), flush=True)
                continue
            t0 = time.perf_counter()
            cases[name]()
            print(json.dumps({"ms": (time.perf_counter() - t0) * 1000}), flush=True)
        return
    out = {
        "params": params,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "infer_fwd_ms": round(median_ms(infer, a.reps), 3),
        "train_fwd_ms": round(median_ms(train_fwd, a.reps), 3),
        "train_fwdbwd_ms": round(median_ms(train_fwdbwd, a.reps), 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
