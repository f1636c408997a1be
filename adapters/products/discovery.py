"""Which kind of product each input path is, and the :class:`Product` made of their bands.

:func:`discover` turns the paths named on the command line into a :class:`Product`: the band files
with their metadata (name, role, central wavelength, radiometry, nodata, pixel size). It reads
headers and metadata files only, never pixels, and does not compare grids (the engine does both).

Inputs (each a path; several may be given):

* a Sentinel-2 COG folder (``B01.tif`` ... ``B12.tif``, ``B8A.tif``, optional ``SCL.tif``; other files
  such as ``TCI.tif``, ``AOT.tif``, thumbnails are ignored). When it holds exactly one ``*.json`` that
  is a STAC item, the item is read instead (:mod:`.stac`);
* a ``.SAFE`` folder, one of its granule or ``IMG_DATA`` folders, or its ``MTD_MSIL*.xml``
  (:mod:`.sentinel2`);
* a local STAC item JSON (:mod:`.stac`; its asset files must lie in its folder), or one item of a
  local STAC ItemCollection JSON (``item=``, its id);
* band files: Sentinel-2 band files by name (``B05.tif``, ``.._B05.jp2``, ``.._B05_20m.jp2``), or any
  raster, one band per band of the file, named from the band description, else the Landsat band
  code of the file name (``LC08_.._B3.tif`` -> ``"B3"``, :mod:`.landsat`), else ``"<stem> band <i>"``
  (``"<stem>"``);
* ``pan=`` (a single-band file, role ``"pan"``) or ``guide=`` (a file of any number of bands, role
  ``"guide"``), added to the bands of the inputs.

:func:`list_products` names the products an input of ``batch --sharpen`` holds (one per item of an
ItemCollection), from paths and JSON only.

Every Sentinel-2 band file, however it was found, must hold exactly one band
(:func:`~.records.check_one_band`, run on each selected band).

Central wavelengths (nm): a STAC item's ``eo:bands`` when given, else the Sentinel-2A table; the
Landsat 8/9 OLI or 7 ETM+ table for a band named ``"B<n>"`` in a file whose name is a Landsat product
id; else None. Radiometry, ``physical = (DN + offset) * gain``: Sentinel-2 bands as :mod:`.sentinel2`
says; other rasters gain 1, offset 0, unless the header has GDAL scales/offsets (then ``gain`` = the
GDAL scale and ``offset`` = GDAL offset / GDAL scale).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_med_sr.adapters.products.landsat import landsat_band, landsat_sensor, landsat_wavelength
from geo_med_sr.adapters.products.names import RASTER_SUFFIXES, band_key, parse_band_names, stem
from geo_med_sr.adapters.products.records import (
    BandSpec,
    Candidate,
    Header,
    Product,
    S2Meta,
    check_one_band,
    duplicate_error,
    existing,
    read_header,
)
from geo_med_sr.adapters.products.sentinel2 import (
    S2_CATEGORICAL,
    cog_folder,
    s2_candidate,
    s2_file,
    s2_radiometry,
    safe_folder,
    safe_meta,
    safe_root,
    spacecraft,
)
from geo_med_sr.adapters.products.stac import is_stac_item, read_stac, stac_collection_ids, stac_item_id
from geo_med_sr.errors import InputError, file_error

__all__ = ["discover", "list_products"]

Found = tuple[str, str, list[Candidate]]


# ---------------------------------------------------------------- inputs


def _folder(folder: Path, safe_cache: dict) -> Found:
    """(kind, product, candidates) of a folder: a STAC item beside its files, a COG or a SAFE folder."""
    root = safe_root(folder)
    if root is None and folder.name.upper() != "IMG_DATA" and not (folder / "IMG_DATA").is_dir():
        items = [p for p in sorted(folder.glob("*.json")) if is_stac_item(p)]
        if len(sorted(folder.glob("*.json"))) == 1 and items:
            return read_stac(items[0])
        return cog_folder(folder)
    return safe_folder(folder, root, safe_cache)


def _file(path: Path, role: str, position: int, cache: dict, safe_cache: dict) -> list[Candidate]:
    """Candidates of one band file: a Sentinel-2 band by name, or every band of any raster."""
    code = s2_file(path)
    if code is not None and role != "pan":  # its band count is checked with every band's (_spec)
        return [s2_candidate(code[0], path, safe_meta(safe_root(path.parent), safe_cache), role)]
    header = read_header(path, cache)
    file_stem, sensor = stem(path), landsat_sensor(path.name)
    number = landsat_band(file_stem) if sensor else None
    code_name = f"B{number}" if number is not None else None
    described = [(d or "").strip() for d in header.descriptions]
    out = []
    for i in range(1, header.count + 1):
        desc = described[i - 1]
        if desc and described.count(desc) == 1:
            name = desc
        elif role == "pan":
            name = "pan"
        elif header.count == 1:
            name = code_name or file_stem
        else:
            name = f"{file_stem} band {i}"
        wavelength = landsat_wavelength(sensor, name) or (landsat_wavelength(sensor, code_name) if code_name else None)
        gain = header.gains[i - 1] or 1.0
        order = (1, number) if number is not None and header.count == 1 and not desc else (2, position, i)
        out.append(Candidate(name, path, i, role, False, wavelength, order, gain, header.offsets[i - 1] / gain))
    return out


def _discover_input(path: Path, position: int, cache: dict, safe_cache: dict, item: str | None = None) -> Found:
    """(kind, product, candidates) of one input path: which kind of product it is (``item``: of a STAC JSON)."""
    if path.is_dir():
        return _folder(path, safe_cache)
    if path.suffix.lower() == ".json":
        return read_stac(path, item)
    if re.fullmatch(r"MTD_MSIL\w+\.xml", path.name, re.IGNORECASE):
        return _folder(path.parent, safe_cache)
    return "files", stem(path), _file(path, "spectral", position, cache, safe_cache)


# ---------------------------------------------------------------- selection and the product


def _select(candidates: list[Candidate], bands: str | Sequence[str] | None, where: Path) -> list[Candidate]:
    """Spectral bands named in ``bands`` (and categorical ones only when named); all when ``bands`` is None."""
    names = parse_band_names(bands)
    if not names:
        return candidates
    wanted = {band_key(b) for b in names}
    known = {band_key(c.name) for c in candidates}
    unknown = [b for b in names if band_key(b) not in known]
    if unknown:
        found = ", ".join(c.name for c in sorted(candidates, key=lambda c: c.order))
        raise file_error(
            InputError, where, f"no band named {', '.join(unknown)}; the bands found are: {found}; choose among them"
        )
    return [c for c in candidates if band_key(c.name) in wanted]


def _spec(candidate: Candidate, offset: float | None, cache: dict) -> tuple[BandSpec, str | None]:
    """The BandSpec of a selected candidate, with the offset source of a Sentinel-2 spectral band (else None)."""
    if candidate.error is not None:
        raise candidate.error
    if candidate.s2 is not False:  # a Sentinel-2 band, found however: one band per file
        header = check_one_band(candidate.name, candidate.path, cache)
    else:
        header = read_header(candidate.path, cache)
    gain, offset_value, source = candidate.gain, candidate.offset, None
    if candidate.s2 is not False and candidate.name not in S2_CATEGORICAL:
        gain, offset_value, source = s2_radiometry(candidate.name, candidate.s2, offset)
    spec = BandSpec(
        name=candidate.name,
        path=candidate.path,
        index=candidate.index,
        role=candidate.role,
        wavelength_nm=candidate.wavelength_nm,
        gain=gain,
        offset=offset_value,
        nodata=header.nodata[candidate.index - 1],
        resolution=header.resolution,
    )
    return spec, source


def discover(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: str | Sequence[str] | None = None,
    offset: float | None = None,
    item: str | None = None,
) -> Product:
    """Find the bands of a multi-resolution product (headers only; grids are not compared).

    Args:
        inputs: paths: a Sentinel-2 COG folder, a ``.SAFE`` folder (or its ``IMG_DATA``), a STAC item
            JSON, band files or any rasters (several may be given).
        pan: a single-band raster, added with role ``"pan"`` (kind ``"pan"``).
        guide: a raster of any number of bands, added with role ``"guide"`` (kind ``"guide"``).
        bands: names of the spectral bands to keep, as a list or ``"B05,B8A"``
            (:func:`~geo_med_sr.adapters.products.names.parse_band_names`; case-insensitive, ``"B5"`` ==
            ``"B05"``, ``"8A"`` == ``"B8A"``); categorical bands are kept only when named. None keeps all.
        offset: DN offset for every Sentinel-2 spectral band, overriding the metadata.
        item: the id of the item to read from a STAC ItemCollection input (its assets resolved from
            the collection's folder, :mod:`.stac`).

    Returns:
        The :class:`Product`.

    Raises:
        InputError: a missing path (InputNotFoundError), a folder without band files, a band given
            twice, an unreadable file or metadata, a JSON that is not a STAC item, a missing STAC
            asset file, ``pan`` and ``guide`` together, a pan of several bands, an unknown band name,
            or ``offset`` without any Sentinel-2 spectral band; ``item`` without a STAC JSON input, an
            ItemCollection without ``item`` or without that item.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if pan is not None and guide is not None:
        raise file_error(InputError, pan, f"--pan and --guide ({guide}) cannot be used together; give one of them")
    if not inputs:
        raise file_error(InputError, "<inputs>", "no input given; name a product folder, a STAC item or band files")
    cache: dict[Path, Header] = {}
    safe_cache: dict[Path, S2Meta | None] = {}
    paths = [existing(p) for p in inputs]
    if item is not None and not any(p.suffix.lower() == ".json" and not p.is_dir() for p in paths):
        raise file_error(InputError, paths[0], f"--item {item!r} picks an item of a STAC JSON and no input is one")
    found = [_discover_input(p, i, cache, safe_cache, item) for i, p in enumerate(paths)]
    candidates = _select([c for _, _, group in found for c in group], bands, paths[0])
    extra: list[Candidate] = []
    for role, value in (("pan", pan), ("guide", guide)):
        if value is not None:
            path = existing(value)
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
        other = seen.setdefault(band_key(spec.name), spec)
        if other is not spec:
            raise duplicate_error(spec.name, other.path, spec.path)
    if offset is not None and not sources:
        raise file_error(InputError, paths[0], "--offset applies to Sentinel-2 bands and none was found; remove it")
    return Product(tuple(specs), _kind(found, pan, guide), _meta(found, paths, sources))


def _kind(found: list[Found], pan: object, guide: object) -> str:
    if pan is not None:
        return "pan"
    if guide is not None:
        return "guide"
    kinds = {kind for kind, _, _ in found}
    return kinds.pop() if len(kinds) == 1 else "files"


def _meta(found: list[Found], paths: list[Path], sources: list) -> dict[str, Any]:
    """The Product's JSON-able meta."""
    metas = [c.s2 for _, _, group in found for c in group if isinstance(c.s2, S2Meta)]
    product = found[0][1] if found[0][0] != "files" or len(found) == 1 else paths[0].parent.name
    names = {source for source, _ in sources}
    source = "none" if not names else names.pop() if len(names) == 1 else "metadata"
    craft = next((m.spacecraft for m in metas if m.spacecraft), None)
    craft = craft or landsat_sensor(paths[0].name) or spacecraft(stem(paths[0]))
    if craft and not craft.startswith(("Sentinel", "Landsat")):
        craft = None
    return {
        "product": product,
        "processing_baseline": next((m.baseline for m in metas if m.baseline), None),
        "offset_source": source,
        "offset": float(sources[0][1]) if sources else 0.0,
        "spacecraft": craft,
        "inputs": [str(p) for p in paths],
    }


# ---------------------------------------------------------------- the products of a batch input


def _file_name(text: str) -> str:
    """``text`` as a file name stem: characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``,
    no leading dot (no hidden or relative name); ``""`` when nothing is left."""
    return re.sub(r"[^\w.-]", "_", text, flags=re.ASCII).lstrip(".")


def list_products(path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """The products one input of ``batch --sharpen`` holds, as ``(name, item)``, without reading a band.

    * a folder (COG layout, a ``.SAFE`` or one of its folders): one product, named after the folder,
      or after the ``.SAFE`` (without the suffix) when the folder is in one;
    * an ``MTD_MSIL*.xml``: the product of its ``.SAFE`` folder;
    * a STAC item JSON: one product named by the item's id (the file's stem without an id, or when the
      file is not readable JSON: the product's run then says what is wrong);
    * a STAC ItemCollection JSON: one product per item, named by its id, ``item`` being that id.

    ``item`` is None except for the items of an ItemCollection. Names are made file-name safe
    (characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``). Nothing here says
    that a product is readable: :func:`discover` does, when it runs.

    Raises:
        InputNotFoundError: ``path`` does not exist.
        InputError: a file of another kind (band files make one product together: sharpen them with
            ``geo-med-sr sharpen``), or an ItemCollection whose items cannot be picked by id.
    """
    path = existing(path)
    if path.is_dir() or re.fullmatch(r"MTD_MSIL\w+\.xml", path.name, re.IGNORECASE):
        folder = path if path.is_dir() else path.parent
        root = safe_root(folder) or folder
        name = root.name[: -len(".SAFE")] if root.name.upper().endswith(".SAFE") else root.name
        return [(_file_name(name) or "product", None)]
    if path.suffix.lower() == ".json":
        ids = stac_collection_ids(path)
        if ids is not None:
            return [(_file_name(ident) or f"item{i}", ident) for i, ident in enumerate(ids)]
        ident = stac_item_id(path)
        return [(_file_name(ident or "") or _file_name(path.stem) or "item", None)]
    kind = "a band file" if path.suffix.lower() in RASTER_SUFFIXES else "not a product"
    raise file_error(
        InputError,
        path,
        f"{kind}: batch --sharpen takes product folders (COG layout or .SAFE), STAC item and ItemCollection JSONs "
        "(the band files of one product: geo-med-sr sharpen FILE... OUTPUT)",
    )
