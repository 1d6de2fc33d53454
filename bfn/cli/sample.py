"""Command line sampling: `python -m bfn.cli.sample --model weights/discrete --digits 0 1 2 --out grid.png`.

A thin shell around `bfn.hub.load_model` and the step generator in `bfn.sampling`: it parses and checks the
arguments, shows a progress bar over the steps, and writes the final output distribution as a PNG grid and
optionally as an .npz archive. User mistakes end the program with one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from tqdm import tqdm

from bfn.kinds import FLOWS
from bfn.model import BFNModel
from bfn.settings import SamplingSettings
from bfn.hub import ModelLoadError, load_model
from bfn.images import make_grid, save_png, to_uint8, to_unit
from bfn.labels import NO_CLASS, ROW, label_indices
from bfn.sampling import SAMPLERS, StepState, get_sampler, validate_run



class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes on one line (the usage block is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def entry(text: str) -> str:
    """A --digits entry as given: a label's name or number, or "none"; which labels exist is the model's to say
    (`bfn.labels.label_indices`, once it is loaded)."""
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m bfn.cli.sample",
        description="Generate images (MNIST digits, two-digit numbers, …) with a trained Bayesian Flow Network and save them as a PNG grid.",
        epilog="Example: python -m bfn.cli.sample --model weights/discrete --digits 0 1 2 3 4 5 6 7 8 9 "
        "--guidance 2 --steps 100 --seed 0 --out grid.png",
    )
    add_model_options(p)
    p.add_argument(
        "--digits",
        nargs="+",
        type=entry,
        default=None,
        metavar="LABEL",
        help=f"one image per entry: a label by its name (a two-digit model's 42 or 07; a number may drop its "
        f"leading zeros, 7 = 07), or '{NO_CLASS}' for an unconditional sample; mixable, e.g. --digits 3 3 {NO_CLASS} "
        f"(default: every label, or {ROW} spread over them: 0 1 ... 9 for MNIST, 00 11 ... 99 for two digits)",
    )
    add_run_options(p)
    add_output_options(p, "samples.png", "'images' (N×H×W, the model's image size, float32 in [0, 1]: p(pixel on) for discrete models, "
                       "(x+1)/2 for continuous ones) and 'labels' (int, -1 for unconditional)")
    return p


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model and --kind: which model to load (shared with `python -m bfn.cli.complete`)."""
    p.add_argument(
        "--model",
        default=None,
        help="local folder with config.json and model.safetensors, or a Hugging Face Hub repo id (owner/name); "
        "default: this repository's weights/<kind>/",
    )
    p.add_argument(
        "--kind",
        choices=tuple(FLOWS),
        default=None,
        help="expected model kind; without --model it picks weights/<kind>/ (default: discrete)",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """How to sample: steps, guidance, seed and sampler, defaulting to the model's recommended settings."""
    p.add_argument(
        "--steps", type=int, default=None,
        help="number of Bayesian update steps n, 1 to 10000 (default: the model's recommended, its config's sampling.steps)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance weight w >= 0: 0 ignores the digit, 1 is plain conditional, >1 "
        "exaggerates the digit (default: the model's recommended)",
    )
    add_interval_option(
        p, "--guidance-interval",
        "apply guidance w > 1 only for t in [START, END], plain conditional elsewhere; 0 1 guides throughout "
        "(default: the model's recommended)",
    )  # fmt: skip
    p.add_argument(
        "--rescaled-phi",
        type=float,
        default=None,
        metavar="PHI",
        help="rescaled guidance (Lin et al. 2023): blend 0-1 of the guided output rescaled to the conditional "
        "output's spread; 0 is plain guidance (default: the model's recommended)",
    )
    p.add_argument(
        "--autoguidance",
        type=float,
        default=None,
        metavar="W",
        help="autoguidance weight w >= 1 (Karras et al. 2024): push the output away from the model's guide, a weaker "
        "model in its guide/ folder; 1 is off (default: the model's recommended, which may differ between runs with "
        "and without a label)",
    )
    add_interval_option(p, "--autoguidance-interval",
                        "apply autoguidance only for t in [START, END] (default: the model's recommended, else the whole run)")
    p.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed and settings give the same images (default: 0)"
    )
    p.add_argument(
        "--sampler",
        choices=sorted(SAMPLERS),
        default=None,
        help="a sampler listed in bfn.sampling.SAMPLERS; bfn is the paper's procedure (default: the model's "
        "recommended one for the step count)",
    )


