"""`python -m training evaluate-two-digit`: are a two-digit model's numbers the ones asked for?

For each of the 100 labels it samples `--per-label` numbers (at the model's recommended settings unless told
otherwise), cuts each into its two 32-column halves, centres each half's ink in 28×28 (the digits were
placed unscaled, so this is what the digit classifier was trained on) and asks the project's digit
classifier which digit each half shows. A number counts as right when both digits are the ones asked
for. One JSON line: that share, each digit position's share, the worst labels, and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import torch
from torch import Tensor

from bfn.classifier import DigitClassifier, digits_of, load_classifier
from bfn.sampling import SAMPLERS, guidance_interval_for
from training.datasets import get_dataset
from training.evaluate_samples import generate, real_images
from training.sample_metrics import digits_right


def read_digits(classifier: DigitClassifier, numbers: Tensor) -> Tensor:
    """Numbers (N, 64, 64) in [0, 1] → the digits the classifier reads in their halves (N, 2): (tens, units).

    Each half is centred as the app's classifier view centres it (`bfn.classifier.digits_of`)."""
    digits = digits_of(numbers, 2)
    return classifier.probabilities(digits.reshape(-1, *digits.shape[2:])).argmax(1).reshape(-1, 2)


def score_numbers(read: Tensor, labels: Tensor) -> dict:
    """Shares of numbers whose both digits (and whose tens and whose units digit) are the ones asked for: the
    figure `evaluate-samples` reports as accuracy_numbers, by the same rule, with each position's share and the
    worst labels beside it."""
    asked = torch.stack([labels // 10, labels % 10], dim=1)
    right = torch.from_numpy(digits_right(read.flatten().numpy(), asked.flatten().numpy(), 2))
    both = right.all(1)
    per_label = {int(n): both[labels == n].float().mean().item() for n in labels.unique()}
    worst = sorted(per_label.items(), key=lambda item: item[1])[:5]
    return {"both_digits": round(both.float().mean().item(), 4), "tens_digit": round(right[:, 0].float().mean().item(), 4),
            "units_digit": round(right[:, 1].float().mean().item(), 4),
            "worst_labels": {f"{n:02d}": round(share, 3) for n, share in worst}}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate-two-digit", help="share of a two-digit model's numbers whose both digits are the ones asked for",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="two-digit model folder or Hub repo id")
    p.add_argument("--classifier", default=None, help="digit classifier folder or Hub repo id (default: weights/classifier)")
    p.add_argument("--per-label", type=int, default=10, help="numbers sampled per label (00–99)")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), help="sampler (default: the model's recommended one for --steps)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's recommended)")
    p.add_argument("--guidance", type=float, help="guidance weight (default: the model's recommended)")
    p.add_argument("--guidance-interval", type=float, nargs=2, metavar=("START", "END"),
                   help="guide only for t in [START, END] (default: the model's recommended interval)")
    p.add_argument("--real", metavar="DATA_DIR",
                   help="score real test numbers instead (from MNIST in DATA_DIR, as the model sees its data): the "
                        "ceiling that the classifier's own errors set; as many as samples would be")
    p.add_argument("--batch-size", type=int, default=100, help="numbers sampled at once")
    p.add_argument("--seed", type=int, default=0, help="seed of the first batch (batch b uses seed + b)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device to sample on")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from bfn.hub import load_model

    if args.per_label < 1 or (args.steps is not None and args.steps < 1):
        raise ValueError("--per-label and --steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    if model.data_shape[1:] != (64, 64) or model.num_labels != 100:
        raise ValueError(f"{args.model} is not a two-digit model (it draws {model.data_shape[1]}×{model.data_shape[2]} "
                         f"images with {model.num_labels} labels; a two-digit one 64×64 with 100)")
    classifier = load_classifier(args.classifier, device=args.device)
    recommended = model.sampling
    steps = args.steps or recommended.steps
    sampler = args.sampler or recommended.sampler_for(steps)
    guidance = recommended.guidance if args.guidance is None else args.guidance
    interval = guidance_interval_for(model, tuple(args.guidance_interval) if args.guidance_interval else None)
    labels = [n for n in range(model.num_labels) for _ in range(args.per_label)]
    start = time.perf_counter()
    if args.real:
        test = get_dataset("two-digit").test(args.real).subset(slice(0, len(labels)))
        numbers, labels = real_images(model.flow, test, args.seed), test.labels.tolist()
        setting = {"real": True}
    else:
        numbers = generate(model, sampler, labels, steps, guidance, args.seed, args.batch_size, interval,
                           recommended.rescaled_phi)
        setting = {"sampler": sampler, "steps": steps, "guidance": guidance, "guidance_interval": list(interval)}
    seconds = time.perf_counter() - start
    scores = score_numbers(read_digits(classifier, numbers).cpu(), torch.tensor(labels))
    line = {"model": str(args.model), **setting, "numbers": len(labels), **scores, "seconds": round(seconds, 1),
            "seed": args.seed, "command": "python -m training " + shlex.join(sys.argv[1:])}
    print(json.dumps(line), flush=True)
