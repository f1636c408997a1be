"""PatchGrid: pure index maths for tiling an image in LR pixels with a halo.

A grid covers a spatial shape ``S`` with tiles of ``patch_size`` (LR pixels). Every tile has
the same size (the last tile along an axis is moved back to end at the border rather than
shrunk), so tiles can be batched. Each LR pixel is *owned* by exactly one tile; a tile reads
its box grown by ``halo`` on every side (reflect-padded where it leaves the image) and writes
only the output of the pixels it owns. With ``halo`` at least the model's receptive radius the
stitched output equals the whole-image output.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from geo_med_sr.errors import ConfigError
from geo_med_sr.inference.protocols import Window


@dataclass(frozen=True)
class Patch:
    """One tile of a :class:`PatchGrid`; every box is ``(start, stop)`` per axis in LR pixels.

    Attributes:
        tile: the tile's box (all tiles have the same size).
        owned: the part of ``tile`` whose output this patch writes.
        read: ``tile`` grown by the halo; may extend outside the image (reflect padding).
    """

    tile: Window
    owned: Window
    read: Window


def _axis_tiles(n: int, p: int) -> list[tuple[int, int, int]]:
    """``(tile_start, owned_start, owned_stop)`` covering ``[0, n)`` with tiles of size ``min(p, n)``."""
    p = min(p, n)
    starts = list(range(0, n - p + 1, p))
    out = [(s, s, s + p) for s in starts]
    if starts[-1] + p < n:
        out.append((n - p, starts[-1] + p, n))
    return out


@dataclass(frozen=True)
class PatchGrid:
    """Tiles covering ``shape`` (LR pixels, index order).

    Args:
        shape: spatial shape ``S`` of the LR image.
        patch_size: tile size per axis (an int for all axes); clipped to ``shape``.
        halo: context read on each side of a tile, per axis or one int.
    """

    shape: tuple[int, ...]
    patch_size: tuple[int, ...]
    halo: tuple[int, ...]

    @classmethod
    def create(cls, shape: Sequence[int], patch_size: int | Sequence[int], halo: int | Sequence[int]) -> PatchGrid:
        """Validate arguments and broadcast ints to every axis."""
        n = len(shape)
        ps = (int(patch_size),) * n if np.isscalar(patch_size) else tuple(int(v) for v in patch_size)
        hs = (int(halo),) * n if np.isscalar(halo) else tuple(int(v) for v in halo)
        if len(ps) != n or len(hs) != n:
            raise ConfigError(f"patch_size {ps} and halo {hs} must have one value per spatial axis ({n})")
        if any(v < 1 for v in ps):
            raise ConfigError(f"patch_size must be at least 1 pixel per axis, got {ps}")
        if any(v < 0 for v in hs):
            raise ConfigError(f"halo must be non-negative, got {hs}")
        if any(v < 1 for v in shape):
            raise ConfigError(f"cannot tile an empty image of shape {tuple(shape)}")
        return cls(tuple(int(v) for v in shape), tuple(min(p, s) for p, s in zip(ps, shape)), hs)

    def __len__(self) -> int:
        return int(np.prod([len(_axis_tiles(n, p)) for n, p in zip(self.shape, self.patch_size)]))

    def __iter__(self) -> Iterator[Patch]:
        per_axis = [_axis_tiles(n, p) for n, p in zip(self.shape, self.patch_size)]
        for combo in itertools.product(*per_axis):
            tile = Window((t, t + p) for (t, _, _), p in zip(combo, self.patch_size))
            owned = Window((a, b) for _, a, b in combo)
            yield Patch(tile=tile, owned=owned, read=tile.grown(self.halo))

    @property
    def read_shape(self) -> tuple[int, ...]:
        """Shape of every patch as read: ``patch_size + 2*halo``."""
        return tuple(p + 2 * h for p, h in zip(self.patch_size, self.halo))
