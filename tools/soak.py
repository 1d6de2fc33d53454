"""Hold the app's memory bounds: `python -m tools.soak [--runs 56] [--sessions 4] [--steps 1000] [--seconds 900]
[--bombs 0]`.

Sessions that never close keep their last run (the store drops the oldest ended ones beyond its budget), and
every streamed image lands in Gradio's file cache (the app's sweeper keeps it under its own budget). This
starts `python -m app` on a free 127.0.0.1 port with a cache folder of its own, runs `--runs` generations
from `--sessions` clients side by side, each in a new session that is never closed, and samples the
server's resident memory (/proc/PID/status VmRSS) and the cache folder's size while they run and for
`--settle` seconds after. It fails (exit 1) when

    peak RSS > baseline + the runs' memory + --margin-mb        (baseline: RSS after one short warm-up run)
    peak cache > the cache budget + --cache-slack-mb

where the runs' memory is the store's budget `--max-run-mb`, or `--sessions` × `MAX_RUN_BYTES` where the runs
sampling at once may take more, and it stops starting runs after `--seconds` (a bounded soak: the runs it
skipped are reported). The budgets
are the server's: `--max-run-mb` and `--max-cache-mb` are passed on, and their defaults are the app's.

`--bombs N` adds N clients that, while the runs go, each send pictures to /score and /complete as a drawing:
pixel bombs (PNGs of 12000×12000 one-bit pixels in 18 KB, and of 8000×8000 in 62 KB), which must be refused
from their size, and the largest picture allowed (`bfn.digits.MAX_IMAGE_PIXELS`, a stroke on a transparent
canvas), which must be read. The same RSS bound holds with them: decoding is bounded by pixels, so a picture
costs at most what the largest allowed one does, not what its header claims.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from tools.serving import add_server_options, rss_mb, start_app, stop_server
from app.server import CACHE_MIN_AGE_S, DEFAULT_CACHE_MB, DEFAULT_RUN_MB, SWEEP_EVERY_S
from app.core.runs import MAX_RUN_BYTES
from bfn.digits import MAX_IMAGE_PIXELS

MB = 1 << 20
# The RSS a server may hold beyond its idle size and its run budget (the README's stated bound): the working
# memory of rendering and streaming at full concurrency, and what malloc holds free between two trims.
MARGIN_MB = 400
CACHE_SLACK_MB = 32  # what the streams write between two sweeps, and files too young to go


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes, files) under `folder`; files that vanish while it is walked (the sweeper) are skipped."""
    total = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def write_pictures(folder: Path) -> dict[str, Path]:
    """The pictures `--bombs` sends, written into `folder`: name → PNG file. The bombs are the issue's (tens of
    KB each, gigabytes if decoded whole); "largest" is a digit-like stroke on the largest canvas allowed,
    which the server decodes (and so the most memory a picture may take)."""
    side = math.isqrt(MAX_IMAGE_PIXELS)
    largest = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(largest).line([(side // 4, side // 5), (3 * side // 4, side // 5), (side // 2, 4 * side // 5)],
                                 fill=(0, 0, 0, 255), width=side // 12)  # fmt: skip
    pictures = {"bomb-12000": Image.new("1", (12000, 12000)), "bomb-8000": Image.new("L", (8000, 8000)), "largest": largest}
    paths = {}
    for name, picture in pictures.items():
        paths[name] = folder / f"{name}.png"
        picture.save(paths[name], optimize=True)
    return paths


def send_pictures(url: str, pictures: dict[str, Path]) -> list[str]:
    """Send each of `pictures` (`write_pictures`) as a drawing to /score and to /complete from a new session, as
    the issue's client did → what went wrong: a bomb that was not refused for its size, or the largest picture
    allowed refused. Each picture is uploaded once per call, as a client's `handle_file` does."""
    from gradio_client import Client, handle_file

    wrong, client = [], Client(url, verbose=False, download_files=False)
    try:
        for name, path in pictures.items():
            for api_name, rest in (("/score", (0.5, "predicted")), ("/complete", ("top", "none", 1.0))):
                sketch = {"background": None, "layers": [], "composite": handle_file(str(path)), "id": None}
                try:
                    client.predict(sketch, "drawing", None, 0, 0, *rest, api_name=api_name)
                    error = None
                except Exception as e:  # gradio_client's AppError: the app's one-line message
                    error = " ".join(str(e).split())
                refused = error is not None and "may have at most" in error
                if refused != name.startswith("bomb"):
                    wrong.append(f"{name} to {api_name}: {error or 'answered'}")
    finally:
        client.close()
    return wrong


@dataclass
class Samples:
    """The server's RSS and cache size over time, and their peaks (MB)."""

    rss_mb: list[float] = field(default_factory=list)
    cache_mb: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    peak_cache_mb: float = 0.0
    peak_cache_files: int = 0


class Watch(threading.Thread):
    """Samples the server's VmRSS and the cache folder every `every` seconds until stopped."""

    def __init__(self, pid: int, cache: Path, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.cache, self.every = pid, cache, every
        self.samples = Samples()
        self._halt = threading.Event()

    def sample(self) -> None:
        s = self.samples
        rss = rss_mb(self.pid)
        cache, files = folder_bytes(self.cache)
        s.rss_mb.append(round(rss, 1))
        s.cache_mb.append(round(cache / MB, 1))
        s.peak_rss_mb = max(s.peak_rss_mb, rss)
        s.peak_cache_mb = max(s.peak_cache_mb, cache / MB)
        s.peak_cache_files = max(s.peak_cache_files, files)

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                self.sample()
            except OSError:  # the server is gone
                return

    def stop(self) -> Samples:
        self._halt.set()
        self.join()
        return self.samples


def build_parser() -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.split("\n\n")[0])
    add_server_options(p)
    p.add_argument("--runs", type=int, default=56, help="generations in all, each in a new session (default: 56)")
    p.add_argument("--sessions", type=int, default=4, help="generations at once (default: 4)")
    p.add_argument("--steps", type=int, default=1000, help="steps per run (default: 1000, the most allowed)")
    p.add_argument("--model", default="both", help="a loaded model's name, or both (default)")
    p.add_argument("--seconds", type=float, default=900, help="start no run after this long (default: 900)")
    p.add_argument(
        "--settle", type=float, default=15,
        help="seconds to keep sampling after the last run; from the sweeper's period + its minimum age on, the "
        "final cache must be within its budget itself (default: 15)",
    )  # fmt: skip
    p.add_argument("--max-run-mb", type=int, default=DEFAULT_RUN_MB, help=f"the server's run budget (default: {DEFAULT_RUN_MB})")
    p.add_argument("--max-cache-mb", type=int, default=DEFAULT_CACHE_MB, help=f"its file-cache budget (default: {DEFAULT_CACHE_MB})")
    p.add_argument("--margin-mb", type=float, default=MARGIN_MB, help=f"RSS allowed above baseline + run budget (default: {MARGIN_MB})")
    p.add_argument("--cache-slack-mb", type=float, default=CACHE_SLACK_MB, help=f"cache allowed above its budget (default: {CACHE_SLACK_MB})")
    p.add_argument("--bombs", type=int, default=0, help="clients sending pixel bombs to /score and /complete meanwhile (default: 0)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--smaps", type=Path, default=None, help="write the server's /proc/PID/smaps here at the end")
    return p


def soak(args: argparse.Namespace) -> dict:
    """Run the soak described by `args` (see `build_parser`) and return its measurements and verdict."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    cache = Path(tempfile.mkdtemp(prefix="bfn-soak-cache-"))  # the server's file cache, to be measured here
    drawn = Path(tempfile.mkdtemp(prefix="bfn-soak-pictures-"))  # what `--bombs` sends, made before the server starts
    pictures = write_pictures(drawn) if args.bombs else {}
    budgets = ("--max-run-mb", str(args.max_run_mb), "--max-cache-mb", str(args.max_cache_mb))
    try:
        server, url = start_app(args, "--max-concurrent", str(args.sessions), *budgets, env={"GRADIO_TEMP_DIR": str(cache)})
    except BaseException:
        for folder in (cache, drawn):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        warm = Client(url, verbose=False, download_files=False)
        warm.submit(args.model, "all", 0, 1.0, 10, 0, "bfn", api_name="/generate").result()
        baseline = rss_mb(server.pid)
        # one client per run, made before the soak (a busy server answers a new client slowly) and kept open
        # until the end: its session, heartbeat and all, never closes, so its run stays in the store
        clients = [Client(url, verbose=False, download_files=False) for _ in range(args.runs)]
        watch = Watch(server.pid, cache)
        watch.start()
        started = time.monotonic()
        done, skipped, failed, pictures_wrong = [0], [0], [], []

        def worker(k: int) -> None:
            for seed in range(k, args.runs, args.sessions):
                if time.monotonic() - started > args.seconds:
                    skipped[0] += 1
                    continue
                status = clients[seed].submit(args.model, "all", 0, 1.0, args.steps, seed, "bfn", api_name="/generate").result()[0]
                if "Done" in status:
                    done[0] += 1
                else:
                    failed.append(status)
                print(f"  run {seed + 1}/{args.runs}: {time.monotonic() - started:.0f} s, RSS {rss_mb(server.pid):.0f} MB", file=sys.stderr, flush=True)

        def bomber() -> None:
            pictures_wrong.extend(send_pictures(url, pictures))

        with ThreadPoolExecutor(args.sessions + args.bombs) as pool:
            jobs = [pool.submit(worker, k) for k in range(args.sessions)] + [pool.submit(bomber) for _ in range(args.bombs)]
            for job in jobs:
                job.result()
        run_s = time.monotonic() - started
        time.sleep(args.settle)
        watch.sample()
        samples = watch.stop()
        if args.smaps:
            args.smaps.write_text(Path(f"/proc/{server.pid}/smaps").read_text())
        for client in clients:
            client.close()
    finally:
        stop_server(server)
        for folder in (cache, drawn):
            shutil.rmtree(folder, ignore_errors=True)
    # the store keeps its budget, or what the runs sampling at once take where those alone are more
    rss_bound = baseline + max(args.max_run_mb, args.sessions * MAX_RUN_BYTES / MB) + args.margin_mb
    cache_bound = args.max_cache_mb + args.cache_slack_mb
    final_cache_ok = args.settle < CACHE_MIN_AGE_S + SWEEP_EVERY_S + 1 or samples.cache_mb[-1] <= args.max_cache_mb
    within = samples.peak_rss_mb <= rss_bound and samples.peak_cache_mb <= cache_bound and final_cache_ok
    return {
        "settings": {k: v for k, v in vars(args).items() if k != "json" and not isinstance(v, Path)},
        "runs_done": done[0],
        "runs_skipped": skipped[0],
        "runs_failed": failed[:5],
        "pictures_sent": 2 * len(pictures) * args.bombs,
        "pictures_wrong": pictures_wrong[:5],
        "run_s": round(run_s, 1),
        "baseline_rss_mb": round(baseline, 1),
        "final_rss_mb": samples.rss_mb[-1],
        "peak_rss_mb": round(samples.peak_rss_mb, 1),
        "rss_bound_mb": round(rss_bound, 1),
        "peak_cache_mb": round(samples.peak_cache_mb, 1),
        "peak_cache_files": samples.peak_cache_files,
        "cache_bound_mb": cache_bound,
        "final_cache_mb": samples.cache_mb[-1],
        "within_bounds": within,
        "ok": within and not failed and not pictures_wrong,
        "samples": asdict(samples),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = soak(args)
    print(
        f"{r['runs_done']} runs done ({r['runs_skipped']} skipped, {len(r['runs_failed'])} failed) in {r['run_s']} s; "
        f"RSS baseline {r['baseline_rss_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB, final {r['final_rss_mb']:.0f} MB "
        f"(bound {r['rss_bound_mb']:.0f} MB); cache peak {r['peak_cache_mb']:.1f} MB in {r['peak_cache_files']} files "
        f"(bound {r['cache_bound_mb']:.0f} MB), final {r['final_cache_mb']:.1f} MB"
        + (f"; {r['pictures_sent']} pictures sent, {len(r['pictures_wrong'])} answered wrongly" if args.bombs else "")
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    if not r["ok"]:
        why = [what for what, wrong in (("the bounds were exceeded", not r["within_bounds"]), (f"failed runs: {r['runs_failed']}",
               r["runs_failed"]), (f"pictures answered wrongly: {r['pictures_wrong']}", r["pictures_wrong"])) if wrong]
        print("python -m tools.soak: " + "; ".join(why), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
