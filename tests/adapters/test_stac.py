"""STAC items (adapters/products/stac.py through discover): assets, local files, radiometry, refusals."""

from __future__ import annotations

import json

import pytest
from product_fixtures import names, one_line_error, raster, stac_item

from geo_med_sr.adapters.products import discover
from geo_med_sr.errors import InputError


def test_stac_item_with_remote_hrefs_uses_the_files_beside_it(tmp_path):
    item = stac_item(tmp_path)
    product = discover([item])
    assert product.kind == "stac" and names(product) == ["B02", "B05", "B8A", "SCL"]
    assert all(b.path == (tmp_path / f"{b.name}.tif").resolve() for b in product.bands)  # COG, not the jp2 asset
    spectral = product.bands[:3]
    assert all(b.offset == -1000.0 and b.gain == 1e-4 for b in spectral)  # -0.1 / 1e-4
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
