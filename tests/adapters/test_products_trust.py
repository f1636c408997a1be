"""Product parsing that does not trust its input (issue 25, products part).

STAC items are validated before use (a wrongly typed field is one line naming the item and the
field path), asset hrefs stay in the item's folder, SAFE metadata values are checked, metadata files
are read with a size cap and never from a FIFO, and a Sentinel-2 band file of several bands is
refused however it was found (explicitly, in a COG folder, in a SAFE, as a STAC asset).
"""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from product_fixtures import cog_folder, mtd, names, one_line_error, raster, safe_l1c, stac_item

from geo_med_sr.adapters.products import discover
from geo_med_sr.adapters.products.stac import read_stac
from geo_med_sr.errors import InputError

ITEM_BANDS = ("B02", "B05", "B8A", "SCL")
KEYS = {"B02": "blue", "B05": "rededge1", "B8A": "nir08", "SCL": "scl"}
#: records.MAX_METADATA_BYTES (spelt out, so that this module imports on the code before the cap).
METADATA_CAP = 16 * 2**20


@pytest.fixture(scope="module")
def item_folder(tmp_path_factory) -> tuple[Path, dict]:
    """A folder with an Earth Search item and its band files, and the item's JSON (a dict)."""
    folder = tmp_path_factory.mktemp("stac")
    path = stac_item(folder, bands=ITEM_BANDS)
    return folder, json.loads(path.read_text())


def _write(folder: Path, item: dict, name: str = "item.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(item))
    return path


# ------------------------------------------------------------------ wrongly typed fields (property)

_NUMBERS = st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False))
_CONTAINERS = st.one_of(
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
_NOT_TEXT = st.one_of(_NUMBERS, st.booleans(), _CONTAINERS)
_NOT_NUMBER = st.one_of(st.text(max_size=8), st.booleans(), _CONTAINERS, st.sampled_from([float("nan"), float("inf")]))
_NOT_BOOL = st.one_of(st.text(max_size=8), _NUMBERS, _CONTAINERS)
_NOT_OBJECT = st.one_of(st.text(max_size=8), _NUMBERS, st.booleans(), st.lists(st.integers(), max_size=2))
_NOT_LIST = st.one_of(st.text(max_size=8), _NUMBERS, st.booleans(), st.dictionaries(st.text(max_size=3), st.integers()))

#: the fields read from an item: (JSON path, shown path, strategy of wrong values).
_FIELDS = [
    (("id",), "id", _NOT_TEXT),
    (("properties",), "properties", _NOT_OBJECT),
    (("properties", "platform"), "properties.platform", _NOT_TEXT),
    (("properties", "constellation"), "properties.constellation", _NOT_TEXT),
    (("properties", "s2:processing_baseline"), "properties.s2:processing_baseline", _NOT_TEXT),
    (("properties", "s2:product_uri"), "properties.s2:product_uri", _NOT_TEXT),
    (("properties", "earthsearch:boa_offset_applied"), "properties.earthsearch:boa_offset_applied", _NOT_BOOL),
    (("assets",), "assets", _NOT_OBJECT),
]
for _band, _key in KEYS.items():
    _FIELDS += [
        (("assets", _key), f"assets.{_key}", _NOT_OBJECT),
        (("assets", _key, "href"), f"assets.{_key}.href", st.one_of(_NOT_TEXT, st.none())),
        (("assets", _key, "type"), f"assets.{_key}.type", _NOT_TEXT),
        (("assets", _key, "roles"), f"assets.{_key}.roles", _NOT_LIST),
        (("assets", _key, "raster:bands"), f"assets.{_key}.raster:bands", _NOT_LIST),
        (("assets", _key, "raster:bands", 0), f"assets.{_key}.raster:bands[0]", _NOT_OBJECT),
        (("assets", _key, "raster:bands", 0, "scale"), f"assets.{_key}.raster:bands[0].scale", _NOT_NUMBER),
        (("assets", _key, "raster:bands", 0, "offset"), f"assets.{_key}.raster:bands[0].offset", _NOT_NUMBER),
        (("assets", _key, "eo:bands"), f"assets.{_key}.eo:bands", _NOT_LIST),
    ]
    if _band != "SCL":  # the fixture's SCL asset has no eo:bands entry
        _FIELDS += [
            (("assets", _key, "eo:bands", 0), f"assets.{_key}.eo:bands[0]", _NOT_OBJECT),
            (("assets", _key, "eo:bands", 0, "name"), f"assets.{_key}.eo:bands[0].name", _NOT_TEXT),
            (
                ("assets", _key, "eo:bands", 0, "center_wavelength"),
                f"assets.{_key}.eo:bands[0].center_wavelength",
                _NOT_NUMBER,
            ),
        ]


@st.composite
def _wrong_field(draw) -> tuple[tuple, str, object]:
    path, shown, values = draw(st.sampled_from(_FIELDS))
    return path, shown, draw(values)


def _set(data: dict, path: tuple, value: object) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_wrong_field())
def test_wrongly_typed_stac_fields_are_one_line_naming_the_item_and_the_field(item_folder, case):
    folder, base = item_folder
    path, shown, value = case
    item = copy.deepcopy(base)
    _set(item, path, value)
    item_path = _write(folder, item)
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    message = one_line_error(excinfo, item_path, shown)
    assert message.startswith(f"{item_path}: ")


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=4), inner, max_size=2)),
    max_leaves=6,
)
_EXTRA = st.dictionaries(st.text(max_size=6).map(lambda k: f"x-{k}"), _JSON, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scale=st.floats(1e-4, 1.0),
    offset=st.floats(-1.0, 1.0),
    micrometres=st.floats(0.3, 15.0),
    applied=st.one_of(st.none(), st.booleans()),
    extra=_EXTRA,
)
def test_valid_stac_items_with_any_extension_fields_still_parse(
    item_folder, scale, offset, micrometres, applied, extra
):
    folder, base = item_folder
    item = copy.deepcopy(base)
    item.update(extra)
    item["properties"].update(extra)
    item["properties"]["earthsearch:boa_offset_applied"] = applied
    blue = item["assets"]["blue"]
    blue.update(extra)
    blue["raster:bands"][0].update(extra, scale=scale, offset=offset)
    blue["eo:bands"][0].update(extra, center_wavelength=micrometres)
    product = discover([_write(folder, item)])
    assert names(product) == list(ITEM_BANDS)
    band = product.bands[0]
    assert band.gain == scale and band.wavelength_nm == round(micrometres * 1000, 3)
    assert band.offset == (0.0 if applied else round(offset / scale, 6))


