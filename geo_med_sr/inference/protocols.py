"""The contracts between the engine, the adapters and the upsamplers (no torch, no I/O here).

* :class:`Window`: a box of pixels, one ``(start, stop)`` range per spatial axis (index order).
* :class:`Source` / :class:`Sink`: what the engine reads LR windows from and writes HR windows
  to; :class:`ImageSource` / :class:`ImageSink` add the grid and metadata of an opened file
  (what every adapter's ``open_source`` / ``open_sink`` returns, windowed or in memory).
* :class:`Upsampler`: what the engine runs: ``(B, C, *P) -> (B, C', *P*scale)`` with a finite
  receptive radius (networks, classical interpolators, ensembles, back-projection).
* :class:`GuidedMethod`: what guided sharpening runs on a window of the output grid (the coarse
  bands sampled there and the guides, :class:`GuidedInputs`) with a finite receptive radius.
* :class:`OutputSpec`: the storage of the output windows (dtype and nodata): the window driver's
  last step before the sink.

The protocols are structural (:class:`typing.Protocol`): a class satisfies one by having the
attributes, without inheriting from it; they are checked by the type checker and by the tests
of each implementation, never probed with ``getattr`` at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from geo_med_sr.dtypes import cast_to_dtype, mark_nodata

if TYPE_CHECKING:  # annotations only: this module never imports torch
    import torch

__all__ = [
    "GuidedInputs",
    "GuidedMethod",
    "ImageSink",
    "ImageSource",
    "OutputSpec",
    "Sink",
    "Source",
    "Upsampler",
    "Window",
]


class Window(tuple):
    """A box of pixels: one half-open ``(start, stop)`` range per spatial axis, in index order.

    rasterio's :class:`rasterio.windows.Window` holds ``col_off, row_off, width, height`` of a
    2D raster; this is the same idea for any number of axes, in the package's index order
    (``((col_start, col_stop), (row_start, row_stop))`` for a raster). A Window *is* a tuple of
    pairs, so a plain ``((0, 4), (0, 5))`` can be passed wherever a Window is expected and
    compares equal to it; ``Window(box)`` normalises the bounds to ints. Ranges may extend
    outside an image (a read grown by its halo, mirror-padded by the engine).

    Args:
        ranges: ``(start, stop)`` per axis.

    Raises:
        ValueError: a range that is not a pair of integers.
    """

    __slots__ = ()

    def __new__(cls, ranges: Iterable[Sequence[int]]) -> Window:
        pairs = []
        for pair in ranges:
            start, stop = pair
            pairs.append((int(start), int(stop)))
        return super().__new__(cls, pairs)

    @classmethod
    def from_shape(cls, shape: Sequence[int]) -> Window:
        """The whole of an image of spatial ``shape``: ``((0, n0), (0, n1), ...)``."""
        return cls((0, int(n)) for n in shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Pixels per axis (``stop - start``)."""
        return tuple(b - a for a, b in self)

    def toslices(self) -> tuple[slice, ...]:
        """One ``slice(start, stop)`` per axis (index an ``S``-shaped array with it)."""
        return tuple(slice(a, b) for a, b in self)

    def channel_slices(self) -> tuple[slice, ...]:
        """:meth:`toslices` behind a full channel slice (index a ``(C, *S)`` array with it)."""
        return (slice(None), *self.toslices())

    def relative_to(self, outer: Sequence[Sequence[int]]) -> Window:
        """This window in the coordinates of ``outer`` (whose start becomes 0)."""
        return Window((a - o, b - o) for (a, b), (o, _) in zip(self, outer))

    def scaled(self, scale: Sequence[int]) -> Window:
        """The same pixels on a grid ``scale`` times finer per axis (an LR window's HR window)."""
        return Window((a * s, b * s) for (a, b), s in zip(self, scale))

    def grown(self, halo: Sequence[int]) -> Window:
        """Grown by ``halo`` pixels on both sides of each axis."""
        return Window((a - h, b + h) for (a, b), h in zip(self, halo))


class Source(Protocol):
    """Read access to a ``(C, *S)`` image window by window (what the engine needs)."""

    @property
    def shape(self) -> tuple[int, ...]:
        """``(C, *S)``."""
        ...

    def read(self, window: Window) -> np.ndarray:
        """Values ``(C, *window.shape)`` of an in-bounds window."""
        ...

    def read_valid(self, window: Window) -> np.ndarray | None:
        """``window.shape`` boolean mask of measured pixels, or None when all are valid."""
        ...

    def read_band_valid(self, window: Window) -> np.ndarray | None:
        """``(C, *window.shape)`` per-band validity (GDAL's per-band nodata), or None when validity
        is the same in every band (then :meth:`read_valid` says it all)."""
        ...


