"""PatchGrid index maths and reflect padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.errors import ConfigError
from geo_med_sr.inference.arrays import ArraySource, read_reflected
from geo_med_sr.inference.grid import PatchGrid
from geo_med_sr.multires import reflect_indices

dims = st.lists(st.integers(1, 40), min_size=1, max_size=3)


@settings(max_examples=80, deadline=None)
@given(dims, st.integers(1, 17), st.integers(0, 6))
def test_every_pixel_is_owned_exactly_once_by_equal_size_tiles(shape, patch, halo):
    grid = PatchGrid.create(shape, patch, halo)
    count = np.zeros(shape, int)
    patches = list(grid)
    assert len(patches) == len(grid)
    for p in patches:
        assert tuple(b - a for a, b in p.tile) == grid.patch_size
        assert tuple(b - a for a, b in p.read) == grid.read_shape
        for (o0, o1), (t0, t1) in zip(p.owned, p.tile):
            assert t0 <= o0 < o1 <= t1
        count[tuple(slice(a, b) for a, b in p.owned)] += 1
    assert np.all(count == 1)


@settings(max_examples=80, deadline=None)
@given(dims, st.integers(1, 17), st.integers(0, 6))
def test_clipped_tiles_start_on_multiples_of_the_patch_and_own_every_pixel_once(shape, patch, halo):
    grid = PatchGrid.create(shape, patch, halo, clip=True, raster_order=True)
    count = np.zeros(shape, int)
    patches = list(grid)
    assert len(patches) == len(grid)
    for p in patches:
        assert p.tile == p.owned and p.read == p.tile.grown(grid.halo)
        assert all(a % q == 0 and b - a <= q for (a, b), q in zip(p.tile, grid.patch_size))
        count[p.owned.toslices()] += 1
    assert np.all(count == 1)
    starts = [tuple(a for a, _ in p.tile)[::-1] for p in patches]
    assert starts == sorted(starts)  # raster order: the last axis outermost


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 12), st.integers(0, 30))
def test_reflect_indices_match_numpy_reflect_padding(n, pad):
    x = np.arange(n)
    expected = np.pad(x, pad, mode="reflect") if n > 1 else np.zeros(n + 2 * pad, int)
    np.testing.assert_array_equal(reflect_indices(-pad, n + pad, n), expected)


def test_read_reflected_equals_padded_image():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(2, 9, 7))
    padded = np.pad(img, ((0, 0), (4, 4), (4, 4)), mode="reflect")
    box = ((-4, 6), (3, 11))
    np.testing.assert_array_equal(read_reflected(ArraySource(img), box), padded[:, 0:10, 7:15])


def test_grid_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="patch_size"):
        PatchGrid.create((10, 10), 0, 2)
    with pytest.raises(ConfigError, match="halo"):
        PatchGrid.create((10, 10), 4, -1)
    with pytest.raises(ConfigError, match="one value per spatial axis"):
        PatchGrid.create((10, 10), (4, 4, 4), 1)
