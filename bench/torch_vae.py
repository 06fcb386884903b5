#!/usr/bin/env python3
"""PyTorch eager beside bench/vae.ts: diffusers' AutoencoderKL encoder at SD's full size
(block_out_channels 128-256-512-512, random init: the speed does not depend on the values),
encode(x).latent_dist.mean on 256x256 images, seconds per image. One JSON line per batch.

  PRG_PYTHON=/path/to/venv/bin/python; $PRG_PYTHON bench/torch_vae.py --diffusers /path/to/diffusers

Environment: BENCH_BATCHES (1), BENCH_REPS (1 timed after 1 warm-up), PRG_THREADS (2).
"""
import argparse
import json
import os
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffusers", required=True)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.abspath(a.diffusers), "src"))
    from diffusers import AutoencoderKL

    threads = int(os.environ.get("PRG_THREADS", "2"))
    torch.set_num_threads(threads)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
    ).eval()
    reps = int(os.environ.get("BENCH_REPS", "1"))
    for n in [int(b) for b in os.environ.get("BENCH_BATCHES", "1").split(",")]:
        x = torch.rand(n, 3, 256, 256) * 2 - 1
        with torch.no_grad():
            vae.encode(x)  # warm-up
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                vae.encode(x).latent_dist.mean
                times.append(time.perf_counter() - t)
        times.sort()
        med = times[len(times) // 2]
        print(json.dumps({"phase": "torch-encoder", "engine": f"pytorch {torch.__version__} eager",
                          "batch": n, "seconds_per_image": round(med / n, 3), "threads": threads,
                          "loadavg": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
