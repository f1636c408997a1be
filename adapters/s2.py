"""Multi-resolution product discovery for guided sharpening (``geo-med-sr sharpen``).

:func:`discover` turns the paths named on the command line into a :class:`Product`: the band files
with their metadata (name, role, central wavelength, radiometry, nodata, pixel size). It reads
headers and metadata files only, never pixels, and does not compare grids (the engine does both).

Inputs (each a path; several may be given):

* a Sentinel-2 COG folder (``B01.tif`` ... ``B12.tif``, ``B8A.tif``, optional ``SCL.tif``; other files
  such as ``TCI.tif``, ``AOT.tif``, thumbnails are ignored). When it holds exactly one ``*.json`` that
  is a STAC item, the item is read instead (as below);
* a ``.SAFE`` folder, one of its granule or ``IMG_DATA`` folders, or its ``MTD_MSIL*.xml``: L1C
  ``IMG_DATA/T.._B02.jp2``, L2A ``IMG_DATA/R10m/T.._B02_10m.jp2`` (each band at its finest resolution),
  radiometry from the root's ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``;
* a local STAC item JSON: its data assets that are Sentinel-2 bands (COG assets preferred over
  ``*-jp2`` ones), a remote href replaced by the file of the same name beside the item;
* band files: Sentinel-2 band files by name (``B05.tif``, ``.._B05.jp2``, ``.._B05_20m.jp2``), or any
  raster, one band per band of the file, named from the band description, else the Landsat band
  code of the file name (``LC08_.._B3.tif`` -> ``"B3"``), else ``"<stem> band <i>"`` (``"<stem>"``);
* ``pan=`` (a single-band file, role ``"pan"``) or ``guide=`` (a file of any number of bands, role
  ``"guide"``), added to the bands of the inputs.

Central wavelengths (nm): a STAC item's ``eo:bands`` ``center_wavelength`` (µm) when given, else the
Sentinel-2A table; the Landsat 8/9 OLI or 7 ETM+ table for a band named ``"B<n>"`` in a file whose name
is a Landsat product id (``LC08``/``LC09``/``LC8``/``LE07``/``LE7``); else None.

Radiometry, ``physical = (DN + offset) * scale`` (offset in DN units):

* Sentinel-2 spectral bands: ``scale`` = 1e-4, or ``1/QUANTIFICATION_VALUE``, or the STAC
  ``raster:bands`` scale; ``offset`` from the metadata (MTD ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``,
  STAC ``raster:bands`` offset / scale; 0 when ``earthsearch:boa_offset_applied``); with no offset in
  the metadata, -1000 from processing baseline 04.00 on ("baseline default") and 0 before it; the
  baseline is also read from a product name's ``_Nxxyy_`` field. ``offset=`` overrides all of this
  ("--offset"); with no metadata at all the offset is 0 ("none");
* categorical bands (SCL): scale 1, offset 0;
* other rasters: scale 1, offset 0, unless the header has GDAL scales/offsets (then ``scale`` =
  the GDAL scale and ``offset`` = GDAL offset / GDAL scale).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS, reason
from geo_med_sr.errors import InputError, InputNotFoundError, file_error

#: Sentinel-2 MSI bands in sensor order; the position is the band_id of the ESA metadata (0..12).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: central wavelengths (nm) of Sentinel-2A.
S2_WAVELENGTH_NM = dict(zip(S2_BANDS, (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)))
#: Sentinel-2 bands carried by nearest neighbour (class maps).
S2_CATEGORICAL = ("SCL",)
#: Landsat 8/9 OLI and Landsat 7 ETM+ central wavelengths (nm).
OLI_WAVELENGTH_NM = {
    "B1": 443,
    "B2": 482,
    "B3": 561,
    "B4": 655,
    "B5": 865,
    "B6": 1609,
    "B7": 2201,
    "B8": 590,
    "B9": 1373,
}
ETM_WAVELENGTH_NM = {"B1": 485, "B2": 560, "B3": 660, "B4": 835, "B5": 1650, "B7": 2220, "B8": 710}
#: STAC asset keys / eo:bands names of the Sentinel-2 bands (Earth Search).
STAC_NAMES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
#: default scale of Sentinel-2 reflectance DN, and the offset of processing baseline >= 04.00 (DN).
S2_SCALE = 1e-4
BASELINE_OFFSET = -1000.0
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")

_S2_FILE = re.compile(r"(?:^|[_.-])(B0[1-9]|B1[0-2]|B8A|SCL)(?:_(\d+)m)?$", re.IGNORECASE)
_S2_CODE = re.compile(r"B?0?([1-9]|1[0-2]|8A)|SCL", re.IGNORECASE)
_LANDSAT = re.compile(r"(?:^|[^A-Za-z0-9])(LC0[89]|LC[89]|LE0?7)(?=[_\d])", re.IGNORECASE)
_LANDSAT_BAND = re.compile(r"_B(\d{1,2})$", re.IGNORECASE)
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")
_BAND_IN_TEXT = re.compile(r"\bband\s*(\d{1,2}a?)\b", re.IGNORECASE)
_NO_BANDS = "no Sentinel-2 band files (B02.tif, *_B02.jp2, *_B02_10m.jp2, ...) in this folder"


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
        scale: physical = (DN + offset) * scale.
        offset: in DN units.
        nodata: the band's nodata value from the header, or None.
        resolution: pixel size in CRS units (the larger of the two axes), None without a geotransform.
    """

    name: str
    path: Path
    index: int
    role: str
    wavelength_nm: float | None
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    resolution: float | None = None


