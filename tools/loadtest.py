"""Measure the app as users see it: `python -m tools.loadtest [--weights DIR] [--sessions 4] [--threads 1]`.

Starts `python -m app` on a free 127.0.0.1 port, then
  1. runs single generations one after another (time to first frame, updates per second, total time),
  2. runs `--sessions` generations at once from separate clients (separate sessions), distinct seeds,
while sampling the server's resident memory (/proc/PID/status) every 20 ms. Times are taken by a
`gradio_client` client from submitting /generate to receiving each update, i.e. what a browser waits for
(minus drawing). It also counts the CPU time the server spends per run (/proc/PID/stat): the sessions' work
spread perfectly over every core bounds how close the slowest concurrent run can come to a lone one, whatever
the scheduling (`work_bound_over_lone`). Prints a table and, with --json, writes the numbers to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.core.settings import DEFAULT_SAMPLER
from tools.serving import add_server_options, cpu_seconds, rss_mb, start_app, stop_server


class MemoryWatch(threading.Thread):
    """Samples a process's resident memory until stopped; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self._halt = pid, every, 0.0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(self.every)

    def reset(self) -> None:
        self.peak = 0.0

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak


def one_run(client, settings: Sequence) -> dict:
    """Submit /generate and time every update as it arrives."""
    start = time.perf_counter()
    job = client.submit(*settings, api_name="/generate")
    arrivals = [time.perf_counter() - start for _ in job]
    final = job.result()
    if "Done" not in final[0]:
        raise RuntimeError(f"the run did not finish: {final[0]}")
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "first_frame_s": arrivals[0],
        "total_s": arrivals[-1],
        "updates": len(arrivals),
        "updates_per_s": (len(arrivals) - 1) / span if span and span > 0 else float("nan"),
    }


def summarise(runs: list[dict]) -> dict:
    keys = ("first_frame_s", "updates_per_s", "total_s", "updates")
    return {k: {"median": statistics.median(r[k] for r in runs), "min": min(r[k] for r in runs), "max": max(r[k] for r in runs)} for k in keys}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.loadtest", description=__doc__.split("\n\n")[0])
    add_server_options(p)
    p.add_argument("--sessions", type=int, default=8, help="concurrent sessions in part 2, 0 to skip it (default: 8)")
    p.add_argument("--repeats", type=int, default=3, help="single runs in part 1 (default: 3)")
    p.add_argument("--model", default="both", help="a loaded model's name (its folder or repo name), or both (default)")
    p.add_argument("--steps", type=int, default=100, help="steps per run (default: 100, the shipped models' recommended)")
    p.add_argument("--guidance", type=float, default=1.8, help="guidance (default: 1.8, the shipped models' recommended)")
    p.add_argument("--sampler", default=DEFAULT_SAMPLER, help=f"as in the app (default: {DEFAULT_SAMPLER}, each model's own)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    server, url = start_app(args, "--max-concurrent", str(max(8, args.sessions)))
    try:
        idle_mb = rss_mb(server.pid)
        watch = MemoryWatch(server.pid)
        watch.start()
        settings = lambda seed: (args.model, "all", 0, args.guidance, args.steps, seed, args.sampler)  # noqa: E731

        client = Client(url, verbose=False, download_files=False)
        one_run(client, settings(99))  # warm the path once (first requests set up the queue and caches)
        cpu = cpu_seconds(server.pid)
        singles = [one_run(client, settings(seed)) for seed in range(args.repeats)]
        single_cpu = (cpu_seconds(server.pid) - cpu) / max(args.repeats, 1)
        single_peak = watch.peak

        concurrent, wall, concurrent_peak, concurrent_cpu = [], float("nan"), float("nan"), float("nan")
        if args.sessions > 0:
            watch.reset()
            clients = [Client(url, verbose=False, download_files=False) for _ in range(args.sessions)]
            with ThreadPoolExecutor(args.sessions) as pool:
                cpu = cpu_seconds(server.pid)
                t0 = time.perf_counter()
                concurrent = list(pool.map(lambda k: one_run(clients[k], settings(1000 + k)), range(args.sessions)))
                wall = time.perf_counter() - t0
                concurrent_cpu = (cpu_seconds(server.pid) - cpu) / args.sessions
            concurrent_peak = watch.peak
        watch.stop()
        results = {
            "settings": {"model": args.model, "digits": "all", "steps": args.steps, "guidance": args.guidance, "sampler": args.sampler, "threads": args.threads},
            "cpus": os.cpu_count(),
            "idle_rss_mb": idle_mb,
            "single": summarise(singles),
            "single_peak_rss_mb": single_peak,
            "concurrent": {"sessions": args.sessions, "wall_s": wall, **(summarise(concurrent) if concurrent else {})},
            "concurrent_peak_rss_mb": concurrent_peak,
            "server_peak_rss_mb": rss_mb(server.pid, "VmHWM"),
            "single_cpu_s_per_run": single_cpu,
            "concurrent_cpu_s_per_run": concurrent_cpu,
        }
        if concurrent:  # how much longer the unluckiest of the concurrent users waits than a user alone
            lone = results["single"]["total_s"]["median"]
            results["slowest_over_lone"] = results["concurrent"]["total_s"]["max"] / lone
            # the last of the runs cannot end before all their CPU work is done on every core at once
            results["work_bound_over_lone"] = args.sessions * single_cpu / (os.cpu_count() or 1) / lone
    finally:
        stop_server(server)

    s, c = results["single"], results["concurrent"]
    print(f"settings: {results['settings']}  ({results['cpus']} CPUs)")
    print(f"server idle RSS: {idle_mb:.0f} MB")
    print(
        f"1 session   : first frame {s['first_frame_s']['median'] * 1000:.0f} ms (min {s['first_frame_s']['min'] * 1000:.0f}), "
        f"{s['updates_per_s']['median']:.1f} updates/s, run {s['total_s']['median']:.1f} s (min {s['total_s']['min']:.1f}), peak RSS {single_peak:.0f} MB, "
        f"server CPU {results['single_cpu_s_per_run']:.2f} s per run"
    )
    if concurrent:
        print(
            f"{c['sessions']} sessions  : first frame {c['first_frame_s']['median'] * 1000:.0f} ms (max {c['first_frame_s']['max'] * 1000:.0f}), "
            f"{c['updates_per_s']['median']:.1f} updates/s each, all done in {c['wall_s']:.1f} s, peak RSS {concurrent_peak:.0f} MB"
        )
        print(f"slowest of {c['sessions']} / a lone run: {results['slowest_over_lone']:.2f}× (server CPU "
              f"{results['concurrent_cpu_s_per_run']:.2f} s per run; the least the {results['cpus']} CPUs allow for "
              f"{c['sessions']} lone runs' work: {results['work_bound_over_lone']:.2f}×)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
