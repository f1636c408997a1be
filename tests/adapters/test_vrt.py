"""VRT mosaics: tiles of one rotated GeoTIFF re-assemble exactly; tiles off the grid are refused."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from geotiff_fixtures import make_geotiff, rotated_transform
from rasterio.transform import Affine
from rasterio.windows import Window

from geo_med_sr.adapters.vrt import build_vrt
from geo_med_sr.errors import InputNotFoundError, OutputError

WIDTH, HEIGHT = 40, 30
#: (col_off, row_off, width, height) of the tiles; rows 14 and 15 are covered by no tile.
WINDOWS = {"a": (0, 0, 18, 14), "b": (18, 0, 22, 14), "c": (0, 16, 40, 14)}
GAP_ROWS = slice(14, 16)


def write_tile(src_path: Path, window: tuple[int, int, int, int], dst: Path, **override) -> Path:
    """Copy ``window`` of ``src_path`` (values, band names, colour interpretation) to ``dst``.

    ``override`` replaces profile entries (``crs``, ``transform``, ``dtype``, ``nodata``).
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    col, row, width, height = window
    with rasterio.open(src_path) as src:
        win = Window(col, row, width, height)
        profile = {**src.profile, "width": width, "height": height, "transform": src.window_transform(win), **override}
        data = src.read(window=win).astype(profile["dtype"])
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)
            out.descriptions = src.descriptions
            out.colorinterp = src.colorinterp
    return dst


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, np.ndarray, dict[str, Path]]:
    """A rotated 4-band uint16 GeoTIFF with nodata 0 and its three tiles (under tiles/)."""
    path, array = make_geotiff(
        tmp_path / "scene.tif", width=WIDTH, height=HEIGHT, colorinterp=("blue", "green", "red", "nir")
    )
    tiles = {name: write_tile(path, window, tmp_path / "tiles" / f"{name}.tif") for name, window in WINDOWS.items()}
    return path, array, tiles


def test_tiles_reassemble_the_scene_with_nodata_in_the_gap(tmp_path, scene):
    path, array, tiles = scene
    vrt = build_vrt([tiles["c"], tiles["b"], tiles["a"]], tmp_path / "mosaic.vrt")
    assert vrt == tmp_path / "mosaic.vrt"
    with rasterio.open(vrt) as mosaic, rasterio.open(path) as src:
        assert mosaic.driver == "VRT"
        assert mosaic.transform == src.transform == rotated_transform()  # exact, rotated grid
        assert mosaic.crs == src.crs
        assert (mosaic.width, mosaic.height, mosaic.count) == (WIDTH, HEIGHT, 4)
        assert mosaic.dtypes == src.dtypes and mosaic.nodata == 0.0
        assert mosaic.descriptions == ("blue", "green", "red", "nir")
        assert mosaic.colorinterp == src.colorinterp
        data = mosaic.read()
        masks = mosaic.read_masks(1)
    for col, row, width, height in WINDOWS.values():
        np.testing.assert_array_equal(
            data[:, row : row + height, col : col + width], array[:, row : row + height, col : col + width]
        )
    assert np.all(data[:, GAP_ROWS, :] == 0)
    expected_mask = np.where(array[0] != 0, 255, 0)
    expected_mask[GAP_ROWS, :] = 0
    np.testing.assert_array_equal(masks, expected_mask)


def test_sources_are_written_relative_to_the_vrt(tmp_path, scene):
    _, _, tiles = scene
    other = write_tile(scene[0], (0, 16, 40, 14), tmp_path / "elsewhere" / "c.tif")
    (tmp_path / "out").mkdir()
    vrt = build_vrt([tiles["a"], tiles["b"], other], tmp_path / "out" / "mosaic.vrt")
    root = ET.parse(vrt).getroot()
    assert root.tag == "VRTDataset" and (root.get("rasterXSize"), root.get("rasterYSize")) == (str(WIDTH), str(HEIGHT))
    band = root.find("VRTRasterBand")
    assert band.get("dataType") == "UInt16" and band.get("band") == "1"
    assert (
        band.findtext("Description") == "blue"
        and band.findtext("ColorInterp") == "Blue"
        and band.findtext("NoDataValue") == "0.0"
    )
    sources = band.findall("ComplexSource")
    names = [(s.find("SourceFilename").text, s.find("SourceFilename").get("relativeToVRT")) for s in sources]
    assert names == [("../tiles/a.tif", "1"), ("../tiles/b.tif", "1"), ("../elsewhere/c.tif", "1")]
    first = sources[1]
    assert first.findtext("SourceBand") == "1" and first.findtext("NODATA") == "0.0"
    assert first.find("SourceProperties").attrib == {
        "RasterXSize": "22",
        "RasterYSize": "14",
        "DataType": "UInt16",
        "BlockXSize": "22",
        "BlockYSize": "14",
    }
    assert first.find("SrcRect").attrib == {"xOff": "0", "yOff": "0", "xSize": "22", "ySize": "14"}
    assert first.find("DstRect").attrib == {"xOff": "18", "yOff": "0", "xSize": "22", "ySize": "14"}
    with rasterio.open(vrt) as mosaic, rasterio.open(other) as tile:
        np.testing.assert_array_equal(mosaic.read(window=Window(0, 16, 40, 14)), tile.read())


