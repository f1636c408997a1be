"""Geometry oracle (DESIGN §3): block-average by s, upscale back, the original grid returns exactly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import oblique_affine, shared_path, smooth_volume, write_nifti

from geo_med_sr import io
from geo_med_sr.degrade import block_average
from geo_med_sr.geometry import affine_difference_in_voxels
from geo_med_sr.models.checkpoint import save_checkpoint
from geo_med_sr.networks import build_network
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve

SCALES = [(2, 2, 2), (3, 3, 3), (1, 1, 4)]
LR_SHAPES = [(5, 7, 3), (6, 4, 4)]  # odd and even sizes
METHODS = ["nearest", "linear", "bspline", "model"]


def _checkpoint(tmp_path, scale) -> str:
    net = build_network("edsr", spatial_dims=3, in_channels=1, scale=scale, features=4, num_blocks=1)
    path = tmp_path / f"edsr_{'x'.join(map(str, scale))}.safetensors"
    save_checkpoint(net, path)
    return str(path)


@pytest.mark.parametrize("lr_shape", LR_SHAPES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("method", METHODS)
def test_nifti_upscale_returns_the_original_grid(tmp_path, lr_shape, scale, method):
    hr_shape = tuple(n * s for n, s in zip(lr_shape, scale))
    hr_affine = oblique_affine(spacing=(0.8, 1.3, 0.6))
    hr_path = write_nifti(tmp_path / "hr.nii.gz", smooth_volume(hr_shape), hr_affine)
    lr = block_average(io.read(hr_path), scale)
    assert lr.spatial_shape == lr_shape
    io.write(lr, tmp_path / "lr.nii.gz")
    model = _checkpoint(tmp_path, scale) if method == "model" else None
    config = SRConfig().updated(model={"method": method, "name": model}, inference={"patch_size": 4})
    result = super_resolve(
        tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz", ",".join(map(str, scale)), config, progress=False
    )
    out = io.read(result.output)
    assert out.spatial_shape == hr_shape
    assert affine_difference_in_voxels(hr_affine, out.affine) <= 1e-6
    assert out.meta["dtype"] == "int16"
    if method == "nearest":  # each LR voxel fills its block exactly
        np.testing.assert_array_equal(out.array[0, :: scale[0], :: scale[1], :: scale[2]], np.rint(lr.array[0]))


@pytest.mark.slow
@pytest.mark.parametrize("name,scale", [("T2w_1x1x2mm.nii.gz", (2, 2, 2)), ("MR_Gd_T1gd_1mm_iso.nii.gz", (1, 1, 4))])
def test_real_mri_round_trip_keeps_the_grid(tmp_path, name, scale):
    real = io.read(shared_path("mri", name))
    lr = block_average(real, scale)
    io.write(lr, tmp_path / "lr.nii.gz")
    config = SRConfig().updated(model={"method": "bspline"})
    super_resolve(tmp_path / "lr.nii.gz", tmp_path / "sr.nii.gz", ",".join(map(str, scale)), config, progress=False)
    out = io.read(tmp_path / "sr.nii.gz")
    assert out.spatial_shape == tuple(n // s * s for n, s in zip(real.spatial_shape, scale))
    assert affine_difference_in_voxels(real.affine, out.affine) <= 1e-6
    assert out.meta["dtype"] == real.meta["dtype"]