@dataclass(frozen=True)
class Product:
    """What :func:`discover` found.

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
class _S2Meta:
    """Radiometric metadata of one Sentinel-2 product (offsets in DN units, keyed by band name)."""

    baseline: str | None = None
    scale: float | None = None
    scales: dict[str, float] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    offset_applied: bool = False
    spacecraft: str | None = None
    product: str | None = None
    wavelengths: dict[str, float] = field(default_factory=dict)


@dataclass
class _Candidate:
    """A band found before selection; ``error`` is raised only if the band is selected."""

    name: str
    path: Path | None
    index: int
    role: str
    s2: _S2Meta | None | bool = False  # False: not Sentinel-2; None: Sentinel-2 without metadata
    wavelength_nm: float | None = None
    order: tuple = ()
    scale: float = 1.0
    offset: float = 0.0
    error: Exception | None = None


@dataclass(frozen=True)
class _Header:
    count: int
    descriptions: tuple[str | None, ...]
    nodata: tuple[float | None, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    resolution: float | None


# ---------------------------------------------------------------- names


def _stem(path: Path) -> str:
    """File name without its raster suffix."""
    name = path.name
    for suffix in RASTER_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _s2_code(text: str) -> str | None:
    """``"B02"``, ``"B8A"`` or ``"SCL"`` from ``"b2"``, ``"B02"``, ``"8a"``, ``"scl"``; None otherwise."""
    match = _S2_CODE.fullmatch(text.strip())
    if match is None:
        return None
    if match[1] is None:
        return "SCL"
    number = match[1].upper()
    return "B8A" if number == "8A" else f"B{int(number):02d}"


def _s2_file(path: Path) -> tuple[str, float | None] | None:
    """Sentinel-2 band code and the ``_20m`` resolution of a band file name, or None (not a band file)."""
    if _LANDSAT.search(path.name):
        return None
    match = _S2_FILE.search(_stem(path))
    if match is None:
        return None
    return match[1].upper(), (float(match[2]) if match[2] else None)


def _landsat_sensor(name: str) -> str | None:
    """``"Landsat-8"``, ``"Landsat-9"``, ``"Landsat-7"`` from a Landsat product id in a file name, else None."""
    match = _LANDSAT.search(name)
    if match is None:
        return None
    return f"Landsat-{match[1][-1]}"


def _landsat_wavelength(sensor: str | None, name: str) -> float | None:
    """Central wavelength (nm) of Landsat band ``name`` (``"B3"``, ``"B03"``) for ``sensor``, else None."""
    if sensor is None:
        return None
    table = ETM_WAVELENGTH_NM if sensor == "Landsat-7" else OLI_WAVELENGTH_NM
    value = table.get(_canon(name).upper())
    return None if value is None else float(value)


def _canon(name: str) -> str:
    """Selection key: ``"B5"``, ``"B05"``, ``"b5"``, ``"5"`` -> ``"B5"``; ``"8a"`` -> ``"B8A"``; else casefolded."""
    match = re.fullmatch(r"[Bb]?0*(\d{1,2})([Aa]?)", name.strip())
    return f"B{int(match[1])}{match[2].upper()}" if match else name.strip().casefold()


def _spacecraft(text: str | None) -> str | None:
    """``"Sentinel-2A"`` from ``"sentinel-2a"``, ``"S2A_MSIL2A_..."`` or ``"Sentinel-2A"``, else ``text``."""
    if not text:
        return None
    match = re.match(r"(?:sentinel-?2|S2)([A-D])(?![A-Za-z0-9])", text, re.IGNORECASE)
    return f"Sentinel-2{match[1].upper()}" if match else text


def _baseline_key(baseline: str | None) -> tuple[int, int] | None:
    """``(4, 0)`` from ``"04.00"``; None when absent or unreadable."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", baseline or "")
    return (int(match[1]), int(match[2])) if match else None


