"""`python -m training typical-bounds`: how the unconditional bound of real test images is spread, per model.

Bayes' rule names a label for any image, however unlike the training data (bfn.typicality). This command
scores N test images under "no class" as the app scores a drawing (S stratified times, `bfn.typicality.
unconditional_bounds`), prints the percentiles of their bounds in the model's unit, and with `--write` stores
them beside the weights (`typical_bounds.json`, with the weights' digest), where `bfn.hub.load_model` reads
them. By default it scores every tenth test image from image 1 on (1, 11, …, 9991: both halves of MNIST's
unshuffled test set), so that `python -m training bayes-accuracy --every 30` (0, 30, 60, …) measures how often
the warning fires on test images the percentiles did not see.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bfn import typicality
from bfn.hub import load_model
from training.bayes_accuracy import add_test_images, picked_images, picked_range
from training.datasets import DATASETS, check_fits, get_dataset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("typical-bounds", help="percentiles of the unconditional bound of test images, stored beside the model",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("--dataset", choices=tuple(DATASETS), default="mnist", help="the test set the model's data comes from")
    add_test_images(p, first=1, limit=1000, every=10)
    p.add_argument("--samples", type=int, default=32, help="Monte-Carlo draws S per image (the app's S)")
    p.add_argument("--write", action="store_true", help=f"write {typicality.FILE} into the model folder")
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The command that measures the same again (recorded in the file)."""
    return (f"python -m training typical-bounds --model {args.model} --dataset {args.dataset} --data-dir {args.data_dir} "
            f"--first {args.first} --every {args.every} --limit {args.limit} --samples {args.samples} --seed {args.seed} --threads {args.threads} --write")


def run(args: argparse.Namespace) -> None:
    if args.samples < 1:
        raise ValueError("--samples must be at least 1")
    folder = Path(args.model)
    if args.write and not folder.is_dir():
        raise ValueError(f"--write needs a local model folder, got {args.model}")
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    dataset = get_dataset(args.dataset)
    check_fits(model, dataset, args.dataset)
    data = picked_images(args, dataset.test(args.data_dir))
    x = model.flow.data_from_images(data.images, torch.Generator().manual_seed(args.seed))
    bounds = typicality.unconditional_bounds(model, x, args.samples, torch.Generator().manual_seed(args.seed))
    what = f"{args.dataset} test images {picked_range(args, len(data))}"
    reference = typicality.summarise(bounds.tolist(), model.flow.nll_unit.name, args.samples, what,
                                     typicality.weights_digest(folder) if folder.is_dir() else "", command_line(args))
    print(json.dumps(reference.to_dict(), ensure_ascii=False))
    if args.write:
        print(f"wrote {typicality.save(folder, reference)}")
