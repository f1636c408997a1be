"""GDAL VRT mosaics of GeoTIFF tiles, written by hand (XML), for GIS tools and batch runs.

:func:`build_vrt` checks that the tiles lie on one pixel grid and writes a ``.vrt`` that GDAL,
QGIS and rasterio open as a single raster. The XML follows the GDAL VRT format
(https://gdal.org/drivers/raster/vrt.html)::

    <VRTDataset rasterXSize=W rasterYSize=H>
      <SRS>WKT</SRS>                          (omitted when the tiles have no CRS)
      <GeoTransform>c, a, b, f, d, e</GeoTransform>
      <Metadata><MDI key="AREA_OR_POINT">Area|Point</MDI></Metadata>
      <VRTRasterBand dataType=UInt16 band=1>
        <Description>, <NoDataValue>, <ColorInterp>, <Offset>, <Scale>, <UnitType>
        <ComplexSource>                      (<SimpleSource> when there is no nodata)
          <SourceFilename relativeToVRT="1">tiles/a.tif</SourceFilename>
          <SourceBand>1</SourceBand>
          <SourceProperties RasterXSize RasterYSize DataType BlockXSize BlockYSize/>
          <SrcRect xOff yOff xSize ySize/> <DstRect xOff yOff xSize ySize/>
          <NODATA>0</NODATA>
        </ComplexSource> ...

Tiles are drawn in the order given; where they overlap, a later tile wins except on its nodata
pixels (``ComplexSource`` with ``NODATA``), which leave the earlier tile visible. Pixels that no
tile covers read as the nodata value (0 when the tiles have none).

Grid rules (exact, DESIGN §3): every tile must have the same CRS, band count, data type,
nodata, and the same pixel size and rotation (the 2x2 linear part of the transform, to a
relative 1e-9; rotated grids are fine when all tiles share them), and its origin must be a
whole number of pixels away from the first tile's grid (to 1e-6 pixel).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

try:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import Affine
except ImportError as exc:  # pragma: no cover - rasterio is a declared dependency
    raise ImportError("building VRT mosaics needs rasterio: pip install 'rasterio>=1.3'") from exc

from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS as _GDAL_ERRORS
from geo_med_sr.adapters.geotiff.conventions import area_or_point as _area_or_point
from geo_med_sr.adapters.geotiff.conventions import crs_label as _crs_label
from geo_med_sr.adapters.geotiff.conventions import reason as _reason
from geo_med_sr.errors import InputError, InputNotFoundError, OutputError, file_error

#: numpy dtype name -> GDAL data type name (the ``dataType`` attribute of a VRT band).
GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "complex64": "CFloat32",
    "complex128": "CFloat64",
}
#: GDAL colour interpretation names by GDALColorInterp value 0..25 (later ones, SAR_*, match
#: rasterio's names case-insensitively).
GDAL_COLOR_NAMES = (
    "Undefined",
    "Gray",
    "Palette",
    "Red",
    "Green",
    "Blue",
    "Alpha",
    "Hue",
    "Saturation",
    "Lightness",
    "Cyan",
    "Magenta",
    "Yellow",
    "Black",
    "YCbCr_Y",
    "YCbCr_Cb",
    "YCbCr_Cr",
    "Pan",
    "Coastal",
    "RedEdge",
    "NIR",
    "SWIR",
    "MWIR",
    "LWIR",
    "TIR",
    "OtherIR",
)
#: largest distance (pixels) of a tile origin from a whole pixel of the mosaic grid.
ALIGN_TOLERANCE_PX = 1e-6
#: largest relative difference between the pixel size / rotation coefficients of two tiles.
LINEAR_RTOL = 1e-9


@dataclass(frozen=True)
class _Tile:
    """What the VRT needs to know about one input GeoTIFF (read from its header only)."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    dtypes: tuple[str, ...]
    crs_wkt: str | None
    transform: Affine
    nodata: float | None
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[str, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    units: tuple[str, ...]
    block: tuple[int, int]
    area_or_point: str


def _gdal_colorinterp(value: ColorInterp) -> str:
    """GDAL's name of a colour interpretation (``GDALGetColorInterpretationName``)."""
    if int(value) < len(GDAL_COLOR_NAMES):
        return GDAL_COLOR_NAMES[int(value)]
    return value.name  # SAR bands: GDAL matches names case-insensitively


def _read_tile(path: Path) -> _Tile:
    """Header of one input; InputError naming it when it is missing or unreadable."""
    if not path.is_file():
        raise file_error(InputNotFoundError, path, "no such file; every VRT input must be an existing GeoTIFF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                block_rows, block_cols = src.block_shapes[0]
                return _Tile(
                    path=path,
                    width=src.width,
                    height=src.height,
                    count=src.count,
                    dtype=src.dtypes[0],
                    dtypes=tuple(src.dtypes),
                    crs_wkt=src.crs.to_wkt() if src.crs else None,
                    transform=src.transform,
                    nodata=src.nodata,
                    descriptions=tuple(src.descriptions),
                    colorinterp=tuple(_gdal_colorinterp(c) for c in src.colorinterp),
                    scales=tuple(float(s) for s in src.scales),
                    offsets=tuple(float(o) for o in src.offsets),
                    units=tuple(u or "" for u in src.units),
                    block=(int(block_cols), int(block_rows)),
                    area_or_point=_area_or_point(src.tags().get("AREA_OR_POINT")),
                )
    except _GDAL_ERRORS as exc:
        raise file_error(InputError, path, f"not a readable raster ({_reason(exc)})") from exc


# ---------------------------------------------------------------- grid checks


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _linear(t: Affine) -> tuple[float, float, float, float]:
    return (t.a, t.b, t.d, t.e)


def _check_compatible(tile: _Tile, ref: _Tile) -> None:
    """OutputError naming ``tile`` when it cannot share the VRT grid of ``ref`` (the first input)."""

    def refuse(problem: str, hint: str = "a VRT mosaic needs tiles on one grid") -> OutputError:
        return file_error(OutputError, tile.path, f"{problem} of the first input {ref.path}; {hint}")

    if len(set(tile.dtypes)) != 1:
        raise file_error(
            OutputError,
            tile.path,
            f"its bands have different data types ({', '.join(tile.dtypes)}); a VRT band has one data type",
        )
    if tile.count != ref.count:
        raise refuse(f"has {tile.count} bands, not the {ref.count}")
    if tile.dtype != ref.dtype:
        raise refuse(f"has data type {tile.dtype}, not the {ref.dtype}")
    if (tile.crs_wkt is None) != (ref.crs_wkt is None) or (
        tile.crs_wkt and CRS.from_wkt(tile.crs_wkt) != CRS.from_wkt(ref.crs_wkt)
    ):
        label, ref_label = _crs_label(tile.crs_wkt) or "none", _crs_label(ref.crs_wkt) or "none"
        raise refuse(
            f"has CRS {label}, not the {ref_label}", "reproject the tiles to one CRS first (e.g. gdalwarp -t_srs)"
        )
    if not _same_nodata(tile.nodata, ref.nodata):
        raise refuse(f"has nodata {tile.nodata}, not the {ref.nodata}", "set one nodata value on every tile")
    lin, ref_lin = _linear(tile.transform), _linear(ref.transform)
    size = max(abs(v) for v in ref_lin)
    if any(abs(x - y) > LINEAR_RTOL * size for x, y in zip(lin, ref_lin)):
        raise refuse(
            f"has pixel size/rotation (a, b, d, e) = {lin}, not the {ref_lin}",
            "tiles must share pixel size and rotation exactly; resample them onto one grid first",
        )


def _pixel_offset(tile: _Tile, ref: _Tile) -> tuple[int, int]:
    """Whole-pixel ``(column, row)`` of ``tile``'s origin on ``ref``'s grid; OutputError if not whole."""
    col, row = ~ref.transform @ (tile.transform.c, tile.transform.f)
    whole = (round(col), round(row))
    if abs(col - whole[0]) > ALIGN_TOLERANCE_PX or abs(row - whole[1]) > ALIGN_TOLERANCE_PX:
        raise file_error(
            OutputError,
            tile.path,
            f"its origin lies ({col:.6f}, {row:.6f}) pixels from the origin of the first input {ref.path}: "
            "not a whole number of pixels, so the tiles are not aligned to one pixel grid; "
            "resample onto a common grid first (e.g. gdalwarp -tap)",
        )
    return int(whole[0]), int(whole[1])


def _mosaic_grid(tiles: list[_Tile]) -> tuple[Affine, int, int, list[tuple[int, int]]]:
    """Transform, width, height of the mosaic and each tile's ``(xOff, yOff)`` in it (pixels)."""
    ref = tiles[0]
    offsets = []
    for tile in tiles:
        _check_compatible(tile, ref)
        offsets.append(_pixel_offset(tile, ref))
    c0 = min(c for c, _ in offsets)
    r0 = min(r for _, r in offsets)
    width = max(c + t.width for (c, _), t in zip(offsets, tiles)) - c0
    height = max(r + t.height for (_, r), t in zip(offsets, tiles)) - r0
    corner = next((t.transform for (c, r), t in zip(offsets, tiles) if (c, r) == (c0, r0)), None)
    transform = corner if corner is not None else ref.transform @ Affine.translation(c0, r0)
    return transform, width, height, [(c - c0, r - r0) for c, r in offsets]


# ---------------------------------------------------------------- XML


def _number(value: float) -> str:
    """Shortest text that parses back to exactly ``value`` (``nan``/``inf`` as GDAL spells them)."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _source_filename(path: Path, vrt_dir: Path) -> tuple[str, str]:
    """``(text, relativeToVRT)``: the path relative to the VRT's folder when possible, else absolute."""
    absolute = path.resolve()
    try:
        return Path(os.path.relpath(absolute, vrt_dir)).as_posix(), "1"
    except ValueError:  # another drive (Windows): keep the absolute path
        return absolute.as_posix(), "0"


def _rect(parent: ET.Element, tag: str, x: int, y: int, w: int, h: int) -> None:
    ET.SubElement(parent, tag, xOff=str(x), yOff=str(y), xSize=str(w), ySize=str(h))


def _band_element(
    root: ET.Element, band: int, tiles: list[_Tile], offsets: list[tuple[int, int]], vrt_dir: Path
) -> None:
    """One ``VRTRasterBand`` with a source per tile; band properties from the first tile."""
    ref = tiles[0]
    i = band - 1
    gdal_type = GDAL_TYPES[ref.dtype]
    elem = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(band))
    if ref.descriptions[i]:
        ET.SubElement(elem, "Description").text = ref.descriptions[i]
    if ref.nodata is not None:
        ET.SubElement(elem, "NoDataValue").text = _number(ref.nodata)
    ET.SubElement(elem, "ColorInterp").text = ref.colorinterp[i]
    if ref.offsets[i] != 0.0:
        ET.SubElement(elem, "Offset").text = _number(ref.offsets[i])
    if ref.scales[i] != 1.0:
        ET.SubElement(elem, "Scale").text = _number(ref.scales[i])
    if ref.units[i]:
        ET.SubElement(elem, "UnitType").text = ref.units[i]
    for tile, (x, y) in zip(tiles, offsets):
        source = ET.SubElement(elem, "ComplexSource" if ref.nodata is not None else "SimpleSource")
        text, relative = _source_filename(tile.path, vrt_dir)
        ET.SubElement(source, "SourceFilename", relativeToVRT=relative).text = text
        ET.SubElement(source, "SourceBand").text = str(band)
        ET.SubElement(
            source,
            "SourceProperties",
            RasterXSize=str(tile.width),
            RasterYSize=str(tile.height),
            DataType=gdal_type,
            BlockXSize=str(tile.block[0]),
            BlockYSize=str(tile.block[1]),
        )
        _rect(source, "SrcRect", 0, 0, tile.width, tile.height)
        _rect(source, "DstRect", x, y, tile.width, tile.height)
        if ref.nodata is not None:
            ET.SubElement(source, "NODATA").text = _number(ref.nodata)


def vrt_xml(tiles: list[_Tile], vrt_dir: Path) -> str:
    """The VRT document of ``tiles`` (already checked to share one grid) as text."""
    transform, width, height, offsets = _mosaic_grid(tiles)
    ref = tiles[0]
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if ref.crs_wkt:
        ET.SubElement(root, "SRS").text = ref.crs_wkt
    ET.SubElement(root, "GeoTransform").text = ", ".join(_number(v) for v in transform.to_gdal())
    metadata = ET.SubElement(root, "Metadata")
    ET.SubElement(metadata, "MDI", key="AREA_OR_POINT").text = ref.area_or_point
    ET.SubElement(metadata, "MDI", key=VRT_MARK).text = "mosaic"
    for band in range(1, ref.count + 1):
        _band_element(root, band, tiles, offsets, vrt_dir)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------- public API


def build_vrt(paths: Sequence[str | os.PathLike], vrt_path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a GDAL VRT mosaic of GeoTIFF tiles that share one pixel grid.

    Args:
        paths: the tiles (``.tif`` files), drawn in this order (a later tile covers an earlier
            one where both hold valid pixels).
        vrt_path: the ``.vrt`` file to write; tile paths are stored relative to its folder
            when possible. Written atomically (a temporary sibling renamed into place).
        overwrite: replace an existing ``vrt_path``.

    Returns:
        ``vrt_path``. Its grid: the first tile's pixel size and rotation, origin at the
        top-left-most tile, size covering every tile (gaps read as nodata).

    Raises:
        OutputError: no tiles, ``vrt_path`` is not a ``.vrt`` name, exists without
            ``overwrite`` or its folder is missing; or a tile (named in the message, with
            the reason) differs from the first in CRS, band count, data type, nodata, pixel
            size or rotation, or is not aligned to its pixel grid.
        InputError: a tile is missing or unreadable.
    """
    vrt_path = Path(vrt_path)
    if not paths:
        raise file_error(OutputError, vrt_path, "no input tiles given; pass at least one GeoTIFF")
    if vrt_path.suffix.lower() != ".vrt":
        raise file_error(OutputError, vrt_path, "a VRT mosaic must be written to a .vrt file name")
    if vrt_path.exists() and not overwrite:
        raise file_error(OutputError, vrt_path, "the output already exists; pass --overwrite to replace it")
    if vrt_path.exists() and not _is_our_vrt(vrt_path):
        raise file_error(
            OutputError,
            vrt_path,
            "exists and was not written by geo_med_sr, so --overwrite does not replace it; choose another name",
        )
    vrt_dir = vrt_path.resolve().parent
    if not vrt_dir.is_dir():
        raise file_error(OutputError, vrt_path, f"the folder {vrt_dir} does not exist")
    tiles = [_read_tile(Path(p)) for p in paths]
    if tiles[0].dtype not in GDAL_TYPES:
        raise file_error(OutputError, tiles[0].path, f"data type {tiles[0].dtype} cannot be described in a VRT")
    text = vrt_xml(tiles, vrt_dir)
    _write_atomic(text, vrt_path)
    return vrt_path


#: the metadata item that marks a mosaic this tool wrote (so that --overwrite may replace it).
VRT_MARK = "GEO_MED_SR_MOSAIC"


def _is_our_vrt(path: Path) -> bool:
    """Whether ``path`` is a VRT written by :func:`build_vrt` (carries :data:`VRT_MARK`); never raises."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return False
    return any(item.get("key") == VRT_MARK for item in root.iter("MDI"))


def _write_atomic(text: str, path: Path) -> None:
    """Write ``text`` to a hidden temporary sibling, then rename it onto ``path`` in one step."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.resolve().parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
