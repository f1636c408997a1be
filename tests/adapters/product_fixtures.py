"""Writers of tiny multi-resolution products (Sentinel-2 COG folders, SAFE, STAC items, rasters) for the
tests of :mod:`geo_med_sr.adapters.products`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

from geo_med_sr.adapters.products.sentinel2 import S2_BANDS, S2_WAVELENGTH_NM

L2A_BANDS = tuple(b for b in S2_BANDS if b != "B10")
RES = {b: 10.0 if b in ("B02", "B03", "B04", "B08") else 60.0 if b in ("B01", "B09", "B10") else 20.0 for b in S2_BANDS}
NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{}.xsd"


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
