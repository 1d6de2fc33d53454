"""Command line of the training package: `python -m training {train,evaluate,export,...} ...`.

Run `python -m training <command> --help` for every option.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from bfn.continuous import NETWORK_OUTPUTS
from bfn.kinds import FLOWS, make_flow
from bfn.hub import ModelLoadError
from training import bayes_accuracy, classifier, evaluate, evaluate_samples, evaluate_two_digit, export, loss_curve, typical_bounds
from training.datasets import DATASETS
from training.loop import TrainConfig


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def register_train(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser("train", help="train a class-conditional BFN on MNIST (resumable, torchrun-ready)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--kind", choices=tuple(FLOWS), required=True,
                   help="discrete = dynamically binarised MNIST; continuous = pixels scaled to [-1, 1]")
    p.add_argument("--dataset", choices=tuple(DATASETS), default=d.dataset,
                   help="the images and labels: MNIST digits, Fashion-MNIST, EMNIST balanced (47 classes), or "
                        "two-digit numbers 00–99 on 64×64 built from MNIST; the model's labels and image size follow it")
    p.add_argument("--data-dir", default=d.data_dir,
                   help="folder holding MNIST/raw/ (FashionMNIST/raw/, EMNIST/raw/: torchvision's layout)")
    p.add_argument("--out", required=True, help="run folder: checkpoint/, metrics.jsonl, samples/, config.json")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    start.add_argument("--overwrite", action="store_true",
                       help="start over in an --out that holds a run, moving its files into a replaced-<time> sub-folder")
    p.add_argument("--stop-after", type=int, help="stop (with a checkpoint) at this step without changing the schedule")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop (with a checkpoint) after this many seconds, e.g. to fit a per-command limit")
    p.add_argument("--beta1", type=float,
                   help="discrete: final accuracy β(1) (default 3, the paper's text; the official config uses 9); "
                        "with --init-from, fine-tunes the source to this β(1)")
    p.add_argument("--sigma1", type=float,
                   help="continuous: data std left at t = 1 (≥ 1e-4; default 0.001); with --init-from, fine-tunes the source to this σ1")
    p.add_argument("--network-output", choices=NETWORK_OUTPUTS,
                   help="continuous: what the network predicts: the noise ε̂ (the paper's eq. 84; default) or, preconditioned "
                        "as Karras et al. 2022, the image early and the noise late")
    p.add_argument("--channels", type=_int_tuple, default=(32, 64), help="U-Net channels per resolution, comma separated")
    p.add_argument("--patch", type=int, default=2, help="U-Net patch size (2 = work at 14×14)")
    p.add_argument("--res-blocks", type=int, default=1, help="residual blocks per resolution")
    p.add_argument("--no-attention", action="store_true", help="no self-attention at the lowest resolution")
    p.add_argument("--evidence", action="store_true",
                   help="binary data: add a learned, time-gated multiple of each pixel's log-odds to its output logit; "
                        "with --init-from it is added to a model that has none")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout inside residual blocks")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per optimiser step per process")
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="linear warm-up steps")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="total optimiser steps (cosine decay ends here)")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="gradient-norm clipping threshold")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="EMA decay of the exported weights")
    p.add_argument("--label-dropout", type=float, default=d.label_dropout, help="P(label → 'no class') for guidance")
    p.add_argument("--loss", choices=["continuous", "discrete"], default=d.loss, help="continuous-time L∞ or n-step L^n")
    p.add_argument("--loss-steps", type=int, default=d.loss_steps, help="n of the discrete-time loss")
    p.add_argument("--sigmoid-weighting", type=float, default=None, metavar="B",
                   help="train on the loss weighted by sigmoid(B − ln β(t)) over time (Kingma & Gao 2023) instead of the "
                        "bound's own weighting; validation still reports the bound (default: the bound)")
    p.add_argument("--no-class-early", type=float, nargs=2, default=None, metavar=("UNTIL", "SHARE"),
                   help="draw the times of the 'no class' rows from U(0, UNTIL) with probability SHARE, else U(0, 1), "
                        "at the bound's weight: more of the unconditional path's training where it chooses the digit; "
                        "validation still reports the bound (default: U(0, 1))")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between validation loss + sample grid")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps between metrics.jsonl lines")
    p.add_argument("--sample-steps", type=int, default=d.sample_steps, help="sampling steps of each preview grid")
    p.add_argument("--val-size", type=int, default=d.val_size, help="training images held out for validation")
    p.add_argument("--val-images", type=int, default=d.val_images, help="validation images scored per evaluation")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of data order, noise and initialisation")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0 = default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (GPU)")
    p.add_argument("--cpu-bf16", action="store_true",
                   help="CPU only: the network in bf16 autocast, as on a GPU (weights, optimiser and loss stay float32); "
                        "much faster on CPUs with native bf16 (AVX512-BF16, AMX), refused on others. Give it again with --resume")
    p.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: start model and EMA from this model folder or Hub id (its architecture replaces "
                        "--channels/...; its flow too, except what --beta1/--sigma1/--network-output name), with a fresh optimiser and schedule")
    p.add_argument("--widen", type=int, default=d.widen, metavar="K",
                   help="with --init-from: K times the source's channels, starting from exactly its function "
                        "(each channel copied K times, Net2Net) so that a larger network starts where the source is")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    from training.loop import train

    if args.widen != 1 and not args.init_from:
        raise ValueError("--widen widens the model of --init-from: name the model to start from")
    given = {"beta1": args.beta1, "sigma1": args.sigma1, "network_output": args.network_output}
    flow = {name: value for name, value in given.items() if value is not None}  # absent: the flow's default
    make_flow(args.kind, **flow)  # a parameter the kind does not take fails here, before any data is read
    unet = {"channels": list(args.channels), "patch": args.patch, "res_blocks": args.res_blocks,
            "attention": not args.no_attention, "dropout": args.dropout,
            "evidence": args.evidence}
    cfg = TrainConfig(
        kind=args.kind, dataset=args.dataset, data_dir=args.data_dir, out=args.out, flow=flow, unet=unet, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, max_steps=args.max_steps,
        grad_clip=args.grad_clip, ema_decay=args.ema_decay, label_dropout=args.label_dropout, loss=args.loss,
        loss_steps=args.loss_steps, sigmoid_weighting=args.sigmoid_weighting,
        no_class_early=None if args.no_class_early is None else tuple(args.no_class_early), checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        log_every=args.log_every, val_size=args.val_size, val_images=args.val_images, sample_steps=args.sample_steps, seed=args.seed, threads=args.threads, compile=args.compile,
        cpu_bf16=args.cpu_bf16,
        init_from=args.init_from, widen=args.widen,
    )
    command = "python -m training " + shlex.join(sys.argv[1:])  # the model card quotes how the run was made
    print(json.dumps(train(cfg, resume=args.resume, overwrite=args.overwrite, stop_after=args.stop_after,
                           time_limit=args.time_limit, command=command)))


# Each subcommand lives with its code: a `register(subparsers)` that adds a parser with `func` as default.
COMMANDS = [register_train, evaluate.register, export.register, classifier.register, evaluate_samples.register,
            bayes_accuracy.register, loss_curve.register, evaluate_two_digit.register, typical_bounds.register]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
