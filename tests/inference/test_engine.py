"""Engine oracles: tiled inference equals whole-image inference; edges stay in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geo_med_sr.inference.classical import BicubicUpsampler, BSplineUpsampler, LinearUpsampler, NearestUpsampler
from geo_med_sr.inference.device import resolve_device
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.networks import build_network


def randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (the zero-initialised tail too), so no layer is trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            std = 1.0 / np.sqrt(p[0].numel()) if p.ndim > 1 else 0.1  # fan-in scaled: outputs stay O(1)
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return net.eval()


def whole_image(model, x: np.ndarray, scale, halo) -> np.ndarray:
    """Reference: one patch covering the whole (reflect-padded) image, through the network's own forward."""
    return SuperResolver(
        model, scale, patch_size=max(x.shape[1:]), halo=halo, device="cpu", progress=False, stream=False
    )(x)


CASES_2D = [((1, 23, 17), 2), ((2, 19, 30), 3), ((1, 21, 16), (2, 1))]
CASES_3D = [((1, 11, 9, 13), 2), ((1, 10, 13, 7), (1, 1, 4)), ((2, 9, 8, 10), (3, 2, 1))]


@pytest.mark.parametrize("shape,scale", CASES_2D + CASES_3D)
@pytest.mark.parametrize("patch_size", [4, 7, 16])
def test_nearest_model_tiled_equals_repeat(shape, scale, patch_size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    s = (scale,) * (len(shape) - 1) if isinstance(scale, int) else scale
    expected = x
    for axis, f in enumerate(s):
        expected = np.repeat(expected, f, axis=axis + 1)
    out = SuperResolver(NearestUpsampler(s), s, patch_size=patch_size, batch_size=3, device="cpu", progress=False)(x)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", ["edsr", "rcan"])
@pytest.mark.parametrize("shape,scale", CASES_2D + CASES_3D)
@pytest.mark.parametrize("patch_size", [5, 8])
def test_random_network_tiled_equals_whole_image(name, shape, scale, patch_size):
    nd = len(shape) - 1
    s = (scale,) * nd if isinstance(scale, int) else scale
    params = {"features": 6, "num_blocks": 2} if name == "edsr" else {"features": 8, "num_groups": 1, "num_blocks": 1}
    net = randomised(build_network(name, spatial_dims=nd, in_channels=1, scale=s, **params))
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    # EDSR streams (columns of patch_size, chunks of at least 4 planes); RCAN tiles
    resolver = SuperResolver(
        net, s, patch_size=patch_size, column_size=patch_size, chunk_mb=1e-4, batch_size=2, device="cpu", progress=False
    )
    assert (resolver.streamed is not None) == (name == "edsr")
    tiled = resolver(x)
    whole = whole_image(net, x, s, net.receptive_radius)
    assert tiled.shape == (shape[0], *(n * f for n, f in zip(shape[1:], s)))
    assert np.abs(tiled - whole).max() <= 1e-5
    assert np.abs(whole).max() > 0.1  # the network is not trivial


@pytest.mark.parametrize("cls", [LinearUpsampler, BicubicUpsampler, BSplineUpsampler])
@pytest.mark.parametrize("shape,scale", CASES_2D + CASES_3D)
def test_classical_tiled_equals_whole_image(cls, shape, scale):
    nd = len(shape) - 1
    s = (scale,) * nd if isinstance(scale, int) else scale
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    model = cls(s)
    tiled = SuperResolver(model, s, patch_size=4, device="cpu", progress=False)(x)
    np.testing.assert_allclose(tiled, whole_image(model, x, s, model.receptive_radius), atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bspline_matches_scipy_zoom_on_the_sr_grid(scale):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(4).normal(size=(1, 15, 12)).astype(np.float32)
    ours = SuperResolver(BSplineUpsampler(scale), scale, patch_size=5, device="cpu", progress=False)(x)[0]
    ref = ndimage.zoom(x[0].astype(np.float64), scale, order=3, mode="mirror", grid_mode=True)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


@pytest.mark.parametrize("cls", [NearestUpsampler, LinearUpsampler, BicubicUpsampler, BSplineUpsampler])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edge_stays_in_place(cls, scale):
    """A step between LR pixels 9 and 10 stays at the same world position: HR boundary 10*s.

    With centres at ``(j + 0.5)/s - 0.5``, the HR profile of a symmetric interpolator is
    antisymmetric about the LR boundary, so ``out[10s - 1 - k] + out[10s + k] == 1``.
    A (s-1)/2 HR-pixel shift breaks this symmetry.
    """
    x = np.zeros((1, 20, 3), np.float32)
    x[:, 10:] = 1.0
    out = SuperResolver(cls((scale, 1)), (scale, 1), patch_size=6, device="cpu", progress=False)(x)[0, :, 1]
    b = 10 * scale
    for k in range(scale * 2):
        assert out[b - 1 - k] + out[b + k] == pytest.approx(1.0, abs=1e-5)
    assert out[b - 1] < 0.5 < out[b]


def test_untrained_network_edge_in_place():
    """An untrained network equals linear interpolation, so its edge is in place too."""
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=3, features=4, num_blocks=1)
    x = np.zeros((1, 12, 3), np.float32)
    x[:, 6:] = 1.0
    out = SuperResolver(net, 3, patch_size=5, device="cpu", progress=False)(x)[0, :, 1]
    for k in range(6):
        assert out[17 - k] + out[18 + k] == pytest.approx(1.0, abs=1e-5)


def test_one_channel_model_runs_per_channel():
    net = randomised(build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=4, num_blocks=1))
    x = np.random.default_rng(5).normal(size=(3, 10, 9)).astype(np.float32)
    both = SuperResolver(net, 2, patch_size=6, device="cpu", progress=False)(x)
    for c in range(3):
        single = SuperResolver(net, 2, patch_size=6, device="cpu", progress=False)(x[c : c + 1])
        np.testing.assert_allclose(both[c : c + 1], single, atol=1e-6)


