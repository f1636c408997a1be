"""Cloud-Optimized GeoTIFF output: overviews on the sink's tiled file, then a checked COG copy.

:class:`~geo_med_sr.adapters.geotiff.GeoTiffSink` writes a tiled, compressed, band-interleaved GTiff
(a sibling ``<name>.tiled.tif``) and, with ``cog=True``, finishes it the way ``rio_cogeo``'s
``cog_translate`` ends: internal overviews (average, each level from full resolution) on the tiled
file (:func:`build_overviews`), then a pixel-interleaved GTiff copy with ``COPY_SRC_OVERVIEWS=YES``
and rio-cogeo's deflate profile (plus predictor and ``BIGTIFF=IF_SAFER``; :func:`cog_profile`,
:func:`copy_to_cog`); the result passes
``rio_cogeo.cogeo.cog_validate``. ``cog_translate`` itself is not used because it first re-reads
the data through a ``WarpedVRT``, which (measured with rio-cogeo 7) rewrites values: in a 4-band
uint8 raster (GDAL makes band 4 ``alpha`` by default) with nodata 0, pixels that are nodata in
one band but valid in others came back as 1. It also drops band units and forces single-band
rasters to ``gray``. The GTiff copy keeps values, transform (rotated too), CRS, nodata,
AREA_OR_POINT, tags, descriptions, colour interpretation, scales, offsets, units and band tags;
:func:`check_copy` checks that after the copy.

The functions run inside the sink's :func:`~geo_med_sr.adapters.geotiff.environment.writing_env`
(with :func:`overview_config`); the sink owns the order of the steps and the clean-up on failure.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
from rasterio.enums import Resampling

from geo_med_sr.adapters.geotiff.blocks import check_blocks
from geo_med_sr.adapters.geotiff.layout import overview_block, overview_factors
from geo_med_sr.adapters.geotiff.tags import layout_metadata
from geo_med_sr.errors import OutputError, file_error


def cog_profile(compress: str | None, block: tuple[int, int], predictor: int | None) -> dict[str, Any]:
    """rio-cogeo's deflate COG profile with this compression, tiles ``(width, height)`` and predictor."""
    from rio_cogeo.profiles import cog_profiles

    profile = dict(cog_profiles.get("deflate"))
    profile.update(
        driver="GTiff",
        compress=(compress or "none").upper(),
        blockxsize=block[0],
        blockysize=block[1],
        BIGTIFF="IF_SAFER",
    )
    if predictor:
        profile["predictor"] = predictor
    return profile


def overview_config(block: tuple[int, int]) -> dict[str, str]:
    """GDAL options while overviews are built and copied (all CPUs; overview tiles of :func:`overview_block`)."""
    return {"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_TIFF_OVR_BLOCKSIZE": str(overview_block(*block))}


def build_overviews(
    tiled: Path, spatial: tuple[int, int], block: tuple[int, int], config: dict[str, str] | None = None
) -> dict[str, Any]:
    """Add internal average overviews to the tiled file ``tiled`` of ``spatial`` ``(W, H)`` pixels.

    ``config``: GDAL options while the overviews are built only (the sink's fast compression level
    of the intermediate's overviews, never in force for the COG copy).

    Each level is built by a call of its own, so GDAL computes every level from full resolution:
    an overview pixel is GDAL's average of the valid (not nodata, not masked) full-resolution pixels
    it covers (with integer factors, the mean of the ``f x f`` block, rounded half away from zero;
    nodata or masked where the whole block is), as the mask's overviews are. Given several levels
    at once GDAL may cascade instead (level ``2f`` averaged from the rounded level ``f``, which
    weighs a pixel that is partly nodata like a whole one): always for a band-interleaved file, and
    for a pixel-interleaved one when a level's source chunk fits ``GDAL_OVR_CHUNK_MAX_SIZE``; its
    multi-band path also cut some rows' windows at its chunk edges (the sink's docstring). The
    sink's intermediate is band-interleaved because GDAL builds those band by band, 5-10x faster
    than its multi-band path for pixel-interleaved files, whose time grows faster than the image
    (12 bands: 2.7 s instead of 15.5 s at 2048^2, 12 s instead of 135 s at 4096^2).

    Returns:
        :func:`~geo_med_sr.adapters.geotiff.tags.layout_metadata` of the tiled file: what the
        COG copy must keep.
    """
    width, height = spatial
    factors = overview_factors(width, height, min(block))
    with rasterio.Env(**(config or {})), rasterio.open(tiled, "r+") as dataset:
        for factor in factors:  # one level per call: each from full resolution, never cascaded
            dataset.build_overviews([factor], Resampling.average)
        dataset.update_tags(OVERVIEW_RESAMPLING="AVERAGE")
        return layout_metadata(dataset)


def copy_to_cog(tiled: Path, path: Path, profile: dict[str, Any], name: Path) -> dict[str, Any]:
    """Copy ``tiled`` (with its overviews) to the COG ``path`` with ``profile``; check its blocks.

    Returns:
        :func:`~geo_med_sr.adapters.geotiff.tags.layout_metadata` of the COG.

    Raises:
        OutputError: a block of the copy is missing (naming ``name``).
    """
    rasterio.shutil.copy(str(tiled), str(path), copy_src_overviews=True, **profile)
    check_blocks(path, name)
    with rasterio.open(path) as cog:
        return layout_metadata(cog)


def check_copy(expected: dict[str, Any], got: dict[str, Any], name: Path) -> None:
    """Compare the layout metadata of the tiled file and of its COG copy.

    Raises:
        OutputError: the copy changed the grid (transform, CRS, shape, bands or dtype).

    Warns:
        UserWarning: the copy lost other metadata (nodata, tags, descriptions, ...).
    """
    if got["grid"] != expected["grid"]:
        raise file_error(
            OutputError,
            name,
            f"the COG copy changed the grid ({got['grid'][0]} vs {expected['grid'][0]}); "
            "write with cog=False and report this",
        )
    changed = sorted(key for key in expected if got[key] != expected[key])
    if changed:
        warnings.warn(
            f"{name}: the COG copy did not keep the {', '.join(changed)} of the tiled file",
            UserWarning,
            stacklevel=4,  # check_copy <- GeoTiffSink._convert_to_cog <- close <- the caller
        )
