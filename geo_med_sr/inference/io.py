"""Sources and sinks: where the engine reads LR windows and writes HR windows.

The engine never needs a whole image: it asks a :class:`Source` for boxes (in-bounds, index
order) and hands finished output boxes to a :class:`Sink`. In-memory arrays are the simplest
case; file-backed windows (e.g. GeoTIFF) implement the same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .grid import reflect_indices

Box = tuple[tuple[int, int], ...]


class Source(Protocol):
    """Read access to a ``(C, *S)`` image by boxes."""

    shape: tuple[int, ...]

    def read(self, box: Box) -> np.ndarray:
        """Values ``(C, *box_shape)`` of an in-bounds box."""


class Sink(Protocol):
    """Write access to a ``(C, *S_out)`` image by boxes."""

    def write(self, box: Box, data: np.ndarray) -> None:
        """Store ``data`` of shape ``(C, *box_shape)`` at ``box`` (output pixels)."""


class ArraySource:
    """A Source over an in-memory ``(C, *S)`` array (no copy) and its optional ``S`` valid mask."""

    def __init__(self, array: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.array = array
        self.valid = valid
        self.shape = tuple(array.shape)

    def read(self, box: Box) -> np.ndarray:
        return self.array[(slice(None),) + tuple(slice(a, b) for a, b in box)]

    def read_valid(self, box: Box) -> np.ndarray | None:
        """``S``-shaped valid mask of ``box``, or None when every pixel is valid."""
        return None if self.valid is None else self.valid[tuple(slice(a, b) for a, b in box)]


class ArraySink:
    """A Sink that fills an in-memory ``(C, *S_out)`` float32 array."""

    def __init__(self, shape: Sequence[int], dtype: np.dtype | str = np.float32) -> None:
        self.array = np.zeros(tuple(shape), dtype=dtype)

    def write(self, box: Box, data: np.ndarray) -> None:
        self.array[(slice(None),) + tuple(slice(a, b) for a, b in box)] = data


def read_reflected(source: Source, box: Box) -> np.ndarray:
    """Read ``box`` (may extend outside the image) with mirror-reflect padding.

    Only the in-bounds bounding box of the needed pixels is read from ``source``.

    Returns:
        ``(C, *box_shape)`` array equal to ``numpy.pad(image, mode="reflect")`` cropped to ``box``.
    """
    spatial = source.shape[1:]
    indices = [reflect_indices(a, b, n) for (a, b), n in zip(box, spatial)]
    inner = tuple((int(ix.min()), int(ix.max()) + 1) for ix in indices)
    block = source.read(inner)
    if all(a == lo and b == hi for (a, b), (lo, hi) in zip(box, inner)):
        return block
    local = [ix - lo for ix, (lo, _) in zip(indices, inner)]
    return block[(slice(None),) + np.ix_(*local)]


def read_reflected_mask(read_valid, box: Box, spatial: Sequence[int]) -> np.ndarray | None:
    """The valid mask of ``box`` (may extend outside the image), mirror-reflected like the values.

    Args:
        read_valid: ``read_valid(in_bounds_box) -> S-shaped bool array or None (all valid)``.
        box: ``(start, stop)`` per axis.
        spatial: the image's spatial shape.
    """
    indices = [reflect_indices(a, b, n) for (a, b), n in zip(box, spatial)]
    inner = tuple((int(ix.min()), int(ix.max()) + 1) for ix in indices)
    block = read_valid(inner)
    if block is None:
        return None
    local = [ix - lo for ix, (lo, _) in zip(indices, inner)]
    return block[np.ix_(*local)]
