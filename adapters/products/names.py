"""Band and file names: the one parser of band lists and the key two spellings of a band share.

Pure Python (no raster library): the command line, the sharpening pipeline and product discovery
all go through :func:`parse_band_names` and :func:`band_key`, so ``--bands B5,b8a`` means the same
wherever it is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RASTER_SUFFIXES", "band_key", "parse_band_names", "stem"]

#: file suffixes of the rasters a product is made of.
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")

_NUMBERED = re.compile(r"[Bb]?0*(\d{1,2})([Aa]?)")


def band_key(name: str) -> str:
    """The selection key of a band name: ``"B5"``, ``"B05"``, ``"b5"``, ``"5"`` -> ``"B5"``;
    ``"8a"`` -> ``"B8A"``; any other name casefolded (``" SCL "`` -> ``"scl"``)."""
    match = _NUMBERED.fullmatch(name.strip())
    return f"B{int(match[1])}{match[2].upper()}" if match else name.strip().casefold()


def parse_band_names(bands: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Band names from ``"B05,B8A"`` (commas, spaces around names ignored) or a sequence of names.

    Args:
        bands: a comma-separated string, a sequence of names, or None.

    Returns:
        The names, stripped, in the order given (empty items dropped); None (every band) for None,
        an empty string or a list with no name.
    """
    if bands is None:
        return None
    items = bands.split(",") if isinstance(bands, str) else [str(b) for b in bands]
    names = tuple(item.strip() for item in items if item.strip())
    return names or None


def stem(path: Path) -> str:
    """File name without its raster suffix (``T.._B02_10m.jp2`` -> ``T.._B02_10m``)."""
    name = path.name
    for suffix in RASTER_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
