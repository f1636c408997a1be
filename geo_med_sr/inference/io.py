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
    """A Source over an in-memory ``(C, *S)`` array (no copy)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = tuple(array.shape)

    def read(self, box: Box) -> np.ndarray:
        return self.array[(slice(None),) + tuple(slice(a, b) for a, b in box)]


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
