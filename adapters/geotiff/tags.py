"""The hand-off metadata of a written GeoTIFF: band names, band metadata and provenance tags.

Bands without a description are written as ``"band <n>"`` (:func:`band_names`) so that QGIS
and gdalinfo show names; ``meta["provenance"]`` is stored in ``GEO_MED_SR_<KEY>`` dataset tags
(:func:`encode_provenance_value`), which survive the COG copy and a later ``rio cogeo create``;
:meth:`~geo_med_sr.adapters.geotiff.GeoTiffAdapter.read_provenance` reads them back
(:func:`provenance_from_tags`). :func:`apply_metadata` writes all of ``meta["geotiff"]`` to an
open dataset; :func:`layout_metadata` is what a COG copy must keep of it.

Which tags of the input reach the output (:func:`carried_tags`, :func:`carried_band_tags`; the
output is a new pixel grid, so anything measured on the input's pixels would be a lie):

* dropped: ``STATISTICS_*`` (dataset and band tags, also from ``.aux.xml``; ``gdalinfo -stats``
  recomputes them), ``OVR_RESAMPLING_ALG`` / ``OVERVIEW_RESAMPLING`` of the input's overviews (the
  COG writer sets ``OVERVIEW_RESAMPLING=AVERAGE`` for the overviews it builds),
  ``TIFFTAG_MINSAMPLEVALUE`` / ``TIFFTAG_MAXSAMPLEVALUE`` (statistics), ``TIFFTAG_DATETIME``,
  ``TIFFTAG_SOFTWARE`` and ``TIFFTAG_HOSTCOMPUTER`` (they describe the making of the input file;
  the ``GEO_MED_SR_*`` provenance describes the output's);
* recomputed: ``TIFFTAG_XRESOLUTION`` / ``TIFFTAG_YRESOLUTION`` (pixels per unit: times the scale
  of that axis; dropped when the scale is unknown); ``AREA_OR_POINT`` is written explicitly;
* carried: every other tag (``TIFFTAG_DOCUMENTNAME``, ``IMAGEDESCRIPTION``, ``ARTIST``,
  ``COPYRIGHT``, ``RESOLUTIONUNIT``, sensor/product tags, band tags such as wavelengths), band
  descriptions, colour interpretation, scales/offsets, units; the colour table only for
  ``nearest`` outputs (an interpolated palette index is no colour: otherwise the table is dropped
  and ``palette`` becomes ``gray``, with a warning).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rasterio.enums import ColorInterp

from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS, area_or_point, encode_nodata, reason

#: prefix of the dataset tags that carry ``meta["provenance"]`` (``GEO_MED_SR_<KEY>``).
PROVENANCE_PREFIX = "GEO_MED_SR_"


# ---------------------------------------------------------------- provenance codec


def encode_provenance_value(value: Any) -> str:
    """Tag text of one provenance value: JSON, except plain strings that stay readable.

    A string is written raw when reading it back cannot mistake it for JSON (``"edsr"``); a
    string that parses as JSON (``"2"``, ``"true"``, ``"[1]"``), is empty or has
    leading/trailing whitespace (GDAL drops empty tags and strips leading spaces) is written
    JSON-quoted, and every other value as JSON. :func:`decode_provenance_value` inverts it.
    """
    if isinstance(value, str) and value and value == value.strip() and not _parses_as_json(value):
        return value
    return json.dumps(value, sort_keys=True)


def decode_provenance_value(text: str) -> Any:
    """Inverse of :func:`encode_provenance_value`: JSON when the text parses, else the raw string.

    Files written before strings that look like JSON were quoted read such a string as the
    JSON value it spells (``"2"`` -> ``2``); everything else reads back unchanged.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def provenance_tags(provenance: dict[str, Any] | None) -> dict[str, str]:
    """``GEO_MED_SR_<KEY>`` dataset tags of a provenance dict (keys upper-cased)."""
    if not provenance:
        return {}
    return {
        f"{PROVENANCE_PREFIX}{str(key).upper()}": encode_provenance_value(value) for key, value in provenance.items()
    }


