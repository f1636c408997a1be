"""PatchGrid: pure index maths for tiling an image in LR pixels with a halo.

A grid covers a spatial shape ``S`` with tiles of ``patch_size`` (LR pixels). Every tile has
the same size (the last tile along an axis is moved back to end at the border rather than
shrunk), so tiles can be batched; a *clipped* grid shrinks the last tile instead, so that every
tile starts on a multiple of ``patch_size`` (block-aligned windows of a file). Each LR pixel is
*owned* by exactly one tile; a tile reads its box grown by ``halo`` on every side
(reflect-padded where it leaves the image) and writes only the output of the pixels it owns.
With ``halo`` at least the model's receptive radius the stitched output equals the whole-image
output.
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


def _axis_tiles(n: int, p: int, clip: bool = False) -> list[tuple[int, int, int, int]]:
    """``(tile_start, tile_stop, owned_start, owned_stop)`` covering ``[0, n)`` with tiles of size
    ``min(p, n)`` (the last one moved back to end at ``n``), or, with ``clip``, tiles starting at
    multiples of ``p`` (the last one shrunk to end at ``n``; tile and owned box are the same)."""
    p = min(p, n)
    if clip:
        return [(s, min(s + p, n), s, min(s + p, n)) for s in range(0, n, p)]
    starts = list(range(0, n - p + 1, p))
    out = [(s, s + p, s, s + p) for s in starts]
    if starts[-1] + p < n:
        out.append((n - p, n, starts[-1] + p, n))
    return out


@dataclass(frozen=True)
class PatchGrid:
    """Tiles covering ``shape`` (LR pixels, index order).

    Args:
        shape: spatial shape ``S`` of the LR image.
        patch_size: tile size per axis (an int for all axes); clipped to ``shape``.
        halo: context read on each side of a tile, per axis or one int.
        clip: shrink the last tile of an axis instead of moving it back (tiles of unequal size,
            each starting at a multiple of ``patch_size``).
        raster_order: iterate with the last axis outermost (a raster's rows of tiles one after
            the other); by default the first axis is outermost.
    """

    shape: tuple[int, ...]
    patch_size: tuple[int, ...]
    halo: tuple[int, ...]
    clip: bool = False
    raster_order: bool = False

    @classmethod
    def create(
        cls,
        shape: Sequence[int],
        patch_size: int | Sequence[int],
        halo: int | Sequence[int],
        *,
        clip: bool = False,
        raster_order: bool = False,
    ) -> PatchGrid:
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
        shape = tuple(int(v) for v in shape)
        return cls(shape, tuple(min(p, s) for p, s in zip(ps, shape)), hs, bool(clip), bool(raster_order))

    def _per_axis(self) -> list[list[tuple[int, int, int, int]]]:
        return [_axis_tiles(n, p, self.clip) for n, p in zip(self.shape, self.patch_size)]

    def __len__(self) -> int:
        return int(np.prod([len(tiles) for tiles in self._per_axis()]))

    def __iter__(self) -> Iterator[Patch]:
        per_axis = self._per_axis()
        if self.raster_order:
            combos = (combo[::-1] for combo in itertools.product(*per_axis[::-1]))
        else:
            combos = itertools.product(*per_axis)
        for combo in combos:
            tile = Window((t0, t1) for t0, t1, _, _ in combo)
            owned = Window((a, b) for _, _, a, b in combo)
            yield Patch(tile=tile, owned=owned, read=tile.grown(self.halo))

    @property
    def read_shape(self) -> tuple[int, ...]:
        """Shape of every patch as read: ``patch_size + 2*halo`` (of the largest in a clipped grid)."""
        return tuple(p + 2 * h for p, h in zip(self.patch_size, self.halo))
