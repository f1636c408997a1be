"""Plain photos (PNG, JPEG, BMP; read with GDAL through rasterio) as 2D training images.

Not a registered adapter: photos carry no geometry, so ``upscale`` does not take them; training
(``geo-med-sr train``) accepts them beside NIfTI, DICOM and GeoTIFF (:func:`geo_med_sr.io.read_for_training`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from geo_med_sr.errors import InputError, file_error
from geo_med_sr.spatial import SpatialArray

#: plain (not georeferenced) 2D image files accepted as training data.
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def is_photo(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a photo (by suffix)."""
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def read_photo(path: str | os.PathLike) -> SpatialArray:
    """A photo as a float32 ``(bands, columns, rows)`` image with a unit-pixel affine.

    Raises:
        InputError: the file is not a readable image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                array = src.read().transpose(0, 2, 1)  # index order: columns fastest
    except RasterioIOError as exc:
        raise file_error(InputError, path, f"not a readable image ({exc})") from exc
    affine = np.diag([1.0, 1.0, 1.0])
    return SpatialArray(array.astype(np.float32), affine, {"format": "photo", "dtype": str(array.dtype)}, None)
