"""geo-med-sr batch: a Dask LocalCluster of 2 workers over mixed inputs; idempotent, resumable,
failures isolated, killed runs finished without partial files."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import oblique_affine, smooth_volume, write_nifti
from dicom_fixtures import make_synthetic_series
from geotiff_fixtures import make_geotiff
from rasterio.windows import Window

from geo_med_sr import batch, io, super_resolve
from geo_med_sr.cli.main import main
from geo_med_sr.errors import ConfigError, OutputError
from geo_med_sr.upscale.batch import DONE, FAILED, LOCK_NAME, REPORT_NAME, SKIPPED, _exclusive, expand_inputs, plan
from geo_med_sr.upscale.config import SRConfig

distributed = pytest.importorskip("distributed")

CONFIG = SRConfig().updated(output={"dtype": "float32"})


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster (processes) shared by the tests of this module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as local:
        yield local.scheduler_address


def make_inputs(folder: Path) -> list[Path]:
    """Six small mixed inputs: 2 NIfTI, 2 DICOM series folders, 2 GeoTIFFs (oblique/rotated)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        write_nifti(folder / "t1.nii.gz", smooth_volume((13, 10, 9), seed=1), oblique_affine()),
        write_nifti(
            folder / "t2.nii",
            smooth_volume((11, 12, 8), seed=2).astype(np.float32),
            oblique_affine(spacing=(1.0, 1.0, 3.0)),
        ),
    ]
    for i in (1, 2):
        make_synthetic_series(folder / f"series{i}", shape=(12, 10, 6), seed=i, patient_id=f"SYN00{i}")
        paths.append(folder / f"series{i}")
    for i in (1, 2):
        paths.append(make_geotiff(folder / f"scene{i}.tif", width=37 + i, height=29)[0])
    return paths


def outputs_of(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.iterdir() if not p.name.startswith((".", REPORT_NAME)) and p.suffix != ".json")


def stamp(path: Path) -> float:
    """Last modification time of a file, or of the newest file in a folder."""
    return max(p.stat().st_mtime_ns for p in path.iterdir()) if path.is_dir() else path.stat().st_mtime_ns


def test_mixed_batch_correct_skipped_and_redone(tmp_path, cluster):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    report = batch(inputs, out, 2, CONFIG, scheduler=cluster)
    assert [o.status for o in report.outcomes] == [DONE] * 6, report.table()
    assert [Path(p).name for p in (o.output for o in report.outcomes)] == [
        "t1.nii.gz",
        "t2.nii",
        "series1",
        "series2",
        "scene1.tif",
        "scene2.tif",
    ]

    # each output equals what the single-file command makes (values and exact geometry)
    for src in inputs:
        got = io.read(out / Path(report.outcomes[inputs.index(src)].output).name)
        ref_path = tmp_path / "single" / Path(report.outcomes[inputs.index(src)].output).name
        ref_path.parent.mkdir(exist_ok=True)
        super_resolve(src, ref_path, 2, CONFIG, progress=False)
        ref = io.read(ref_path)
        assert got.array.shape == ref.array.shape and got.spatial_shape == tuple(
            2 * n for n in io.read(src).spatial_shape
        )
        np.testing.assert_allclose(got.affine, ref.affine, rtol=0, atol=1e-9)
        span = float(ref.array.max() - ref.array.min())
        np.testing.assert_allclose(got.array, ref.array, rtol=0, atol=1e-4 * span)
        provenance = io.read_provenance(out / ref_path.name)
        assert provenance["request"]["input_sha256"] and provenance["method"] == "model"

    # a second run skips all six and touches nothing
    stamps = {p: stamp(p) for p in outputs_of(out)}
    again = batch(inputs, out, 2, CONFIG, scheduler=cluster)
    assert [o.status for o in again.outcomes] == [SKIPPED] * 6
    assert {p: stamp(p) for p in outputs_of(out)} == stamps

    # deleting outputs redoes only those (a NIfTI deleted without its JSON sidecar too)
    shutil.rmtree(out / "series2")
    (out / "t1.nii.gz").unlink()
    assert (out / "t1.json").exists()
    third = batch(inputs, out, 2, CONFIG, scheduler=cluster)
    assert [o.status for o in third.outcomes] == [DONE, SKIPPED, SKIPPED, DONE, SKIPPED, SKIPPED]
    redone = ("series2", "t1.nii.gz")
    assert {p: stamp(p) for p in outputs_of(out) if p.name not in redone} == {
        p: s for p, s in stamps.items() if p.name not in redone
    }
    assert json.loads((out / "t1.json").read_text())["GeoMedSR"] == io.read_provenance(out / "t1.nii.gz")

    # another scale or method is another request: the old output is not silently replaced
    other = batch(inputs[4:5], out, 2, CONFIG.updated(model={"method": "bicubic"}), scheduler=cluster)
    assert other.outcomes[0].status == FAILED and "--overwrite" in other.outcomes[0].error
    replaced = batch(
        inputs[4:5], out, 2, CONFIG.updated(model={"method": "bicubic"}), scheduler=cluster, overwrite=True
    )
    assert replaced.outcomes[0].status == DONE and io.read_provenance(out / "scene1.tif")["method"] == "bicubic"


