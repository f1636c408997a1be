"""Guided sharpening core: grid relations, exact sub-pixel sampling, Wald reduction, methods, tile invariance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.errors import InputError
from geo_med_sr.inference.arrays import ArraySink, ArraySource
from geo_med_sr.inference.protocols import Window
from geo_med_sr.multires import Grid, area_weights, covered_range, relate
from geo_med_sr.sharpening.engine import output_spec, sharpen_scene
from geo_med_sr.sharpening.methods import GLP, Bicubic, Brovey, NetworkMethod, fit_glp
from geo_med_sr.sharpening.scene import Band, Scene, band_stats, group_inputs, plan
from geo_med_sr.sharpening.training import reduced_inputs, wald_pairs

CRS = "EPSG:32632"


def grid(step: float, x0: float, y0: float, shape: tuple[int, int], crs: str = CRS) -> Grid:
    return Grid(crs, (step, 0.0, x0, 0.0, -step, y0), shape)


def band(name: str, values: np.ndarray, g: Grid, role: str = "spectral", valid=None, dtype="float32") -> Band:
    return Band(name, role, g, ArraySource(np.asarray(values, dtype=np.float64)[None], valid), dtype=dtype)


def centres(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates ``(W, H)`` of the pixel centres of ``g``."""
    a, _, c, _, e, f = g.transform
    x = c + a * (np.arange(g.shape[0]) + 0.5)
    y = f + e * (np.arange(g.shape[1]) + 0.5)
    return np.meshgrid(x, y, indexing="ij")


def quadratic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 100 + 0.3 * x - 0.2 * y + 4e-4 * (x - 300) ** 2 - 3e-4 * (x - 200) * (y - 400) + 2e-4 * y**2


# ----------------------------------------------------------------------------- grid relations


def test_relate_gives_ratio_and_landsat_half_pixel_offset():
    pan = grid(15.0, 389992.5, 5689207.5, (82, 82))
    ms = grid(30.0, 390000.0, 5689215.0, (41, 41))  # 7.5 m east and 7.5 m north of the pan corner
    rel = relate(pan, ms)
    assert rel.ratio == (2, 2)
    assert rel.offset == pytest.approx((0.5, -0.5))
    assert covered_range(82, 41, 2, 0.5) == (0, 82)
    assert covered_range(82, 41, 2, -0.5) == (0, 82)


@pytest.mark.parametrize(
    ("coarse", "words"),
    [
        (Grid("EPSG:32633", (20.0, 0, 0, 0, -20.0, 0), (5, 5)), ["EPSG:32633", "EPSG:32632", "reproject"]),
        (Grid(CRS, (20.0, 0.5, 0, 0, -20.0, 0), (5, 5)), ["rotated", "b=0.5"]),
        (Grid(CRS, (25.0, 0, 0, 0, -25.0, 0), (5, 5)), ["2.5 times", "whole number"]),
        (Grid(CRS, (20.0, 0, 5000, 0, -20.0, 0), (5, 5)), ["do not overlap"]),
        (Grid(CRS, (20.0, 0, 0, 0, 20.0, 0), (5, 5)), ["opposite"]),
    ],
)
def test_relate_refuses_with_what_disagrees(coarse, words):
    fine = Grid(CRS, (10.0, 0, 0, 0, -10.0, 0), (10, 10))
    with pytest.raises(InputError) as info:
        relate(fine, coarse, "B02", "B05")
    for word in words:
        assert word in str(info.value)


def test_plan_refuses_finest_bands_on_different_grids_and_nothing_coarser():
    g1, g2 = grid(10, 0, 100, (8, 8)), grid(10, 10, 100, (8, 8))
    with pytest.raises(InputError, match="different grids"):
        plan(
            Scene(
                [
                    band("a", np.zeros((8, 8)), g1),
                    band("b", np.zeros((8, 8)), g2),
                    band("c", np.zeros((4, 4)), grid(20, 0, 100, (4, 4))),
                ]
            )
        )
    with pytest.raises(InputError, match="nothing coarser"):
        plan(Scene([band("a", np.zeros((8, 8)), g1)]))


# ----------------------------------------------------------------------------- exact geometry


def landsat_like(n_ms: int = 24) -> tuple[Scene, Grid]:
    """A pan grid and an MS grid half a pan pixel off (USGS Landsat), MS = point samples of a quadratic."""
    pan_g = grid(15.0, 389992.5, 5689207.5, (2 * n_ms, 2 * n_ms))
    ms_g = grid(30.0, 390000.0, 5689215.0, (n_ms, n_ms))
    x, y = centres(ms_g)
    px, py = centres(pan_g)
    truth = quadratic(x - 390000, y - 5689000)
    scene = Scene([band("B4", truth, ms_g), band("pan", quadratic(px - 390000, py - 5689000), pan_g, role="pan")])
    return scene, pan_g


