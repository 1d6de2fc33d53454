"""Which digit is this? The command line of Bayes' rule over a BFN's likelihood bounds (`bfn.scoring`).

`python -m bfn.cli.score --model weights/discrete --images a.png b.png` or `--npz FILE`, one JSON line
per image (see `build_parser`). PNG inputs must be grey at the model's image size (28×28 for MNIST), white ink on
black as in MNIST: other sizes
are refused rather than resized, because a drawing needs MNIST's cropping, centring and stroke width, not
just a size, before its score means anything (a later feature will prepare drawings). Inputs in [0, 1]
become uint8 and then the flow's data (`Flow.data_from_images`); for the binarised model that is one
Bernoulli draw per pixel from the seeded generator, so a seed fixes the binarisation too. User mistakes end
the program with one line on stderr (exit 2; 1 for a model that cannot be loaded), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from bfn.cli.sample import Parser
from bfn.digits import open_image
from bfn.hub import ModelLoadError, load_model
from bfn.images import to_uint8
from bfn.labels import NO_CLASS
from bfn.model import BFNModel
from bfn.objective import LabelBounds
from bfn.scoring import predictions, score_images

MAX_SAMPLES = 1024  # more draws than any use needs; also keeps a typo from asking for hours of work


def read_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A grey PNG (or any image Pillow reads) of `shape` (H, W), the model's image size, as uint8; ValueError for
    anything else."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with open_image(path) as img:  # its size checked before it is decoded (`bfn.digits.MAX_IMAGE_PIXELS`)
        grey = np.asarray(img.convert("L"))
    if grey.shape != tuple(shape):
        raise ValueError(f"{path} is {grey.shape[1]}×{grey.shape[0]} pixels; scoring needs the model's {shape[1]}×{shape[0]} "
                         "images (white on black, MNIST-style), so crop and resize it first: it is not resized here")
    return grey


def read_npz(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """'images' (N×H×W in [0, 1], (H, W) = `shape`, the model's) as uint8, and 'labels' (N, ints, −1 = unlabelled)
    if present."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open("rb") as f:
        if f.read(2) != b"PK":  # else numpy takes it for a pickle and says so, which misleads
            raise ValueError(f"{path} is not an .npz archive (numpy.savez's zip of arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ("images", "labels") if name in archive.files}
    except Exception as e:  # numpy raises many kinds (BadZipFile, ValueError, EOFError, ...) for a bad archive
        raise ValueError(f"{path} is not a readable .npz archive ({' '.join(str(e).split()) or type(e).__name__})") from None
    if "images" not in arrays:
        raise ValueError(f"{path} has no 'images' array (N×{shape[0]}×{shape[1]} in [0, 1])")
    images = arrays["images"]
    if images.ndim != 3 or images.shape[1:] != tuple(shape):
        raise ValueError(f"{path}: 'images' has shape {images.shape}, expected N×{shape[0]}×{shape[1]} (the model's images)")
    if images.shape[0] == 0:
        raise ValueError(f"{path}: 'images' holds no images")
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise ValueError(f"{path}: 'images' has dtype {images.dtype}, expected real numbers in [0, 1]")
    if not np.isfinite(images).all():
        raise ValueError(f"{path}: 'images' holds NaN or infinite values")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"{path}: 'images' values span [{images.min():g}, {images.max():g}], expected [0, 1]")
    labels = arrays.get("labels")
    if labels is not None and (labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{path}: 'labels' must be {images.shape[0]} integers (one per image), got "
                             f"{labels.dtype} of shape {labels.shape}")
    return to_uint8(images), labels


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m bfn.cli.score",
        description="Classify images (MNIST digits, two-digit numbers, …) by Bayes' rule over a class-conditional "
        "BFN's likelihood bounds: one JSON line per image with the bound under each label and 'none' (nats), the "
        "posterior over the labels and the predicted label.",
        epilog="Example: python -m bfn.cli.score --model weights/discrete --images three.png --seed 0",
    )
    p.add_argument("--model", default=None,
                   help="local folder with config.json and model.safetensors, or a Hugging Face Hub repo id (owner/name); "
                   "default: this repository's weights/discrete/")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", type=Path, metavar="PNG",
                        help="grey images of the model's size (28×28 for MNIST), white on black as in MNIST (other sizes are refused)")
    source.add_argument("--npz", type=Path,
                        help="an .npz with 'images' (N×H×W in [0, 1], the model's size, MNIST orientation) and optional 'labels' "
                        "(ints, -1 = unlabelled; bfn.cli.sample --npz writes this layout); with labels a last line "
                        "gives the accuracy")
    p.add_argument("--samples", type=int, default=32,
                   help="Monte-Carlo draws S per image, shared by all labels: network passes per image = 2·S·11; fewer "
                   "is faster but noisier (default: 32, what `python -m training bayes-accuracy` found the binarised "
                   "model to need)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the binarisation (binarised models) and of every draw; same seed, same output (default: 0)")
    p.add_argument("--curve", action="store_true",
                   help="add each label's integrand of the continuous-time loss (nats per unit time) at the midpoints "
                   "of --curve-points equal bins of t; the continuous-time part of 'nll' is then its mean over "
                   "them, in place of S random times")
    p.add_argument("--curve-points", type=int, default=20, help="grid points of --curve (default: 20)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    return p


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.samples <= MAX_SAMPLES:
        raise ValueError(f"--samples must be from 1 to {MAX_SAMPLES}, got {args.samples}")
    if not 1 <= args.curve_points <= MAX_SAMPLES:
        raise ValueError(f"--curve-points must be from 1 to {MAX_SAMPLES}, got {args.curve_points}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.seed < 0:
        raise ValueError(f"--seed must be at least 0, got {args.seed}")


def label_keys(model: BFNModel) -> list[str]:
    """The JSON keys of the labels: the model's label names ("0" … "9" for MNIST), then "none" for "no class"."""
    return [*model.label_names, NO_CLASS]


def _per_label(values: Sequence[float], model: BFNModel, digits: int) -> dict[str, float]:
    return {name: round(float(v), digits) for name, v in zip(label_keys(model), values)}


def image_record(bounds: LabelBounds, k: int, model: BFNModel, posterior: Tensor, predicted: Tensor) -> dict:
    """The JSON line of image k of `bounds`: nll per label (nats; also bits/dim where that is the flow's unit),
    the posterior over the labels, the prediction (its index and its name), and each label's curve if one was computed (per label
    rather than the unconditional one alone: where in t the labels part is what the curve is for)."""
    unit = model.flow.nll_unit
    record = {"nll": _per_label(bounds.total[k].tolist(), model, 4)}
    if unit.per_dim:
        record[unit.name.replace("/", "_per_")] = _per_label(bounds.in_unit(unit)[k].tolist(), model, 5)
    record["posterior"] = [float(f"{p:.4g}") for p in posterior[k].tolist()]
    record["predicted"] = int(predicted[k])
    record["predicted_label"] = model.label_names[int(predicted[k])]
    if bounds.curve is not None:
        curves = {name: [round(v, 3) for v in row] for name, row in zip(label_keys(model), bounds.curve[k].tolist())}
        record["curve"] = {"t": [round(t, 5) for t in bounds.times.tolist()], "nats_per_unit_time": curves}
    return record


def read_inputs(args: argparse.Namespace, shape: tuple[int, int]) -> tuple[list[str | int], np.ndarray, np.ndarray | None]:
    """(a name per image, uint8 images (N, H, W) of `shape`, labels or None) from --images or --npz."""
    if args.npz is not None:
        images, labels = read_npz(args.npz, shape)
        return list(range(len(images))), images, labels
    return [str(p) for p in args.images], np.stack([read_png(p, shape) for p in args.images]), None


def _check_labels(labels: np.ndarray | None, num_labels: int) -> None:
    if labels is not None and ((labels < -1) | (labels >= num_labels)).any():
        bad = int(labels[(labels < -1) | (labels >= num_labels)][0])
        raise ValueError(f"'labels' must be label indices 0-{num_labels - 1} or -1 (unlabelled), found {bad}")


def score_inputs(args: argparse.Namespace) -> dict | None:
    """Print the JSON line of every input image; return the accuracy line when the inputs carry labels."""
    _check(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    names, images, labels = read_inputs(args, model.data_shape[1:])
    _check_labels(labels, model.num_labels)
    generator = torch.Generator().manual_seed(args.seed)
    x = model.flow.data_from_images(torch.from_numpy(images), generator)
    hits = []
    start = time.perf_counter()
    scored = score_images(model, x, args.samples, generator, args.curve_points if args.curve else 0)
    for k, bounds in enumerate(tqdm(scored, total=len(names), desc="scoring", unit="image")):
        posterior, predicted = predictions(bounds, model.num_labels)
        record = {"image": names[k]}
        if labels is not None:
            record["label"] = int(labels[k])
            if labels[k] >= 0:
                hits.append(int(predicted[0]) == labels[k])
        print(json.dumps({**record, **image_record(bounds, 0, model, posterior, predicted)}), flush=True)
    if labels is None:
        return None
    return {"accuracy": round(float(np.mean(hits)), 4) if hits else None, "correct": int(sum(hits)), "labelled": len(hits),
            "samples": args.samples, "ms_per_image": round(1000 * (time.perf_counter() - start) / len(names), 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = score_inputs(args)
    except ValueError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except (ModelLoadError, OSError) as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    if summary is not None:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
