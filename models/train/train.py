"""Trains the Venue Edge reference segmentation model on `venue-edge synth` renders.

Reads the frames and masks that train.sh rendered (DATA/train/{scene}-{seed}/ and
DATA/heldout/{scene}-{seed}/), trains a small U-Net on the CPU with fixed seeds,
measures IoU per scene on the held-out seeds, and writes the model directory:
model.onnx, manifest.toml and MODEL_CARD.md.

Usage: python train.py --data DIR --out DIR [--steps N] [--threads N]
"""

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

WIDTH, HEIGHT = 256, 144
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
THRESHOLD = 0.5
CROP = 128
BATCH = 16


def load_split(root: Path, every: int, first: int):
    """Frames (N,H,W,3 uint8), masks (N,H,W uint8 0/1) and scene names per frame."""
    frames, masks, scenes = [], [], []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        scene = run.name.split("-")[0]
        truth = json.loads((run / "truth.json").read_text())
        for entry in truth["frames"][first::every]:
            frames.append(np.asarray(Image.open(run / entry["frame"]).convert("RGB")))
            masks.append((np.asarray(Image.open(run / entry["mask"])) > 127).astype(np.uint8))
            scenes.append(scene)
    return np.stack(frames), np.stack(masks), scenes


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

    def __init__(self):
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
        self.head = nn.Conv2d(16, 1, 1)

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


def sample_batch(rng: np.random.Generator, frames, masks):
    """Random crops, biased towards crops that hold athlete pixels, with h-flips."""
    idx = rng.integers(0, len(frames), BATCH)
    xs, ys = [], []
    for i in idx:
        m = masks[i]
        if rng.random() < 0.7 and m.any():
            yy, xx = np.nonzero(m)
            k = rng.integers(0, len(yy))
            cy = int(np.clip(yy[k] - CROP // 2 + rng.integers(-32, 33), 0, HEIGHT - CROP))
            cx = int(np.clip(xx[k] - CROP // 2 + rng.integers(-32, 33), 0, WIDTH - CROP))
        else:
            cy = int(rng.integers(0, HEIGHT - CROP + 1))
            cx = int(rng.integers(0, WIDTH - CROP + 1))
        f = frames[i, cy : cy + CROP, cx : cx + CROP]
        mm = m[cy : cy + CROP, cx : cx + CROP]
        if rng.random() < 0.5:
            f, mm = f[:, ::-1], mm[:, ::-1]
        xs.append(np.ascontiguousarray(f))
        ys.append(np.ascontiguousarray(mm))
    x = to_input(np.stack(xs))
    y = torch.from_numpy(np.stack(ys)).float().unsqueeze(1)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train-seeds", default="", help="for the model card")
    ap.add_argument("--heldout-seeds", default="", help="for the model card")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    train_f, train_m, _ = load_split(args.data / "train", every=4, first=40)
    held_f, held_m, held_s = load_split(args.data / "heldout", every=10, first=40)
    print(f"train frames {len(train_f)}, held-out frames {len(held_f)}", flush=True)

    model = UNet()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps, pct_start=0.1)
    model.train()
    for step in range(1, args.steps + 1):
        x, y = sample_batch(rng, train_f, train_m)
        loss = loss_fn(model(x), y)
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
    (args.out / "manifest.toml").write_text(MANIFEST.format(**report, mean=MEAN, std=STD))
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
classes = ["athlete"]
# On the probability: athlete where sigmoid(logit) > threshold.
threshold = {threshold}

[provenance]
trained_by = "models/train/train.sh"
data = "venue-edge synth, rink and slope scenes, {width}x{height}"
license = "Apache-2.0"
"""


def card(r, train_seeds, heldout_seeds):
    iou = "\n".join(f"| {s} | {v:.3f} |" for s, v in r["iou"].items())
    return f"""# Venue Edge reference segmentation model

A compact U-Net that separates athletes (foreground) from ice, snow, crowd and
course (background). Input 1x3x{r['height']}x{r['width']} float32 (NCHW, RGB, scaled
to 0..1 then normalised with mean 0.5 and std 0.25), output 1x1x{r['height']}x{r['width']}
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

## Known limits
- Trained only on synthetic frames at {r['width']}x{r['height']}: larger frames are
  downscaled to the model input, so athletes only a few pixels tall are lost, and real
  camera footage (noise, blur, lighting, uniforms) is untested.
- Reflections of skaters in the ice are background by definition of the ground truth;
  the model mostly but not always agrees.
- One class (athlete); no instance separation: touching athletes form one blob.
"""


if __name__ == "__main__":
    main()