class Sink(Protocol):
    """Write access to a ``(C, *S_out)`` image window by window (what the engine needs)."""

    @property
    def block(self) -> tuple[int, ...]:
        """Pixels per axis that a write should cover whole (e.g. a GeoTIFF's tile size; 1 for
        memory); the engine buffers along the last axis to multiples of ``block[-1]``."""
        ...

    def write(self, window: Window, data: np.ndarray) -> None:
        """Store ``data`` of shape ``(C, *window.shape)`` at ``window`` (output pixels)."""
        ...


class ImageSource(Source, Protocol):
    """An opened input: a :class:`Source` that also knows its grid; a context manager.

    Attributes:
        affine: ``(n+1, n+1)`` centre-anchored index -> world affine (DESIGN §3).
        meta: JSON-able metadata the adapters need to write the result back.
        dtype: the input's storage dtype.
        may_have_invalid: whether :meth:`read_valid` can ever return a mask.
    """

    affine: np.ndarray
    meta: dict[str, Any]
    dtype: np.dtype
    may_have_invalid: bool

    def close(self) -> None: ...

    def __enter__(self) -> ImageSource: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object, /) -> None: ...


class ImageSink(Sink, Protocol):
    """An opened output: a :class:`Sink` that finishes the file on ``close``; a context manager.

    Attributes:
        dtype: the storage dtype the engine must cast windows to, or None when the sink takes
            float32 values and its writer casts them (in-memory sinks).
        nodata: value the engine writes at invalid pixels, or None.
    """

    dtype: np.dtype | None
    nodata: float | None

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> ImageSink: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object, /) -> None: ...


class Upsampler(Protocol):
    """A module the engine runs: ``(B, C_in, *P)`` float32 -> ``(B, C_out, *P*scale)``.

    Attributes:
        scale: integer factor per spatial axis (one entry for every axis when it applies to any
            number of axes, as classical interpolators do).
        spatial_dims: 2 or 3, or None when the module works on any number of axes.
        in_channels: channels it takes: None = any number (channel-wise), 1 = one (the engine
            runs a multi-channel image channel by channel through the batch).
        out_channels: channels per input channel group it returns (None = as many as it took).
        receptive_radius: LR pixels of context an output depends on (the engine's halo).
    """

    # read-only members: the engine never sets them, so an implementation may hold a narrower type
    # (``in_channels = 1``) or compute one (``BackProjection.receptive_radius`` is a property)

    @property
    def scale(self) -> tuple[int, ...]: ...

    @property
    def spatial_dims(self) -> int | None: ...

    @property
    def in_channels(self) -> int | None: ...

    @property
    def out_channels(self) -> int | None: ...

    @property
    def receptive_radius(self) -> int: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class GuidedInputs(Protocol):
    """The physical inputs of a :class:`GuidedMethod` on one window ``W`` of the output grid
    (``W`` = the output window grown by the method's receptive radius; all arrays float64).

    Attributes:
        up: the coarse target bands sampled at the output pixel centres ``(T, *W)``.
        guides: the guide bands, on the output grid ``(G, *W)``.
        between: bands coarser than the guides but finer than the targets, sampled like ``up``
            ``(I, *W)`` (``I`` may be 0).
        valid: per target band ``(T, *W)``: its pixel and every guide valid.
        detail: the guides' high-pass detail ``(G, *W)`` when the method asked for it, else None.
    """

    up: np.ndarray
    guides: np.ndarray
    between: np.ndarray
    valid: np.ndarray
    detail: np.ndarray | None


class GuidedMethod(Protocol):
    """A guided sharpening method: physical inputs on a window -> the sharpened targets there.

    Attributes:
        name: the method's registry name (``"bicubic"``, ``"glp"``...).
        receptive_radius: output pixels of context an output pixel depends on (the driver's
            halo: the method gets its window grown by it and the result is cropped back).
        needs_detail: the method reads :attr:`GuidedInputs.detail` (it must be computed).

    ``__call__(inputs)`` maps :class:`GuidedInputs` on ``W`` to the physical values ``(T, *W)``
    of the target bands.
    """

    name: str
    receptive_radius: int
    needs_detail: bool

    def __call__(self, inputs: GuidedInputs) -> np.ndarray: ...


@dataclass(frozen=True)
class OutputSpec:
    """How finished output windows are stored: the window driver's cast before the sink.

    Attributes:
        dtype: storage dtype of the written values, or None to write the values as computed
            (float, no cast and no nodata marking).
        nodata: value written at invalid pixels, or None.
    """

    dtype: np.dtype | None
    nodata: float | None = None

    def cast(self, values: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """``(C, *S)`` values -> stored ``dtype`` values (rounded, clipped), ``nodata`` where
        ``valid`` (``S`` or ``(C, *S)``, None = all valid) is False; a valid pixel whose value would
        equal ``nodata`` is moved one step away from it."""
        if self.dtype is None:
            return values
        out = cast_to_dtype(values, self.dtype)
        if valid is None:
            return out
        return mark_nodata(out, valid, self.nodata, copy=False)