def _baseline_from_name(name: str) -> str | None:
    """``"04.00"`` from a product name holding ``_N0400_``, else None."""
    match = _BASELINE_IN_NAME.search(name)
    return f"{match[1]}.{match[2]}" if match else None


# ---------------------------------------------------------------- headers


def _header(path: Path, cache: dict[Path, _Header]) -> _Header:
    """Band count, descriptions, nodata, GDAL scales/offsets and pixel size of ``path`` (no pixels read)."""
    if path in cache:
        return cache[path]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                t = src.transform
                resolution = None if t.is_identity else max(math.hypot(t.a, t.d), math.hypot(t.b, t.e))
                header = _Header(
                    count=src.count,
                    descriptions=tuple(src.descriptions),
                    nodata=tuple(None if v is None else float(v) for v in src.nodatavals),
                    scales=tuple(1.0 if v is None else float(v) for v in src.scales),
                    offsets=tuple(0.0 if v is None else float(v) for v in src.offsets),
                    resolution=resolution,
                )
    except GDAL_ERRORS as exc:
        raise file_error(
            InputError, path, f"not a readable raster ({reason(exc)}); the file may be truncated or corrupt"
        ) from exc
    cache[path] = header
    return header


def _existing(path: str | os.PathLike) -> Path:
    """``path`` made absolute and resolved; InputNotFoundError when it does not exist."""
    path = Path(path).expanduser()
    if not path.exists():
        raise file_error(InputNotFoundError, path, "no such file or folder")
    return path.resolve()


# ---------------------------------------------------------------- Sentinel-2 metadata


def _safe_root(path: Path) -> Path | None:
    """The ``.SAFE`` root at or above ``path`` (a folder named ``*.SAFE`` or holding ``GRANULE/``), else None."""
    for folder in [path, *path.parents][:5]:
        if folder.suffix.upper() == ".SAFE" or (folder / "GRANULE").is_dir():
            return folder
    return None


def _read_mtd(mtd: Path, meta: _S2Meta) -> None:
    """Fill ``meta`` from an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` (tags matched by local name)."""
    quantification: dict[str, float] = {}
    try:
        for element in ET.parse(mtd).iter():
            tag = element.tag.rsplit("}", 1)[-1]
            text = (element.text or "").strip()
            if tag == "PROCESSING_BASELINE":
                meta.baseline = text
            elif tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE"):
                quantification[tag] = float(text)
            elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
                band_id = int(element.get("band_id", ""))
                if not 0 <= band_id < len(S2_BANDS):
                    raise ValueError(f"band_id {band_id} outside 0..{len(S2_BANDS) - 1}")
                meta.offsets[S2_BANDS[band_id]] = float(text)
            elif tag == "SPACECRAFT_NAME":
                meta.spacecraft = _spacecraft(text)
            elif tag == "PRODUCT_URI":
                meta.product = text.removesuffix(".SAFE")
    except (ET.ParseError, OSError, ValueError, IndexError) as exc:
        raise file_error(
            InputError,
            mtd,
            f"unreadable Sentinel-2 metadata ({exc}); repair or remove it, or give the offset with --offset",
        ) from exc
    value = quantification.get("BOA_QUANTIFICATION_VALUE", quantification.get("QUANTIFICATION_VALUE"))
    if value:
        meta.scale = 1.0 / value


def _safe_meta(root: Path | None, cache: dict[Path, _S2Meta | None]) -> _S2Meta | None:
    """Radiometric metadata of a SAFE product from its MTD file and name; None when there is none."""
    if root is None:
        return None
    if root not in cache:
        meta = _S2Meta(baseline=_baseline_from_name(root.name), spacecraft=_spacecraft(root.name))
        meta.product = root.name.removesuffix(".SAFE")
        mtds = sorted(root.glob("MTD_MSIL*.xml"))
        if mtds:
            _read_mtd(mtds[0], meta)
        cache[root] = meta if mtds or meta.baseline else None
    return cache[root]


