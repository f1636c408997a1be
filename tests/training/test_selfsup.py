"""--method self: trains on the input within its budget, keeps the geometry, streams."""

from __future__ import annotations

import time

import numpy as np
import rasterio
import torch
from conftest import oblique_affine, smooth_volume, write_nifti
from geotiff_fixtures import make_geotiff

from geo_med_sr import io
from geo_med_sr.config import SRConfig
from geo_med_sr.geometry import affine_difference_in_voxels, scale_affine
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.networks import build_network
from geo_med_sr.pipeline import super_resolve
from geo_med_sr.training.selfsup import PlaneEnsemble


def test_plane_ensemble_shapes_and_tile_invariance():
    torch.manual_seed(0)
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=(4, 1), features=6, num_blocks=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = PlaneEnsemble(net, thick_axis=2).eval()
    assert model.scale == (1, 1, 4)
    x = np.random.default_rng(0).normal(size=(1, 9, 8, 5)).astype(np.float32)
    tiled = SuperResolver(model, (1, 1, 4), patch_size=4, device="cpu", progress=False)(x)
    whole = SuperResolver(model, (1, 1, 4), patch_size=64, device="cpu", progress=False)(x)
    assert tiled.shape == (1, 9, 8, 20)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_self_through_plane_mri_within_budget(tmp_path):
    hr = smooth_volume((24, 20, 24))
    lr = hr.reshape(24, 20, 6, 4).mean(axis=3).astype(np.int16)  # 4 slices averaged: thick slices
    affine = scale_affine(oblique_affine(spacing=(1.0, 1.0, 1.0)), (1, 1, 0.25))
    src = write_nifti(tmp_path / "thick.nii.gz", lr, affine)
    config = SRConfig().updated(model={"method": "self", "budget": 4.0}, inference={"patch_size": 16})
    start = time.perf_counter()
    result = super_resolve(src, tmp_path / "sr.nii.gz", "1,1,4", config, progress=False)
    elapsed = time.perf_counter() - start
    assert elapsed < 4.0 + 30.0  # budget plus reading, inference and writing
    out = io.read(result.output)
    assert out.spatial_shape == (24, 20, 24)
    assert affine_difference_in_voxels(scale_affine(affine, (1, 1, 4)), out.affine) <= 1e-6
    info = result.provenance["self_supervised"]
    assert info["protocol"].startswith("through-plane") and info["steps"] > 0 and info["seconds"] <= 4.0 + 2.0
    assert info["start"] == "random init"


def test_self_zero_shot_geotiff_within_budget(tmp_path):
    src, _ = make_geotiff(tmp_path / "s.tif", width=80, height=64)
    config = SRConfig().updated(model={"method": "self", "budget": 3.0}, inference={"patch_size": 32})
    result = super_resolve(src, tmp_path / "o.tif", 2, config, progress=False)
    info = result.provenance["self_supervised"]
    assert info["protocol"].startswith("zero-shot") and info["seconds"] <= 5.0
    from geo_med_sr import bundled

    expected_start = "sat-edsr-x2" if bundled.find("sat-edsr-x2") else "random init"
    assert info["start"] == expected_start
    with rasterio.open(result.output) as out, rasterio.open(src) as ref:
        assert (out.width, out.height) == (160, 128)
        assert out.tags()["GEO_MED_SR_METHOD"] == "self"
        assert out.nodata == ref.nodata