def add_interval_option(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    """An option of two times, START END: where in t something acts."""
    p.add_argument(flag, type=float, nargs=2, default=None, metavar=("START", "END"), help=help)


def add_output_options(p: argparse.ArgumentParser, default_out: str, npz_contents: str) -> None:
    """--out, --npz (holding `npz_contents`), --scale, --nrow and --threads."""
    p.add_argument("--out", type=Path, default=Path(default_out), help=f"PNG grid to write (default: {default_out})")
    p.add_argument("--npz", type=Path, default=None, help=f"also write an .npz with {npz_contents}")
    p.add_argument("--scale", type=int, default=4, help="enlarge the PNG this many times, 1 to 32 (default: 4)")
    p.add_argument("--nrow", type=int, default=None, help=f"images per grid row (default: all in one row, at most {ROW})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def _check_layout(args: argparse.Namespace) -> None:
    """Checks of the CLI's own options; the run itself is checked by `bfn.sampling.validate_run`."""
    if not 1 <= args.scale <= 32:
        raise ValueError(f"--scale must be from 1 to 32, got {args.scale}")
    if args.nrow is not None and args.nrow < 1:
        raise ValueError(f"--nrow must be at least 1, got {args.nrow}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")


def resolve_run(args: argparse.Namespace, model: BFNModel) -> SamplingSettings:
    """The options given on the command line, the model's recommended settings for the rest."""
    recommended = model.sampling
    steps = recommended.steps if args.steps is None else args.steps
    return dataclasses.replace(
        recommended,
        steps=steps,
        sampler=args.sampler or recommended.sampler_for(steps),
        guidance=recommended.guidance if args.guidance is None else args.guidance,
        rescaled_phi=recommended.rescaled_phi if args.rescaled_phi is None else args.rescaled_phi,
        # an --autoguidance given holds for every run; else the recommended one, which depends on the labels
        autoguidance=recommended.autoguidance if args.autoguidance is None else args.autoguidance,
        autoguidance_unconditional=(recommended.autoguidance_unconditional if args.autoguidance is None
                                    else args.autoguidance),
        autoguidance_interval=(recommended.autoguidance_interval if args.autoguidance_interval is None
                               else tuple(args.autoguidance_interval)),
    )


def load_run(args: argparse.Namespace, resample: int = 1) -> tuple[BFNModel, SamplingSettings]:
    """The model and the run's settings (`resolve_run`), checked before anything is drawn."""
    model = load_model(args.model, kind=args.kind)
    run = resolve_run(args, model)
    validate_run(run.steps, run.guidance, args.seed, args.guidance_interval, run.rescaled_phi, resample,
                 run.autoguidance_unconditional, run.autoguidance_interval)
    return model, run


def final_state(model: BFNModel, run: SamplingSettings, args: argparse.Namespace, labels: Sequence[int | None],
                **completion: Any) -> StepState:
    """Run the settings' sampler to its final state behind a progress bar (on stderr); `completion` holds
    `known` and `resample` for a completion (`bfn.sampling.run_sampler`)."""
    states = get_sampler(run.sampler)(model, labels, steps=run.steps, guidance=run.guidance, seed=args.seed,
                                      guidance_interval=args.guidance_interval, rescaled_phi=run.rescaled_phi,
                                      autoguidance=run.autoguidance_for(labels),
                                      autoguidance_interval=run.autoguidance_interval,
                                      **completion)
    state = None
    for state in tqdm(states, total=run.steps + 1, desc="sampling", unit="step"):
        pass
    return state


def unit_images(state: StepState) -> np.ndarray:
    """The final output distribution mapped to [0, 1]: p(pixel on), or (x̂ + 1)/2 (= the continuous sample)."""
    return to_unit(state.output.float(), state.value_range).numpy().astype(np.float32)


def write_npz(path: Path, images: np.ndarray, labels: Sequence[int | None], **arrays: np.ndarray) -> None:
    """'images', 'labels' (−1: unconditional) and any further `arrays`, at exactly `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label_array = np.array([-1 if label is None else label for label in labels], dtype=np.int64)
    with path.open("wb") as f:  # a file object, so numpy does not append ".npz" to the name given
        np.savez(f, images=images, labels=label_array, **arrays)


def write_outputs(images: np.ndarray, labels: Sequence[int | None], args: argparse.Namespace) -> None:
    grid = make_grid(to_uint8(images), nrow=args.nrow or min(len(images), ROW))
    save_png(grid, args.out, scale=args.scale)
    if args.npz is not None:
        write_npz(args.npz, images, labels)


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, body: Callable[[argparse.Namespace], None]) -> int:
    """Parse, check the layout options, set the threads and run `body`; a user's mistake (ValueError) exits 2
    with one line, a model or file that cannot be read exits 1."""
    args = parser.parse_args(argv)
    try:
        _check_layout(args)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        body(args)
    except ValueError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except (ModelLoadError, OSError) as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    print(f"wrote {args.out}" + (f" and {args.npz}" if args.npz else ""), file=sys.stderr)
    return 0


def _sample(args: argparse.Namespace) -> None:
    model, run = load_run(args)
    labels = label_indices(args.digits, model.label_names)  # fail before the progress bar starts
    write_outputs(unit_images(final_state(model, run, args, labels)), labels, args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser(), argv, _sample)


if __name__ == "__main__":
    sys.exit(main())