def _s2_candidate(name: str, path: Path | None, meta: _S2Meta | None, role: str = "spectral") -> _Candidate:
    """A Sentinel-2 band (SCL becomes categorical)."""
    categorical = name in S2_CATEGORICAL
    wavelength = None if categorical else (meta.wavelengths.get(name) if meta else None)
    if wavelength is None and not categorical:
        wavelength = float(S2_WAVELENGTH_NM[name])
    order = (0, S2_BANDS.index(name)) if name in S2_BANDS else (3, 0)
    return _Candidate(
        name, path, 1, "categorical" if categorical and role == "spectral" else role, meta, wavelength, order
    )


def _duplicate(name: str, first: object, second: object) -> InputError:
    return file_error(InputError, first, f"band {name} is given twice, here and in {second}; keep one of the two files")


# ---------------------------------------------------------------- inputs


def _folder(folder: Path, safe_cache: dict) -> tuple[str, str, list[_Candidate]]:
    """(kind, product, candidates) of a COG or SAFE folder."""
    root = _safe_root(folder)
    if root is None and folder.name.upper() != "IMG_DATA" and not (folder / "IMG_DATA").is_dir():
        items = [p for p in sorted(folder.glob("*.json")) if _is_stac_item(p)]
        if len(sorted(folder.glob("*.json"))) == 1 and items:
            return _stac(items[0])
        files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
        found = [(p, _s2_file(p)) for p in files if p.suffix.lower() in RASTER_SUFFIXES]
        baseline = _baseline_from_name(folder.name)
        meta = _S2Meta(baseline=baseline, product=folder.name) if baseline else None
        bands = [_s2_candidate(code[0], p, meta) for p, code in found if code]
        if not bands:
            raise file_error(InputError, folder, f"{_NO_BANDS}; pass a COG or .SAFE folder or the band files")
        return "sentinel2", folder.name, bands
    meta = _safe_meta(root, safe_cache)
    finest: dict[str, tuple[float, Path]] = {}
    for path in sorted(folder.rglob("*")):
        code = _s2_file(path) if path.suffix.lower() in RASTER_SUFFIXES and "IMG_DATA" in path.parts else None
        if code is None or path.name.startswith(".") or not path.is_file():
            continue
        resolution = code[1] if code[1] is not None else 0.0
        if code[0] in finest and finest[code[0]][0] == resolution:
            raise _duplicate(code[0], finest[code[0]][1], path)
        if code[0] not in finest or resolution < finest[code[0]][0]:
            finest[code[0]] = (resolution, path)
    if not finest:
        raise file_error(InputError, folder, f"{_NO_BANDS}; pass the .SAFE folder or its GRANULE/*/IMG_DATA folder")
    product = meta.product if meta and meta.product else (root or folder).name.removesuffix(".SAFE")
    return "safe", product, [_s2_candidate(code, path, meta) for code, (_, path) in finest.items()]