@pytest.mark.parametrize(
    "field,value,shown",
    [
        ("scale", 0.0, "expected a number above 0"),
        ("scale", -1e-4, "expected a number above 0"),
        ("offset", 1e300, "offset / scale is beyond"),
    ],
)
def test_stac_radiometry_out_of_range_is_refused(item_folder, field, value, shown):
    folder, base = item_folder
    item = copy.deepcopy(base)
    item["assets"]["rededge1"]["raster:bands"][0][field] = value
    item_path = _write(folder, item)
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    one_line_error(excinfo, item_path, "assets.rededge1.raster:bands[0]", shown)


@pytest.mark.parametrize(
    "text,what",
    [("[" * 100_000, "nested too deeply"), ('{"id": ' + "9" * 5000 + "}", "not a readable JSON")],
)
def test_hostile_json_is_one_line(tmp_path, text, what):
    path = tmp_path / "item.json"
    path.write_text(text)
    with pytest.raises(InputError) as excinfo:
        discover([path])
    one_line_error(excinfo, path, what)


def test_an_item_larger_than_the_cap_is_refused_before_parsing(item_folder, tmp_path):
    _, base = item_folder
    item = copy.deepcopy(base)
    item["x-padding"] = "x" * METADATA_CAP
    path = _write(tmp_path, item)
    with pytest.raises(InputError) as excinfo:
        read_stac(path)
    one_line_error(excinfo, path, "MiB")


def _within(seconds: float, call):
    """``call()``'s result or exception, run in a daemon thread; fails when it does not return in time."""
    box: dict = {}

    def run():
        try:
            box["value"] = call()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung (reading a FIFO?)"
    return box


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_metadata_is_never_read(tmp_path):
    fifo = tmp_path / "item.json"
    os.mkfifo(fifo)
    box = _within(5.0, lambda: discover([fifo]))
    assert isinstance(box.get("error"), InputError) and "not a regular file" in str(box["error"])
    folder = cog_folder(tmp_path / "cogs", bands=("B02", "B05"), extras=())
    os.mkfifo(folder / "tileinfo.json")
    box = _within(5.0, lambda: discover([folder]))
    assert "error" not in box and names(box["value"]) == ["B02", "B05"]


# ------------------------------------------------------------------ hrefs confined to the item's folder


def _outside_file(tmp_path: Path) -> Path:
    return raster(tmp_path / "elsewhere" / "B05.tif", res=20.0)


@pytest.mark.parametrize(
    "make_href",
    [
        lambda item, outside: "../elsewhere/B05.tif",
        lambda item, outside: str(outside),
        lambda item, outside: outside.as_uri(),
        lambda item, outside: "sub/../../elsewhere/B05.tif",
    ],
    ids=["dotdot", "absolute", "file-url", "dotdot-inside-path"],
)
def test_hrefs_leading_out_of_the_item_folder_are_refused(tmp_path, make_href):
    outside = _outside_file(tmp_path)
    item_path = stac_item(tmp_path / "item", bands=("B02", "B05"))
    (item_path.parent / "B05.tif").unlink()
    item = json.loads(item_path.read_text())
    href = make_href(item_path, outside)
    item["assets"]["rededge1"]["href"] = href
    item_path.write_text(json.dumps(item))
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    one_line_error(excinfo, item_path, "'rededge1'", repr(href), "outside the item's folder", "explicitly")
    assert names(discover([item_path], bands=["B02"])) == ["B02"]  # not selected: never looked at
    assert names(discover([item_path.parent / "B02.tif", outside])) == ["B02", "B05"]  # explicit files: fine


