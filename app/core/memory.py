"""Memory that is freed going back to the system, so that the server's size follows the runs it keeps.

The runs' frames are the big allocations (up to 128 MB a run), and they come and go: the session store drops
the oldest finished runs beyond its budget. With glibc's malloc, freed memory does not always leave the
process. Each thread allocates from one of up to 8 arenas per core, and the free space of each arena's heap
stays resident (only its top is returned); the threads here are many (Gradio's worker pool renders the
views, one producer thread per model and run samples), so every arena ends up holding the free space of its
own busiest moment. And a large block is only given its own mapping (unmapped when freed) while it is above
malloc's threshold, which malloc raises as such blocks are freed, so later runs' frames land in the heaps.

Three measures, each one call:
* `frame_array` gives every large frame array pages of its own (an anonymous mmap), unmapped as soon as the
  array is dropped, whatever malloc's state;
* `limit_arenas` caps the arenas (glibc's M_ARENA_MAX), set before the server starts its threads;
* `Trimmer` asks malloc every few seconds to return the free pages of every arena (glibc's malloc_trim).
On other C libraries (musl, macOS) the last two do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
import threading

import numpy as np

log = logging.getLogger(__name__)

MALLOC_ARENAS = 2  # threads share few heaps: their free space is shared too, and the app's work is not malloc-bound
M_ARENA_MAX = -8  # glibc's mallopt() parameter number
MIN_MAPPED_BYTES = 1 << 20  # arrays from this size up get pages of their own
TRIM_EVERY_S = 2.0  # how often `Trimmer` returns free memory

_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has malloc_trim), else None."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.malloc_trim, libc.mallopt  # noqa: B018 — glibc has both; other C libraries lack malloc_trim
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def frame_array(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A new array of `shape`, zeros, that holds its own pages when large: unmapped when the array is dropped.

    Like `np.empty`, its memory is only made resident as it is written (pages of an anonymous mapping are
    zero until touched), so a run's frames cost what its recorded steps hold.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if nbytes < MIN_MAPPED_BYTES:
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def limit_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (the M_ARENA_MAX setting; MALLOC_ARENA_MAX in the environment wins). Only
    arenas made after the call are affected: call it before the server starts its threads. → whether set."""
    libc = _glibc()
    if libc is None:
        return False
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Return malloc's free pages to the system (glibc's malloc_trim(0), every arena). → whether it ran."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class Trimmer(threading.Thread):
    """Calls `release_free_memory` every `every` seconds until stopped.

    Streaming the views allocates and frees a lot (figures, PNGs, messages) in many threads; trimming often
    keeps what malloc holds free near what one period allocates. Each call walks every heap, holding each
    arena's lock a few milliseconds, so not much more often than this.
    """

    def __init__(self, every: float = TRIM_EVERY_S):
        super().__init__(name="bfn-malloc-trim", daemon=True)
        self.every = every
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            if not release_free_memory():
                return  # not glibc: nothing to do

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()
