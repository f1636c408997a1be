"""``geo-med-sr sharpen`` end to end: real files in, one COG out, on the exact guide grid."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from s2_fixtures import S2_10, read, s2_folder, scene_arrays, write_band

from geo_med_sr.cli.main import main
from geo_med_sr.errors import InputError, OutputError
from geo_med_sr.sharpening.pipeline import sharpen


def test_s2_folder_output_is_on_the_10m_grid_with_names_wavelengths_and_scl(tmp_path):
    folder = s2_folder(tmp_path / "S2X_TEST")
    out = tmp_path / "sharp.tif"
    result = sharpen(folder, out, method="glp", progress=False)
    values, info = read(out)
    with rasterio.open(folder / "B02.tif") as ref:
        assert info["transform"] == ref.transform and values.shape[1:] == (ref.height, ref.width)
    names = ["B01", *S2_10[:3], "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"]
    assert list(info["descriptions"]) == names == result.bands
    assert info["tags"][4]["WAVELENGTH"] == "705" and info["tags"][4]["WAVELENGTH_UNITS"] == "nm"
    assert info["tags"][-1]["CATEGORICAL"] == "YES"
    with rasterio.open(folder / "B03.tif") as b03, rasterio.open(folder / "SCL.tif") as scl:
        np.testing.assert_array_equal(values[2], b03.read(1))  # 10 m bands copied exactly
        np.testing.assert_array_equal(values[-1], np.repeat(np.repeat(scl.read(1), 2, 0), 2, 1))  # nearest
    provenance = json.loads(info["meta"]["GEO_MED_SR_GROUPS"])
    assert [g["ratio"] for g in provenance] == [[2, 2], [6, 6]]
    assert provenance[0]["guides"] == list(S2_10)


def test_landsat_half_pixel_pair_output_on_pan_grid_without_shift(tmp_path):
    """MS = pan-grid truth block-averaged on a grid 7.5 m east and north (USGS): bicubic must not shift it."""
    n = 40
    x = np.arange(2 * n + 1)
    rows, cols = np.meshgrid(x, x, indexing="ij")
    fine = 1000 + 3.0 * cols + 2.0 * rows  # linear on the 15 m half-grid: block means = centre values
    pan_t = Affine(15, 0, 389992.5, 0, -15, 5689207.5)
    pan = fine[1 : 2 * n + 1, : 2 * n].astype(np.int16)  # pan pixel (r, c) = half-grid (r + 1, c)
    ms = fine[:-1, 1:].reshape(n, 2, n, 2).mean((1, 3)).astype(np.int16)
    write_band(tmp_path / "pan.tif", pan, pan_t, crs="EPSG:32632", nodata=None)
    write_band(
        tmp_path / "ms.tif", ms, pan_t * Affine.translation(0.5, -0.5) * Affine.scale(2), crs="EPSG:32632", nodata=None
    )
    out = tmp_path / "ps.tif"
    sharpen(tmp_path / "ms.tif", out, pan=tmp_path / "pan.tif", method="bicubic", progress=False)
    values, info = read(out)
    assert info["transform"] == pan_t and values.shape == (1, 2 * n, 2 * n)
    truth = 1000 + 3.0 * (np.arange(2 * n)[None, :] + 0.5) + 2.0 * (np.arange(2 * n)[:, None] + 0.5)
    # with the half-pixel offset honoured, a linear field comes back at the pan centres (to DN rounding)
    assert np.abs(values[0, 4:-4, 4:-4] - truth[4:-4, 4:-4]).max() <= 1.0


def test_grids_that_do_not_nest_are_refused_with_numbers(tmp_path):
    write_band(tmp_path / "pan.tif", np.ones((30, 30), np.uint16), Affine(10, 0, 0, 0, -10, 300))
    write_band(tmp_path / "ms.tif", np.ones((12, 12), np.uint16), Affine(25, 0, 0, 0, -25, 300))
    with pytest.raises(InputError, match="2.5 times"):
        sharpen(tmp_path / "ms.tif", tmp_path / "o.tif", pan=tmp_path / "pan.tif", method="bicubic")
    write_band(tmp_path / "ms2.tif", np.ones((15, 15), np.uint16), Affine(20, 0, 0, 0, -20, 300), crs="EPSG:32633")
    with pytest.raises(InputError, match="EPSG:32633"):
        sharpen(tmp_path / "ms2.tif", tmp_path / "o.tif", pan=tmp_path / "pan.tif", method="bicubic")
    assert not (tmp_path / "o.tif").exists()


def l2a_safe(root: Path, baseline: str, offsets: bool, n: int = 48) -> Path:
    """A SAFE L2A tree (JPEG 2000 bands in R10m/R20m, MTD with baseline and BOA offsets) whose DN are
    reflectance x1e4 + 1000 for baseline >= 04.00."""
    safe = root / f"S2B_MSIL2A_20220101T000000_N{baseline.replace('.', '')}_R001_T49JGM_20220101T000000.SAFE"
    img = safe / "GRANULE" / "L2A_T49JGM_A000001_20220101T000000" / "IMG_DATA"
    add = 1000 if baseline >= "04.00" else 0
    for name, data in scene_arrays(n).items():
        res = 10 * n // data.shape[0]
        folder = img / f"R{res}m"
        folder.mkdir(parents=True, exist_ok=True)
        write_band(
            folder / f"T49JGM_20220101T000000_{name}_{res}m.jp2",
            np.round(data + add).astype(np.uint16),
            Affine(res, 0, 600000, 0, -res, 7100000),
            driver="JP2OpenJPEG",
        )
    lists = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13)) if offsets else ""
    (safe / "MTD_MSIL2A.xml").write_text(
        '<?xml version="1.0"?><n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/x">'
        f"<General_Info><Product_Info><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>"
        "<Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>"
        "<BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>"
        f"<BOA_ADD_OFFSET_VALUES_LIST>{lists}</BOA_ADD_OFFSET_VALUES_LIST>"
        "</Product_Image_Characteristics></General_Info></n1:Level-2A_User_Product>"
    )
    return safe


def test_l2a_offset_is_applied_before_sharpening_and_kept_in_the_output(tmp_path):
    new = l2a_safe(tmp_path / "a", "04.00", offsets=True)
    old = l2a_safe(tmp_path / "b", "02.14", offsets=False)
    out_new, out_old, out_wrong = tmp_path / "new.tif", tmp_path / "old.tif", tmp_path / "wrong.tif"
    bands = "B02,B03,B04,B08,B05,B06"  # two coarse bands: Brovey of one band is the pan itself
    sharpen(new, out_new, method="brovey", bands=bands, progress=False)
    sharpen(old, out_old, method="brovey", bands=bands, progress=False)
    sharpen(new, out_wrong, method="brovey", bands=bands, offset=0, progress=False)  # pretending no offset
    v_new, i_new = read(out_new)
    v_old, i_old = read(out_old)
    v_wrong, _ = read(out_wrong)
    assert i_new["scales"][0] == pytest.approx(1e-4) and i_new["offsets"][0] == pytest.approx(-0.1)
    assert json.loads(i_new["meta"]["GEO_MED_SR_PRODUCT"])["offset_source"] == "metadata"
    # Brovey is multiplicative: only with the offset removed first does the new product match the old one
    np.testing.assert_allclose(v_new.astype(float) - 1000, v_old, atol=1.0)
    assert np.abs(v_wrong[3].astype(float) - 1000 - v_old[3]).max() > 2  # B05, the sharpened band


def test_stac_item_with_remote_hrefs_reads_the_files_beside_it(tmp_path):
    folder = s2_folder(tmp_path / "item", scl=False)
    assets = {
        key: {
            "href": f"https://example.com/x/{band}.tif",
            "roles": ["data"],
            "eo:bands": [{"name": band}],
            "raster:bands": [{"scale": 0.0001, "offset": 0}],
        }
        for key, band in [("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"), ("rededge1", "B05")]
    }
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2X",
        "properties": {
            "platform": "sentinel-2b",
            "s2:processing_baseline": "03.01",
            "datetime": "2020-01-01T00:00:00Z",
        },
        "assets": assets,
        "geometry": None,
        "links": [],
    }
    (folder / "item.json").write_text(json.dumps(item))
    out = tmp_path / "o.tif"
    result = sharpen(folder / "item.json", out, method="bicubic", progress=False)
    assert result.bands == ["B02", "B03", "B04", "B05", "B08"]
    assert result.provenance["product"]["kind"] == "stac"


def test_self_stays_within_its_budget_and_steps_are_reproducible(tmp_path, monkeypatch):
    from geo_med_sr.sharpening import training

    class Clock:
        """A training clock that advances 0.5 s per reading: the budget, not the machine, ends training."""

        now = 0.0

        @classmethod
        def monotonic(cls) -> float:
            cls.now += 0.5
            return cls.now

    folder = s2_folder(tmp_path / "S2X", n=48, scl=False)
    out = tmp_path / "self.tif"
    with monkeypatch.context() as patch:
        patch.setattr(training, "time", Clock)
        result = sharpen(
            folder, out, method="self", budget=4.0, bands="B02,B03,B04,B08,B05,B06", device="cpu", progress=False
        )
    group = result.provenance["groups"][0]
    # readings at 0.5 (start), 1.0, ..., 4.0 s: 7 steps run before 4 s have passed, the 8th is not started
    assert group["steps"] == 7 and result.timings["B05,B06"]["train"] <= 4.0 + 0.5
    assert "train_seconds" not in group and group["steps_from"] == "--budget"  # no wall-clock time in the file
    runs = []
    for k in range(2):
        path = tmp_path / f"steps{k}.tif"
        sharpen(folder, path, method="self", steps=6, bands="B02,B03,B04,B08,B05", device="cpu", progress=False)
        runs.append(read(path)[0])
        assert read(path)[1]["meta"]["GEO_MED_SR_GROUPS"].count('"steps": 6') == 1
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.slow
def test_output_is_a_valid_cog_and_overwrite_only_replaces_ours(tmp_path):
    folder = s2_folder(tmp_path / "S2X", scl=False)
    out = tmp_path / "o.tif"
    sharpen(folder, out, method="bicubic", progress=False)
    with pytest.raises(OutputError, match="--overwrite"):
        sharpen(folder, out, method="bicubic", progress=False)
    sharpen(folder, out, method="bicubic", overwrite=True, progress=False)
    user = tmp_path / "user.tif"
    shutil.copy(folder / "B02.tif", user)
    with pytest.raises(OutputError):
        sharpen(folder, user, method="bicubic", overwrite=True, progress=False)
    np.testing.assert_array_equal(read(user)[0], read(folder / "B02.tif")[0])
    from rio_cogeo.cogeo import cog_validate

    valid, errors, _ = cog_validate(str(out))
    assert valid, errors
    if shutil.which("gdalinfo"):
        info = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True, check=True).stdout)
        assert info["geoTransform"] == [600000.0, 10.0, 0.0, 7100000.0, 0.0, -10.0]
        assert [b["description"] for b in info["bands"]][:2] == ["B01", "B02"]


def test_cli_sharpen_and_its_one_line_errors(tmp_path, capsys):
    folder = s2_folder(tmp_path / "S2X", scl=False)
    out = tmp_path / "o.tif"
    assert main(["sharpen", str(folder), str(out), "--method", "glp", "--quiet"]) == 0
    assert out.exists()
    assert main(["sharpen", str(tmp_path / "missing"), str(tmp_path / "p.tif"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    assert main(["sharpen", str(folder), str(tmp_path / "q.tif"), "--bands", "B99", "--quiet"]) == 2
    assert "B99" in capsys.readouterr().err


def test_stage_seconds_are_reported_within_the_wall_time_and_never_written(tmp_path, capsys):
    import time

    folder = s2_folder(tmp_path / "S2X", scl=False)
    out = tmp_path / "o.tif"
    start = time.perf_counter()
    assert main(["sharpen", str(folder), str(out), "--method", "glp"]) == 0
    wall = time.perf_counter() - start
    (line,) = [s for s in capsys.readouterr().out.splitlines() if s.startswith("seconds: ")]
    stages = {name: float(value) for name, value in (item.split() for item in line[len("seconds: ") :].split(", "))}
    assert list(stages) == ["prepare", "train", "read", "inputs", "network", "write", "cog", "total"]
    assert min(stages.values()) >= 0 and stages["total"] <= wall + 0.005  # the line rounds to 10 ms
    # the stages are disjoint parts of the call (rounded to 10 ms in the line)
    assert sum(v for k, v in stages.items() if k != "total") <= stages["total"] + 0.04
    tags = read(out)[1]["meta"].values()  # no wall-clock time in the file: the same job gives the same bytes
    assert not any(f'"{stage}"' in value for value in tags for stage in ("stages", "prepare", "total"))
    result = sharpen(folder, tmp_path / "p.tif", method="bicubic", cog=False, progress=False)
    assert set(result.stages) == set(stages) and result.stages["cog"] <= result.stages["total"]


def test_evaluate_sharpen_reports_every_metric(tmp_path, capsys):
    folder = s2_folder(tmp_path / "S2X", n=96, scl=False)
    report = tmp_path / "r.json"
    status = main(
        [
            "evaluate",
            "--sharpen",
            str(folder),
            "--method",
            "bicubic",
            "--method",
            "glp",
            "--ratio",
            "2",
            "--json",
            str(report),
        ]
    )
    assert status == 0
    result = json.loads(report.read_text())
    scores = result["groups"][0]["methods"]
    for name in ("bicubic", "glp"):
        assert {"ergas", "sam", "q2n", "psnr_mean", "ssim_mean"} <= set(scores[name])
        assert len(scores[name]["bands"]) == 6 and "uiqi" in scores[name]["bands"][0]
    assert scores["glp"]["psnr_mean"] > scores["bicubic"]["psnr_mean"]
    assert "glp" in capsys.readouterr().out


def test_bundled_s2_model_sharpens_the_shipped_crop_and_refuses_other_bands(tmp_path):
    from geo_med_sr.cli.demo import sample_s2
    from geo_med_sr.errors import ModelError
    from geo_med_sr.models.bundled import find

    if find("s2-guided-x2") is None:
        pytest.skip("bundled guided weights not installed (make weights-sharpen)")
    out = tmp_path / "m.tif"
    result = sharpen(sample_s2(), out, method="model", bands="B02,B03,B04,B08,B05,B06,B07,B8A,B11,B12", progress=False)
    group = result.provenance["groups"][0]
    assert group["model"] == "s2-guided-x2" and len(group["model_sha256"]) == 64
    values, info = read(out)
    assert values.shape == (10, 192, 192) and info["transform"].a == 10.0
    with pytest.raises(ModelError, match="4 guides and 6 bands"):
        sharpen(sample_s2(), tmp_path / "n.tif", method="model", bands="B02,B03,B04,B08,B05", progress=False)
    assert not (tmp_path / "n.tif").exists()


def test_evaluate_sharpen_qnr_at_full_resolution(tmp_path):
    from geo_med_sr.sharpening.evaluate import evaluate_sharpening

    folder = s2_folder(tmp_path / "S2X", n=96, scl=False)
    result = evaluate_sharpening([folder], methods=["bicubic", "glp"], ratios=[2], qnr=True)
    for name in ("bicubic", "glp"):
        m = result["groups"][0]["methods"][name]
        assert 0.0 <= m["qnr"] <= 1.0 and m["qnr_d_lambda"] >= 0.0 and m["qnr_d_s"] >= 0.0
        assert m["qnr"] == pytest.approx((1 - m["qnr_d_lambda"]) * (1 - m["qnr_d_s"]), abs=1e-9)
