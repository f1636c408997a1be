"""SpatialArray: a channel-first array that never travels without its geometry."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo_med_sr import geometry
from geo_med_sr.errors import InputError
from geo_med_sr.scale import as_scale


@dataclass(frozen=True)
class SpatialArray:
    """An image on a regular grid.

    Attributes:
        array: ``(C, *S)`` values, spatial axes in index order (fastest axis first).
        affine: ``(n+1, n+1)`` float64 map from the index of a voxel/pixel **centre** to world
            coordinates (RAS mm for medical images, CRS units for rasters), ``n = len(S)``.
        meta: JSON-able metadata the adapters need to write the image back (source format,
            on-disk dtype, header fields, DICOM template, ...). Never holds pixel data.
        valid: optional ``S``-shaped boolean mask of measured voxels (False = nodata/fill).
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        array = self.array
        if array.ndim < 2:
            raise InputError(
                f"SpatialArray needs a (C, *S) array with at least one spatial axis, got shape {array.shape}"
            )
        affine = np.asarray(self.affine, dtype=np.float64)
        n = array.ndim - 1
        if affine.shape != (n + 1, n + 1):
            raise InputError(
                f"affine of shape {affine.shape} does not match {n} spatial axes; expected {(n + 1, n + 1)}"
            )
        if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:n, :n])) < 1e-12:
            raise InputError(f"affine is singular or not finite: {affine.tolist()}")
        if self.valid is not None and self.valid.shape != array.shape[1:]:
            raise InputError(f"valid mask shape {self.valid.shape} differs from spatial shape {array.shape[1:]}")
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(C, *S)``: the array's shape (as a source's ``shape``)."""
        return tuple(self.array.shape)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """``S``: the spatial shape in index order."""
        return tuple(self.array.shape[1:])

    @property
    def num_channels(self) -> int:
        """``C``: number of channels (bands, echoes or volumes)."""
        return int(self.array.shape[0])

    @property
    def spatial_dims(self) -> int:
        """``n``: number of spatial axes (2 or 3)."""
        return self.array.ndim - 1

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size per index axis in world units, shape ``(n,)``."""
        return geometry.spacing(self.affine)

    def with_array(
        self, array: np.ndarray, scale: float | Sequence[float] | None = None, *, meta_update: dict | None = None
    ) -> SpatialArray:
        """A new SpatialArray holding ``array`` on this grid refined by ``scale``.

        Args:
            array: ``(C', *S*scale)`` values for the new grid.
            scale: per-axis factor; ``None`` keeps the grid (values replaced only).
            meta_update: keys merged into a deep copy of ``meta``.

        Returns:
            A SpatialArray whose affine is ``geometry.scale_affine(self.affine, scale)`` and
            whose valid mask (if any) is upsampled by nearest neighbour.
        """
        n = self.spatial_dims
        s = as_scale(1 if scale is None else scale, n, whole=False)
        expected = geometry.scaled_shape(self.spatial_shape, s)
        if tuple(array.shape[1:]) != expected:
            raise InputError(
                f"array of spatial shape {tuple(array.shape[1:])} does not match {self.spatial_shape} scaled by {s}; "
                f"expected {expected}"
            )
        valid = None if self.valid is None else upsample_mask(self.valid, s)
        meta = copy.deepcopy(self.meta)
        if meta_update:
            meta.update(meta_update)
        return SpatialArray(array=array, affine=geometry.scale_affine(self.affine, s), meta=meta, valid=valid)


def upsample_mask(mask: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """Nearest-neighbour upsampling of an ``S``-shaped (or ``(C, *S)`` when ``scale`` has fewer
    factors than the mask has axes) mask by integer ``scale`` per spatial axis."""
    out = mask
    nd = len(scale) if len(scale) > 1 else mask.ndim
    lead = mask.ndim - nd
    for axis, s in enumerate(as_scale(tuple(scale), nd, what="mask upsampling scale")):
        out = np.repeat(out, s, axis=lead + axis)
    return out
