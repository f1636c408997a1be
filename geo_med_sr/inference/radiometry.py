"""Per-window value transforms around the network: normalise, fill nodata, invert, re-mask, cast.

Every operation is pointwise except the nodata fill, which only looks ``fill_radius`` pixels
away; the engine adds that radius to its halo, so the stitched result stays tile-invariant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geo_med_sr.inference.protocols import OutputSpec, Source, Window
from geo_med_sr.normalize import Normalizer


def fill_invalid(x: np.ndarray, valid: np.ndarray, radius: int, fill_value: float = 0.0) -> np.ndarray:
    """Fill invalid pixels from valid neighbours, growing at most ``radius`` pixels.

    Each of ``radius`` rounds replaces the invalid pixels that touch a valid one by the mean
    of their valid 3x3(x3) neighbours; pixels still unreached get ``fill_value``. Valid pixels
    are never changed, and a pixel's result depends only on pixels within ``radius``.

    Args:
        x: ``(C, *S)`` float32 or float64 values.
        valid: ``S``-shaped boolean mask, or ``(C, *S)`` for per-band validity.
        radius: number of growth rounds (pixels).
        fill_value: value for pixels farther than ``radius`` from any valid pixel.

    Returns:
        ``(C, *S)`` copy in the dtype of ``x`` with every pixel finite.
    """
    nd = x.ndim - 1
    pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    values = torch.from_numpy(np.where(valid, x, 0.0).astype(dtype))[None]
    per_band = valid if valid.ndim == x.ndim else valid[None]
    mask = torch.from_numpy(per_band.astype(dtype))[None]
    for _ in range(radius):
        if bool(mask.min() > 0):
            break
        total = pool(values * mask, 3, stride=1, padding=1, count_include_pad=False)
        weight = pool(mask, 3, stride=1, padding=1, count_include_pad=False)
        grow = (weight > 0) & (mask == 0)
        values = torch.where(grow, total / weight.clamp_min(1e-12), values)
        mask = torch.where(grow, torch.ones_like(mask), mask)
    out = torch.where(mask > 0, values, torch.full_like(values, fill_value))
    return out[0].numpy()


@dataclass
class Radiometry:
    """What happens to values before and after the network, window by window.

    Args:
        normalizer: the normaliser object owning ``forward``/``inverse``.
        stats: its fitted, JSON-able statistics.
        fill_radius: nodata fill reach in pixels (added to the engine's halo).
        out_dtype: storage dtype of the output windows, or None to return the values in
            ``compute_dtype``.
        nodata: value written where the (nearest-upsampled) valid mask is False.
        compute_dtype: what values are computed in (:func:`geo_med_sr.dtypes.compute_dtype` of
            the input's storage dtype).
    """

    normalizer: Normalizer
    stats: dict[str, Any]
    fill_radius: int = 0
    out_dtype: np.dtype | None = None
    nodata: float | None = None
    compute_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))

    def __post_init__(self) -> None:
        if self.out_dtype is not None:
            self.out_dtype = np.dtype(self.out_dtype)

    def before(self, raw: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """``(C, *R)`` raw window -> normalised ``compute_dtype`` values, invalid pixels filled."""
        x = self.normalizer.forward(raw, self.stats, self.compute_dtype)
        if valid is not None and not valid.all():
            x = fill_invalid(x, valid, self.fill_radius)
        return x

    @property
    def spec(self) -> OutputSpec:
        """The storage of the output windows: ``out_dtype`` and ``nodata``."""
        return OutputSpec(self.out_dtype, self.nodata)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """``(C, *O)`` network output -> real values in ``compute_dtype`` (the normaliser's inverse)."""
        return self.normalizer.inverse(y, self.stats, self.compute_dtype)

    def after(self, y: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """``(C, *O)`` network output -> real values in ``out_dtype`` with nodata re-applied.

        A valid pixel whose value would equal ``nodata`` is moved one step away from it, so
        nodata never leaks into valid pixels (:meth:`inverse`, then :meth:`OutputSpec.cast`).
        """
        return self.spec.cast(self.inverse(y), valid)  # valid: S-shaped, or (C, *S) per band


def sample_boxes(spatial: Sequence[int], max_pixels: int, window: int, seed: int = 0) -> list[Window]:
    """Windows to read a bounded sample of an image: the whole image when it has at most
    ``max_pixels`` pixels, else seeded random ``window``-sized windows covering about ``max_pixels``."""
    spatial = tuple(int(n) for n in spatial)
    if int(np.prod(spatial)) <= max_pixels:
        return [Window.from_shape(spatial)]
    rng = np.random.default_rng(seed)
    size = tuple(min(window, n) for n in spatial)
    count = max(1, max_pixels // int(np.prod(size)))
    starts = [rng.integers(0, n - w + 1, size=count) for n, w in zip(spatial, size)]
    return [Window((int(st[i]), int(st[i]) + w) for st, w in zip(starts, size)) for i in range(count)]


def sample_valid_values(source: Source, max_pixels: int = 1 << 20, window: int = 256, seed: int = 0) -> np.ndarray:
    """Valid pixel values of ``source`` for fitting a normaliser, ``(C, K)``.

    Small images (at most ``max_pixels`` pixels) are read whole; larger ones through a bounded,
    seeded random sample of ``window``-sized boxes covering about ``max_pixels`` pixels, so the
    cost does not grow with the scene. Invalid pixels (mask) and non-finite values are dropped.
    """
    chunks = []
    for box in sample_boxes(source.shape[1:], max_pixels, window, seed):
        values = source.read(box).reshape(source.shape[0], -1)
        valid = source.read_valid(box)
        keep = np.ones(values.shape[1], bool) if valid is None else valid.reshape(-1)
        keep &= np.all(np.isfinite(values), axis=0)
        chunks.append(values[:, keep])
    return np.concatenate(chunks, axis=1)
