"""GeoTIFF adapter (rasterio): windowed reading, windowed writing, Cloud-Optimized output.

Inside the package a raster is ``(C, W, H)`` (bands, columns, rows: index order, the transpose
of rasterio's arrays) on a ``(3, 3)`` affine from the (column, row) index of a pixel **centre**
to CRS ``(x, y)``; rasterio's corner-anchored transforms are converted at this edge only.
Importing this package registers :class:`GeoTiffAdapter` as ``"geotiff"``.

Modules, one job each:

* :mod:`.conventions`: index order, centre affine <-> rasterio transform, windows, nodata
  encoding, AREA_OR_POINT, GDAL error text (pure functions).
* :mod:`.layout`: checks of band selection, nodata, tile size and compression, and the
  predictor and overview factors they decide (pure functions).
* :mod:`.source`: :class:`GeoTiffSource`, the windowed reader, and which pixels are valid.
* :mod:`.tags`: band names, band metadata and the ``GEO_MED_SR_*`` provenance tags.
* :mod:`.masks`: the output's GDAL mask / alpha band from the input's, and per-band nodata.
* :mod:`.sink`: :class:`GeoTiffSink`, the windowed writer; :mod:`.cog`: its COG conversion;
  :mod:`.blocks`: the truncated-output check; :mod:`.environment`: GDAL's block cache and libtiff.
* :mod:`.adapter`: :class:`GeoTiffAdapter`, the format's entry in the adapter registry.
"""

from __future__ import annotations

try:
    import rasterio  # noqa: F401  (fail here, with the install hint, before any submodule imports it)
except ImportError as exc:  # pragma: no cover - rasterio is a declared dependency
    raise ImportError("the GeoTIFF adapter needs rasterio: pip install 'rasterio>=1.3' 'rio-cogeo>=5.0'") from exc

from geo_med_sr.adapters.base import ADAPTERS
from geo_med_sr.adapters.geotiff.adapter import SUFFIXES, GeoTiffAdapter
from geo_med_sr.adapters.geotiff.blocks import check_blocks
from geo_med_sr.adapters.geotiff.conventions import (
    affine_from_transform,
    decode_nodata,
    encode_nodata,
    rasterio_window,
    transform_from_affine,
    window_from_rasterio,
)
from geo_med_sr.adapters.geotiff.environment import SINK_CACHE_MB
from geo_med_sr.adapters.geotiff.layout import overview_factors
from geo_med_sr.adapters.geotiff.sink import FROM_META, GeoTiffSink
from geo_med_sr.adapters.geotiff.source import DRIVERS, GeoTiffSource
from geo_med_sr.adapters.geotiff.tags import (
    PROVENANCE_PREFIX,
    band_names,
    decode_provenance_value,
    encode_provenance_value,
    provenance_from_tags,
)

__all__ = [
    "DRIVERS",
    "FROM_META",
    "PROVENANCE_PREFIX",
    "SINK_CACHE_MB",
    "SUFFIXES",
    "GeoTiffAdapter",
    "GeoTiffSink",
    "GeoTiffSource",
    "affine_from_transform",
    "band_names",
    "check_blocks",
    "decode_nodata",
    "decode_provenance_value",
    "encode_nodata",
    "encode_provenance_value",
    "overview_factors",
    "provenance_from_tags",
    "rasterio_window",
    "transform_from_affine",
    "window_from_rasterio",
]

ADAPTERS.add("geotiff", GeoTiffAdapter)
