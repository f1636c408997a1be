"""Outputs of the real CLI checked by real clients: GDAL (gdalinfo, its COG validator) and rio-cogeo.

Each test runs ``geo-med-sr upscale IN OUT --scale 2 --method bicubic --quiet`` and reads the
result with the client itself; a client that is not installed skips the test with the command
that installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import shared_path
from geotiff_fixtures import make_geotiff, rotated_transform, smooth_bands
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import Affine

SYSTEM_PYTHON = "/usr/bin/python3"
GDAL_VALIDATOR = "osgeo_utils.samples.validate_cloud_optimized_geotiff"
SCALE = 2


def _cli() -> str:
    exe = Path(sys.executable).with_name("geo-med-sr")
    if exe.exists():
        return str(exe)
    found = shutil.which("geo-med-sr")
    if not found:
        pytest.skip("the geo-med-sr command is not installed (pip install -e .)")
    return found


def _gdalinfo(*args: str) -> dict:
    if not shutil.which("gdalinfo"):
        pytest.skip("gdalinfo not installed (apt-get install gdal-bin)")
    done = subprocess.run(["gdalinfo", "-json", *args], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def _upscale(src: Path, dst: Path, *extra: str) -> Path:
    done = subprocess.run(
        [_cli(), "upscale", str(src), str(dst), "--scale", str(SCALE), "--method", "bicubic", "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dst


def _gdal_cog_report(path: Path) -> str:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(
            f"{SYSTEM_PYTHON} not present: GDAL's COG validator needs python3-gdal (apt-get install python3-gdal)"
        )
    probe = subprocess.run([SYSTEM_PYTHON, "-c", f"import {GDAL_VALIDATOR}"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("python3-gdal not installed (apt-get install python3-gdal)")
    done = subprocess.run([SYSTEM_PYTHON, "-m", GDAL_VALIDATOR, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _rio_cogeo_validate(path: Path) -> None:
    rio = Path(sys.executable).with_name("rio")
    if not rio.exists():
        pytest.skip("the rio command is not installed (pip install rio-cogeo)")
    done = subprocess.run([str(rio), "cogeo", "validate", "--strict", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "is a valid cloud optimized GeoTIFF" in done.stdout, done.stdout + done.stderr


def _inputs(tmp_path: Path, name: str) -> Path:
    """A GeoTIFF input: a real one from the shared data, or a synthetic one with nodata."""
    if name.startswith("real:"):
        return shared_path("geotiff", name[5:])
    transform = rotated_transform() if name == "rotated" else Affine(30.0, 0.0, 500_010.0, 0.0, -30.0, 4_499_970.0)
    path, _ = make_geotiff(tmp_path / f"{name}.tif", width=45, height=38, transform=transform, nodata=0)
    return path


CASES = ["real:RGB.byte.tif", "real:LC08_232066_20190727.tif", "rotated", "north-up"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_gdal_and_rio_cogeo_accept_the_output_and_agree_with_numpy(tmp_path, name):
    src = _inputs(tmp_path, name)
    if not name.startswith("real:"):
        _gdalinfo("-stats", str(src))  # GDAL stores the input's statistics in in.tif.aux.xml
        assert "STATISTICS_MEAN" in _gdalinfo(str(src))["bands"][0]["metadata"][""]
    out = _upscale(src, tmp_path / "out.tif")

    report = _gdal_cog_report(out)
    assert "is a valid cloud optimized GeoTIFF" in report
    assert "error" not in report.lower() and "warning" not in report.lower(), report
    _rio_cogeo_validate(out)

    before = _gdalinfo(str(out))
    for band in before["bands"]:
        assert not [k for k in band.get("metadata", {}).get("", {}) if k.startswith("STATISTICS_")], band
    assert not [k for k in before.get("metadata", {}).get("", {}) if k.startswith("STATISTICS_")]

    with rasterio.open(src) as lr:
        a, b, c, d, e, f = tuple(lr.transform)[:6]
    assert before["geoTransform"] == [c, a / SCALE, b / SCALE, f, d / SCALE, e / SCALE]

    stats = _gdalinfo("-stats", str(out))
    with rasterio.open(out) as sr:
        data = sr.read()
        for i, band in enumerate(stats["bands"]):
            values = data[i][sr.read_masks(i + 1) != 0].astype(np.float64)
            stored = band["metadata"][""]  # full precision (the JSON numbers are rounded to 3 decimals)
            got = [float(stored[f"STATISTICS_{k}"]) for k in ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV")]
            want = [values.min(), values.max(), values.mean(), values.std()]
            np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.slow
def test_gdalinfo_sees_the_output_mask(tmp_path):
    src = tmp_path / "masked.tif"
    mask = np.full((30, 40), 255, np.uint8)
    mask[4:11, 6:20] = 0
    profile = dict(driver="GTiff", width=40, height=30, count=2, dtype="uint16", crs="EPSG:32618")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(src, "w", transform=rotated_transform(), **profile) as dst:
            dst.write(smooth_bands(2, 30, 40))
            dst.write_mask(mask)
    out = _upscale(src, tmp_path / "out.tif")
    info = _gdalinfo(str(out))
    assert all(band["mask"]["flags"] == ["PER_DATASET"] for band in info["bands"])
    assert "is a valid cloud optimized GeoTIFF" in _gdal_cog_report(out)
    _rio_cogeo_validate(out)
    if shutil.which("gdal_translate"):  # GDAL's own reading of the mask band, pixel by pixel
        subprocess.run(["gdal_translate", "-q", "-b", "mask,1", str(out), str(tmp_path / "m.tif")], check=True)
        with rasterio.open(tmp_path / "m.tif") as m:
            np.testing.assert_array_equal(m.read(1), np.repeat(np.repeat(mask, SCALE, 0), SCALE, 1))


@pytest.mark.slow
def test_gdalinfo_sees_the_scaled_gcps(tmp_path):
    src = tmp_path / "gcp.tif"
    gcps = [
        GroundControlPoint(row=0.0, col=0.0, x=500_000.0, y=4_500_000.0, z=0.0),
        GroundControlPoint(row=30.0, col=0.0, x=500_100.0, y=4_499_100.0, z=0.0),
        GroundControlPoint(row=0.0, col=40.0, x=501_200.0, y=4_500_050.0, z=0.0),
        GroundControlPoint(row=12.5, col=33.25, x=500_900.0, y=4_499_600.0, z=7.0),
    ]
    with rasterio.open(src, "w", driver="GTiff", width=40, height=30, count=1, dtype="uint16") as dst:
        dst.write(smooth_bands(1, 30, 40))
        dst.gcps = (gcps, CRS.from_epsg(32618))
    out = _upscale(src, tmp_path / "out.tif")
    info = _gdalinfo(str(out))
    assert "geoTransform" not in info
    assert 'ID["EPSG",32618]' in info["gcps"]["coordinateSystem"]["wkt"]
    got = [(g["pixel"], g["line"], g["x"], g["y"], g["z"]) for g in info["gcps"]["gcpList"]]
    assert got == [(g.col * SCALE, g.row * SCALE, g.x, g.y, g.z) for g in gcps]
    assert "is a valid cloud optimized GeoTIFF" in _gdal_cog_report(out)
