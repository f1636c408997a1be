"""The streamed NIfTI output: each window cast to the storage dtype and written to a scratch data block
on disk as it arrives; the header is put in front of the block when the run ends
(:meth:`~geo_med_sr.adapters.nifti.NiftiAdapter.finish_streamed`), so the output never sits in memory whole.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr.adapters.base import AdapterSink
from geo_med_sr.adapters.nifti_header import storage_of
from geo_med_sr.dtypes import cast_to_dtype
from geo_med_sr.errors import OutputError, file_error
from geo_med_sr.inference.protocols import Window

__all__ = ["COPY_CHUNK", "StreamedSink"]

#: bytes per read when :class:`StreamedSink` copies its finished data block into the file.
COPY_CHUNK = 1 << 24


def pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    """Write the bytes of the C-contiguous ``data`` at byte ``offset`` of ``fd`` (short writes continued)."""
    view = memoryview(data).cast("B")
    while len(view):
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


class StreamedSink(AdapterSink):
    """An :class:`~geo_med_sr.inference.protocols.ImageSink` that never holds the whole output.

    Each window is cast to the storage dtype (:func:`storage_of`) as it arrives and written with
    ``os.pwrite`` into a scratch file beside ``path`` laid out as the NIfTI data block (``X``
    fastest, then ``Y``, ``Z``, ``T``); :meth:`close` writes the header (built as
    :meth:`~geo_med_sr.adapters.nifti.NiftiAdapter.write_stored` builds it, with the metadata as it
    is then) and copies the block behind it, ``.nii.gz`` compressed on the way, :data:`COPY_CHUNK`
    bytes at a time. Memory: one window and one chunk. Voxels no window covers are 0, as in a fresh
    array. The scratch file is removed on :meth:`close` and :meth:`abort` (it lies in the I/O layer's
    temporary folder).

    Arguments as for :class:`~geo_med_sr.adapters.base.AdapterSink` (``adapter`` is the NIfTI adapter,
    whose ``finish_streamed`` writes the file; ``shape`` is ``(T, X, Y, Z)``).
    """

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)  # dtype None: windows arrive as float32 and are cast here
        #: ``(dtype, slope, inter)`` the file stores; the dtype in native byte order, as nibabel writes it
        dtype, slope, inter = storage_of(self.meta, len(self.shape) - 1, self.path)
        self.storage = (dtype.newbyteorder("="), slope, inter)
        self._fd: int | None = None
        self._scratch: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".data")
            self._fd, self._scratch = fd, Path(name)
            os.ftruncate(fd, math.prod(self.shape) * self.storage[0].itemsize)  # sparse: unwritten voxels are 0
        except OSError as exc:
            self.abort()
            raise file_error(OutputError, self.path, f"could not make the scratch file ({exc})") from exc

    def write(self, window: Window, data: np.ndarray) -> None:
        """Cast ``data`` ``(T, *window.shape)`` and write it at ``window`` of the data block."""
        if self._fd is None:
            raise file_error(OutputError, self.path, "the sink is already closed; open a new sink")
        (x0, x1), (y0, y1), (z0, z1) = Window(window)
        _, nx, ny, nz = self.shape
        stored = cast_to_dtype(data, *self.storage)
        item = self.storage[0].itemsize
        for t, volume in enumerate(stored):
            rows = np.ascontiguousarray(volume.transpose(2, 1, 0))  # (z, y, x): x runs are contiguous
            base = t * nz + z0
            if x1 - x0 == nx and y1 - y0 == ny:  # whole slices: one run
                pwrite_all(self._fd, rows, base * ny * nx * item)
            elif x1 - x0 == nx:  # whole rows: one run per slice
                for k, plane in enumerate(rows):
                    pwrite_all(self._fd, plane, ((base + k) * ny + y0) * nx * item)
            else:
                for k, plane in enumerate(rows):
                    for j, row in enumerate(plane):
                        pwrite_all(self._fd, row, (((base + k) * ny + y0 + j) * nx + x0) * item)

    def close(self) -> None:
        """Write the file from the data block (once; later calls do nothing)."""
        if self._fd is None:
            return
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            self.adapter.finish_streamed(self._fd, self.shape, self.affine, self.meta, self.path, **self.options)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the output: the scratch file is removed, nothing is written."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
