"""GeoTIFF geometry as pure functions: centre affine <-> transform, pixel-is-area upscaling, windows, overviews.

Property tests (hypothesis) of :mod:`geo_med_sr.adapters.geotiff.conventions` and
:mod:`~geo_med_sr.adapters.geotiff.layout` on rotated, sheared, non-square transforms with
either sign of the row step (DESIGN §3), plus the parts of the adapter surface that are pure
geometry (``output_name``, ``describe`` of an opened source, the sink's ``block`` order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from geotiff_fixtures import make_geotiff, rotated_transform
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from rasterio.windows import Window as RasterioWindow

from geo_med_sr import geometry
from geo_med_sr.adapters import geotiff as gt
from geo_med_sr.adapters.geotiff.conventions import normalise_window
from geo_med_sr.errors import InputError, OutputError
from geo_med_sr.inference.protocols import Window

# ------------------------------------------------------------------ strategies


@st.composite
def transforms(draw) -> Affine:
    """Corner-anchored transforms: rotated, sheared, non-square pixels, row step up or down."""
    width = draw(st.floats(0.01, 5000.0))
    height = draw(st.floats(0.01, 5000.0)) * draw(st.sampled_from([-1.0, 1.0]))
    angle = draw(st.floats(-180.0, 180.0))
    shear_x, shear_y = draw(st.floats(-30.0, 30.0)), draw(st.floats(-30.0, 30.0))
    x0, y0 = draw(st.floats(-1e7, 1e7)), draw(st.floats(-1e7, 1e7))
    transform = Affine.translation(x0, y0) @ Affine.rotation(angle) @ Affine.shear(shear_x, shear_y)
    transform = transform @ Affine.scale(width, height)
    linear = np.array(transform, dtype=np.float64).reshape(3, 3)[:2, :2]
    # shears up to 30 degrees on both axes keep the pixel area at least a quarter of width*height
    assert abs(np.linalg.det(linear)) > 0.2 * width * abs(height)
    return transform


def coefficients(transform: Affine) -> np.ndarray:
    return np.array(tuple(transform)[:6], dtype=np.float64)


def assert_transforms_close(got: Affine, want: Affine, rel: float = 1e-9) -> None:
    """Equal to ``rel`` of the transform's largest coefficient (translations can be ~1e7)."""
    got_c, want_c = coefficients(got), coefficients(want)
    scale = float(np.max(np.abs(want_c)))
    np.testing.assert_allclose(got_c, want_c, rtol=rel, atol=rel * scale)


index_windows = st.tuples(st.integers(-50, 200), st.integers(1, 100), st.integers(-50, 200), st.integers(1, 100)).map(
    lambda v: Window(((v[0], v[0] + v[1]), (v[2], v[2] + v[3])))
)


# ------------------------------------------------------------------ centre affine <-> transform


@settings(max_examples=200, deadline=None)
@given(transform=transforms())
def test_transform_round_trips_through_the_centre_affine(transform):
    affine = gt.affine_from_transform(transform)
    assert affine.shape == (3, 3) and affine.dtype == np.float64
    np.testing.assert_array_equal(affine[2], [0.0, 0.0, 1.0])
    # the linear part (pixel size, rotation, shear) is the transform's own, unchanged
    np.testing.assert_array_equal(affine[:2, :2], np.array(transform).reshape(3, 3)[:2, :2])
    back = gt.transform_from_affine(affine)
    assert isinstance(back, Affine)
    assert_transforms_close(back, transform)


@settings(max_examples=200, deadline=None)
@given(transform=transforms(), col=st.integers(-10, 10_000), row=st.integers(-10, 10_000))
def test_centre_affine_maps_an_index_to_the_pixel_centre(transform, col, row):
    affine = gt.affine_from_transform(transform)
    scale = float(np.max(np.abs(coefficients(transform)))) * (1 + max(abs(col), abs(row)))
    origin = affine @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(origin[:2], transform @ (0.5, 0.5), rtol=0, atol=1e-9 * scale)
    world = affine @ np.array([col, row, 1.0])
    np.testing.assert_allclose(world[:2], transform @ (col + 0.5, row + 0.5), rtol=0, atol=1e-9 * scale)


