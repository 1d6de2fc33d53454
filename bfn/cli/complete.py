"""Command line completion: `python -m bfn.cli.complete --model weights/discrete --images digit.png --keep top --out grid.png`.

The user's digit through the BFN: each drawing becomes the model's input (`bfn.digits.to_field`: an MNIST digit,
or one per digit of a two-digit model's numbers), the pixels
to keep are marked (a half, or a mask image), and the sampler completes the rest with the known pixels
observed as the data they are (`bfn.sampling.run_sampler`'s `known`), resampled `RESAMPLE` times per step
so that what it generates agrees with them (`bfn.completion`). A thin shell like `python -m bfn.cli.sample`, whose options,
recommended settings, progress bar, one-line errors and .npz layout it shares.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bfn.classifier import digit_parts
from bfn.cli.sample import Parser, add_model_options, add_output_options, add_run_options, entry, final_state, load_run, run_cli, write_npz
from bfn.completion import RESAMPLE, UNKNOWN_GREY, completed_images, known_data, known_view
from bfn.digits import HALVES, half_mask, load_image, mask_from_image, to_field, unit_values
from bfn.images import make_grid, save_png, to_uint8
from bfn.labels import NO_CLASS, ROW, label_indices
from bfn.model import BFNModel

def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m bfn.cli.complete",
        description="Complete MNIST digits (or a model's other images) with a trained Bayesian Flow Network: keep part of each image and let the "
        "model generate the rest, with the kept pixels observed as the data they are.",
        epilog="Example: python -m bfn.cli.complete --model weights/discrete --images my_digit.png --keep top --out grid.png "
        "--npz completions.npz",
    )
    add_model_options(p)
    p.add_argument(
        "--images",
        nargs="+",
        type=Path,
        required=True,
        metavar="FILE",
        help="drawings (PNG or any image Pillow reads, any size; ink bright on dark, dark on light, or strokes on a "
        "transparent canvas), each made MNIST-like (its ink's bounding box scaled to 20×20, centre of mass at the "
        "centre of the MNIST field; for a two-digit model one such digit in each half, the drawing cut between its "
        "digits); and/or .npz archives whose 'images' (N×H×W in [0, 1], the model's size, as bfn.cli.sample writes) are "
        "used as they are. Discrete models binarise every image by a Bernoulli draw with p = intensity, seeded by --seed",
    )
    p.add_argument(
        "--keep",
        required=True,
        metavar="|".join(HALVES) + "|MASK.png",
        help="which pixels are known: one half of the model's image, or a mask image of its size (white = known). A mask must "
        "keep at least one pixel; one that keeps every pixel is allowed and returns the input (as binarised, for a "
        "discrete model)",
    )
    p.add_argument(
        "--digits",
        nargs="+",
        type=entry,
        default=[NO_CLASS],
        metavar="LABEL",
        help=f"the label to complete towards, by its name or number as in bfn.cli.sample (a digit 0-9 for MNIST), or "
        f"'{NO_CLASS}' (the model decides); one for all images or one per image (default: {NO_CLASS})",
    )
    add_run_options(p)
    p.add_argument(
        "--resample",
        type=int,
        default=RESAMPLE,
        help=f"take every step this many times (RePaint-style resampling), 1 to 100; 1 is a single pass, which is "
        f"faster but agrees less with the kept pixels (default: {RESAMPLE})",
    )
    add_output_options(p, "completions.png", "'images' (N×H×W float32 in [0, 1], the completions as bfn.cli.sample writes "
                       "samples, with the kept pixels as given), 'labels' (int, -1 for none) and 'known' (N×H×W bool)")
    return p


def read_images(paths: Sequence[Path], model: BFNModel) -> np.ndarray:
    """The images named on the command line as the model's inputs (N, H, W) in [0, 1], in order."""
    shape, parts = model.data_shape[1:], max(1, digit_parts(model.label_names))
    digits = []
    for path in paths:
        if path.suffix.lower() == ".npz":
            digits.extend(_npz_images(path, shape))
            continue
        drawing = load_image(path)
        try:
            digits.append(to_field(drawing, shape, parts))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return np.stack(digits).astype(np.float32)


def _npz_images(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The 'images' of an .npz archive: of `shape`, the model's, in [0, 1] (or uint8, as `bfn.digits.unit_values`
    reads them)."""
    try:
        with np.load(path) as archive:
            images = archive["images"]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not an .npz archive with 'images' ({' '.join(str(e).split())})") from None
    if images.ndim != 3 or images.shape[1:] != tuple(shape) or len(images) == 0:
        raise ValueError(f"{path}: 'images' must be N×{shape[0]}×{shape[1]} (the model's images) with N ≥ 1, got shape "
                         f"{images.shape}")
    try:
        return unit_values(images)
    except ValueError as e:
        raise ValueError(f"{path}: 'images': {e}") from None


def read_mask(keep: str, shape: tuple[int, int]) -> np.ndarray:
    """--keep → bool of `shape` (H, W), the model's, refusing a mask that keeps nothing (that is plain sampling)."""
    if keep not in HALVES and not Path(keep).is_file():
        raise ValueError(f"--keep {keep!r} is neither one of {', '.join(HALVES)} nor a mask image file")
    mask = half_mask(keep, shape) if keep in HALVES else mask_from_image(Path(keep), shape)
    if not mask.any():
        raise ValueError(f"the mask {keep} keeps no pixel: nothing to complete from (python -m bfn.cli.sample samples)")
    return mask


def per_image(labels: Sequence[str], n: int) -> list[str]:
    """--digits: one entry for every image, or one per image."""
    if len(labels) == 1:
        return list(labels) * n
    if len(labels) != n:
        raise ValueError(f"--digits needs one entry for all images or one per image ({n}), got {len(labels)}")
    return list(labels)


def grid_tiles(known: np.ndarray, completions: np.ndarray, nrow: int) -> np.ndarray:
    """Tiles for `make_grid`: each row of kept parts (unknown pixels grey) above the row of their completions."""
    blank = np.full((1, *known.shape[1:]), UNKNOWN_GREY, dtype=np.uint8)
    tiles = []
    for start in range(0, len(known), nrow):
        for row in (known[start : start + nrow], completions[start : start + nrow]):
            tiles.extend([row, np.repeat(blank, nrow - len(row), axis=0)])
    return np.concatenate(tiles)


def _complete(args: argparse.Namespace) -> None:
    model, run = load_run(args, resample=args.resample)
    images = read_images(args.images, model)
    mask = read_mask(args.keep, model.data_shape[1:])
    labels = label_indices(per_image(args.digits, len(images)), model.label_names)  # fail before the progress bar
    x = known_data(model.flow, images, args.seed)
    known = torch.from_numpy(mask)
    final = final_state(model, run, args, labels, known=(x, known[None, None]), resample=args.resample)
    completions = completed_images(model.flow, final, x, known)
    shown = np.where(mask, to_uint8(known_view(model.flow, x), final.value_range), UNKNOWN_GREY).astype(np.uint8)
    nrow = args.nrow or min(len(images), ROW)
    grid = make_grid(grid_tiles(shown, to_uint8(completions), nrow), nrow=nrow, pad_value=UNKNOWN_GREY)
    save_png(grid, args.out, scale=args.scale)
    if args.npz is not None:
        write_npz(args.npz, completions, labels, known=np.broadcast_to(mask, completions.shape).copy())


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv, _complete)


if __name__ == "__main__":
    sys.exit(main())
