"""Model cards: built from the checkpoint's own record, with the evaluate scores when given."""

from __future__ import annotations

from geotiff_fixtures import make_geotiff

from geo_med_sr.models.card import model_card
from geo_med_sr.models.checkpoint import save_checkpoint
from geo_med_sr.networks import build_network
from geo_med_sr.upscale.evaluate import evaluate


def test_card_lists_data_history_and_evaluation(tmp_path):
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=4, num_blocks=1)
    ckpt = tmp_path / "m.safetensors"
    train = {
        "step": 10,
        "seconds": 3.0,
        "config": {"degradation": {"name": "blockavg"}},
        "val_psnr": [[10, 31.25]],
        "files": [{"name": "a.tif", "sha256": "ab" * 32}],
    }
    save_checkpoint(net, ckpt, extra={"train": train})
    src, _ = make_geotiff(tmp_path / "val.tif", width=40, height=32)
    result = evaluate(src, 2, ["bicubic", "bspline", "bspline-ibp", "model"], model=str(ckpt))
    card = model_card(ckpt, "geo-med-sr train ...", [result])
    model = next(m for m in result["methods"] if m["method"] == "model")
    assert "| 10 | 31.250 |" in card and "ab" * 32 in card and "geo-med-sr train ..." in card
    assert f"| {model['psnr']:.2f} |" in card
    assert "| val.tif | 2,2 |" in card and "Scores on the validation files" in card


def test_card_without_validation_says_so(tmp_path):
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=(4, 1), features=4, num_blocks=1)
    ckpt = tmp_path / "tp.safetensors"
    save_checkpoint(
        net,
        ckpt,
        extra={"train": {"step": 5, "seconds": 1.0, "config": {"degradation": {"name": "slice"}}, "files": []}},
    )
    card = model_card(ckpt, "cmd")
    assert "None recorded (trained without `--val`)" in card and "`slice` degradation" in card
    assert "Scores on the validation files" not in card
