"""The check that a written GeoTIFF holds every block: catches a silently truncated output.

GDAL flushes cached blocks when a dataset is closed and rasterio does not report errors from
that flush, so a disk that fills up at that moment would otherwise leave a truncated file.
"""

from __future__ import annotations

from pathlib import Path

import rasterio

from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS, reason
from geo_med_sr.errors import OutputError, file_error


def check_blocks(path: Path, name: Path | None = None) -> None:
    """Raise OutputError (naming ``name``, default ``path``) unless every block of ``path`` is in the file.

    Reading the block table of the full-resolution image is cheap (metadata only, no pixel
    data): each block's offset plus length must lie within the file's size.
    """
    name = path if name is None else name
    size = path.stat().st_size
    try:
        with rasterio.open(path) as src:
            rows, cols = src.block_shapes[0]
            bands = src.indexes if src.interleaving is not None and src.interleaving.name.lower() == "band" else (1,)
            for band in bands:
                for y in range(-(-src.height // rows)):
                    for x in range(-(-src.width // cols)):
                        offset = src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
                        length = src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
                        if not offset or not length or int(offset) + int(length) > size:
                            raise file_error(
                                OutputError,
                                name,
                                f"block {x},{y} of band {band} was not written completely; the disk may be full",
                            )
    except GDAL_ERRORS as exc:
        raise file_error(
            OutputError, name, f"the written file cannot be read back ({reason(exc)}); the disk may be full"
        ) from exc
