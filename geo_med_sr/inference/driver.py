"""The window driver: the one walk over output windows that both tools use (upscale and sharpen).

A tool hands the driver a per-window *compute* (:class:`WindowCompute`); the driver owns the rest:

* the walk (:meth:`WindowDriver.walk`): tiles of a :class:`~.grid.PatchGrid` on the input grid,
  each read grown by the halo (the method's receptive radius), mirror-reflected outside the
  image; or, for streamed networks, columns along the last axis (:mod:`.columns`, which walks
  its in-plane columns through the same :meth:`~WindowDriver.walk`);
* the input :class:`~.protocols.Source` and any number of **guide** Sources on the output grid
  (``scale`` times finer per axis, 2D or 3D), each read on the output window of the tile's read
  box (``read.scaled(scale)``: the output window grown by the halo), mirror-reflected like the
  input, so that a guided compute sees its guides exactly where its output goes;
* a background reader (prefetch) and writer thread, progress, autocast (AMP) and
  ``torch.inference_mode`` around the compute;
* the crop of each result to the pixels the tile owns, the cast to the output dtype and the
  nodata re-marking (:class:`~.protocols.OutputSpec`), and the writes to the Sink.

The result does not depend on the tiling whenever the halo covers the compute's receptive
radius: every output pixel is computed from the same reflected neighbourhood.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from geo_med_sr.errors import ConfigError, InputError, ModelError
from geo_med_sr.inference.arrays import read_reflected, read_reflected_mask
from geo_med_sr.inference.grid import Patch, PatchGrid
from geo_med_sr.inference.protocols import OutputSpec, Sink, Source, Window
from geo_med_sr.inference.threads import BackgroundWorker, prefetch
from geo_med_sr.spatial import upsample_mask

if TYPE_CHECKING:  # torch is imported only when a compute runs a torch model (``device`` given)
    import torch

__all__ = ["Progress", "WindowCompute", "WindowDriver", "WindowInputs", "batches"]

#: a progress bar (True / False / None = only on a terminal) or a ``(done, total)`` callback.
Progress = bool | None | Callable[[int, int], None]


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class WindowInputs:
    """What the driver read for one tile (input pixels ``P = patch.read.shape``, output ``Q = P*scale``).

    Attributes:
        patch: the tile, the part it owns and the box read (input pixels; the read box may
            extend outside the image: mirror-reflected).
        scale: output pixels per input pixel, per axis.
        values: raw input values ``(C, *P)`` (the source's dtype), or None without an input source.
        valid: input validity ``P`` (or ``(C, *P)`` per band), None when every pixel is valid.
        guides: per guide source, its values ``(C_g, *Q)`` on :attr:`output_read`.
        guide_valid: per guide source, its validity (``Q`` or ``(C_g, *Q)``) or None.
    """

    patch: Patch
    scale: tuple[int, ...]
    values: np.ndarray | None
    valid: np.ndarray | None
    guides: list[np.ndarray]
    guide_valid: list[np.ndarray | None]

    @property
    def output_read(self) -> Window:
        """The read box in output pixels: the owned output window grown by the halo (times ``scale``)."""
        return self.patch.read.scaled(self.scale)

    @property
    def output_owned(self) -> Window:
        """The output pixels this tile writes."""
        return self.patch.owned.scaled(self.scale)

    def crop(self, array: np.ndarray) -> np.ndarray:
        """The owned part ``(C, *owned)`` of an array ``(C, *Q)`` on :attr:`output_read` (a view)."""
        owned = self.output_owned.relative_to(self.output_read)
        index: tuple[EllipsisType | slice, ...] = (Ellipsis, *owned.toslices())
        return array[index]

    def owned_valid(self) -> np.ndarray | None:
        """The input validity of the owned input pixels (None when every pixel is valid)."""
        if self.valid is None:
            return None
        index: tuple[EllipsisType | slice, ...] = (Ellipsis, *self.patch.owned.relative_to(self.patch.read).toslices())
        return self.valid[index]


class WindowCompute(Protocol):
    """What a tool hands the driver: the work on a batch of windows.

    * ``prepare(windows)`` runs in the reader thread: per-window preparation and any other I/O
      (e.g. normalise and fill nodata, stack a batch; read the bands a guide does not cover).
    * ``__call__(prepared)`` runs in the main thread (under ``torch.inference_mode`` and the
      driver's autocast when the driver has a ``device``): the model. It returns, per window,
      ``(values, valid)``: ``values`` ``(C_out, *Q)`` on :attr:`WindowInputs.output_read` (the
      driver crops the owned part) or ``(C_out, *owned)`` already cropped (told apart by shape:
      the owned box lies inside the read box, so equal shapes are the same box); ``valid`` on the
      same box (``(C_out, ...)`` or per pixel), or None to take the input's validity,
      nearest-upsampled.
    * ``finish(values)`` runs in the writer thread on the owned values before the cast (e.g. the
      normaliser's inverse).
    """

    def prepare(self, windows: list[WindowInputs]) -> Any: ...

    def __call__(self, prepared: Any) -> Sequence[tuple[np.ndarray, np.ndarray | None]]: ...

    def finish(self, values: np.ndarray) -> np.ndarray: ...


class ProgressBar:
    """Progress of a walk: a tqdm bar, or the caller's ``(done, total)`` callback."""

    def __init__(self, progress: Progress, total: int, desc: str, unit: str) -> None:
        self.done, self.total = 0, total
        self.callback = progress if callable(progress) else None
        self.bar: tqdm | None = None
        if self.callback is None:
            disable = None if progress is None else not progress
            self.bar = tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, self.total)
        elif self.bar is not None:  # always there without a callback
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _per_axis(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    """``value`` on each of ``n`` axes: a scalar repeated, or one entry per axis."""
    if isinstance(value, Iterable):
        return tuple(int(v) for v in value)
    return (int(value),) * n


def _aligned(patch_size: tuple[int, ...], scale: tuple[int, ...], sink: Sink) -> tuple[int, ...]:
    """``patch_size`` rounded up so that a tile covers whole blocks of ``sink`` (its largest block
    side, in output pixels) and at least one."""
    block = int(max(sink.block)) if sink.block else 1
    out = []
    for p, s in zip(patch_size, scale):
        step = block // math.gcd(block, s)  # input pixels that make whole blocks of output
        out.append(max(step, -(-p // step) * step))
    return tuple(out)


class WindowDriver:
    """Walks the output of a tool window by window: read, compute, cast, write.

    Args:
        scale: output pixels per input pixel, per axis (1 when the windows are on the output grid).
        patch_size: tile size in input pixels (int or per axis).
        halo: input pixels of context read around each tile (int or per axis): at least the
            compute's receptive radius for a tile-invariant result.
        batch_size: tiles per compute call.
        aligned: block-aligned output windows: tiles start at multiples of the patch size
            (rounded up to whole blocks of the sink), the last one shrunk at the border, walked
            row of tiles after row; by default tiles all have the same size (the last one moved
            back), so that they can be batched.
        threads: overlap reading and writing with the compute (False runs everything inline).
        progress: a progress bar (None = only on a terminal), or a ``(done, total)`` callback.
        desc, unit: the progress bar's label and unit.
        device: the torch device of the model the compute runs: the driver wraps every compute
            call in ``torch.inference_mode`` and its autocast; None when the compute runs no
            torch model itself (then the driver does not import torch).
        amp: float16 autocast on CUDA around the compute (ignored on CPU).
    """

    def __init__(
        self,
        scale: Sequence[int],
        patch_size: int | Sequence[int],
        halo: int | Sequence[int],
        *,
        batch_size: int = 1,
        aligned: bool = False,
        threads: bool = True,
        progress: Progress = None,
        desc: str = "processing",
        unit: str = "window",
        device: torch.device | None = None,
        amp: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.scale = tuple(int(s) for s in scale)
        n = len(self.scale)
        self.patch_size = _per_axis(patch_size, n)
        self.halo = _per_axis(halo, n)
        self.batch_size = int(batch_size)
        self.aligned = bool(aligned)
        self.threads = bool(threads)
        self.progress = progress
        self.desc, self.unit = desc, unit
        self.device = device
        self.amp = bool(amp) and device is not None and device.type == "cuda"

    @property
    def depth(self) -> int:
        """Queue depth of the reader and writer threads (0: inline)."""
        return 2 if self.threads else 0

    @contextlib.contextmanager
    def compute_context(self) -> Iterator[None]:
        """``torch.inference_mode`` with the driver's autocast (AMP) around every compute call, when
        the compute runs a torch model on ``device``; nothing otherwise."""
        if self.device is None:
            yield
            return
        import torch

        from geo_med_sr.inference.device import autocast

        with torch.inference_mode(), autocast(self.device, self.amp):
            yield

    def walk(
        self,
        shape: Sequence[int],
        patch_size: Sequence[int] | None = None,
        halo: Sequence[int] | None = None,
        sink: Sink | None = None,
    ) -> PatchGrid:
        """The windows of an image of input ``shape`` (the one window walk of both tools).

        Args:
            shape: input spatial shape (or, for streamed columns, its in-plane axes).
            patch_size, halo: override the driver's (streamed columns).
            sink: the sink, whose blocks the tiles are rounded to when ``aligned``.
        """
        patch = self.patch_size if patch_size is None else tuple(patch_size)
        halo = self.halo if halo is None else tuple(halo)
        if self.aligned and sink is not None:
            patch = _aligned(patch, self.scale, sink)
        return PatchGrid.create(shape, patch, halo, clip=self.aligned, raster_order=self.aligned)

    def run(
        self,
        compute: WindowCompute,
        sink: Sink,
        spec: OutputSpec,
        *,
        source: Source | None = None,
        guides: Sequence[Source] = (),
        shape: Sequence[int] | None = None,
    ) -> None:
        """Run ``compute`` on every tile and write the owned output to ``sink``.

        Args:
            compute: the per-window work.
            sink: the output ``(C_out, *S*scale)``.
            spec: the output windows' dtype and nodata.
            source: the input ``(C, *S)`` (values and validity read per tile), or None when the
                compute reads its inputs itself (then give ``shape``).
            guides: Sources on the output grid ``(C_g, *S*scale)``, read alongside the input.
            shape: the input spatial shape ``S`` when there is no ``source``.

        Raises:
            InputError: a guide that is not on the output grid.
            ConfigError: neither ``source`` nor ``shape``.
        """
        if source is not None:
            spatial = tuple(int(n) for n in source.shape[1:])
        elif shape is not None:
            spatial = tuple(int(n) for n in shape)
        else:
            raise ConfigError("the window driver needs an input source or the shape of the input grid")
        output = tuple(n * s for n, s in zip(spatial, self.scale))
        for k, guide in enumerate(guides):
            if tuple(guide.shape[1:]) != output:
                raise InputError(
                    f"guide {k} has shape {tuple(guide.shape[1:])}, not the output grid's {output}; "
                    "resample it onto the output grid first"
                )
        grid = self.walk(spatial, sink=sink)

        def load(batch: list[Patch]) -> tuple[list[WindowInputs], Any]:
            windows = [self._read(patch, source, guides) for patch in batch]
            prepared = compute.prepare(windows)
            # the writer needs each window's geometry and input validity, not its guides: let the
            # raw guide reads go now rather than hold them beside the compute's own copies
            return [replace(w, guides=[], guide_valid=[]) for w in windows], prepared

        def store(item: tuple[list[WindowInputs], Sequence[tuple[np.ndarray, np.ndarray | None]]]) -> None:
            for window, (values, valid) in zip(*item):
                self._write(sink, spec, compute, window, values, valid)

        bar = ProgressBar(self.progress, len(grid), self.desc, self.unit)
        loaded = prefetch(map(load, batches(grid, self.batch_size)), depth=self.depth)
        try:
            with BackgroundWorker(store, depth=self.depth) as writer:
                for windows, prepared in loaded:
                    with self.compute_context():
                        results = compute(prepared)
                    del prepared  # the inputs go before the next window is read
                    done = len(windows)
                    writer.submit((windows, results))
                    # nor does this window's output stay alive while the next one is computed
                    del windows, results
                    bar.update(done)
        finally:
            loaded.close()
            bar.close()

    def _read(self, patch: Patch, source: Source | None, guides: Sequence[Source]) -> WindowInputs:
        """The input (mirror-reflected) on ``patch.read`` and every guide on its output box."""
        values = valid = None
        if source is not None:
            values = read_reflected(source, patch.read)
            valid = read_reflected_mask(source, patch.read)
        box = patch.read.scaled(self.scale)
        return WindowInputs(
            patch,
            self.scale,
            values,
            valid,
            [read_reflected(g, box) for g in guides],
            [read_reflected_mask(g, box) for g in guides],
        )

    def _write(
        self,
        sink: Sink,
        spec: OutputSpec,
        compute: WindowCompute,
        window: WindowInputs,
        values: np.ndarray,
        valid: np.ndarray | None,
    ) -> None:
        """Crop ``values`` to the owned output window, finish, cast, re-mark nodata and write."""
        owned = window.output_owned
        if tuple(values.shape[1:]) == window.output_read.shape:
            values = window.crop(values)
            valid = None if valid is None else window.crop(valid)
        elif tuple(values.shape[1:]) != owned.shape:
            raise ModelError(
                f"the compute returned {tuple(values.shape[1:])} pixels for a window of "
                f"{window.output_read.shape} (owned {owned.shape})"
            )
        if valid is None and spec.dtype is not None:
            lr_valid = window.owned_valid()
            valid = None if lr_valid is None else upsample_mask(lr_valid, self.scale)
        sink.write(owned, spec.cast(compute.finish(values), valid))
