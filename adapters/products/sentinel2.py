"""Sentinel-2 MSI: band names and wavelengths, band file names, COG band folders, ``.SAFE`` products
(L1C and L2A), their ``MTD_MSIL*.xml`` metadata and the L1C/L2A radiometric offsets.

Radiometry of the spectral bands, ``physical = (DN + offset) * gain`` (offset in DN units): ``gain``
= 1e-4, or ``1/QUANTIFICATION_VALUE``, or the STAC ``raster:bands`` scale; ``offset`` from the
metadata (MTD ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``, STAC ``raster:bands`` offset / scale; 0 when
``earthsearch:boa_offset_applied``); with no offset in the metadata, -1000 from processing baseline
04.00 on ("baseline default") and 0 before it; the baseline is also read from a product name's
``_Nxxyy_`` field. An ``offset=`` given to discovery overrides all of this ("--offset"); with no
metadata at all the offset is 0 ("none"). Categorical bands (SCL): gain 1, offset 0.

The MTD fields read are validated (:class:`MtdFields`): quantification values from 1 to 1e9, offsets
finite and within +-65535 DN, ``band_id`` 0..12; anything else is one line naming the MTD file and
the field.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated

from pydantic import Field

from geo_med_sr.adapters.products.landsat import landsat_sensor
from geo_med_sr.adapters.products.names import RASTER_SUFFIXES, band_key, stem
from geo_med_sr.adapters.products.records import (
    Candidate,
    DnOffset,
    MetadataRecord,
    S2Meta,
    duplicate_error,
    read_metadata,
    validated,
)
from geo_med_sr.errors import InputError, file_error

__all__ = [
    "BASELINE_OFFSET",
    "S2_BANDS",
    "S2_CATEGORICAL",
    "S2_GAIN",
    "S2_WAVELENGTH_NM",
    "cog_folder",
    "s2_band",
    "s2_candidate",
    "s2_file",
    "s2_radiometry",
    "safe_folder",
    "safe_meta",
    "safe_root",
]

#: Sentinel-2 MSI bands in sensor order; the position is the band_id of the ESA metadata (0..12).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: central wavelengths (nm) of Sentinel-2A.
S2_WAVELENGTH_NM = dict(zip(S2_BANDS, (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)))
#: Sentinel-2 bands carried by nearest neighbour (class maps).
S2_CATEGORICAL = ("SCL",)
#: default radiometric gain of Sentinel-2 reflectance DN, and the offset of processing baseline >= 04.00 (DN).
S2_GAIN = 1e-4
BASELINE_OFFSET = -1000.0

_S2_FILE = re.compile(r"(?:^|[_.-])(B0[1-9]|B1[0-2]|B8A|SCL)(?:_(\d+)m)?$", re.IGNORECASE)
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")
_BY_KEY = {band_key(name): name for name in (*S2_BANDS, *S2_CATEGORICAL)}
_NO_BANDS = "no Sentinel-2 band files (B02.tif, *_B02.jp2, *_B02_10m.jp2, ...) in this folder"


# ---------------------------------------------------------------- names


def s2_band(text: str) -> str | None:
    """``"B02"``, ``"B8A"`` or ``"SCL"`` from any spelling :func:`band_key` accepts (``"b2"``, ``"02"``,
    ``"8a"``, ``"scl"``); None for a name that is no Sentinel-2 band."""
    return _BY_KEY.get(band_key(text))


def s2_file(path: Path) -> tuple[str, float | None] | None:
    """Sentinel-2 band code and the ``_20m`` resolution of a band file name, or None (not a band file)."""
    if landsat_sensor(path.name):
        return None
    match = _S2_FILE.search(stem(path))
    if match is None:
        return None
    return match[1].upper(), (float(match[2]) if match[2] else None)


def spacecraft(text: str | None) -> str | None:
    """``"Sentinel-2A"`` from ``"sentinel-2a"``, ``"S2A_MSIL2A_..."`` or ``"Sentinel-2A"``, else ``text``."""
    if not text:
        return None
    match = re.match(r"(?:sentinel-?2|S2)([A-D])(?![A-Za-z0-9])", text, re.IGNORECASE)
    return f"Sentinel-2{match[1].upper()}" if match else text


def baseline_key(baseline: str | None) -> tuple[int, int] | None:
    """``(4, 0)`` from ``"04.00"``; None when absent or unreadable."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", baseline or "")
    return (int(match[1]), int(match[2])) if match else None


