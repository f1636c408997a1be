"""GeoTIFF adapter: index order, centre affine, windows, COG output and geometry survive exactly."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from geotiff_fixtures import make_geotiff, nodata_mask, rotated_transform
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_validate

from geo_med_sr import geometry
from geo_med_sr.adapters import geotiff as gt
from geo_med_sr.adapters.base import ADAPTERS
from geo_med_sr.adapters.geotiff import GeoTiffAdapter, GeoTiffSink, GeoTiffSource
from geo_med_sr.errors import ConfigError, InputError, InputNotFoundError, OutputError

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "geotiff"
FULL_META = dict(
    scales=(1.0, 2.5, 1.0, 0.5),
    offsets=(0.0, -10.0, 3.0, 0.0),
    units=("m", "", "W/m2", ""),
    colorinterp=("blue", "green", "red", "undefined"),
    band_tags=({"WAVELENGTH": "0.48"}, {}, {"WAVELENGTH": "0.66"}, {}),
)
PROVENANCE = {"method": "edsr", "scale": [2, 2], "checkpoint": "x2.pt"}


# ------------------------------------------------------------------ helpers


def rio_props(path: Path) -> dict:
    """Everything a round trip must keep, read with rasterio directly."""
    with rasterio.open(path) as src:
        return {
            "array": src.read(),
            "transform": src.transform,
            "crs": src.crs,
            "dtype": src.dtypes[0],
            "nodata": src.nodata,
            "descriptions": src.descriptions,
            "tags": src.tags(),
            "band_tags": [src.tags(b) for b in src.indexes],
            "scales": src.scales,
            "offsets": src.offsets,
            "units": src.units,
            "colorinterp": [c.name for c in src.colorinterp],
        }


def split_boxes(width: int, height: int, cols: tuple[int, ...], rows: tuple[int, ...], seed: int = 0) -> list:
    """Disjoint boxes covering a (W, H) image, cut at ``cols``/``rows``, in shuffled order."""
    cs = [0, *cols, width]
    rs = [0, *rows, height]
    boxes = [((cs[i], cs[i + 1]), (rs[j], rs[j + 1])) for i in range(len(cs) - 1) for j in range(len(rs) - 1)]
    order = np.random.default_rng(seed).permutation(len(boxes))
    return [boxes[i] for i in order]


def write_in_windows(path: Path, array_cwh: np.ndarray, affine: np.ndarray, meta: dict, cog: bool, **kwargs) -> None:
    """Write a ``(C, W, H)`` array through a GeoTiffSink in shuffled disjoint windows."""
    _, width, height = array_cwh.shape
    boxes = split_boxes(width, height, (width // 3, width // 2 + 1), (height // 4,))
    with GeoTiffSink(path, array_cwh.shape, affine, meta, array_cwh.dtype, cog=cog, **kwargs) as sink:
        for (c0, c1), (r0, r1) in boxes:
            sink.write(((c0, c1), (r0, r1)), array_cwh[:, c0:c1, r0:r1])


def assert_one_line_naming(exc: BaseException, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message, message
    assert str(path) in message, message


@pytest.fixture
def full_tif(tmp_path: Path) -> tuple[Path, np.ndarray]:
    return make_geotiff(tmp_path / "full.tif", **FULL_META)


# ------------------------------------------------------------------ 1. reading


def test_read_is_transposed_rasterio_array_with_centre_affine(full_tif):
    path, array = full_tif
    image = GeoTiffAdapter.read(path)
    assert image.array.shape == (4, 37, 29) and image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array, array.transpose(0, 2, 1))
    transform = rotated_transform()
    np.testing.assert_allclose(
        image.affine, geometry.corner_to_centre(np.array(transform).reshape(3, 3)), rtol=1e-12, atol=0
    )
    for c, r in [(0, 0), (36, 0), (0, 28), (36, 28), (17, 9)]:
        world = image.affine @ np.array([c, r, 1.0])
        np.testing.assert_allclose(world[:2], transform @ (c + 0.5, r + 0.5), rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            world[:2], rasterio.transform.xy(transform, r, c, offset="center"), rtol=0, atol=1e-6
        )


def test_read_valid_mask_matches_the_nodata_region(full_tif):
    path, array = full_tif
    image = GeoTiffAdapter.read(path)
    expected = ~nodata_mask(4, 29, 37).any(axis=0)
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(image.valid, expected.T)
    np.testing.assert_array_equal(image.valid, ~(array == 0).any(axis=0).T)


def test_read_meta_fields(full_tif):
    path, _ = full_tif
    meta = GeoTiffAdapter.read(path).meta
    json.dumps(meta)  # JSON-able
    info = meta["geotiff"]
    assert meta["format"] == "geotiff" and meta["dtype"] == "uint16" and meta["source"] == str(path)
    assert rasterio.crs.CRS.from_wkt(info["crs"]) == rasterio.crs.CRS.from_epsg(32618)
    assert info["nodata"] == 0.0 and info["bands"] == [1, 2, 3, 4]
    assert info["descriptions"] == ["blue", "green", "red", "nir"]
    assert info["tags"] == {"SENSOR": "synthetic"} and info["area_or_point"] == "Area"
    assert info["scales"] == list(FULL_META["scales"]) and info["offsets"] == list(FULL_META["offsets"])
    assert info["units"] == ["m", None, "W/m2", None]
    assert info["colorinterp"] == list(FULL_META["colorinterp"])
    assert info["band_tags"][0] == {"WAVELENGTH": "0.48"} and info["band_tags"][1] == {}
    assert info["block_size"] is None and info["compress"] is None


def test_meta_of_a_tiled_compressed_file(tmp_path, full_tif):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    out = tmp_path / "tiled.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=False, block_size=16)
    with GeoTiffSource(out) as source:
        assert source.meta["geotiff"]["block_size"] == [16, 16]
        assert source.meta["geotiff"]["compress"] == "deflate"


def test_all_valid_file_has_no_mask_but_read_valid_is_all_true(tmp_path):
    path, _ = make_geotiff(tmp_path / "v.tif", nodata=None)
    image = GeoTiffAdapter.read(path)
    assert image.valid is None
    with GeoTiffSource(path) as source:
        valid = source.read_valid(((0, 37), (0, 29)))
    assert valid.shape == (37, 29) and valid.dtype == bool and valid.all()


def test_internal_mask_band_marks_pixels_invalid(tmp_path):
    path, _ = make_geotiff(tmp_path / "m.tif", nodata=None)
    mask = np.full((29, 37), 255, dtype=np.uint8)
    mask[5:9, 10:20] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as dst:
        dst.write_mask(mask)
    image = GeoTiffAdapter.read(path)
    np.testing.assert_array_equal(image.valid, (mask != 0).T)


def test_nan_is_invalid_in_float_files_without_nodata(tmp_path):
    values = np.ones((2, 29, 37), dtype=np.float32)
    values[1, 3, 4] = np.nan
    path, _ = make_geotiff(tmp_path / "f.tif", count=2, dtype="float32", nodata=None, values=values)
    valid = GeoTiffAdapter.read(path).valid
    assert valid is not None and not valid[4, 3] and valid.sum() == 37 * 29 - 1


# ------------------------------------------------------------------ 2. band selection


def test_band_selection_keeps_the_requested_order(full_tif):
    path, array = full_tif
    image = GeoTiffAdapter.read(path, bands=[3, 1])
    np.testing.assert_array_equal(image.array, array[[2, 0]].transpose(0, 2, 1))
    info = image.meta["geotiff"]
    assert info["bands"] == [3, 1] and info["descriptions"] == ["red", "blue"]
    assert info["scales"] == [1.0, 1.0] and info["units"] == ["W/m2", "m"]
    assert info["band_tags"] == [{"WAVELENGTH": "0.66"}, {"WAVELENGTH": "0.48"}]


def test_band_selection_valid_mask_uses_only_selected_bands(full_tif):
    path, array = full_tif
    image = GeoTiffAdapter.read(path, bands=[1, 3])  # the blob is only in band 2
    np.testing.assert_array_equal(image.valid, ~(array[[0, 2]] == 0).any(axis=0).T)


@pytest.mark.parametrize(
    "bands,match",
    [
        ([], "no bands selected"),
        ([0], r"band 0 is out of range: the file has 4 bands \(1\.\.4\)"),
        ([5], r"band 5 is out of range: the file has 4 bands \(1\.\.4\)"),
        ([1, 1], "band 1 is selected twice"),
    ],
)
def test_bad_band_selection_is_a_config_error(full_tif, bands, match):
    path, _ = full_tif
    with pytest.raises(ConfigError, match=match) as info:
        GeoTiffSource(path, bands=bands)
    assert_one_line_naming(info.value, path)


# ------------------------------------------------------------------ 3. windows


class RecordingDataset:
    """Delegates to a rasterio dataset and records the windows passed to ``read``."""

    def __init__(self, src):
        self._src = src
        self.windows = []

    def read(self, *args, **kwargs):
        self.windows.append(kwargs.get("window"))
        return self._src.read(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._src, name)


@pytest.fixture(scope="module")
def tiled_tif(tmp_path_factory) -> tuple[Path, np.ndarray]:
    return make_geotiff(tmp_path_factory.mktemp("win") / "tiled.tif", width=45, height=38, tiled=True, blocksize=16)


@pytest.mark.parametrize(
    "box", [((0, 45), (0, 38)), ((44, 45), (37, 38)), ((0, 1), (0, 38)), ((30, 45), (20, 38)), ((7, 19), (3, 4))]
)
def test_edge_windows_equal_slices_and_read_only_that_window(tiled_tif, box):
    path, array = tiled_tif
    full = array.transpose(0, 2, 1)
    valid = ~(array == 0).any(axis=0).T
    (c0, c1), (r0, r1) = box
    with GeoTiffSource(path) as source:
        source._src = RecordingDataset(source._src)
        np.testing.assert_array_equal(source.read(box), full[:, c0:c1, r0:r1])
        window = source._src.windows[-1]
        assert (window.col_off, window.row_off, window.width, window.height) == (c0, r0, c1 - c0, r1 - r0)
        np.testing.assert_array_equal(source.read_valid(box), valid[c0:c1, r0:r1])


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_windows_equal_slices(tiled_tif, data):
    path, array = tiled_tif
    full = array.transpose(0, 2, 1)
    c0 = data.draw(st.integers(0, 44))
    c1 = data.draw(st.integers(c0 + 1, 45))
    r0 = data.draw(st.integers(0, 37))
    r1 = data.draw(st.integers(r0 + 1, 38))
    bands = data.draw(st.permutations([1, 2, 3, 4]).map(lambda p: p[: 1 + (c0 % 4)]))
    with GeoTiffSource(path, bands=bands) as source:
        got = source.read(((c0, c1), (r0, r1)))
        np.testing.assert_array_equal(got, full[[b - 1 for b in bands], c0:c1, r0:r1])
        valid = ~(array[[b - 1 for b in bands]] == 0).any(axis=0).T
        np.testing.assert_array_equal(source.read_valid(((c0, c1), (r0, r1))), valid[c0:c1, r0:r1])
        # read_valid without a preceding read of the same box
        np.testing.assert_array_equal(source.read_valid(((0, c1), (0, r1))), valid[:c1, :r1])


@pytest.mark.parametrize("box", [((0, 46), (0, 38)), ((-1, 3), (0, 3)), ((5, 5), (0, 3))])
def test_out_of_bounds_or_empty_box_is_refused(tiled_tif, box):
    path, _ = tiled_tif
    with GeoTiffSource(path) as source, pytest.raises(InputError, match="outside the image of 45 columns x 38 rows"):
        source.read(box)


# ------------------------------------------------------------------ 4. sink round trip


@pytest.mark.parametrize("cog", [False, True])
def test_sink_round_trip_in_shuffled_windows(tmp_path, full_tif, cog):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    meta = {**image.meta, "provenance": PROVENANCE}
    out = tmp_path / "out" / "sr.tif"
    out.parent.mkdir()
    write_in_windows(out, image.array, image.affine, meta, cog=cog, block_size=16)
    src, dst = rio_props(path), rio_props(out)
    np.testing.assert_array_equal(dst["array"], src["array"])
    assert dst["transform"] == src["transform"]
    for key in ("crs", "dtype", "nodata", "descriptions", "band_tags", "scales", "offsets", "units", "colorinterp"):
        assert dst[key] == src[key], key
    assert dst["tags"]["SENSOR"] == "synthetic" and dst["tags"]["AREA_OR_POINT"] == "Area"
    assert dst["tags"]["GEO_MED_SR_METHOD"] == "edsr" and dst["tags"]["GEO_MED_SR_CHECKPOINT"] == "x2.pt"
    assert json.loads(dst["tags"]["GEO_MED_SR_SCALE"]) == [2, 2]
    assert sorted(p.name for p in out.parent.iterdir()) == ["sr.tif"]  # temp files are gone
    with rasterio.open(out) as ds:
        assert ds.block_shapes[0] == (16, 16) and ds.compression.name.lower() == "deflate"
        assert ds.profile.get("predictor") in (None, 2)  # rasterio does not always report it
    if cog:
        is_valid, errors, _ = cog_validate(out, quiet=True)
        assert is_valid and not errors


def test_overviews_until_both_sides_fit_one_tile():
    assert gt.overview_factors(600, 500, 512) == [2]  # a smallest-side rule gives none: cog_validate warns
    assert gt.overview_factors(500, 600, 512) == [2]
    assert gt.overview_factors(512, 512, 512) == []
    assert gt.overview_factors(4096, 100, 512) == [2, 4, 8]


def test_cog_has_overviews_and_validates(tmp_path):
    path, array = make_geotiff(
        tmp_path / "big.tif", width=600, height=500, count=1, descriptions=("red",), nodata_region=False
    )
    image = GeoTiffAdapter.read(path)
    out = tmp_path / "cog.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=True, block_size=256)
    is_valid, errors, warns = cog_validate(out, quiet=True)
    assert is_valid and not errors and not warns
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2, 4]  # until both sides fit one tile: 600x500 -> 300x250 -> 150x125
        assert ds.block_shapes[0] == (256, 256)
        np.testing.assert_array_equal(ds.read(), array)
        assert ds.transform == rotated_transform() and ds.tags()["OVERVIEW_RESAMPLING"] == "AVERAGE"
    with rasterio.open(out, overview_level=0) as ovr:
        block_mean = array.reshape(1, 250, 2, 300, 2).astype(np.float64).mean(axis=(2, 4))
        np.testing.assert_allclose(ovr.read(), block_mean, atol=0.51)  # average overviews
    assert not (tmp_path / "cog.tif.tiled.tif").exists()


NORTH_UP = np.array([[10.0, 0.0, 500005.0], [0.0, -10.0, 5999995.0], [0.0, 0.0, 1.0]])  # centre affine, 10 m


def overview_levels(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(values, mask)`` of every overview level of ``path``, finest first."""
    with rasterio.open(path) as ds:
        count = len(ds.overviews(1))
    levels = []
    for level in range(count):
        with rasterio.open(path, overview_level=level) as ovr:
            levels.append((ovr.read(), ovr.read_masks()))
    return levels


