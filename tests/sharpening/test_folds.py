"""Leave-one-scene-out folds: no scene, nor any scene of the same ground, enters its own fold's training."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given
from hypothesis import strategies as st
from rasterio.transform import from_origin

from geo_med_sr.sharpening import folds
from geo_med_sr.sharpening.folds import ground_key, leave_one_out, tile_of

SHARED_S2 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "s2"


def test_doctests():
    assert doctest.testmod(folds).failed == 0


@pytest.mark.parametrize(
    ("text", "tile"),
    [
        ("S2B_MSIL1C_20171022_T49JGM", "49JGM"),
        ("S2A_29RKH_20200219_0_L2A", "29RKH"),
        ("majortom_la_48QUE_20200223", "48QUE"),
        ("S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543", "48QUE"),
        ("eolearn_si_33T_refscene2", None),  # a zone and band, not a tile
        ("hvn2_australia", None),
        ("scene_61UUP_x", None),  # zone 61 does not exist
        ("scene_33IUP_x", None),  # no latitude band I
    ],
)
def test_tile_of(text, tile):
    assert tile_of(text) == tile


# scene names drawn from a few tiles and a few untiled places, so that keys repeat
_names = st.lists(
    st.tuples(st.sampled_from(["33UUP", "35VPK", "29UPU", "49JGM", None, None]), st.integers(0, 999)),
    min_size=2,
    max_size=12,
    unique_by=lambda t: t[1],
)


@given(_names)
def test_no_scene_nor_its_ground_is_in_its_own_training(items):
    scenes = [Path(f"ben_{tile}_20170613_{n}" if tile else f"place_{n}") for tile, n in items]
    keys = [ground_key(s) for s in scenes]
    if len(set(keys)) < 2:
        with pytest.raises(ValueError, match="same ground"):
            leave_one_out(scenes)
        return
    result = leave_one_out(scenes)
    assert [f.held_out for f in result] == scenes  # every scene held out once, in order
    for fold, key in zip(result, keys):
        assert fold.held_out not in fold.train
        assert all(ground_key(p) != key for p in fold.train)
        # and nothing else is left out: the fold trains on every scene of every other ground
        assert set(fold.train) == {p for p, k in zip(scenes, keys) if k != key}


def test_the_product_tag_decides_over_the_name(tmp_path):
    """A folder whose name says nothing (a renamed copy) still gets its tile from the ``PRODUCT`` tag."""
    scene = tmp_path / "renamed_copy"
    scene.mkdir()
    profile = dict(driver="GTiff", width=4, height=4, count=1, dtype="uint16", crs="EPSG:32635",
                   transform=from_origin(600000, 7000000, 10, 10))  # fmt: skip
    with rasterio.open(scene / "B02.tif", "w", **profile) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint16))
        dst.update_tags(PRODUCT="S2B_MSIL1C_20180204T94161_N0206_R036_T35VPK_20180204T115809.SAFE")
    other = tmp_path / "ben_fi_35VPK_20170924_69_24"
    other.mkdir()
    assert ground_key(scene) == ground_key(other) == "tile:35VPK"
    with pytest.raises(ValueError, match="same ground"):
        leave_one_out([scene, other])


def test_a_scene_given_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="given twice"):
        leave_one_out([tmp_path / "a", tmp_path / "b", tmp_path / "a"])


@pytest.mark.skipif(not SHARED_S2.is_dir(), reason="no shared Sentinel-2 scenes (../shared/data/s2)")
def test_the_shared_scenes_pair_up_by_tile():
    """The shared scenes of one tile (two Upper Austria patches, two Irish patches, North Karelia on two
    dates) leave their fold together."""
    scenes = sorted(p for p in SHARED_S2.iterdir() if p.is_dir())
    by_name = {f.held_out.name: f for f in leave_one_out(scenes)}
    for a, b in [
        ("ben_at_33UUP_20170613_87_48", "ben2_at_33UUP_20170613_75_43"),
        ("ben_fi_35VPK_20170924_69_24", "ben_fi_35VPK_20180204_57_38"),
        ("ben_ie_29UPU_20170617_36_85", "ben_ie_29UPU_20170617_4_55"),
    ]:
        if a in by_name and b in by_name:
            assert by_name[a].key == by_name[b].key
            assert SHARED_S2 / b not in by_name[a].train and SHARED_S2 / a not in by_name[b].train
