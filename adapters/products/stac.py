"""Local STAC items of Sentinel-2 products (Earth Search and the like).

An item's data assets that are Sentinel-2 bands become the product's bands: COG assets are preferred
over ``*-jp2`` ones, and a remote href is replaced by the file of the same name beside the item.
Radiometry comes from ``raster:bands`` (scale -> gain, offset / scale -> DN offset) and
``earthsearch:boa_offset_applied``; wavelengths from ``eo:bands`` ``center_wavelength`` (µm).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from geo_med_sr.adapters.products.records import Candidate, S2Meta
from geo_med_sr.adapters.products.sentinel2 import S2_GAIN, baseline_from_name, s2_band, s2_candidate, spacecraft
from geo_med_sr.errors import InputError, file_error

__all__ = ["STAC_NAMES", "is_stac_item", "read_stac"]

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

_BAND_IN_TEXT = re.compile(r"\bband\s*(\d{1,2}a?)\b", re.IGNORECASE)


def is_stac_item(path: Path) -> bool:
    """Whether ``path`` is a readable JSON STAC item (type ``Feature`` with assets); never raises."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("type") == "Feature" and isinstance(data.get("assets"), dict)


def _asset_band(key: str, asset: dict) -> str | None:
    """The Sentinel-2 band of a STAC asset from its key, its eo:bands name or its description/title."""
    base = key.lower().removesuffix("-jp2")
    code = s2_band(base) or STAC_NAMES.get(base)
    eo = asset.get("eo:bands") or []
    if code is None and len(eo) == 1 and isinstance(eo[0], dict):
        name = str(eo[0].get("name", "")).lower()
        code = s2_band(name) or STAC_NAMES.get(name)
        text = f"{eo[0].get('description', '')} {asset.get('title', '')}"
        match = _BAND_IN_TEXT.search(text) if code is None else None
        code = s2_band(match[1]) if match else code
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


def read_stac(path: Path) -> tuple[str, str, list[Candidate]]:
    """(kind, product, candidates) of a local STAC item JSON.

    Raises:
        InputError: not a readable JSON, not a STAC item, an item of another mission, or no band asset.
    """
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
    meta = S2Meta(
        baseline=props.get("s2:processing_baseline") or baseline_from_name(str(props.get("s2:product_uri", ""))),
        offset_applied=props.get("earthsearch:boa_offset_applied") is True,
        spacecraft=spacecraft(props.get("platform")),
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
            candidates.append(s2_candidate(code, file, meta))
        if not found:
            key, (_, tried) = resolved[0]
            candidate = s2_candidate(code, None, meta)
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


def _stac_radiometry(code: str, asset: dict, meta: S2Meta) -> None:
    """Per-band gain (``raster:bands`` scale), DN offset (reflectance offset / scale) and wavelength of a
    STAC asset into ``meta``."""
    bands = asset.get("raster:bands") or [{}]
    raster = bands[0] if isinstance(bands[0], dict) else {}
    if code not in meta.gains and raster.get("scale"):
        meta.gains[code] = float(raster["scale"])
    if code not in meta.offsets and raster.get("offset") is not None:
        meta.offsets[code] = round(float(raster["offset"]) / float(raster.get("scale") or S2_GAIN), 6)
    eo = asset.get("eo:bands") or [{}]
    wavelength = eo[0].get("center_wavelength") if isinstance(eo[0], dict) else None
    if code not in meta.wavelengths and wavelength:
        meta.wavelengths[code] = round(float(wavelength) * 1000.0, 3)
