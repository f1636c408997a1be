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


def test_guided_card_has_the_one_card_layout(tmp_path):
    """The guided card is written by the same layout as the SR card: title, facts, command, sections, data."""
    from geo_med_sr.models.card import guided_card
    from geo_med_sr.networks.guided import GuidedNet

    ckpt = tmp_path / "g.safetensors"
    extra = {
        "task": "sharpen",
        "targets": ["B05"],
        "guides": ["B02", "B03"],
        "ratio": 2,
        "files_sha256": {"/d/S2X/B05.tif": "cd" * 32},
        "train_config": {"region": [0.0, 0.5]},
        "command": "geo-med-sr train --config g.yaml",
        "steps": 3,
        "loss": 0.125,
    }
    save_checkpoint(GuidedNet(1, 2, 2, 4, 1, False), ckpt, extra)
    lines = guided_card(ckpt).splitlines()
    assert lines[:2] == ["# g", ""] and lines[-2:] == ["", lines[-1]] and lines[-1].startswith("Sources and licences")
    fence = lines.index("```bash")
    assert lines[fence - 1] == "" and lines[fence + 1 : fence + 3] == ["geo-med-sr train --config g.yaml", "```"]
    assert "- Only the columns [0.0, 0.5] (fractions) of each scene were used; the rest is held out." in lines
    data = lines.index("## Training data (SHA-256)")
    assert lines[data - 1] == "" and lines[data + 4] == f"| S2X/B05.tif | `{'cd' * 32}` |"