def baseline_from_name(name: str) -> str | None:
    """``"04.00"`` from a product name holding ``_N0400_``, else None."""
    match = _BASELINE_IN_NAME.search(name)
    return f"{match[1]}.{match[2]}" if match else None


# ---------------------------------------------------------------- SAFE metadata


def safe_root(path: Path) -> Path | None:
    """The ``.SAFE`` root at or above ``path`` (a folder named ``*.SAFE`` or holding ``GRANULE/``), else None."""
    for folder in [path, *path.parents][:5]:
        if folder.suffix.upper() == ".SAFE" or (folder / "GRANULE").is_dir():
            return folder
    return None


#: a quantification value of an MTD (DN per unit reflectance; 10000 in every product so far).
Quantification = Annotated[float, Field(ge=1.0, le=1e9, allow_inf_nan=False)]
#: a ``band_id`` of an MTD offset: the position in S2_BANDS.
BandId = Annotated[int, Field(ge=0, le=len(S2_BANDS) - 1)]
_MTD_TAGS = (
    "PROCESSING_BASELINE",
    "BOA_QUANTIFICATION_VALUE",
    "QUANTIFICATION_VALUE",
    "SPACECRAFT_NAME",
    "PRODUCT_URI",
)
_MTD_OFFSETS = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")
_MTD_HINT = "not valid Sentinel-2 metadata: repair or remove it, or give the offset with --offset"


class MtdFields(MetadataRecord):
    """The fields read from an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` (element text, converted here).

    Offsets are ``{band_id: DN offset}``; quantification values are DN per unit reflectance.
    """

    PROCESSING_BASELINE: str | None = None
    BOA_QUANTIFICATION_VALUE: Quantification | None = None
    QUANTIFICATION_VALUE: Quantification | None = None
    SPACECRAFT_NAME: str | None = None
    PRODUCT_URI: str | None = None
    BOA_ADD_OFFSET: dict[BandId, DnOffset] = Field(default_factory=dict)
    RADIO_ADD_OFFSET: dict[BandId, DnOffset] = Field(default_factory=dict)


def _mtd_field(loc: tuple) -> str:
    """``RADIO_ADD_OFFSET band_id 13`` for an offset, else the tag name."""
    if loc and loc[0] in _MTD_OFFSETS and len(loc) > 1:
        return f"{loc[0]} band_id {loc[1] if str(loc[1]) else '(none)'}"
    return str(loc[0]) if loc else "<top>"


def _mtd_text(mtd: Path) -> dict[str, object]:
    """The text of the MTD elements we read, by local tag name (offsets as ``{band_id text: text}``).

    Raises:
        InputError: not a regular file, too large, or not well-formed XML.
    """
    data = read_metadata(mtd, "the MTD_MSIL*.xml of a Sentinel-2 product")
    try:
        root = ET.fromstring(data)  # noqa: S314 - expat refuses entity expansion bombs; no external entities
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: an unknown declared encoding
        raise file_error(
            InputError,
            mtd,
            f"unreadable Sentinel-2 metadata ({exc}); repair or remove it, or give the offset with --offset",
        ) from exc
    fields: dict[str, object] = {}
    offsets: dict[str, dict[str, str]] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        text = (element.text or "").strip()
        if tag in _MTD_TAGS:
            fields[tag] = text
        elif tag in _MTD_OFFSETS:
            offsets.setdefault(tag, {})[element.get("band_id", "")] = text
    return {**fields, **offsets}


def read_mtd(mtd: Path, meta: S2Meta) -> None:
    """Fill ``meta`` from an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` (tags matched by local name).

    Raises:
        InputError: unreadable or malformed XML, or a field we read of the wrong type or range
            (one line naming the file and the field, e.g. ``RADIO_ADD_OFFSET band_id 13``).
    """
    fields = validated(MtdFields, _mtd_text(mtd), mtd, _MTD_HINT, where=_mtd_field)
    if fields.PROCESSING_BASELINE:
        meta.baseline = fields.PROCESSING_BASELINE
    for tag in _MTD_OFFSETS:
        meta.offsets.update({S2_BANDS[band_id]: value for band_id, value in getattr(fields, tag).items()})
    if fields.SPACECRAFT_NAME:
        meta.spacecraft = spacecraft(fields.SPACECRAFT_NAME)
    if fields.PRODUCT_URI:
        meta.product = fields.PRODUCT_URI.removesuffix(".SAFE")
    value = fields.BOA_QUANTIFICATION_VALUE or fields.QUANTIFICATION_VALUE
    if value:
        meta.gain = 1.0 / value


