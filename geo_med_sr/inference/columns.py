"""The window driver's streamed mode: columns along the last axis, for networks that stream.

A *column* is a tile of the driver's walk (:meth:`~.driver.WindowDriver.walk`) in the first axes
and the whole image along the last one. A background reader reads each batch of columns in
chunks of planes along the last axis (mirror-reflected by the halo at both ends), a
:class:`~geo_med_sr.networks.streaming.StreamedEDSR` turns them into finished output planes with
no halo recomputed along the stream, and a background writer crops, finishes, casts (the
driver's :class:`~.protocols.OutputSpec`) and writes each owned window in whole blocks of the
sink along the last axis. The result equals whole-image inference on the image mirror-padded by
the halo, and memory does not depend on the image size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from geo_med_sr.inference.arrays import read_reflected, read_reflected_mask
from geo_med_sr.inference.driver import ProgressBar, WindowDriver
from geo_med_sr.inference.grid import Patch, PatchGrid
from geo_med_sr.inference.protocols import OutputSpec, Sink, Source, Window
from geo_med_sr.inference.threads import BackgroundWorker, prefetch
from geo_med_sr.networks.streaming import StreamedEDSR
from geo_med_sr.spatial import upsample_mask

__all__ = ["run_columns"]


def _mask_planes(kept: list[tuple[int, list[np.ndarray | None]]], first: int, last: int) -> list[np.ndarray | None]:
    """Per column, the valid mask of LR planes ``[first, last)`` from the chunks read so far."""
    columns = len(kept[0][1])
    out: list[np.ndarray | None] = []
    for c in range(columns):
        parts = [(s0, masks[c]) for s0, masks in kept if masks[c] is not None]
        if not parts:
            out.append(None)
            continue
        ndim = max(m.ndim for _, m in parts)  # per-band (C, *S) chunks beside per-pixel S chunks
        channels = max(m.shape[0] for _, m in parts if m.ndim == ndim)
        arrays = [m if m.ndim == ndim else np.broadcast_to(m, (channels, *m.shape)) for _, m in parts]
        planes = np.concatenate(arrays, axis=-1)
        offset = parts[0][0]
        out.append(planes[..., first - offset : last - offset])
    return out


class _ColumnWriter:
    """Writes the finished HR planes of a batch of columns (the driver's background writer).

    Each item is ``(columns, first, y, start, masks)``: ``y`` holds HR planes ``start ..`` of
    every column (``(B, C, *tile*scale, T)``), ``masks`` the LR valid planes from ``first``. The
    owned part of each column goes through ``finish`` and the spec's cast; side-by-side columns
    are joined, and planes are buffered so that every write covers whole blocks of the sink along
    the last axis (``sink.block``, e.g. a GeoTIFF's tile height) instead of rewriting a
    compressed block chunk by chunk. ``None`` ends the batch and writes what is left.
    """

    def __init__(
        self,
        sink: Sink,
        finish: Callable[[np.ndarray], np.ndarray],
        spec: OutputSpec,
        scale: tuple[int, ...],
        length: int,
    ) -> None:
        self.sink, self.finish, self.spec, self.scale, self.length = sink, finish, spec, scale, length
        self.align = int(sink.block[-1])
        self.pending: list[tuple[Window, list[np.ndarray]]] = []
        self.lo = self.hi = 0

    def __call__(self, item: tuple | None) -> None:
        if item is None:
            self._write(self.hi)
            self.pending = []
            return
        columns, first, y, start, masks = item
        f = self.scale[-1]
        lo, hi = max(start, 0), min(start + y.shape[-1], self.length)
        boxes, windows = [], []
        for col, out, valid in zip(columns, y, masks):
            crop = col.owned.relative_to(col.tile).scaled(self.scale).toslices()
            window = out[(slice(None), *crop, slice(lo - start, hi - start))]
            hr_valid = None
            if valid is not None and self.spec.dtype is not None:
                hr_valid = upsample_mask(valid, self.scale)[..., lo - first * f : hi - first * f]
            boxes.append(col.owned.scaled(self.scale))
            windows.append(self.spec.cast(self.finish(window), hr_valid))
        boxes, windows = _side_by_side(boxes, windows)
        if not self.pending:
            self.pending, self.lo = [(box, []) for box in boxes], lo
        for (_, parts), window in zip(self.pending, windows):
            parts.append(window)
        self.hi = hi
        self._write(self.hi // self.align * self.align)

    def _write(self, stop: int) -> None:
        """Write the buffered planes ``[lo, stop)``; keep the rest."""
        if stop <= self.lo or not self.pending:
            return
        for i, (box, parts) in enumerate(self.pending):
            planes = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
            self.sink.write(Window((*box, (self.lo, stop))), planes[..., : stop - self.lo])
            self.pending[i] = (box, [planes[..., stop - self.lo :]])
        self.lo = stop


def _side_by_side(boxes: list[Window], windows: list[np.ndarray]) -> tuple[list, list]:
    """One window when the boxes follow each other along the first axis (same extent elsewhere)."""
    if len(boxes) < 2:
        return boxes, windows
    joined = all(a[0][1] == b[0][0] and a[1:] == b[1:] for a, b in zip(boxes, boxes[1:]))
    if not joined:
        return boxes, windows
    return [Window(((boxes[0][0][0], boxes[-1][0][1]), *boxes[0][1:]))], [np.concatenate(windows, axis=1)]


def _chunk_planes(
    streamed: StreamedEDSR, chunk_mb: float, batch: int, inplane: Sequence[int], length: int
) -> tuple[int, int]:
    """LR planes per streamed chunk, and per pass through the upsampler: the widest feature
    buffer (LR features, or the sub-pixel convolution's ``features * prod(scale)``) near
    ``chunk_mb``."""
    net = streamed.net
    per_plane = batch * net.features * int(np.prod(inplane)) * 4
    budget = chunk_mb * 2**20
    planes = int(min(max(budget // per_plane, 4), length))
    hr_planes = int(max(budget // (per_plane * int(np.prod(net.scale))), 1))
    return planes, hr_planes


def _columns(driver: WindowDriver, inplane: Sequence[int], halo: Sequence[int], column_size: int) -> PatchGrid:
    """Columns of at most ``column_size``, balanced so that they barely overlap: an axis of
    ``n`` pixels is cut into ``ceil(n / column_size)`` near-equal parts (the driver's walk)."""
    sizes = [-(-n // -(-n // column_size)) for n in inplane]
    return driver.walk(inplane, sizes, halo)


def run_columns(
    driver: WindowDriver,
    streamed: StreamedEDSR,
    source: Source,
    sink: Sink,
    spec: OutputSpec,
    *,
    before: Callable[[np.ndarray, np.ndarray | None], np.ndarray] | None,
    finish: Callable[[np.ndarray], np.ndarray],
    extra: int,
    column_size: int,
    chunk_mb: float,
    per_channel: bool,
    to_device: Callable[[np.ndarray], torch.Tensor],
) -> None:
    """Column by column: tiles of ``column_size`` in the first axes, the whole last axis.

    Args:
        driver: the window driver (scale, halo including ``extra``, batch size, threads,
            progress, autocast).
        streamed: the streamed network.
        source, sink: input ``(C, *S)`` and output ``(C_out, *S*scale)``.
        spec: the output windows' dtype and nodata.
        before: raw window and validity -> network input (normalise, fill nodata), or None.
        finish: owned output values -> values to cast (the normaliser's inverse).
        extra: planes of context for the nodata fill only (read, then dropped after ``before``).
        column_size: largest in-plane size of a column (input pixels).
        chunk_mb: size target of the largest feature buffer of a chunk.
        per_channel: run a multi-channel image channel by channel through the batch.
        to_device: a NumPy batch -> a tensor on the network's device.
    """
    spatial = tuple(source.shape[1:])
    scale, halo = driver.scale, driver.halo
    n, h = spatial[-1], halo[-1] - extra
    grid = _columns(driver, spatial[:-1], halo[:-1], column_size)
    columns: list[Patch] = list(grid)
    width = source.shape[0] if per_channel else 1
    batch = min(driver.batch_size, len(columns)) * width
    planes, hr_planes = _chunk_planes(streamed, chunk_mb, batch, grid.read_shape, n + 2 * h)
    starts = list(range(-h, n + h, planes))
    groups = [columns[i : i + driver.batch_size] for i in range(0, len(columns), driver.batch_size)]

    def load(item: tuple[int, int]) -> tuple[int, int, np.ndarray, list[np.ndarray | None]]:
        b, a = item
        stop = min(a + planes, n + h)
        inputs, masks = [], []
        for col in groups[b]:
            window = Window((*col.read, (a - extra, stop + extra)))
            raw = read_reflected(source, window)
            valid = read_reflected_mask(source, window)
            x = before(raw, valid) if before is not None else raw
            inputs.append(x[..., extra : x.shape[-1] - extra].astype(np.float32, copy=False))  # a network's input
            owned = col.owned.relative_to(col.read).toslices()
            masks.append(None if valid is None else valid[(Ellipsis, *owned, slice(extra, valid.shape[-1] - extra))])
        return b, a, np.stack(inputs), masks

    bar = ProgressBar(driver.progress, len(groups) * len(starts), driver.desc, "chunk")
    loaded = prefetch(map(load, ((b, a) for b in range(len(groups)) for a in starts)), depth=driver.depth)
    try:
        store = _ColumnWriter(sink, finish, spec, scale, n * scale[-1])
        with BackgroundWorker(store, depth=driver.depth) as writer, driver.compute_context():
            column, kept = None, []
            for b, a, x, masks in loaded:
                if a == starts[0]:
                    column, kept = streamed.start(grid.halo, hr_planes), []
                x = to_device(x)
                if per_channel:
                    x = x.reshape(-1, 1, *x.shape[2:])
                kept.append((a, masks))
                for chunk in column.feed(x, a):
                    y = chunk.data.float()
                    if per_channel:
                        y = y.reshape(len(groups[b]), -1, *y.shape[2:])
                    f = scale[-1]
                    first, last = max(chunk.start, 0) // f, -(-min(chunk.start + y.shape[-1], n * f) // f)
                    if last <= first:
                        continue
                    kept = [(s0, m) for s0, m in kept if s0 + planes > first]
                    writer.submit((groups[b], first, y.cpu().numpy(), chunk.start, _mask_planes(kept, first, last)))
                if a == starts[-1]:
                    writer.submit(None)  # the column batch is done: write what is buffered
                bar.update(1)
    finally:
        loaded.close()
        bar.close()
