"""Guided through-plane network: untrained it is EDSR's linear interpolation, it runs tile-invariantly
with its guide on the output grid, and the guide matters once the network is trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geo_med_sr.errors import ConfigError, ModelError
from geo_med_sr.inference.arrays import ArraySink, ArraySource
from geo_med_sr.inference.ensemble import GuidedPlaneEnsemble, PlaneEnsemble
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.networks import GuidedPlaneNet, build_network
from geo_med_sr.upscale.methods import SELF_THROUGH_PLANE


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions on a shared 2-core machine: one intra-op thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_ish(s: int, seed: int = 0, features: int = 4, blocks: int = 1) -> GuidedPlaneNet:
    """A small guided network with seeded random weights everywhere, the tail included (the guide matters)."""
    torch.manual_seed(seed)
    net = GuidedPlaneNet(s, features=features, blocks=blocks)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def volume_and_guide(shape: tuple[int, ...], scale: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random ``(1, *shape)`` target and a ``(2, *shape*scale)`` guide (values and a 0/1 mask)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1, *shape)).astype(np.float32)
    out = tuple(n * s for n, s in zip(shape, scale))
    guide = np.stack([rng.normal(size=out), rng.random(out) < 0.7]).astype(np.float32)
    return x, guide


@pytest.mark.parametrize("s", [2, 3, 4])
def test_untrained_equals_untrained_edsr_bit_for_bit(s):
    edsr = build_network("edsr", spatial_dims=2, in_channels=1, scale=[s, 1], **SELF_THROUGH_PLANE)
    net = build_network("guided-plane", scale=s)
    assert isinstance(net, GuidedPlaneNet) and net.scale == (s, 1) and net.guide_channels == 2
    x = torch.randn(3, 1, 7, 9)
    guide = torch.randn(3, 2, 7 * s, 9)
    with torch.no_grad():
        assert torch.equal(net(x, guide), edsr(x))


def test_config_rebuilds_the_network():
    net = trained_ish(3, features=6, blocks=2)
    assert net.config() == {
        "name": "guided-plane",
        "params": {"scale": 3, "guide_channels": 2, "features": 6, "blocks": 2, "detail": True},
    }
    again = build_network(**net.config())
    again.load_state_dict(net.state_dict())
    x, g = torch.randn(2, 1, 5, 6), torch.randn(2, 2, 15, 6)
    with torch.no_grad():
        assert torch.equal(again.eval()(x, g), net(x, g))
    # across: ceil((6 + 2 * 3) / 3) + 1 LR pixels (convolutions, the guide detail's means, the interpolation)
    assert net.receptive_radii == (5, 6) and net.receptive_radius == 6


def test_wrong_guide_shape_is_refused():
    with pytest.raises(ModelError, match="guide of shape"):
        GuidedPlaneNet(2)(torch.zeros(1, 1, 4, 5), torch.zeros(1, 2, 4, 5))


@pytest.mark.parametrize("thick_axis", [0, 1, 2])
def test_untrained_ensemble_equals_untrained_plane_ensemble(thick_axis):
    s = 3
    edsr = build_network("edsr", spatial_dims=2, in_channels=1, scale=[s, 1], **SELF_THROUGH_PLANE)
    plain = PlaneEnsemble(edsr, thick_axis).eval()
    guided = GuidedPlaneEnsemble(build_network("guided-plane", scale=s), thick_axis).eval()
    assert guided.scale == plain.scale and guided.guided
    x, g = volume_and_guide((6, 5, 4), guided.scale)
    with torch.no_grad():
        assert torch.equal(
            guided(torch.from_numpy(x)[None], torch.from_numpy(g)[None]), plain(torch.from_numpy(x)[None])
        )


@pytest.mark.parametrize("s", [2, 3])
@pytest.mark.parametrize("thick_axis", [0, 1, 2])
def test_tiled_with_guides_equals_one_tile(thick_axis, s):
    """Small tiles (halo = the per-axis radii, or the default single radius) equal one tile over the volume."""
    ens = GuidedPlaneEnsemble(trained_ish(s, seed=thick_axis), thick_axis)
    shape = [7, 6, 6]
    shape[thick_axis] = 5
    x, g = volume_and_guide(tuple(shape), ens.scale, seed=s)
    whole = SuperResolver(ens, ens.scale, patch_size=64, device="cpu", progress=False)(x, guides=[g])
    assert whole.shape == (1, *g.shape[1:])
    tiled = SuperResolver(ens, ens.scale, patch_size=3, batch_size=3, device="cpu", progress=False)(x, guides=[g])
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    # the tightest halo: the thick axis needs only ceil(radius / s) + 1 LR pixels; guides split in two Sources
    tight = SuperResolver(ens, ens.scale, patch_size=2, halo=ens.receptive_radii, device="cpu", progress=False)
    np.testing.assert_allclose(tight(x, guides=[g[:1], g[1:]]), whole, atol=1e-5)


def test_guide_changes_the_output_of_a_trained_network():
    ens = GuidedPlaneEnsemble(trained_ish(2), thick_axis=2)
    x, g = volume_and_guide((5, 4, 3), ens.scale)
    resolver = SuperResolver(ens, ens.scale, patch_size=8, device="cpu", progress=False)
    with_guide, other = resolver(x, guides=[g]), resolver(x, guides=[np.roll(g, 1, axis=1)])
    assert np.abs(with_guide - other).max() > 1e-3
    untrained = GuidedPlaneEnsemble(GuidedPlaneNet(2, features=4, blocks=1), thick_axis=2)
    resolver = SuperResolver(untrained, untrained.scale, patch_size=8, device="cpu", progress=False)
    np.testing.assert_array_equal(resolver(x, guides=[g]), resolver(x, guides=[np.roll(g, 1, axis=1)]))


def test_resolver_refuses_mismatched_guides():
    s = 2
    x, g = volume_and_guide((4, 4, 3), (1, 1, s))
    edsr = build_network("edsr", spatial_dims=2, in_channels=1, scale=[s, 1], features=4, num_blocks=1)
    plain = SuperResolver(PlaneEnsemble(edsr, 2), (1, 1, s), device="cpu", progress=False)
    with pytest.raises(ConfigError, match="takes no guide"):
        plain(x, guides=[g])
    guided = SuperResolver(GuidedPlaneEnsemble(trained_ish(s), 2), (1, 1, s), device="cpu", progress=False)
    with pytest.raises(ConfigError, match="guided model"):
        guided(x)
    with pytest.raises(ConfigError, match="2-channel target"):
        sink = ArraySink((2, 4, 4, 6), dtype=np.float32)
        guided.run(ArraySource(np.concatenate([x, x])), sink, guides=[ArraySource(g)])


@pytest.mark.parametrize("thick_axis", [0, 2])
def test_back_projected_guided_output_is_consistent_and_tile_invariant(thick_axis):
    """Guided self's data consistency (GuidedBackProjection with the slice profile): the output's thick slices
    average to the measured ones (residual far below the raw network's), and tiles equal one tile."""
    from geo_med_sr.degrade import SliceProfile
    from geo_med_sr.inference.consistency import GuidedBackProjection

    s = 3
    ens = GuidedPlaneEnsemble(trained_ish(s, seed=1), thick_axis)
    shape = [7, 6, 6]
    shape[thick_axis] = 5
    x, g = volume_and_guide(tuple(shape), ens.scale, seed=2)
    profile = SliceProfile(ens.scale, 3)
    projected = GuidedBackProjection(ens, profile, iterations=20)
    assert projected.guided and projected.guide_channels == ens.guide_channels
    # the projection reaches further along the thick axis only: the in-plane halo stays the network's
    radii = projected.receptive_radii
    assert radii[thick_axis] > ens.receptive_radii[thick_axis]
    assert all(radii[a] == ens.receptive_radii[a] for a in range(3) if a != thick_axis)
    raw = SuperResolver(ens, ens.scale, patch_size=64, device="cpu", progress=False)(x, guides=[g])
    whole = SuperResolver(projected, ens.scale, patch_size=64, device="cpu", progress=False)(x, guides=[g])

    def residual(y: np.ndarray) -> float:
        return float(np.abs(profile(torch.from_numpy(y)[None]).numpy()[0] - x).max())

    assert residual(raw) > 1e-2 and residual(whole) < 1e-3 * residual(raw)
    tiled = SuperResolver(projected, ens.scale, patch_size=3, batch_size=2, device="cpu", progress=False)
    np.testing.assert_allclose(tiled(x, guides=[g]), whole, atol=1e-5)


def test_guided_planes_in_bounded_chunks_equal_one_batch(monkeypatch):
    """The guided ensemble's planes go through the network a few at a time (GUIDED_PLANE_CHUNK_PIXELS): the
    result equals all planes at once, the guide's planes staying with their target planes."""
    from geo_med_sr.inference import ensemble

    ens = GuidedPlaneEnsemble(trained_ish(2, seed=3), thick_axis=2)
    x, g = volume_and_guide((11, 9, 6), ens.scale, seed=4)
    x_t, g_t = torch.from_numpy(x)[None], torch.from_numpy(g)[None]
    net = ens.net2d
    with torch.no_grad():
        monkeypatch.setattr(ensemble, "GUIDED_PLANE_CHUNK_PIXELS", 1 << 30)
        whole = ens(x_t, g_t)
        calls = []
        forward = net.forward
        monkeypatch.setattr(net, "forward", lambda t, guide: calls.append(len(t)) or forward(t, guide))
        monkeypatch.setattr(ensemble, "GUIDED_PLANE_CHUNK_PIXELS", 3 * 12 * 11)  # 3 planes of 12 x 11 pixels
        chunked = ens(x_t, g_t)
    assert max(calls) <= 3 and len(calls) > 2
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
