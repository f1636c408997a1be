"""The one parser of band lists and the selection key of band names (adapters/products/names.py)."""

from __future__ import annotations

import pytest
from product_fixtures import cog_folder, names

from geo_med_sr.adapters.products import discover
from geo_med_sr.adapters.products.names import band_key, parse_band_names
from geo_med_sr.adapters.products.sentinel2 import S2_BANDS, s2_band


@pytest.mark.parametrize(
    "given,expected",
    [
        (None, None),
        ("", None),
        (" , ", None),
        ([], None),
        ("B05", ("B05",)),
        ("B05,B8A", ("B05", "B8A")),
        (" b05 , 8a ,", ("b05", "8a")),
        (["B02", " scl "], ("B02", "scl")),
        (("red", "nir"), ("red", "nir")),
    ],
)
def test_parse_band_names(given, expected):
    assert parse_band_names(given) == expected


@pytest.mark.parametrize(
    "name,key",
    [("B5", "B5"), ("B05", "B5"), ("b5", "B5"), ("5", "B5"), ("05", "B5"), ("8a", "B8A"), ("B8A", "B8A"),
     (" SCL ", "scl"), ("pan", "pan"), ("Red", "red"), ("B123", "b123")],
)  # fmt: skip
def test_band_key_makes_spellings_of_one_band_equal(name, key):
    assert band_key(name) == key


def test_sentinel2_band_codes_from_any_spelling():
    for band in S2_BANDS:
        core = band[1:].lstrip("0")
        assert {s2_band(s) for s in (band, band.lower(), f"B{core}", core, core.lower(), f" {band} ")} == {band}
    assert s2_band("scl") == "SCL" and s2_band("SCL") == "SCL"
    assert [s2_band(s) for s in ("B13", "B0", "blue", "TCI", "")] == [None] * 5


def test_discover_takes_a_comma_separated_list(tmp_path):
    folder = cog_folder(tmp_path / "S2B_X", bands=("B02", "B05", "B8A"), extras=("SCL",))
    assert names(discover([folder], bands="b8a, 2,scl")) == ["B02", "B8A", "SCL"]
    assert names(discover([folder], bands="")) == ["B02", "B05", "B8A", "SCL"]
