"""`python -m app`: start BFN Studio.

    python -m app                               # this repository's weights/, http://127.0.0.1:7860
    python -m app --host 0.0.0.0 --port 8080    # reachable from other machines
    python -m app --weights owner/bfn-discrete --weights owner/bfn-continuous
    python -m app --weights path/to/weights     # a folder with discrete/ and continuous/ (or one model)

The host and port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when set (Hugging Face Spaces sets
them), else 127.0.0.1:7860. Usage analytics are off unless GRADIO_ANALYTICS_ENABLED says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app.server import DEFAULT_CACHE_MB, DEFAULT_RUN_MB, Terminated, serve, sigterm_as_interrupt  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="BFN Studio: watch a Bayesian Flow Network generate MNIST digits.")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on (default: 127.0.0.1, or $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="port (default: 7860, or $GRADIO_SERVER_PORT)")
    p.add_argument(
        "--weights",
        action="append",
        default=None,
        metavar="SOURCE",
        help="a folder or Hugging Face Hub repo id with a model, known by the folder's or repo's name; repeat for more "
        "models. A folder may also hold discrete/ and continuous/ sub-folders (default: this repository's weights/)",
    )
    p.add_argument(
        "--classifier",
        default=None,
        metavar="SOURCE",
        help="folder or Hub repo id of the digit classifier behind the 'Which digit?' view (default: weights/classifier)",
    )
    p.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (off by default)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per operation (default: 1, see README)")
    p.add_argument("--max-concurrent", type=int, default=None, help="generations running at once, taking turns on the CPU; more wait in the queue (default: 8)")
    p.add_argument(
        "--max-run-mb", type=int, default=DEFAULT_RUN_MB,
        help=f"memory for the runs kept for scrubbing, all sessions together; the oldest finished runs go beyond it (default: {DEFAULT_RUN_MB})",
    )  # fmt: skip
    p.add_argument(
        "--max-cache-mb", type=int, default=DEFAULT_CACHE_MB,
        help=f"disk for Gradio's file cache (streamed images, exports); the oldest files go beyond it (default: {DEFAULT_CACHE_MB})",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    problems = [f"--port must be from 1 to 65535, got {args.port}"] if not 1 <= args.port <= 65535 else []
    for flag, value in (("--max-concurrent", args.max_concurrent), ("--max-run-mb", args.max_run_mb), ("--max-cache-mb", args.max_cache_mb)):
        if value is not None and value < 1:
            problems.append(f"{flag} must be at least 1, got {value}")
    if problems:
        print(f"python -m app: error: {problems[0]}", file=sys.stderr)
        return 2
    with sigterm_as_interrupt():  # a container's stop ends the server as Ctrl-C does, cleaning up
        try:
            return _start(args)
        except Terminated:
            logging.info("stopped by SIGTERM")
            return 0


def _start(args: argparse.Namespace) -> int:
    """Load the models and serve until stopped (`app.server.serve`)."""
    from app.core.models import DEFAULT_THREADS, configure_threads, load_models, warm_up
    from app.ui.context import MAX_CONCURRENT_RUNS
    from bfn.hub import ModelLoadError

    try:
        configure_threads(args.threads or DEFAULT_THREADS)
        bank = load_models(args.weights, classifier=args.classifier)
    except (ModelLoadError, ValueError) as e:
        print(f"python -m app: error: {e}", file=sys.stderr)
        return 1
    for name, source in bank.sources.items():
        logging.info("loaded the %s model from %s", name, source)
    warm_up(bank)
    serve(
        bank, host=args.host, port=args.port, share=args.share, run_mb=args.max_run_mb, cache_mb=args.max_cache_mb,
        max_concurrent=args.max_concurrent or MAX_CONCURRENT_RUNS,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
