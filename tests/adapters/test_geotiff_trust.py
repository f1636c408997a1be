"""GeoTIFF inputs read as GDAL means them, outputs that do not lie (issue 13, GeoTIFF part).

Complex data, GDAL masks (internal, external ``.msk``, alpha), GCP and RPC georeferencing,
tags that describe the input's pixels, colour tables and per-band validity.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from geotiff_fixtures import make_geotiff, smooth_bands
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.rpc import RPC
from rasterio.transform import Affine

from geo_med_sr.adapters.geotiff import GeoTiffAdapter, GeoTiffSink, GeoTiffSource
from geo_med_sr.errors import InputError, OutputError
from geo_med_sr.inference.protocols import Window
from geo_med_sr.spatial import SpatialArray
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve

NORTH_UP = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_500_000.0)
W, H = 40, 30


def _config(method: str = "bicubic") -> SRConfig:
    return SRConfig().updated(model={"method": method}, inference={"patch_size": 16})


def _upscale(src, dst, scale=2, method="bicubic", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return super_resolve(src, dst, scale, _config(method), progress=False, **kw)


def _rep(a: np.ndarray, s: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two (rasterio row, column) axes."""
    return np.repeat(np.repeat(a, s, -2), s, -1)


def _profile(count=2, dtype="uint16", **kw):
    return dict(driver="GTiff", width=W, height=H, count=count, dtype=dtype, crs="EPSG:32618", transform=NORTH_UP, **kw)


def _blob() -> np.ndarray:
    """``(H, W)`` GDAL mask: 0 on a block and a diagonal, 255 elsewhere."""
    mask = np.full((H, W), 255, np.uint8)
    mask[5:12, 8:19] = 0
    mask[np.arange(H), np.arange(H)] = 0
    return mask


# ---------------------------------------------------------------- 1. complex data


@pytest.mark.parametrize("dtype", ["complex64", "complex_int16", "complex128"])
def test_complex_bands_are_refused_at_open(tmp_path, dtype):
    path = tmp_path / "c.tif"
    with rasterio.open(path, "w", **_profile(dtype=dtype)):
        pass  # GDAL fills the bands with zeros
    with pytest.raises(InputError, match=r"complex data \(complex.*\) is not supported; write the magnitude") as err:
        GeoTiffSource(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- 2. GDAL masks


def _masked_pair(tmp_path, internal=True):
    """The same values twice: once with a GDAL mask (masked pixels hold 65535), once with nodata 1."""
    values = smooth_bands(2, H, W, "uint16")
    mask = _blob()
    masked = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=internal):
        with rasterio.open(masked, "w", **_profile()) as dst:
            dst.write(np.where(mask == 0, 65535, values).astype(np.uint16))
            dst.write_mask(mask)
    with_nodata = tmp_path / "nodata.tif"
    with rasterio.open(with_nodata, "w", nodata=1, **_profile()) as dst:
        dst.write(np.where(mask == 0, 1, values).astype(np.uint16))
    return masked, with_nodata, mask


@pytest.mark.parametrize("internal", [True, False], ids=["internal-mask", "external-msk"])
def test_masked_input_gives_the_upsampled_mask_and_the_nodata_values(tmp_path, internal):
    masked, with_nodata, mask = _masked_pair(tmp_path, internal)
    assert (tmp_path / "masked.tif.msk").exists() != internal
    _upscale(masked, tmp_path / "sr_mask.tif")
    _upscale(with_nodata, tmp_path / "sr_nodata.tif")
    with rasterio.open(tmp_path / "sr_mask.tif") as a, rasterio.open(tmp_path / "sr_nodata.tif") as b:
        assert a.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]
        assert not (tmp_path / "sr_mask.tif.msk").exists()  # internal, in the COG
        expected = _rep(mask, 2)
        np.testing.assert_array_equal(a.read_masks(1), expected)
        np.testing.assert_array_equal(a.dataset_mask(), expected)
        valid = expected != 0
        np.testing.assert_array_equal(a.read()[:, valid], b.read()[:, valid])


