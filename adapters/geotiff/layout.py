"""Pure checks of the options that decide a GeoTIFF's layout, and the layout they give.

Band selection (reading), nodata the dtype can hold, tile size, compression and predictor,
and the overview factors and overview tile size of a Cloud-Optimized output. Nothing in this
module opens a file; each check raises a one-line ConfigError naming the file.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.enums import Compression

from geo_med_sr.errors import ConfigError, file_error

#: compressions that take a TIFF predictor.
PREDICTOR_COMPRESSIONS = ("deflate", "lzw", "zstd", "lzma")


def check_bands(path: Path, bands: Sequence[int] | None, count: int) -> tuple[int, ...]:
    """Validated 1-based band indexes (all bands when ``bands`` is None).

    Args:
        path: the file messages name.
        bands: band numbers 1..``count`` in the order to read them, each once; or None.
        count: bands in the file.

    Raises:
        ConfigError: an empty selection, a band that is not a whole number in 1..count, or one
            selected twice.
    """
    if bands is None:
        return tuple(range(1, count + 1))
    try:
        selected = tuple(operator.index(b) for b in bands)
    except TypeError as exc:
        raise file_error(ConfigError, path, f"bands must be whole numbers in 1..{count}, got {list(bands)!r}") from exc
    if not selected:
        raise file_error(ConfigError, path, f"no bands selected; choose band indexes in 1..{count}")
    for band in selected:
        if not 1 <= band <= count:
            raise file_error(ConfigError, path, f"band {band} is out of range: the file has {count} bands (1..{count})")
    seen = set()
    for band in selected:
        if band in seen:
            raise file_error(
                ConfigError,
                path,
                f"band {band} is selected twice; select each band once (the file has {count} bands, 1..{count})",
            )
        seen.add(band)
    return selected


def check_nodata(nodata: float | None, dtype: np.dtype, path: Path) -> None:
    """Raise ConfigError unless ``nodata`` (None, or any value for float dtypes) fits ``dtype`` exactly."""
    if nodata is None or dtype.kind == "f":
        return
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max)
    if not math.isfinite(nodata) or nodata != round(nodata) or not lo <= nodata <= hi:
        raise file_error(
            ConfigError,
            path,
            f"nodata {nodata} cannot be stored as {dtype.name} ({lo}..{hi}); choose another output dtype or nodata",
        )


def block_sizes(block_size: int, width: int, height: int, path: Path) -> tuple[int, int]:
    """Tile width and height: ``block_size`` rounded down to a multiple of 16, no larger than needed.

    Args:
        block_size: requested tile side in pixels (at least 16).
        width: image columns.
        height: image rows.
        path: the file messages name.

    Returns:
        ``(tile width, tile height)`` in pixels, multiples of 16 (as TIFF requires), each capped
        at the image side rounded up to a multiple of 16.
    """
    if int(block_size) < 16:
        raise file_error(ConfigError, path, f"block_size must be at least 16 pixels, got {block_size}")
    block = int(block_size) // 16 * 16

    def ceil16(n: int) -> int:
        return -(-n // 16) * 16

    return min(block, ceil16(width)), min(block, ceil16(height))


def check_compress(compress: str | None, path: Path) -> str | None:
    """Lower-case GDAL compression name, or None for no compression (``None``, ``"none"``, ``"raw"``)."""
    if compress is None or str(compress).lower() in ("none", "raw"):
        return None
    name = str(compress).lower()
    known = sorted(c.name.lower() for c in Compression if c.name.lower() != "none")
    if name not in known:
        raise file_error(ConfigError, path, f"unknown compression {compress!r}; use one of {', '.join(known)} or None")
    return name


def predictor(compress: str | None, dtype: np.dtype) -> int | None:
    """TIFF predictor for ``compress``: 3 (floating point) or 2 (horizontal), None when it takes none."""
    if compress not in PREDICTOR_COMPRESSIONS:
        return None
    return 3 if np.dtype(dtype).kind == "f" else 2


def overview_block(bw: int, bh: int) -> int:
    """Overview tile size: the largest power of two <= the tile size, within GDAL's 64..4096."""
    size = 1 << (min(bw, bh).bit_length() - 1)
    return int(min(max(size, 64), 4096))


def overview_factors(width: int, height: int, tile: int) -> list[int]:
    """Decimation factors 2, 4, ... until both sides of the overview fit in one ``tile``.

    Stopping at the smallest side (``rasterio.rio.overview.get_maximum_overview_level``, used by
    ``cog_translate``) leaves e.g. a 600x500 image with 512 tiles without overviews, which
    ``cog_validate`` warns about and QGIS then reads at full resolution when zoomed out.

    Args:
        width: image columns.
        height: image rows.
        tile: tile side in pixels.

    Returns:
        ``[2, 4, ..., 2**k]`` with ``k`` the smallest count for which ``max(width, height) // 2**k
        <= tile``; empty when the image already fits in one tile.
    """
    factors: list[int] = []
    factor = 1
    while max(width // factor, height // factor) > tile:
        factor *= 2
        factors.append(factor)
    return factors
