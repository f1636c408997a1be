"""The output pre-flight (GitHub issue 25): every tool checks its outputs before any pixel is read
or any training starts: the name the writer accepts, what may be replaced, a folder that exists,
and the output's size (from headers) against the free disk space and, in memory, the memory.

Each test replaces the first step of the real work (reading pixels, planning, training,
evaluating) by a function that fails the test, so a refusal that comes after the work fails here.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import rasterio
from cli_fixtures import assert_clean_failure, run_cli
from conftest import REPO, oblique_affine, smooth_volume, write_nifti
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import Affine
from s2_fixtures import CRS, s2_folder

from geo_med_sr import io
from geo_med_sr.adapters.nifti import NiftiAdapter
from geo_med_sr.errors import OutputError

#: what hypothesis may run per test here: the examples are quick refusals; tmp_path is shared by them.
QUICK = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
Usage = namedtuple("Usage", "total used free")


def no_work(*args, **kwargs):
    raise AssertionError("the work started before the output was refused")


def little_space(monkeypatch, free: int) -> None:
    """Make every file system report ``free`` bytes free."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(1 << 40, (1 << 40) - free, free))


def huge_band(path: Path, width: int, pixel: float) -> Path:
    """A one-band uint16 GeoTIFF declaring ``width`` x ``width`` pixels, tiled, compressed and sparse:
    no tile is written, so it is a few hundred kB however large it says it is."""
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": width,
        "count": 1,
        "dtype": "uint16",
        "crs": CRS,
        "transform": Affine(pixel, 0, 600000, 0, -pixel, 7100000),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "sparse_ok": True,
    }
    with rasterio.open(path, "w", **profile):
        pass
    return path


def nothing_left(folder: Path) -> None:
    """No output and no temporary of one in ``folder``."""
    assert not [p for p in folder.iterdir() if ".partial-" in p.name or p.name.startswith("out")]


# ------------------------------------------------------------------------------------------ sharpen


def test_sharpen_refuses_an_output_larger_than_the_free_space_before_any_pixel(tmp_path, capsys, monkeypatch):
    """Band files of under a MB declaring 20000x20000 (10 m) and 10000x10000 (20 m) pixels: the output
    (2 bands x 20000^2 x 2 bytes, with overviews about 2.0 GiB) does not fit 1 GiB free, and is refused
    from the headers before planning, statistics or training, with the numbers."""
    folder = tmp_path / "S2"
    folder.mkdir()
    huge_band(folder / "B02.tif", 20000, 10.0)
    huge_band(folder / "B05.tif", 10000, 20.0)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000
    little_space(monkeypatch, 1 << 30)
    monkeypatch.setattr("geo_med_sr.sharpening.pipeline.plan_sharpening", no_work)
    monkeypatch.setattr("geo_med_sr.sharpening.pipeline.band_stats", no_work)
    out = tmp_path / "out.tif"
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "sharpen", folder, out, "--method", "bicubic", "--quiet")
    assert time.perf_counter() - start < 5
    assert_clean_failure(code, err, out, out, "about 2.0 GiB to write and 1.0 GiB free on /")
    nothing_left(tmp_path)


@QUICK
@given(name=st.sampled_from(["out.nii.gz", "out.nii", "out", "out.v2", "out.png", "out.jp2", "out.tif.bak"]))
def test_sharpen_refuses_an_output_it_cannot_write_before_reading_the_bands(tmp_path_factory, name):
    """``sharpen`` writes a GeoTIFF only: a NIfTI or DICOM-folder name (formats other commands write)
    is refused like an unknown one, before a band is opened."""
    tmp = tmp_path_factory.mktemp("sharpen")
    folder = s2_folder(tmp / "S2", n=12, scl=False)
    from geo_med_sr.sharpening.pipeline import sharpen

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(io, "open_band", no_work)
        with pytest.raises(OutputError, match=r"\.tif"):
            sharpen(folder, tmp / name, method="bicubic", progress=False)
    assert not (tmp / name).exists()


# ------------------------------------------------------------------------------------------ upscale


def test_upscale_refuses_an_output_larger_than_the_free_space_before_computing(tmp_path, capsys, monkeypatch):
    """A 64x64x32 int16 NIfTI output (256 KiB) with 128 KiB free: refused before the engine is built;
    with 1 GiB free the same command goes on to the engine."""
    src = write_nifti(tmp_path / "in.nii.gz", smooth_volume((16, 16, 8)), oblique_affine())
    out = tmp_path / "out.nii"
    little_space(monkeypatch, 1 << 17)
    monkeypatch.setattr("geo_med_sr.upscale.pipeline._engine", no_work)
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "4", "--method", "linear", "--quiet")
    assert_clean_failure(code, err, out, out, "about 256.0 KiB to write and 128.0 KiB free on /")
    nothing_left(tmp_path)

    def reached(*args, **kwargs):
        raise OutputError("reached the engine")

    little_space(monkeypatch, 1 << 30)
    monkeypatch.setattr("geo_med_sr.upscale.pipeline._engine", reached)
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "4", "--method", "linear", "--quiet")
    assert code == 2 and "reached the engine" in err, err


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4096), min_size=3, max_size=4),
    dtype=st.sampled_from(["uint8", "int16", "float32", "float64"]),
    free=st.integers(0, 1 << 36),
)
def test_the_size_check_refuses_exactly_what_does_not_fit(shape, dtype, free):
    """Refused iff the uncompressed samples (times the format's factor) exceed the free space; the
    message gives both numbers and the mount point."""
    needed = math.prod(shape) * np.dtype(dtype).itemsize  # NIfTI: the uncompressed samples, factor 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shutil, "disk_usage", lambda path: Usage(1 << 40, 0, free))
        if needed > free:
            with pytest.raises(OutputError, match=r"about [0-9.]+ (?:[KMGT]iB|bytes) to write and .* free on /"):
                io.check_output_size(Path("out.nii"), NiftiAdapter, shape, dtype)
        else:
            io.check_output_size(Path("out.nii"), NiftiAdapter, shape, dtype)


