"""--method self: trains on the input within its budget, keeps the geometry, streams."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from conftest import oblique_affine, smooth_volume, write_nifti
from geotiff_fixtures import make_geotiff

from geo_med_sr import io
from geo_med_sr.geometry import affine_difference_in_voxels, scale_affine
from geo_med_sr.inference.ensemble import PlaneEnsemble
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.networks import build_network
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve


def _plane_ensemble(seed: int) -> PlaneEnsemble:
    """A small randomised x4 through-plane EDSR in the plane ensemble (thick axis 2)."""
    torch.manual_seed(seed)
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=(4, 1), features=6, num_blocks=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return PlaneEnsemble(net, thick_axis=2).eval()


def test_plane_ensemble_shapes_and_tile_invariance():
    model = _plane_ensemble(seed=0)
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
    result = super_resolve(src, tmp_path / "sr.nii.gz", "1,1,4", config, progress=False)
    out = io.read(result.output)
    assert out.spatial_shape == (24, 20, 24)
    assert affine_difference_in_voxels(scale_affine(affine, (1, 1, 4)), out.affine) <= 1e-6
    info = result.provenance["self_supervised"]
    assert info["protocol"].startswith("through-plane") and info["steps"] > 0 and info["budget_s"] == 4.0
    assert info["start"] == "random init"


def _zero_shot(tmp_path):
    src, _ = make_geotiff(tmp_path / "s.tif", width=80, height=64)
    config = SRConfig().updated(model={"method": "self", "budget": 3.0}, inference={"patch_size": 32})
    result = super_resolve(src, tmp_path / "o.tif", 2, config, progress=False)
    info = result.provenance["self_supervised"]
    assert info["protocol"].startswith("zero-shot") and info["budget_s"] == 3.0 and info["steps"] > 0
    with rasterio.open(result.output) as out, rasterio.open(src) as ref:
        assert (out.width, out.height) == (160, 128)
        assert out.tags()["GEO_MED_SR_METHOD"] == "self"
        assert out.nodata == ref.nodata
    return info


def test_self_zero_shot_geotiff_fine_tunes_the_bundled_model(tmp_path):
    from geo_med_sr.models import bundled

    if bundled.find("sat-edsr-x2") is None:
        pytest.skip("sat-edsr-x2 weights not installed (make weights-sat-x2)")
    assert _zero_shot(tmp_path)["start"] == "sat-edsr-x2"


def test_self_zero_shot_geotiff_starts_from_random_weights_without_a_bundled_model(tmp_path, monkeypatch):
    from geo_med_sr.models import bundled

    monkeypatch.setattr(bundled, "available", lambda: [])
    assert _zero_shot(tmp_path)["start"] == "random init"


def test_training_stops_at_the_budget(monkeypatch):
    """On a clock that advances one second per reading, a 3 s budget leaves time for exactly two
    steps (at 1 s and 2 s), whatever the machine's speed."""
    import types

    from geo_med_sr.degrade import BlockAverage
    from geo_med_sr.training import selfsup

    ticks = iter(range(1000))
    monkeypatch.setattr(selfsup, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=(2, 2), features=4, num_blocks=1)
    info = selfsup._fit(net, [_image((64, 64))], BlockAverage((2, 2), 2), 3.0, torch.device("cpu"), 0, None)
    assert info["steps"] == 2 and info["seconds"] == 4.0


def _image(shape, seed=0):
    from pathlib import Path

    from geo_med_sr.training.data import TrainImage

    values = np.random.default_rng(seed).normal(size=(1, *shape)).astype(np.float32)
    return TrainImage(Path("x"), values, np.ones(shape, bool), "")


def test_holdout_strip_is_disjoint_from_training_pixels():
    from geo_med_sr.training.selfsup import HOLDOUT_PATCH, _holdout_split

    train, held = _holdout_split([_image((200, 120)), _image((40, 30))], (2, 2))
    assert len(train) == 2 and len(held) == 1  # the small image is not split
    assert not (train[0].valid & held[0].valid).any() and (train[0].valid | held[0].valid).all()
    assert held[0].valid[-1].all() and not held[0].valid[0].any()  # the strip is along the longest axis, at its end
    assert held[0].valid[:, 0].sum() == max(40, HOLDOUT_PATCH * 2)
    assert train[1].valid.all()