def test_corrupted_input_fails_alone_with_report_and_exit_status(tmp_path, cluster, capsys):
    inputs = make_inputs(tmp_path / "in")
    bad = inputs[0]
    bad.write_bytes(gzip.compress(b"this is not a NIfTI header" * 20))
    out = tmp_path / "out"
    argv = [
        "batch",
        *map(str, inputs),
        "--out-dir",
        str(out),
        "--scale",
        "2",
        "--float32",
        "--scheduler",
        cluster,
        "--quiet",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "failed" in err and str(bad) in err
    rows = list(csv.DictReader(open(out / f"{REPORT_NAME}.csv")))
    assert [r["status"] for r in rows] == [FAILED, DONE, DONE, DONE, DONE, DONE]
    assert str(bad) in rows[0]["error"] and all(r["error"] == "" for r in rows[1:])
    payload = json.loads((out / f"{REPORT_NAME}.json").read_text())
    assert [o["status"] for o in payload["outcomes"]] == [r["status"] for r in rows]
    assert not (out / "t1.nii.gz").exists() and len(outputs_of(out)) == 5


@pytest.mark.slow
def test_killed_batch_is_finished_by_a_rerun_without_partial_files(tmp_path, cluster):
    (tmp_path / "in").mkdir()
    inputs = [
        make_geotiff(tmp_path / "in" / f"tile{i}.tif", width=320, height=320, count=4, nodata_region=False)[0]
        for i in range(6)
    ]
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "geo_med_sr",
        "batch",
        *map(str, inputs),
        "--out-dir",
        str(out),
        "--scale",
        "2",
        "--workers",
        "2",
        "--threads",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("tile*.tif")):
            time.sleep(0.2)
        finished_before_kill = len(list(out.glob("tile*.tif")))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 1 <= finished_before_kill < len(inputs), "the batch should be killed mid-way"
    report = batch(inputs, out, 2, scheduler=cluster)
    assert sorted(o.status for o in report.outcomes).count(SKIPPED) >= finished_before_kill
    assert all(o.status in (DONE, SKIPPED) for o in report.outcomes), report.table()
    assert not [p.name for p in out.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    for path in inputs:
        with rasterio.open(out / path.name) as dst:
            assert (dst.width, dst.height) == (640, 640) and dst.read(1, window=Window(600, 600, 40, 40)).any()
        assert io.read_provenance(out / path.name)["request"]["scale"] == [2, 2]


def test_vrt_mosaic_of_the_geotiff_outputs(tmp_path, cluster):
    from rasterio.transform import from_origin

    (tmp_path / "in").mkdir()
    full = np.random.default_rng(0).integers(100, 4000, (2, 24, 40)).astype("uint16")
    tiles = []
    for i, x0 in enumerate((0, 20)):
        tiles.append(
            make_geotiff(
                tmp_path / "in" / f"part{i}.tif",
                width=20,
                height=24,
                count=2,
                transform=from_origin(600_000 + 30 * x0, 4_000_000, 30, 30),
                values=full[:, :, x0 : x0 + 20],
                nodata=None,
                nodata_region=False,
            )[0]
        )
    report = batch(
        tiles, tmp_path / "out", 2, SRConfig().updated(model={"method": "nearest"}), scheduler=cluster, vrt="mosaic.vrt"
    )
    assert report.vrt == tmp_path / "out" / "mosaic.vrt"
    with rasterio.open(report.vrt) as mosaic:
        assert (mosaic.width, mosaic.height) == (80, 48)
        assert mosaic.transform == from_origin(600_000, 4_000_000, 15, 15)
        np.testing.assert_array_equal(mosaic.read(), full.repeat(2, axis=1).repeat(2, axis=2))


def test_planning_errors_come_before_any_work(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    make_geotiff(tmp_path / "a" / "x.tif")
    make_geotiff(tmp_path / "b" / "x.tif")
    with pytest.raises(ConfigError, match="would write"):
        plan([tmp_path / "a" / "x.tif", tmp_path / "b" / "x.tif"], tmp_path / "out")
    with pytest.raises(ConfigError, match="matches it as a glob"):
        expand_inputs([str(tmp_path / "nothing*.tif")])
    assert expand_inputs([str(tmp_path / "*" / "x.tif"), tmp_path / "a" / "x.tif"]) == [
        tmp_path / "a" / "x.tif",
        tmp_path / "b" / "x.tif",
    ]
    with pytest.raises(OutputError, match="inside --out-dir"):
        batch([tmp_path / "a" / "x.tif"], tmp_path / "a", 2)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file"):
        batch([tmp_path / "a" / "x.tif"], tmp_path / "file", 2)
    out = tmp_path / "busy"
    out.mkdir()
    with _exclusive(out):
        with pytest.raises(OutputError, match="another geo-med-sr batch"):
            batch([tmp_path / "a" / "x.tif"], out, 2)
        assert (out / LOCK_NAME).exists()  # the refused batch leaves the holder's lock alone
    assert not (out / LOCK_NAME).exists() and not (out / "x.tif").exists()  # the holder removes it when done


@pytest.mark.slow
def test_interrupted_batch_leaves_no_temporary_and_no_lock(tmp_path):
    """Ctrl-C (SIGINT) in the middle of a batch on a LocalCluster: the workers' half-written temporaries and the
    lock are removed, finished outputs and a file of the user's in the folder stay."""
    (tmp_path / "in").mkdir()
    inputs = [
        make_geotiff(tmp_path / "in" / f"tile{i}.tif", width=320, height=320, count=4, nodata_region=False)[0]
        for i in range(6)
    ]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    command = [sys.executable, "-m", "geo_med_sr", "batch", *map(str, inputs), "--out-dir", str(out)]
    command += ["--scale", "2", "--workers", "2", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob(".tile*.partial-*")):
            time.sleep(0.1)
        assert list(out.glob(".tile*.partial-*")), "the batch should be interrupted while writing"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0 and b"interrupted" in err
    left = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert left == [], left
    assert (out / "notes.txt").read_text() == "mine"


def test_request_names_what_changes_the_output_and_nothing_else(tmp_path):
    from geo_med_sr.upscale.request import hash_input, request_for

    src = make_geotiff(tmp_path / "a.tif")[0]
    base = request_for(src, 2)
    assert base == json.loads(json.dumps(base)) and base["scale"] == [2, 2] and base["method"] == "model"
    assert request_for(src, "2,2") == base
    assert base["input_sha256"] == hash_input(src) and len(base["model_sha256"]) == 64
    # engine settings that do not change values are not part of it
    assert (
        request_for(
            src,
            2,
            SRConfig().updated(inference={"patch_size": 32, "batch_size": 1, "device": "cpu", "column_size": 64}),
        )
        == base
    )
    for other in (
        request_for(src, 2, SRConfig().updated(model={"method": "bicubic"})),
        request_for(src, 2, SRConfig().updated(output={"dtype": "float32"})),
        request_for(src, 2, bands="1,2"),
        request_for(src, 2, cog=False),
    ):
        assert other != base
    bicubic = SRConfig().updated(model={"method": "bicubic"})
    assert request_for(src, 2, bicubic)["model_sha256"] is None and request_for(src, "2,3", bicubic) != request_for(
        src, 2, bicubic
    )
    src.write_bytes(src.read_bytes() + b"\0")  # any change of the input's bytes
    assert request_for(src, 2)["input_sha256"] != base["input_sha256"]
    series = tmp_path / "series"
    make_synthetic_series(series, shape=(6, 5, 3))
    before = hash_input(series)
    (series / "extra.txt").write_text("a new file in the folder")
    assert hash_input(series) != before
    with pytest.raises(ConfigError):
        request_for(src, "2,x")


def test_cli_refuses_bad_options_with_status_2(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "nothing*.tif"), "--out-dir", str(tmp_path / "out"), "--scale", "2"]) == 2
    assert "no file matches it as a glob pattern" in capsys.readouterr().err
    src = make_geotiff(tmp_path / "a.tif")[0]
    assert main(["batch", str(src), "--out-dir", str(tmp_path / "out"), "--scale", "2", "--workers", "0"]) == 2
    assert "argument --workers: 0: expected a whole number from 1" in capsys.readouterr().err  # one line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_orphan_sidecar_is_ours_to_replace_a_users_file_is_not(tmp_path):
    from geo_med_sr.upscale.batch import Settings, run_job

    src = write_nifti(tmp_path / "t1.nii.gz", smooth_volume((9, 8, 7)), oblique_affine())
    (out := tmp_path / "out").mkdir()
    job = plan([src], out)[0]
    settings = Settings("2", SRConfig().updated(model={"method": "nearest"}).model_dump())
    (out / "t1.json").write_text('{"note": "the user\'s own file"}')
    refused = run_job(job, settings)
    assert refused.status == FAILED and "sidecar" in refused.error and "t1.json" in refused.error
    assert json.loads((out / "t1.json").read_text()) == {"note": "the user's own file"} and not job.output.exists()
    (out / "t1.json").write_text(json.dumps({"GeoMedSR": {"method": "old"}}))  # left by an earlier run of ours
    assert run_job(job, settings).status == DONE
    assert json.loads((out / "t1.json").read_text())["GeoMedSR"] == io.read_provenance(job.output)
    assert run_job(job, settings).status == SKIPPED
