"""Tiny synthetic GeoTIFFs: rotated, non-square pixels, multiband, nodata, tags (import as a module)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import Affine

DESCRIPTIONS = ("blue", "green", "red", "nir")


def rotated_transform(
    angle_deg: float = 15.0,
    pixel: tuple[float, float] = (30.0, 20.0),
    origin: tuple[float, float] = (500_010.0, 4_499_970.0),
) -> Affine:
    """Corner-anchored transform rotated by ``angle_deg`` with ``pixel = (width, height)`` in metres.

    Columns advance along ``pixel[0] * (cos, sin)``, rows along ``pixel[1] * (sin, -cos)``: all
    six coefficients are non-zero and the pixels are not square.
    """
    t = math.radians(angle_deg)
    pw, ph = pixel
    return Affine(pw * math.cos(t), ph * math.sin(t), origin[0], pw * math.sin(t), -ph * math.cos(t), origin[1])


def smooth_bands(count: int, height: int, width: int, dtype: str | np.dtype = "uint16") -> np.ndarray:
    """A smooth, non-symmetric pattern per band in ``[100, 20000]`` (narrower for small dtypes).

    Returns:
        ``(count, height, width)`` array (rasterio order) of ``dtype`` with no zero and no NaN.
    """
    dtype = np.dtype(dtype)
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    lo, hi = 100.0, 20000.0
    if dtype.kind in "iu":
        hi = min(hi, float(np.iinfo(dtype).max) - 5)
        lo = min(lo, hi / 4)
    out = np.empty((count, height, width), dtype=np.float64)
    for b in range(count):
        wave = np.sin(0.21 * (b + 1) * cols + 0.05 * rows + b) * np.cos(0.13 * rows - 0.03 * (b + 2) * cols)
        ramp = (cols + 2.0 * rows + 7.0 * b) / (width + 2.0 * height + 7.0 * count)
        out[b] = 0.6 * (wave + 1.0) / 2.0 + 0.4 * ramp
    out = lo + (hi - lo) * out
    return np.rint(out).astype(dtype) if dtype.kind in "iu" else out.astype(dtype)


def nodata_mask(count: int, height: int, width: int) -> np.ndarray:
    """``(count, height, width)`` bool: a 2-column collar on the left in every band, and a blob in band 2."""
    region = np.zeros((count, height, width), dtype=bool)
    region[:, :, :2] = True
    rows, cols = np.ogrid[:height, :width]
    blob = (rows - 0.6 * height) ** 2 + (cols - 0.7 * width) ** 2 <= (min(height, width) / 6) ** 2
    region[min(1, count - 1)] |= blob
    return region


def make_geotiff(
    path: str | Path,
    width: int = 37,
    height: int = 29,
    count: int = 4,
    dtype: str = "uint16",
    crs: str | None = "EPSG:32618",
    transform: Affine | None = None,
    nodata: float | None = 0,
    values: np.ndarray | None = None,
    nodata_region: bool = True,
    descriptions: Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
    area_or_point: str = "Area",
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    tiled: bool = False,
    blocksize: int = 16,
    colorinterp: Sequence[str] | None = None,
    band_tags: Sequence[dict[str, str]] | None = None,
) -> tuple[Path, np.ndarray]:
    """Write a small GeoTIFF and return ``(path, array)``.

    Args:
        path: file to write.
        width, height: columns and rows.
        count: number of bands.
        dtype: numpy/GDAL data type name.
        crs: CRS string for ``rasterio.crs.CRS.from_user_input``, or None for no CRS.
        transform: corner-anchored transform; default :func:`rotated_transform` (15 degrees,
            30 x 20 m pixels).
        nodata: nodata value (``float("nan")`` for float NaN nodata) or None.
        values: ``(count, height, width)`` values; default :func:`smooth_bands`.
        nodata_region: overwrite the :func:`nodata_mask` pixels with ``nodata`` (when set).
        descriptions: band descriptions; default ``("blue", "green", "red", "nir")[:count]``.
        tags: dataset tags; default ``{"SENSOR": "synthetic"}``.
        area_or_point: ``"Area"`` or ``"Point"``.
        scales, offsets, units: optional per-band values.
        tiled, blocksize: tiling of the file (``blocksize`` must be a multiple of 16).
        colorinterp: optional per-band ``ColorInterp`` names.
        band_tags: optional per-band tag dicts.

    Returns:
        the path and the ``(count, height, width)`` array as stored (rasterio order).
    """
    path = Path(path)
    transform = rotated_transform() if transform is None else transform
    array = smooth_bands(count, height, width, dtype) if values is None else np.asarray(values, dtype=dtype).copy()
    if nodata_region and nodata is not None:
        array[nodata_mask(count, height, width)] = nodata
    descriptions = DESCRIPTIONS[:count] if descriptions is None else descriptions
    tags = {"SENSOR": "synthetic"} if tags is None else tags
    options = {"tiled": True, "blockxsize": blocksize, "blockysize": blocksize} if tiled else {}
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **options,
    ) as dst:
        dst.write(array)
        dst.update_tags(AREA_OR_POINT=area_or_point, **tags)
        for i, text in enumerate(descriptions or ()):
            dst.set_band_description(i + 1, text)
        if scales is not None:
            dst.scales = tuple(scales)
        if offsets is not None:
            dst.offsets = tuple(offsets)
        if units is not None:
            dst.units = tuple(units)
        if colorinterp is not None:
            dst.colorinterp = [ColorInterp[name] for name in colorinterp]
        for i, extra in enumerate(band_tags or ()):
            dst.update_tags(i + 1, **extra)
    return path, array


def method_config(method: str, tmp_path: Path, scale: int, bands: int = 4, **inference):
    """An SRConfig for ``method``; for "model", a small EDSR with seeded random (non-trivial) weights."""
    import torch

    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks import build_network
    from geo_med_sr.upscale.config import SRConfig

    name = None
    if method == "model":
        torch.manual_seed(0)
        net = build_network("edsr", spatial_dims=2, in_channels=bands, scale=scale, features=6, num_blocks=1)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        name = str(tmp_path / f"edsr_x{scale}.safetensors")
        save_checkpoint(net, name)
    return SRConfig().updated(model={"method": method, "name": name}, inference=inference or {"patch_size": 8})


def lr_file(tmp_path: Path, scale: int, size: tuple[int, int] = (48, 36)) -> tuple[Path, Path]:
    """A synthetic GeoTIFF (``hr.tif``) and its block average by ``scale`` (``lr.tif``)."""
    from geo_med_sr import io
    from geo_med_sr.degrade import block_average

    hr_path, _ = make_geotiff(tmp_path / "hr.tif", width=size[0], height=size[1])
    lr = block_average(io.read(hr_path), scale)
    io.write(lr, tmp_path / "lr.tif")
    return hr_path, tmp_path / "lr.tif"