def test_alpha_band_is_carried_by_nearest_and_defines_validity(tmp_path):
    path = tmp_path / "rgba.tif"
    data = smooth_bands(4, H, W, "uint8")
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, :6] = 0
    alpha[10:14, 20:30] = 128  # partial transparency is kept, not interpolated
    data[3] = alpha
    with rasterio.open(path, "w", photometric="RGB", alpha="YES", **_profile(4, "uint8")) as dst:
        dst.write(data)
    _upscale(path, tmp_path / "sr.tif")
    with rasterio.open(tmp_path / "sr.tif") as sr:
        assert sr.colorinterp[3] == ColorInterp.alpha
        assert rasterio.enums.MaskFlags.alpha in sr.mask_flag_enums[0]
        np.testing.assert_array_equal(sr.read(4), _rep(alpha, 2))
    # without the alpha band selected, the alpha becomes an internal mask
    _upscale(path, tmp_path / "rgb.tif", bands=[1, 2, 3])
    with rasterio.open(tmp_path / "rgb.tif") as sr:
        assert sr.count == 3 and sr.mask_flag_enums[0] == [rasterio.enums.MaskFlags.per_dataset]
        np.testing.assert_array_equal(sr.read_masks(1) != 0, _rep(alpha != 0, 2))


def test_adapter_write_without_nodata_keeps_invalid_pixels_in_a_mask(tmp_path):
    path, _ = make_geotiff(tmp_path / "in.tif", nodata=None)
    image = GeoTiffAdapter.read(path)
    valid = np.ones(image.array.shape[1:], bool)
    valid[3:9, 4:7] = False
    image = SpatialArray(array=image.array, affine=image.affine, meta=image.meta, valid=valid)
    GeoTiffAdapter.write(image, tmp_path / "out.tif")
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.nodata is None
        np.testing.assert_array_equal(out.dataset_mask() != 0, valid.T)


# ---------------------------------------------------------------- 3. GCPs, RPCs, plain TIFF

GCPS = [
    GroundControlPoint(row=0.0, col=0.0, x=500_000.0, y=4_500_000.0, z=0.0, id="a"),
    GroundControlPoint(row=30.0, col=0.0, x=500_100.0, y=4_499_100.0, z=12.5, id="b"),
    GroundControlPoint(row=0.0, col=40.0, x=501_200.0, y=4_500_050.0, z=0.0, id="c"),
    GroundControlPoint(row=17.25, col=23.5, x=500_700.0, y=4_499_500.0, z=3.0, id="d", info="centre"),
]