def test_half_pixel_offset_output_on_pan_grid_without_shift():
    scene, pan_g = landsat_like()
    layout = plan(scene)
    assert layout.grid == pan_g  # the MS covers every pan pixel centre
    stats = [band_stats(b) for b in scene.bands]
    inputs = group_inputs(scene, layout, layout.groups[0], Window.from_shape(pan_g.shape), stats)
    px, py = centres(pan_g)
    truth = quadratic(px - 390000, py - 5689000)
    inner = (slice(6, -6), slice(6, -6))  # away from the mirrored border
    # Keys' cubic reproduces quadratics: exact at the pan centres only if the offset is honoured
    np.testing.assert_allclose(inputs.up[0][inner], truth[inner], rtol=0, atol=1e-6)
    ignored = relate(pan_g, scene.bands[0].grid)
    assert ignored.offset != (0.0, 0.0)
    shifted = quadratic(px - 390000 - 7.5, py - 5689000 - 7.5)
    assert np.abs(shifted[inner] - truth[inner]).max() > 1.0  # what ignoring the offset would cost


def test_output_window_is_where_the_coarse_band_has_data():
    fine = grid(10.0, 0.0, 1000.0, (20, 20))
    coarse = grid(20.0, 40.0, 1000.0 - 20.0, (6, 6))  # starts 4 fine px right, 2 down; covers 12x12 fine px
    scene = Scene([band("G", np.zeros((20, 20)), fine), band("T", np.ones((6, 6)), coarse)])
    layout = plan(scene)
    assert layout.grid.shape == (12, 12)
    assert layout.grid.transform == (10.0, 0.0, 40.0, 0.0, -10.0, 980.0)


# ----------------------------------------------------------------------------- Wald reduction


@given(st.integers(1, 6), st.floats(0.0, 3.0), st.integers(2, 5))
@settings(max_examples=40, deadline=None)
def test_area_weights_are_exact_averages(q, offset, n_out):
    n_in = int(np.ceil(offset + q * n_out)) + 1
    w = area_weights(n_out, float(q), offset, n_in)
    np.testing.assert_allclose(w.matrix.sum(axis=1), 1.0)
    line = 2.0 * np.arange(n_in) + 1.0  # linear: the average over a footprint = value at its centre
    got = w.matrix @ line[w.lo : w.hi]
    centre = offset + q * (np.arange(n_out) + 0.5)  # in input corner coordinates
    np.testing.assert_allclose(got, 2.0 * (centre - 0.5) + 1.0, atol=1e-9)


def test_area_weights_refuse_footprints_outside():
    with pytest.raises(InputError):
        area_weights(4, 2.0, 0.5, 8)


def test_reduced_pair_of_zero_offset_scene_is_the_block_average():
    rng = np.random.default_rng(1)
    fine = rng.random((32, 32))
    coarse = rng.random((16, 16))
    scene = Scene([band("G", fine, grid(10, 0, 320, (32, 32))), band("T", coarse, grid(20, 0, 320, (16, 16)))])
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    (pair,) = wald_pairs(scene, layout, layout.groups[0], stats)
    np.testing.assert_allclose(pair.label[0], coarse)
    small_t = pair.scene.bands[pair.index.index(1)]
    small_g = pair.scene.bands[pair.index.index(0)]
    np.testing.assert_allclose(small_t.source.array[0], coarse.reshape(8, 2, 8, 2).mean((1, 3)))
    np.testing.assert_allclose(small_g.source.array[0], fine.reshape(16, 2, 16, 2).mean((1, 3)))
    assert small_g.grid == scene.bands[1].grid


def test_reduced_pair_keeps_the_half_pixel_geometry():
    scene, _ = landsat_like(24)
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    (pair,) = wald_pairs(scene, layout, layout.groups[0], stats)
    small_pan = pair.scene.bands[pair.index.index(1)]
    # the pan (point samples of a quadratic) area-averaged onto MS pixels: each footprint holds half a pan pixel,
    # one whole and half another (weights 1/4, 1/2, 1/4 at -15, 0, +15 m from its centre), so the mean is the
    # value at the MS centre plus c * (15^2 / 2) per axis; any other offset changes every value
    x, y = centres(small_pan.grid)
    g = small_pan.grid
    assert g.transform[0] == 30.0 and g.origin[0] - scene.bands[1].grid.origin[0] == 7.5
    u, v = x - 390000, y - 5689000
    curvature = (4e-4 + 2e-4) * 15.0**2 / 2
    np.testing.assert_allclose(small_pan.source.array[0], quadratic(u, v) + curvature, atol=1e-6)


# ----------------------------------------------------------------------------- methods


