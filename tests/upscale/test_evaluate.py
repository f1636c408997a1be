"""evaluate: PSNR matches an independent computation; consistency is measured; CLI works."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import oblique_affine, smooth_volume, write_nifti
from geotiff_fixtures import make_geotiff

from geo_med_sr.cli.main import main
from geo_med_sr.upscale.evaluate import evaluate


def independent_psnr(ref: np.ndarray, est: np.ndarray, region: np.ndarray, data_range: float) -> float:
    diff = (ref[:, region].astype(np.float64) - est[:, region].astype(np.float64)).ravel()
    return float(10 * np.log10(data_range**2 / np.mean(diff**2)))


@pytest.mark.slow
def test_psnr_matches_an_independent_computation_3d(tmp_path):
    path = write_nifti(tmp_path / "ref.nii.gz", smooth_volume((20, 18, 16)), oblique_affine())
    result = evaluate(path, "2", ["nearest", "bspline", "bspline-ibp"])
    arrays = result["_arrays"]
    hr, region = arrays["hr"], arrays["region"]
    data_range = float(hr.max() - hr.min())
    assert result["protocol"]["data_range"] == pytest.approx(data_range)
    assert not region[:2].any() and not region[:, :, -2:].any()  # border of `scale` pixels excluded
    for row in result["methods"]:
        expected = independent_psnr(hr, arrays["outputs"][row["method"]], region, data_range)
        assert row["psnr"] == pytest.approx(expected, abs=1e-4)
        assert 0 < row["ssim"] <= 1
    by_name = {r["method"]: r for r in result["methods"]}
    assert by_name["bspline-ibp"]["consistency"] < 1e-4 < by_name["bspline"]["consistency"]
    assert by_name["bspline"]["psnr"] > by_name["nearest"]["psnr"]
    gains = result["gains_db"]
    assert gains["bspline"]["over_classical"] == pytest.approx(0.0)  # bspline is the best classical here
    assert gains["bspline-ibp"]["over_bspline_ibp"] == pytest.approx(0.0)
    assert gains["nearest"]["over_bspline_ibp"] == pytest.approx(
        by_name["nearest"]["psnr"] - by_name["bspline-ibp"]["psnr"]
    )


@pytest.mark.slow
def test_masked_geotiff_and_cli_outputs(tmp_path, capsys):
    src, _ = make_geotiff(tmp_path / "ref.tif", width=64, height=48)
    code = main(
        [
            "evaluate",
            str(src),
            "--scale",
            "2",
            "--method",
            "bicubic",
            "--method",
            "bspline",
            "--consistency",
            "--json",
            str(tmp_path / "s.json"),
            "--plot",
            str(tmp_path / "s.png"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "bspline+ibp" in text and "gain dB" in text and "vs ibp" in text
    data = json.loads((tmp_path / "s.json").read_text())
    assert [m["method"] for m in data["methods"]] == ["bicubic", "bspline", "bicubic+ibp", "bspline+ibp"]
    assert (tmp_path / "s.png").stat().st_size > 10_000
    result = evaluate(src, 2, ["bspline"])
    region = result["_arrays"]["region"]
    assert region.sum() < region.size  # nodata pixels are excluded


def test_model_method_without_a_matching_checkpoint(tmp_path, capsys):
    path = write_nifti(tmp_path / "ref.nii.gz", smooth_volume((9, 9, 9)), oblique_affine())
    assert main(["evaluate", str(path), "--scale", "3", "--method", "model"]) == 2  # nothing bundled for x3
    err = capsys.readouterr().err
    assert "no bundled model" in err and "--model" in err


@pytest.mark.slow
def test_ensemble_applies_to_learned_methods_only(tmp_path):
    from geo_med_sr.upscale.config import SRConfig

    src, _ = make_geotiff(tmp_path / "ref.tif", width=48, height=40)
    config = SRConfig().updated(model={"budget": 1.0})
    result = evaluate(src, 2, ["bspline", "self"], ensemble=True, config=config)
    assert [m["method"] for m in result["methods"]] == ["bspline", "self+ens"]
    plain = evaluate(src, 2, ["bspline"], config=config)
    np.testing.assert_array_equal(result["_arrays"]["outputs"]["bspline"], plain["_arrays"]["outputs"]["bspline"])
