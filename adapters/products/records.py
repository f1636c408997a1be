"""What product discovery finds and passes around: :class:`BandSpec`, :class:`Product`, the band
candidates before selection, raster headers (read without pixels), and the checks every product
format shares: metadata files read with a size cap (:func:`read_metadata`), their fields validated
into :class:`MetadataRecord` models (:func:`validated`: one line naming the file and the field
path), and one band per Sentinel-2 band file (:func:`check_one_band`).

Radiometry everywhere here: ``physical = (DN + offset) * gain`` (``offset`` in DN units).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import rasterio
from pydantic import ConfigDict, Field, ValidationError
from rasterio.errors import NotGeoreferencedWarning

from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS, reason
from geo_med_sr.errors import InputError, InputNotFoundError, file_error
from geo_med_sr.schema import Frozen

__all__ = [
    "DN_OFFSET_LIMIT",
    "MAX_METADATA_BYTES",
    "BandSpec",
    "Candidate",
    "DnOffset",
    "Header",
    "MetadataRecord",
    "Product",
    "S2Meta",
    "check_one_band",
    "duplicate_error",
    "existing",
    "read_header",
    "read_metadata",
    "validated",
]

M = TypeVar("M", bound="MetadataRecord")

#: the largest metadata file (STAC item, MTD XML) read, in bytes; real ones are a few hundred KiB.
MAX_METADATA_BYTES = 16 * 1024 * 1024
#: the largest DN offset accepted from metadata (DN units; Sentinel-2 L2A uses -1000, uint16 DNs).
DN_OFFSET_LIMIT = 65535.0
#: how many field problems one refusal lists before "(and N more)".
_PROBLEMS_SHOWN = 3
_LOC_PART_CHARS = 40

#: a DN offset read from metadata: a finite number within +-DN_OFFSET_LIMIT.
DnOffset = Annotated[float, Field(ge=-DN_OFFSET_LIMIT, le=DN_OFFSET_LIMIT, allow_inf_nan=False)]


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


# ---------------------------------------------------------------- shared checks of product metadata


class MetadataRecord(Frozen):
    """Fields read from a product's metadata file (a STAC item, an MTD XML): only those fields are
    typed; unknown ones are kept out of the way (``extra="ignore"``), since STAC has many extensions
    and ESA metadata many tags."""

    model_config = ConfigDict(extra="ignore", frozen=True)


_EXPECTED = {
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "finite_number": "expected a finite number",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "list_type": "expected a list",
    "missing": "missing",
}


def _loc(loc: tuple[Any, ...]) -> str:
    """``assets.B05.raster:bands[0].scale`` from a pydantic error location (long keys shortened)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        part = str(part)
        part = part if len(part) <= _LOC_PART_CHARS else part[: _LOC_PART_CHARS - 3] + "..."
        text += f".{part}" if text else part
    return text or "<top>"


def _problem(error: Any) -> str:
    """What is wrong with one field, in our words (pydantic's message for the checks we declare)."""
    kind = error["type"]
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(error.get("ctx", {}).values()), "")
        bound = f"{bound:g}" if isinstance(bound, (int, float)) else bound
        words = {"greater_than": "above", "greater_than_equal": "at least"}.get(kind, "at most")
        words = "below" if kind == "less_than" else words
        return f"expected a number {words} {bound}"
    return str(error["msg"]).removeprefix("Value error, ")


def validated(
    model: type[M],
    data: Any,
    path: Path,
    hint: str,
    where: Callable[[tuple[Any, ...]], str] = _loc,
) -> M:
    """``data`` (parsed from the metadata file ``path``) validated into ``model``.

    Args:
        model: a :class:`MetadataRecord` subclass.
        data: the parsed JSON / the fields read from XML.
        path: the metadata file; it starts the message.
        hint: what to do, appended to the message (e.g. ``"fix the item or pass the band files"``).
        where: names a field from its pydantic location (default ``assets.B05.raster:bands[0].scale``).

    Raises:
        InputError: ``"<path>: <field>: <problem>; ...; <hint>"`` on one line (at most three fields).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = [f"{where(e['loc'])}: {_problem(e)}" for e in errors[:_PROBLEMS_SHOWN]]
        if len(errors) > _PROBLEMS_SHOWN:
            problems.append(f"(and {len(errors) - _PROBLEMS_SHOWN} more)")
        raise file_error(InputError, path, f"{'; '.join(problems)}; {hint}") from None


def read_metadata(path: Path, what: str) -> bytes:
    """The bytes of a metadata file, refusing what is not a regular file or exceeds MAX_METADATA_BYTES.

    Args:
        path: the file.
        what: what it should be, for the message (``"a STAC item JSON"``).

    Raises:
        InputError: not a regular file (a folder, a FIFO, a device), unreadable, or too large.
    """
    if not path.is_file():
        raise file_error(InputError, path, f"not a regular file; pass {what}")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        raise file_error(InputError, path, f"not readable ({exc.strerror or exc}); pass {what}") from exc
    if len(data) > MAX_METADATA_BYTES:
        raise file_error(
            InputError, path, f"larger than {MAX_METADATA_BYTES // 2**20} MiB, too large for {what}; pass {what}"
        )
    return data


def check_one_band(name: str, path: Path, cache: dict[Path, Header]) -> Header:
    """The header of the file of Sentinel-2 band ``name``, which must hold exactly one band.

    The one check of every Sentinel-2 band file, however it was found (given explicitly, in a COG
    folder, in a ``.SAFE``, as a STAC asset): a file of several bands is refused, never read as band 1.

    Raises:
        InputError: not a readable raster, or a band count other than 1.
    """
    header = read_header(path, cache)
    if header.count != 1:
        raise file_error(
            InputError,
            path,
            f"named as Sentinel-2 band {name} but holds {header.count} bands; expected one; "
            "split it (gdal_translate -b N) or rename it to a name without a band code",
        )
    return header
