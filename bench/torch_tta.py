"""PyTorch side of bench/tta.ts (time to accuracy): PRG fine-tuning (paper §3.2, eq. 3) of
PRG-UNet-XS (bench/torch_unet_xs.py, the same net) reimplemented in PyTorch eager, run on the
exchange directory bench/tta.ts wrote:

  params.bin / params.json   the starting weights (velocity net, head under "head."), float32
  train_x.u8 / train_y.i32   training images (N×C×H×W uint8) and labels (the model's class indices)
  val_x.u8 / val_y.i32       the validation images evaluated every N steps
  order.i32                  the batch order (steps × batch indices into the training images)
  probe_*.f32                the engine's x_{t*} and logits of the first validation images
  config.json                the recipe (K, t*, batch, λ, lr, ...) and thread count

Per step: x_0 (pixels / 127.5 − 1) → K Euler steps of h = t*/K from t = 0, unrolled under autograd
→ flatten → Linear → tanh → Linear (the head) → label-smoothing CE, plus λ × flow-matching MSE on
the same images (ICFM: x_t = (1 − t) x_0 + t x_1, u = x_1 − x_0, x_1 ~ N(0, I), t ~ U(0, 1)) →
AdamW at a constant learning rate. Clocks: training only (time.perf_counter, time.process_time);
evaluations excluded. Progress on stderr; one JSON line on stdout at the end.
Bench-only: never imported by the runtime.
"""

import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet_xs import UNetXS  # noqa: E402

# The engine's parameter names (src/prg/nets/unet.ts) → UNetXS module names.
BLOCKS = {
    "time.fc1": "fc1",
    "time.fc2": "fc2",
    "input.conv": "inp",
    "down.0.res.0": "d0",
    "down.0.downsample": "ds0",
    "down.1.res.0": "d1",
    "down.1.downsample": "ds1",
    "down.2.res.0": "d2",
    "mid.res.0": "mid",
    "up.2.res.0": "u2",
    "up.1.res.0": "u1",
    "up.0.res.0": "u0",
    "out.norm": "out_norm",
    "out.conv": "out_conv",
}


def torch_name(name):
    for prg, mod in BLOCKS.items():
        if name.startswith(prg + "."):
            return mod + name[len(prg) :]
    raise KeyError(f"no UNetXS parameter for {name}")


class Head(torch.nn.Module):
    """src/prg/heads 'mlp': Linear(D, hidden) → tanh → Linear(hidden, classes)."""

    def __init__(self, d, hidden, classes):
        super().__init__()
        self.fc1 = torch.nn.Linear(d, hidden)
        self.fc2 = torch.nn.Linear(hidden, classes)

    def forward(self, f):
        return self.fc2(torch.tanh(self.fc1(f)))


def load(dirname, name, dtype, shape=None):
    a = np.fromfile(os.path.join(dirname, name), dtype=dtype)
    return a.reshape(shape) if shape is not None else a