def safe_meta(root: Path | None, cache: dict[Path, S2Meta | None]) -> S2Meta | None:
    """Radiometric metadata of a SAFE product from its MTD file and name; None when there is none."""
    if root is None:
        return None
    if root not in cache:
        meta = S2Meta(baseline=baseline_from_name(root.name), spacecraft=spacecraft(root.name))
        meta.product = root.name.removesuffix(".SAFE")
        mtds = sorted(root.glob("MTD_MSIL*.xml"))
        if mtds:
            read_mtd(mtds[0], meta)
        cache[root] = meta if mtds or meta.baseline else None
    return cache[root]


# ---------------------------------------------------------------- bands and folders


def s2_candidate(name: str, path: Path | None, meta: S2Meta | None, role: str = "spectral") -> Candidate:
    """A Sentinel-2 band (SCL becomes categorical)."""
    categorical = name in S2_CATEGORICAL
    wavelength = None if categorical else (meta.wavelengths.get(name) if meta else None)
    if wavelength is None and not categorical:
        wavelength = float(S2_WAVELENGTH_NM[name])
    order = (0, S2_BANDS.index(name)) if name in S2_BANDS else (3, 0)
    return Candidate(
        name, path, 1, "categorical" if categorical and role == "spectral" else role, meta, wavelength, order
    )


def cog_folder(folder: Path) -> tuple[str, str, list[Candidate]]:
    """(kind, product, candidates) of a COG band folder (``B01.tif`` ...; other files ignored)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    found = [(p, s2_file(p)) for p in files if p.suffix.lower() in RASTER_SUFFIXES]
    baseline = baseline_from_name(folder.name)
    meta = S2Meta(baseline=baseline, product=folder.name) if baseline else None
    bands = [s2_candidate(code[0], p, meta) for p, code in found if code]
    if not bands:
        raise file_error(InputError, folder, f"{_NO_BANDS}; pass a COG or .SAFE folder or the band files")
    return "sentinel2", folder.name, bands


def safe_folder(folder: Path, root: Path | None, safe_cache: dict) -> tuple[str, str, list[Candidate]]:
    """(kind, product, candidates) of a ``.SAFE`` folder (``root``) or one of its granule / IMG_DATA
    folders: each band at its finest resolution."""
    meta = safe_meta(root, safe_cache)
    finest: dict[str, tuple[float, Path]] = {}
    for path in sorted(folder.rglob("*")):
        code = s2_file(path) if path.suffix.lower() in RASTER_SUFFIXES and "IMG_DATA" in path.parts else None
        if code is None or path.name.startswith(".") or not path.is_file():
            continue
        resolution = code[1] if code[1] is not None else 0.0
        if code[0] in finest and finest[code[0]][0] == resolution:
            raise duplicate_error(code[0], finest[code[0]][1], path)
        if code[0] not in finest or resolution < finest[code[0]][0]:
            finest[code[0]] = (resolution, path)
    if not finest:
        raise file_error(InputError, folder, f"{_NO_BANDS}; pass the .SAFE folder or its GRANULE/*/IMG_DATA folder")
    product = meta.product if meta and meta.product else (root or folder).name.removesuffix(".SAFE")
    return "safe", product, [s2_candidate(code, path, meta) for code, (_, path) in finest.items()]


def s2_radiometry(name: str, meta: S2Meta | None, offset: float | None) -> tuple[float, float, str]:
    """(gain, DN offset, offset source) of a Sentinel-2 spectral band."""
    gain = (meta.gains.get(name) or meta.gain or S2_GAIN) if meta else S2_GAIN
    if offset is not None:
        return gain, float(offset), "--offset"
    if meta is None:
        return gain, 0.0, "none"
    if meta.offset_applied:
        return gain, 0.0, "metadata"
    if name in meta.offsets:
        return gain, meta.offsets[name], "metadata"
    baseline = baseline_key(meta.baseline)
    if baseline is None:
        return gain, 0.0, "none"
    return (gain, BASELINE_OFFSET, "baseline default") if baseline >= (4, 0) else (gain, 0.0, "metadata")
