"""In-memory sources and sinks, and mirror-padded reads of any source.

The engine never needs a whole image: it asks a :class:`~.protocols.Source` for windows and
hands finished output windows to a :class:`~.protocols.Sink`. :class:`ArraySource` and
:class:`ArraySink` are the in-memory implementations (an image read whole, a result collected
whole); file-backed windows (GeoTIFF) implement the same protocols in the adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geo_med_sr.inference.protocols import Source, Window
from geo_med_sr.multires import reflect_indices
from geo_med_sr.spatial import SpatialArray

__all__ = ["ArraySink", "ArraySource", "read_reflected", "read_reflected_mask"]


class ArraySource:
    """An :class:`~.protocols.ImageSource` over an in-memory ``(C, *S)`` array (no copy).

    Args:
        array: ``(C, *S)`` values.
        valid: optional ``S``-shaped mask of measured pixels (None = all valid).
        affine: ``(n+1, n+1)`` centre-anchored affine (identity when not given).
        meta: the image's metadata (``meta["dtype"]`` is its storage dtype).
    """

    def __init__(
        self,
        array: np.ndarray,
        valid: np.ndarray | None = None,
        affine: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.array = array
        self.valid = valid
        self.shape = tuple(array.shape)
        self.affine = np.eye(array.ndim) if affine is None else np.asarray(affine, dtype=np.float64)
        self.meta = {} if meta is None else meta
        self.dtype = np.dtype(self.meta.get("dtype", array.dtype))
        self.may_have_invalid = valid is not None

    @classmethod
    def from_image(cls, image: SpatialArray) -> ArraySource:
        """The source of a :class:`~geo_med_sr.spatial.SpatialArray` (shares its array, mask and meta)."""
        return cls(image.array, image.valid, image.affine, image.meta)

    def read(self, window: Window) -> np.ndarray:
        return self.array[Window(window).channel_slices()]

    def read_valid(self, window: Window) -> np.ndarray | None:
        """``S``-shaped valid mask of ``window``, or None when every pixel is valid."""
        return None if self.valid is None else self.valid[Window(window).toslices()]

    def read_band_valid(self, window: Window) -> None:
        """None: an in-memory image has one validity for all its channels."""
        return None

    def close(self) -> None:
        """Nothing to release (the array stays with its owner)."""

    def __enter__(self) -> ArraySource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ArraySink:
    """A :class:`~.protocols.Sink` that fills an in-memory ``(C, *S_out)`` array.

    Args:
        shape: ``(C, *S_out)``.
        dtype: the array's dtype; None: an array of ``values`` dtype, and ``dtype`` None tells the
            engine to hand over float values without casting them (as :class:`~.protocols.ImageSink` says).
        values: the float dtype of that array when ``dtype`` is None (float32, or float64 for
            wide data: :func:`geo_med_sr.dtypes.compute_dtype`).
    """

    nodata = None

    def __init__(
        self, shape: Sequence[int], dtype: np.dtype | str | None = np.float32, values: np.dtype | str = np.float32
    ) -> None:
        self.array = np.zeros(tuple(shape), dtype=values if dtype is None else dtype)
        self.shape = tuple(self.array.shape)
        self.dtype = None if dtype is None else self.array.dtype
        self.block = (1,) * (len(self.shape) - 1)

    def write(self, window: Window, data: np.ndarray) -> None:
        self.array[Window(window).channel_slices()] = data


def _reflected(window: Sequence[Sequence[int]], spatial: Sequence[int]) -> tuple[Window, list[np.ndarray]]:
    """The in-bounds window covering the mirror images of ``window``, and the local indices into it."""
    indices = [reflect_indices(a, b, n) for (a, b), n in zip(window, spatial)]
    inner = Window((int(ix.min()), int(ix.max()) + 1) for ix in indices)
    return inner, [ix - lo for ix, (lo, _) in zip(indices, inner)]


def read_reflected(source: Source, window: Window) -> np.ndarray:
    """Read ``window`` (may extend outside the image) with mirror-reflect padding.

    Only the in-bounds bounding window of the needed pixels is read from ``source``.

    Returns:
        ``(C, *window.shape)`` array equal to ``numpy.pad(image, mode="reflect")`` cropped to ``window``.
    """
    inner, local = _reflected(window, source.shape[1:])
    block = source.read(inner)
    if inner == tuple(tuple(r) for r in window):
        return block
    return block[(slice(None),) + np.ix_(*local)]


def read_reflected_mask(source: Source, window: Window) -> np.ndarray | None:
    """The valid mask of ``window`` (may extend outside the image), mirror-reflected like the values.

    Returns:
        ``window.shape`` boolean array (one validity per pixel), ``(C, *window.shape)`` when the
        bands' validity differs there (per-band nodata), or None when every pixel is valid.
    """
    inner, local = _reflected(window, source.shape[1:])
    block = source.read_band_valid(inner)
    if block is not None and (block.shape[0] == 1 or bool((block == block[:1]).all())):
        block = block[0]
    if block is None:
        block = source.read_valid(inner)
    if block is None:
        return None
    return block[(Ellipsis, *np.ix_(*local))]
