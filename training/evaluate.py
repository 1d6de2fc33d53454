"""Test-set negative log-likelihood bound, by the paper's procedure.

−ln p(x) ≤ L(x) + L^r(x): the continuous-time loss L^∞ (`--steps 0`) or the n-step loss L^n, plus the
reconstruction loss at t = 1, each a one-sample Monte-Carlo estimate averaged over test images and repeats
(`bfn.objective.nll_terms`). Each flow names its unit (`Flow.nll_unit`): binarised MNIST in nats per image
(the paper's 77.87 is unconditional), continuous MNIST in bits per dimension of the 8-bit pixels. Both the class-conditional bound (true labels) and the unconditional one
("no class" label) are reported: the former is lower by up to ln 10 ≈ 2.3 nats.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from bfn.model import BFNModel
from bfn.objective import nll_terms
from training.data import Split
from training.datasets import DATASETS, check_fits, get_dataset


@torch.inference_mode()
def evaluate_nll(model: BFNModel, data: Split, steps: int = 0, repeats: int = 1, batch_size: int = 500, seed: int = 0) -> dict:
    """Average bound over `data` × `repeats`, conditional and unconditional, in the flow's unit (and in nats per pixel)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    sums = {"conditional": [0.0, 0.0], "unconditional": [0.0, 0.0]}
    batches = [(r, s) for r in range(repeats) for s in range(0, len(data), batch_size)]
    for _, start in tqdm(batches, desc="evaluate", dynamic_ncols=True):
        part = data.subset(slice(start, start + batch_size)).to(device)
        x = model.flow.data_from_images(part.images, generator)
        for mode, labels in (("conditional", part.labels), ("unconditional", torch.full_like(part.labels, model.num_labels))):
            terms = nll_terms(model.flow, model, x, labels, steps, generator)
            sums[mode][0] += terms.loss.sum().item()
            sums[mode][1] += terms.reconstruction.sum().item()
    n = len(data) * repeats
    dims = math.prod(model.data_shape)
    unit = model.flow.nll_unit
    result = {"kind": model.kind, "unit": unit.name, "steps": steps or "continuous-time", "test_images": len(data), "repeats": repeats}
    for mode, (loss, recon) in sums.items():
        result[f"nll_{mode}"] = round(unit.convert((loss + recon) / n, dims), 4)
        result[f"reconstruction_{mode}"] = round(unit.convert(recon / n, dims), 4)
        result[f"nll_{mode}_nats_per_pixel"] = round((loss + recon) / n / dims, 5)  # comparable across image sizes
    return result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test-set NLL bound (nats/image for discrete, bits/dim for continuous)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors) or Hub repo id")
    p.add_argument("--dataset", choices=tuple(DATASETS), default="mnist", help="the data set the model was trained on")
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/ (or the data set's torchvision folder)")
    p.add_argument("--steps", type=int, default=0, help="0 = continuous-time loss L∞; N = the N-step loss L^N")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N test images (0 = all 10,000)")
    p.add_argument("--repeats", type=int, default=1, help="Monte-Carlo passes over the test images")
    p.add_argument("--batch-size", type=int, default=500, help="images per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seed of binarisation, times and noise")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--record", action="store_true",
                   help="append the result and this command to the model folder's evaluations.jsonl and refresh its model card")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from bfn.hub import load_model
    from training.card import record_evaluation

    if args.steps < 0 or args.limit < 0 or args.repeats < 1:
        raise ValueError("--steps and --limit must be ≥ 0 and --repeats ≥ 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cuda" if torch.cuda.is_available() else "cpu")
    dataset = get_dataset(args.dataset)
    check_fits(model, dataset, args.dataset)
    data = dataset.test(args.data_dir)
    if args.limit:
        data = data.subset(slice(0, args.limit))
    result = evaluate_nll(model, data, args.steps, args.repeats, args.batch_size, args.seed)
    print(json.dumps(result))
    if args.record:
        command = "python -m training " + shlex.join(sys.argv[1:])
        record_evaluation(Path(args.model), {**result, "command": command})
