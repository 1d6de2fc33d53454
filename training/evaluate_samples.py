"""`python -m training evaluate-samples`: how good are a model's samples, per sampler, step count and guidance?

For every (sampler, guidance, steps) setting it draws `--per-class` samples of each digit and prints one
JSON line with:

- accuracy: the digit classifier's accuracy on the class-conditional samples, overall and per class;
- frechet: the Fréchet distance between the classifier's penultimate features of the samples and of the
  MNIST test set (the FID recipe with a digit classifier), and on the same line frechet_floor, the same
  distance for as many real training images (balanced the same way): what a perfect model would score
  with this many samples;
- diversity: the mean pairwise feature distance within a class, averaged over classes, with
  diversity_real, the same figure for those real images.

A model of numbers (labels "00" … "99", several digits side by side) is judged digit by digit: each digit of a
sample is read in its own column strip, its ink centred in MNIST's field (`bfn.classifier.digits_of`), and the
metrics above are those of the digits, with accuracy_numbers, the share of samples whose every digit is the
one asked for. Labels that are not digits (Fashion-MNIST, EMNIST) have no digit classifier to judge them.

Real images are prepared like the model's data: dynamically binarised for the discrete model, grey for the
continuous one. `--record` appends the lines to the model folder's sample_quality.jsonl and rewrites its
sample_quality.md table (which the model card includes).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bfn.classifier import DigitClassifier, digit_parts, digits_of, load_classifier
from bfn.flow import Flow
from bfn.images import to_unit
from bfn.sampling import SAMPLERS, autoguidance_interval_for, guidance_interval_for, sample
from training.card import SAMPLE_QUALITY, SAMPLE_RESULTS, write_card
from training.data import Split, load_mnist
from training.sample_metrics import (
    CONFIDENT,
    class_accuracy,
    class_shares,
    confident_share,
    digits_right,
    distance_from_uniform,
    diversity,
    feature_statistics,
    frechet_distance,
)


def classify(classifier: DigitClassifier, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, np.ndarray]:
    """(calibrated class probabilities (N, 10), penultimate features (N, D) in float64) of MNIST-sized digits
    (N, H, W) in [0, 1]: what every score below reads, real digits and samples alike."""
    feats, logits = classifier.features_and_logits(images, batch_size)
    return classifier.class_probabilities(logits), feats.double().cpu().numpy()


def real_images(flow: Flow, split: Split, seed: int = 0) -> Tensor:
    """Real images as the model sees its data (binarised, or grey), in [0, 1] like its samples."""
    x = flow.data_from_images(split.images, torch.Generator().manual_seed(seed))
    return to_unit(flow.sample_view(x)[:, 0].float(), flow.display.value_range)


def balanced_subset(split: Split, per_class: int, seed: int = 0) -> Split:
    """`per_class` random images of each digit, ordered by class."""
    g = torch.Generator().manual_seed(seed)
    idx = []
    for c in range(int(split.labels.max()) + 1):
        members = (split.labels == c).nonzero().flatten()
        if len(members) < per_class:
            raise ValueError(f"only {len(members)} images of digit {c}, {per_class} asked for")
        idx.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return split.subset(torch.cat(idx))


def generate(model, sampler: str, labels: list[int], steps: int, guidance: float, seed: int, batch_size: int,
             guidance_interval: tuple[float, float] | None = None, rescaled_phi: float = 0.0,
             autoguidance: float = 1.0, autoguidance_interval: tuple[float, float] | None = None) -> Tensor:
    """Final samples (N, H, W) in [0, 1], the model's image size; batch b uses seed + b."""
    out = []
    for b, start in enumerate(range(0, len(labels), batch_size)):
        final = sample(model, labels[start : start + batch_size], sampler=sampler, steps=steps, guidance=guidance,
                       seed=seed + b, guidance_interval=guidance_interval, rescaled_phi=rescaled_phi,
                       autoguidance=autoguidance, autoguidance_interval=autoguidance_interval)
        out.append(to_unit(final.sample.float(), final.value_range))
    return torch.cat(out)


class Reference:
    """Classifier statistics of the real data a sweep compares with, seen as the model's flow sees it."""

    def __init__(self, classifier: DigitClassifier, flow: Flow, test: Split, train: Split, per_class: int, seed: int = 0):
        test_probs, test_feats = classify(classifier, real_images(flow, test, seed))
        self.test_stats = feature_statistics(test_feats)
        self.confident_real = confident_share(test_probs)
        sub = balanced_subset(train, per_class, seed)
        _, sub_feats = classify(classifier, real_images(flow, sub, seed + 1))
        self.floor = frechet_distance(*feature_statistics(sub_feats), *self.test_stats)
        self.diversity_real = diversity(sub_feats, sub.labels.numpy())