def _is_stac_item(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("type") == "Feature" and isinstance(data.get("assets"), dict)


def _asset_band(key: str, asset: dict) -> str | None:
    """The Sentinel-2 band of a STAC asset from its key, its eo:bands name or its description/title."""
    base = key.lower().removesuffix("-jp2")
    code = _s2_code(base) or STAC_NAMES.get(base)
    eo = asset.get("eo:bands") or []
    if code is None and len(eo) == 1 and isinstance(eo[0], dict):
        name = str(eo[0].get("name", "")).lower()
        code = _s2_code(name) or STAC_NAMES.get(name)
        text = f"{eo[0].get('description', '')} {asset.get('title', '')}"
        match = _BAND_IN_TEXT.search(text) if code is None else None
        code = _s2_code(match[1]) if match else code
    return code


def _resolve_href(item: Path, href: str) -> tuple[Path | None, list[str]]:
    """Local file of an asset href: the local path when it exists, else the same basename beside the item."""
    parsed = urlparse(href)
    beside = item.parent / Path(unquote(parsed.path)).name
    tried = [beside]
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a path (a Windows drive letter is a scheme)
        local = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(href)
        tried.insert(0, local if local.is_absolute() else item.parent / local)
    for path in tried:
        if path.is_file():
            return path.resolve(), [str(p) for p in tried]
    return None, [href if len(tried) == 1 else str(tried[0]), str(beside)]


def _stac(path: Path) -> tuple[str, str, list[_Candidate]]:
    """(kind, product, candidates) of a local STAC item JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise file_error(InputError, path, f"not a readable JSON file ({exc}); pass a STAC item JSON") from exc
    if not (isinstance(data, dict) and data.get("type") == "Feature" and isinstance(data.get("assets"), dict)):
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise file_error(
            InputError, path, f"not a STAC item (type {kind!r}); pass the JSON of one item (type 'Feature' with assets)"
        )
    props = data.get("properties") or {}
    platform = f"{props.get('constellation', '')} {props.get('platform', '')}".lower()
    if platform.strip() and not re.search(r"sentinel[-_ ]?2", platform):
        raise file_error(InputError, path, f"a STAC item of {platform.strip()}, not Sentinel-2; pass its band files")
    meta = _S2Meta(
        baseline=props.get("s2:processing_baseline") or _baseline_from_name(str(props.get("s2:product_uri", ""))),
        offset_applied=props.get("earthsearch:boa_offset_applied") is True,
        spacecraft=_spacecraft(props.get("platform")),
        product=str(data.get("id") or path.stem),
    )
    assets: dict[str, list[tuple[bool, str, dict]]] = {}
    for key, asset in data["assets"].items():
        roles = asset.get("roles") if isinstance(asset, dict) else []
        href = str(asset.get("href", "")) if isinstance(asset, dict) else ""
        kind = f"{asset.get('type', '')} {href}".lower() if isinstance(asset, dict) else ""
        code = _asset_band(key, asset) if isinstance(asset, dict) and (roles is None or "data" in roles) else None
        if code is None or not any(s in kind for s in ("tiff", "jp2", ".tif")):
            continue
        jp2 = key.lower().endswith("-jp2") or "jp2" in kind
        assets.setdefault(code, []).append((jp2, key, asset))
        _stac_radiometry(code, asset, meta)
    candidates = []
    for code, entries in assets.items():
        entries.sort(key=lambda e: e[0])  # COG assets first
        resolved = [(k, _resolve_href(path, str(a.get("href", "")))) for jp2, k, a in entries if not jp2]
        found = [(k, p) for k, (p, _) in resolved if p is not None]
        if not found:  # a jp2 asset only when no COG asset can be used
            resolved += [(k, _resolve_href(path, str(a.get("href", "")))) for jp2, k, a in entries if jp2]
            found = [(k, p) for k, (p, _) in resolved if p is not None][:1]
        for file in dict.fromkeys(p for _, p in found):  # two assets of one file give one band
            candidates.append(_s2_candidate(code, file, meta))
        if not found:
            key, (_, tried) = resolved[0]
            candidate = _s2_candidate(code, None, meta)
            candidate.error = file_error(
                InputError,
                path,
                f"asset {key!r} (band {code}): neither {tried[0]} nor {tried[-1]} exists; "
                "download the file beside the item, or select other bands with --bands",
            )
            candidates.append(candidate)
    if not candidates:
        raise file_error(
            InputError, path, "no Sentinel-2 band asset (blue, B02, ...) with the role 'data' in this item"
        )
    return "stac", meta.product, candidates


def _stac_radiometry(code: str, asset: dict, meta: _S2Meta) -> None:
    """Per-band scale, DN offset (reflectance offset / scale) and wavelength of a STAC asset into ``meta``."""
    bands = asset.get("raster:bands") or [{}]
    raster = bands[0] if isinstance(bands[0], dict) else {}
    if code not in meta.scales and raster.get("scale"):
        meta.scales[code] = float(raster["scale"])
    if code not in meta.offsets and raster.get("offset") is not None:
        meta.offsets[code] = round(float(raster["offset"]) / float(raster.get("scale") or S2_SCALE), 6)
    eo = asset.get("eo:bands") or [{}]
    wavelength = eo[0].get("center_wavelength") if isinstance(eo[0], dict) else None
    if code not in meta.wavelengths and wavelength:
        meta.wavelengths[code] = round(float(wavelength) * 1000.0, 3)


def _file(path: Path, role: str, position: int, cache: dict, safe_cache: dict) -> list[_Candidate]:
    """Candidates of one band file: a Sentinel-2 band by name, or every band of any raster."""
    code = _s2_file(path)
    if code is not None and role != "pan":
        header = _header(path, cache)
        if header.count != 1:
            raise file_error(
                InputError, path, f"named as Sentinel-2 band {code[0]} but holds {header.count} bands; expected one"
            )
        return [_s2_candidate(code[0], path, _safe_meta(_safe_root(path.parent), safe_cache), role)]
    header = _header(path, cache)
    stem, sensor = _stem(path), _landsat_sensor(path.name)
    landsat = _LANDSAT_BAND.search(stem) if sensor else None
    code_name = f"B{int(landsat[1])}" if landsat else None
    described = [(d or "").strip() for d in header.descriptions]
    out = []
    for i in range(1, header.count + 1):
        desc = described[i - 1]
        if desc and described.count(desc) == 1:
            name = desc
        elif role == "pan":
            name = "pan"
        elif header.count == 1:
            name = code_name or stem
        else:
            name = f"{stem} band {i}"
        wavelength = _landsat_wavelength(sensor, name) or (
            _landsat_wavelength(sensor, code_name) if code_name else None
        )
        scale = header.scales[i - 1] or 1.0
        order = (1, int(landsat[1])) if landsat and header.count == 1 and not desc else (2, position, i)
        out.append(_Candidate(name, path, i, role, False, wavelength, order, scale, header.offsets[i - 1] / scale))
    return out


def _discover_input(path: Path, position: int, cache: dict, safe_cache: dict) -> tuple[str, str, list[_Candidate]]:
    """(kind, product, candidates) of one input path."""
    if path.is_dir():
        return _folder(path, safe_cache)
    if path.suffix.lower() == ".json":
        return _stac(path)
    if re.fullmatch(r"MTD_MSIL\w+\.xml", path.name, re.IGNORECASE):
        return _folder(path.parent, safe_cache)
    return "files", _stem(path), _file(path, "spectral", position, cache, safe_cache)


# ---------------------------------------------------------------- selection and the product


def _select(candidates: list[_Candidate], bands: Sequence[str] | None, where: Path) -> list[_Candidate]:
    """Spectral bands named in ``bands`` (and categorical ones only when named); all when ``bands`` is None."""
    if not bands:
        return candidates
    if isinstance(bands, str):
        bands = [bands]
    wanted = {_canon(b) for b in bands}
    known = {_canon(c.name) for c in candidates}
    unknown = [b for b in bands if _canon(b) not in known]
    if unknown:
        names = ", ".join(c.name for c in sorted(candidates, key=lambda c: c.order))
        raise file_error(
            InputError, where, f"no band named {', '.join(unknown)}; the bands found are: {names}; choose among them"
        )
    return [c for c in candidates if _canon(c.name) in wanted]


def _spec(candidate: _Candidate, offset: float | None, cache: dict) -> tuple[BandSpec, str | None]:
    """The BandSpec of a selected candidate, with the offset source of a Sentinel-2 spectral band (else None)."""
    if candidate.error is not None:
        raise candidate.error
    header = _header(candidate.path, cache)
    scale, offset_value, source = candidate.scale, candidate.offset, None
    if candidate.s2 is not False and candidate.name not in S2_CATEGORICAL:
        scale, offset_value, source = _s2_radiometry(candidate.name, candidate.s2, offset)
    spec = BandSpec(
        name=candidate.name,
        path=candidate.path,
        index=candidate.index,
        role=candidate.role,
        wavelength_nm=candidate.wavelength_nm,
        scale=scale,
        offset=offset_value,
        nodata=header.nodata[candidate.index - 1],
        resolution=header.resolution,
    )
    return spec, source


def _s2_radiometry(name: str, meta: _S2Meta | None, offset: float | None) -> tuple[float, float, str]:
    """(scale, DN offset, offset source) of a Sentinel-2 spectral band."""
    scale = (meta.scales.get(name) or meta.scale or S2_SCALE) if meta else S2_SCALE
    if offset is not None:
        return scale, float(offset), "--offset"
    if meta is None:
        return scale, 0.0, "none"
    if meta.offset_applied:
        return scale, 0.0, "metadata"
    if name in meta.offsets:
        return scale, meta.offsets[name], "metadata"
    baseline = _baseline_key(meta.baseline)
    if baseline is None:
        return scale, 0.0, "none"
    return (scale, BASELINE_OFFSET, "baseline default") if baseline >= (4, 0) else (scale, 0.0, "metadata")


def discover(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | None = None,
    offset: float | None = None,
) -> Product:
    """Find the bands of a multi-resolution product (headers only; grids are not compared).

    Args:
        inputs: paths: a Sentinel-2 COG folder, a ``.SAFE`` folder (or its ``IMG_DATA``), a STAC item
            JSON, band files or any rasters (several may be given).
        pan: a single-band raster, added with role ``"pan"`` (kind ``"pan"``).
        guide: a raster of any number of bands, added with role ``"guide"`` (kind ``"guide"``).
        bands: names of the spectral bands to keep (case-insensitive; ``"B5"`` == ``"B05"``,
            ``"8A"`` == ``"B8A"``); categorical bands are kept only when named. None keeps all.
        offset: DN offset for every Sentinel-2 spectral band, overriding the metadata.

    Returns:
        The :class:`Product`.

    Raises:
        InputError: a missing path (InputNotFoundError), a folder without band files, a band given
            twice, an unreadable file or metadata, a JSON that is not a STAC item, a missing STAC
            asset file, ``pan`` and ``guide`` together, a pan of several bands, an unknown band name,
            or ``offset`` without any Sentinel-2 spectral band.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if pan is not None and guide is not None:
        raise file_error(InputError, pan, f"--pan and --guide ({guide}) cannot be used together; give one of them")
    if not inputs:
        raise file_error(InputError, "<inputs>", "no input given; name a product folder, a STAC item or band files")
    cache: dict[Path, _Header] = {}
    safe_cache: dict[Path, _S2Meta | None] = {}
    paths = [_existing(p) for p in inputs]
    found = [_discover_input(p, i, cache, safe_cache) for i, p in enumerate(paths)]
    candidates = _select([c for _, _, group in found for c in group], bands, paths[0])
    extra: list[_Candidate] = []
    for role, value in (("pan", pan), ("guide", guide)):
        if value is not None:
            path = _existing(value)
            if path.is_dir():
                raise file_error(InputError, path, f"a folder; --{role} takes one raster file")
            extra = _file(path, role, len(paths), cache, safe_cache)
            if role == "pan" and len(extra) > 1:
                raise file_error(InputError, path, f"a pan must have one band, this file has {len(extra)}; pick one")
            paths.append(path)
    spectral = sorted((c for c in candidates if c.role == "spectral"), key=lambda c: c.order)
    categorical = [c for c in candidates if c.role == "categorical"]
    specs, sources = [], []
    for candidate in [*spectral, *extra, *categorical]:
        spec, source = _spec(candidate, offset, cache)
        specs.append(spec)
        if source is not None and spec.role == "spectral":
            sources.append((source, spec.offset))
    seen: dict[str, BandSpec] = {}
    for spec in specs:
        other = seen.setdefault(_canon(spec.name), spec)
        if other is not spec:
            raise _duplicate(spec.name, other.path, spec.path)
    if offset is not None and not sources:
        raise file_error(InputError, paths[0], "--offset applies to Sentinel-2 bands and none was found; remove it")
    return Product(tuple(specs), _kind(found, pan, guide), _meta(found, paths, sources))


def _kind(found: list[tuple[str, str, list[_Candidate]]], pan: object, guide: object) -> str:
    if pan is not None:
        return "pan"
    if guide is not None:
        return "guide"
    kinds = {kind for kind, _, _ in found}
    return kinds.pop() if len(kinds) == 1 else "files"


def _meta(found: list[tuple[str, str, list[_Candidate]]], paths: list[Path], sources: list) -> dict[str, Any]:
    """The Product's JSON-able meta."""
    metas = [c.s2 for _, _, group in found for c in group if isinstance(c.s2, _S2Meta)]
    product = found[0][1] if found[0][0] != "files" or len(found) == 1 else paths[0].parent.name
    names = {source for source, _ in sources}
    source = "none" if not names else names.pop() if len(names) == 1 else "metadata"
    spacecraft = next((m.spacecraft for m in metas if m.spacecraft), None)
    spacecraft = spacecraft or _landsat_sensor(paths[0].name) or _spacecraft(_stem(paths[0]))
    if spacecraft and not spacecraft.startswith(("Sentinel", "Landsat")):
        spacecraft = None
    return {
        "product": product,
        "processing_baseline": next((m.baseline for m in metas if m.baseline), None),
        "offset_source": source,
        "offset": float(sources[0][1]) if sources else 0.0,
        "spacecraft": spacecraft,
        "inputs": [str(p) for p in paths],
    }
