"""``geo-med-sr batch --sharpen``: many small Sentinel-2 products on a Dask LocalCluster, each output equal
to a single ``sharpen`` run; idempotent (a rerun skips and rewrites nothing), resumable (a killed batch
is finished by a rerun without temporaries), refusals before any work, ItemCollections one job per item."""

from __future__ import annotations

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
from s2_fixtures import read, s2_folder

from geo_med_sr import batch_sharpen, io
from geo_med_sr.cli.main import main
from geo_med_sr.errors import InputError
from geo_med_sr.sharpening.pipeline import sharpen
from geo_med_sr.upscale.batch import DONE, FAILED, LOCK_NAME, REPORT_NAME, SKIPPED

distributed = pytest.importorskip("distributed")

#: the options of every run here (glp: classical, deterministic, a fraction of a second per product).
OPTIONS = {"method": "glp", "bands": "B02,B03,B04,B08,B05,B8A"}


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster (processes, one thread each) shared by the tests of this module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as local:
        yield local.scheduler_address


def products(folder: Path, count: int, n: int = 24) -> list[Path]:
    """``count`` COG-layout products ``S2X_P<i>`` of ``n`` x ``n`` 10 m pixels, different content each."""
    return [s2_folder(folder / f"S2X_P{i}", n=n, scl=False, seed=i) for i in range(count)]


def assert_same_as_single(got: Path, src: Path, reference: Path, **kwargs) -> None:
    """``got`` holds the pixels, grid, CRS and request of ``sharpen(src)`` with the same options."""
    reference.parent.mkdir(parents=True, exist_ok=True)
    sharpen(src, reference, progress=False, **OPTIONS, **kwargs)
    values, info = read(got)
    ref_values, ref_info = read(reference)
    np.testing.assert_array_equal(values, ref_values)
    assert info["transform"] == ref_info["transform"] and info["crs"] == ref_info["crs"]
    assert info["descriptions"] == ref_info["descriptions"]
    assert io.read_provenance(got)["request"] == io.read_provenance(reference)["request"]