def provenance_from_tags(tags: dict[str, str]) -> dict[str, Any] | None:
    """Provenance dict from dataset tags (inverse of the writer's tags), or None when there is none.

    Keys are the tag names without ``GEO_MED_SR_``, lower-cased; values decoded with
    :func:`decode_provenance_value`.
    """
    provenance = {
        key[len(PROVENANCE_PREFIX) :].lower(): decode_provenance_value(value)
        for key, value in tags.items()
        if key.startswith(PROVENANCE_PREFIX)
    }
    return provenance or None


# ---------------------------------------------------------------- which tags are carried

#: dataset/band tags never copied from the input (they describe the input's pixels or file).
DROPPED_TAGS = frozenset(
    {
        "OVR_RESAMPLING_ALG",
        "OVERVIEW_RESAMPLING",
        "TIFFTAG_MINSAMPLEVALUE",
        "TIFFTAG_MAXSAMPLEVALUE",
        "TIFFTAG_DATETIME",
        "TIFFTAG_SOFTWARE",
        "TIFFTAG_HOSTCOMPUTER",
    }
)
#: tag name prefixes never copied (statistics GDAL keeps in tags and .aux.xml).
DROPPED_PREFIXES = ("STATISTICS_",)
#: TIFF resolution tags (pixels per RESOLUTIONUNIT) of the column and the row axis.
RESOLUTION_TAGS = ("TIFFTAG_XRESOLUTION", "TIFFTAG_YRESOLUTION")


def _dropped(key: str) -> bool:
    upper = key.upper()
    return upper in DROPPED_TAGS or upper.startswith(DROPPED_PREFIXES)


def carried_tags(tags: dict[str, Any], factors: Sequence[int] | None) -> dict[str, str]:
    """The input's dataset tags as the output must carry them (see the module docstring).

    Args:
        tags: the input's dataset tags (without ``AREA_OR_POINT``).
        factors: integer scale ``(columns, rows)`` from input to output, or None when unknown
            (resolution tags are then dropped).
    """
    out: dict[str, str] = {}
    for key, value in tags.items():
        key = str(key)
        if _dropped(key):
            continue
        if key.upper() in RESOLUTION_TAGS:
            if factors is None:
                continue
            try:
                value = repr(float(value) * factors[RESOLUTION_TAGS.index(key.upper())])
            except ValueError:
                continue
        out[key] = str(value)
    return out


def carried_band_tags(tags: dict[str, Any]) -> dict[str, str]:
    """One band's tags without statistics (``STATISTICS_*``)."""
    return {str(k): str(v) for k, v in tags.items() if not _dropped(str(k))}


def keeps_colormap(meta: dict[str, Any]) -> bool:
    """Whether a colour table stays true: no provenance (a copy) or a ``nearest`` output."""
    provenance = meta.get("provenance") or {}
    return provenance.get("method", "nearest") == "nearest"


# ---------------------------------------------------------------- band metadata


def band_names(meta: dict[str, Any], count: int) -> list[str]:
    """Band descriptions to write: the source's, with ``"band <n>"`` for bands that have none.

    ``n`` is the band's number in the source file (``meta["geotiff"]["bands"]`` when it lists
    one per output band), else its position 1..count, so QGIS and ``gdalinfo`` always show a
    name. Descriptions whose count does not match ``count`` are ignored (with a warning from
    :func:`apply_metadata`).
    """
    info = meta.get("geotiff") or {}
    descriptions = list(info.get("descriptions") or [])
    if len(descriptions) != count:
        descriptions = [None] * count
    numbers = list(info.get("bands") or [])
    if len(numbers) != count:
        numbers = list(range(1, count + 1))
    return [str(text) if text else f"band {number}" for text, number in zip(descriptions, numbers)]


