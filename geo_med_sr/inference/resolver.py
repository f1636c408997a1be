"""SuperResolver: run an :class:`~.protocols.Upsampler` window by window from a Source into a Sink.

EDSR networks stream column by column (:class:`~geo_med_sr.networks.streaming.StreamedEDSR`,
no halo recomputed); every other upsampler runs tile by tile on a :class:`~.grid.PatchGrid`.
Both equal whole-image inference on the image mirror-padded by the halo, and both keep memory
independent of the image size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from geo_med_sr.dtypes import compute_dtype
from geo_med_sr.errors import ConfigError
from geo_med_sr.geometry import scaled_shape
from geo_med_sr.inference.arrays import ArraySink, ArraySource, read_reflected, read_reflected_mask
from geo_med_sr.inference.device import resolve_device
from geo_med_sr.inference.grid import Patch, PatchGrid
from geo_med_sr.inference.memory import reuse_freed_memory
from geo_med_sr.inference.protocols import Sink, Source, Upsampler, Window
from geo_med_sr.inference.radiometry import Radiometry
from geo_med_sr.inference.threads import BackgroundWorker, prefetch
from geo_med_sr.networks.streaming import StreamedEDSR
from geo_med_sr.scale import as_scale
from geo_med_sr.spatial import upsample_mask


def _batches(items: Iterable[Patch], size: int) -> Iterator[list[Patch]]:
    batch: list[Patch] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parameter_dtype(model: object) -> torch.dtype | None:
    """The dtype of a module's parameters (a network), or None for parameter-free upsamplers."""
    if isinstance(model, torch.nn.Module):
        for param in model.parameters():
            return param.dtype
    return None


def _as_compute(raw: np.ndarray) -> np.ndarray:
    """Raw values in their compute dtype (float64 for wide storage types, else float32)."""
    return raw.astype(compute_dtype(raw.dtype), copy=False)


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
    """Writes the finished HR planes of a batch of columns (the engine's background writer).

    Each item is ``(columns, first, y, start, masks)``: ``y`` holds HR planes ``start ..`` of
    every column (``(B, C, *tile*scale, T)``), ``masks`` the LR valid planes from ``first``. The
    owned part of each column goes through ``radiometry.after``; side-by-side columns are
    joined, and planes are buffered so that every write covers whole blocks of the sink along
    the last axis (``sink.block``, e.g. a GeoTIFF's tile height) instead of rewriting a
    compressed block chunk by chunk. ``None`` ends the batch and writes what is left.
    """

    def __init__(self, sink: Sink, radiometry: Radiometry | None, scale: tuple[int, ...], length: int) -> None:
        self.sink, self.radiometry, self.scale, self.length = sink, radiometry, scale, length
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
            if self.radiometry is not None:
                hr_valid = (
                    None if valid is None else upsample_mask(valid, self.scale)[..., lo - first * f : hi - first * f]
                )
                window = self.radiometry.after(window, hr_valid)
            boxes.append(col.owned.scaled(self.scale))
            windows.append(window)
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


