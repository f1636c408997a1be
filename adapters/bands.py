"""One band of a multi-resolution product opened for windowed reading, with its grid.

The guided-sharpening engine needs, per band, a reader of ``(1, W, H)`` windows (the GeoTIFF
adapter's :class:`~.geotiff.source.GeoTiffSource` restricted to that band: nodata, GDAL masks and
JPEG 2000 all handled there) and the band's :class:`~geo_med_sr.multires.Grid` with a CRS that
compares equal for equal CRSs written differently (an EPSG code when GDAL finds one).
"""

from __future__ import annotations

from pathlib import Path

from rasterio.crs import CRS
from rasterio.errors import CRSError

from geo_med_sr.adapters.geotiff.source import BAND_DRIVERS, GeoTiffSource
from geo_med_sr.errors import InputError, file_error
from geo_med_sr.multires import Grid

__all__ = ["crs_key", "open_band"]


def crs_key(wkt: str | None) -> str | None:
    """A comparable name of a CRS: ``"EPSG:32629"`` when it has an EPSG code, else its WKT."""
    if not wkt:
        return None
    try:
        crs = CRS.from_user_input(wkt)
    except CRSError:
        return wkt
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def open_band(path: str | Path, index: int) -> tuple[GeoTiffSource, Grid]:
    """Band ``index`` (1-based) of ``path`` as a windowed source, and its grid.

    Raises:
        InputError: the file has no geotransform (guided sharpening needs one to align the bands).
    """
    source = GeoTiffSource(path, bands=[index], drivers=BAND_DRIVERS)
    info = source.meta["geotiff"]
    if info.get("gcps") or not info.get("transform"):
        source.close()
        raise file_error(InputError, path, "has no geotransform; guided sharpening aligns bands by their transforms")
    transform = tuple(float(v) for v in info["transform"])
    return source, Grid(crs_key(info.get("crs")), transform, (int(source.shape[1]), int(source.shape[2])))