def s2_like(seed: int = 0, n: int = 48, between: bool = False) -> Scene:
    """Two 10 m guides, two 20 m targets whose detail follows the guides (one) or not (two), a 60 m band."""
    rng = np.random.default_rng(seed)
    from scipy.ndimage import gaussian_filter

    base = [gaussian_filter(rng.random((n, n)), 1.5) * 1000 + 500 for _ in range(2)]
    g10 = grid(10.0, 600000, 7100000, (n, n))
    g20 = grid(20.0, 600000, 7100000, (n // 2, n // 2))
    follows = (0.7 * base[0] + 0.3 * base[1]).reshape(n // 2, 2, n // 2, 2).mean((1, 3))
    noise = gaussian_filter(rng.random((n, n)), 1.0).reshape(n // 2, 2, n // 2, 2).mean((1, 3)) * 800 + 300
    bands = [band("B02", base[0], g10), band("B03", base[1], g10), band("B05", follows, g20), band("B11", noise, g20)]
    if between:
        g60 = grid(60.0, 600000, 7100000, (n // 6, n // 6))
        bands.append(band("B01", (0.5 * base[0] + 0.5 * base[1]).reshape(n // 6, 6, n // 6, 6).mean((1, 3)), g60))
    return Scene(bands)


def test_glp_gains_are_earned_per_band():
    scene = s2_like()
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    group = layout.groups[0]
    pairs = wald_pairs(scene, layout, group, stats)
    gains = fit_glp([(reduced_inputs(p, group, stats, detail=True), p.label, p.valid) for p in pairs])
    assert gains.shape == (2, 2)
    assert gains[0, 0] > 0.3 and gains[0, 1] > 0.05  # B05 follows the guides
    assert np.abs(gains[1]).max() < 0.2  # B11's detail does not: its gains stay small


def test_brovey_is_gdal_weighted_brovey():
    scene = s2_like()
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    inputs = group_inputs(scene, layout, layout.groups[0], Window.from_shape(layout.grid.shape), stats)
    out = Brovey()(inputs)
    pan = inputs.guides.mean(0)
    np.testing.assert_allclose(out, inputs.up * (pan / inputs.up.mean(0))[None])
    np.testing.assert_allclose(out.mean(0), pan)  # equal weights: the bands' mean becomes the pan


def _random_net(targets: int, guides: int, ratio: int, seed: int = 0):
    import torch

    from geo_med_sr.networks.guided import GuidedNet

    torch.manual_seed(seed)
    net = GuidedNet(targets, guides, ratio, features=8, blocks=2)
    torch.nn.init.normal_(net.tail.conv.weight, std=0.05)
    return net


@pytest.mark.parametrize("offset_grids", [False, True])
def test_every_method_is_tile_invariant(offset_grids):
    scene = landsat_like(40)[0] if offset_grids else s2_like(between=True)
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    methods = []
    for group in layout.groups:
        t, g = len(group.targets), len(layout.guides) + len(group.between)
        net = NetworkMethod(
            _random_net(t, g, group.ratio[0]),
            [stats[i] for i in group.targets],
            [stats[i] for i in (*layout.guides, *group.between)],
        )
        methods.append([Bicubic(), Brovey(), GLP(np.full((t, len(layout.guides)), 0.5)), net])
    spec = output_spec(scene, layout)
    shape = (len(layout.outputs), *layout.grid.shape)
    for k in range(4):
        chosen = {g: methods[g][k] for g in range(len(layout.groups))}
        whole = ArraySink(shape, dtype=spec.dtype)
        sharpen_scene(scene, layout, chosen, stats, whole, spec, tile=4096)
        tiled = ArraySink(shape, dtype=spec.dtype)
        tiled.block = (16, 16)
        sharpen_scene(scene, layout, chosen, stats, tiled, spec, tile=16)
        np.testing.assert_allclose(tiled.array, whole.array, rtol=1e-5, atol=1e-3 if k == 3 else 1e-8)
        assert not np.allclose(whole.array[-1], 0)


def test_categorical_band_is_carried_by_nearest():
    scene = s2_like()
    classes = np.arange(24 * 24).reshape(24, 24) % 11
    scene.bands.append(band("SCL", classes, scene.bands[2].grid, role="categorical", dtype="uint8"))
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    spec = output_spec(scene, layout)
    sink = ArraySink((len(layout.outputs), *layout.grid.shape), dtype=spec.dtype)
    sharpen_scene(scene, layout, {0: Bicubic()}, stats, sink, spec)
    names = [scene.bands[i].name for i in layout.outputs]
    assert names == ["B02", "B03", "B05", "B11", "SCL"]
    np.testing.assert_array_equal(sink.array[-1], np.repeat(np.repeat(classes, 2, 0), 2, 1))


def test_nodata_in_a_coarse_band_becomes_nodata_where_its_pixel_is_missing():
    scene = s2_like()
    valid = np.ones((24, 24), bool)
    valid[5, 7] = False
    scene.bands[2] = band("B05", scene.bands[2].source.array[0], scene.bands[2].grid, valid=valid, dtype="uint16")
    for b in scene.bands:
        b.dtype, b.nodata = "uint16", 0.0
    layout = plan(scene)
    stats = [band_stats(b) for b in scene.bands]
    spec = output_spec(scene, layout)
    sink = ArraySink((len(layout.outputs), *layout.grid.shape), dtype=spec.dtype)
    sharpen_scene(scene, layout, {0: Bicubic()}, stats, sink, spec)
    b05 = sink.array[2]
    assert np.all(b05[10:12, 14:16] == 0) and (b05 == 0).sum() == 4