def test_early_stopping_keeps_the_best_weights_seen():
    """A diverging run (absurd learning rate) hands back the weights it started from."""
    from geo_med_sr.degrade import BlockAverage
    from geo_med_sr.training.selfsup import _fit, _holdout_split

    yy, xx = np.mgrid[0:160, 0:140].astype(np.float32)
    image = _image((160, 140))
    image.values[0] = np.sin(xx / 7.0) * np.cos(yy / 11.0) + 0.1 * image.values[0]
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=(2, 2), features=8, num_blocks=1)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    train, held = _holdout_split([image], (2, 2))
    info = _fit(net, train, BlockAverage((2, 2), 2), 1.5, torch.device("cpu"), 0, None, base_lr=50.0, holdout=held)
    assert (
        info["steps"] > 0 and info["holdout_l1_kept"] == info["holdout_l1_start"] and info["kept_weights_at_s"] == 0.0
    )
    assert all(torch.equal(start[k], v) for k, v in net.state_dict().items())
    sensible = build_network("edsr", spatial_dims=2, in_channels=1, scale=(2, 2), features=8, num_blocks=1)
    info = _fit(
        sensible,
        train,
        BlockAverage((2, 2), 2),
        None,
        torch.device("cpu"),
        0,
        None,
        base_lr=1e-3,
        holdout=held,
        steps=60,
    )
    assert info["steps"] == 60  # by steps, not by the clock: the same run on a busy machine
    assert info["holdout_l1_kept"] < info["holdout_l1_start"]  # a sane run improves on the hold-out pairs


def test_plane_ensemble_in_bounded_chunks_equals_one_batch(monkeypatch):
    """Memory-bounded inference (planes through the 2D network a few at a time) equals the whole tile at once."""
    from geo_med_sr.inference import ensemble

    model = _plane_ensemble(seed=1)
    net = model.net2d
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1, 11, 9, 6)).astype(np.float32))
    with torch.no_grad():
        monkeypatch.setattr(ensemble, "PLANE_CHUNK_PIXELS", 1 << 30)
        whole = model(x)
        calls = []
        forward = net.forward
        monkeypatch.setattr(net, "forward", lambda t: calls.append(len(t)) or forward(t))
        monkeypatch.setattr(ensemble, "PLANE_CHUNK_PIXELS", 3 * 24 * 11)  # 3 planes of 24 x 11 output pixels
        chunked = model(x)
    assert max(calls) <= 3 and len(calls) > 2  # really chunked, in both orientations
    assert chunked.shape == whole.shape == (1, 1, 11, 9, 24)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


def test_self_steps_are_reproducible_bit_for_bit(tmp_path):
    """--steps: two runs give the same output voxels, whatever the machine's load; steps recorded."""
    hr = smooth_volume((20, 16, 24))
    lr = hr.reshape(20, 16, 12, 2).mean(axis=3).astype(np.int16)
    src = write_nifti(tmp_path / "thick.nii.gz", lr, scale_affine(oblique_affine(spacing=(1.0, 1.0, 1.0)), (1, 1, 0.5)))
    config = SRConfig().updated(model={"method": "self", "steps": 6}, inference={"patch_size": 16})
    outs = []
    for k in range(2):
        result = super_resolve(src, tmp_path / f"sr{k}.nii.gz", "1,1,2", config, progress=False)
        info = result.provenance["self_supervised"]
        assert info["steps"] == 6 and info["budget_s"] is None
        outs.append(np.asarray(io.read(result.output).array))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.ptp(outs[0]) > 0


def test_budget_and_steps_together_are_refused():
    from geo_med_sr.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="not both"):
        SRConfig().updated(model={"method": "self", "steps": 5, "budget": 3.0})
