"""What a long-lived server leaves behind: memory, the file cache, and what a SIGTERM leaves (app/server.py,
app/core/memory.py, tools/soak.py). The soak and SIGTERM tests start `python -m app` with tiny models on 127.0.0.1."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

from app.core.frames import Frames  # noqa: E402
from app.core.memory import frame_array, release_free_memory  # noqa: E402
from app.server import CacheSweeper, forget_in  # noqa: E402
from tools.serving import free_port, rss_mb, stop_server, wait_until_serving  # noqa: E402
from tools.soak import build_parser, soak  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20
LINUX = sys.platform.startswith("linux")


# ----------------------------------------------------------------------------------------------- memory


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/status")
@pytest.mark.process  # measures this process's memory: where no served app frees runs of its own meanwhile
def test_a_dropped_runs_frames_go_back_to_the_system(discrete_model):
    """Whatever malloc did before: a 1,000-step run's frames freed first raise glibc's threshold for giving
    large blocks their own mapping, so a shorter run's frames would then stay in the heap once dropped."""
    def fill_and_drop(steps: int) -> tuple[float, float]:
        kept: list[Frames] = []

        def record() -> None:  # in a thread of its own, as a run's producer
            fr = Frames(discrete_model.flow, 10, steps)
            fr.theta[:] = 0.5
            fr.output[:] = 0.5
            kept.append(fr)

        before = rss_mb(os.getpid())
        thread = threading.Thread(target=record)
        thread.start()
        thread.join()
        full = rss_mb(os.getpid())
        kept.clear()
        gc.collect()
        return full - before, rss_mb(os.getpid()) - before

    for steps in (1000, 300, 1000, 300):
        grew, left = fill_and_drop(steps)
        assert grew > 0.8 * (steps + 1) * 10 * 28 * 28 * 2 * 2 / MB  # the frames were resident…
        assert left < 2, f"{steps} steps: {left:.1f} MB stayed after the run was dropped"  # …and went
    big = frame_array((1001, 10, 28, 28), np.float16)
    assert big.flags.writeable and not big.any() and frame_array((3, 4), np.float32).shape == (3, 4)
    assert release_free_memory() is LINUX


# ------------------------------------------------------------------------------------------- file cache


def test_the_cache_sweeper_keeps_the_folder_under_its_budget_oldest_first(tmp_path):
    now = time.time()
    files = {}
    for k, age in enumerate((7200, 900, 600, 300, 120, 1)):  # seconds old; one folder per file, as Gradio keeps them
        path = tmp_path / f"hash{k}" / "image.png"
        path.parent.mkdir()
        path.write_bytes(b"\0" * 1000)
        os.utime(path, (now - age, now - age))
        files[age] = path
    forgotten: set[str] = {str(p) for p in files.values()} | {"elsewhere"}
    sweeper = CacheSweeper(tmp_path, max_bytes=3000, max_age=3600, min_age=10, forget=forget_in([forgotten]))
    assert sweeper.sweep() == (3, 3000)  # past the age (7200 s), then the oldest beyond 3,000 bytes
    assert [age for age, p in files.items() if p.exists()] == [300, 120, 1]
    assert not (tmp_path / "hash0").exists() and (tmp_path / "hash3").exists()  # emptied folders go too
    assert forgotten == {str(files[a]) for a in (300, 120, 1)} | {"elsewhere"}
    tight = CacheSweeper(tmp_path, max_bytes=0, min_age=10)
    assert tight.sweep() == (2, 2000) and files[1].exists()  # a file just written stays: a browser is to fetch it


# ------------------------------------------------------------------------------------------------ SIGTERM


