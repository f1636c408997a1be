"""What product discovery finds and passes around: :class:`BandSpec`, :class:`Product`, the band
candidates before selection, and raster headers (read without pixels).

Radiometry everywhere here: ``physical = (DN + offset) * gain`` (``offset`` in DN units).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS, reason
from geo_med_sr.errors import InputError, InputNotFoundError, file_error

__all__ = ["BandSpec", "Candidate", "Header", "Product", "S2Meta", "duplicate_error", "existing", "read_header"]


@dataclass(frozen=True)
class BandSpec:
    """One band of a product: where it is and how to read its values.

    Attributes:
        name: ``"B05"``, ``"B8A"``, ``"SCL"``, ``"pan"``, or for other files the band description,
            the Landsat band code or ``"<stem> band <i>"``.
        path: the file (absolute, resolved).
        index: 1-based band index inside that file.
        role: ``"spectral"``, ``"pan"`` (from ``pan=``), ``"guide"`` (from ``guide=``) or
            ``"categorical"`` (SCL, carried by nearest neighbour).
        wavelength_nm: central wavelength (nm), or None when unknown.
        gain: radiometric gain: physical = (DN + offset) * gain (S2 reflectance: 1e-4).
        offset: in DN units.
        nodata: the band's nodata value from the header, or None.
        resolution: pixel size in CRS units (the larger of the two axes), None without a geotransform.
    """

    name: str
    path: Path
    index: int
    role: str
    wavelength_nm: float | None
    gain: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    resolution: float | None = None


@dataclass(frozen=True)
class Product:
    """What :func:`~geo_med_sr.adapters.products.discovery.discover` found.

    Attributes:
        bands: spectral bands in sensor order (Sentinel-2 by band_id, Landsat band files by number,
            other bands in the order given), then pan/guide bands, then categorical bands.
        kind: ``"sentinel2"`` (COG folder), ``"stac"``, ``"safe"``, ``"files"``, ``"pan"`` or ``"guide"``.
        meta: JSON-able ``{"product", "processing_baseline", "offset_source" ("metadata" | "--offset" |
            "baseline default" | "none"), "offset" (of the first Sentinel-2 spectral band, else 0),
            "spacecraft", "inputs" (every path given, pan/guide included)}``.
    """

    bands: tuple[BandSpec, ...]
    kind: str
    meta: dict


@dataclass
class S2Meta:
    """Radiometric metadata of one Sentinel-2 product (offsets in DN units, keyed by band name)."""

    baseline: str | None = None
    gain: float | None = None
    gains: dict[str, float] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    offset_applied: bool = False
    spacecraft: str | None = None
    product: str | None = None
    wavelengths: dict[str, float] = field(default_factory=dict)


@dataclass
class Candidate:
    """A band found before selection; ``error`` is raised only if the band is selected."""

    name: str
    path: Path | None
    index: int
    role: str
    s2: S2Meta | None | bool = False  # False: not Sentinel-2; None: Sentinel-2 without metadata
    wavelength_nm: float | None = None
    order: tuple = ()
    gain: float = 1.0
    offset: float = 0.0
    error: Exception | None = None


@dataclass(frozen=True)
class Header:
    """What discovery reads of a raster: band count, descriptions, nodata, GDAL scales (gains) and
    offsets per band, and the pixel size (CRS units; None without a geotransform)."""

    count: int
    descriptions: tuple[str | None, ...]
    nodata: tuple[float | None, ...]
    gains: tuple[float, ...]
    offsets: tuple[float, ...]
    resolution: float | None


def read_header(path: Path, cache: dict[Path, Header]) -> Header:
    """The :class:`Header` of ``path`` (no pixels read), cached in ``cache``.

    Raises:
        InputError: not a readable raster (with GDAL's reason).
    """
    if path in cache:
        return cache[path]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                t = src.transform
                resolution = None if t.is_identity else max(math.hypot(t.a, t.d), math.hypot(t.b, t.e))
                header = Header(
                    count=src.count,
                    descriptions=tuple(src.descriptions),
                    nodata=tuple(None if v is None else float(v) for v in src.nodatavals),
                    gains=tuple(1.0 if v is None else float(v) for v in src.scales),
                    offsets=tuple(0.0 if v is None else float(v) for v in src.offsets),
                    resolution=resolution,
                )
    except GDAL_ERRORS as exc:
        raise file_error(
            InputError, path, f"not a readable raster ({reason(exc)}); the file may be truncated or corrupt"
        ) from exc
    cache[path] = header
    return header


def existing(path: str | os.PathLike) -> Path:
    """``path`` made absolute and resolved; InputNotFoundError when it does not exist."""
    path = Path(path).expanduser()
    if not path.exists():
        raise file_error(InputNotFoundError, path, "no such file or folder")
    return path.resolve()


def duplicate_error(name: str, first: object, second: object) -> InputError:
    """The refusal of band ``name`` found in two files."""
    return file_error(InputError, first, f"band {name} is given twice, here and in {second}; keep one of the two files")