def _gcp_file(path):
    profile = _profile()
    del profile["crs"], profile["transform"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(smooth_bands(2, H, W))
            dst.gcps = (GCPS, CRS.from_epsg(32618))
    return path


@pytest.mark.parametrize("scale", [2, 3])
def test_gcps_are_kept_with_pixel_line_times_the_scale(tmp_path, scale):
    src = _gcp_file(tmp_path / "gcp.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "no CRS" warning: the GCPs are used
        GeoTiffSource(src).close()
    _upscale(src, tmp_path / "sr.tif", scale=scale)
    with rasterio.open(src) as lr:
        stored = lr.gcps[0]  # GTiff renumbers the ids 1..N and drops the info text
    assert [(g.col, g.row, g.x, g.y, g.z) for g in stored] == [(g.col, g.row, g.x, g.y, g.z) for g in GCPS]
    with rasterio.open(tmp_path / "sr.tif") as sr:
        gcps, crs = sr.gcps
        assert crs == CRS.from_epsg(32618) and sr.crs is None and sr.transform.is_identity
        assert [(g.col, g.row, g.x, g.y, g.z, g.id) for g in gcps] == [
            (g.col * scale, g.row * scale, g.x, g.y, g.z, g.id) for g in stored
        ]


def test_rpc_only_file_is_refused_and_rpcs_with_a_transform_are_dropped(tmp_path):
    rpc = RPC(
        height_off=0, height_scale=100, lat_off=40, lat_scale=0.1, line_den_coeff=[1] + [0] * 19,
        line_num_coeff=[0, 0, -1] + [0] * 17, line_off=15, line_scale=15, long_off=-75, long_scale=0.1,
        samp_den_coeff=[1] + [0] * 19, samp_num_coeff=[0, 1] + [0] * 18, samp_off=20, samp_scale=20,
    )  # fmt: skip
    only = tmp_path / "rpc.tif"
    profile = _profile()
    del profile["crs"], profile["transform"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(only, "w", rpcs=rpc, **profile) as dst:
            dst.write(smooth_bands(2, H, W))
    with pytest.raises(InputError, match="only by RPC coefficients.*gdalwarp -rpc"):
        GeoTiffSource(only)
    both = tmp_path / "both.tif"
    with rasterio.open(both, "w", rpcs=rpc, **_profile()) as dst:
        dst.write(smooth_bands(2, H, W))
    with pytest.warns(UserWarning, match="RPC coefficients are dropped"):
        GeoTiffSource(both).close()
    _upscale(both, tmp_path / "sr.tif")
    with rasterio.open(tmp_path / "sr.tif") as sr:
        assert sr.rpcs is None and sr.transform == NORTH_UP * Affine.scale(0.5)


def test_plain_tiff_maps_output_pixels_to_input_pixel_coordinates(tmp_path):
    path = tmp_path / "plain.tif"
    profile = _profile()
    del profile["crs"], profile["transform"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(smooth_bands(2, H, W))
    with pytest.warns(UserWarning, match="no CRS; the output will be on the pixel grid only"):
        GeoTiffSource(path).close()
    _upscale(path, tmp_path / "sr.tif", scale=2)
    with rasterio.open(tmp_path / "sr.tif") as sr:
        assert sr.crs is None and not sr.gcps[0]
        assert sr.transform == Affine.scale(0.5)  # output corner (c, r) -> input pixel (c/2, r/2)


# ---------------------------------------------------------------- 4. tags


def test_statistics_and_overview_tags_are_not_copied(tmp_path):
    path, _ = make_geotiff(
        tmp_path / "in.tif",
        tags={
            "SENSOR": "synthetic",
            "OVR_RESAMPLING_ALG": "NEAREST",
            "OVERVIEW_RESAMPLING": "NEAREST",
            "TIFFTAG_COPYRIGHT": "someone",
            "TIFFTAG_SOFTWARE": "other tool",
            "TIFFTAG_DATETIME": "2001:01:01 00:00:00",
            "TIFFTAG_XRESOLUTION": "72",
            "TIFFTAG_YRESOLUTION": "36",
            "TIFFTAG_RESOLUTIONUNIT": "2 (pixels/inch)",
        },
        band_tags=[{"WAVELENGTH": "0.48", "STATISTICS_MINIMUM": "1", "STATISTICS_MAXIMUM": "2"}] + [{}] * 3,
    )
    # statistics in the PAM .aux.xml as gdalinfo -stats leaves them
    (tmp_path / "in.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="2"><Metadata>'
        '<MDI key="STATISTICS_MEAN">5</MDI><MDI key="STATISTICS_STDDEV">1</MDI>'
        '<MDI key="STATISTICS_VALID_PERCENT">100</MDI></Metadata></PAMRasterBand></PAMDataset>'
    )
    with rasterio.open(path) as src:
        assert src.tags(2)["STATISTICS_MEAN"] == "5"  # the input does carry them
    _upscale(path, tmp_path / "sr.tif")
    with rasterio.open(tmp_path / "sr.tif") as sr:
        tags = sr.tags()
        every = [tags] + [sr.tags(b) for b in sr.indexes]
        assert not [k for t in every for k in t if k.startswith("STATISTICS_")]
        assert tags["OVERVIEW_RESAMPLING"] == "AVERAGE" and "OVR_RESAMPLING_ALG" not in tags
        assert "TIFFTAG_SOFTWARE" not in tags and "TIFFTAG_DATETIME" not in tags
        assert tags["TIFFTAG_COPYRIGHT"] == "someone" and tags["SENSOR"] == "synthetic"
        assert float(tags["TIFFTAG_XRESOLUTION"]) == 144 and float(tags["TIFFTAG_YRESOLUTION"]) == 72
        assert sr.tags(1) == {"WAVELENGTH": "0.48"}


@pytest.mark.parametrize("method", ["nearest", "bicubic"])
def test_colour_table_only_for_nearest(tmp_path, method):
    path = tmp_path / "pal.tif"
    table = {i: (i, 255 - i, (7 * i) % 256, 255) for i in range(256)}
    with rasterio.open(path, "w", **_profile(1, "uint8")) as dst:
        dst.write((smooth_bands(1, H, W, "uint8") % 8).astype(np.uint8))
        dst.write_colormap(1, table)
    _upscale(path, tmp_path / "sr.tif", method=method)
    with rasterio.open(tmp_path / "sr.tif") as sr:
        if method == "nearest":
            assert sr.colorinterp[0] == ColorInterp.palette and sr.colormap(1)[7] == table[7]
        else:
            assert sr.colorinterp[0] == ColorInterp.gray
            with pytest.raises(ValueError):
                sr.colormap(1)


# ---------------------------------------------------------------- 5. per-band validity


def test_read_band_valid_is_per_band_and_its_and_is_read_valid(tmp_path):
    path, array = make_geotiff(tmp_path / "in.tif")  # nodata 0; band 2 has a blob of its own
    with GeoTiffSource(path) as src:
        window = Window(((3, 30), (2, 25)))
        per_band = src.read_band_valid(window)
        expected = array[:, 2:25, 3:30].transpose(0, 2, 1) != 0
        np.testing.assert_array_equal(per_band, expected)
        np.testing.assert_array_equal(per_band.all(axis=0), src.read_valid(window))
        assert per_band[0].sum() > per_band[1].sum()  # band 1 keeps the pixels only band 2 lost
    no_nodata, _ = make_geotiff(tmp_path / "all.tif", nodata=None)
    with GeoTiffSource(no_nodata) as src:
        assert src.read_band_valid(Window(((0, 5), (0, 5)))) is None


def test_sink_applies_per_band_nodata_and_moves_valid_values_off_nodata(tmp_path):
    path, _ = make_geotiff(tmp_path / "in.tif", count=2)
    meta = GeoTiffAdapter.read(path).meta
    data = np.full((2, 4, 3), 7, np.uint16)
    data[1, 0, 0] = 0  # a valid value equal to nodata
    valid = np.ones((2, 4, 3), bool)
    valid[0, 2, 1] = False
    with GeoTiffSink(tmp_path / "out.tif", (2, 4, 3), np.eye(3), meta, "uint16", nodata=0, cog=False) as sink:
        sink.write(Window(((0, 4), (0, 3))), data, valid=valid)
    with rasterio.open(tmp_path / "out.tif") as out:
        got = out.read().transpose(0, 2, 1)
    assert got[0, 2, 1] == 0 and got[1, 2, 1] == 7  # nodata in band 1 only
    assert got[1, 0, 0] == 1  # never nodata where valid
    with pytest.raises(OutputError, match="neither nodata nor a mask"):
        with GeoTiffSink(tmp_path / "o2.tif", (2, 4, 3), np.eye(3), meta, "uint16", nodata=None, cog=False) as sink:
            sink.write(Window(((0, 4), (0, 3))), data, valid=valid)
