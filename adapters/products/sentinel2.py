"""Sentinel-2 MSI: band names and wavelengths, band file names, COG band folders, ``.SAFE`` products
(L1C and L2A), their ``MTD_MSIL*.xml`` metadata and the L1C/L2A radiometric offsets.

Radiometry of the spectral bands, ``physical = (DN + offset) * gain`` (offset in DN units): ``gain``
= 1e-4, or ``1/QUANTIFICATION_VALUE``, or the STAC ``raster:bands`` scale; ``offset`` from the
metadata (MTD ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``, STAC ``raster:bands`` offset / scale; 0 when
``earthsearch:boa_offset_applied``); with no offset in the metadata, -1000 from processing baseline
04.00 on ("baseline default") and 0 before it; the baseline is also read from a product name's
``_Nxxyy_`` field. An ``offset=`` given to discovery overrides all of this ("--offset"); with no
metadata at all the offset is 0 ("none"). Categorical bands (SCL): gain 1, offset 0.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from geo_med_sr.adapters.products.landsat import landsat_sensor
from geo_med_sr.adapters.products.names import RASTER_SUFFIXES, band_key, stem
from geo_med_sr.adapters.products.records import Candidate, S2Meta, duplicate_error
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


def read_mtd(mtd: Path, meta: S2Meta) -> None:
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
                meta.spacecraft = spacecraft(text)
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
