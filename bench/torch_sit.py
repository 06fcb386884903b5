#!/usr/bin/env python3
"""PyTorch eager side of `npm run bench:import`: the upstream SiT forward (models.py from a local
checkout given by --sit; timm's three layers from the fixture script's stand-in), K Euler steps of
the velocity to t* = 0.5 under torch.no_grad, per batch size. Prints one JSON line per case with
the torch version and build. Weights are SiT's own initialisation: the speed does not depend on
the values.

Attention: timm's Attention (which SiT imports) calls torch's fused
F.scaled_dot_product_attention on torch 2.x; the fixture stand-in spells the same product out
(matmul, softmax, matmul). `--attention sdpa` (default) runs the fused kernel, as SiT with timm
does; `--attention math` keeps the stand-in's unfused form."""
import argparse
import importlib.util
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def load_fixture_helpers():
    path = os.path.join(os.path.dirname(__file__), "..", "scripts", "fixtures", "make-import-fixtures.py")
    spec = importlib.util.spec_from_file_location("prg_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fused_attention_forward(self, x):
    """timm Attention.forward with fused attention (q, k, v from one qkv linear, no norms)."""
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    return self.proj(x.transpose(1, 2).reshape(b, n, c))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sit", required=True)
    ap.add_argument("--config", default="SiT-XL/2")
    ap.add_argument("--input", type=int, default=32)
    ap.add_argument("--steps", default="1,4")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--cases", default="", help="KxB pairs (e.g. 1x1,4x1); default: steps x batches")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    helpers = load_fixture_helpers()
    helpers.timm_stand_in()
    if a.attention == "sdpa":
        sys.modules["timm.models.vision_transformer"].Attention.forward = fused_attention_forward
    models = helpers.load_module("sit_models", os.path.join(a.sit, "models.py"))
    model = models.SiT_models[a.config](input_size=a.input, num_classes=1000, learn_sigma=True).eval()
    build = "cpu" if "+cpu" in torch.__version__ else torch.__version__
    if a.cases:
        cases = [tuple(int(v) for v in c.split("x")) for c in a.cases.split(",")]
    else:
        cases = [(int(k), int(b)) for k in a.steps.split(",") for b in a.batches.split(",")]
    for K, n in cases:
        if True:
            x0 = torch.randn(n, 4, a.input, a.input)
            y = torch.full((n,), 1000, dtype=torch.long)

            def features():
                # Our convention runs t: 0 -> 0.5 with v = -v_up(x, 1 - t): upstream s: 1 -> 0.5.
                x, dt = x0, 0.5 / K
                for k in range(K):
                    s = torch.full((n,), 1 - k * dt)
                    x = x - dt * model(x, s, y)
                return x

            with torch.no_grad():
                features()
                times = []
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    features()
                    times.append(time.perf_counter() - t0)
            times.sort()
            med = times[len(times) // 2]
            print(json.dumps({"phase": "torch", "engine": f"pytorch {torch.__version__} eager",
                              "build": build, "config": a.config, "steps": K, "batch": n,
                              "seconds_per_call": med, "img_per_s": n / med, "threads": a.threads, "attention": a.attention,
                              "loadavg": os.getloadavg()[0]}),
                  flush=True)


if __name__ == "__main__":
    main()