# ------------------------------------------------------------------------------------------ train


@QUICK
@given(name=st.sampled_from(["train", "model.pt", "m.ckpt", "m.safetensors.bak", "m.SAFETENSORS"]))
def test_train_sharpen_out_with_a_bad_name_is_refused_before_training(tmp_path_factory, name):
    """A ``task: sharpen`` config trained to ``--out train``: refused before any scene is read."""
    tmp = tmp_path_factory.mktemp("train")
    folder = s2_folder(tmp / "S2", n=12, scl=False)
    config = REPO / "configs" / "train" / "s2_guided_x2.yaml"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("geo_med_sr.sharpening.train._probe", no_work)
        patch.setattr("geo_med_sr.sharpening.train._scene_arrays", no_work)
        from geo_med_sr.cli.main import main

        code = main(["train", "--config", str(config), "--data", str(folder), "--out", str(tmp / name)])
    assert code == 2
    assert not (tmp / name).exists()


def test_train_out_in_a_missing_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """``--out missing/m.safetensors``: refused before the training images are loaded (it used to fail
    when the checkpoint was saved, after the training)."""
    src = write_nifti(tmp_path / "in.nii.gz", smooth_volume((16, 16, 8)), oblique_affine())
    out = tmp_path / "missing" / "m.safetensors"
    monkeypatch.setattr("geo_med_sr.training.loop.load_training_images", no_work)
    code, _, err = run_cli(capsys, "train", "--data", src, "--out", out, "--steps", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(out) in err and "does not exist" in err
    assert not out.parent.exists()


# ------------------------------------------------------------------------------------------ evaluate


@QUICK
@given(name=st.sampled_from(["s.pdf", "s.svg", "s.jpg", "s.txt", "s", "s.png.bak", "s.json"]))
def test_evaluate_plot_with_a_bad_suffix_is_refused_before_evaluating(tmp_path_factory, name):
    """``--plot`` is a PNG: any other name is refused before the evaluation, in both modes."""
    tmp = tmp_path_factory.mktemp("evaluate")
    ref = write_nifti(tmp / "ref.nii.gz", smooth_volume((16, 16, 8)), oblique_affine())
    folder = s2_folder(tmp / "S2", n=12, scl=False)
    from geo_med_sr.cli.main import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("geo_med_sr.upscale.evaluate.evaluate", no_work)
        patch.setattr("geo_med_sr.sharpening.evaluate.evaluate_sharpening", no_work)
        assert main(["evaluate", str(ref), "--scale", "2", "--plot", str(tmp / name)]) == 2
        assert main(["evaluate", "--sharpen", str(folder), "--plot", str(tmp / name)]) == 2
    assert not (tmp / name).exists()


def test_evaluate_plot_png_passes_the_preflight_and_json_may_not_be_the_plot(tmp_path, capsys, monkeypatch):
    """The control: a ``.png`` plot reaches the evaluation; ``--json`` and ``--plot`` naming one file do not."""
    ref = write_nifti(tmp_path / "ref.nii.gz", smooth_volume((16, 16, 8)), oblique_affine())

    def reached(*args, **kwargs):
        raise OutputError("reached the evaluation")

    monkeypatch.setattr("geo_med_sr.upscale.evaluate.evaluate", reached)
    code, _, err = run_cli(capsys, "evaluate", ref, "--scale", "2", "--plot", tmp_path / "s.png")
    assert code == 2 and "reached the evaluation" in err
    same = tmp_path / "s.png"
    code, _, err = run_cli(capsys, "evaluate", ref, "--scale", "2", "--plot", same, "--json", same)
    assert_clean_failure(code, err, same, same, "same file")


# ------------------------------------------------------------------------------------------ batch


def test_batch_vrt_with_a_bad_name_is_refused_before_any_input_runs(tmp_path, capsys, monkeypatch):
    """``--vrt mosaic.txt`` used to be refused after every input had been super-resolved."""
    from geotiff_fixtures import make_geotiff

    src, _ = make_geotiff(tmp_path / "in.tif", width=32, height=32, count=1)
    monkeypatch.setattr("geo_med_sr.upscale.batch._client", no_work)
    vrt = tmp_path / "mosaic.txt"
    argv = ["batch", src, "--out-dir", tmp_path / "sr", "--scale", "2", "--vrt", vrt, "--quiet"]
    code, _, err = run_cli(capsys, *argv)
    assert_clean_failure(code, err, vrt, vrt, ".vrt")