def block_mean(array: np.ndarray, valid: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean of each ``f x f`` block of ``array`` ``(C, H, W)`` over its ``valid`` pixels, rounded half up, and
    whether the block has any valid pixel: ``((C, H/f, W/f), (C, H/f, W/f))``."""
    c, h, w = array.shape
    blocks = array.reshape(c, h // factor, factor, w // factor, factor).astype(np.float64)
    valid = np.broadcast_to(valid, array.shape).reshape(blocks.shape)
    count = valid.sum(axis=(2, 4))
    mean = np.floor(np.where(valid, blocks, 0.0).sum(axis=(2, 4)) / np.maximum(count, 1) + 0.5)
    return mean, count > 0


@pytest.mark.parametrize("kind", ["nodata", "mask"])
def test_cog_overviews_are_block_means_of_the_full_resolution_at_every_level(tmp_path, kind):
    """Every overview level is computed from full resolution: the mean of its block's valid pixels (nodata, or an
    internal mask); nodata/masked where the whole block is.

    Never the average of the rounded, nodata-blind level above (GDAL's cascade), which the previous
    pixel-interleaved intermediate got for outputs this small (a level's source chunk under
    GDAL_OVR_CHUNK_MAX_SIZE): x4 and x8 were off by up to 589 here. The sink's docstring says which
    outputs changed."""
    rng = np.random.default_rng(3)
    width, height = 512, 384  # multiples of 8: every overview pixel is one whole block
    array = rng.integers(100, 4000, size=(3, width, height)).astype(np.uint16)  # (C, W, H)
    valid = rng.random((width, height)) >= 0.15  # scattered: many blocks partly invalid
    valid[40:72, 16:48] = False  # whole x8 blocks (and x16 partly)
    meta = {"geotiff": {"crs": "EPSG:32633", "nodata": 0 if kind == "nodata" else None}}
    out = tmp_path / "cog.tif"
    with GeoTiffSink(
        out, array.shape, NORTH_UP, meta, array.dtype, cog=True, block_size=64, mask=kind == "mask"
    ) as sink:
        for (c0, c1), (r0, r1) in split_boxes(width, height, (width // 3, width // 2 + 1), (height // 4,)):
            sink.write(((c0, c1), (r0, r1)), array[:, c0:c1, r0:r1], valid=valid[c0:c1, r0:r1])
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2, 4, 8] == gt.overview_factors(width, height, 64)
        assert ds.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "PIXEL"
        full = ds.read()
    np.testing.assert_array_equal(full[:, valid.T], array.transpose(0, 2, 1)[:, valid.T])
    for factor, (values, mask) in zip([2, 4, 8], overview_levels(out)):
        mean, any_valid = block_mean(full, valid.T, factor)
        assert any_valid.mean() > 0.9 and not any_valid.all()  # some whole blocks invalid, most not
        np.testing.assert_array_equal(values[any_valid], mean[any_valid], err_msg=f"overview x{factor}")
        np.testing.assert_array_equal(mask != 0, any_valid, err_msg=f"mask of overview x{factor}")
        if kind == "nodata":
            assert (values[~any_valid] == 0).all()


@pytest.mark.parametrize("kind", ["nodata", "mask"])
def test_cog_overviews_equal_gdal_averages_of_the_full_resolution_on_any_grid(tmp_path, kind):
    """Sizes that are no multiple of the factors (GDAL weighs the pixels an overview pixel partly covers), per-band
    nodata or an internal mask: every level (and the mask's) equals GDAL's average of the full resolution, the
    values the previous implementation (a pixel-interleaved copy, all levels in one call) gave wherever GDAL did
    not cascade, which a small GDAL_OVR_CHUNK_MAX_SIZE rules out."""
    import rasterio.shutil
    from rasterio.enums import Resampling

    rng = np.random.default_rng(5)
    width, height = 601, 383
    array = rng.integers(100, 4000, size=(4, width, height)).astype(np.uint16)
    valid = rng.random((4, width, height)) > 0.1 if kind == "nodata" else rng.random((width, height)) > 0.1
    valid[..., 100:180, 40:95] = False
    meta = {"geotiff": {"crs": "EPSG:32633", "nodata": 0 if kind == "nodata" else None}}
    out = tmp_path / "cog.tif"
    with GeoTiffSink(
        out, array.shape, NORTH_UP, meta, array.dtype, cog=True, block_size=64, mask=kind == "mask"
    ) as sink:
        for (c0, c1), (r0, r1) in split_boxes(width, height, (200, 333), (150,)):
            sink.write(((c0, c1), (r0, r1)), array[:, c0:c1, r0:r1], valid=valid[..., c0:c1, r0:r1])
    reference = tmp_path / "reference.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK="YES"):
        rasterio.shutil.copy(str(out), str(reference), driver="GTiff", tiled=True, interleave="pixel")
    with rasterio.Env(GDAL_OVR_CHUNK_MAX_SIZE="100000", GDAL_TIFF_INTERNAL_MASK="YES"):
        with rasterio.open(reference, "r+") as ds:
            ds.build_overviews(gt.overview_factors(width, height, 64), Resampling.average)
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2, 4, 8, 16]
    got, expected = overview_levels(out), overview_levels(reference)
    assert len(got) == len(expected) == 4
    for factor, (values, mask), (want, want_mask) in zip([2, 4, 8, 16], got, expected):
        np.testing.assert_array_equal(values, want, err_msg=f"overview x{factor}")
        np.testing.assert_array_equal(mask, want_mask, err_msg=f"mask of overview x{factor}")
    is_valid, errors, warns = cog_validate(out, strict=True, quiet=True)
    assert is_valid and not errors and not warns


def test_cog_data_is_compressed_once_the_intermediate_with_a_fast_codec(tmp_path, monkeypatch):
    """With cog=True the tiled file the COG is copied from is ZSTD level 1 (where GDAL has it), never the COG's
    deflate: the data is deflated once, by the copy. The COG keeps deflate + predictor and the exact values."""
    from geo_med_sr.adapters.geotiff import sink as sink_module

    if not sink_module.gdal_has_zstd():
        pytest.skip("this GDAL has no ZSTD")
    path, array = make_geotiff(tmp_path / "in.tif", width=300, height=200, count=2, nodata_region=False)
    image = GeoTiffAdapter.read(path)
    seen = {}
    copy = sink_module.copy_to_cog

    def spy(tiled, *args, **kwargs):
        with rasterio.open(tiled) as ds:
            structure = ds.tags(ns="IMAGE_STRUCTURE")
            seen["tiled"] = (structure.get("COMPRESSION"), structure.get("PREDICTOR"), structure.get("INTERLEAVE"))
            seen["tiled_overviews"] = ds.overviews(1)
        seen["copy_overview_level"] = rasterio.env.get_gdal_config("ZSTD_LEVEL_OVERVIEW")
        return copy(tiled, *args, **kwargs)

    def spy_overviews(tiled, spatial, block, config=None):
        seen["overview_config"] = config
        return build(tiled, spatial, block, config)

    build = sink_module.build_overviews
    monkeypatch.setattr(sink_module, "copy_to_cog", spy)
    monkeypatch.setattr(sink_module, "build_overviews", spy_overviews)
    out = tmp_path / "cog.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=True, block_size=128)
    assert seen["tiled"] == ("ZSTD", "2", "BAND")  # band-interleaved: GDAL's fast overview path
    assert seen["tiled_overviews"] == [2, 4] and seen["overview_config"] == {"ZSTD_LEVEL_OVERVIEW": "1"}
    assert seen["copy_overview_level"] is None  # the fast level is for the intermediate only, never the COG's
    with rasterio.open(out) as ds:
        structure = ds.tags(ns="IMAGE_STRUCTURE")
        assert (structure.get("COMPRESSION"), structure.get("PREDICTOR"), structure.get("INTERLEAVE")) == (
            "DEFLATE",
            "2",
            "PIXEL",
        )
        np.testing.assert_array_equal(ds.read(), array)
    is_valid, errors, _ = cog_validate(out, quiet=True)
    assert is_valid and not errors
    plain = tmp_path / "plain.tif"
    write_in_windows(plain, image.array, image.affine, image.meta, cog=False, block_size=128)
    with rasterio.open(plain) as ds:
        assert ds.compression.name.lower() == "deflate"  # without cog the written file is the output
        assert ds.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "PIXEL"


def test_failed_cog_copy_is_an_output_error_and_leaves_no_files(tmp_path, full_tif, monkeypatch):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    folder = tmp_path / "out"
    folder.mkdir()

    def failing_copy(src, dst, **kwargs):
        Path(dst).write_bytes(b"partial")
        raise rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")

    monkeypatch.setattr(rasterio.shutil, "copy", failing_copy)
    with pytest.raises(OutputError, match="the disk may be full") as info:
        write_in_windows(folder / "a.tif", image.array, image.affine, image.meta, cog=True, block_size=16)
    assert_one_line_naming(info.value, folder / "a.tif")
    assert list(folder.iterdir()) == []
    # ``name``: messages name the user's output while the sink writes a temporary target
    with pytest.raises(OutputError, match="the disk may be full") as info:
        write_in_windows(
            folder / "tmp.tif",
            image.array,
            image.affine,
            image.meta,
            cog=True,
            block_size=16,
            name=tmp_path / "final.tif",
        )
    assert_one_line_naming(info.value, tmp_path / "final.tif")
    assert str(folder / "tmp.tif") not in str(info.value)
    assert list(folder.iterdir()) == []


def test_adapter_write_sets_invalid_pixels_to_nodata_and_casts(tmp_path, full_tif):
    path, array = full_tif
    image = GeoTiffAdapter.read(path)
    as_float = image.with_array(image.array.astype(np.float32) + 0.4)  # meta dtype stays uint16
    GeoTiffAdapter.write(as_float, tmp_path / "w.tif", cog=False)
    back = rio_props(tmp_path / "w.tif")
    assert back["dtype"] == "uint16"
    invalid = (array == 0).any(axis=0)
    expected = np.where(invalid[None], 0, array)  # a pixel invalid in one band is nodata in all
    np.testing.assert_array_equal(back["array"], expected)


# ------------------------------------------------------------------ 5. upscaled grids


@pytest.mark.parametrize("scale,cog", [(2, False), (2, True), (3, False)])
def test_upscaled_grid_transform_is_t_times_scale(tmp_path, full_tif, scale, cog):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    hr = image.with_array(np.repeat(np.repeat(image.array, scale, axis=1), scale, axis=2), scale)
    out = tmp_path / f"x{scale}.tif"
    write_in_windows(out, hr.array, hr.affine, hr.meta, cog=cog, block_size=32)
    expected = rotated_transform() @ Affine.scale(1 / scale)
    with rasterio.open(out) as ds:
        got = ds.transform
        assert (ds.width, ds.height) == (37 * scale, 29 * scale)
        np.testing.assert_array_equal(ds.read(), hr.array.transpose(0, 2, 1))
    as_matrix = [np.array(t, dtype=np.float64).reshape(3, 3) for t in (got, expected)]
    assert geometry.affine_difference_in_voxels(as_matrix[1], as_matrix[0]) < 1e-9
    # the HR transform is not the LR one with only a/e edited (the common wrong answer)
    naive = Affine(expected.a, rotated_transform().b, expected.c, rotated_transform().d, expected.e, expected.f)
    assert geometry.affine_difference_in_voxels(as_matrix[1], np.array(naive).reshape(3, 3)) > 0.1


def test_block_average_inverse_restores_the_lr_transform(tmp_path, full_tif):
    """DESIGN §3 oracle: block-average by 2, upscale back: the transform equals the original."""
    path, _ = full_tif
    image = GeoTiffAdapter.read(path, bands=[1])
    crop = image.array[:, :36, :28]
    lr_affine = geometry.scale_affine(image.affine, 0.5)
    lr = crop.reshape(1, 18, 2, 14, 2).mean(axis=(2, 4)).astype(np.uint16)
    hr_affine = geometry.scale_affine(lr_affine, 2)
    out = tmp_path / "back.tif"
    write_in_windows(out, np.repeat(np.repeat(lr, 2, 1), 2, 2), hr_affine, image.meta, cog=False, block_size=16)
    with rasterio.open(out) as ds:
        got = np.array(ds.transform).reshape(3, 3)
    assert geometry.affine_difference_in_voxels(np.array(rotated_transform()).reshape(3, 3), got) < 1e-9


# ------------------------------------------------------------------ 6. AREA_OR_POINT and no CRS


def raw_tiepoint_transform(path: Path) -> Affine:
    with rasterio.Env(GTIFF_POINT_GEO_IGNORE=True), rasterio.open(path) as src:
        return src.transform


def test_gdal_normalises_point_files_to_the_corner_convention(tmp_path):
    path, _ = make_geotiff(tmp_path / "p.tif", area_or_point="Point")
    transform = rotated_transform()
    with rasterio.open(path) as src:
        assert src.transform == transform and src.tags()["AREA_OR_POINT"] == "Point"
    raw = raw_tiepoint_transform(path)  # the TIFF tiepoint sits on the centre of pixel 0
    np.testing.assert_allclose((raw.c, raw.f), transform @ (0.5, 0.5), rtol=0, atol=1e-6)


@pytest.mark.parametrize("cog", [False, True])
def test_point_file_round_trip(tmp_path, cog):
    path, array = make_geotiff(tmp_path / "p.tif", area_or_point="Point")
    image = GeoTiffAdapter.read(path)
    assert image.meta["geotiff"]["area_or_point"] == "Point"
    np.testing.assert_allclose(
        image.affine, geometry.corner_to_centre(np.array(rotated_transform()).reshape(3, 3)), rtol=1e-12, atol=0
    )
    out = tmp_path / "q.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=cog, block_size=16)
    with rasterio.open(out) as ds:
        assert ds.transform == rotated_transform() and ds.tags()["AREA_OR_POINT"] == "Point"
        np.testing.assert_array_equal(ds.read(), array)
    assert raw_tiepoint_transform(out) == raw_tiepoint_transform(path)
    assert GeoTiffAdapter.read(out).meta["geotiff"]["area_or_point"] == "Point"


@pytest.mark.parametrize("cog", [False, True])
def test_file_without_crs_warns_and_keeps_the_transform(tmp_path, cog):
    path, array = make_geotiff(tmp_path / "nocrs.tif", crs=None)
    with pytest.warns(UserWarning, match="no CRS; the output will be on the pixel grid only") as record:
        image = GeoTiffAdapter.read(path)
    assert str(path) in str(record[0].message)
    assert image.meta["geotiff"]["crs"] is None
    assert GeoTiffAdapter.describe(image)["CRS"].startswith("none")
    out = tmp_path / "out.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=cog, block_size=16)
    with rasterio.open(out) as ds:
        assert ds.crs is None and ds.transform == rotated_transform()
        np.testing.assert_array_equal(ds.read(), array)


# ------------------------------------------------------------------ 7. dtypes


@pytest.mark.parametrize("dtype,nodata", [("uint8", 0), ("uint16", 0), ("int16", -9999), ("float32", float("nan"))])
def test_dtype_round_trip(tmp_path, dtype, nodata):
    path, array = make_geotiff(tmp_path / f"{dtype}.tif", dtype=dtype, nodata=nodata)
    image = GeoTiffAdapter.read(path)
    assert image.array.dtype == np.dtype(dtype) and image.meta["dtype"] == dtype
    expected_valid = ~nodata_mask(4, 29, 37).any(axis=0).T
    np.testing.assert_array_equal(image.valid, expected_valid)
    if math.isnan(nodata):
        assert image.meta["geotiff"]["nodata"] == "nan"
        json.dumps(image.meta, allow_nan=False)
    out = tmp_path / f"{dtype}_out.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=True, block_size=16)
    back = rio_props(out)
    assert back["dtype"] == dtype
    np.testing.assert_array_equal(back["array"], array)  # NaN == NaN for assert_array_equal
    assert back["nodata"] == nodata or (math.isnan(nodata) and math.isnan(back["nodata"]))


def test_sink_refuses_a_nodata_the_dtype_cannot_hold(tmp_path, full_tif):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    with pytest.raises(ConfigError, match=r"nodata -9999.0 cannot be stored as uint16"):
        GeoTiffSink(tmp_path / "x.tif", image.array.shape, image.affine, image.meta, "uint16", nodata=-9999)
    assert list(tmp_path.glob("x.tif*")) == []


def test_sink_refuses_windows_of_the_wrong_dtype_or_shape(tmp_path, full_tif):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    with GeoTiffSink(tmp_path / "x.tif", image.array.shape, image.affine, image.meta, "uint16", cog=False) as sink:
        with pytest.raises(OutputError, match="dtype float32 but the output is uint16"):
            sink.write(((0, 2), (0, 2)), np.zeros((4, 2, 2), np.float32))
        with pytest.raises(OutputError, match=r"does not match box"):
            sink.write(((0, 2), (0, 2)), np.zeros((4, 2, 3), np.uint16))
        sink.write(((0, 37), (0, 29)), image.array)


# ------------------------------------------------------------------ 8. bad inputs and failures


def _jpeg(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path, format="JPEG")
    return path


def _png(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(path, format="PNG")
    return path


def _truncated(path: Path) -> Path:
    make_geotiff(path.with_name("whole.tif"), width=120, height=90, tiled=True, blocksize=32)
    data = path.with_name("whole.tif").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_striped(path: Path) -> Path:
    """Striped file with its header first: it opens, and the missing last strip is found at once."""
    whole = path.with_name("whole.tif")
    with rasterio.open(
        whole,
        "w",
        driver="GTiff",
        width=300,
        height=200,
        count=2,
        dtype="uint16",
        crs="EPSG:32618",
        transform=rotated_transform(),
    ) as dst:
        dst.write(np.random.default_rng(1).integers(1, 60000, (2, 200, 300), dtype=np.uint16))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with rasterio.open(path) as src:  # GDAL opens it: the probe in GeoTiffSource must catch it
        assert src.width == 300
    return path


def _text(path: Path) -> Path:
    path.write_text("this is not an image\n" * 40)
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    "make,match",
    [
        (_jpeg, "not a GeoTIFF: GDAL reads it as JPEG"),
        (_png, "not a GeoTIFF: GDAL reads it as PNG"),
        (_truncated, "truncated or corrupt"),
        (_truncated_striped, "cannot read pixels of window .* truncated or corrupt"),
        (_text, "not a readable GeoTIFF"),
        (_empty, "the file is empty"),
    ],
)
def test_bad_inputs_are_one_line_input_errors(tmp_path, make, match):
    path = make(tmp_path / "bad.tif")
    with pytest.raises(InputError, match=match) as info:
        GeoTiffSource(path)  # found when opening, before any window is read
    assert_one_line_naming(info.value, path)


def test_missing_file_is_input_not_found(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such file"):
        GeoTiffSource(tmp_path / "nope.tif")


def test_corrupt_block_in_the_middle_fails_on_read_with_input_error(tmp_path):
    path, _ = make_geotiff(tmp_path / "c.tif", width=96, height=96, tiled=True, blocksize=32, nodata_region=False)
    compressed = tmp_path / "cc.tif"
    with rasterio.open(path) as src:
        profile = {**src.profile, "compress": "deflate"}
        with rasterio.open(compressed, "w", **profile) as dst:
            dst.write(src.read())
    with rasterio.open(compressed) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=1))
    data = bytearray(compressed.read_bytes())
    data[offset : offset + size] = b"\xff" * size
    compressed.write_bytes(bytes(data))
    with GeoTiffSource(compressed) as source:  # the first and last blocks are intact
        source.read(((0, 32), (0, 32)))
        with pytest.raises(InputError, match="cannot read pixels of window") as info:
            source.read(((40, 50), (40, 50)))
    assert_one_line_naming(info.value, compressed)


@pytest.mark.parametrize("cog", [False, True])
def test_abort_and_exceptions_leave_no_files(tmp_path, full_tif, cog):
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    folder = tmp_path / "out"
    folder.mkdir()
    sink = GeoTiffSink(folder / "a.tif", image.array.shape, image.affine, image.meta, "uint16", cog=cog)
    sink.write(((0, 10), (0, 10)), image.array[:, :10, :10])
    assert list(folder.iterdir())
    sink.abort()
    assert list(folder.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"):
        with GeoTiffSink(folder / "b.tif", image.array.shape, image.affine, image.meta, "uint16", cog=cog) as sink:
            sink.write(((0, 37), (0, 29)), image.array)
            raise RuntimeError("boom")
    assert list(folder.iterdir()) == []


def test_block_check_finds_a_silently_truncated_output(tmp_path, full_tif):
    """GDAL's flush on close is not checked by rasterio: the sink re-reads the block table."""
    path, _ = full_tif
    image = GeoTiffAdapter.read(path)
    out = tmp_path / "c.tif"
    write_in_windows(out, image.array, image.affine, image.meta, cog=True, block_size=16)
    gt.check_blocks(out)  # complete file: no error
    out.write_bytes(out.read_bytes()[:-10])  # a COG keeps its header first: it still opens
    with rasterio.open(out) as src:
        assert src.count == 4
    with pytest.raises(OutputError, match="was not written completely; the disk may be full") as info:
        gt.check_blocks(out)
    assert_one_line_naming(info.value, out)


DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    import numpy as np
    from geo_med_sr.adapters.geotiff import GeoTiffSink
    from geo_med_sr.errors import GeoMedSRError

    folder, cog = Path(sys.argv[1]), sys.argv[2] == "1"
    affine = np.array([[30.0, 0, 500015.0], [0, -30.0, 4499985.0], [0, 0, 1]])
    meta = {"geotiff": {"crs": "EPSG:32618"}}
    data = np.random.default_rng(0).integers(0, 65535, (1, 1024, 1024), dtype=np.uint16)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    result = {"error": None, "message": None}
    try:
        with GeoTiffSink(folder / "full.tif", data.shape, affine, meta, "uint16", cog=cog, block_size=256) as sink:
            for r in range(0, 1024, 256):
                sink.write(((0, 1024), (r, r + 256)), data[:, :, r:r + 256])
    except GeoMedSRError as exc:
        result = {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:
        result = {"error": "raw " + type(exc).__name__, "message": str(exc)}
    result["files"] = sorted(p.name for p in folder.iterdir())
    print(json.dumps(result))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("cog", [False, True])
def test_disk_full_is_an_output_error_and_leaves_no_files(tmp_path, cog):
    folder = tmp_path / "disk"
    folder.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, str(folder), "1" if cog else "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == ""  # libtiff's raw "_tiffWriteProc: File too large." lines are muted
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["error"] == "OutputError", result
    assert "disk may be full" in result["message"] and str(folder / "full.tif") in result["message"]
    assert "\n" not in result["message"]
    assert result["files"] == []


# ------------------------------------------------------------------ adapter surface


def test_adapter_registration_and_surface(tmp_path, full_tif):
    path, _ = full_tif
    assert ADAPTERS.get("geotiff") is GeoTiffAdapter
    assert GeoTiffAdapter.reads_windows is True and GeoTiffAdapter.writes_windows is True
    assert GeoTiffAdapter.is_folder is False
    assert GeoTiffAdapter.can_read(path) and not GeoTiffAdapter.can_read(tmp_path / "missing.tif")
    (tmp_path / "a.nii").write_bytes(b"x")
    assert not GeoTiffAdapter.can_read(tmp_path / "a.nii")
    assert all(GeoTiffAdapter.can_write(Path(n)) for n in ("a.tif", "b.TIFF", "c.Tif"))
    assert not GeoTiffAdapter.can_write(Path("a.nii.gz"))
    with GeoTiffAdapter.open_source(path, bands=[2]) as source:
        assert source.shape == (1, 37, 29) and source.dtype == np.uint16 and source.nodata == 0.0
        meta, affine = source.meta, source.affine
    sink = GeoTiffAdapter.open_sink(tmp_path / "s.tif", (1, 37, 29), affine, meta, "uint16", cog=False, block_size=16)
    sink.abort()


def test_describe(full_tif):
    path, _ = full_tif
    info = GeoTiffAdapter.describe(GeoTiffAdapter.read(path))
    transform = rotated_transform()
    assert info["CRS"] == "EPSG:32618"
    assert info["transform (a, b, c, d, e, f)"] == tuple(transform)[:6]
    corners = [transform @ (c, r) for c in (0, 37) for r in (0, 29)]
    xs, ys = zip(*corners)
    np.testing.assert_allclose(info["bounds (minx, miny, maxx, maxy)"], (min(xs), min(ys), max(xs), max(ys)))
    assert info["band descriptions"] == ["blue", "green", "red", "nir"]
    assert (
        info["nodata"] == 0.0
        and info["AREA_OR_POINT"] == "Area"
        and info["colorinterp"][:3] == ["blue", "green", "red"]
    )


def test_affine_conversions_are_exact_inverses():
    transform = rotated_transform()
    affine = gt.affine_from_transform(transform)
    assert gt.transform_from_affine(affine) == transform
    assert gt.decode_nodata(gt.encode_nodata(float("nan"))) != gt.decode_nodata(gt.encode_nodata(float("nan")))  # NaN
    assert (
        gt.encode_nodata(float("nan")) == "nan"
        and gt.encode_nodata(-9999) == -9999.0
        and gt.encode_nodata(None) is None
    )


# ------------------------------------------------------------------ 9. real data


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name,count,dtype,nodata",
    [
        ("RGB.byte.tif", 3, "uint8", 0.0),
        ("LC08_232066_20190727.tif", 6, "int16", -9999.0),
        ("l8_B4.tif", 1, "uint16", None),
    ],
)
def test_real_files_read_and_stream_back_to_a_valid_cog(tmp_path, name, count, dtype, nodata):
    if not REAL_DATA.is_dir():
        pytest.skip("../shared/data/geotiff not present: real-data test needs the shared sample data")
    path = REAL_DATA / name
    out = tmp_path / f"cog_{name}"
    with rasterio.open(path) as ref, GeoTiffSource(path) as source:
        assert source.shape == (count, ref.width, ref.height) == (count, *ref.shape[::-1])
        assert source.dtype == np.dtype(dtype) and source.nodata == nodata == ref.nodata
        assert rasterio.crs.CRS.from_wkt(source.meta["geotiff"]["crs"]) == ref.crs
        _, width, height = source.shape
        with GeoTiffSink(out, source.shape, source.affine, source.meta, source.dtype, cog=True, block_size=256) as sink:
            for box in split_boxes(width, height, (width // 3, 2 * width // 3), (height // 2,)):
                sink.write(box, source.read(box))
        is_valid, errors, _ = cog_validate(out, quiet=True)
        assert is_valid and not errors
        with rasterio.open(out) as back:
            assert back.transform == ref.transform and back.crs == ref.crs and back.nodata == ref.nodata
            assert back.tags()["AREA_OR_POINT"] == ref.tags()["AREA_OR_POINT"]
            assert [c.name for c in back.colorinterp] == [c.name for c in ref.colorinterp]
            np.testing.assert_array_equal(back.read(), ref.read())


# ------------------------------------------------------------------ 10. hand-offs: provenance, band names, COG

#: provenance with the awkward cases: tuples, nested dicts, strings that look like JSON or that
#: GDAL would drop/strip (empty, padded), non-ASCII text, None and booleans.
RICH_PROVENANCE = {
    "tool": "geo_med_sr 0.1.0",
    "method": "edsr",
    "weights_sha256": "ab" * 32,
    "scale": (2, 2),
    "normalization": {"kind": "percentile", "low": [1.5, 2.25, 3.0, 4.0], "high": (9000.0, 12000.5, 1e4, 2e4)},
    "request": {"input_sha256": "cd" * 32, "scale": [2, 2], "bands": None, "cog": True},
    "note": "2",
    "flag_text": "true",
    "empty": "",
    "spaced": "  padded ",
    "unicode": "Jürgen µm",
    "flag": False,
    "nothing": None,
}
RICH_EXPECTED = json.loads(json.dumps(RICH_PROVENANCE))


def write_with(writer: str, image, out: Path, cog: bool, block_size: int = 16) -> None:
    """Write ``image`` with the adapter (one window) or the streaming sink (shuffled windows)."""
    if writer == "adapter":
        GeoTiffAdapter.write(image, out, cog=cog, block_size=block_size)
    else:
        write_in_windows(out, image.array, image.affine, image.meta, cog=cog, block_size=block_size)


@pytest.mark.parametrize("writer", ["adapter", "sink"])
@pytest.mark.parametrize("cog", [False, True])
def test_provenance_round_trips_through_the_tags(tmp_path, full_tif, writer, cog):
    image = GeoTiffAdapter.read(full_tif[0])
    image = image.with_array(image.array, meta_update={"provenance": RICH_PROVENANCE})
    out = tmp_path / "sr.tif"
    write_with(writer, image, out, cog)
    assert GeoTiffAdapter.read_provenance(out) == RICH_EXPECTED
    tags = rio_props(out)["tags"]
    # plain strings stay readable in QGIS/gdalinfo; strings that look like JSON are quoted
    assert tags["GEO_MED_SR_METHOD"] == "edsr" and tags["GEO_MED_SR_UNICODE"] == "Jürgen µm"
    assert tags["GEO_MED_SR_NOTE"] == '"2"' and tags["GEO_MED_SR_FLAG_TEXT"] == '"true"'
    assert tags["GEO_MED_SR_EMPTY"] == '""' and tags["GEO_MED_SR_SPACED"] == '"  padded "'
    assert (
        tags["GEO_MED_SR_SCALE"] == "[2, 2]"
        and tags["GEO_MED_SR_FLAG"] == "false"
        and tags["GEO_MED_SR_NOTHING"] == "null"
    )
    assert tags["SENSOR"] == "synthetic"  # the source's own tags are not provenance
    if cog:
        assert cog_validate(out, quiet=True)[0]


def test_provenance_value_encoding_is_an_exact_inverse():
    for value in [
        "edsr",
        "2",
        "-1.5",
        "true",
        "null",
        "[1]",
        '"quoted"',
        "",
        " x",
        "x ",
        "a\nb",
        2,
        2.5,
        True,
        None,
        [1, "2"],
        {"a": {"b": [None]}},
    ]:
        assert gt.decode_provenance_value(gt.encode_provenance_value(value)) == value, value


def test_provenance_of_older_files_with_raw_string_tags(tmp_path):
    path, _ = make_geotiff(
        tmp_path / "old.tif",
        tags={
            "SENSOR": "x",
            "GEO_MED_SR_METHOD": "edsr",
            "GEO_MED_SR_SCALE": "[2, 2]",
            "GEO_MED_SR_CHECKPOINT": "x2.pt",
            "GEO_MED_SR_NOTE": "2",
        },
    )
    # the old writer stored strings raw: "2" is ambiguous and reads as the JSON number
    assert GeoTiffAdapter.read_provenance(path) == {"method": "edsr", "scale": [2, 2], "checkpoint": "x2.pt", "note": 2}


def test_files_without_provenance_or_unreadable_read_none(tmp_path, full_tif):
    assert GeoTiffAdapter.read_provenance(full_tif[0]) is None
    assert GeoTiffAdapter.read_provenance(tmp_path / "missing.tif") is None
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 64)
    assert GeoTiffAdapter.read_provenance(tmp_path / "bad.tif") is None
    assert GeoTiffAdapter.read_provenance(tmp_path) is None


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rio-cogeo's own use of Affine * Affine
def test_provenance_survives_rio_cogeo_translation(tmp_path, full_tif):
    """A user converting a plain output to COG with rio-cogeo keeps the provenance tags."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    image = GeoTiffAdapter.read(full_tif[0])
    image = image.with_array(image.array, meta_update={"provenance": RICH_PROVENANCE})
    plain = tmp_path / "plain.tif"
    GeoTiffAdapter.write(image, plain, cog=False)
    converted = tmp_path / "converted.tif"
    cog_translate(str(plain), str(converted), cog_profiles.get("deflate"), quiet=True)
    assert cog_validate(converted, quiet=True)[0]
    assert GeoTiffAdapter.read_provenance(converted) == RICH_EXPECTED
    assert rio_props(converted)["descriptions"] == ("blue", "green", "red", "nir")


@pytest.mark.parametrize("writer", ["adapter", "sink"])
@pytest.mark.parametrize("cog", [False, True])
def test_bands_without_descriptions_are_named(tmp_path, writer, cog):
    path, _ = make_geotiff(tmp_path / "nameless.tif", count=3, descriptions=())
    assert rio_props(path)["descriptions"] == (None, None, None)
    image = GeoTiffAdapter.read(path)
    out = tmp_path / "out.tif"
    write_with(writer, image, out, cog)
    assert rio_props(out)["descriptions"] == ("band 1", "band 2", "band 3")
    assert GeoTiffAdapter.read(out).meta["geotiff"]["descriptions"] == ["band 1", "band 2", "band 3"]


def test_band_names_follow_the_source_numbers_and_keep_existing_names(tmp_path):
    path, _ = make_geotiff(tmp_path / "partial.tif", count=4, descriptions=("blue", "", "red", ""))
    selected = GeoTiffAdapter.read(path, bands=[4, 3, 2])
    GeoTiffAdapter.write(selected, tmp_path / "sel.tif", cog=False)
    assert rio_props(tmp_path / "sel.tif")["descriptions"] == ("band 4", "red", "band 2")
    assert gt.band_names({"geotiff": {"descriptions": ["a", None]}}, 2) == ["a", "band 2"]
    assert gt.band_names({}, 2) == ["band 1", "band 2"]
    assert gt.band_names({"geotiff": {"descriptions": ["only one"]}}, 2) == ["band 1", "band 2"]  # count mismatch


@pytest.mark.parametrize("writer", ["adapter", "sink"])
def test_cog_outputs_have_internal_overviews_validate_and_keep_band_names(tmp_path, writer):
    path, array = make_geotiff(
        tmp_path / "big.tif", width=600, height=520, count=2, descriptions=("red", ""), nodata_region=False
    )
    image = GeoTiffAdapter.read(path)
    out = tmp_path / "cog.tif"
    write_with(writer, image, out, cog=True, block_size=256)
    is_valid, errors, warns = cog_validate(out, quiet=True)
    assert is_valid and errors == [] and warns == []
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == ds.overviews(2) == gt.overview_factors(600, 520, 256) == [2, 4]
        assert ds.descriptions == ("red", "band 2")
        assert ds.transform == rotated_transform()
        np.testing.assert_array_equal(ds.read(), array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tif", "cog.tif"]