def main():
    d = sys.argv[1]
    t0 = time.perf_counter()
    cfg = json.load(open(os.path.join(d, "config.json")))
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    index = json.load(open(os.path.join(d, "params.json")))
    blob = np.fromfile(os.path.join(d, "params.bin"), dtype="<f4")
    tensors = {
        p["name"]: torch.from_numpy(blob[p["offset"] : p["offset"] + int(np.prod(p["dims"]))].reshape(p["dims"]).copy())
        for p in index
    }
    c, h, w = cfg["shape"]
    net = UNetXS(c=c)
    head_w = tensors["head.fc1.weight"]
    head = Head(head_w.shape[1], head_w.shape[0], tensors["head.fc2.weight"].shape[0])
    sd_net = {torch_name(n): t for n, t in tensors.items() if not n.startswith("head.")}
    sd_head = {n[len("head.") :]: t for n, t in tensors.items() if n.startswith("head.")}
    net.load_state_dict(sd_net, strict=True)
    head.load_state_dict(sd_head, strict=True)

    def pixels(u8):
        return torch.from_numpy((u8.astype(np.float64) / 127.5 - 1).astype(np.float32))

    train_x = pixels(load(d, "train_x.u8", np.uint8, (-1, c, h, w)))
    train_y = torch.from_numpy(load(d, "train_y.i32", "<i4").astype(np.int64))
    val_x = pixels(load(d, "val_x.u8", np.uint8, (-1, c, h, w)))
    val_y = torch.from_numpy(load(d, "val_y.i32", "<i4").astype(np.int64))
    order = torch.from_numpy(load(d, "order.i32", "<i4").astype(np.int64)).view(-1, cfg["batch"])
    K, t_star, B = cfg["k"], cfg["tStar"], cfg["batch"]
    hstep = t_star / K

    def features(x):
        for k in range(K):
            x = x + hstep * net(x, torch.full((x.shape[0],), k * hstep))
        return x

    # Forward agreement with the engine at the starting weights.
    with torch.no_grad():
        n = cfg["probe"]
        f = features(val_x[:n])
        lg = head(f.flatten(1))
    pf = torch.from_numpy(load(d, "probe_features.f32", "<f4")).view_as(f)
    pl = torch.from_numpy(load(d, "probe_logits.f32", "<f4")).view_as(lg)
    diff_f = (f - pf).abs().max().item()
    diff_l = (lg - pl).abs().max().item()
    print(f"# torch: max |diff| vs the engine: x_t* {diff_f:.3g}, logits {diff_l:.3g}", file=sys.stderr, flush=True)

    def evaluate():
        correct = 0
        with torch.no_grad():
            for s in range(0, val_x.shape[0], 100):
                logits = head(features(val_x[s : s + 100]).flatten(1))
                correct += (logits.argmax(1) == val_y[s : s + 100]).sum().item()
        return correct / val_x.shape[0]

    opt = torch.optim.AdamW(
        list(net.parameters()) + list(head.parameters()),
        lr=cfg["lr"],
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=cfg["weightDecay"],
    )
    setup_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(cfg["seed"])
    wall = cpu = eval_s = 0.0
    curve, step_wall, step_cpu = [], [], []
    last = max(cfg["thresholds"])

    def measure(step):
        nonlocal eval_s
        e0 = time.perf_counter()
        acc = evaluate()
        eval_s += time.perf_counter() - e0
        curve.append({"step": step, "wall_s": wall, "cpu_s": cpu, "accuracy": acc})
        print(
            f"# torch step {step}: validation {acc * 100:.1f} % after {wall:.1f} s wall, {cpu:.1f} s CPU",
            file=sys.stderr,
            flush=True,
        )
        return acc

    measure(0)
    for s in range(cfg["steps"]):
        w0, c0 = time.perf_counter(), time.process_time()
        idx = order[s]
        x0, y = train_x[idx], train_y[idx]
        opt.zero_grad(set_to_none=True)
        logits = head(features(x0).flatten(1))
        loss = F.cross_entropy(logits, y, label_smoothing=cfg["labelSmoothing"])
        if cfg["lambdaFlow"] > 0:
            x1 = torch.randn(x0.shape, generator=gen)
            t = torch.rand(B, generator=gen)
            tt = t[:, None, None, None]
            loss = loss + cfg["lambdaFlow"] * F.mse_loss(net((1 - tt) * x0 + tt * x1, t), x1 - x0)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise SystemExit(f"torch: loss {loss.item()} at step {s}")
        dw, dc = time.perf_counter() - w0, time.process_time() - c0
        wall += dw
        cpu += dc
        step_wall.append(dw * 1000)
        step_cpu.append(dc * 1000)
        if (s + 1) % cfg["evalEvery"] == 0 or s + 1 == cfg["steps"]:
            if measure(s + 1) >= last and not cfg["keepGoing"]:
                break

    print(
        json.dumps(
            {
                "curve": curve,
                "step_wall_ms": step_wall,
                "step_cpu_ms": step_cpu,
                "setup_s": setup_s,
                "eval_s": eval_s,
                "forward_max_abs_diff": {"features": float(f"{diff_f:.3g}"), "logits": float(f"{diff_l:.3g}")},
                "torch_version": torch.__version__,
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
