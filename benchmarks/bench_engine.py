"""Engine benchmark: our patch engine vs MONAI's sliding window vs the network's own compute.

The same network and weights run three ways on the same input, each in a fresh process:

(a) ``engine``: ``geo_med_sr.super_resolve`` from file to file (read, fit the normaliser,
    normalise, streamed columns (default settings: up to 256 LR pixels in-plane, whole last
    axis) with the halo, network, inverse, write; float32 output so values can be compared;
    a tiled GeoTIFF, no COG conversion), what ``geo-med-sr upscale --float32 --no-cog`` runs;
(b) ``monai``: ``monai.inferers.sliding_window_inference`` on the normalised image in memory,
    windows of ``patch + 2*halo`` with overlap ``2*halo / (patch + 2*halo)`` (so the windows step
    by ``patch`` like our tiles) and Gaussian blending; only the call is timed;
(c) ``floor``: the network alone on non-overlapping tiles of ``patch`` (the last ones along an
    axis smaller, so no pixel is computed twice) of the normalised image in memory, outputs
    discarded (the compute floor); only the loop is timed.

(b) and (c) run with the same CPU settings as (a): the network in channels-last layout and
glibc's freed memory kept for reuse (``geo_med_sr.inference.memory``).

Cases (CPU by default): ``mri3d`` — a 192x224x192 NIfTI volume x2 with the bundled
``mri-edsr3d-x2``; ``sat2d`` — a 4-band 4096x4096 uint16 GeoTIFF x2 with the bundled
``sat-edsr-x2`` (a one-band network run on every band). Inputs are synthetic (smooth structure
plus noise), so no shared data is needed.

Exactness: "whole-image inference" is the network applied to the whole image mirror-padded by its
receptive radius. A whole 4096^2 image does not fit through the network in memory, so the
reference is computed on probe windows (corners and the centre, which straddles tile borders):
the network on the window grown by its receptive radius (mirror-padded at the image border),
cropped back; outputs depend only on input within the receptive radius (tested in
``tests/inference``), so this equals whole-image inference on those windows. Differences are
reported in normalised units (the network's own units; 1.0 = the 1st-99th percentile range),
over all probes and over the centre probe alone (away from the image border, across tile seams).

Peak RSS is each worker process's ``ru_maxrss`` (imports included: about 350 MB for torch and
MONAI in every way). Usage::

    .venv/bin/python benchmarks/bench_engine.py --json benchmarks/results/bench_engine.json
    .venv/bin/python benchmarks/bench_engine.py --cases mri3d --size-3d 96 112 96   # quick
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = {
    "mri3d": {"model": "mri-edsr3d-x2", "scale": 2, "suffix": ".nii"},
    "sat2d": {"model": "sat-edsr-x2", "scale": 2, "suffix": ".tif"},
}
WAYS = ("engine", "monai", "floor")


# ------------------------------------------------------------------ inputs


def make_volume(path: Path, shape: tuple[int, int, int]) -> None:
    """A smooth int16 'head' (ellipsoid shells, texture, noise) with an oblique affine."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grids))
    vol = 600 * (r < 0.9) + 300 * (r < 0.7) + 200 * np.sin(9 * grids[0]) * np.cos(7 * grids[1]) * (r < 0.8)
    vol = vol + rng.normal(0, 20, shape)
    affine = np.array([[0.98, 0.1, 0.0, -90.0], [-0.1, 0.98, 0.05, -110.0], [0.0, -0.05, 1.0, -80.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(vol.astype(np.int16), affine), path)


def make_raster(path: Path, size: int, bands: int = 4) -> None:
    """A 4-band uint16 tiled GeoTIFF with a CRS and no nodata (the streaming benchmark's
    generator; nodata pixels would be filled and re-masked, which the reference does not do)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_stream import make_raster as make

    make(path, size, bands, nodata=False)


def make_input(case: str, work: Path, args: argparse.Namespace) -> Path:
    path = work / f"{case}_input{CASES[case]['suffix']}"
    if case == "mri3d":
        make_volume(path, tuple(args.size_3d))
    else:
        make_raster(path, args.size_2d)
    return path


# ------------------------------------------------------------------ shared helpers (worker side)


def load_model(case: str):
    from geo_med_sr.models.checkpoint import resolve_model

    model, _ = resolve_model(CASES[case]["model"])
    return model.eval()


def per_band(model):
    """Run a one-channel network on every channel (channels go through the batch)."""

    def predictor(x):
        b, c = x.shape[:2]
        y = model(x.reshape(b * c, 1, *x.shape[2:]))
        return y.reshape(b, c, *y.shape[2:])

    return predictor


def normalised_input(case: str, src: Path):
    """``(C, *S)`` float32 normalised image, normaliser stats (as the engine fits them)."""
    from geo_med_sr import io
    from geo_med_sr.inference.arrays import ArraySource
    from geo_med_sr.upscale.config import SRConfig
    from geo_med_sr.upscale.methods import resolve_method
    from geo_med_sr.upscale.pipeline import fit_normalizer

    image = io.read(src)
    config = SRConfig().updated(model={"name": CASES[case]["model"]})
    scale = (CASES[case]["scale"],) * image.spatial_dims
    method = resolve_method(config, domain=io.domain_of(image.meta), scale=scale)
    normalizer, stats = fit_normalizer(method, ArraySource.from_image(image))
    return normalizer.forward(image.array, stats), stats


def probe_boxes(spatial: tuple[int, ...], size: int) -> list[tuple[tuple[int, int], ...]]:
    """Top corner, centre and bottom corner windows of ``size`` LR pixels per axis."""
    size = min(size, *spatial)
    corner0 = tuple((0, size) for _ in spatial)
    centre = tuple(((n - size) // 2, (n - size) // 2 + size) for n in spatial)
    corner1 = tuple((n - size, n) for n in spatial)
    return [corner0, centre, corner1]


def floor_tiles(spatial: tuple[int, ...], patch: int) -> list[tuple[tuple[int, int], ...]]:
    """Non-overlapping tiles of ``patch`` covering ``spatial`` exactly (the last ones smaller)."""
    axes = [[(a, min(a + patch, n)) for a in range(0, n, patch)] for n in spatial]
    return [tuple(t) for t in itertools.product(*axes)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ workers


def worker(case: str, way: str, src: Path, out_dir: Path, args: argparse.Namespace) -> dict:
    import torch

    from geo_med_sr.inference.device import resolve_device

    torch.manual_seed(0)
    device = resolve_device(args.device)
    scale = CASES[case]["scale"]
    model = load_model(case).to(device)
    halo = model.receptive_radius
    result: dict = {"case": case, "way": way}
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    if way == "engine":
        from geo_med_sr.upscale.config import SRConfig
        from geo_med_sr.upscale.pipeline import super_resolve

        config = SRConfig().updated(
            model={"name": CASES[case]["model"]},
            inference={
                "patch_size": args.patch,
                "column_size": args.column,
                "chunk_mb": args.chunk_mb,
                "batch_size": args.batch,
                "device": args.device,
                "amp": args.amp,
            },
            output={"dtype": "float32"},
        )
        dst = out_dir / f"{case}_engine{CASES[case]['suffix']}"
        t0 = time.perf_counter()
        res = super_resolve(src, dst, scale, config, overwrite=True, progress=False, cog=False)
        result["seconds"] = time.perf_counter() - t0
        result["peak_rss_mb"] = peak_rss_mb()
        stats = res.provenance["normalization"]
        result["probes"] = read_probes(dst, case, res.input_shape, scale, stats, args.probe)
        result["out_vox"] = int(np.prod(res.output_shape)) * (4 if case == "sat2d" else 1)
    else:
        x, stats = normalised_input(case, src)
        spatial = x.shape[1:]
        xt = torch.from_numpy(x)[None]
        if device.type == "cpu":  # oneDNN's fast layout, as the engine uses (fair to (b) and (c))
            model = model.to(memory_format=torch.channels_last if len(spatial) == 2 else torch.channels_last_3d)
        predictor = per_band(model) if x.shape[0] > 1 else model
        from geo_med_sr.inference.memory import reuse_freed_memory

        # the same allocator setting the engine uses, so (b) and (c) are not slowed by page faults
        with torch.inference_mode(), reuse_freed_memory(device.type == "cpu"):
            if way == "monai":
                from monai.inferers import sliding_window_inference

                roi = args.patch + 2 * halo
                overlap = 2 * halo / roi
                t0 = time.perf_counter()
                y = sliding_window_inference(
                    xt, roi, args.batch, predictor, overlap=overlap, mode="gaussian", sw_device=device, device="cpu"
                )
                result["seconds"] = time.perf_counter() - t0
                result["peak_rss_mb"] = peak_rss_mb()
                result["probes"] = [
                    y[0][(slice(None),) + tuple(slice(a * scale, b * scale) for a, b in box)].numpy()
                    for box in probe_boxes(spatial, args.probe)
                ]
                result["out_vox"] = int(y[0].numel())
            elif way == "floor":
                tiles = floor_tiles(spatial, args.patch)
                t0 = time.perf_counter()
                for i in range(0, len(tiles), args.batch):
                    group = tiles[i : i + args.batch]
                    for shape in dict.fromkeys(
                        tuple(b - a for a, b in t) for t in group
                    ):  # equal shapes batch together
                        same = [t for t in group if tuple(b - a for a, b in t) == shape]
                        batch = torch.stack([xt[0][(slice(None),) + tuple(slice(a, b) for a, b in t)] for t in same])
                        predictor(batch.to(device))
                if cuda:
                    torch.cuda.synchronize()
                result["seconds"] = time.perf_counter() - t0
                result["peak_rss_mb"] = peak_rss_mb()
                result["out_vox"] = int(np.prod(spatial)) * x.shape[0] * scale ** len(spatial)
            elif way == "ref":
                from geo_med_sr.inference.arrays import ArraySource, read_reflected

                source = ArraySource(x)
                probes = []
                for box in probe_boxes(spatial, args.probe):
                    grown = tuple((a - halo, b + halo) for a, b in box)
                    window = torch.from_numpy(np.ascontiguousarray(read_reflected(source, grown)))[None].to(device)
                    y = predictor(window)[0].float().cpu().numpy()
                    probes.append(y[(slice(None),) + tuple(slice(halo * scale, -halo * scale) for _ in spatial)])
                result["probes"] = probes
                result["halo"] = halo
            else:
                raise SystemExit(f"unknown way {way}")
    if cuda:
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def read_probes(dst: Path, case: str, spatial: tuple[int, ...], scale: int, stats: dict, size: int) -> list[np.ndarray]:
    """The engine's output at the probe windows, back in normalised units."""
    from geo_med_sr import io
    from geo_med_sr.normalize import Normalizer

    out = io.read(dst).array
    return [
        np.asarray(
            Normalizer.forward(out[(slice(None),) + tuple(slice(a * scale, b * scale) for a, b in box)], stats),
            np.float32,
        )
        for box in probe_boxes(spatial, size)
    ]


# ------------------------------------------------------------------ driver


def run_worker(case: str, way: str, src: Path, work: Path, args: argparse.Namespace) -> dict:
    out = work / f"{case}_{way}.npz"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        case,
        way,
        str(src),
        str(out),
        "--patch",
        str(args.patch),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
        "--probe",
        str(args.probe),
    ]
    cmd += ["--column", str(args.column)] if args.column else []
    cmd += ["--chunk-mb", str(args.chunk_mb)] if args.chunk_mb else []
    if args.amp:
        cmd.append("--amp")
    if args.model:
        cmd += ["--model", args.model]
    subprocess.run(cmd, check=True)
    data = np.load(out, allow_pickle=True)
    return data["result"].item()


def max_diff(probes: list[np.ndarray], ref: list[np.ndarray]) -> float:
    return max(float(np.abs(p.astype(np.float64) - r).max()) for p, r in zip(probes, ref))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["mri3d", "sat2d"])
    parser.add_argument("--size-3d", nargs=3, type=int, default=[192, 224, 192], metavar=("X", "Y", "Z"))
    parser.add_argument("--size-2d", type=int, default=4096)
    parser.add_argument("--patch", type=int, default=None, help="tile size in LR pixels (default: 64 in 3D, 256 in 2D)")
    parser.add_argument(
        "--batch", type=int, default=None, help="tiles/columns per forward pass (default: 1 in 3D, 4 in 2D)"
    )
    parser.add_argument("--probe", type=int, default=None, help="probe window size (default: 40 in 3D, 160 in 2D)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--column", type=int, default=None, help="engine: largest streamed column size (default: the engine's, 256)"
    )
    parser.add_argument(
        "--chunk-mb",
        type=float,
        default=None,
        help="engine: size target of a streamed chunk's widest feature buffer (default: the engine's, 32)",
    )
    parser.add_argument("--amp", action="store_true", help="mixed precision on CUDA for (a)")
    parser.add_argument(
        "--ways", nargs="+", choices=WAYS, default=list(WAYS), help="which ways to run (ratios need all three)"
    )
    parser.add_argument(
        "--model", default=None, help="bundled name or checkpoint replacing the case's network (e.g. sat-edsr-x2-fast)"
    )
    parser.add_argument(
        "--project", type=int, default=10980, help="also project (a)'s time for a PROJECT^2 4-band scene x2 (2D case)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.model:
        for case in CASES.values():
            case["model"] = args.model
    if args.worker:
        case, way, src, out = args.worker
        result = worker(case, way, Path(src), Path(out).parent, args)
        np.savez(out, result=np.array(result, dtype=object))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        work = Path(tmp)
        for case in args.cases:
            case_args = argparse.Namespace(**vars(args))
            case_args.patch = args.patch or (64 if case == "mri3d" else 256)
            case_args.probe = args.probe or (40 if case == "mri3d" else 160)
            case_args.batch = args.batch or (1 if case == "mri3d" else 4)
            src = make_input(case, work, case_args)
            ref = run_worker(case, "ref", src, work, case_args)
            halo = ref["halo"]
            results = {way: run_worker(case, way, src, work, case_args) for way in args.ways}
            for way in args.ways:
                r = results[way]
                row = {
                    "case": case,
                    "way": way,
                    "model": CASES[case]["model"],
                    "device": args.device,
                    "patch": case_args.patch,
                    "halo": halo,
                    "batch": case_args.batch,
                    "seconds": round(r["seconds"], 3),
                    "out_mvox_per_s": round(r["out_vox"] / r["seconds"] / 1e6, 3),
                    "peak_rss_mb": round(r["peak_rss_mb"], 1),
                }
                if "cuda_peak_mb" in r:
                    row["cuda_peak_mb"] = round(r["cuda_peak_mb"], 1)
                if "probes" in r:
                    row["max_abs_diff"] = max_diff(r["probes"], ref["probes"])
                    row["max_abs_diff_centre"] = max_diff(r["probes"][1:2], ref["probes"][1:2])
                rows.append(row)
            a, b, c = (results.get(way) for way in WAYS)
            engine_row = next((r for r in rows[-len(args.ways) :] if r["way"] == "engine"), {})
            if a and b:
                engine_row["vs_monai_speed"] = round(b["seconds"] / a["seconds"], 3)
                engine_row["vs_monai_rss"] = round(a["peak_rss_mb"] / b["peak_rss_mb"], 3)
            if a and c:
                engine_row["vs_floor_time"] = round(a["seconds"] / c["seconds"], 3)
            if a and case == "sat2d":
                rate = a["out_vox"] / a["seconds"]  # output pixels x bands per second
                engine_row[f"projection_{args.project}_min"] = round(
                    args.project**2 * 4 * CASES[case]["scale"] ** 2 / rate / 60, 1
                )
    print_table(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


def print_table(rows: list[dict]) -> None:
    cols = [
        "case",
        "way",
        "model",
        "patch",
        "halo",
        "seconds",
        "out_mvox_per_s",
        "peak_rss_mb",
        "cuda_peak_mb",
        "max_abs_diff",
        "max_abs_diff_centre",
        "vs_monai_speed",
        "vs_monai_rss",
        "vs_floor_time",
        *sorted({k for r in rows for k in r if k.startswith("projection_")}),
    ]
    cols = [c for c in cols if any(c in r for r in rows)]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.2e}" if isinstance(v, float) and c.startswith("max_abs") else str(v))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