class SuperResolver:
    """Tiled, batched, tile-invariant application of an upsampling model.

    Args:
        model: an :class:`~.protocols.Upsampler`: ``(B, C_in, *P)`` float32 to
            ``(B, C_out, *P*scale)``, with ``receptive_radius``, ``in_channels`` and
            ``out_channels``.
        scale: integer factor per spatial axis.
        patch_size: tile size in LR pixels (int or per axis).
        halo: LR pixels of context around each tile; defaults to ``model.receptive_radius``.
            With ``halo >= receptive radius`` the result equals whole-image inference.
        batch_size: tiles per forward pass.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        amp: mixed precision (float16 autocast) on CUDA; ignored on CPU.
        progress: show a progress bar (``None`` = only when attached to a terminal).
        stream: run EDSR networks column by column with no halo recomputation
            (:class:`~geo_med_sr.networks.streaming.StreamedEDSR`); other models use tiles.
        column_size: largest in-plane size (LR pixels) of a streamed column (axes are cut into
            near-equal columns); a column runs the whole image along the last axis in chunks
            of about ``chunk_mb`` of features.
        chunk_mb: size target of the largest feature buffer of a streamed chunk.
    """

    def __init__(
        self,
        model: Upsampler,
        scale: int | Sequence[int],
        patch_size: int | Sequence[int] = 64,
        halo: int | Sequence[int] | None = None,
        batch_size: int = 4,
        device: str | torch.device = "auto",
        amp: bool = False,
        progress: bool | None = None,
        stream: bool = True,
        column_size: int = 256,
        chunk_mb: float = 32.0,
    ) -> None:
        self.model = model
        self.scale_arg = scale
        self.patch_size = patch_size
        self.halo = model.receptive_radius if halo is None else halo
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.progress = progress
        if column_size < 1 or chunk_mb <= 0:
            raise ConfigError(f"column_size must be >= 1 and chunk_mb > 0, got {column_size} and {chunk_mb}")
        self.column_size, self.chunk_mb = int(column_size), float(chunk_mb)
        if isinstance(model, torch.nn.Module):
            model.to(self.device).eval()
        #: networks (modules with parameters) run in their parameters' dtype; classical upsamplers in the data's
        self.model_dtype = _parameter_dtype(model)
        self.streamed = StreamedEDSR(model) if stream and StreamedEDSR.supports(model) else None

    def _scale(self, ndim: int) -> tuple[int, ...]:
        return as_scale(self.scale_arg, ndim)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Output spatial shape for an LR spatial ``shape``."""
        return scaled_shape(shape, self._scale(len(shape)))

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """A NumPy batch on the engine's device (through pinned memory, without blocking, on CUDA)."""
        x = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def _per_channel(self, channels: int) -> bool:
        """True when a one-channel model runs a multi-channel image channel by channel (through the batch)."""
        return self.model.in_channels == 1 and channels > 1

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on ``(B, C, *P)``; channels go through the batch for 1-channel models."""
        b, c = x.shape[:2]
        dtype = x.dtype
        per_channel = self._per_channel(c)
        if per_channel:
            x = x.reshape(b * c, 1, *x.shape[2:])
        if self.model_dtype is not None:
            x = x.to(self.model_dtype)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            y = self.model(x)
        y = y.to(dtype)
        if per_channel:
            y = y.reshape(b, c * y.shape[1], *y.shape[2:])
        return y

    def run(self, source: Source, sink: Sink, radiometry: Radiometry | None = None, *, threads: bool = True) -> None:
        """Super-resolve ``source`` (``(C, *S)``) into ``sink`` (``(C_out, *S*scale)``).

        Streamable networks (EDSR, 2D/3D) run column by column (:meth:`_run_columns`); other
        models tile by tile (:meth:`_run_tiles`). Both equal whole-image inference on the
        image mirror-padded by the halo, and both keep memory independent of the image size.

        Args:
            source: LR image; ``source.read_valid(window)`` gives the valid mask (or None).
            sink: HR output.
            radiometry: value transforms before/after the network (normalise, fill nodata,
                inverse, re-mask, cast); its ``fill_radius`` is added to the halo.
            threads: overlap reading and writing with compute (False runs everything inline).
        """
        spatial = tuple(source.shape[1:])
        extra = radiometry.fill_radius if radiometry is not None else 0
        halo = (self.halo,) * len(spatial) if np.isscalar(self.halo) else tuple(self.halo)
        halo = tuple(int(h) + extra for h in halo)
        with reuse_freed_memory(self.device.type == "cpu"):
            if self.streamed is not None and len(spatial) >= 2 and min(halo) - extra >= self.streamed.receptive_radius:
                self._run_columns(source, sink, radiometry, halo, extra, threads)
            else:
                self._run_tiles(source, sink, radiometry, halo, threads)

    def _run_tiles(
        self, source: Source, sink: Sink, radiometry: Radiometry | None, halo: tuple[int, ...], threads: bool
    ) -> None:
        """Tile by tile.

        Tiles are read (with their halo, mirror-reflected at the borders) by a background
        reader, run in batches, and each tile's owned output goes to ``sink`` from a
        background writer as soon as it is computed; at most a few batches are in flight, so
        memory depends on ``patch_size`` and ``batch_size``, not on the image size.
        """
        spatial = tuple(source.shape[1:])
        scale = self._scale(len(spatial))
        grid = PatchGrid.create(spatial, self.patch_size, halo)

        def load(batch: list[Patch]) -> tuple[list[Patch], np.ndarray, list[np.ndarray | None]]:
            inputs, masks = [], []
            for p in batch:
                raw = read_reflected(source, p.read)
                valid = read_reflected_mask(source, p.read)
                inputs.append(radiometry.before(raw, valid) if radiometry else _as_compute(raw))
                masks.append(None if valid is None else valid[(Ellipsis, *p.owned.relative_to(p.read).toslices())])
            return batch, np.stack(inputs), masks

        def store(item: tuple[list[Patch], np.ndarray, list[np.ndarray | None]]) -> None:
            batch, y, masks = item
            for patch, out, owned_valid in zip(batch, y, masks):
                window = out[patch.owned.relative_to(patch.read).scaled(scale).channel_slices()]
                if radiometry is not None:
                    window = radiometry.after(
                        window, None if owned_valid is None else upsample_mask(owned_valid, scale)
                    )
                sink.write(patch.owned.scaled(scale), window)

        bar = tqdm(
            total=len(grid),
            desc="super-resolving",
            unit="patch",
            disable=None if self.progress is None else not self.progress,
            leave=False,
        )
        loaded = prefetch(map(load, _batches(grid, self.batch_size)), depth=2 if threads else 0)
        try:
            with BackgroundWorker(store, depth=2 if threads else 0) as writer:
                for batch, x, masks in loaded:
                    y = self._forward(self._to_device(x)).cpu().numpy()
                    writer.submit((batch, y, masks))
                    bar.update(len(batch))
        finally:
            loaded.close()
            bar.close()

    def _chunk_planes(self, batch: int, inplane: Sequence[int], length: int) -> tuple[int, int]:
        """LR planes per streamed chunk, and per pass through the upsampler: the widest feature
        buffer (LR features, or the sub-pixel convolution's ``features * prod(scale)``) near
        ``chunk_mb``."""
        net = self.streamed.net
        per_plane = batch * net.features * int(np.prod(inplane)) * 4
        budget = self.chunk_mb * 2**20
        planes = int(min(max(budget // per_plane, 4), length))
        hr_planes = int(max(budget // (per_plane * int(np.prod(net.scale))), 1))
        return planes, hr_planes

    def _columns(self, inplane: Sequence[int], halo: Sequence[int]) -> PatchGrid:
        """Columns of at most ``column_size``, balanced so that they barely overlap: an axis of
        ``n`` pixels is cut into ``ceil(n / column_size)`` near-equal parts."""
        sizes = [-(-n // -(-n // self.column_size)) for n in inplane]
        return PatchGrid.create(inplane, sizes, halo)

    def _run_columns(
        self,
        source: Source,
        sink: Sink,
        radiometry: Radiometry | None,
        halo: tuple[int, ...],
        extra: int,
        threads: bool,
    ) -> None:
        """Column by column: tiles of ``column_size`` in the first axes, the whole last axis.

        A background reader reads each batch of columns in chunks of planes along the last axis
        (mirror-reflected by the halo at both ends; ``extra`` more planes of context for the
        nodata fill, dropped after it), :class:`StreamedEDSR` turns them into finished HR
        planes, and a background writer stores each owned window as soon as it is done.
        """
        spatial = tuple(source.shape[1:])
        scale = self._scale(len(spatial))
        n, h = spatial[-1], halo[-1] - extra
        grid = self._columns(spatial[:-1], halo[:-1])
        columns = list(grid)
        per_channel = self._per_channel(source.shape[0])
        width = source.shape[0] if per_channel else 1
        planes, hr_planes = self._chunk_planes(min(self.batch_size, len(columns)) * width, grid.read_shape, n + 2 * h)
        starts = list(range(-h, n + h, planes))
        batches = list(_batches(columns, self.batch_size))

        def load(item: tuple[int, int]) -> tuple[int, int, np.ndarray, list[np.ndarray | None]]:
            b, a = item
            stop = min(a + planes, n + h)
            inputs, masks = [], []
            for col in batches[b]:
                window = Window((*col.read, (a - extra, stop + extra)))
                raw = read_reflected(source, window)
                valid = read_reflected_mask(source, window)
                x = radiometry.before(raw, valid) if radiometry else raw
                inputs.append(x[..., extra : x.shape[-1] - extra].astype(np.float32, copy=False))  # a network's input
                owned = col.owned.relative_to(col.read).toslices()
                masks.append(
                    None if valid is None else valid[(Ellipsis, *owned, slice(extra, valid.shape[-1] - extra))]
                )
            return b, a, np.stack(inputs), masks

        bar = tqdm(
            total=len(batches) * len(starts),
            desc="super-resolving",
            unit="chunk",
            disable=None if self.progress is None else not self.progress,
            leave=False,
        )
        loaded = prefetch(map(load, ((b, a) for b in range(len(batches)) for a in starts)), depth=2 if threads else 0)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        try:
            store = _ColumnWriter(sink, radiometry, scale, n * scale[-1])
            with BackgroundWorker(store, depth=2 if threads else 0) as writer, torch.inference_mode(), autocast:
                column, kept = None, []
                for b, a, x, masks in loaded:
                    if a == starts[0]:
                        column, kept = self.streamed.start(grid.halo, hr_planes), []
                    x = self._to_device(x)
                    if per_channel:
                        x = x.reshape(-1, 1, *x.shape[2:])
                    kept.append((a, masks))
                    for chunk in column.feed(x, a):
                        y = chunk.data.float()
                        if per_channel:
                            y = y.reshape(len(batches[b]), -1, *y.shape[2:])
                        f = scale[-1]
                        first, last = max(chunk.start, 0) // f, -(-min(chunk.start + y.shape[-1], n * f) // f)
                        if last <= first:
                            continue
                        kept = [(s0, m) for s0, m in kept if s0 + planes > first]
                        writer.submit(
                            (batches[b], first, y.cpu().numpy(), chunk.start, _mask_planes(kept, first, last))
                        )
                    if a == starts[-1]:
                        writer.submit(None)  # the column batch is done: write what is buffered
                    bar.update(1)
        finally:
            loaded.close()
            bar.close()

    def output_channels(self, in_channels: int) -> int:
        """Channels of the output for ``in_channels`` input channels."""
        out_channels = self.model.out_channels
        if out_channels is None or self.model.in_channels == 1:
            return in_channels * (out_channels or 1)
        return int(out_channels)

    def __call__(
        self, array: np.ndarray, valid: np.ndarray | None = None, radiometry: Radiometry | None = None
    ) -> np.ndarray:
        """Super-resolve an in-memory ``(C, *S)`` array (optional ``S`` valid mask).

        Returns:
            ``(C_out, *S*scale)`` array: float32, or ``radiometry.out_dtype`` when set.
        """
        dtype = np.float32 if radiometry is None or radiometry.out_dtype is None else radiometry.out_dtype
        sink = ArraySink((self.output_channels(array.shape[0]), *self.output_shape(array.shape[1:])), dtype=dtype)
        self.run(ArraySource(array, valid), sink, radiometry)
        return sink.array
