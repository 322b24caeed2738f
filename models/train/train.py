"""Trains the Venue Edge reference segmentation model on `venue-edge synth` renders.

Reads the frames and masks that train.sh rendered (DATA/train/{scene}-{seed}/ and
DATA/heldout/{scene}-{seed}/), trains a small U-Net on the CPU with fixed seeds,
measures IoU per scene on the held-out seeds, and writes the model directory:
model.onnx, manifest.toml and MODEL_CARD.md.

With --cores the model has a second output channel: each athlete's core (its
pixels at least --core-radius pixels (default 1) from any pixel that is not the same athlete's,
learnt from the instance planes `venue-edge synth` writes). Touching athletes form
one blob in the first channel but keep separate cores: the seeds to cut a blob
into its athletes. The held-out report then also says how many pairs of touching
athletes the cores keep apart.

Usage: python train.py --data DIR --out DIR [--steps N] [--threads N] [--cores]
"""

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
import torch.nn.functional as F
from PIL import Image
from torch import nn

WIDTH, HEIGHT = 256, 144
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
THRESHOLD = 0.5
CROP = 128
BATCH = 16
# Pixels (at model resolution) a core keeps from anything that is not its athlete:
# with 2, the slope's skiers (bodies 6-8 pixels wide) that touch keep cores apart
# in only 39 of the 70 held-out pairs even with the true cores; with 1, in 58.
CORE_RADIUS = 1


def load_split(root: Path, every: int, first: int, instances: bool = False):
    """Frames (N,H,W,3 uint8), masks (N,H,W uint8 0/1), scene names per frame and,
    with `instances`, the athlete id of each pixel (N,H,W int32; None without)."""
    frames, masks, scenes, ids = [], [], [], []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        scene = run.name.split("-")[0]
        truth = json.loads((run / "truth.json").read_text())
        for entry in truth["frames"][first::every]:
            frames.append(np.asarray(Image.open(run / entry["frame"]).convert("RGB")))
            masks.append((np.asarray(Image.open(run / entry["mask"])) > 127).astype(np.uint8))
            scenes.append(scene)
            if instances:
                ids.append(np.asarray(Image.open(run / entry["instances"])).astype(np.int32))
    return np.stack(frames), np.stack(masks), scenes, (np.stack(ids) if instances else None)


def cores(ids: np.ndarray, radius: int) -> np.ndarray:
    """Each athlete's pixels whose whole (2r+1)² neighbourhood is that athlete (0/1)."""
    size = (1, 2 * radius + 1, 2 * radius + 1)
    lo = ndimage.minimum_filter(ids, size=size, mode="nearest")
    hi = ndimage.maximum_filter(ids, size=size, mode="nearest")
    return ((ids > 0) & (lo == ids) & (hi == ids)).astype(np.uint8)


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Three down-samplings (1/8 resolution at the bottom) and skips at every level."""

    def __init__(self, outputs=1):
        super().__init__()
        self.e0 = block(3, 16)
        self.e1 = block(16, 32)
        self.e2 = block(32, 48)
        self.e3 = block(48, 64)
        self.u2 = nn.ConvTranspose2d(64, 48, 2, stride=2)
        self.d2 = block(96, 48)
        self.u1 = nn.ConvTranspose2d(48, 32, 2, stride=2)
        self.d1 = block(64, 32)
        self.u0 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.d0 = block(32, 16)
        self.head = nn.Conv2d(16, outputs, 1)

    def forward(self, x):
        x0 = self.e0(x)
        x1 = self.e1(F.max_pool2d(x0, 2))
        x2 = self.e2(F.max_pool2d(x1, 2))
        x3 = self.e3(F.max_pool2d(x2, 2))
        y = self.d2(torch.cat([self.u2(x3), x2], 1))
        y = self.d1(torch.cat([self.u1(y), x1], 1))
        y = self.d0(torch.cat([self.u0(y), x0], 1))
        return self.head(y)


def to_input(frames_u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def sample_batch(rng: np.random.Generator, frames, targets):
    """Random crops, biased towards crops that hold athlete pixels, with h-flips.
    `targets` is (N,C,H,W) uint8, channel 0 the athlete mask."""
    idx = rng.integers(0, len(frames), BATCH)
    xs, ys = [], []
    for i in idx:
        m = targets[i, 0]
        if rng.random() < 0.7 and m.any():
            yy, xx = np.nonzero(m)
            k = rng.integers(0, len(yy))
            cy = int(np.clip(yy[k] - CROP // 2 + rng.integers(-32, 33), 0, HEIGHT - CROP))
            cx = int(np.clip(xx[k] - CROP // 2 + rng.integers(-32, 33), 0, WIDTH - CROP))
        else:
            cy = int(rng.integers(0, HEIGHT - CROP + 1))
            cx = int(rng.integers(0, WIDTH - CROP + 1))
        f = frames[i, cy : cy + CROP, cx : cx + CROP]
        t = targets[i, :, cy : cy + CROP, cx : cx + CROP]
        if rng.random() < 0.5:
            f, t = f[:, ::-1], t[:, :, ::-1]
        xs.append(np.ascontiguousarray(f))
        ys.append(np.ascontiguousarray(t))
    x = to_input(np.stack(xs))
    y = torch.from_numpy(np.stack(ys)).float()
    return x, y


def loss_fn(logits, target):
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    dice = 1 - (2 * inter + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


@torch.no_grad()
def evaluate(model, frames, masks, scenes):
    """Pooled IoU per scene: athlete pixels over all held-out frames of the scene."""
    model.eval()
    inter, union = {}, {}
    for start in range(0, len(frames), 32):
        logits = model(to_input(frames[start : start + 32]))
        pred = (logits[:, 0] > 0).numpy()
        truth = masks[start : start + 32].astype(bool)
        for j in range(len(pred)):
            s = scenes[start + j]
            inter[s] = inter.get(s, 0) + int((pred[j] & truth[j]).sum())
            union[s] = union.get(s, 0) + int((pred[j] | truth[j]).sum())
    model.train()
    return {s: inter[s] / max(union[s], 1) for s in sorted(inter)}


def touching_pairs(ids: np.ndarray):
    """Pairs of athletes (a < b) with 8-adjacent pixels in one frame's id plane."""
    pairs = set()
    h, w = ids.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = ids[: h - dy, max(0, -dx) : w - max(0, dx)]
        b = ids[dy:, max(0, dx) : w - max(0, -dx)]
        touch = (a > 0) & (b > 0) & (a != b)
        for p, q in zip(a[touch], b[touch]):
            pairs.add((min(p, q), max(p, q)))
    return pairs