@pytest.mark.parametrize("cuda", [False, True])
def test_device_auto_picks_cuda_only_when_available(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto").type == ("cuda" if cuda else "cpu")
    assert resolve_device("cpu").type == "cpu"


def test_unusable_devices_are_config_errors(monkeypatch):
    from geo_med_sr.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    """Exact up to float32 rounding once cuDNN's TF32 convolutions (PyTorch's default on Ampere
    and later, ~1e-3 relative error) are off; with them the bundled model differs by ~1e-4
    (benchmarks/gpu_check.py)."""
    net = randomised(build_network("edsr", spatial_dims=3, in_channels=1, scale=2, features=4, num_blocks=1))
    x = np.random.default_rng(6).normal(size=(1, 12, 10, 9)).astype(np.float32)
    cpu = SuperResolver(net, 2, patch_size=6, device="cpu", progress=False)(x)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        gpu = SuperResolver(net, 2, patch_size=6, device="cuda", progress=False)(x)
    np.testing.assert_allclose(cpu, gpu, atol=1e-4)


def test_oracle_detects_a_too_small_halo():
    """The tile-invariance check can fail: with no halo, patch borders show."""
    net = randomised(build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=6, num_blocks=2))
    x = np.random.default_rng(7).normal(size=(1, 20, 20)).astype(np.float32)
    no_halo = SuperResolver(net, 2, patch_size=5, halo=0, device="cpu", progress=False)(x)
    assert np.abs(no_halo - whole_image(net, x, 2, net.receptive_radius)).max() > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("scale", [(2, 2), (3, 1), (1, 1, 4)])
def test_bspline_ibp_is_data_consistent_and_tile_invariant(scale):
    from geo_med_sr.degrade import BlockAverage
    from geo_med_sr.inference.consistency import BSplineIBP

    shape = (1, 18, 15) if len(scale) == 2 else (1, 9, 8, 7)
    x = np.random.default_rng(8).normal(size=shape).astype(np.float32)
    model = BSplineIBP(scale)
    tiled = SuperResolver(model, scale, patch_size=6, device="cpu", progress=False)(x)
    whole = whole_image(model, x, scale, model.receptive_radius)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    redegraded = BlockAverage(scale, len(scale))(torch.from_numpy(tiled)[None])[0].numpy()
    plain = SuperResolver(BSplineUpsampler(scale), scale, patch_size=6, device="cpu", progress=False)(x)
    plain_err = np.abs(BlockAverage(scale, len(scale))(torch.from_numpy(plain)[None])[0].numpy() - x).max()
    assert np.abs(redegraded - x).max() < 1e-3 < plain_err


@pytest.mark.parametrize("scale", [2, 3])
def test_bicubic_reproduces_quadratics_on_the_sr_grid(scale):
    """Keys' kernel (a=-0.5) is exact for polynomials up to degree 2: check the sample positions."""
    i = np.arange(20, dtype=np.float64)
    x = (0.05 * i**2 - 0.3 * i + 1.0).astype(np.float32)[None, :, None].repeat(3, axis=2)
    out = SuperResolver(BicubicUpsampler((scale, 1)), (scale, 1), patch_size=7, device="cpu", progress=False)(x)[
        0, :, 1
    ]
    pos = (np.arange(20 * scale) + 0.5) / scale - 0.5
    np.testing.assert_allclose(
        out[2 * scale : -2 * scale], (0.05 * pos**2 - 0.3 * pos + 1.0)[2 * scale : -2 * scale], atol=1e-4
    )
