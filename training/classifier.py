"""`python -m training classifier`: train the MNIST digit classifier that judges samples, and export it.

A small conv net (bfn.classifier.DigitClassifier) trained for a few epochs on the 60k training images with
light augmentation: random shifts of up to 2 pixels, and half of the images dynamically binarised (each
pixel a Bernoulli draw with p = intensity) so that it reads the binarised model's samples as well as grey
ones. It prints the test accuracy and writes a Hub-layout folder (config.json, model.safetensors,
README.md, training.json) that `bfn.classifier.load_classifier` reads.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bfn.classifier import DigitClassifier
from training.data import Split, load_mnist, test_split
from training.sample_metrics import confident_share

CARD = """---
library_name: bfn-studio
license: mit
tags: [mnist, image-classification, pytorch_model_hub_mixin]
datasets: [mnist]
metrics: [accuracy]
---

# BFN Studio: MNIST digit classifier

The judge of BFN Studio's sample quality: a {params}-parameter conv net ({widths} channels, batch norm,
global average pooling) whose {features} penultimate features are the embedding of the Fréchet distance
(`python -m training evaluate-samples`), and whose probabilities the app plots at every sampling step.
Inputs are 28×28 intensities in [0, 1], grey or binarised.

- Test accuracy (MNIST test set, 10,000 images): **{test_accuracy:.2%}** grey, {test_accuracy_binarised:.2%} dynamically binarised.
{calibration_line}- Training: {epochs} epochs over the 60,000 training images, batch {batch_size}, AdamW with a one-cycle
  learning rate (peak {lr}); augmentation: random shifts of up to {shift} pixels, {binarise:.0%} of images binarised.
- Compute: {compute}
- Command: `{command}`

```python
from bfn.classifier import load_classifier
classifier = load_classifier("weights/classifier")
probs = classifier.probabilities(images)  # images (B, 28, 28) in [0, 1]
```
"""


@dataclass
class ClassifierConfig:
    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    shift: int = 2  # max pixels of random translation
    binarise: float = 0.5  # fraction of training images dynamically binarised
    seed: int = 0
    threads: int = 1
    channels: tuple[int, int, int, int] = (16, 32, 64, 128)  # another width gives a second judge, another feature space


def augment(images: Tensor, cfg: ClassifierConfig, generator: torch.Generator) -> Tensor:
    """uint8 (B, 28, 28) → float (B, 1, 28, 28) in [0, 1], randomly shifted, some binarised."""
    x = images.float().unsqueeze(1) / 255
    b = x.shape[0]
    if cfg.shift:
        s = cfg.shift
        padded = F.pad(x, (s, s, s, s))
        dx, dy = torch.randint(0, 2 * s + 1, (2,), generator=generator).tolist()  # one shift per batch: cheap
        x = padded[:, :, dy : dy + 28, dx : dx + 28]
    if cfg.binarise:
        chosen = (torch.rand(b, 1, 1, 1, generator=generator) < cfg.binarise).float()
        binary = torch.bernoulli(x, generator=generator)
        x = chosen * binary + (1 - chosen) * x
    return x


def half_binarised(split: Split, seed: int) -> Tensor:
    """The split's images in [0, 1], every second one dynamically binarised: the mix the classifier trains on."""
    x = split.images.float() / 255
    binary = torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))
    return torch.where((torch.arange(len(x)) % 2 == 1)[:, None, None], binary, x)


def calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> float:
    """Expected calibration error: the mean |accuracy − confidence| over equal-width confidence bins, weighted
    by how many images fall in each (0 = a confidence of c is right a share c of the time)."""
    confidence, predicted = probs.max(1)
    right = (predicted == labels).float()
    which = ((confidence * bins).ceil().long() - 1).clamp(0, bins - 1)
    error = torch.zeros(())
    for b in which.unique():
        members = which == b
        error += members.float().mean() * (right[members].mean() - confidence[members].mean()).abs()
    return float(error)


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T that minimises the cross-entropy of softmax(logits / T) against `labels`: one number,
    found by a golden-section search over log T in [1/20, 20] (the cross-entropy is convex in 1/T)."""

    def loss(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    lo, hi = math.log(1 / 20), math.log(20)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (lo, b) if loss(a) < loss(b) else (a, hi)
    return math.exp((lo + hi) / 2)


@torch.inference_mode()
def calibration(model: DigitClassifier, test: Split, seed: int = 1) -> dict:
    """How well the probabilities mean what they say on the test set (half binarised): cross-entropy, expected
    calibration error, and the share of real digits given a confidence ≥ 0.9."""
    logits = model.features_and_logits(half_binarised(test, seed))[1]
    probs = model.class_probabilities(logits)
    return {"test_nll": round(F.cross_entropy(logits / model.temperature, test.labels).item(), 4),
            "test_ece": round(calibration_error(probs, test.labels), 4),
            "test_confident": confident_share(probs)}


def calibrated(model: DigitClassifier, train: Split, test: Split) -> tuple[DigitClassifier, dict]:
    """`model` with the temperature fitted on the training images, and the calibration before and after
    (fitting on training images keeps the test set out of it)."""
    before = with_temperature(model, 1.0)
    t = round(fit_temperature(before.features_and_logits(half_binarised(train, seed=0))[1], train.labels), 4)
    after = with_temperature(model, t)
    return after, {"temperature": t, "before": calibration(before, test), "after": calibration(after, test)}


def with_temperature(model: DigitClassifier, temperature: float) -> DigitClassifier:
    """A copy of `model` (same weights) whose probabilities use `temperature`; it saves with it in its config."""
    copy = DigitClassifier(**{**model._hub_mixin_config, "temperature": temperature})
    copy.load_state_dict(model.state_dict())
    return copy.eval()


CALIBRATION_LINE = """- Calibration: probabilities are softmax(logits / {temperature:g}), the temperature fitted on the training images
  (`python -m training calibrate-classifier`). On the test set (half binarised) the expected calibration error
  falls from {before[test_ece]:.4f} to {after[test_ece]:.4f} and the cross-entropy from {before[test_nll]:.4f} to
  {after[test_nll]:.4f} nats; real digits given a confidence ≥ 0.9: {before[test_confident]:.1%} → **{after[test_confident]:.1%}**.