def kept_apart(regions: np.ndarray, ids: np.ndarray, a: int, b: int) -> bool:
    """Whether the predicted regions (a 0/1 plane) hold `a` and `b` apart: each
    is most of some region's pixels (80 %), and no region is a fifth of both."""
    labels, n = ndimage.label(regions, structure=np.ones((3, 3)))
    own_a = own_b = False
    for k in range(1, n + 1):
        inside = ids[labels == k]
        total = max(int((inside > 0).sum()), 1)
        na, nb = int((inside == a).sum()), int((inside == b).sum())
        if na >= 0.2 * total and nb >= 0.2 * total:
            return False
        own_a |= na >= 0.8 * total
        own_b |= nb >= 0.8 * total
    return own_a and own_b


@torch.no_grad()
def separation(model, frames, ids, scenes, radius):
    """Per scene: touching pairs of athletes in the held-out frames, and how many
    the predicted mask's blobs, the predicted cores and the true cores (what the
    model learns to give) keep apart."""
    model.eval()
    out = {}
    for start in range(0, len(frames), 32):
        logits = model(to_input(frames[start : start + 32])).numpy()
        for j in range(len(logits)):
            s = scenes[start + j]
            truth = ids[start + j]
            mask = logits[j, 0] > 0
            core = mask & (logits[j, 1] > 0)
            target = cores(truth[None], radius)[0]
            r = out.setdefault(s, {"pairs": 0, "mask": 0, "cores": 0, "true_cores": 0})
            for a, b in touching_pairs(truth):
                r["pairs"] += 1
                r["mask"] += kept_apart(mask, truth, a, b)
                r["cores"] += kept_apart(core, truth, a, b)
                r["true_cores"] += kept_apart(target, truth, a, b)
    model.train()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train-seeds", default="", help="for the model card")
    ap.add_argument("--heldout-seeds", default="", help="for the model card")
    ap.add_argument("--cores", action="store_true", help="a second output: each athlete's core")
    ap.add_argument("--core-radius", type=int, default=CORE_RADIUS, help="pixels a core keeps")
    args = ap.parse_args()
    if args.core_radius < 1:
        raise SystemExit("--core-radius: at least 1 pixel")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    train_f, train_m, _, train_ids = load_split(args.data / "train", 4, 40, args.cores)
    held_f, held_m, held_s, held_ids = load_split(args.data / "heldout", 10, 40, args.cores)
    print(f"train frames {len(train_f)}, held-out frames {len(held_f)}", flush=True)
    targets = train_m[:, None]
    if args.cores:
        targets = np.concatenate([targets, cores(train_ids, args.core_radius)[:, None]], axis=1)
        del train_ids

    model = UNet(outputs=targets.shape[1])
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps, pct_start=0.1)
    model.train()
    for step in range(1, args.steps + 1):
        x, y = sample_batch(rng, train_f, targets)
        logits = model(x)
        loss = sum(loss_fn(logits[:, c : c + 1], y[:, c : c + 1]) for c in range(y.shape[1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        if step % 1000 == 0 and step < args.steps:
            print("held-out IoU", evaluate(model, held_f, held_m, held_s), flush=True)
    train_s = time.time() - t0
    iou = evaluate(model, held_f, held_m, held_s)
    print("final held-out IoU", iou, flush=True)
    apart = separation(model, held_f, held_ids, held_s, args.core_radius) if args.cores else None
    if apart:
        print("held-out touching pairs kept apart", json.dumps(apart), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    dummy = to_input(held_f[:1])
    onnx_path = args.out / "model.onnx"
    torch.onnx.export(
        model,
        dummy,
        str(onnx_path),
        input_names=["image"],
        output_names=["logits"],
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    size = onnx_path.stat().st_size
    print(f"wrote {onnx_path} ({size} bytes)")
    report = {
        "params": params,
        "width": WIDTH,
        "height": HEIGHT,
        "threshold": THRESHOLD,
        "steps": args.steps,
        "batch": BATCH,
        "crop": CROP,
        "threads": args.threads,
        "seed": args.seed,
        "train_frames": len(train_f),
        "heldout_frames": len(held_f),
        "train_seconds": round(train_s),
        "iou": iou,
        "onnx_bytes": size,
        "torch": torch.__version__,
    }
    if apart:
        report["apart"] = apart
        report["core_radius"] = args.core_radius
    classes = '["athlete", "athlete_core"]' if args.cores else '["athlete"]'
    (args.out / "manifest.toml").write_text(
        MANIFEST.format(**report, mean=MEAN, std=STD, classes=classes)
    )
    (args.out / "MODEL_CARD.md").write_text(card(report, args.train_seeds, args.heldout_seeds))
    print(json.dumps(report, indent=2))


MANIFEST = """# Venue Edge model manifest (read by venue-models).
[model]
name = "venue-reference-seg"
version = "1"

[input]
width = {width}
height = {height}
layout = "NCHW"
color = "RGB"
# Pixels are scaled to 0..1, then (x - mean) / std per channel.
mean = {mean}
std = {std}

[output]
kind = "logits"
classes = {classes}
# On the probability: athlete where sigmoid(logit) > threshold.
threshold = {threshold}

[provenance]
trained_by = "models/train/train.sh"
data = "venue-edge synth, rink and slope scenes, {width}x{height}"
license = "Apache-2.0"
"""


def card(r, train_seeds, heldout_seeds):
    iou = "\n".join(f"| {s} | {v:.3f} |" for s, v in r["iou"].items())
    channels = 2 if "apart" in r else 1
    if "apart" in r:
        rows = "\n".join(
            f"| {s} | {a['pairs']} | {a['mask']} | {a['cores']} | {a['true_cores']} |"
            for s, a in r["apart"].items()
        )
        radius = r["core_radius"]
        pixels = f"{radius} pixel{'s' if radius > 1 else ''}"
        instances = f"""
## Cores (second output channel)
Each athlete's core: its pixels at least {pixels} (model resolution) from any
pixel that is not the same athlete's, learnt from `venue-edge synth`'s instance
planes (same loss). Touching athletes form one blob in the first channel but keep
separate cores. Pairs of touching athletes in the held-out frames, and how many
the predicted blobs, the predicted cores and the true cores (the target) keep
apart (each athlete most of a region of its own, no region a fifth of both):

| scene | touching pairs | apart in the mask | apart in the cores | in the true cores |
|---|---|---|---|---|
{rows}
"""
        limit = "- Cores are seeds for cutting blobs, not whole athletes (thin parts have none)."
    else:
        instances = ""
        limit = "- One class (athlete); no instance separation: touching athletes form one blob."
    return f"""# Venue Edge reference segmentation model

A compact U-Net that separates athletes (foreground) from ice, snow, crowd and
course (background). Input 1x3x{r['height']}x{r['width']} float32 (NCHW, RGB, scaled
to 0..1 then normalised with mean 0.5 and std 0.25), output 1x{channels}x{r['height']}x{r['width']}
logits (athlete where the logit is above 0, probability 0.5). ONNX opset 17,
{r['onnx_bytes']} bytes, {r['params']} parameters.

## Data
Rendered by `venue-edge synth` at {r['width']}x{r['height']} for both scenes (`rink`,
`slope`), 300 frames per seed; frames from index 40 on, every 4th for training and
every 10th for evaluation.
- Training seeds: {train_seeds} (both scenes), {r['train_frames']} frames.
- Held-out seeds (never trained on): {heldout_seeds} (both scenes), {r['heldout_frames']} frames.
- Seeds 9001 and up are kept for the Rust integration tests and fixtures.

## Training
`models/train/train.sh` (creates a local venv, renders the data, runs `train.py`).
AdamW, one-cycle learning rate up to 3e-3, {r['steps']} steps of batch {r['batch']}
random {r['crop']}x{r['crop']} crops (70 % centred near an athlete pixel), horizontal
flips, loss = BCE + soft Dice. Seed {r['seed']}, CPU, {r['threads']} thread(s),
torch {r['torch']}; {r['train_seconds']} s wall time including data loading.

## Held-out IoU (measured by train.py)
Pooled over all held-out frames of a scene (athlete pixels), at model resolution:

| scene | IoU |
|---|---|
{iou}
{instances}
## Known limits
- Trained only on synthetic frames at {r['width']}x{r['height']}: larger frames are
  downscaled to the model input, so athletes only a few pixels tall are lost, and real
  camera footage (noise, blur, lighting, uniforms) is untested.
- Reflections of skaters in the ice are background by definition of the ground truth;
  the model mostly but not always agrees.
{limit}
"""


if __name__ == "__main__":
    main()
