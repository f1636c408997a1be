"""Issue 25, "Trust on the new surfaces": hostile inputs of sharpening, classical upscale, evaluate and train.

Each class of bad input is refused in one line (exit 2) before any output exists, or, for NaN in
float bands, handled by one policy: a NaN or infinite pixel is nodata, it stays NaN in its own band
of the output (never 0, never an invented value) and never changes another band's copied values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_fixtures import assert_clean_failure, run_cli
from geotiff_fixtures import make_geotiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from s2_fixtures import S2_10, S2_20, read, scene_arrays, write_band

from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.inference.arrays import ArraySource
from geo_med_sr.metrics.image import data_range, psnr
from geo_med_sr.multires import Grid
from geo_med_sr.sharpening import pipeline
from geo_med_sr.sharpening.pipeline import sharpen
from geo_med_sr.sharpening.scene import Band, band_stats
from geo_med_sr.training.config import MAX_WEIGHTS, load_training_config

X0, Y0 = 600000.0, 7100000.0
#: a few examples per property: each writes small files
QUICK = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _transform(step: float) -> Affine:
    return Affine(step, 0, X0, 0, -step, Y0)


def _float_folder(root: Path, n: int = 48, holes: dict[str, list[tuple[int, int]]] | None = None) -> Path:
    """An S2-like folder of float32 10/20 m bands with **no declared nodata**; ``holes``: band -> its
    ``(row, col)`` pixels set to NaN (or to the value given as a third item)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in scene_arrays(n).items():
        if name not in (*S2_10, *S2_20):
            continue
        data = data.astype(np.float32)
        for hole in (holes or {}).get(name, []):
            data[hole[0], hole[1]] = hole[2] if len(hole) > 2 else np.nan
        write_band(root / f"{name}.tif", data, _transform(10 * n / data.shape[0]), nodata=None)
    return root


# ------------------------------------------------------------------ a guide finer than every band


@QUICK
@given(
    band_step=st.sampled_from([10, 20, 30]),
    times=st.sampled_from([1, 2, 3]),
    role=st.sampled_from(["guide", "pan"]),
)
def test_a_guide_not_finer_than_every_band_is_refused_with_both_pixel_sizes(
    tmp_path_factory, capsys, band_step, times, role
):
    """A --guide/--pan on the bands' grid or coarser sharpens nothing: the old code exited 0 with a
    cropped copy of the bands (the guide itself became the band sharpened, and was not written)."""
    tmp = tmp_path_factory.mktemp("guide")
    n, rng = 12 * times, np.random.default_rng(0)
    for name in ("B02", "B03"):
        write_band(tmp / f"{name}.tif", (1000 + 100 * rng.random((n, n))).astype(np.uint16), _transform(band_step))
    m = n // times
    write_band(tmp / "g.tif", (1000 + 100 * rng.random((m, m))).astype(np.uint16), _transform(band_step * times))
    out = tmp / "o.tif"
    args = ["sharpen", tmp / "B02.tif", tmp / "B03.tif", out, f"--{role}", tmp / "g.tif", "--method", "bicubic"]
    code, _, err = run_cli(capsys, *args, "--quiet")
    assert_clean_failure(code, err, tmp / "g.tif", out, "must be finer than every band it sharpens")
    assert f"pixels of {band_step * times:g} CRS units" in err and f"'s {band_step:g};" in err


def test_a_finer_guide_is_still_accepted(tmp_path):
    """The refusal is only for guides that are not finer: a 10 m guide for 20 m bands runs."""
    rng = np.random.default_rng(1)
    write_band(tmp_path / "ms.tif", (1000 + 100 * rng.random((12, 12))).astype(np.uint16), _transform(20))
    write_band(tmp_path / "g.tif", (1000 + 100 * rng.random((24, 24))).astype(np.uint16), _transform(10))
    result = sharpen(
        tmp_path / "ms.tif", tmp_path / "o.tif", guide=tmp_path / "g.tif", method="bicubic", progress=False
    )
    assert result.shape == (24, 24)


# ------------------------------------------------------------------ NaN in float bands: nodata, kept as NaN


