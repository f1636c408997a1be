"""Keep freed memory for reuse while the engine runs (glibc only; a no-op elsewhere).

Every network layer allocates its output afresh. glibc serves allocations above a threshold
(at most 32 MB) with ``mmap`` and returns freed heap tops to the system, so a large activation
is page-faulted in again on every forward pass: on the 2-core test machine that was 40 % of the
time of a 512x512 tile (1.4 million page faults per pass). Inside :func:`reuse_freed_memory`
large blocks come from the heap and stay there, so later layers reuse them; on exit the
defaults are restored and the free memory is handed back (``malloc_trim``). Peak memory is
unchanged: the blocks kept are ones the process already needed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_lock = threading.Lock()
_depth = 0


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _ = libc.mallopt, libc.malloc_trim  # glibc only: AttributeError elsewhere
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def available() -> bool:
    """Whether this process's C library is glibc, where :func:`reuse_freed_memory` acts."""
    return _LIBC is not None


def is_reusing() -> bool:
    """Whether freed memory is being kept for reuse now (inside a :func:`reuse_freed_memory` block)."""
    with _lock:
        return _depth > 0


@contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[None]:
    """Inside the block, freed memory stays in the heap for reuse (nestable, thread-safe)."""
    global _depth
    if not enabled or _LIBC is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _LIBC.mallopt(_M_MMAP_MAX, 0)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for option, value in _DEFAULTS.items():
                    _LIBC.mallopt(option, value)
                _LIBC.malloc_trim(0)


def available_bytes() -> int | None:
    """Memory the system can give this process now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