def as_digits(images: Tensor, labels: list[int | None], names: tuple[str, ...], parts: int) -> tuple[Tensor, np.ndarray]:
    """Samples of `parts`-digit numbers → (their digits (N · parts) in MNIST's field, each digit's label, −1 for none); a
    model of single digits keeps its samples as they are."""
    digit_labels = np.array([-1 if c is None else int(names[c][p]) for c in labels for p in range(parts)])
    return (images if parts == 1 else digits_of(images, parts).flatten(0, 1)), digit_labels


def score(classifier: DigitClassifier, images: Tensor, labels: np.ndarray, ref: Reference, parts: int = 1) -> dict:
    """Metrics of the digits `images` asked to be `labels`; with `parts` > 1, consecutive runs of `parts` digits
    are the numbers, and accuracy_numbers says how many have every digit right. `confident` is scored as for
    unconditional samples (any digit, confidence ≥ CONFIDENT), so that drawing a digit at random and then that digit
    (the mixture of the conditional model) compares with the model's own "no class" samples on the same footing."""
    probs, feats = classify(classifier, images)
    predicted = probs.argmax(1).cpu().numpy()
    overall, per_class = class_accuracy(predicted, labels)
    numbers = {"accuracy_numbers": round(float(digits_right(predicted, labels, parts).all(1).mean()), 4)} if parts > 1 else {}
    return {
        **numbers,
        "accuracy": round(overall, 4),
        "accuracy_per_class": [None if a is None else round(a, 3) for a in per_class],
        "confident": confident_share(probs),
        "confident_real": ref.confident_real,
        "frechet": round(frechet_distance(*feature_statistics(feats), *ref.test_stats), 3),
        "frechet_floor": round(ref.floor, 3),
        "diversity": round(diversity(feats, labels), 3),
        "diversity_real": round(ref.diversity_real, 3),
    }


def score_unconditional(classifier: DigitClassifier, images: Tensor, ref: Reference) -> dict:
    """Unconditional samples: how many look like a digit (classifier confidence ≥ CONFIDENT, beside the share of
    real test digits that do), how evenly the digits are spread, and the Fréchet distance and diversity (within
    the predicted classes)."""
    probs, feats = classify(classifier, images)
    predicted = probs.argmax(1).cpu().numpy()
    shares = class_shares(predicted)
    return {
        "confident": confident_share(probs),
        "confident_real": ref.confident_real,
        "temperature": classifier.temperature,
        "class_shares": [round(float(s), 3) for s in shares],
        "distance_from_uniform": round(distance_from_uniform(shares), 3),
        "frechet": round(frechet_distance(*feature_statistics(feats), *ref.test_stats), 3),
        "frechet_floor": round(ref.floor, 3),
        "diversity": round(diversity(feats, predicted), 3),
        "diversity_real": round(ref.diversity_real, 3),
    }


def guided(line: dict) -> tuple[float, float]:
    """The guidance interval of a result line; lines written before intervals existed guided throughout."""
    return tuple(line.get("guidance_interval", (0.0, 1.0)))


def guidance_cell(line: dict) -> str:
    """The guidance weight, with the rescaling φ and the autoguidance weight (and its interval) where they were
    used (lines before either existed had none)."""
    phi, auto = line.get("rescaled_phi", 0.0), line.get("autoguidance", 1.0)
    start, end = line.get("autoguidance_interval", (0.0, 1.0))
    return (f"{line['guidance']:g}" + (f" (φ {phi:g})" if phi else "")
            + (f", auto {auto:g} (t {start:g}–{end:g})" if auto != 1 else ""))


def setting_key(line: dict) -> tuple:
    """What makes a result line's setting: a later line of the same setting replaces it in the tables."""
    return (line.get("unconditional", False), line["sampler"], line["steps"], line["guidance"],
            line.get("rescaled_phi", 0.0), line.get("autoguidance", 1.0), tuple(line.get("autoguidance_interval", ())),
            guided(line), line["per_class"])