def test_a_symbolic_link_out_of_the_item_folder_is_refused(tmp_path):
    outside = _outside_file(tmp_path)
    item_path = stac_item(tmp_path / "item", bands=("B02", "B05"))
    (item_path.parent / "B05.tif").unlink()
    (item_path.parent / "B05.tif").symlink_to(outside)
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    one_line_error(excinfo, item_path, "'rededge1'", "outside the item's folder")


@pytest.mark.parametrize(
    "make_href",
    [
        lambda folder: "./B05.tif",
        lambda folder: str(folder / "B05.tif"),
        lambda folder: (folder / "B05.tif").as_uri(),
        lambda folder: "https://example.com/a/b/../../B05.tif",
        lambda folder: "s3://bucket/..%2F..%2FB05.tif",
    ],
    ids=["relative", "absolute-inside", "file-url-inside", "remote", "remote-quoted-dots"],
)
def test_hrefs_inside_the_item_folder_and_remote_names_beside_it_are_used(tmp_path, make_href):
    item_path = stac_item(tmp_path, bands=("B02", "B05"))
    item = json.loads(item_path.read_text())
    item["assets"]["rededge1"]["href"] = make_href(item_path.parent)
    item_path.write_text(json.dumps(item))
    product = discover([item_path])
    assert [b.path for b in product.bands] == [(tmp_path / f"{b}.tif").resolve() for b in ("B02", "B05")]


def test_a_missing_asset_file_names_the_item_the_asset_and_the_resolved_path(tmp_path):
    item_path = stac_item(tmp_path, bands=("B02", "B05"))
    item = json.loads(item_path.read_text())
    item["assets"]["rededge1"]["href"] = "./sub/../sub/B05.tif"
    item_path.write_text(json.dumps(item))
    with pytest.raises(InputError) as excinfo:
        discover([item_path])
    one_line_error(excinfo, item_path, "'rededge1'", str(tmp_path.resolve() / "sub" / "B05.tif"), "--bands")


# ------------------------------------------------------------------ one band per Sentinel-2 band file


def _multiband_cog_folder(tmp_path: Path) -> Path:
    folder = cog_folder(tmp_path / "cogs", bands=("B02", "B05"), extras=())
    raster(folder / "B05.tif", count=3, res=20.0)
    return folder


def _multiband_safe(tmp_path: Path) -> Path:
    root = safe_l1c(tmp_path)
    band = next(root.rglob("*_B05.jp2"))
    band.unlink()
    raster(band, count=2, res=20.0, driver="JP2OpenJPEG")
    return root


def _multiband_stac(tmp_path: Path) -> Path:
    item = stac_item(tmp_path / "item", bands=("B02", "B05"))
    raster(item.parent / "B05.tif", count=3, res=20.0)
    return item


@pytest.mark.parametrize("make", [_multiband_cog_folder, _multiband_safe, _multiband_stac], ids=["cog", "safe", "stac"])
def test_a_multiband_band_file_found_in_a_product_is_refused_as_when_given_explicitly(tmp_path, make):
    product = make(tmp_path)
    with pytest.raises(InputError) as excinfo:
        discover([product])
    message = one_line_error(excinfo, "B05", "Sentinel-2 band B05", "bands; expected one")
    band_file = message.split(": ", 1)[0]
    with pytest.raises(InputError) as explicit:
        discover([band_file])
    assert str(explicit.value) == message  # the same check, the same words
    assert "B05" not in names(discover([product], bands=["B02"]))  # not selected: not refused


# ------------------------------------------------------------------ SAFE metadata values


@pytest.mark.parametrize(
    "quantification,offset,shown",
    [
        ("nan", -1000, "QUANTIFICATION_VALUE: expected a finite number"),
        ("-10000", -1000, "QUANTIFICATION_VALUE: expected a number at least 1"),
        ("inf", -1000, "QUANTIFICATION_VALUE"),
        ("1e-300", -1000, "QUANTIFICATION_VALUE"),
        (10000, "nan", "RADIO_ADD_OFFSET band_id 0: expected a finite number"),
        (10000, "1e300", "RADIO_ADD_OFFSET band_id 0: expected a number at most"),
    ],
)
def test_safe_metadata_values_out_of_range_are_refused(tmp_path, quantification, offset, shown):
    root = safe_l1c(tmp_path)
    mtd(root, "1C", "04.00", dict.fromkeys(range(13), offset), quantification)
    with pytest.raises(InputError) as excinfo:
        discover([root])
    one_line_error(excinfo, root / "MTD_MSIL1C.xml", shown, "--offset")
