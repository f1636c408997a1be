"""Local STAC items of Sentinel-2 products (Earth Search and the like).

An item is validated into :class:`StacItem` first: the fields read here are typed (a wrong type is
one line naming the item and the field path, ``assets.rededge1.raster:bands[0].scale: expected a
number``); any other field, of any STAC extension, is left alone.

An item's data assets that are Sentinel-2 bands become the product's bands: COG assets are preferred
over ``*-jp2`` ones. An asset's file must lie in the item's folder (checked on the resolved path, so
neither ``..`` nor a symbolic link leads out): a relative href, or an absolute path or ``file://`` URL
inside the folder; a remote href (``https://``, ``s3://``...) is replaced by the file of the same
name beside the item (download the assets there). Anything else is refused when the band is
selected; band files passed explicitly are not subject to this.
Radiometry comes from ``raster:bands`` (scale -> gain, offset / scale -> DN offset) and
``earthsearch:boa_offset_applied``; wavelengths from ``eo:bands`` ``center_wavelength`` (µm).

A STAC ItemCollection (a GeoJSON ``FeatureCollection`` of items, what a STAC API search returns) is
read one item at a time, picked by its id (``item=``; :func:`stac_collection_ids` lists them): the
item is read as an item JSON in the collection's folder would be, its local hrefs resolved from the
collection's folder and confined to it. A remote href is refused there: the items of a collection
share one folder, so "the file of the same name" (``B02.tif`` in every Earth Search item) would be
ambiguous; download the assets with their hrefs rewritten to the local files (what STAC download
tools do), or save each item as its own JSON beside its files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

from pydantic import Field, model_validator

from geo_med_sr.adapters.products.records import (
    DN_OFFSET_LIMIT,
    Candidate,
    MetadataRecord,
    S2Meta,
    read_metadata,
    validated,
)
from geo_med_sr.adapters.products.sentinel2 import S2_GAIN, baseline_from_name, s2_band, s2_candidate, spacecraft
from geo_med_sr.errors import InputError, file_error

__all__ = ["STAC_NAMES", "StacItem", "is_stac_item", "read_stac", "stac_collection_ids", "stac_item_id"]

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
_WHAT = "a STAC item JSON"
_HINT = "fix the item, or pass the band files explicitly"
_FIX_HREF = "copy or download the asset beside the item (with a relative href), or pass the band files explicitly"
_FIX_COLLECTION_HREF = (
    "download the assets with their hrefs rewritten to the local files, or save the item as its own JSON beside them"
)
_COLLECTION = "FeatureCollection"
_IDS_SHOWN = 5
_SHOWN_CHARS = 200

# ---------------------------------------------------------------- the fields we read, typed

#: text, never a number or an object converted to text.
Text = Annotated[str, Field(strict=True)]
#: a finite JSON number (an integer is a number; text and true/false are not).
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class RasterBand(MetadataRecord):
    """One ``raster:bands`` entry: ``scale`` is the gain (physical per DN), ``offset`` in physical units."""

    scale: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=1e3)] | None = None
    offset: Number | None = None

    @model_validator(mode="after")
    def _offset_in_dn_is_bounded(self) -> RasterBand:
        if self.offset is not None and abs(self.offset / (self.scale or S2_GAIN)) > DN_OFFSET_LIMIT:
            raise ValueError(f"offset / scale is beyond +-{DN_OFFSET_LIMIT:g} DN")
        return self


class EoBand(MetadataRecord):
    """One ``eo:bands`` entry: its name, description and central wavelength (µm)."""

    name: Text | None = None
    description: Text | None = None
    center_wavelength: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=100)] | None = None


class Asset(MetadataRecord):
    """A STAC asset: where its file is, what it is, its bands."""

    href: Text
    type: Text | None = None
    title: Text | None = None
    roles: list[Text] | None = None
    raster_bands: list[RasterBand] | None = Field(None, alias="raster:bands")
    eo_bands: list[EoBand] | None = Field(None, alias="eo:bands")


class Properties(MetadataRecord):
    """The item properties read here: mission, processing baseline, product name, offset applied."""

    platform: Text | None = None
    constellation: Text | None = None
    processing_baseline: Text | None = Field(None, alias="s2:processing_baseline")
    product_uri: Text | None = Field(None, alias="s2:product_uri")
    boa_offset_applied: Annotated[bool, Field(strict=True)] | None = Field(None, alias="earthsearch:boa_offset_applied")


class StacItem(MetadataRecord):
    """A STAC item (type ``Feature``), only the fields read here typed; every other field is ignored."""

    id: Text | None = None
    properties: Properties | None = None
    assets: dict[str, Asset]


# ---------------------------------------------------------------- reading the item


def _item_json(path: Path) -> Any:
    """The parsed JSON of ``path`` (size-capped, regular files only).

    Raises:
        InputError: not a regular file, too large, not UTF-8 JSON (or nested beyond Python's limit).
    """
    data = read_metadata(path, _WHAT)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        problem = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise file_error(InputError, path, f"not a readable JSON file ({problem}); pass {_WHAT}") from exc


def is_stac_item(path: Path) -> bool:
    """Whether ``path`` is a JSON object of type ``Feature`` (a STAC item, valid or not); never raises."""
    try:
        data = _item_json(path)
    except InputError:
        return False
    return isinstance(data, dict) and data.get("type") == "Feature"


def stac_item_id(path: Path) -> str | None:
    """The text ``id`` of the STAC item JSON at ``path``; None for another JSON, an item without a text
    id, or a file that is not readable JSON. Never raises."""
    try:
        data = _item_json(path)
    except InputError:
        return None
    ident = data.get("id") if isinstance(data, dict) and data.get("type") == "Feature" else None
    return ident if isinstance(ident, str) else None


def _asset_band(key: str, asset: Asset) -> str | None:
    """The Sentinel-2 band of a STAC asset from its key, its eo:bands name or its description/title."""
    base = key.lower().removesuffix("-jp2")
    code = s2_band(base) or STAC_NAMES.get(base)
    eo = asset.eo_bands or []
    if code is None and len(eo) == 1:
        name = (eo[0].name or "").lower()
        code = s2_band(name) or STAC_NAMES.get(name)
        text = f"{eo[0].description or ''} {asset.title or ''}"
        match = _BAND_IN_TEXT.search(text) if code is None else None
        code = s2_band(match[1]) if match else code
    return code


# ---------------------------------------------------------------- hrefs, confined to the item's folder


def _shown(text: str) -> str:
    """``text`` quoted for a message, shortened to about 200 characters (an href may be anything)."""
    return repr(text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "...")


@dataclass(frozen=True)
class _Located:
    """Where a band asset's href leads: ``path`` (inside the item's folder, maybe missing) or a refusal."""

    key: str
    href: str
    path: Path | None
    refusal: Exception | None = None


def _href_target(folder: Path, href: str, remote: bool = True) -> Path | str:
    """The path an href names (not resolved yet), or why it names none.

    Local hrefs (relative, absolute, ``file://``) name that path; remote ones (``https://``,
    ``s3://``...) the file of the same name in ``folder``, or none when ``remote`` is False (an
    item of an ItemCollection: the file of that name would be every item's).
    """
    if "\x00" in href:
        return "holds a NUL character"
    parsed = urlparse(href)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return f"is a file URL on another host ({parsed.netloc})"
        return Path(unquote(parsed.path))
    if not scheme or len(scheme) == 1:  # a path (a Windows drive letter parses as a scheme)
        local = Path(href)
        return local if local.is_absolute() else folder / local
    if not remote:
        return "is remote: the items of an ItemCollection share its folder, so no file there is this item's alone"
    name = PurePosixPath(unquote(parsed.path)).name
    if name in ("", ".", ".."):
        return "names no file"
    return folder / name


def _locate(item: Path, key: str, href: str, collection: str | None = None) -> _Located:
    """The file of asset ``key`` of ``item``: its resolved path, which must lie in the item's folder.

    ``item`` is the JSON file read; ``collection``: the id of the item read from it when it is an
    ItemCollection (its remote hrefs are then refused). Nothing is opened; a refusal names the item,
    the asset, the href and what to do.
    """
    folder = item.parent.resolve()
    target = _href_target(folder, href, remote=collection is None)
    problem = target if isinstance(target, str) else None
    if isinstance(target, Path):
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symbolic link loop, a name too long
            problem = f"cannot be resolved ({exc})"
        else:
            if not resolved.is_relative_to(folder):
                problem = f"leads outside the item's folder {folder} (to {resolved})"
            else:
                return _Located(key, href, resolved)
    where = "" if collection is None else f"item {_shown(collection)}: "
    fix = _FIX_HREF if collection is None else _FIX_COLLECTION_HREF
    refusal = file_error(InputError, item, f"{where}asset {_shown(key)}: href {_shown(href)} {problem}; {fix}")
    return _Located(key, href, None, refusal)


def _band_files(
    item: Path, code: str, entries: list[tuple[bool, str, Asset]], collection: str | None = None
) -> list[Path] | Exception:
    """The files of band ``code`` (COG assets first; a jp2 asset only when no COG asset's file exists).

    ``collection``: the id of the item when ``item`` is an ItemCollection (see :func:`_locate`).

    Returns:
        The distinct existing files, or the refusal to raise if the band is selected: an href that
        leads out of the item's folder, or no asset file present.
    """
    tried: list[_Located] = []
    for jp2 in (False, True):
        located = [_locate(item, key, asset.href, collection) for is_jp2, key, asset in entries if is_jp2 is jp2]
        refused = next((loc.refusal for loc in located if loc.refusal is not None), None)
        if refused is not None:
            return refused
        found = [loc.path for loc in located if loc.path is not None and loc.path.is_file()]
        if found:
            return list(dict.fromkeys(found if not jp2 else found[:1]))  # two assets of one file: one band
        tried += located
    first = tried[0]
    where = "" if collection is None else f"item {_shown(collection)}: "
    return file_error(
        InputError,
        item,
        f"{where}asset {_shown(first.key)} (band {code}, href {_shown(first.href)}): no file {first.path}; "
        "download it beside the item, pass the band files explicitly, or select other bands with --bands",
    )


# ---------------------------------------------------------------- the item


def _collection_features(path: Path, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The items of the ItemCollection ``data`` (read from ``path``) by id, in the collection's order.

    Raises:
        InputError: ``features`` is not a list, or an item is not an object of type ``Feature`` with a
            non-empty text id, or two items share an id (one line naming the collection and the item).
    """
    features = data.get("features")
    if not isinstance(features, list):
        raise file_error(InputError, path, "an ItemCollection whose 'features' is not a list of items; fix it")
    items: dict[str, dict[str, Any]] = {}
    for i, feature in enumerate(features):
        ident = feature.get("id") if isinstance(feature, dict) else None
        if not (isinstance(feature, dict) and feature.get("type") == "Feature"):
            raise file_error(InputError, path, f"features[{i}] is not a STAC item (type 'Feature'); fix the collection")
        if not (isinstance(ident, str) and ident.strip()):
            raise file_error(InputError, path, f"features[{i}] has no id (a non-empty text); fix the collection")
        if ident in items:
            raise file_error(InputError, path, f"item id {_shown(ident)} is given twice (features[{i}]); keep one")
        items[ident] = feature
    return items


def stac_collection_ids(path: Path) -> list[str] | None:
    """The item ids of a STAC ItemCollection JSON (type ``FeatureCollection``), in order; None for any
    other JSON (an item, something else: :func:`read_stac` says what) or a file that is not readable JSON.

    Raises:
        InputError: an ItemCollection without items or with an item that cannot be picked by its id
            (:func:`_collection_features`).
    """
    try:
        data = _item_json(path)
    except InputError:
        return None
    if not (isinstance(data, dict) and data.get("type") == _COLLECTION):
        return None
    ids = list(_collection_features(path, data))
    if not ids:
        raise file_error(InputError, path, "an ItemCollection without items; nothing to read")
    return ids


def _pick(path: Path, data: Any, item: str | None) -> Any:
    """The item JSON to read from ``data`` (the parsed ``path``): ``data`` itself, or item ``item`` of
    an ItemCollection.

    Raises:
        InputError: an ItemCollection without ``item`` (the ids are listed), ``item`` not in it, or
            ``item`` given for a single item of another id.
    """
    if isinstance(data, dict) and data.get("type") == _COLLECTION:
        items = _collection_features(path, data)
        ids = list(items)
        shown = ", ".join(ids[:_IDS_SHOWN]) + (f" (and {len(ids) - _IDS_SHOWN} more)" if len(ids) > _IDS_SHOWN else "")
        if item is None:
            what = f"an ItemCollection of {len(ids)} items ({shown})" if ids else "an ItemCollection without items"
            raise file_error(
                InputError,
                path,
                f"not a STAC item (type {_COLLECTION!r}): {what}; pick one with --item ID, or sharpen them all with "
                "'geo-med-sr batch --sharpen'",
            )
        if item not in items:
            raise file_error(InputError, path, f"no item {_shown(item)} in this ItemCollection; its items: {shown}")
        return items[item]
    if item is not None and isinstance(data, dict) and data.get("type") == "Feature" and data.get("id") != item:
        raise file_error(
            InputError, path, f"a single STAC item of id {_shown(str(data.get('id')))}, not {_shown(item)}; drop --item"
        )
    return data


def read_stac(path: Path, item: str | None = None) -> tuple[str, str, list[Candidate]]:
    """(kind, product, candidates) of a local STAC item JSON, or of item ``item`` of a local ItemCollection.

    Args:
        path: the item JSON, or the ItemCollection JSON (whose folder then holds every item's files).
        item: the id of the item to read from an ItemCollection (needed there; with a single item it
            must be that item's id).

    Raises:
        InputError: not a readable JSON, not a STAC item (an ItemCollection without ``item``, or
            without that item), a field we read of the wrong type (one line naming the item and the
            field path), an item of another mission, or no band asset. A band asset's href out of
            the item's folder, a remote href in an ItemCollection, or its missing file, is refused
            when that band is selected (the candidate's ``error``).
    """
    raw = _item_json(path)
    in_collection = item if isinstance(raw, dict) and raw.get("type") == _COLLECTION else None
    data = _pick(path, raw, item)
    if not (isinstance(data, dict) and data.get("type") == "Feature"):
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise file_error(
            InputError, path, f"not a STAC item (type {kind!r}); pass the JSON of one item (type 'Feature' with assets)"
        )
    item_record = validated(StacItem, data, path, _HINT)
    props = item_record.properties or Properties()
    platform = f"{props.constellation or ''} {props.platform or ''}".lower().strip()
    if platform and not re.search(r"sentinel[-_ ]?2", platform):
        raise file_error(InputError, path, f"a STAC item of {platform[:80]}, not Sentinel-2; pass its band files")
    meta = S2Meta(
        baseline=props.processing_baseline or baseline_from_name(props.product_uri or ""),
        offset_applied=props.boa_offset_applied is True,
        spacecraft=spacecraft(props.platform),
        product=item_record.id or path.stem,
    )
    assets: dict[str, list[tuple[bool, str, Asset]]] = {}
    for key, asset in item_record.assets.items():
        kind = f"{asset.type or ''} {asset.href}".lower()
        code = _asset_band(key, asset) if asset.roles is None or "data" in asset.roles else None
        if code is None or not any(s in kind for s in ("tiff", "jp2", ".tif")):
            continue
        jp2 = key.lower().endswith("-jp2") or "jp2" in kind
        assets.setdefault(code, []).append((jp2, key, asset))
        _stac_radiometry(code, asset, meta)
    candidates = []
    for code, entries in assets.items():
        files = _band_files(path, code, entries, in_collection)
        if isinstance(files, Exception):
            candidate = s2_candidate(code, None, meta)
            candidate.error = files
            candidates.append(candidate)
            continue
        candidates += [s2_candidate(code, file, meta) for file in files]
    if not candidates:
        raise file_error(
            InputError, path, "no Sentinel-2 band asset (blue, B02, ...) with the role 'data' in this item"
        )
    return "stac", meta.product or path.stem, candidates


def _stac_radiometry(code: str, asset: Asset, meta: S2Meta) -> None:
    """Per-band gain (``raster:bands`` scale), DN offset (reflectance offset / scale) and wavelength
    (``eo:bands`` center_wavelength, µm -> nm) of a STAC asset into ``meta``."""
    raster = (asset.raster_bands or [RasterBand()])[0]
    if code not in meta.gains and raster.scale:
        meta.gains[code] = raster.scale
    if code not in meta.offsets and raster.offset is not None:
        meta.offsets[code] = round(raster.offset / (raster.scale or S2_GAIN), 6)
    wavelength = (asset.eo_bands or [EoBand()])[0].center_wavelength
    if code not in meta.wavelengths and wavelength:
        meta.wavelengths[code] = round(wavelength * 1000.0, 3)