def apply_metadata(
    dst: Any, meta: dict[str, Any], count: int, path: Path, factors: Sequence[int] | None = None
) -> None:
    """Write descriptions, colour interpretation, colour table, scales/offsets/units and tags of ``meta`` to ``dst``.

    Args:
        dst: a rasterio dataset open for writing with ``count`` bands.
        meta: package metadata (``meta["geotiff"]`` and ``meta["provenance"]``).
        count: bands of ``dst``.
        path: the file warnings name (per-band lists of another length are skipped with a warning).
        factors: integer scale ``(columns, rows)`` from the input to ``dst``, or None when unknown.
    """
    info = meta.get("geotiff") or {}
    _matching(info.get("descriptions"), count, "band descriptions", path)  # warns on a count mismatch
    for i, text in enumerate(band_names(meta, count)):
        dst.set_band_description(i + 1, text)
    colorinterp = _matching(info.get("colorinterp"), count, "colour interpretations", path)
    colormap = info.get("colormap")
    if colormap and not keeps_colormap(meta):
        warnings.warn(
            f"{path}: the colour table is dropped (interpolated palette indexes are no colours); "
            "use --method nearest to keep it",
            UserWarning,
            stacklevel=4,
        )
        colormap = None
        colorinterp = ["gray" if c == "palette" else c for c in colorinterp] if colorinterp else colorinterp
    if colormap:
        _set_colormap(dst, colormap, count, path)
    if colorinterp:
        _set_colorinterp(dst, colorinterp, path)
    scales = _matching(info.get("scales"), count, "scales", path)
    offsets = _matching(info.get("offsets"), count, "offsets", path)
    if scales and any(float(s) != 1.0 for s in scales):
        dst.scales = tuple(float(s) for s in scales)
    if offsets and any(float(o) != 0.0 for o in offsets):
        dst.offsets = tuple(float(o) for o in offsets)
    units = _matching(info.get("units"), count, "units", path)
    if units and any(units):
        dst.units = tuple(str(u or "") for u in units)
    tags = carried_tags(info.get("tags") or {}, factors)
    tags.update(provenance_tags(meta.get("provenance")))
    tags["AREA_OR_POINT"] = area_or_point(info.get("area_or_point"))
    dst.update_tags(**tags)
    for i, band_tags in enumerate(_matching(info.get("band_tags"), count, "band tag sets", path) or []):
        band_tags = carried_band_tags(band_tags or {})
        if band_tags:
            dst.update_tags(i + 1, **band_tags)


def _matching(values: Any, count: int, what: str, path: Path) -> list | None:
    """``values`` as a list when it has one entry per band, else None (with a warning when given)."""
    if values is None:
        return None
    values = list(values)
    if len(values) != count:
        warnings.warn(f"{path}: {len(values)} {what} for {count} bands; {what} not written", UserWarning, stacklevel=4)
        return None
    return values


def _set_colormap(dst: Any, colormap: dict[str, Sequence[int]], count: int, path: Path) -> None:
    """Write the colour table ``{"index": [r, g, b, a]}`` to band 1 (GTiff keeps one table per file)."""
    try:
        dst.write_colormap(1, {int(k): tuple(int(c) for c in v) for k, v in colormap.items()})
    except (ValueError, *GDAL_ERRORS) as exc:
        warnings.warn(f"{path}: colour table not written ({reason(exc)})", UserWarning, stacklevel=5)


def _set_colorinterp(dst: Any, names: Sequence[str], path: Path) -> None:
    try:
        dst.colorinterp = [ColorInterp[str(name)] for name in names]
    except (KeyError, ValueError, *GDAL_ERRORS) as exc:
        warnings.warn(
            f"{path}: colour interpretation {list(names)} not written ({reason(exc)})", UserWarning, stacklevel=4
        )


def layout_metadata(src: Any) -> dict[str, Any]:
    """Grid and metadata a COG copy must keep, as plain comparable values (``src``: an open dataset)."""
    return {
        "grid": (tuple(src.transform), src.crs.to_wkt() if src.crs else None, src.shape, src.count, src.dtypes[0]),
        "nodata": encode_nodata(src.nodata),
        "tags": src.tags(),
        "descriptions": list(src.descriptions),
        "colorinterp": [c.name for c in src.colorinterp],
        "scales": [float(s) for s in src.scales],
        "offsets": [float(o) for o in src.offsets],
        "units": [u or "" for u in src.units],
        "band_tags": [dict(src.tags(b)) for b in src.indexes],
        "mask": [sorted(f.name for f in flags) for flags in src.mask_flag_enums],
        "gcps": [(g.col, g.row, g.x, g.y, g.z) for g in src.gcps[0]],
    }


def dataset_tags(path: str | Path) -> dict[str, str]:
    """The dataset-level tags (GDAL metadata, default domain) of the raster at ``path``."""
    import rasterio

    with rasterio.open(path) as src:
        return dict(src.tags())
