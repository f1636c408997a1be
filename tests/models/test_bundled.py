"""Bundled weights: found by domain and scale, used by default, described by a model card."""

from __future__ import annotations

import json

import pytest
import rasterio
from geotiff_fixtures import make_geotiff

from geo_med_sr.errors import ModelError
from geo_med_sr.models import bundled
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve


def test_every_installed_model_is_small_and_has_a_card():
    if not bundled.available():
        pytest.skip("no bundled weights installed (make weights)")
    for model in bundled.available():
        assert model.path.stat().st_size <= 5 * 1024 * 1024
        card = model.path.with_suffix(".md").read_text()
        assert "sha256" in card and "geo-med-sr train" in card
        info = json.loads(model.path.with_suffix(".json").read_text())
        through_plane = info["spatial_dims"] == 2 and len(model.scale) == 3  # a 2D (s, 1) net for (1, 1, s)
        assert (
            (tuple(info["scale"]) == (max(model.scale), 1)) if through_plane else (tuple(info["scale"]) == model.scale)
        )
        if model.domain == "sharpen":  # guided sharpening nets: trained on the Wald pairs of whole products
            assert info["network"]["name"] == "guided" and info["extra"]["files_sha256"]
            assert info["extra"]["ratio"] == model.scale[0]
        else:
            assert info["extra"]["train"]["files"]


def test_geotiff_x2_uses_the_bundled_model_by_default(tmp_path):
    if bundled.find("sat-edsr-x2") is None:
        pytest.skip("sat-edsr-x2 weights not installed (make weights)")
    src, _ = make_geotiff(tmp_path / "s.tif", width=40, height=32)
    result = super_resolve(src, tmp_path / "o.tif", 2, SRConfig().updated(inference={"patch_size": 32}), progress=False)
    assert result.provenance["model"] == "sat-edsr-x2" and result.provenance["model_source"] == "bundled default"
    with rasterio.open(result.output) as out:
        assert out.tags()["GEO_MED_SR_MODEL"] == "sat-edsr-x2" and len(out.tags()["GEO_MED_SR_WEIGHTS_SHA256"]) == 64


def test_fast_picks_the_small_network_and_says_when_there_is_none(tmp_path):
    if bundled.find("sat-edsr-x2-fast") is None:
        pytest.skip("sat-edsr-x2-fast weights not installed (make weights-sat-x2-fast)")
    fast, full = bundled.default_for("geo", (2, 2), fast=True), bundled.default_for("geo", (2, 2))
    assert (fast.name, full.name) == ("sat-edsr-x2-fast", "sat-edsr-x2")
    assert fast.path.stat().st_size < full.path.stat().st_size / 2
    with pytest.raises(ModelError, match="no fast bundled model for medical.*drop --fast"):
        bundled.default_for("medical", (2, 2, 2), fast=True)
    src, _ = make_geotiff(tmp_path / "s.tif", width=40, height=32)
    result = super_resolve(src, tmp_path / "o.tif", 2, SRConfig().updated(model={"fast": True}), progress=False)
    assert (
        result.provenance["model"] == "sat-edsr-x2-fast" and result.provenance["model_source"] == "bundled fast default"
    )


def test_missing_domain_or_scale_lists_what_is_bundled():
    with pytest.raises(ModelError, match="no bundled model for geo images at scale \\(3, 3\\)"):
        bundled.default_for("geo", (3, 3))


def test_a_checkpoint_is_fed_the_normalisation_it_was_trained_with(tmp_path):
    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks import build_network

    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=4, num_blocks=1)
    ckpt = tmp_path / "fixed.safetensors"
    save_checkpoint(net, ckpt, extra={"normalize": {"name": "fixed", "params": {"scale": 1e-4, "offset": 0.0}}})
    src, _ = make_geotiff(tmp_path / "s.tif", width=24, height=20)
    config = SRConfig().updated(model={"method": "model", "name": str(ckpt)})  # config says percentile
    result = super_resolve(src, tmp_path / "o.tif", 2, config, progress=False)
    assert result.provenance["normalization"]["name"] == "fixed"


def test_a_2d_through_plane_checkpoint_runs_on_thick_volumes(tmp_path):
    from conftest import oblique_affine, smooth_volume, write_nifti

    from geo_med_sr import io
    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks import build_network

    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=(4, 1), features=4, num_blocks=1)
    ckpt = tmp_path / "tp.safetensors"
    save_checkpoint(net, ckpt)
    src = write_nifti(tmp_path / "thick.nii.gz", smooth_volume((10, 9, 5)), oblique_affine())
    config = SRConfig().updated(model={"method": "model", "name": str(ckpt)}, inference={"patch_size": 8})
    result = super_resolve(src, tmp_path / "o.nii.gz", "1,1,4", config, progress=False)
    assert io.read(result.output).spatial_shape == (10, 9, 20)


@pytest.mark.parametrize("factor,thick_axis", [(2, 2), (3, 2), (4, 2), (4, 0)])
def test_thick_mri_uses_the_bundled_through_plane_model_for_its_factor(tmp_path, factor, thick_axis):
    from conftest import oblique_affine, smooth_volume, write_nifti

    from geo_med_sr import io

    name = f"mri-throughplane-x{factor}"
    if bundled.find(name) is None:
        pytest.skip(f"{name} weights not installed (make weights)")
    shape, scale = [12, 10, 9], [1, 1, 1]
    shape[thick_axis], scale[thick_axis] = 5, factor
    src = write_nifti(tmp_path / "thick.nii.gz", smooth_volume(tuple(shape)), oblique_affine())
    result = super_resolve(
        src,
        tmp_path / "o.nii.gz",
        ",".join(map(str, scale)),
        SRConfig().updated(inference={"patch_size": 16}),
        progress=False,
    )
    assert result.provenance["model"] == name and result.provenance["model_source"] == "bundled default"
    assert io.read(result.output).spatial_shape == tuple(n * f for n, f in zip(shape, scale))