def outputs(out_dir: Path) -> dict[str, int]:
    """Output name -> modification time (ns) of the products' outputs in ``out_dir``."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(out_dir.glob("*.tif"))}


@pytest.mark.slow
def test_batch_equals_single_runs_then_skips_everything(tmp_path, cluster):
    inputs = products(tmp_path / "in", 3)
    out = tmp_path / "out"
    report = batch_sharpen(inputs, out, **OPTIONS, scheduler=cluster, progress=False)
    assert [o.status for o in report.outcomes] == [DONE] * 3, report.table()
    assert [Path(o.output) for o in report.outcomes] == [out / f"S2X_P{i}.tif" for i in range(3)]
    for i, src in enumerate(inputs):
        assert_same_as_single(out / f"S2X_P{i}.tif", src, tmp_path / "single" / f"{i}.tif")
    rows = json.loads((out / f"{REPORT_NAME}.json").read_text())["outcomes"]
    assert [r["input"] for r in rows] == [str(p.absolute()) for p in inputs]

    # a second run (the CLI this time) skips all three and rewrites nothing
    stamps = outputs(out)
    argv = ["batch", "--sharpen", *map(str, inputs), "--out-dir", str(out), "--method", "glp"]
    assert main([*argv, "--bands", OPTIONS["bands"], "--scheduler", cluster, "--quiet"]) == 0
    again = json.loads((out / f"{REPORT_NAME}.json").read_text())["outcomes"]
    assert [r["status"] for r in again] == [SKIPPED] * 3
    assert outputs(out) == stamps and len(stamps) == 3

    # other options are another request: the outputs are not silently replaced, and --overwrite does replace them
    other = batch_sharpen(inputs[:1], out, method="bicubic", bands=OPTIONS["bands"], scheduler=cluster)
    assert other.outcomes[0].status == FAILED and "--overwrite" in other.outcomes[0].error
    assert outputs(out) == stamps
    replaced = batch_sharpen(
        inputs[:1], out, method="bicubic", bands=OPTIONS["bands"], scheduler=cluster, overwrite=True
    )
    assert replaced.outcomes[0].status == DONE and io.read_provenance(out / "S2X_P0.tif")["method"] == "bicubic"


@pytest.mark.slow
def test_killed_batch_is_finished_by_a_rerun_without_partial_files(tmp_path, cluster):
    """SIGKILL to the whole batch (driver, cluster, worker) once one product is done and the next is being
    written: its temporary and the lock file stay; the rerun removes them, skips what is done, does the rest."""
    inputs = products(tmp_path / "in", 5, n=240)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "geo_med_sr", "batch", "--sharpen", *map(str, inputs), "--out-dir", str(out)]
    command += ["--method", "glp", "--bands", OPTIONS["bands"], "--workers", "1", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(out.glob("S2X_*.tif")) and list(out.glob(".S2X_*.partial-*")):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished_before_kill = len(list(out.glob("S2X_*.tif")))
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert 1 <= finished_before_kill < len(inputs), "the batch should be killed mid-way"
    assert LOCK_NAME in left and any(".partial-" in name for name in left), left  # killed while writing

    report = batch_sharpen(inputs, out, **OPTIONS, scheduler=cluster, progress=False)
    assert all(o.status in (DONE, SKIPPED) for o in report.outcomes), report.table()
    assert [o.status for o in report.outcomes].count(SKIPPED) == finished_before_kill
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary, no lock
    for i, src in enumerate(inputs):
        assert_same_as_single(out / f"S2X_P{i}.tif", src, tmp_path / "single" / f"{i}.tif")


def test_refusals_are_one_line_with_status_2_before_any_work(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = s2_folder(tmp_path / "a" / "S2X", n=12), s2_folder(tmp_path / "b" / "S2X", n=12)
    out = tmp_path / "out"
    cases = [
        (["--scale", "2"], [first], "argument --scale: not allowed with --sharpen"),
        ([], [tmp_path / "missing*"], "no file matches it as a glob pattern"),
        ([], [first, second], f"would write {out / 'S2X.tif'} like {first}"),
        ([], [first / "B02.tif"], "a band file: batch --sharpen takes product folders"),
        (["--steps", "0"], [first], "--steps 0 needs a model to start from"),
        (["--workers", "0"], [first], "argument --workers: 0: expected a whole number from 1"),
    ]
    for extra, inputs, words in cases:
        code = main(["batch", "--sharpen", *map(str, inputs), "--out-dir", str(out), "--method", "glp", *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and words in err, (extra, err)
        assert not out.exists()


def write_collection(folder: Path, ids: list[str], remote: str | None = None) -> Path:
    """An ItemCollection ``items.json`` in ``folder``: each item's bands in ``folder/<id>/`` (relative hrefs);
    the asset of band ``remote`` of the last item has a remote href, with a file of that name beside the collection."""
    keys = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge1", "B8A": "nir08"}
    features = []
    for i, ident in enumerate(ids):
        s2_folder(folder / ident, n=24, scl=False, seed=10 + i)
        assets = {
            key: {"href": f"./{ident}/{band}.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}
            for band, key in keys.items()
        }
        if remote and i == len(ids) - 1:
            assets[keys[remote]]["href"] = f"https://example.com/{ident}/{remote}.tif"
            shutil.copy(folder / ident / f"{remote}.tif", folder / f"{remote}.tif")
        properties = {"platform": "sentinel-2a", "datetime": "2024-01-01T00:00:00Z"}
        features.append({"type": "Feature", "stac_version": "1.0.0", "id": ident, "properties": properties,
                         "geometry": None, "links": [], "assets": assets})  # fmt: skip
    path = folder / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.mark.slow
def test_item_collection_is_one_job_per_item_and_a_bad_item_fails_alone(tmp_path, cluster, capsys):
    ids = ["S2A_T1_20240101_L2A", "S2A_T2_20240101_L2A", "S2A_T3_20240101_L2A"]
    collection = write_collection(tmp_path / "coll", ids, remote="B05")
    out = tmp_path / "out"
    argv = ["batch", "--sharpen", str(collection), "--out-dir", str(out), "--method", "glp", "--bands"]
    assert main([*argv, OPTIONS["bands"], "--scheduler", cluster, "--quiet"]) == 1  # one item failed
    err = capsys.readouterr().err
    rows = json.loads((out / f"{REPORT_NAME}.json").read_text())["outcomes"]
    assert [r["input"] for r in rows] == [f"{collection}#{ident}" for ident in ids]
    assert [r["status"] for r in rows] == [DONE, DONE, FAILED]
    assert "is remote" in rows[2]["error"] and "'rededge1'" in rows[2]["error"] and rows[2]["error"] in err
    assert sorted(p.name for p in out.glob("*.tif")) == [f"{ident}.tif" for ident in ids[:2]]
    for ident in ids[:2]:  # each item equals sharpen(collection, item=id), and differs from the others
        assert_same_as_single(out / f"{ident}.tif", collection, tmp_path / "single" / f"{ident}.tif", item=ident)
    assert not np.array_equal(read(out / f"{ids[0]}.tif")[0], read(out / f"{ids[1]}.tif")[0])


def test_a_collection_needs_an_item_to_be_sharpened_alone(tmp_path, capsys):
    collection = write_collection(tmp_path / "coll", ["S2A_ONE", "S2A_TWO"])
    with pytest.raises(InputError, match="an ItemCollection of 2 items .* pick one with --item ID"):
        sharpen(collection, tmp_path / "o.tif", method="glp")
    with pytest.raises(InputError, match="no item 'S2A_THREE' in this ItemCollection; its items: S2A_ONE, S2A_TWO"):
        sharpen(collection, tmp_path / "o.tif", method="glp", item="S2A_THREE")
    assert main(["sharpen", str(collection), str(tmp_path / "o.tif"), "--item", "S2A_TWO", "--method", "bicubic"]) == 0
    assert "wrote" in capsys.readouterr().out
    provenance = io.read_provenance(tmp_path / "o.tif")
    assert provenance["product"]["product"] == "S2A_TWO" and provenance["product"]["kind"] == "stac"
    values, info = read(tmp_path / "o.tif")
    b02, _ = read(collection.parent / "S2A_TWO" / "B02.tif")  # the item's own files, found from the collection
    assert info["descriptions"][0] == "B02" and np.array_equal(values[0], b02[0])


def test_product_names_come_from_paths_and_item_ids(tmp_path):
    safe = tmp_path / "S2B_MSIL2A_20220101T000000_N0400_R001_T49JGM_20220101T000000.SAFE"
    img = safe / "GRANULE" / "L2A_T49JGM" / "IMG_DATA"
    img.mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text("<x/>")
    item = {"type": "Feature", "id": "S2B/29RKH 2023", "properties": {}, "assets": {}}
    (tmp_path / "item.json").write_text(json.dumps(item))
    (tmp_path / "broken.json").write_text("{not json")
    name = safe.name.removesuffix(".SAFE")
    assert (
        io.list_products(safe) == io.list_products(img) == io.list_products(safe / "MTD_MSIL2A.xml") == [(name, None)]
    )
    assert io.list_products(s2_folder(tmp_path / "S2X_COG", n=12)) == [("S2X_COG", None)]
    assert io.list_products(tmp_path / "item.json") == [("S2B_29RKH_2023", None)]  # the id, as a file name
    assert io.list_products(tmp_path / "broken.json") == [("broken", None)]  # its run will say what is wrong
    collection = write_collection(tmp_path / "coll", ["S2A_ONE", "S2A_TWO"])
    assert io.list_products(collection) == [("S2A_ONE", "S2A_ONE"), ("S2A_TWO", "S2A_TWO")]
    data = json.loads(collection.read_text())
    data["features"][1]["id"] = "S2A_ONE"
    collection.write_text(json.dumps(data))
    with pytest.raises(InputError, match="item id 'S2A_ONE' is given twice"):
        io.list_products(collection)
