"""`python -m training bayes-accuracy`: how well Bayes' rule over the BFN's bounds classifies MNIST test digits.

For each number of Monte-Carlo samples S, the first N test images are scored one at a time, as the app
scores a drawing (bfn.scoring: the bound under each digit and "no class" with common random numbers, 2 · S · 11
network passes per image), and the most probable digit is compared with the label. Every S sees the same
data: the flow's data is drawn from the images once with `--seed` (the binarised model's binarisation),
and the scoring draws start from `--seed` again. It prints one JSON line per S, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from tqdm import tqdm

from bfn.hub import load_model
from bfn.model import BFNModel
from bfn.scoring import predictions, score_images
from training.data import Split, test_split


@torch.inference_mode()
def bayes_accuracy(model: BFNModel, data: Split, samples: int, seed: int = 0) -> dict:
    """Accuracy of Bayes' rule over `data` with S = `samples`, and the scoring time per image."""
    x = model.flow.data_from_images(data.images, torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)
    hits = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for k, bounds in enumerate(tqdm(score_images(model, x, samples, generator), total=len(data), desc=f"S={samples}",
                                    unit="image", dynamic_ncols=True)):
        hits += int(predictions(bounds, model.num_labels)[1][0]) == int(data.labels[k])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"samples": samples, "network_passes_per_image": 2 * samples * (model.num_labels + 1), "images": len(data),
            "accuracy": round(hits / len(data), 4), "ms_per_image": round(1000 * seconds / len(data), 1),
            "cpu_ms_per_image": round(1000 * cpu_seconds / len(data), 1), "threads": torch.get_num_threads()}


def table(rows: list[dict]) -> str:
    """The JSON lines as a Markdown table. CPU time is shown beside wall time: on a machine shared with other
    jobs the wall time measures the sharing as much as the scoring."""
    lines = ["| S | network passes / image | accuracy | ms / image (wall) | ms / image (CPU) |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['samples']} | {r['network_passes_per_image']} | {r['accuracy']:.2%} | {r['ms_per_image']:.0f} | "
              f"{r['cpu_ms_per_image']:.0f} |" for r in rows]
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bayes-accuracy", help="accuracy of Bayes' rule over the BFN's bounds on MNIST test digits, against S",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="weights/discrete", help="model folder (config.json + model.safetensors) or Hub repo id")
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    p.add_argument("--limit", type=int, default=500, help="score the first N test images")
    p.add_argument("--samples", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="the numbers of Monte-Carlo samples S to try")
    p.add_argument("--seed", type=int, default=0, help="seed of the data draw and of the scoring draws")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.limit < 1 or min(args.samples) < 1 or args.threads < 1:
        raise ValueError("--limit, --samples and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    data = test_split(args.data_dir).subset(slice(0, args.limit))
    rows = []
    for samples in args.samples:
        rows.append(bayes_accuracy(model, data, samples, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
