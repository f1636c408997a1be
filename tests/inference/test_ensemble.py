"""Geometric self-ensemble: equivariant by construction, exact on symmetric methods, tile-invariant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import randomised, whole_image

from geo_med_sr.inference.classical import BSplineUpsampler
from geo_med_sr.inference.ensemble import PlaneEnsemble, SelfEnsemble, transforms
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.networks import build_network


def edsr(scale: tuple[int, ...], seed: int = 0) -> torch.nn.Module:
    return randomised(
        build_network("edsr", spatial_dims=len(scale), in_channels=1, scale=scale, features=6, num_blocks=2), seed
    )


@pytest.mark.parametrize(
    "scale,count,transposed", [((2, 2), 8, True), ((4, 1), 4, False), ((2, 2, 2), 8, False), ((1, 1, 4), 8, False)]
)
def test_group_size(scale, count, transposed):
    members = transforms(scale)
    assert len(members) == count == len(set(members))
    assert any(t for _, t in members) == transposed


def test_mean_of_transformed_outputs_computed_independently():
    """Oracle: the mean of T^-1 f(T x) over the dihedral group, written out with NumPy."""
    net = edsr((2, 2))
    x = np.random.default_rng(0).normal(size=(1, 1, 12, 9)).astype(np.float32)

    def f(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(a))).numpy()

    expected = np.zeros((1, 1, 24, 18), np.float64)
    for k in range(4):  # the 4 rotations, each with and without a mirror: the same group of 8
        for mirror in (False, True):
            a = np.flip(x, -1) if mirror else x
            y = np.rot90(f(np.rot90(a, k, axes=(-2, -1))), -k, axes=(-2, -1))
            expected += np.flip(y, -1) if mirror else y
    with torch.no_grad():
        out = SelfEnsemble(net)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected / 8, atol=1e-5)
    with torch.no_grad():
        plain = net(torch.from_numpy(x)).numpy()
    assert np.abs(out - plain).max() > 1e-3  # a random network is not equivariant: the ensemble changes it


@pytest.mark.parametrize("scale", [(2, 2), (3, 1), (2, 2, 2), (1, 2, 3)])
def test_ensemble_output_is_equivariant(scale):
    """E(flip x) == flip E(x) on every axis, although the network alone is not."""
    ens = SelfEnsemble(edsr(scale, seed=1))
    shape = (1, 1, 10, 9) if len(scale) == 2 else (1, 1, 7, 6, 5)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=shape).astype(np.float32))
    with torch.no_grad():
        out = ens(x)
        for axis in range(len(scale)):
            np.testing.assert_allclose(
                ens(torch.flip(x, [axis + 2])).numpy(), torch.flip(out, [axis + 2]).numpy(), atol=1e-5
            )
        if len(scale) == 2 and scale[0] == scale[1]:
            np.testing.assert_allclose(ens(x.transpose(-1, -2)).numpy(), out.transpose(-1, -2).numpy(), atol=1e-5)


def test_symmetric_method_is_unchanged():
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(1, 2, 11, 8)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(
            SelfEnsemble(BSplineUpsampler((2, 2)))(x).numpy(), BSplineUpsampler((2, 2))(x).numpy(), atol=1e-5
        )


@pytest.mark.parametrize("scale", [(2, 2), (1, 1, 4)])
def test_tiled_equals_whole_image(scale):
    net = edsr(scale) if len(scale) == 2 else PlaneEnsemble(edsr((4, 1)), thick_axis=2)
    ens = SelfEnsemble(net)
    assert ens.receptive_radius == net.receptive_radius and ens.scale == tuple(scale)
    shape = (1, 19, 14) if len(scale) == 2 else (1, 9, 8, 7)
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    tiled = SuperResolver(ens, scale, patch_size=5, batch_size=2, device="cpu", progress=False)(x)
    whole = whole_image(ens, x, scale, ens.receptive_radius)
    assert np.abs(tiled - whole).max() <= 1e-5
