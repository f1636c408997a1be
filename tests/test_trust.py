"""Issue 13, cross-cutting rules: what --overwrite may replace, temporaries and signals, the size
guards, the dtype policy, length-1 axes, one-line errors and the Python API's argument types.

Each test here failed on main before these rules existed (the audit's cases).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, smooth_volume, write_nifti
from dicom_fixtures import make_synthetic_series
from geotiff_fixtures import make_geotiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_med_sr import io, super_resolve
from geo_med_sr.cli.main import main
from geo_med_sr.errors import ConfigError, OutputError, ScaleError


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geo-med-sr: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, err)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove nothing was touched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def small_nifti(path: Path, dtype=np.int16) -> Path:
    return write_nifti(path, smooth_volume((8, 7, 5), dtype=dtype), oblique_affine())


# --- what --overwrite may replace -------------------------------------------------------------


def test_output_that_is_the_folder_holding_a_nifti_input_is_refused(tmp_path, capsys):
    folder = tmp_path / "p"
    folder.mkdir()
    src = small_nifti(folder / "t1.nii.gz")
    (folder / "notes.txt").write_text("mine")
    before = tree(folder)
    code, _, err = run(capsys, "upscale", src, folder, "--scale", "2", "--method", "linear", "--overwrite")
    one_line_error(code, err, str(folder), "holds the input")
    assert tree(folder) == before


def test_output_that_is_the_folder_holding_a_dicom_input_is_refused(tmp_path, capsys):
    series = tmp_path / "p" / "series"
    make_synthetic_series(series, shape=(8, 6, 4))
    before = tree(tmp_path / "p")
    code, _, err = run(
        capsys, "upscale", series, tmp_path / "p", "--scale", "1,1,2", "--method", "linear", "--overwrite"
    )
    one_line_error(code, err, "holds the input")
    assert tree(tmp_path / "p") == before


def test_output_inside_the_input_series_folder_is_refused(tmp_path, capsys):
    series = tmp_path / "series"
    make_synthetic_series(series, shape=(8, 6, 4))
    code, _, err = run(capsys, "upscale", series, series / "sr", "--scale", "1,1,2", "--method", "linear")
    one_line_error(code, err, "inside the input folder")
    assert not (series / "sr").exists()


@pytest.mark.parametrize("name", ["user_folder", "x.nii.gz"])
def test_overwrite_never_deletes_a_users_folder(tmp_path, capsys, name):
    src = small_nifti(tmp_path / "in.nii.gz")
    target = tmp_path / name
    target.mkdir()
    (target / "thesis.docx").write_bytes(b"years of work")
    out = target if name.endswith(".nii.gz") else target
    code, _, err = run(capsys, "upscale", src, out, "--scale", "2", "--method", "linear", "--overwrite")
    one_line_error(code, err, "not written by geo_med_sr")
    assert (target / "thesis.docx").read_bytes() == b"years of work"


def test_overwrite_never_replaces_the_inputs_own_sidecar(tmp_path, capsys):
    src = small_nifti(tmp_path / "in.nii.gz")
    sidecar = tmp_path / "in.json"
    sidecar.write_text('{"RepetitionTime": 2.3}')  # the BIDS sidecar of the input
    code, _, err = run(capsys, "upscale", src, tmp_path / "in.nii", "--scale", "2", "--method", "linear", "--overwrite")
    one_line_error(code, err, str(sidecar), "not written by geo_med_sr")
    assert sidecar.read_text() == '{"RepetitionTime": 2.3}' and not (tmp_path / "in.nii").exists()


def test_overwrite_replaces_our_own_dicom_series(tmp_path, capsys):
    src = small_nifti(tmp_path / "in.nii.gz")
    out = tmp_path / "sr"
    for _ in range(2):
        code, _, err = run(capsys, "upscale", src, out, "--scale", "1,1,2", "--method", "linear", "--overwrite")
        assert code == 0, err
    assert len(list(out.iterdir())) == 10
    (out / "notes.txt").write_text("a user's file in our folder")
    code, _, err = run(capsys, "upscale", src, out, "--scale", "1,1,2", "--method", "linear", "--overwrite")
    one_line_error(code, err, "not written by geo_med_sr")
    assert (out / "notes.txt").exists()


def test_an_existing_empty_folder_takes_a_dicom_series_without_overwrite(tmp_path, capsys):
    src = small_nifti(tmp_path / "in.nii.gz")
    out = tmp_path / "sr"
    out.mkdir()
    code, _, err = run(capsys, "upscale", src, out, "--scale", "1,1,2", "--method", "linear")
    assert code == 0, err and len(list(out.iterdir())) == 10


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_current_parent_or_root_folder_as_output_is_refused(tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    src = small_nifti(work / "in.nii.gz")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    code, _, err = run(capsys, "upscale", src, out, "--scale", "2", "--method", "linear", "--overwrite")
    one_line_error(code, err)
    assert tree(tmp_path) == before


EXISTING = st.sampled_from(["nothing", "user file", "user folder", "empty folder", "our output", "symlink"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=EXISTING, sidecar=st.sampled_from(["nothing", "user", "ours"]), overwrite=st.booleans())
def test_property_nothing_that_is_not_ours_is_ever_replaced(tmp_path_factory, existing, sidecar, overwrite):
    """Whatever stands at OUT and at its sidecar, a write either succeeds or refuses, and every
    byte that this tool did not write is still there afterwards."""
    folder = tmp_path_factory.mktemp("prop")
    out = folder / "out.nii.gz"
    image = io.read(small_nifti(folder / "src.nii.gz"))
    ours = {**image.meta, "provenance": {"tool": "geo_med_sr test"}}
    if existing == "user file":
        out.write_bytes(b"user data")
    elif existing == "user folder":
        out.mkdir()
        (out / "doc.txt").write_text("user")
    elif existing == "empty folder":
        out.mkdir()
    elif existing == "our output":
        io.write(image.with_array(image.array, (1, 1, 1), meta_update=ours), out)
    elif existing == "symlink":
        (folder / "target.txt").write_text("user")
        out.symlink_to(folder / "target.txt")
    if sidecar == "user":
        (folder / "out.json").write_text('{"mine": 1}')
    elif sidecar == "ours" and existing != "our output":
        (folder / "out.json").write_text(json.dumps({"GeoMedSR": {}}))
    protected = {k: v for k, v in tree(folder).items() if k in ("doc.txt", "out.nii.gz") and existing != "our output"}
    protected.update({k: v for k, v in tree(folder).items() if k in ("target.txt",)})
    if sidecar == "user":
        protected["out.json"] = b'{"mine": 1}'
    if existing == "user folder":
        protected = {"out.nii.gz/doc.txt": b"user"}
    try:
        io.write(image.with_array(image.array, (1, 1, 1), meta_update=ours), out, overwrite=overwrite)
        wrote = True
    except OutputError:
        wrote = False
    after = tree(folder)
    for name, content in protected.items():
        assert after.get(name) == content, (existing, sidecar, overwrite, name)
    if wrote:
        assert io.read_provenance(out) is not None
    assert not [p for p in folder.iterdir() if ".partial-" in p.name]


# --- temporaries, signals -------------------------------------------------------------------------


@pytest.mark.slow
def test_stale_partials_of_dead_runs_are_removed_and_live_ones_kept(tmp_path, capsys):
    src = small_nifti(tmp_path / "in.nii.gz")
    host = socket.gethostname().replace("-", "_")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.nii.gz.partial-{host}-{dead.pid}-abc"
    live = tmp_path / f".out.nii.gz.partial-{host}-{os.getpid()}-def"
    elsewhere = tmp_path / f".out.nii.gz.partial-otherhost-{dead.pid}-ghi"
    for folder in (stale, live, elsewhere):
        folder.mkdir()
        (folder / "out.nii.gz").write_bytes(b"half")
    code, _, err = run(capsys, "upscale", src, tmp_path / "out.nii.gz", "--scale", "2", "--method", "linear")
    assert code == 0, err
    assert not stale.exists() and live.exists() and elsewhere.exists()


def test_dicom_output_folder_is_readable_by_others(tmp_path, capsys):
    src = small_nifti(tmp_path / "in.nii.gz")
    umask = os.umask(0o022)
    try:
        code, _, err = run(capsys, "upscale", src, tmp_path / "sr", "--scale", "1,1,2", "--method", "linear")
    finally:
        os.umask(umask)
    assert code == 0, err
    assert (tmp_path / "sr").stat().st_mode & 0o777 == 0o755


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "geo_med_sr", *map(str, args)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def _wait_for_partial(proc: subprocess.Popen, folder: Path) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if [p for p in folder.iterdir() if ".partial-" in p.name]:
            return
        time.sleep(0.01)
    pytest.fail("the run ended before it could be signalled mid-write")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "status", "line"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM, "geo-med-sr: stopped by SIGTERM; no partial output was left"),
        (signal.SIGINT, 130, "geo-med-sr: interrupted; no partial output was left"),
    ],
)
def test_a_signal_stops_the_run_prints_one_line_and_leaves_nothing(tmp_path, sig, status, line):
    src = write_nifti(tmp_path / "big.nii.gz", smooth_volume((64, 64, 48)), oblique_affine())
    out = tmp_path / "out.nii.gz"
    proc = _start(["upscale", src, out, "--scale", "3", "--method", "bspline", "--quiet"], tmp_path)
    _wait_for_partial(proc, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status  # stopped by the signal mid-write, not at the end of the job (status 0)
    assert err.strip().splitlines() == [line]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.slow
def test_after_sigkill_a_rerun_removes_the_partial_and_succeeds(tmp_path):
    src = write_nifti(tmp_path / "big.nii.gz", smooth_volume((64, 64, 48)), oblique_affine())
    out = tmp_path / "out.nii.gz"
    args = ["upscale", src, out, "--scale", "3", "--method", "bspline", "--quiet"]
    proc = _start(args, tmp_path)
    _wait_for_partial(proc, tmp_path)
    proc.kill()
    proc.wait()
    assert [p for p in tmp_path.iterdir() if ".partial-" in p.name]  # what SIGKILL leaves
    small = small_nifti(tmp_path / "small.nii.gz")
    assert main(["upscale", str(small), str(out), "--scale", "2", "--method", "linear", "--quiet"]) == 0
    assert out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_unwritable_output_folder_is_one_line(tmp_path, capsys, monkeypatch):
    import tempfile

    src = small_nifti(tmp_path / "in.nii.gz")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)  # root ignores chmod, so the refusal is simulated
    code, _, err = run(capsys, "upscale", src, tmp_path / "out.nii.gz", "--scale", "2", "--method", "linear")
    one_line_error(code, err, "out.nii.gz", "Permission denied")


def test_disk_full_while_writing_is_one_line_naming_the_output(tmp_path, capsys, monkeypatch):
    import errno

    from geo_med_sr.adapters.nifti import NiftiAdapter

    def full(cls, *args, **options):
        Path(args[-1]).write_bytes(b"half")  # the path is the last argument of both writers
        raise OSError(errno.ENOSPC, "No space left on device")

    # the last step of every NIfTI output: whole images and streamed ones
    monkeypatch.setattr(NiftiAdapter, "write_stored", classmethod(full))
    monkeypatch.setattr(NiftiAdapter, "finish_streamed", classmethod(full))
    src = small_nifti(tmp_path / "in.nii.gz")
    code, _, err = run(capsys, "upscale", src, tmp_path / "out.nii.gz", "--scale", "2", "--method", "linear")
    one_line_error(code, err, str(tmp_path / "out.nii.gz"), "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]


# --- size guards -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["64", "1000", "12345678901234567890", "2,2,1e30"])
def test_absurd_scales_are_refused_before_any_work(tmp_path, capsys, monkeypatch, scale):
    from geo_med_sr import io

    def no_work(*args, **kwargs):
        raise AssertionError("the input was opened: work started before the refusal")

    src, _ = make_geotiff(tmp_path / "in.tif", width=512, height=512, count=1)
    monkeypatch.setattr(io, "open_source", no_work)
    monkeypatch.setattr(io, "open_sink", no_work)
    argv = ["upscale", src, tmp_path / "out.tif", "--scale", scale, "--method", "nearest"]
    code, _, err = run(capsys, *argv)
    one_line_error(code, err, "--scale")
    assert not (tmp_path / "out.tif").exists()


def test_in_memory_output_larger_than_the_memory_available_is_refused(tmp_path, capsys, monkeypatch):
    """The size guard applies to outputs held whole until written (a DICOM series), not to streamed ones
    (NIfTI, written window by window): the same 128x128x64 output (8 MiB of float32 values) is refused
    as a series and written as a NIfTI file with 1 MiB reported free."""
    from geo_med_sr.upscale import pipeline

    monkeypatch.setattr(pipeline, "available_bytes", lambda: 1 << 20)  # 1 MiB free
    src = write_nifti(tmp_path / "in.nii.gz", smooth_volume((32, 32, 16)), oblique_affine())
    code, _, err = run(capsys, "upscale", src, tmp_path / "series", "--scale", "4", "--method", "linear")
    one_line_error(code, err, "series", "GiB of memory")
    assert not (tmp_path / "series").exists()
    code, _, err = run(capsys, "upscale", src, tmp_path / "out.nii.gz", "--scale", "4", "--method", "linear")
    assert code == 0, err
    assert nib.load(tmp_path / "out.nii.gz").shape == (128, 128, 64)


def test_a_checkpoint_asking_for_a_huge_network_is_refused_before_allocation(tmp_path):
    import resource

    from geo_med_sr.errors import ModelError
    from geo_med_sr.models.checkpoint import load_checkpoint, save_checkpoint
    from geo_med_sr.networks import build_network

    path = tmp_path / "net.safetensors"
    save_checkpoint(build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=8, num_blocks=1), path)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    config = json.loads(metadata["geo_med_sr"])
    config["network"]["params"].update(features=4096, num_blocks=400)  # ~50 GB of float32 weights
    metadata["geo_med_sr"] = json.dumps(config)
    save_file(load_file(str(path)), str(path), metadata=metadata)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match="weights do not match"):
        load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # kB: nothing allocated


# --- the dtype policy --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.float64, np.int64])
def test_wide_dtypes_are_computed_exactly_nifti(tmp_path, dtype):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(1e6, 1e5, size=(6, 5, 4)).astype(dtype) + np.float64(1e-7)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), size=(6, 5, 4)).astype(dtype)
    src = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4), dtype=dtype), src)
    super_resolve(src, tmp_path / "o.nii.gz", 2, {"model": {"method": "nearest"}}, progress=False)
    out = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, data.repeat(2, 0).repeat(2, 1).repeat(2, 2))


@pytest.mark.parametrize("dtype", ["uint32", "float64"])
def test_wide_dtypes_are_computed_exactly_geotiff(tmp_path, dtype):
    rng = np.random.default_rng(2)
    values = (rng.integers(2**24, 2**32 - 1, size=(1, 20, 24)) + (0.25 if dtype == "float64" else 0)).astype(dtype)
    src, _ = make_geotiff(tmp_path / "in.tif", width=24, height=20, count=1, dtype=dtype, values=values, nodata=None)
    super_resolve(src, tmp_path / "o.tif", 2, {"model": {"method": "nearest"}}, progress=False)
    out = io.read(tmp_path / "o.tif")
    assert np.dtype(out.meta["dtype"]) == np.dtype(dtype)
    np.testing.assert_array_equal(out.array, values.transpose(0, 2, 1).repeat(2, 1).repeat(2, 2))  # (C, col, row)


def test_float64_linear_matches_a_float64_oracle(tmp_path):
    import torch

    from geo_med_sr.inference.classical import LinearUpsampler

    data = np.random.default_rng(3).normal(1e9, 1.0, size=(6, 5, 4))
    src = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4), dtype=np.float64), src)
    super_resolve(src, tmp_path / "o.nii.gz", 2, {"model": {"method": "linear"}}, progress=False)
    out = np.asarray(nib.load(tmp_path / "o.nii.gz").dataobj)
    padded = np.pad(data, 1, mode="reflect")
    oracle = LinearUpsampler(2)(torch.from_numpy(padded)[None, None])[0, 0].numpy()[2:-2, 2:-2, 2:-2]
    np.testing.assert_allclose(out, oracle, rtol=0, atol=1e-6)  # float32 would be off by ~60


# --- axes of length 1 ----------------------------------------------------------------------------


def test_a_2d_image_is_not_duplicated_into_slices(tmp_path, capsys):
    data = smooth_volume((16, 12, 1))[..., 0]
    src = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.9, 3.0, 1.0])), src)
    code, _, err = run(capsys, "upscale", src, tmp_path / "o.nii.gz", "--scale", "2", "--method", "nearest")
    assert code == 0, err
    out = nib.load(tmp_path / "o.nii.gz")
    assert out.shape[:3] == (32, 24, 1)
    code, _, err = run(capsys, "upscale", src, tmp_path / "p.nii.gz", "--scale", "2,2,2", "--method", "nearest")
    one_line_error(code, err, "single sample", "--scale 2,2,1")


def test_a_single_dicom_slice_is_upscaled_in_plane_only(tmp_path, capsys):
    series = tmp_path / "one"
    make_synthetic_series(series, shape=(10, 8, 1), slice_thickness=3.0)
    code, _, err = run(capsys, "upscale", series, tmp_path / "o.nii.gz", "--scale", "2", "--method", "linear")
    assert code == 0, err
    assert nib.load(tmp_path / "o.nii.gz").shape[:3] == (20, 16, 1)


# --- messages --------------------------------------------------------------------------------------


def test_all_nodata_image_names_the_file(tmp_path, capsys):
    values = np.zeros((1, 20, 24), np.uint16)
    src, _ = make_geotiff(tmp_path / "empty.tif", width=24, height=20, count=1, values=values, nodata=0)
    code, _, err = run(capsys, "upscale", src, tmp_path / "o.tif", "--scale", "2", "--method", "model")
    one_line_error(code, err, "empty.tif")


def test_singular_affine_names_the_file(tmp_path, capsys):
    header = nib.Nifti1Header()
    header.set_data_shape((8, 7, 5))
    header.set_data_dtype(np.int16)
    header["srow_x"], header["srow_y"] = [1, 0, 0, 0], [0, 1, 0, 0]
    header["srow_z"] = [0, 0, 0, 0]  # a sform that maps every slice onto one plane
    header["sform_code"], header["qform_code"] = 1, 0
    img = nib.Nifti1Image(smooth_volume((8, 7, 5)), None, header=header)
    src = tmp_path / "flat.nii.gz"
    nib.save(img, src)
    code, _, err = run(capsys, "upscale", src, tmp_path / "o.nii.gz", "--scale", "2", "--method", "linear")
    one_line_error(code, err, "flat.nii.gz", "singular")


def test_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    from geo_med_sr import info

    real = info.describe

    def noisy(*args, **kwargs):
        warnings.warn("something odd\nin two lines", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(info, "describe", noisy)
    code, _, err = run(capsys, "info", small_nifti(tmp_path / "in.nii.gz"))
    assert code == 0
    assert err.strip().splitlines() == ["geo-med-sr: warning: something odd in two lines"]


def test_python_api_takes_a_config_as_dict_or_name_and_bands_as_int(tmp_path):
    src = small_nifti(tmp_path / "in.nii.gz")
    result = super_resolve(src, tmp_path / "a.nii.gz", 2, {"model": {"method": "nearest"}}, progress=False)
    assert result.provenance["method"] == "nearest"
    result = super_resolve(src, tmp_path / "b.nii.gz", 2, "medical/mri", progress=False)
    assert result.output.exists()
    tif, values = make_geotiff(tmp_path / "in.tif", count=3)
    super_resolve(tif, tmp_path / "c.tif", 2, {"model": {"method": "nearest"}}, bands=3, progress=False)
    np.testing.assert_array_equal(io.read(tmp_path / "c.tif").array[0], values[2].T.repeat(2, 0).repeat(2, 1))
    with pytest.raises(ConfigError, match="config must be"):
        super_resolve(src, tmp_path / "d.nii.gz", 2, 42)
    with pytest.raises(ConfigError, match="band numbers start at 1"):
        super_resolve(tif, tmp_path / "e.tif", 2, None, bands=0)
    with pytest.raises(ScaleError):
        super_resolve(src, tmp_path / "f.nii.gz", "abc")


# --- DICOM output options through the command line ---------------------------------------------


def test_nifti_to_mr_series_from_the_command_line(tmp_path, capsys):
    import pydicom

    a = small_nifti(tmp_path / "a.nii.gz")
    b = write_nifti(tmp_path / "b.nii.gz", smooth_volume((8, 7, 5), seed=5), oblique_affine())
    for src, out in ((a, "sr_a"), (b, "sr_b")):
        code, _, err = run(
            capsys, "upscale", src, tmp_path / out, "--scale", "1,1,2", "--method", "linear", "--modality", "MR"
        )
        assert code == 0, err
    first = [pydicom.dcmread(sorted((tmp_path / out).iterdir())[0]) for out in ("sr_a", "sr_b")]
    assert all(ds.SOPClassUID == pydicom.uid.MRImageStorage for ds in first)
    assert first[0].PatientID != first[1].PatientID and first[0].PatientID != "GEOMEDSR"  # one patient per input
    code, _, err = run(
        capsys,
        "upscale",
        a,
        tmp_path / "named",
        "--scale",
        "1,1,2",
        "--method",
        "linear",
        "--modality",
        "MR",
        "--patient-id",
        "P123",
        "--patient-name",
        "Doe^Jane",
    )
    assert code == 0, err
    ds = pydicom.dcmread(sorted((tmp_path / "named").iterdir())[0])
    assert (ds.PatientID, str(ds.PatientName)) == ("P123", "Doe^Jane")
    code, _, err = run(
        capsys, "upscale", a, tmp_path / "x.nii.gz", "--scale", "2", "--method", "linear", "--modality", "MR"
    )
    one_line_error(code, err, "--modality", "only apply to DICOM")


# --- per-band nodata -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["nearest", "bicubic", "model"])
def test_nodata_in_one_band_stays_in_that_band(tmp_path, method):
    """GDAL's nodata is per band: a pixel that is nodata in band 1 only keeps its band-2 value,
    and the output is the same whatever the tile size (per-band masks are tile-invariant)."""
    import rasterio

    values = smooth_bands_like(2, 40, 48)
    values[0, 10:12, 12:15] = 0  # nodata in band 1 only
    values[1, 20:23, 6:8] = 0  # nodata in band 2 only
    src, _ = make_geotiff(
        tmp_path / "in.tif", width=48, height=40, count=2, values=values, nodata=0, nodata_region=False
    )
    outs = []
    for patch in (8, 64):
        out = tmp_path / f"o{patch}.tif"
        super_resolve(src, out, 2, {"model": {"method": method}, "inference": {"patch_size": patch}}, progress=False)
        with rasterio.open(out) as ds:
            outs.append(ds.read())
    a = outs[0]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert (a[0, 20:24, 24:30] == 0).all() and (a[1, 20:24, 24:30] != 0).all()
    assert (a[1, 40:46, 12:16] == 0).all() and (a[0, 40:46, 12:16] != 0).all()
    assert np.count_nonzero(a[0] == 0) == 4 * 6 and np.count_nonzero(a[1] == 0) == 4 * 6


def smooth_bands_like(count: int, height: int, width: int) -> np.ndarray:
    from geotiff_fixtures import smooth_bands

    return np.maximum(smooth_bands(count, height, width), 1)


def test_train_overwrite_never_replaces_a_file_that_is_not_our_checkpoint(tmp_path, capsys):
    out = tmp_path / "net.safetensors"
    out.write_bytes(b"someone else's weights")
    src = small_nifti(tmp_path / "in.nii.gz")
    code, _, err = run(capsys, "train", "--data", src, "--out", out, "--steps", "1", "--overwrite")
    one_line_error(code, err, "not a geo_med_sr checkpoint")
    assert out.read_bytes() == b"someone else's weights"
