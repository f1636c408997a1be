"""Intensity normalisers: fit JSON-able statistics, map forward, and own the exact inverse.

Each normaliser is a linear map per channel, ``x' = (x - offset) / width``, so its inverse is
exact. Statistics are computed on valid voxels only. Clipping is never part of the forward map;
the writers round and clip when casting back to the storage dtype (:mod:`geo_med_sr.dtypes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.registry import Registry

NORMALIZERS: Registry[type[Normalizer]] = Registry("normaliser", ConfigError)


class Normalizer:
    """Base class. ``stats`` = ``{"name": ..., "offset": [per channel], "width": [per channel], ...}``."""

    name = ""

    def fit(self, array: np.ndarray, valid: np.ndarray | None = None) -> dict[str, Any]:
        """Statistics of a ``(C, *S)`` array on the voxels where ``valid`` (``S``-shaped) is True."""
        raise NotImplementedError

    @staticmethod
    def forward(array: np.ndarray, stats: dict[str, Any], dtype: np.dtype | str = np.float32) -> np.ndarray:
        """``(C, *S)`` normalised copy in ``dtype`` (float32, or float64 for wide data); the input is never modified."""
        offset, width = _params(stats, array.ndim)
        return ((array.astype(np.float64) - offset) / width).astype(dtype, copy=False)

    @staticmethod
    def inverse(array: np.ndarray, stats: dict[str, Any], dtype: np.dtype | str = np.float32) -> np.ndarray:
        """Exact inverse of :meth:`forward` (``(C, *S)`` in ``dtype``)."""
        offset, width = _params(stats, array.ndim)
        return (array.astype(np.float64) * width + offset).astype(dtype, copy=False)


def _params(stats: dict[str, Any], ndim: int) -> tuple[np.ndarray, np.ndarray]:
    shape = (-1,) + (1,) * (ndim - 1)
    return np.asarray(stats["offset"], dtype=np.float64).reshape(shape), np.asarray(
        stats["width"], dtype=np.float64
    ).reshape(shape)


def _valid_values(channel: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    values = channel if valid is None else channel[valid]
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise InputError("no valid voxels to compute normalisation statistics from")
    return values


@NORMALIZERS.register("percentile")
class PercentileNormalizer(Normalizer):
    """Per-channel map of the ``lower``/``upper`` percentiles of valid voxels to 0 and 1 (MR, optical).

    Args:
        lower, upper: percentiles in ``[0, 100]``, ``lower < upper``.
    """

    name = "percentile"

    def __init__(self, lower: float = 1.0, upper: float = 99.0) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ConfigError(f"percentile normaliser needs 0 <= lower < upper <= 100, got {lower}, {upper}")
        self.lower, self.upper = float(lower), float(upper)

    def fit(self, array: np.ndarray, valid: np.ndarray | None = None) -> dict[str, Any]:
        offsets, widths = [], []
        for channel in array:
            lo, hi = np.percentile(_valid_values(channel, valid), [self.lower, self.upper])
            offsets.append(float(lo))
            widths.append(float(hi - lo) if hi > lo else 1.0)
        return {"name": self.name, "lower": self.lower, "upper": self.upper, "offset": offsets, "width": widths}


@NORMALIZERS.register("window")
class WindowNormalizer(Normalizer):
    """Fixed intensity window mapped to ``[0, 1]`` (CT Hounsfield units, e.g. level 40, width 400).

    Values outside the window are kept (not clipped) so the inverse is exact.
    """

    name = "window"

    def __init__(self, level: float = 40.0, width: float = 400.0) -> None:
        if not width > 0:
            raise ConfigError(f"window width must be positive, got {width}")
        self.level, self.width = float(level), float(width)

    def fit(self, array: np.ndarray, valid: np.ndarray | None = None) -> dict[str, Any]:
        c = array.shape[0]
        low = self.level - self.width / 2.0
        return {
            "name": self.name,
            "level": self.level,
            "window": self.width,
            "offset": [low] * c,
            "width": [self.width] * c,
        }


@NORMALIZERS.register("fixed")
class FixedScaleNormalizer(Normalizer):
    """Fixed linear map ``x' = x * scale + offset`` for every band (e.g. Landsat/Sentinel-2
    surface reflectance: ``scale=1e-4``, ``offset=0``, or Collection-2 ``2.75e-5``, ``-0.2``).
    """

    name = "fixed"

    def __init__(self, scale: float = 1e-4, offset: float = 0.0) -> None:
        if not scale or not np.isfinite(scale):
            raise ConfigError(f"fixed normaliser needs a non-zero finite scale, got {scale}")
        self.scale, self.offset = float(scale), float(offset)

    def fit(self, array: np.ndarray, valid: np.ndarray | None = None) -> dict[str, Any]:
        c = array.shape[0]
        return {
            "name": self.name,
            "scale": self.scale,
            "add_offset": self.offset,
            "offset": [-self.offset / self.scale] * c,
            "width": [1.0 / self.scale] * c,
        }


@NORMALIZERS.register("none")
class IdentityNormalizer(Normalizer):
    """No change of values (offset 0, width 1)."""

    name = "none"

    def fit(self, array: np.ndarray, valid: np.ndarray | None = None) -> dict[str, Any]:
        c = array.shape[0]
        return {"name": self.name, "offset": [0.0] * c, "width": [1.0] * c}


def build_normalizer(name: str, **params: Any) -> Normalizer:
    """Instantiate a registered normaliser by name."""
    try:
        return NORMALIZERS.get(name)(**params)
    except TypeError as exc:
        raise ConfigError(f"invalid parameters for normaliser {name!r}: {exc}") from exc