@pytest.mark.skipif(not LINUX, reason="POSIX signals")
@pytest.mark.process
def test_sigterm_stops_the_server_like_a_normal_exit(weights_dir, tmp_path):
    """A container's stop: the server exits 0 promptly, with a run under way, and leaves no export folder or
    file cache behind (both live under TMPDIR here, to be looked for)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False", TMPDIR=str(tmp))
    env.pop("GRADIO_TEMP_DIR", None)
    port = free_port()
    log = open(tmp_path / "server.log", "w+")
    cmd = [sys.executable, "-m", "app", "--weights", str(weights_dir), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        if not wait_until_serving(url, proc, timeout=240):
            log.seek(0)
            pytest.fail(f"the app did not start:\n{log.read()}")
        client = Client(url, verbose=False, download_files=False)
        client.submit("discrete", "all", 0, 1.0, 5, 0, "bfn", api_name="/generate").result()
        exported = client.predict(api_name="/export_png")["path"]
        job = client.submit("both", "all", 0, 1.0, 1000, 1, "bfn", api_name="/generate")
        next(iter(job))  # the long run is sampling
        ours = sorted(p.name.rsplit("-", 1)[0] for p in tmp.glob("bfn-studio-*"))
        assert ours == ["bfn-studio", "bfn-studio-cache"], ours  # the export folder and the private file cache
        assert Path(exported).is_relative_to(tmp / [p.name for p in tmp.glob("bfn-studio-cache-*")][0])
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            stop_server(proc)
        log.seek(0)
        output = log.read()
        log.close()
    assert code == 0, output[-3000:]
    assert took < 15, f"took {took:.1f} s to exit"
    assert not list(tmp.glob("bfn-studio-*")), list(tmp.iterdir())
    assert "Traceback" not in output, output[-3000:]


# ---------------------------------------------------------------------------------------------------- soak


@pytest.mark.process
def test_a_short_soak_holds_the_memory_and_cache_bounds(weights_dir):
    """`python -m tools.soak` in small: sessions that never close, more runs than the store keeps, a file cache
    budget far below what the streams write, and four clients at once sending pixel bombs to /score and
    /complete (12000×12000 one-bit pixels in 18 KB took the server from 450 MB to 5.4 GB; with the pixel limit
    lifted, four such clients took it from 440 MB to 6.8 GB); the server's RSS and its cache stay within the
    bounds, every bomb is refused and the largest picture allowed is read."""
    args = build_parser().parse_args(
        ["--weights", str(weights_dir), "--runs", "4", "--sessions", "2", "--steps", "150", "--seconds", "120",
         "--max-run-mb", "20", "--max-cache-mb", "1", "--cache-slack-mb", "8", "--margin-mb", "200", "--settle", "11",
         "--bombs", "4"]
    )  # fmt: skip  # a run keeps ~18 MB: the store keeps one ended run of the four; the streams write ~3 MB
    r = soak(args)
    summary = {k: v for k, v in r.items() if k != "samples"}
    assert r["runs_done"] == 4 and not r["runs_failed"], summary
    assert r["pictures_sent"] == 4 * 3 * 2 and not r["pictures_wrong"], summary  # every bomb refused, the largest read
    assert r["peak_cache_mb"] > 1, summary  # the streams wrote more than the cache may keep: the sweeper had work
    assert r["ok"], summary
    assert r["final_cache_mb"] <= 1, summary  # once every file is old enough, the sweeper holds the budget itself


# ---------------------------------------------------------------------------------------------------- load


@pytest.mark.process
def test_the_load_test_reports_first_updates_and_the_slowest_run_against_a_lone_one(weights_dir, tmp_path):
    """`python -m tools.loadtest` in small: every concurrent run finishes, and the figures the README quotes
    (first update, the slowest concurrent run over a lone one) are in its report."""
    from tools.loadtest import main

    out = tmp_path / "load.json"
    assert main(["--weights", str(weights_dir), "--sessions", "3", "--repeats", "1", "--steps", "8", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["concurrent"]["sessions"] == 3 and r["concurrent"]["updates"]["min"] >= 2
    assert r["slowest_over_lone"] == r["concurrent"]["total_s"]["max"] / r["single"]["total_s"]["median"] > 0
    assert r["concurrent"]["first_frame_s"]["max"] < r["concurrent"]["total_s"]["max"]
    # the server's CPU per run, and the bound it sets: n runs' work spread over every core
    assert r["single_cpu_s_per_run"] > 0 and r["concurrent_cpu_s_per_run"] > 0
    lone = r["single"]["total_s"]["median"]
    assert r["work_bound_over_lone"] == pytest.approx(3 * r["single_cpu_s_per_run"] / r["cpus"] / lone)


@pytest.mark.process
def test_cpu_seconds_counts_every_thread_of_a_process():
    from tools.serving import cpu_seconds

    burn = "import threading, time\ndef spin():\n    end = time.process_time() + 1.5\n    while time.process_time() < end: pass\n" \
           "ts = [threading.Thread(target=spin) for _ in range(2)]\n[t.start() for t in ts]; [t.join() for t in ts]\nimport sys; sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE)
    try:
        time.sleep(0.1)
        start = cpu_seconds(child.pid)
        deadline = time.monotonic() + 30
        while cpu_seconds(child.pid) - start < 0.6 and time.monotonic() < deadline:
            time.sleep(0.05)
        used = cpu_seconds(child.pid) - start  # the spinning threads' (the main thread only waits for them)
        assert 0.6 <= used <= 1.6, used
    finally:
        child.communicate(b"")
