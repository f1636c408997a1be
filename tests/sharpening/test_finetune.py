"""``self`` fine-tuning a guided model: zero steps is the model itself; ``--steps`` is bit-for-bit reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from s2_fixtures import read

from geo_med_sr.errors import ConfigError
from geo_med_sr.sharpening.pipeline import sharpen
from geo_med_sr.sharpening.training import train_guided

BANDS = "B02,B03,B04,B08,B05,B06,B07,B8A,B11,B12"


def test_zero_steps_leave_the_network_unchanged():
    torch = pytest.importorskip("torch")
    from geo_med_sr.networks.guided import GuidedNet

    torch.manual_seed(0)
    net = GuidedNet(target_channels=2, guide_channels=1, ratio=[2, 2], features=8, blocks=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = train_guided(net, [], steps=0)
    assert report["steps"] == 0 and report["loss"] is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_self_from_the_bundled_model_starts_at_its_output_and_is_reproducible(tmp_path):
    from geo_med_sr.cli.demo import sample_s2
    from geo_med_sr.models.bundled import find

    if find("s2-guided-x2") is None:
        pytest.skip("bundled guided weights not installed (make weights-sharpen)")
    common = {"bands": BANDS, "device": "cpu", "progress": False}
    sharpen(sample_s2(), tmp_path / "model.tif", method="model", **common)
    start = sharpen(sample_s2(), tmp_path / "self0.tif", method="self", model="s2-guided-x2", steps=0, **common)
    bundled, zero = read(tmp_path / "model.tif")[0], read(tmp_path / "self0.tif")[0]
    np.testing.assert_array_equal(zero, bundled)  # zero steps of fine-tuning = the bundled model, bit for bit
    group = start.provenance["groups"][0]
    assert group["steps"] == 0 and group["model"] == "s2-guided-x2" and len(group["model_sha256"]) == 64

    tuned = []
    for k in range(2):
        path = tmp_path / f"self3_{k}.tif"
        sharpen(sample_s2(), path, method="self", model="s2-guided-x2", steps=3, **common)
        tuned.append(read(path)[0])
    np.testing.assert_array_equal(tuned[0], tuned[1])  # the same steps, the same output
    assert not np.array_equal(tuned[0], bundled)  # and three steps did move the model


def test_zero_steps_without_a_model_to_start_from_is_refused_before_any_work(tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(ConfigError, match="--steps 0 needs a model"):
        sharpen(tmp_path / "no_such_scene", out, method="self", steps=0, progress=False)
    with pytest.raises(ConfigError, match="--steps 0 needs a model"):
        sharpen(tmp_path / "no_such_scene", out, method="glp", model="s2-guided-x2", steps=0, progress=False)
    with pytest.raises(ConfigError, match="steps=-1: expected a positive integer"):
        sharpen(tmp_path / "no_such_scene", out, method="self", model="s2-guided-x2", steps=-1, progress=False)
    assert not out.exists()


def _arrays(n: int, value: float):
    """``n`` training pairs whose every pixel says which scene they come from (``value``)."""
    from geo_med_sr.sharpening.training import TrainArrays

    ones = np.ones((1, 8, 8), np.float32)
    return [TrainArrays(ones * value, ones * value, ones * value, np.ones((8, 8), bool)) for _ in range(n)]


def test_scene_balance_draws_each_scene_alike_however_many_pairs_it_has():
    from geo_med_sr.sharpening.training import _patches

    arrays = _arrays(27, 0.0) + _arrays(1, 1.0) + _arrays(2, 2.0)  # one large scene, two small ones
    scenes = [list(range(27)), [27], [28, 29]]
    rng = np.random.default_rng(0)
    drawn = np.concatenate([_patches(arrays, rng, 8, 64, scenes)[0][:, 0, 0, 0] for _ in range(30)])
    shares = np.bincount(drawn.astype(int), minlength=3) / drawn.size
    np.testing.assert_allclose(shares, 1 / 3, atol=0.03)  # 1920 draws: each scene about a third
    rng = np.random.default_rng(0)
    drawn = np.concatenate([_patches(arrays, rng, 8, 64)[0][:, 0, 0, 0] for _ in range(30)])
    assert (drawn == 0).mean() > 0.85  # by pair, the large scene takes 27 of 30 draws
    # one scene: the same draws as without scenes (``self`` keeps its sampling, bit for bit)
    a, b = (_patches(arrays[:27], np.random.default_rng(1), 8, 4, s) for s in (None, [list(range(27))]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
