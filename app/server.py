"""Serving BFN Studio: launch settings, Gradio's file cache bounded by size and age, and a clean exit on SIGTERM.

`serve` is what `python -m app` runs. Four things here are about what a long-lived server leaves behind:

* **Memory.** Runs come and go (the session store keeps them within its budget); the server caps malloc's
  arenas and returns malloc's free pages every few seconds, so that what dropped runs and finished streams
  freed leaves the process (`app.core.memory`).
* **The file cache.** Every streamed image is a PNG file in Gradio's cache folder (GRADIO_TEMP_DIR, else
  tempfile.gettempdir()/gradio), about 40 files a second per watching session, and Gradio removes them only
  by age. A `CacheSweeper` removes the oldest files beyond a byte budget as well as those past an age,
  every few seconds, and forgets them in the Blocks' lists of files to delete (which otherwise hold every
  path ever cached). Unless GRADIO_TEMP_DIR is set, the server caches into a folder of its own, so that the
  sweeper never touches another app's files, and removes it on exit.
* **Uploads.** The app has no upload widget yet (a drawing input will add one: a small PNG or a sketchpad
  image), but Gradio's /gradio_api/upload takes files from anyone; `MAX_UPLOAD_BYTES` caps each file.
* **SIGTERM** (a container's stop, a Space's restart) ends the server like Ctrl-C, so that the same clean-up
  runs: runs stopped, exports and the private cache removed (`sigterm_as_interrupt`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.core.memory import Trimmer, limit_arenas
from app.core.store import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

MB = 1 << 20
DEFAULT_RUN_MB = DEFAULT_MAX_BYTES // MB  # the runs kept for all sessions together (`SessionStore.max_bytes`)
DEFAULT_CACHE_MB = 256  # Gradio's file cache: streamed images, exports, uploads
CACHE_MAX_AGE_S = 3600.0  # files older than this go whatever the budget
CACHE_MIN_AGE_S = 5.0  # files younger than this stay whatever the budget: a browser is still to fetch them
SWEEP_EVERY_S = 5.0
MAX_UPLOAD_BYTES = 2 * MB  # one uploaded file: room for a drawing (a sketchpad image), nothing bigger
PRIVATE_CACHE_PREFIX = "bfn-studio-cache-"


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM: Gradio's `launch` ends on it as on Ctrl-C (a KeyboardInterrupt)."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread instead of ending the process at once.

    Python's default for SIGTERM ends the process without running `finally` blocks or atexit handlers, so a
    stopped container would leave its runs' threads, exports and cache behind. A second SIGTERM during the
    clean-up is ignored, so that the clean-up finishes (a supervisor that means it sends SIGKILL).
    """

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CacheSweeper(threading.Thread):
    """Keeps a cache folder under `max_bytes` and `max_age` seconds, oldest files first, every `every` seconds.

    Files younger than `min_age` stay even beyond the budget: they were just handed to a browser that is still
    to fetch them (the folder may then hold what `min_age` + `every` seconds of streaming write beyond the
    budget). Age is the modification time, which Gradio renews when it hands out a cached file again.
    `forget(paths)` is told which files went (the Blocks' own lists of files to delete, `forget_in`).
    """

    def __init__(
        self,
        folder: str | Path,
        max_bytes: int,
        *,
        max_age: float = CACHE_MAX_AGE_S,
        min_age: float = CACHE_MIN_AGE_S,
        every: float = SWEEP_EVERY_S,
        forget: Callable[[list[str]], None] | None = None,
    ):
        super().__init__(name="bfn-cache-sweeper", daemon=True)
        self.folder = Path(folder)
        self.max_bytes, self.max_age, self.min_age, self.every = max_bytes, max_age, min_age, every
        self.forget = forget
        self._halt = threading.Event()

    def sweep(self) -> tuple[int, int]:
        """One pass: remove what is too old or beyond the budget; → (files removed, bytes removed)."""
        files = []
        for root, _, names in os.walk(self.folder):
            for name in names:
                path = os.path.join(root, name)
                try:
                    st = os.lstat(path)
                except OSError:  # removed meanwhile
                    continue
                files.append((st.st_mtime, st.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        now = time.time()
        removed, freed = [], 0
        for mtime, size, path in files:  # oldest first
            age = now - mtime
            if age < self.min_age or (age <= self.max_age and total <= self.max_bytes):
                break
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError:
                continue
            removed.append(path)
            total -= size
            freed += size
        for folder in {os.path.dirname(p) for p in removed}:
            if folder != str(self.folder):
                try:
                    os.rmdir(folder)  # Gradio keeps one file per folder (named by the file's hash)
                except OSError:  # not empty, or gone
                    pass
        if removed and self.forget is not None:
            self.forget(removed)
        return len(removed), freed

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 — a failed pass is logged; the next one tries again
                log.exception("sweeping the file cache %s failed", self.folder)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


def forget_in(file_sets: Iterable[set[str]]) -> Callable[[list[str]], None]:
    """A `CacheSweeper.forget` that drops removed paths from Gradio's sets of files to delete (the Blocks'
    `temp_file_sets`). It only discards (each call atomic under the GIL) and never iterates over the sets,
    which Gradio's handlers add to from other threads."""
    sets = list(file_sets)

    def forget(paths: list[str]) -> None:
        for s in sets:
            s.difference_update(paths)

    return forget


def launch_options() -> dict[str, Any]:
    """The `Blocks.launch` settings the app always runs with (the CLI and the tests' servers alike)."""
    from app.page import theme
    from app.ui.assets import STYLE

    return {"theme": theme(), "css_paths": [STYLE], "ssr_mode": False, "show_error": True, "max_file_size": MAX_UPLOAD_BYTES}


class Server:
    """The app for a `ModelBank`, with everything it owns: its context (runs, exports), Gradio's file cache and
    its sweeper. `launch` serves it; `close` (or leaving the `with` block) stops every run and removes the
    exports and, when it is the server's own, the cache.

    The cache is GRADIO_TEMP_DIR when set (the sweeper then keeps that folder under the budget: give the app a
    folder of its own); else a new private folder, set as GRADIO_TEMP_DIR while the server lives (Gradio reads
    the variable as each component is made and whenever it checks a file) and removed with the server.

    Args:
        bank: the loaded models (`app.core.models.ModelBank`).
        run_mb, cache_mb: the budgets for kept runs (`SessionStore.max_bytes`) and for the file cache.
        options: for the `Context` (concurrency, stream pacing).
    """

    def __init__(self, bank: Any, *, run_mb: int = DEFAULT_RUN_MB, cache_mb: int = DEFAULT_CACHE_MB, **options: Any):
        from app.core.store import SessionStore
        from app.page import build
        from app.ui.context import Context

        limit_arenas()  # before Gradio starts its worker threads (`app.core.memory`)
        self._env = os.environ.get("GRADIO_TEMP_DIR")
        self.private_cache = not self._env
        self.cache = Path(tempfile.mkdtemp(prefix=PRIVATE_CACHE_PREFIX)) if self.private_cache else Path(self._env)
        os.environ["GRADIO_TEMP_DIR"] = str(self.cache)
        self.context: Any = None
        self.demo: Any = None
        self.trimmer = Trimmer()
        try:  # a failure (or a SIGTERM) half-way still leaves nothing behind
            self.context = Context(bank, SessionStore(max_bytes=run_mb * MB), **options)
            self.demo = build(self.context)
            self.sweeper = CacheSweeper(self.cache, cache_mb * MB, forget=forget_in(self.demo.temp_file_sets))
        except BaseException:
            self.close()
            raise

    def launch(self, **options: Any) -> None:
        """`Blocks.launch` with the app's settings (`launch_options`) and `options`; blocks until Ctrl-C or
        SIGTERM unless `prevent_thread_lock=True`.

        It blocks here rather than in Gradio, whose own wait closes the web server on Ctrl-C while runs still
        stream, and then waits for those streams; returning instead lets `close` stop the runs first."""
        for thread in (self.sweeper, self.trimmer):
            if thread.ident is None:  # not started yet
                thread.start()
        block = not options.pop("prevent_thread_lock", False)
        self.demo.launch(**{**launch_options(), **options, "prevent_thread_lock": True})
        try:
            while block and self.demo.is_running:
                time.sleep(0.1)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM within `sigterm_as_interrupt`
            logging.info("stopping: every run, then the web server")

    def close(self) -> None:
        """Stop every run and serving; remove the exports and the server's own cache (else its files).

        The runs stop first: their streams then end at once, and the web server has no open stream to wait for."""
        from gradio.route_utils import delete_files_created_by_app

        if self.context is not None:
            self.context.close()
        if self.demo is not None:
            self.demo.close(verbose=False)
        for thread in (getattr(self, "sweeper", None), self.trimmer):
            if thread is not None:
                thread.stop()
        if self.private_cache:
            shutil.rmtree(self.cache, ignore_errors=True)
            if os.environ.get("GRADIO_TEMP_DIR") == str(self.cache):
                del os.environ["GRADIO_TEMP_DIR"]
        elif self.demo is not None:
            delete_files_created_by_app(self.demo, None)  # what Gradio's own clean-up does on shutdown

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(bank: Any, *, host: str, port: int, share: bool = False, **options: Any) -> None:
    """Serve the app for `bank` until Ctrl-C or SIGTERM, then clean up (`Server.close`); `options` go to `Server`.

    Call it from the main thread inside `sigterm_as_interrupt` (as `python -m app` does); a SIGTERM before
    the server is up raises `Terminated` out of here after the same clean-up."""
    with Server(bank, **options) as server:
        server.launch(server_name=host, server_port=port, share=share)