def render_unconditional_table(lines: list[dict]) -> str:
    """The unconditional sweeps as a markdown table."""
    rows = [
        f"Unconditional samples ({lines[0]['samples']} per setting): the share the digit classifier recognises with "
        f"confidence ≥ {CONFIDENT:g} (they look like digits; in brackets the share of real test digits that do), the "
        "digits' spread (total variation distance from uniform: 0 is balanced; shares of 0–9 in brackets), Fréchet "
        "distance (floor) and diversity (real)." + (
            " Lines without a real share were scored by the classifier's raw, uncalibrated softmax, which gives most "
            "real digits less than 0.9." if any("confident_real" not in r for r in lines) else ""),
        "",
        "| sampler | steps | guidance | confident (real) | distance from uniform (shares 0–9) | Fréchet (floor) | diversity (real) |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in sorted(lines, key=lambda r: (r["sampler"] != "bfn", r["sampler"], r["steps"], r.get("autoguidance", 1.0))):
        shares = " ".join(f"{s:.2f}" for s in r["class_shares"])
        real = f"{r['confident_real']:.1%}" if "confident_real" in r else "—"
        rows.append(f"| {r['sampler']} | {r['steps']} | {guidance_cell(r)} | {r['confident']:.1%} ({real}) | {r['distance_from_uniform']:.3f} ({shares}) | "
                    f"{r['frechet']:.2f} ({r['frechet_floor']:.2f}) | {r['diversity']:.2f} ({r['diversity_real']:.2f}) |")
    commands = sorted({r["command"] for r in lines})
    rows += ["", "Command(s): " + "; ".join(f"`{c}`" for c in commands), ""]
    return "\n".join(rows)


def render_table(lines: list[dict]) -> str:
    """The sweep as a markdown table (the model card's "Sample quality" section); unconditional runs apart."""
    unconditional = [r for r in lines if r.get("unconditional")]
    lines = [r for r in lines if not r.get("unconditional")]
    if not lines:
        return render_unconditional_table(unconditional)
    lines = sorted(lines, key=lambda r: (r["sampler"] != "bfn", r["sampler"], r["guidance"], r.get("rescaled_phi", 0.0),
                                         r.get("autoguidance", 1.0), guided(r), r["steps"], r["samples"]))
    rows = [
        "Digit-classifier metrics of class-conditional samples (as many of each digit; the floor depends on their "
        "number) per setting: classifier accuracy, Fréchet distance of the classifier's penultimate features to the test "
        "set (floor: as many real training images score this), within-class diversity (mean pairwise feature "
        f"distance; real images in brackets), and the share recognised with confidence ≥ {CONFIDENT:g} as any digit (real "
        "test digits in brackets; — for lines scored before it was). Sampler `bfn` is the paper's; `solver` the few-step solver. Guided t: "
        "the times at which guidance above 1 acted (the plain conditional model elsewhere); φ: rescaled guidance; "
        "auto: the autoguidance weight and the times it acted.",
        "",
        "| sampler | steps | guidance | guided t | samples | accuracy | Fréchet (floor) | diversity (real) | confident (real) | s/sample |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in lines:
        start, end = guided(r)
        when = f"{start:g}–{end:g}" if r["guidance"] > 1 else "—"  # w ≤ 1 applies throughout (bfn.sampling.guidance_at)
        accuracy = f"{r['accuracy']:.1%}" if "accuracy_numbers" not in r else f"{r['accuracy_numbers']:.1%} (digits {r['accuracy']:.1%})"
        confident = f"{r['confident']:.1%} ({r['confident_real']:.1%})" if "confident" in r else "—"
        rows.append(f"| {r['sampler']} | {r['steps']} | {guidance_cell(r)} | {when} | {r['samples']} | {accuracy} | {r['frechet']:.2f} ({r['frechet_floor']:.2f}) | "
                    f"{r['diversity']:.2f} ({r['diversity_real']:.2f}) | {confident} | {r['seconds'] / r['samples']:.3f} |")
    commands = sorted({r["command"] for r in lines})
    rows += ["", "Command(s): " + "; ".join(f"`{c}`" for c in commands), ""]
    if unconditional:
        rows += [render_unconditional_table(unconditional)]
    return "\n".join(rows)


def record(folder: Path, lines: list[dict]) -> None:
    """Append to sample_quality.jsonl, rewrite sample_quality.md (last result per setting) and the card."""
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"--record needs a local model folder; {folder} has no config.json")
    with (folder / SAMPLE_RESULTS).open("a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    latest = {}
    for line in (json.loads(l) for l in (folder / SAMPLE_RESULTS).read_text().splitlines() if l.strip()):
        latest[setting_key(line)] = line
    (folder / SAMPLE_QUALITY).write_text(render_table(list(latest.values())))
    if (folder / "README.md").exists():  # the model card includes sample_quality.md
        write_card(folder)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate-samples", help="classifier accuracy, Fréchet distance and diversity of generated samples",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model folder or Hub repo id (see bfn.hub.load_model)")
    p.add_argument("--classifier", default=None, help="classifier folder or Hub repo id (default: weights/classifier)")
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/ (for the real-image statistics)")
    p.add_argument("--sampler", nargs="+", default=["bfn"], help=f"sampler name(s): {', '.join(sorted(SAMPLERS))}")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0], help="guidance weight(s)")
    p.add_argument("--steps", type=int, nargs="+", default=[100], help="step count(s)")
    p.add_argument("--guidance-interval", type=float, nargs=2, metavar=("START", "END"),
                   help="guide only for t in [START, END] (default: the model's recommended interval)")
    p.add_argument("--rescaled-phi", type=float, nargs="+", default=[0.0],
                   help="rescaled guidance φ value(s) in [0, 1] (0: plain guidance)")
    p.add_argument("--autoguidance", type=float, nargs="+", default=[1.0],
                   help="autoguidance weight(s) ≥ 1 with the model's guide (1: off)")
    p.add_argument("--autoguidance-interval", type=float, nargs=2, metavar=("START", "END"),
                   help="autoguide only for t in [START, END] (default: the model's recommended interval, else all)")
    p.add_argument("--unconditional", action="store_true",
                   help="sample --per-class images per label with no class instead: share that look like digits, spread over the digits")
    p.add_argument("--per-class", type=int, default=50, help="samples per digit and setting")
    p.add_argument("--batch-size", type=int, default=250, help="images sampled at once")
    p.add_argument("--seed", type=int, default=0, help="seed of the first batch (batch b uses seed + b)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device to sample on")
    p.add_argument("--record", action="store_true", help="append to the model folder's sample_quality.jsonl/.md and refresh its card")
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a sweep (for the JSON lines and the model card)."""
    parts = ["--model", str(args.model), "--data-dir", str(args.data_dir), "--sampler", *args.sampler,
             "--guidance", *[f"{g:g}" for g in args.guidance], "--steps", *map(str, args.steps),
             *(["--rescaled-phi", *[f"{p:g}" for p in args.rescaled_phi]] if args.rescaled_phi != [0.0] else []),
             *(["--autoguidance", *[f"{a:g}" for a in args.autoguidance]] if args.autoguidance != [1.0] else []),
             *(["--autoguidance-interval", *[f"{t:g}" for t in args.autoguidance_interval]]
               if args.autoguidance_interval else []),
             *(["--unconditional"] if args.unconditional else []),
             "--per-class", str(args.per_class), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    if args.guidance_interval:
        parts += ["--guidance-interval", *[f"{t:g}" for t in args.guidance_interval]]
    if args.classifier:
        parts += ["--classifier", str(args.classifier)]
    return "python -m training evaluate-samples " + shlex.join(parts)


def run(args: argparse.Namespace) -> None:
    from bfn.hub import load_model

    for name in args.sampler:
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    if any(not 0 <= phi <= 1 for phi in args.rescaled_phi):
        raise ValueError(f"--rescaled-phi values must lie in [0, 1], got {args.rescaled_phi}")
    if args.per_class < 2:
        raise ValueError("--per-class must be at least 2 (diversity needs pairs)")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    parts = digit_parts(model.label_names)
    if parts == 0:
        raise ValueError(f"{args.model}'s labels are not digits ({', '.join(model.label_names[:3])}, …): the digit "
                         "classifier cannot judge its samples")
    classifier = load_classifier(args.classifier)
    ref = Reference(classifier, model.flow, Split(*load_mnist(args.data_dir, train=False)),
                    Split(*load_mnist(args.data_dir, train=True)), args.per_class)
    labels = [None if args.unconditional else c for c in range(model.num_labels) for _ in range(args.per_class)]
    command = command_line(args)
    interval = guidance_interval_for(model, tuple(args.guidance_interval) if args.guidance_interval else None)
    lines = []
    auto_interval = tuple(args.autoguidance_interval) if args.autoguidance_interval else None
    settings = [(sampler, guidance, phi, auto, steps) for sampler in args.sampler for guidance in args.guidance
                for phi in args.rescaled_phi for auto in args.autoguidance for steps in args.steps]
    for sampler, guidance, phi, auto, steps in settings:
        start = time.perf_counter()
        images = generate(model, sampler, labels, steps, guidance, args.seed, args.batch_size, interval, phi,
                          auto, auto_interval).cpu()
        seconds = time.perf_counter() - start
        digits, digit_labels = as_digits(images, labels, model.label_names, parts)
        scores = score_unconditional(classifier, digits, ref) if args.unconditional else score(classifier, digits, digit_labels, ref, parts)
        line = {"model": str(args.model), "kind": model.kind, "sampler": sampler, "guidance": guidance,
                "guidance_interval": list(interval), "steps": steps, **({"rescaled_phi": phi} if phi else {}),
                **({"autoguidance": auto, "autoguidance_interval": list(autoguidance_interval_for(model, auto_interval))}
                   if auto != 1 else {}),
                **({"unconditional": True} if args.unconditional else {}),
                "per_class": args.per_class, "samples": len(labels), **scores,
                "seconds": round(seconds, 2), "seed": args.seed, "command": command}
        print(json.dumps(line), flush=True)
        lines.append(line)
    if args.record:
        record(Path(args.model), lines)