"""


@torch.inference_mode()
def accuracy(model: DigitClassifier, split: Split, binarise: bool = False, seed: int = 0) -> float:
    model.eval()
    x = split.images.float().unsqueeze(1) / 255
    if binarise:
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))
    predictions = model.features_and_logits(x)[1].argmax(1)
    return (predictions == split.labels).float().mean().item()


def train_classifier(train: Split, cfg: ClassifierConfig, log=print) -> DigitClassifier:
    """Train a fresh classifier on `train` for cfg.epochs epochs (deterministic for a given seed)."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = DigitClassifier(channels=cfg.channels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    if total >= 20:
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=0.2)
    else:  # too few steps for a warm-up phase (tiny test fixtures): constant learning rate
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(train), generator=generator)
        running, start = 0.0, time.perf_counter()
        for k in range(per_epoch):
            idx = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            x = augment(train.images[idx], cfg, generator)
            loss = F.cross_entropy(model(x), train.labels[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item()
        log(json.dumps({"epoch": epoch + 1, "loss": round(running / per_epoch, 4), "seconds": round(time.perf_counter() - start, 1)}))
    return model.eval()


def export_classifier(model: DigitClassifier, out: Path, record: dict) -> Path:
    """Write config.json + model.safetensors (save_pretrained), training.json and the model card."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(record, indent=2))
    params = f"{sum(p.numel() for p in model.parameters()) / 1e3:.0f}k"
    calibration_line = CALIBRATION_LINE.format(**record["calibration"]) if "calibration" in record else ""
    compute = record.get("compute", f"{record['seconds']:.0f} s on {record['threads']} CPU thread(s).")  # or a note written by hand
    widths = "-".join(str(c) for c in record.get("channels", ClassifierConfig.channels))
    (out / "README.md").write_text(CARD.format(params=params, calibration_line=calibration_line, widths=widths,
                                               features=model.feature_dim, **{**record, "compute": compute}))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    d = ClassifierConfig()
    p = sub.add_parser("classifier", help="train the MNIST digit classifier used by the sample-quality metrics and the app",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    p.add_argument("--out", type=Path, default=Path("weights/classifier"), help="model folder to write")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the 60k training images")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--shift", type=int, default=d.shift, help="max pixels of random translation")
    p.add_argument("--binarise", type=float, default=d.binarise, help="fraction of training images binarised")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, data order and augmentation")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--channels", type=int, nargs=4, default=list(d.channels), metavar="C",
                   help="widths of the four convolutions (a second judge: other widths and seed, another feature space)")
    p.set_defaults(func=run)
    c = sub.add_parser("calibrate-classifier", help="fit the digit classifier's softmax temperature on the training "
                       "images and rewrite its folder", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    c.add_argument("--classifier", type=Path, default=Path("weights/classifier"), help="classifier folder to calibrate")
    c.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    c.set_defaults(func=run_calibrate)


def command_line(args: argparse.Namespace) -> str:
    """The full command that reproduces this run, every option spelled out (for the model card)."""
    return "python -m training classifier " + shlex.join([
        "--data-dir", str(args.data_dir), "--out", str(args.out), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
        "--lr", str(args.lr), "--shift", str(args.shift), "--binarise", str(args.binarise), "--seed", str(args.seed),
        "--threads", str(args.threads), "--channels", *map(str, args.channels)])


def run(args: argparse.Namespace) -> None:
    cfg = ClassifierConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, shift=args.shift,
                           binarise=args.binarise, seed=args.seed, threads=args.threads, channels=tuple(args.channels))
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError("--epochs and --batch-size must be at least 1")
    torch.set_num_threads(cfg.threads)
    train = Split(*load_mnist(args.data_dir, train=True))
    test = test_split(args.data_dir)
    start = time.perf_counter()
    model, fit = calibrated(train_classifier(train, cfg), train, test)
    seconds = time.perf_counter() - start
    record = {**asdict(cfg), "test_accuracy": accuracy(model, test), "test_accuracy_binarised": accuracy(model, test, binarise=True),
              "seconds": seconds, "command": command_line(args), "calibration": fit}
    export_classifier(model, args.out, record)
    print(json.dumps({"test_accuracy": round(record["test_accuracy"], 4),
                      "test_accuracy_binarised": round(record["test_accuracy_binarised"], 4),
                      "seconds": round(seconds, 1), "out": str(args.out)}))


def run_calibrate(args: argparse.Namespace) -> None:
    """Calibrate an exported classifier in place: its weights, and so its features and accuracy, stay as they are."""
    from bfn.classifier import load_classifier

    torch.set_num_threads(args.threads)
    record_file = args.classifier / "training.json"
    if not record_file.is_file():
        raise FileNotFoundError(f"{record_file} not found: calibrate-classifier rewrites a folder that "
                                "`python -m training classifier` exported")
    model, fit = calibrated(load_classifier(args.classifier), Split(*load_mnist(args.data_dir, train=True)),
                            test_split(args.data_dir))
    record = {**json.loads(record_file.read_text()), "calibration": fit}
    export_classifier(model, args.classifier, record)
    print(json.dumps(fit))