def test_centre_affine_of_a_north_up_transform_by_hand():
    transform = Affine(30.0, 0.0, 500_000.0, 0.0, -20.0, 4_500_000.0)
    expected = np.array([[30.0, 0.0, 500_015.0], [0.0, -20.0, 4_499_990.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(gt.affine_from_transform(transform), expected)
    assert gt.transform_from_affine(expected) == transform


# ------------------------------------------------------------------ pixel-is-area upscaling (DESIGN §3)


@settings(max_examples=200, deadline=None)
@given(transform=transforms(), s_col=st.integers(1, 5), s_row=st.integers(1, 5))
def test_upscaled_transform_is_t_times_the_inverse_scale(transform, s_col, s_row):
    hr_affine = geometry.scale_affine(gt.affine_from_transform(transform), (s_col, s_row))
    hr = gt.transform_from_affine(hr_affine)
    assert_transforms_close(hr, transform @ Affine.scale(1 / s_col, 1 / s_row))


@settings(max_examples=100, deadline=None)
@given(
    transform=transforms(),
    s_col=st.integers(1, 5),
    s_row=st.integers(1, 5),
    width=st.integers(1, 500),
    height=st.integers(1, 500),
)
def test_upscaling_keeps_the_field_of_view(transform, s_col, s_row, width, height):
    """An independent oracle: the four outer corners of the HR grid are the LR grid's."""
    hr = gt.transform_from_affine(geometry.scale_affine(gt.affine_from_transform(transform), (s_col, s_row)))
    scale = float(np.max(np.abs(coefficients(transform)))) * (1 + max(width, height))
    for c, r in [(0, 0), (width, 0), (0, height), (width, height)]:
        np.testing.assert_allclose(hr @ (c * s_col, r * s_row), transform @ (c, r), rtol=0, atol=1e-9 * scale)


def test_upscaling_a_rotated_transform_by_hand():
    """x2 / x3 of the fixtures' rotated transform: the origin stays, the linear part divides per axis."""
    transform = rotated_transform()
    hr = gt.transform_from_affine(geometry.scale_affine(gt.affine_from_transform(transform), (2, 3)))
    a, b, c, d, e, f = tuple(transform)[:6]
    assert_transforms_close(hr, Affine(a / 2, b / 3, c, d / 2, e / 3, f), rel=1e-12)


# ------------------------------------------------------------------ windows


@settings(max_examples=200, deadline=None)
@given(window=index_windows)
def test_window_round_trips_through_a_rasterio_window(window):
    (c0, c1), (r0, r1) = window
    rio = gt.rasterio_window(window)
    assert (rio.col_off, rio.row_off, rio.width, rio.height) == (c0, r0, c1 - c0, r1 - r0)
    back = gt.window_from_rasterio(rio)
    assert isinstance(back, Window) and back == window
    assert gt.rasterio_window(tuple(tuple(pair) for pair in window)) == rio  # plain pairs work too


@settings(max_examples=200, deadline=None)
@given(
    col_off=st.integers(-50, 200), row_off=st.integers(-50, 200), width=st.integers(1, 100), height=st.integers(1, 100)
)
def test_rasterio_window_round_trips_through_a_window(col_off, row_off, width, height):
    rio = RasterioWindow(col_off=col_off, row_off=row_off, width=width, height=height)
    window = gt.window_from_rasterio(rio)
    assert window == ((col_off, col_off + width), (row_off, row_off + height))
    assert window.shape == (width, height)  # index order: columns first
    assert gt.rasterio_window(window) == rio


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_both_windows_select_the_same_pixels(data):
    """A Window slices the ``(W, H)`` array what its rasterio Window slices of the ``(H, W)`` array."""
    width, height = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30))
    c0 = data.draw(st.integers(0, width - 1))
    c1 = data.draw(st.integers(c0 + 1, width))
    r0 = data.draw(st.integers(0, height - 1))
    r1 = data.draw(st.integers(r0 + 1, height))
    window = Window(((c0, c1), (r0, r1)))
    rows_cols = np.arange(width * height).reshape(height, width)  # rasterio order
    np.testing.assert_array_equal(rows_cols[gt.rasterio_window(window).toslices()].T, rows_cols.T[window.toslices()])


def test_a_fractional_rasterio_window_is_refused():
    with pytest.raises(ValueError, match="not on whole pixels"):
        gt.window_from_rasterio(RasterioWindow(col_off=0.5, row_off=0, width=2, height=2))


@settings(max_examples=200, deadline=None)
@given(window=index_windows, width=st.integers(1, 150), height=st.integers(1, 150))
def test_normalised_window_is_the_same_window_or_a_one_line_error(window, width, height):
    path = Path("out") / "x.tif"
    (c0, c1), (r0, r1) = window
    plain = ((np.int64(c0), c1), (r0, float(r1)))  # numpy and float bounds are normalised to ints
    if 0 <= c0 < c1 <= width and 0 <= r0 < r1 <= height:
        got = normalise_window(plain, (width, height), path, InputError)
        assert isinstance(got, Window) and got == window
        assert all(type(v) is int for pair in got for v in pair)
    else:
        with pytest.raises(OutputError, match=f"outside the image of {width} columns x {height} rows") as info:
            normalise_window(plain, (width, height), path, OutputError)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("box", [((0, 1),), ((0, 1), (0, 1), (0, 1)), ((0, 1, 2), (0, 1)), (("a", 1), (0, 1)), 3])
def test_malformed_windows_are_refused_with_the_expected_shape(tmp_path, box):
    with pytest.raises(InputError, match=r"is not \(\(col_start, col_stop\), \(row_start, row_stop\)\)"):
        normalise_window(box, (10, 10), tmp_path / "x.tif", InputError)


# ------------------------------------------------------------------ overview factors


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 200_000), height=st.integers(1, 200_000), tile=st.integers(16, 1024))
def test_overview_factors_double_until_the_overview_fits_one_tile(width, height, tile):
    factors = gt.overview_factors(width, height, tile)
    assert factors == [2 ** (i + 1) for i in range(len(factors))]  # 2, 4, 8, ...: each doubles
    if not factors:
        assert max(width, height) <= tile  # the image itself fits: no overview needed
        return
    last = factors[-1]
    assert max(width // last, height // last) <= tile  # the last overview fits in one tile
    before = factors[-2] if len(factors) > 1 else 1
    assert max(width // before, height // before) > tile  # and no fewer levels would do


# ------------------------------------------------------------------ adapter surface (pure geometry)


def test_declared_attributes_and_output_name():
    adapter = gt.GeoTiffAdapter
    assert (adapter.name, adapter.domain, adapter.spatial_dims) == ("geotiff", "geo", 2)
    assert adapter.reads_windows is True and adapter.writes_windows is True
    assert adapter.band_selection is True and adapter.is_folder is False
    assert not hasattr(adapter, "streaming")
    assert adapter.output_name("scenes/LC08_x.TIFF") == "LC08_x.tif"
    assert adapter.output_name("a.b.tif") == "a.b.tif"


def test_describe_of_an_opened_source_equals_describe_of_the_image(tmp_path):
    path, _ = make_geotiff(tmp_path / "d.tif", width=23, height=11)
    image = gt.GeoTiffAdapter.read(path)
    with gt.GeoTiffAdapter.open_source(path) as source:
        from_source = gt.GeoTiffAdapter.describe(source)
    assert from_source == gt.GeoTiffAdapter.describe(image)
    transform = rotated_transform()
    corners = np.array([transform @ (c, r) for c in (0, 23) for r in (0, 11)])
    np.testing.assert_allclose(
        from_source["bounds (minx, miny, maxx, maxy)"], (*corners.min(axis=0), *corners.max(axis=0)), rtol=1e-12
    )


def test_sink_block_is_tile_width_then_height(tmp_path):
    """``block`` is in index order (columns, rows): the tiles of the file are ``block[0]`` wide."""
    affine = gt.affine_from_transform(rotated_transform())
    shape = (1, 40, 100)  # 40 columns, 100 rows
    values = (np.arange(4000) % 251).astype(np.uint8).reshape(shape)
    with gt.GeoTiffSink(tmp_path / "b.tif", shape, affine, {}, "uint8", cog=False, block_size=64) as sink:
        assert sink.block == (48, 64)  # 40 columns round up to one 48-wide tile; rows keep 64
        sink.write(Window.from_shape(shape[1:]), values)
    with rasterio.open(tmp_path / "b.tif") as src:
        assert src.block_shapes[0] == (64, 48)  # rasterio: (rows, columns)
        np.testing.assert_array_equal(src.read(1), values[0].T)
