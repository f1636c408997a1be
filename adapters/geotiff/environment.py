"""The GDAL process state the adapter manages while it streams: a bounded block cache, a quiet libtiff.

GDAL's block cache is process-wide and by default 5 % of RAM, which fills with the blocks of a
large scene; sources cap it once (:func:`cap_block_cache`) and sinks hold a bounded cache while
they write (:func:`writing_env`). libtiff, bundled with GDAL, prints write failures straight to
the C ``stderr``; :func:`quiet_libtiff` mutes it while GDAL raises the same failure as an error.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rasterio

#: GDAL block cache (MB) held while a sink writes or converts to COG, and the cap
#: :func:`cap_block_cache` sets for sources (read at call time: patch it here).
SINK_CACHE_MB = 64


def cap_block_cache() -> None:
    """Cap GDAL's process-wide block cache at :data:`SINK_CACHE_MB`, unless the user set ``GDAL_CACHEMAX``."""
    if "GDAL_CACHEMAX" not in os.environ:
        rasterio.env.set_gdal_config("GDAL_CACHEMAX", SINK_CACHE_MB)


@contextmanager
def writing_env(**extra: Any) -> Iterator[None]:
    """A rasterio Env with a :data:`SINK_CACHE_MB` block cache (plus ``extra`` GDAL options), libtiff muted.

    Masks are written inside the TIFF (``GDAL_TIFF_INTERNAL_MASK=YES``), never as a ``.msk`` sidecar.
    """
    with rasterio.Env(GDAL_CACHEMAX=SINK_CACHE_MB, GDAL_TIFF_INTERNAL_MASK="YES", **extra), quiet_libtiff():
        yield


@functools.lru_cache(maxsize=1)
def _gdal_libtiff() -> Any:
    """The libtiff that GDAL uses, loaded with ctypes (Linux only), or None when not found.

    Picks the ``libtiff*`` mapped into this process from the folder that holds ``libgdal``
    (rasterio wheels bundle both in ``rasterio.libs``; Pillow may map another libtiff elsewhere).
    """
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {line.split(maxsplit=5)[-1] for line in maps if line.count(" ") >= 5 and "/" in line}
    gdal_dirs = {os.path.dirname(p) for p in paths if os.path.basename(p).startswith("libgdal")}
    tiffs = sorted(p for p in paths if os.path.basename(p).startswith("libtiff") and os.path.dirname(p) in gdal_dirs)
    if not tiffs:
        return None
    try:
        lib = ctypes.CDLL(tiffs[0])
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


@contextmanager
def quiet_libtiff() -> Iterator[None]:
    """Mute libtiff's global error handler while the sink writes.

    GDAL's low-level TIFF I/O reports a failed write (``_tiffWriteProc: File too large.``) to
    libtiff's default handler, which prints straight to the C ``stderr``. GDAL raises its own
    error for the same failure, which the sink turns into a one-line OutputError, so the raw
    lines are noise that would break the CLI's one-line error contract.
    """
    lib = _gdal_libtiff()
    if lib is None:
        yield
        return
    previous = lib.TIFFSetErrorHandler(None)
    try:
        yield
    finally:
        lib.TIFFSetErrorHandler(previous)