def test_mosaic_origin_without_a_tile_in_the_corner(tmp_path, scene):
    _, array, tiles = scene
    right = write_tile(scene[0], (20, 0, 20, 14), tmp_path / "right.tif")
    bottom_left = write_tile(scene[0], (0, 16, 20, 14), tmp_path / "bottom_left.tif")
    vrt = build_vrt([right, bottom_left], tmp_path / "corner.vrt")
    with rasterio.open(vrt) as mosaic:
        np.testing.assert_allclose(tuple(mosaic.transform), tuple(rotated_transform()), rtol=0, atol=1e-6)
        data = mosaic.read()
    np.testing.assert_array_equal(data[:, 0:14, 20:40], array[:, 0:14, 20:40])
    np.testing.assert_array_equal(data[:, 16:30, 0:20], array[:, 16:30, 0:20])
    assert np.all(data[:, 0:14, 0:20] == 0)


def test_north_up_tiles_without_nodata_use_simple_sources(tmp_path):
    north_up = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_500_000.0)
    path, array = make_geotiff(
        tmp_path / "full.tif", width=WIDTH, height=HEIGHT, count=1, nodata=None, dtype="float32", transform=north_up
    )
    left = write_tile(path, (0, 0, 20, 30), tmp_path / "l.tif")
    right = write_tile(path, (20, 0, 20, 30), tmp_path / "r.tif")
    vrt = build_vrt([left, right], tmp_path / "m.vrt")
    band = ET.parse(vrt).getroot().find("VRTRasterBand")
    assert (
        band.get("dataType") == "Float32"
        and band.find("NoDataValue") is None
        and len(band.findall("SimpleSource")) == 2
    )
    with rasterio.open(vrt) as mosaic:
        assert mosaic.nodata is None and mosaic.transform == north_up
        np.testing.assert_array_equal(mosaic.read(), array)


@pytest.mark.parametrize(
    "override,reason",
    [
        ({"crs": "EPSG:32617"}, "has CRS EPSG:32617, not the EPSG:32618"),
        ({"shift": (0.5, 0.0)}, "not a whole number of pixels"),
        ({"shift": (0.0, 1e-3)}, "not a whole number of pixels"),
        ({"pixel": (15.0, 10.0)}, "pixel size/rotation"),
        ({"transform": Affine(30.0, 0.0, 500_010.0, 0.0, -20.0, 4_499_970.0)}, "pixel size/rotation"),
        ({"dtype": "int16"}, "has data type int16, not the uint16"),
        ({"nodata": 65535}, "has nodata 65535.0, not the 0.0"),
    ],
)
def test_tiles_off_the_grid_are_refused_with_the_reason(tmp_path, scene, override, reason):
    path, _, tiles = scene
    override = dict(override)
    with rasterio.open(path) as src:
        transform = src.window_transform(Window(0, 16, 40, 14))
    if "shift" in override:
        override["transform"] = transform @ Affine.translation(*override.pop("shift"))
    if "pixel" in override:
        override["transform"] = rotated_transform(pixel=override.pop("pixel"), origin=(transform.c, transform.f))
    bad = write_tile(path, WINDOWS["c"], tmp_path / "bad.tif", **override)
    with pytest.raises(OutputError, match=reason) as info:
        build_vrt([tiles["a"], tiles["b"], bad], tmp_path / "m.vrt")
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and str(tiles["a"]) in message and "\n" not in message
    assert not (tmp_path / "m.vrt").exists()


def test_tiles_with_other_band_counts_are_refused(tmp_path, scene):
    _, _, tiles = scene
    path, _ = make_geotiff(tmp_path / "three.tif", width=WIDTH, height=HEIGHT, count=3)
    bad = write_tile(path, WINDOWS["c"], tmp_path / "bad.tif")
    with pytest.raises(OutputError, match="has 3 bands, not the 4"):
        build_vrt([tiles["a"], bad], tmp_path / "m.vrt")


def test_output_rules_atomic_and_no_silent_overwrite(tmp_path, scene):
    _, _, tiles = scene
    vrt = tmp_path / "m.vrt"
    vrt.write_text("mine")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        build_vrt(list(tiles.values()), vrt)
    assert vrt.read_text() == "mine"
    with pytest.raises(OutputError, match="not written by geo_med_sr"):  # a user's file, even with overwrite
        build_vrt(list(tiles.values()), vrt, overwrite=True)
    assert vrt.read_text() == "mine"
    vrt.unlink()
    build_vrt(list(tiles.values()), vrt)
    build_vrt(list(tiles.values()), vrt, overwrite=True)  # our own mosaic is replaced
    assert ET.parse(vrt).getroot().tag == "VRTDataset"
    assert sorted(os.listdir(tmp_path)) == ["m.vrt", "scene.tif", "tiles"]  # no temporary file left
    with pytest.raises(OutputError, match=r"\.vrt file name"):
        build_vrt(list(tiles.values()), tmp_path / "m.tif")
    with pytest.raises(OutputError, match="no input tiles"):
        build_vrt([], tmp_path / "n.vrt")
    with pytest.raises(OutputError, match="does not exist"):
        build_vrt(list(tiles.values()), tmp_path / "missing" / "n.vrt")
    with pytest.raises(InputNotFoundError, match="no such file"):
        build_vrt([tiles["a"], tmp_path / "gone.tif"], tmp_path / "n.vrt")
