"""`python -m training bayes-accuracy`: how well Bayes' rule over the BFN's bounds classifies MNIST test digits.

For each number of Monte-Carlo samples S, the first N test images are scored one at a time, as the app
scores a drawing (bfn.scoring: the bound under each digit and "no class" with common random numbers, 2 · S · 11
network passes per image), and the most probable digit is compared with the label. Every S sees the same
data: the flow's data is drawn from the images once with `--seed` (the binarised model's binarisation),
and the scoring draws start from `--seed` again. It prints one JSON line per S, then a Markdown table.

With `--drawing-like` the test digits are first redrawn as a sketchpad draws (`bfn.strokes.as_drawn`: the
digit scaled to `--canvas`, reduced to its strokes' centre lines, traced with a round brush of
`--brush-radius`) and made MNIST-like again (`bfn.digits.to_mnist`), as the app prepares a drawing: what the
models make of drawings, without collecting any. Where the model carries the bounds of real test images
(bfn.typicality), each row also says how often an image is far from the data (the app's warning), the
accuracy where it is not, and how many answers are confidently wrong (posterior ≥ 90 %) without a warning.
With `--classifier`, the app's second caution too: how often the digit classifier reads another digit than
the model's answer, and the confident errors that neither caution marks.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from tqdm import tqdm

from bfn.classifier import load_classifier
from bfn.digits import to_mnist
from bfn.hub import load_model
from bfn.images import to_uint8
from bfn.model import BFNModel
from bfn.scoring import predictions, score_images
from bfn.strokes import as_drawn
from bfn.typicality import FAR_PERCENTILE, TypicalBounds, typicality, unconditional
from training.data import Split, test_split

CONFIDENT = 0.9  # a posterior this high reads as "sure"; wrong and unwarned, it is the answer that misleads


def drawing_like(data: Split, canvas: int, brush_radius: float) -> Split:
    """The digits of `data` drawn again on a `canvas`-pixel sketchpad with a brush of `brush_radius` pixels
    (`bfn.strokes.as_drawn`), then made MNIST-like as a drawing is (`bfn.digits.to_mnist`), as uint8."""
    images = np.stack([to_mnist(as_drawn(image, canvas, brush_radius)) for image in data.images.numpy()])
    return Split(torch.from_numpy(to_uint8(images)), data.labels)


@torch.inference_mode()
def bayes_accuracy(model: BFNModel, data: Split, samples: int, seed: int = 0, read: np.ndarray | None = None) -> dict:
    """Accuracy of Bayes' rule over `data` with S = `samples`, and the scoring time per image; with `read`, the
    digit classifier's answer per image, how the app's cautions treat the answers (`cautions`)."""
    x = model.flow.data_from_images(data.images, torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)
    said, sure, unconditional_bound = np.zeros(len(data), int), np.zeros(len(data), bool), np.zeros(len(data))
    start, cpu_start = time.perf_counter(), time.process_time()
    for k, bounds in enumerate(tqdm(score_images(model, x, samples, generator), total=len(data), desc=f"S={samples}",
                                    unit="image", dynamic_ncols=True)):
        posterior, predicted = predictions(bounds, model.num_labels)
        said[k] = int(predicted[0])
        sure[k] = float(posterior[0].max()) >= CONFIDENT
        unconditional_bound[k] = float(unconditional(bounds, model.flow.nll_unit)[0])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    hits = said == data.labels.numpy()
    row = {"samples": samples, "network_passes_per_image": 2 * samples * (model.num_labels + 1), "images": len(data),
           "accuracy": round(float(hits.mean()), 4), "confidently_wrong": int((sure & ~hits).sum())}
    far = None
    if model.typical_bounds is not None:
        row |= warning_rates(unconditional_bound, hits, sure, model.typical_bounds)
        far = far_from_data(unconditional_bound, model.typical_bounds, FAR_PERCENTILE)
    if read is not None:
        row |= cautions(hits, sure, far, said != read)
    return row | {"ms_per_image": round(1000 * seconds / len(data), 1), "cpu_ms_per_image": round(1000 * cpu_seconds / len(data), 1),
                  "threads": torch.get_num_threads()}


def warning_rates(bounds: np.ndarray, hits: np.ndarray, sure: np.ndarray, reference: TypicalBounds) -> dict:
    """How the far-from-the-data warning (`bfn.typicality`, at its `FAR_PERCENTILE`) treats the scored images: the
    share warned, the accuracy of the others, the confidently wrong answers left unwarned; and, under
    "by_percentile", the share warned and the unwarned confident errors had the threshold been another
    stored percentile (the trade-off that chose it)."""
    def far_at(percentile: float) -> np.ndarray:
        return far_from_data(bounds, reference, percentile)

    far = far_at(FAR_PERCENTILE)
    return {"far": round(float(far.mean()), 4), "accuracy_not_far": round(float(hits[~far].mean()), 4) if (~far).any() else None,
            "confidently_wrong_unwarned": int((sure & ~hits & ~far).sum()),
            "by_percentile": {f"{p:g}": {"far": round(float(f.mean()), 4), "confidently_wrong_unwarned": int((sure & ~hits & ~f).sum())}
                              for p, f in ((p, far_at(p)) for p in sorted(reference.percentiles))}}


def far_from_data(bounds: np.ndarray, reference: TypicalBounds, percentile: float) -> np.ndarray:
    """Per image, whether its unconditional bound is above `percentile` of the test images' (the app's warning)."""
    return np.array([typicality(b, reference, percentile).far for b in bounds], dtype=bool)


def cautions(hits: np.ndarray, sure: np.ndarray, far: np.ndarray | None, disagrees: np.ndarray) -> dict:
    """The app's two cautions together (`app.features.digit.handlers.DigitHandlers._cautions`): the share of answers the digit
    classifier reads otherwise, and the confident errors that neither that nor being far from the data marks."""
    marked = disagrees if far is None else disagrees | far
    return {"classifier_disagrees": round(float(disagrees.mean()), 4), "marked": round(float(marked.mean()), 4),
            "confidently_wrong_unmarked": int((sure & ~hits & ~marked).sum())}


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def table(rows: list[dict]) -> str:
    """The JSON lines as a Markdown table. CPU time is shown beside wall time: on a machine shared with other
    jobs the wall time measures the sharing as much as the scoring."""
    lines = [f"| S | network passes / image | accuracy | confidently wrong (≥ {CONFIDENT:.0%}) | far from the data | "
             "accuracy where not far | confidently wrong, no warning | classifier reads another digit | "
             "confidently wrong, neither caution | ms / image (wall) | ms / image (CPU) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['samples']} | {r['network_passes_per_image']} | {r['accuracy']:.2%} | {r['confidently_wrong']} | "
              f"{_share(r.get('far'))} | {_share(r.get('accuracy_not_far'))} | {r.get('confidently_wrong_unwarned', '–')} | "
              f"{_share(r.get('classifier_disagrees'))} | {r.get('confidently_wrong_unmarked', '–')} | "
              f"{r['ms_per_image']:.0f} | {r['cpu_ms_per_image']:.0f} |" for r in rows]
    return "\n".join(lines)


def classifier_reads(source: str, data: Split) -> np.ndarray:
    """The digit the classifier reads in each image of `data` (its accuracy says whether drawing-like digits are
    still readable; its answers are the app's second caution)."""
    return load_classifier(source).probabilities(data.images.float() / 255).argmax(1).numpy()


def add_test_images(p: argparse.ArgumentParser, first: int, limit: int, every: int = 1) -> None:
    """The options that pick the test images scored and seed their scoring (here and in `typical-bounds`). MNIST's
    test set is not shuffled (its first 5,000 digits are the cleaner ones), so a sample of all of it takes
    every N-th image; `typical-bounds` by default takes images 1, 11, 21, …, which this command then avoids
    with e.g. `--every 30` (0, 30, 60, …), so that each measures images the other did not see."""
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    p.add_argument("--first", type=int, default=first, help="the first test image scored")
    p.add_argument("--every", type=int, default=every, help="score every N-th test image from --first on")
    p.add_argument("--limit", type=int, default=limit, help="score at most this many test images")
    p.add_argument("--seed", type=int, default=0, help="seed of the data draw (binarisation) and of the scoring draws")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def picked_images(args: argparse.Namespace, split: Split) -> Split:
    """The images `add_test_images`' options pick from `split`; ValueError for options that pick none."""
    if args.first < 0 or args.limit < 1 or args.every < 1 or args.threads < 1:
        raise ValueError("--first must be at least 0, and --limit, --every and --threads at least 1")
    data = split.subset(slice(args.first, args.first + args.every * args.limit, args.every))
    if len(data) == 0:
        raise ValueError(f"the test set has no images from {args.first} on")
    return data


def picked_range(args: argparse.Namespace, count: int) -> str:
    """Which test images `picked_images` took, in words: "0–299", or "1, 11, …, 9991"."""
    last = args.first + args.every * (count - 1)
    return f"{args.first}–{last}" if args.every == 1 else f"{args.first}, {args.first + args.every}, …, {last}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bayes-accuracy", help="accuracy of Bayes' rule over the BFN's bounds on MNIST test digits, against S",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="weights/discrete", help="model folder (config.json + model.safetensors) or Hub repo id")
    add_test_images(p, first=0, limit=500)
    p.add_argument("--drawing-like", action="store_true",
                   help="redraw each digit as the app's sketchpad draws (its strokes traced with a round brush), then "
                   "make it MNIST-like as the app makes a drawing")
    p.add_argument("--canvas", type=int, default=280, help="with --drawing-like: the sketchpad's side in pixels (the app's)")
    p.add_argument("--brush-radius", type=float, default=22,
                   help="with --drawing-like: the brush's radius in canvas pixels (the app's; its strokes are twice as wide)")
    p.add_argument("--classifier", default=None, metavar="FOLDER",
                   help="also print the digit classifier's accuracy on the same inputs, and count the answers it reads "
                   "otherwise (the app's second caution) (e.g. weights/classifier)")
    p.add_argument("--samples", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="the numbers of Monte-Carlo samples S to try")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if min(args.samples) < 1:
        raise ValueError("--samples must be at least 1")
    if args.canvas < 28 or args.brush_radius <= 0:
        raise ValueError("--canvas must be at least 28 pixels and --brush-radius above 0")
    data = picked_images(args, test_split(args.data_dir))
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    inputs = f"test digits {picked_range(args, len(data))}"
    if args.drawing_like:
        data = drawing_like(data, args.canvas, args.brush_radius)
        inputs += f", drawn with a brush of radius {args.brush_radius:g} on a {args.canvas}-pixel canvas"
    read = None
    if args.classifier is not None:
        read = classifier_reads(args.classifier, data)
        print(json.dumps({"inputs": inputs, "classifier": args.classifier, "images": len(data),
                          "accuracy": round(float((read == data.labels.numpy()).mean()), 4)}, ensure_ascii=False))
    rows = []
    for samples in args.samples:
        rows.append({"inputs": inputs, **bayes_accuracy(model, data, samples, args.seed, read)})
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    print(table(rows))
