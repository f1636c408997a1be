"""Batch throughput: the same inputs through ``geo_med_sr.batch`` with 1 and 2 Dask workers.

Ways, side by side in one run, each into a fresh output folder:

- ``serial``: a plain loop of :func:`geo_med_sr.super_resolve` in this process (all cores to
  torch), the reference for the batch runner's overhead;
- ``dask-N``: :func:`geo_med_sr.batch` on a new LocalCluster of N worker processes (each task
  with cores/N torch threads), cluster start-up and worker imports included: what
  ``geo-med-sr batch --workers N`` costs from the command line;
- ``rerun``: ``dask-2`` again over its own outputs: every input is skipped (hashing inputs and
  reading provenance only).

Inputs: the real files of ``../shared/data`` (2 MRI NIfTI volumes, 1 DICOM series, 3 GeoTIFFs;
each upscaled x2 with its bundled network) when present, else 6 synthetic files of similar size.
Prints a table (wall seconds, files/min, speed-up over serial, and the sum of the per-file task
times: in ``dask-N`` each task also pays its worker's first import of torch and MONAI) and
writes JSON with the per-file seconds::

    .venv/bin/python benchmarks/bench_batch.py --json benchmarks/results/bench_batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
REAL = [
    "mri/T2w_1x1x2mm.nii.gz",
    "mri/MR_Gd_T1gd_1mm_iso.nii.gz",
    "dicom/mr_t1_fl2d_sag_HFS",
    "geotiff/l8_B4.tif",
    "geotiff/LC08_232066_20190727.tif",
    "geotiff/RGB.byte.tif",
]


def synthetic_inputs(folder: Path) -> list[Path]:
    """Two NIfTI volumes, one DICOM series and three GeoTIFFs of sizes like the shared files."""
    import nibabel as nib
    import rasterio
    from rasterio.transform import from_origin

    from geo_med_sr import io
    from geo_med_sr.spatial import SpatialArray

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, shape in (("t2.nii.gz", (224, 224, 60)), ("t1.nii.gz", (176, 188, 144))):
        grid = np.meshgrid(*[np.linspace(0, 6, n) for n in shape], indexing="ij")
        volume = (500 + 300 * np.sin(grid[0]) * np.cos(grid[1] + grid[2]) + rng.normal(0, 20, shape)).astype(np.int16)
        nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), folder / name)
        paths.append(folder / name)
    volume = io.read(paths[0])
    io.write(
        SpatialArray(volume.array[:, :, :, :35].astype(np.int16), volume.affine, {"dtype": "int16"}), folder / "series"
    )
    paths.append(folder / "series")
    for name, (size, bands) in {"b4.tif": (620, 1), "lc08.tif": (320, 6), "rgb.tif": (760, 3)}.items():
        values = rng.integers(0, 4000, (bands, size, size)).astype("uint16")
        with rasterio.open(
            folder / name,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=bands,
            dtype="uint16",
            crs="EPSG:32618",
            transform=from_origin(500_000, 4_500_000, 30, 30),
        ) as dst:
            dst.write(values)
        paths.append(folder / name)
    return paths


def run_way(way: str, inputs: list[Path], out: Path) -> dict:
    from geo_med_sr import batch, super_resolve
    from geo_med_sr.io import adapter_for_input

    start = time.perf_counter()
    per_file = {}
    if way == "serial":
        out.mkdir(parents=True)
        for path in inputs:
            tick = time.perf_counter()
            super_resolve(path, out / adapter_for_input(path).output_name(path), 2, progress=False)
            per_file[path.name] = time.perf_counter() - tick
        statuses = ["done"] * len(inputs)
    else:
        workers = int(way.split("-")[1]) if way.startswith("dask-") else 2
        report = batch(inputs, out, 2, workers=workers, progress=False)
        statuses = [o.status for o in report.outcomes]
        per_file = {Path(o.input).name: o.seconds for o in report.outcomes}
        if report.failed:
            raise SystemExit(report.table())
    seconds = time.perf_counter() - start
    busy = sum(per_file.values())
    return {
        "way": way,
        "files": len(inputs),
        "seconds": seconds,
        "files_per_min": 60 * len(inputs) / seconds,
        "task_seconds": busy,
        "statuses": sorted(set(statuses)),
        "per_file_seconds": per_file,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="use synthetic inputs even when ../shared/data exists")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        real = SHARED.is_dir() and not args.synthetic and all((SHARED / p).exists() for p in REAL)
        inputs = [SHARED / p for p in REAL] if real else synthetic_inputs(work / "in")
        rows = [run_way(way, inputs, work / way) for way in ("serial", "dask-1", "dask-2")]
        rows.append(run_way("rerun", inputs, work / "dask-2"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    serial = rows[0]["seconds"]
    for row in rows:
        row["vs_serial"] = serial / row["seconds"]
    print(f"{'way':8} {'files':>5} {'seconds':>8} {'files/min':>9} {'x serial':>8} {'task s':>7}  statuses")
    for row in rows:
        print(
            f"{row['way']:8} {row['files']:5d} {row['seconds']:8.1f} {row['files_per_min']:9.2f} "
            f"{row['vs_serial']:8.2f} {row['task_seconds']:7.1f}  {','.join(row['statuses'])}"
        )
    result = {
        "inputs": "shared" if real else "synthetic",
        "input_names": [p.name for p in inputs],
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
        },
        "rows": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
