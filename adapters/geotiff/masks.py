"""The output's validity: GDAL mask, alpha band and per-band nodata of a GeoTIFF being written.

The engine writes values only. What the output needs beyond them comes from two places:

* the *input's GDAL mask*, described in ``meta["geotiff"]["mask"]`` by
  :func:`~geo_med_sr.adapters.geotiff.source.mask_info`: :class:`InputMask` re-reads it from the
  input file (``meta["source"]``) for each output window and upsamples it by nearest neighbour
  (pixel ``(c, r)`` of the output takes input pixel ``(c // fx, r // fy)``). The sink writes it
  as an internal per-dataset mask (kind ``"mask"``), or, when an alpha band defines validity
  (kind ``"alpha"``), replaces the upsampled alpha band by the input's alpha, nearest-upsampled,
  so that the alpha band is never interpolated as data;
* an explicit ``valid`` the caller hands to :meth:`~geo_med_sr.adapters.geotiff.GeoTiffSink.write`,
  per pixel ``(bw, bh)`` or per band ``(C, bw, bh)`` (:func:`apply_valid`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr.errors import GeoMedSRError, OutputError, file_error
from geo_med_sr.inference.protocols import Window
from geo_med_sr.spatial import upsample_mask


def integer_factors(size: Any, shape: tuple[int, int]) -> tuple[int, int] | None:
    """Integer scale ``(fx, fy)`` from an input of ``size`` ``[W, H]`` to ``shape`` ``(W', H')``, or None."""
    if not size or len(size) != 2:
        return None
    factors = tuple(int(out) // int(inp) for out, inp in zip(shape, size))
    if any(f < 1 or f * int(inp) != int(out) for f, inp, out in zip(factors, size, shape)):
        return None
    return factors  # type: ignore[return-value]


def lr_window(window: Window, factors: tuple[int, int]) -> Window:
    """The input window whose nearest-upsampled pixels cover the output ``window``."""
    return Window((a // f, -(-b // f)) for (a, b), f in zip(window, factors))


def upsample_nearest(values: np.ndarray, lr: Window, window: Window, factors: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of ``values`` (``(..., lw, lh)`` on ``lr``) cropped to ``window``."""
    out = upsample_mask(values, factors)  # the spatial package's nearest upsampling, on the last two axes
    (c0, c1), (r0, r1) = window
    dc, dr = c0 - lr[0][0] * factors[0], r0 - lr[1][0] * factors[1]
    return out[..., dc : dc + (c1 - c0), dr : dr + (r1 - r0)]


class InputMask:
    """Reads the input's validity and alpha band for output windows (see the module docstring).

    Args:
        meta: the output's package metadata (``meta["source"]``, ``meta["geotiff"]``).
        shape: ``(C, W, H)`` of the output.
        name: the output file error messages name.

    Attributes:
        kind: ``"mask"`` or ``"alpha"``.
        alpha: 0-based output band that carries the alpha band, or None.
    """

    def __init__(self, meta: dict[str, Any], shape: tuple[int, ...], name: Path) -> None:
        info = meta.get("geotiff") or {}
        described = info.get("mask") or {}
        self.kind = described.get("kind")
        self.alpha = described.get("alpha") if self.kind == "alpha" else None
        self.name = name
        self.factors = integer_factors(info.get("size"), tuple(shape[1:]))
        self.path = Path(str(meta.get("source", "")))
        self.bands = list(info.get("bands") or [])
        self._valid_source: Any = None
        self._alpha_source: Any = None
        if self.factors is None:
            raise self._error(
                f"the output {tuple(shape[1:])} is not an integer multiple of the input {info.get('size')}"
            )

    @staticmethod
    def wanted(meta: dict[str, Any]) -> bool:
        """Whether ``meta`` describes an input mask the output must reproduce."""
        return bool(((meta.get("geotiff") or {}).get("mask") or {}).get("kind"))

    def _error(self, problem: str) -> GeoMedSRError:
        return file_error(
            OutputError,
            self.name,
            f"cannot write the mask of the input {self.path}: {problem}; write the output with an explicit valid mask",
        )

    def _open(self, bands: list[int]) -> Any:
        from geo_med_sr.adapters.geotiff.source import GeoTiffSource

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the input's own warnings were shown when it was opened
                return GeoTiffSource(self.path, bands=bands)
        except GeoMedSRError as exc:
            raise self._error(str(exc)) from exc

    def valid(self, window: Window) -> np.ndarray:
        """``(bw, bh)`` bool validity of the output ``window`` (the input's, nearest-upsampled)."""
        if self._valid_source is None:
            self._valid_source = self._open(self.bands)
        lr = lr_window(window, self.factors)
        return upsample_nearest(self._valid_source.read_valid(lr), lr, window, self.factors)

    def alpha_values(self, window: Window) -> np.ndarray:
        """``(bw, bh)`` alpha values of the output ``window`` (the input's alpha band, nearest-upsampled)."""
        if self._alpha_source is None:
            self._alpha_source = self._open([self.bands[self.alpha]])
        lr = lr_window(window, self.factors)
        return upsample_nearest(self._alpha_source.read(lr)[0], lr, window, self.factors)

    def close(self) -> None:
        """Close the input (idempotent)."""
        for source in (self._valid_source, self._alpha_source):
            if source is not None:
                source.close()


def mask_of(valid: np.ndarray, nodata: float | None) -> np.ndarray:
    """``(bw, bh)`` per-dataset mask of a per-pixel or per-band ``valid``.

    Per band with a nodata value, a pixel stays unmasked when any band is valid (nodata hides
    the others); without nodata a mask cannot say "valid in one band only", so it is masked
    unless every band is valid.
    """
    if valid.ndim == 2:
        return valid
    return valid.any(axis=0) if nodata is not None else valid.all(axis=0)
