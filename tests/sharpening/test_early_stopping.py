"""``self``'s training: a held-out strip of the reduced pairs, the best weights kept, a fixed default of steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from s2_fixtures import s2_folder

from geo_med_sr.errors import ConfigError
from geo_med_sr.sharpening import plan as sp
from geo_med_sr.sharpening.pipeline import sharpen
from geo_med_sr.sharpening.training import TrainArrays, holdout_batch, holdout_split, train_guided

torch = pytest.importorskip("torch")


def _arrays(shape: tuple[int, int], seed: int = 0, valid: np.ndarray | None = None) -> TrainArrays:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    guide = (np.sin(xx / 5.0) * np.cos(yy / 7.0))[None].astype(np.float32)
    label = (0.8 * guide + 0.05 * rng.normal(size=(1, *shape))).astype(np.float32)
    up = label.copy()
    up[0] = (label[0] + np.roll(label[0], 1, 0) + np.roll(label[0], 1, 1) + np.roll(label[0], 1, (0, 1))) / 4
    return TrainArrays(up, guide, label, np.ones(shape, bool) if valid is None else valid)


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    holes=st.integers(0, 2**32 - 1),
)
def test_the_held_out_strip_never_reaches_training(w, h, holes):
    valid = np.random.default_rng(holes).random((w, h)) > 0.1
    a = _arrays((w, h), valid=valid)
    train, held = holdout_split([a])
    assert len(train) == 1 and len(held) <= 1
    if held:
        assert not (train[0].valid & held[0].valid).any()  # no held-out label is ever in the loss
        assert np.array_equal(train[0].valid | held[0].valid, valid)  # nothing lost
        assert np.array_equal(train[0].label, a.label)  # the values are shared, only the masks are cut
    else:
        assert np.array_equal(train[0].valid, valid)  # too small to split: trained on whole


def test_the_holdout_batch_scores_only_held_out_pixels():
    train, held = holdout_split([_arrays((120, 96))])
    batch = holdout_batch(held, seed=0)
    assert batch is not None
    up, guides, label, mask = batch
    assert mask.any() and up.shape[0] == mask.shape[0] == 16
    assert np.array_equal(batch[3], holdout_batch(held, seed=0)[3])  # fixed for a seed
    # the strip is the last 20 % of the longest axis: every scored pixel lies there
    strip = held[0].valid
    assert strip[:-24].sum() == 0 and strip[-24:].all()


def test_a_diverging_run_hands_back_the_weights_it_started_from():
    """Early stopping: with an absurd learning rate every check is worse, so the start is kept, bit for bit."""
    from geo_med_sr.networks.guided import GuidedNet

    torch.manual_seed(0)
    net = GuidedNet(target_channels=1, guide_channels=1, ratio=[2, 2], features=8, blocks=1)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    train, held = holdout_split([_arrays((120, 96), seed=s) for s in range(2)])
    report = train_guided(net, train, steps=20, lr=50.0, holdout=holdout_batch(held, seed=0), checks=5)
    assert report["steps"] == 20 and report["kept_step"] == 0
    assert report["holdout_l1_kept"] == report["holdout_l1_start"]
    assert all(torch.equal(start[k], v) for k, v in net.state_dict().items())

    torch.manual_seed(0)
    sensible = GuidedNet(target_channels=1, guide_channels=1, ratio=[2, 2], features=8, blocks=1)
    report = train_guided(sensible, train, steps=40, lr=1e-2, holdout=holdout_batch(held, seed=0), checks=5)
    assert report["kept_step"] > 0 and report["holdout_l1_kept"] < report["holdout_l1_start"]


def test_self_trains_a_fixed_number_of_steps_by_default(tmp_path, monkeypatch):
    """No --budget, no --steps: the finest group trains DEFAULT_STEPS, a coarser one DEFAULT_STEPS_COARSE,
    recorded as the default (the time the machine has does not decide)."""
    monkeypatch.setattr(sp, "DEFAULT_STEPS", 5)
    monkeypatch.setattr(sp, "DEFAULT_STEPS_COARSE", 3)
    folder = s2_folder(tmp_path / "S2X", n=96, scl=False)
    result = sharpen(folder, tmp_path / "o.tif", method="self", model="scratch", device="cpu", progress=False)
    groups = {g["ratio"][0]: g for g in result.provenance["groups"]}
    assert {r: (g["steps"], g["steps_from"]) for r, g in groups.items()} == {2: (5, "default"), 6: (3, "default")}
    assert all(g["start"] == "scratch" and "train_seconds" not in g for g in groups.values())
    stopping = groups[2]["early_stopping"]  # the 48x48 reduced pair gives up a strip
    assert stopping["holdout_l1_kept"] <= stopping["holdout_l1_start"] and 0 <= stopping["kept_step"] <= 5


def test_scratch_is_a_start_for_self_only(tmp_path):
    with pytest.raises(ConfigError, match="applies to --method self only"):
        sp.check_settings("model", model="scratch")
    with pytest.raises(ConfigError, match="--steps 0 needs a model"):
        sp.check_settings("self", steps=0, model="scratch")


def test_fine_tuning_by_default_where_nothing_can_be_held_out_keeps_the_model(tmp_path):
    """A scene of a few pixels gives no hold-out strip: default fine-tuning then keeps the bundled model as it
    is (on the unseen eolearn crop, 24x24 reduced pixels, 1200 blind steps lost 2.7 dB to the model alone)."""
    from geo_med_sr.models.bundled import find

    if find("s2-guided-x2") is None:
        pytest.skip("bundled guided weights not installed (make weights-sharpen)")
    from s2_fixtures import read

    folder = s2_folder(tmp_path / "S2X", n=20, scl=False)
    bands = "B02,B03,B04,B08,B05,B06,B07,B8A,B11,B12"
    common = {"bands": bands, "device": "cpu", "progress": False}
    default = sharpen(folder, tmp_path / "self.tif", **common)
    sharpen(folder, tmp_path / "model.tif", method="model", **common)
    (group,) = default.provenance["groups"]
    assert group["start"] == "s2-guided-x2" and group["steps"] == 0 and "kept unchanged" in group["early_stopping"]
    np.testing.assert_array_equal(read(tmp_path / "self.tif")[0], read(tmp_path / "model.tif")[0])