def test_nan_in_float_bands_stays_nan_in_its_own_band_and_nowhere_else(tmp_path):
    """No declared nodata, NaN in a 10 m band and in a 20 m band: the old code wrote 0 in the 10 m band
    (copied 'exactly') and an invented value in the 20 m band."""
    n = 48
    folder = _float_folder(tmp_path / "S2", n, {"B02": [(10, 30)], "B05": [(5, 7)]})
    clean = _float_folder(tmp_path / "S2clean", n)
    out, ref = tmp_path / "o.tif", tmp_path / "ref.tif"
    sharpen(folder, out, method="bicubic", progress=False)
    sharpen(clean, ref, method="bicubic", progress=False)
    values, info = read(out)
    truth, _ = read(ref)
    names = list(info["descriptions"])
    assert np.isnan(info["nodata"]), "a float output marks invalid pixels as NaN nodata"
    b02, b03, b05, b06 = (names.index(b) for b in ("B02", "B03", "B05", "B06"))
    # the 10 m bands: NaN where the input was NaN, every other value copied bit for bit, no 0 invented
    assert np.isnan(values[b02, 10, 30])
    src = scene_arrays(n)
    for name in S2_10:
        k = names.index(name)
        keep = ~np.isnan(values[k])
        np.testing.assert_array_equal(values[k][keep], src[name].astype(np.float32)[keep])
        assert keep.sum() == n * n - (name == "B02")
    # the 20 m band: NaN on the 2 x 2 output pixels of its NaN pixel (and under the NaN guide pixel), nowhere else
    hole = np.zeros((n, n), bool)
    hole[10:12, 14:16] = True
    hole[10, 30] = True
    np.testing.assert_array_equal(np.isnan(values[b05]), hole)
    # another 20 m band is not changed by B05's NaN: NaN only under the NaN guide pixel, else the clean run's values
    others = np.isnan(values[b06])
    assert others.sum() == 1 and others[10, 30]
    np.testing.assert_array_equal(values[b06][~others], truth[b06][~others])
    assert not (values[~np.isnan(values)] == 0).any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_band_with_no_finite_pixel_is_refused_before_any_work(tmp_path, monkeypatch, bad):
    """All NaN/inf B05: one line naming the band, before the inputs are hashed (the old code hashed them first)."""
    n = 24
    holes = {"B05": [(r, c, bad) for r in range(n // 2) for c in range(n // 2)]}
    folder = _float_folder(tmp_path / "S2", n, holes)

    def no_work(*_args, **_kwargs):
        raise AssertionError("the inputs were hashed before the band was refused")

    monkeypatch.setattr(pipeline, "sharpen_request", no_work)
    with pytest.raises(InputError, match=r"band B05 has no valid pixel \(every pixel is nodata, masked, NaN or inf"):
        sharpen(folder, tmp_path / "o.tif", method="bicubic", progress=False)
    assert not (tmp_path / "o.tif").exists()


def test_band_stats_look_beyond_the_sample_before_refusing_a_band(tmp_path):
    """A large band whose only valid pixels lie between the sampled tiles is not 'all nodata' (the old
    code refused it: its even grid of 2 x 2 tiles missed the valid middle)."""
    w = h = 1100
    values = np.full((1, w, h), np.nan)
    values[0, 540:560, 540:560] = 7.0
    values[0, 545, 545] = 9.0
    band = Band("B05", "spectral", Grid(None, (20.0, 0, 0, 0, -20.0, 0), (w, h)), ArraySource(values))
    stats = band_stats(band)
    assert stats["mean"] == pytest.approx((399 * 7 + 9) / 400)
    values[0, 545, 545] = np.nan
    values[0, 540:560, 540:560] = np.inf
    with pytest.raises(InputError, match="band B05 has no valid pixel"):
        band_stats(Band("B05", "spectral", band.grid, ArraySource(values)))


# ------------------------------------------------------------------ evaluate on a constant reference


def test_psnr_and_ssim_refuse_a_constant_reference():
    """The old data_range returned 1.0 for a constant image: PSNR came out as a large made-up number."""
    reference = np.full((1, 16, 16), 5.0)
    estimate = reference + 1e-4
    assert data_range(reference) == 0.0
    with pytest.raises(InputError, match="PSNR and SSIM are undefined"):
        psnr(reference, estimate, data_range=data_range(reference))
    with pytest.raises(InputError, match="PSNR and SSIM are undefined"):
        psnr(reference, estimate)


@QUICK
@given(value=st.sampled_from([0, 1, 400, 65535]), method=st.sampled_from(["bicubic", "nearest", "bspline"]))
def test_evaluate_on_a_constant_reference_is_refused(tmp_path_factory, capsys, value, method):
    """`evaluate ref.tif --scale 2` on one value: refused in one line naming the file (the old code printed ~85 dB)."""
    tmp = tmp_path_factory.mktemp("const")
    ref, _ = make_geotiff(tmp / "ref.tif", 24, 24, count=1, nodata=None, values=np.full((1, 24, 24), value))
    report = tmp / "r.json"
    code, out, err = run_cli(capsys, "evaluate", ref, "--scale", "2", "--method", method, "--json", report)
    assert_clean_failure(code, err, ref, report, "PSNR and SSIM are undefined")
    assert "dB" not in out


def test_evaluate_sharpen_refuses_a_constant_band_naming_it(tmp_path, capsys):
    folder = _float_folder(tmp_path / "S2", 96)
    const = np.full((48, 48), 1234.0, np.float32)
    write_band(folder / "B06.tif", const, _transform(20), nodata=None)
    report = tmp_path / "r.json"
    code, out, err = run_cli(
        capsys, "evaluate", "--sharpen", folder, "--method", "bicubic", "--ratio", "2", "--json", report
    )
    assert_clean_failure(code, err, folder, report, "band B06 holds a single value (")
    assert "PSNR and SSIM are undefined" in err


# ------------------------------------------------------------------ classical upscale of an all-nodata image


@QUICK
@given(
    method=st.sampled_from(["nearest", "linear", "bicubic", "bspline", "bspline-ibp"]),
    kind=st.sampled_from(["nodata", "nan", "inf"]),
)
def test_upscale_refuses_an_image_with_no_valid_pixel_for_every_method(tmp_path_factory, capsys, method, kind):
    """The old code wrote an all-nodata output with exit 0 for the classical methods."""
    tmp = tmp_path_factory.mktemp("empty")
    if kind == "nodata":
        src, _ = make_geotiff(tmp / "in.tif", 20, 16, count=2, nodata=7, values=np.full((2, 16, 20), 7))
    else:
        fill = np.nan if kind == "nan" else np.inf
        src, _ = make_geotiff(
            tmp / "in.tif", 20, 16, count=2, dtype="float32", nodata=None, values=np.full((2, 16, 20), fill)
        )
    out = tmp / "out.tif"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", method, "--quiet")
    assert_clean_failure(code, err, src, out, "has no valid pixel")


def test_upscale_still_accepts_an_image_with_one_valid_pixel(tmp_path, capsys):
    values = np.full((1, 16, 20), 7)
    values[0, 15, 19] = 100
    src, _ = make_geotiff(tmp_path / "in.tif", 20, 16, count=1, nodata=7, values=values, nodata_region=False)
    code, _, err = run_cli(capsys, "upscale", src, tmp_path / "o.tif", "--scale", "2", "--method", "nearest", "--quiet")
    assert code == 0, err


# ------------------------------------------------------------------ training configs


@QUICK
@given(features=st.integers(min_value=5000, max_value=10**9), task=st.sampled_from(["upscale", "sharpen"]))
def test_a_training_network_too_large_is_refused_with_the_limit(tmp_path_factory, features, task):
    """features: 10**8 gave a MemoryError traceback when the network was built."""
    path = tmp_path_factory.mktemp("cfg") / "big.yaml"
    if task == "upscale":
        path.write_text(f"network:\n  name: edsr\n  params: {{features: {features}, num_blocks: 8}}\n")
    else:
        path.write_text(f"task: sharpen\nratio: 2\nfeatures: {features}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_training_config(path)
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message
    assert f"features {features}" in message and f"{MAX_WEIGHTS:.3g} (2**28)" in message and "Adam" in message


def test_every_bundled_training_config_is_within_the_network_limit():
    for path in sorted(Path(__file__).parents[2].joinpath("configs", "train").glob("*.yaml")):
        load_training_config(path)


def test_a_training_network_built_in_python_is_checked_too(tmp_path):
    from geo_med_sr.sharpening.train import train_sharpen
    from geo_med_sr.training.config import GuidedTrainConfig

    with pytest.raises(ConfigError, match="above the limit"):
        train_sharpen(GuidedTrainConfig(task="sharpen", features=10**8), ["S2X"], tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("steps: 10\nbatch_size: 4\nsteps: 20\n", "key 'steps' is given twice (lines 1 and 3)"),
        ("network:\n  name: edsr\n  params: {features: 8, features: 9}\n", "key 'features' is given twice"),
        ("task: sharpen\nscale: 4\nfactor: 6\n", "gives both scale (4) and factor (6)"),
    ],
)
def test_a_training_config_giving_a_key_twice_is_refused(tmp_path, text, problem):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        load_training_config(path)
    assert problem in str(excinfo.value) and str(path) in str(excinfo.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["nearest", "bicubic"])
def test_upscale_keeps_nan_pixels_of_a_float_geotiff_without_nodata_as_nan(tmp_path, method, bad):
    """The same policy as sharpen: NaN and +-inf are nodata and come out NaN on their own output pixels
    (the old code wrote the values its nodata fill invented there, and spread inf by interpolation)."""
    from geo_med_sr.upscale.pipeline import super_resolve

    values = np.linspace(100, 200, 2 * 16 * 20, dtype=np.float32).reshape(2, 16, 20)
    values[0, 5, 7] = bad
    src, _ = make_geotiff(tmp_path / "in.tif", 20, 16, count=2, dtype="float32", nodata=None, values=values)
    out = super_resolve(src, tmp_path / "o.tif", 2, {"model": {"method": method}}, progress=False).output
    result, _ = read(out)
    hole = np.zeros((32, 40), bool)
    hole[10:12, 14:16] = True
    np.testing.assert_array_equal(np.isnan(result[0]), hole)
    assert not np.isnan(result[1])[~hole].any()
    if method == "nearest":  # every valid value is copied: nothing invented, nothing spread
        expected = np.repeat(np.repeat(values, 2, 1), 2, 2)
        np.testing.assert_array_equal(result[:, ~hole], expected[:, ~hole])


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(min_value=1, max_value=300), min_size=2, max_size=3),
    max_pixels=st.integers(min_value=1, max_value=5000),
)
def test_scan_windows_cover_the_image_once_in_bounded_windows(shape, max_pixels):
    """The all-invalid scan of `upscale` reads every pixel exactly once, in windows of bounded size."""
    from geo_med_sr.upscale.pipeline import scan_windows

    seen = np.zeros(shape, np.int32)
    rest = int(np.prod(shape[2:]))
    for window in scan_windows(shape, max_pixels):
        seen[tuple(slice(a, b) for a, b in window)] += 1
        assert int(np.prod(window.shape)) <= max(max_pixels, rest)
    assert (seen == 1).all()


@pytest.mark.parametrize("chosen", ["B05,B06", "B8A"])
def test_a_band_choice_without_the_guides_says_which_bands_guide(tmp_path, capsys, chosen):
    """``--bands B05,B06`` on a Sentinel-2 folder left out the 10 m guides: the message says so and how to add
    them (it said "every band is on the finest grid: nothing coarser to sharpen")."""
    from s2_fixtures import s2_folder

    folder = s2_folder(tmp_path / "S2X", n=24, scl=False)
    out = tmp_path / "o.tif"
    code, _, err = run_cli(capsys, "sharpen", folder, out, "--bands", chosen, "--method", "glp")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--bands {chosen}: no finer band was selected" in err and f"--bands B02,B03,B04,B08,{chosen}" in err
    assert not out.exists()
