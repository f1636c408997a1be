"""GeoTIFF through the whole tool: exact transforms, streaming, nodata, COG, errors."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from cli_fixtures import assert_clean_failure, run_cli
from conftest import shared_path
from geotiff_fixtures import lr_file as _lr_file
from geotiff_fixtures import make_geotiff
from geotiff_fixtures import method_config as _config
from rio_cogeo.cogeo import cog_validate

from geo_med_sr import io
from geo_med_sr.degrade import block_average
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve

METHODS = ["nearest", "linear", "bspline", "model"]


def transform_error_in_pixels(t_a: Affine, t_b: Affine) -> float:
    """Largest displacement of the pixel-grid corners between two transforms, in pixels of ``t_a``."""
    inv = ~t_a
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    return max(max(abs(u - c), abs(v - r)) for c, r in corners for u, v in [inv @ (t_b @ (c, r))])


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_upscale_back_to_the_original_transform(tmp_path, scale, method):
    hr_path, lr_path = _lr_file(tmp_path, scale)
    result = super_resolve(lr_path, tmp_path / "sr.tif", scale, _config(method, tmp_path, scale), progress=False)
    with rasterio.open(hr_path) as hr, rasterio.open(result.output) as sr, rasterio.open(lr_path) as lr:
        assert (sr.width, sr.height) == (lr.width * scale, lr.height * scale)
        assert transform_error_in_pixels(hr.transform, sr.transform) <= 1e-9
        assert sr.crs == hr.crs and sr.dtypes == hr.dtypes and sr.nodata == hr.nodata
        assert sr.descriptions == hr.descriptions
        tags = sr.tags()
        assert tags["SENSOR"] == "synthetic" and tags["GEO_MED_SR_METHOD"] == method
        assert "GEO_MED_SR_SCALE" in tags
        if method == "model":
            assert len(tags["GEO_MED_SR_WEIGHTS_SHA256"]) == 64
        # nodata mask = LR mask upsampled by nearest; valid pixels never hold nodata
        lr_valid = lr.read(1) != lr.nodata
        expected = np.repeat(np.repeat(lr_valid, scale, 0), scale, 1)
        sr_data = sr.read()
        np.testing.assert_array_equal(np.all(sr_data != sr.nodata, axis=0), expected)
        assert np.all(sr_data[:, ~expected] == sr.nodata)
    valid, errors, _ = cog_validate(str(result.output))
    assert valid and not errors


@pytest.mark.parametrize("method", ["bspline", "model"])
def test_tiled_equals_whole_image(tmp_path, method):
    _, lr_path = _lr_file(tmp_path, 2, size=(70, 54))
    outs = []
    for i, patch in enumerate([5, 11, 1000]):
        config = _config(method, tmp_path, 2).updated(inference={"patch_size": patch}, output={"dtype": "float32"})
        outs.append(
            rasterio.open(super_resolve(lr_path, tmp_path / f"o{i}.tif", 2, config, progress=False).output).read()
        )
    for out in outs[:2]:
        assert np.nanmax(np.abs(out - outs[2])) <= 1e-5 * np.nanmax(np.abs(outs[2]))


@pytest.mark.parametrize("method", ["bspline", "model"])
def test_values_under_nodata_do_not_leak_into_valid_pixels(tmp_path, method):
    """Whatever the raw values under nodata pixels, valid output pixels are identical."""
    _, lr_path = _lr_file(tmp_path, 2)
    with rasterio.open(lr_path) as src:
        profile, data = src.profile, src.read()
    hidden = data.copy()
    mask = np.all(data == profile["nodata"], axis=0)
    assert mask.any()
    config = _config(method, tmp_path, 2).updated(output={"dtype": "float32"})  # no rounding/nudging
    a = super_resolve(lr_path, tmp_path / "a.tif", 2, config, progress=False).output
    # same file with a different nodata value and garbage under it
    profile.update(nodata=65535)
    hidden[:, mask] = 65535
    with rasterio.open(tmp_path / "lr_b.tif", "w", **profile) as dst:
        dst.write(hidden)
    b = super_resolve(tmp_path / "lr_b.tif", tmp_path / "b.tif", 2, config, progress=False).output
    out_a, out_b = rasterio.open(a).read(), rasterio.open(b).read()
    valid = np.all(out_a != 0, axis=0)
    np.testing.assert_array_equal(out_a[:, valid], out_b[:, valid])
    assert np.all(out_b[:, ~valid] == 65535)


def test_never_reads_the_whole_scene(tmp_path, monkeypatch):
    """Every read is one patch plus halo (or a bounded sample window), never the full raster."""
    from geo_med_sr.adapters.geotiff import GeoTiffSource

    make_geotiff(tmp_path / "big.tif", width=300, height=260)
    boxes = []
    original = GeoTiffSource.read

    def spy(self, box):
        boxes.append(tuple(b - a for a, b in box))
        return original(self, box)

    monkeypatch.setattr(GeoTiffSource, "read", spy)
    monkeypatch.setattr("geo_med_sr.inference.radiometry.sample_valid_values.__defaults__", (10_000, 64, 0))
    super_resolve(
        tmp_path / "big.tif", tmp_path / "o.tif", 2, _config("bspline", tmp_path, 2, patch_size=32), progress=False
    )
    assert boxes and max(w * h for w, h in boxes) <= (32 + 4 * 18) ** 2  # patch + halo (radius 18 + nodata fill 18)


def test_band_selection_and_info(tmp_path, capsys):
    src, _ = make_geotiff(tmp_path / "s.tif", width=20, height=16)
    out = tmp_path / "o.tif"
    code, _, _ = run_cli(
        capsys, "upscale", src, out, "--scale", "2", "--method", "nearest", "--bands", "3,1", "--quiet"
    )
    assert code == 0
    with rasterio.open(out) as o, rasterio.open(src) as s:
        assert o.count == 2 and o.descriptions == (s.descriptions[2], s.descriptions[0])
        np.testing.assert_array_equal(o.read(1)[::2, ::2], s.read(3))
    code, text, _ = run_cli(capsys, "info", src)
    assert code == 0
    for word in ("geotiff", "EPSG:32618", "bounds", "nodata", "(20, 16)", "blue"):
        assert word in text


@pytest.mark.parametrize("name", ["RGB.byte.tif", "LC08_232066_20190727.tif", "l8_B4.tif"])
def test_real_geotiff_round_trip(tmp_path, name):
    real = shared_path("geotiff", name)
    image = io.read(real)
    lr = block_average(image, 2)
    io.write(lr, tmp_path / "lr.tif")
    result = super_resolve(
        tmp_path / "lr.tif",
        tmp_path / "sr.tif",
        2,
        SRConfig().updated(model={"method": "bspline"}, inference={"patch_size": 128}),
        progress=False,
    )
    with rasterio.open(real) as ref, rasterio.open(result.output) as sr:
        assert transform_error_in_pixels(ref.transform, sr.transform) <= 1e-9
        assert sr.crs == ref.crs and sr.dtypes == ref.dtypes and sr.nodata == ref.nodata and sr.count == ref.count
        assert (sr.width, sr.height) == (ref.width // 2 * 2, ref.height // 2 * 2)
        ref_data = ref.read(window=((0, sr.height), (0, sr.width))).astype(np.float64)
        sr_data = sr.read().astype(np.float64)
        both = (
            np.all(ref_data != ref.nodata, axis=0) & np.all(sr_data != sr.nodata, axis=0)
            if ref.nodata is not None
            else np.ones(sr_data.shape[1:], bool)
        )
        err = np.abs(ref_data - sr_data)[:, both].mean()
        assert err < 0.2 * ref_data[:, both].std()  # a faithful reconstruction, not garbage
    valid, errors, _ = cog_validate(str(result.output))
    assert valid and not errors


def test_jpeg_renamed_tif(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "photo.tif"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src, format="JPEG")
    out = tmp_path / "o.tif"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, src, out, "not a GeoTIFF")


def test_truncated_tiff(tmp_path, capsys):
    full, _ = make_geotiff(tmp_path / "full.tif", width=200, height=150)
    src = tmp_path / "cut.tif"
    src.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "o.tif"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, src, out, "truncated")


@pytest.mark.parametrize("bands,problem", [(",", "band"), ("0", "band"), ("5", "out of range"), ("1,x", "band")])
def test_bad_band_selection(tmp_path, capsys, bands, problem):
    src, _ = make_geotiff(tmp_path / "s.tif", width=20, height=16)
    out = tmp_path / "o.tif"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear", "--bands", bands)
    assert_clean_failure(code, err, src, out, problem)


def test_geotiff_needs_a_tif_output(tmp_path, capsys):
    src, _ = make_geotiff(tmp_path / "s.tif", width=20, height=16)
    out = tmp_path / "o.nii.gz"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, out, out, "needs a .tif output")


@pytest.mark.slow
def test_disk_full_is_reported_cleanly(tmp_path):
    """A write that runs out of space (file-size limit) fails with one line, exit 2, no output."""
    import resource
    import signal
    import subprocess
    import sys

    noise = np.random.default_rng(0).integers(1, 60000, size=(4, 200, 220), dtype=np.uint16)
    src, _ = make_geotiff(tmp_path / "noise.tif", width=220, height=200, values=noise, nodata_region=False)
    out = tmp_path / "o.tif"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "geo_med_sr",
            "upscale",
            str(src),
            str(out),
            "--scale",
            "2",
            "--method",
            "nearest",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "disk" in lines[0].lower(), proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.tif"]
