"""A tiny training run lowers the loss, writes a pickle-free checkpoint that reproduces its
predictions, and resumes from the saved step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from geotiff_fixtures import make_geotiff

from geo_med_sr.cli.main import main
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.models.checkpoint import load_checkpoint
from geo_med_sr.training.config import load_train_config
from geo_med_sr.training.loop import state_path, train

TINY = {
    "network": {"name": "edsr", "params": {"features": 8, "num_blocks": 1}},
    "patch_size": 12,
    "batch_size": 4,
    "val_every": 10,
    "checkpoint_every": 10,
    "lr": 1e-3,
}


@pytest.fixture
def scene(tmp_path):
    path, _ = make_geotiff(tmp_path / "train.tif", width=96, height=80, count=2)
    val, _ = make_geotiff(tmp_path / "val.tif", width=48, height=40, count=1)
    return path, val


def test_training_writes_a_pickle_free_checkpoint_that_reproduces(tmp_path, scene, monkeypatch):
    data, val = scene
    out = tmp_path / "m.safetensors"
    config = load_train_config(None, **TINY, steps=40)
    messages = []
    summary = train(config, [data], out, val=[val], progress=False, log=messages.append)
    assert summary["steps"] == 40 and out.is_file() and state_path(out).is_file()
    history = summary["val_psnr"]
    assert len(history) == 4 and len(messages) == 4 and "validation PSNR" in messages[0]
    # the loss went down: compare with the untrained network on the same fixed batch
    model, info = load_checkpoint(out)
    assert info["extra"]["train"]["step"] == 40 and info["extra"]["train"]["files"][0]["sha256"]
    monkeypatch.setattr("pickle.loads", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pickle used")))
    model2, _ = load_checkpoint(out)
    x = np.random.default_rng(0).normal(size=(1, 20, 18)).astype(np.float32)
    a = SuperResolver(model, 2, patch_size=8, device="cpu", progress=False)(x)
    b = SuperResolver(model2, 2, patch_size=8, device="cpu", progress=False)(x)
    np.testing.assert_array_equal(a, b)


def test_loss_decreases(tmp_path, scene):
    data, _ = scene
    config = load_train_config(None, **TINY, steps=60)
    from geo_med_sr.degrade import build_degradation
    from geo_med_sr.normalize import build_normalizer
    from geo_med_sr.training.data import PatchSampler, load_training_images

    out = tmp_path / "m.safetensors"
    train(config, [data], out, progress=False)
    trained, _ = load_checkpoint(out)
    from geo_med_sr.networks import build_network

    untrained = build_network("edsr", spatial_dims=2, in_channels=1, scale=[2, 2], features=8, num_blocks=1)
    images = load_training_images([data], build_normalizer("percentile"), 2)
    sampler = PatchSampler(images, build_degradation("blockavg", [2, 2], 2), 12, seed=123)
    lr, hr = sampler.batch(32)
    with torch.no_grad():
        before = float((untrained(lr) - hr).abs().mean())
        after = float((trained(lr) - hr).abs().mean())
    assert after < before


def test_resume_continues_from_the_saved_step(tmp_path, scene):
    data, _ = scene
    out = tmp_path / "m.safetensors"
    train(load_train_config(None, **TINY, steps=20), [data], out, progress=False)
    first = json.loads(out.with_suffix(".json").read_text())
    assert first["extra"]["train"]["step"] == 20
    summary = train(load_train_config(None, **TINY, steps=30), [data], out, resume=True, progress=False)
    assert summary["steps"] == 30
    assert json.loads(out.with_suffix(".json").read_text())["extra"]["train"]["step"] == 30


def test_resume_equals_an_uninterrupted_run(tmp_path, scene):
    """20 steps + resume to 30 gives the same weights as 30 steps in one go."""
    data, _ = scene
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    cfg = dict(TINY, checkpoint_every=1000)
    config = load_train_config(None, **cfg, steps=30)
    train(config, [data], a, progress=False)
    train(config, [data], b, stop_at=20, progress=False)
    assert json.loads(b.with_suffix(".json").read_text())["extra"]["train"]["step"] == 20
    train(config, [data], b, resume=True, progress=False)
    wa, _ = load_checkpoint(a)
    wb, _ = load_checkpoint(b)
    for (name, pa), (_, pb) in zip(wa.state_dict().items(), wb.state_dict().items()):
        assert torch.allclose(pa, pb, atol=1e-5), name


def test_cli_train_refuses_to_overwrite(tmp_path, scene, capsys):
    data, _ = scene
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"x")
    assert main(["train", "--data", str(data), "--out", str(out), "--steps", "1"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["sat_x2", "mri3d_x2"])
def test_bundled_training_configs_validate(name):
    from importlib import resources

    path = resources.files("geo_med_sr.configs").joinpath(f"train/{name}.yaml")
    config = load_train_config(str(path))
    assert len(config.scale) == config.spatial_dims


def test_training_config_rejects_unknown_keys(tmp_path):
    from geo_med_sr.errors import ConfigError

    path = tmp_path / "t.yaml"
    path.write_text("stepz: 10\n")
    with pytest.raises(ConfigError, match="stepz"):
        load_train_config(path)
    with pytest.raises(ConfigError, match="2 factors"):
        load_train_config(None, scale=[2, 2, 2])


@pytest.mark.parametrize("decimate_p,steps", [(0.0, {1}), (1.0, {3})])
def test_patches_are_flipped_transposed_and_optionally_decimated(decimate_p, steps):
    """Pixel values encode their position, so every patch shows how it was cut."""
    from pathlib import Path

    from geo_med_sr.degrade import BlockAverage
    from geo_med_sr.training.data import PatchSampler, TrainImage

    i, j = np.meshgrid(np.arange(120), np.arange(110), indexing="ij")
    values = (1000.0 * i + j)[None].astype(np.float64)
    image = TrainImage(Path("grid"), values, np.ones(values.shape[1:], bool), "")
    sampler = PatchSampler(
        [image], BlockAverage((2, 2), 2), 6, seed=3, decimate_p=decimate_p, decimate_factors=(3,), transpose=True
    )
    transposed = 0
    for _ in range(40):
        patch = sampler._patch()[0]
        assert patch.shape == (12, 12)
        d0, d1 = np.abs(np.diff(patch, axis=0)), np.abs(np.diff(patch, axis=1))
        assert len(np.unique(d0)) == 1 and len(np.unique(d1)) == 1  # a regular grid of the image
        along = {float(d0[0, 0]), float(d1[0, 0])}
        transposed += float(d0[0, 0]) < 1000
        assert along == {1000.0 * s for s in steps} | {float(s) for s in steps}
    assert 5 < transposed < 35  # about half of the patches are transposed
    plain = PatchSampler([image], BlockAverage((2, 2), 2), 6, seed=3)
    assert all(
        np.abs(np.diff(plain._patch()[0], axis=0))[0, 0] == 1000 for _ in range(20)
    )  # no transposes unless asked


def test_decimation_needs_room_and_is_skipped_when_an_image_is_too_small():
    from pathlib import Path

    from geo_med_sr.degrade import BlockAverage
    from geo_med_sr.training.data import PatchSampler, TrainImage

    image = TrainImage(Path("small"), np.random.default_rng(0).normal(size=(1, 16, 16)), np.ones((16, 16), bool), "")
    sampler = PatchSampler([image], BlockAverage((2, 2), 2), 8, decimate_p=0.5, decimate_factors=(4,))
    assert all(
        sampler._patch().shape == (1, 16, 16) for _ in range(10)
    )  # decimated copies would be too small: plain patches


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_photos_are_training_images_in_index_order(tmp_path):
    """A PNG (no georeferencing) reads as (bands, columns, rows), like a GeoTIFF."""
    import rasterio

    from geo_med_sr.normalize import build_normalizer
    from geo_med_sr.training.data import load_training_images

    rows = np.random.default_rng(0).integers(
        0, 255, size=(3, 20, 30), dtype=np.uint8
    )  # rasterio order (bands, rows, cols)
    with rasterio.open(tmp_path / "p.png", "w", driver="PNG", width=30, height=20, count=3, dtype="uint8") as dst:
        dst.write(rows)
    images = load_training_images([tmp_path / "p.png"], build_normalizer("none"), 2)
    assert len(images) == 3 and images[0].values.shape == (1, 30, 20)
    np.testing.assert_array_equal(images[1].values[0], rows[1].T)
    with pytest.raises(Exception, match="cannot train a 3D network"):
        load_training_images([tmp_path / "p.png"], build_normalizer("none"), 3)


def test_one_loader_returns_the_config_of_the_task(tmp_path):
    """``task`` picks the training config type (absent: upscale); both are strict; a bad task says which exist."""
    from importlib import resources

    from geo_med_sr.errors import ConfigError
    from geo_med_sr.training.config import GuidedTrainConfig, TrainConfig, load_training_config

    train = resources.files("geo_med_sr.configs").joinpath("train")
    assert type(load_training_config(str(train / "sat_x2.yaml"))) is TrainConfig
    guided = load_training_config(str(train / "s2_guided_x2.yaml"), steps=7, seed=None)
    assert type(guided) is GuidedTrainConfig and guided.steps == 7
    assert type(load_training_config(None)) is TrainConfig
    path = tmp_path / "t.yaml"
    path.write_text("task: upscale\nsteps: 5\n")
    config = load_training_config(path)
    assert type(config) is TrainConfig and config.steps == 5 and "task" not in config.model_dump()
    path.write_text("task: sharpen\nfeatures: 2\nzoom: [2, 2]\n")
    with pytest.raises(ConfigError, match=r"invalid training configuration: features: .*; zoom: Extra inputs"):
        load_training_config(path)
    path.write_text("task: sharpn\n")
    with pytest.raises(ConfigError, match="task: expected one of upscale, sharpen"):
        load_training_config(path)
    with pytest.raises(ConfigError, match="task: sharpen"):
        load_train_config(str(train / "s2_guided_x2.yaml"))


def test_guided_config_calls_the_sr_factor_scale_and_reads_the_older_factor(tmp_path):
    """One word for the SR factor: ``scale``; ``factor`` (older configs and checkpoint headers) reads the same."""
    from geo_med_sr.training.config import GuidedTrainConfig, load_training_config

    for key in ("scale", "factor"):
        path = tmp_path / f"{key}.yaml"
        path.write_text(f"task: sharpen\nratio: 2\n{key}: 6\n")
        config = load_training_config(path)
        assert isinstance(config, GuidedTrainConfig) and config.scale == 6
        assert "factor" not in config.model_dump() and config.model_dump()["scale"] == 6
