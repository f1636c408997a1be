"""``geo-med-sr demo``: the main job end to end on data the project generates itself.

* Medical: a synthetic MRI-like head phantom (oblique, 1 mm isotropic) is made thick-sliced by
  averaging every 4 slices (1x1x4 mm, the exact LR geometry), written as NIfTI and as a DICOM
  series, and upscaled back by ``1,1,4`` through the same pipeline users call (classical
  methods, and the bundled through-plane network when installed).
* Sharpening: a real Sentinel-2 crop shipped in the package (``geo_med_sr/samples``, CC BY 4.0) is
  sharpened to 10 m (``s2_sharpened_10m.tif``), and scored by the reduced-resolution protocol:
  bicubic, MTF-GLP and ``self`` (the bundled guided network fine-tuned on the crop itself for 100 steps).
* Satellite: a synthetic 4-band uint16 scene (UTM CRS, rotated 30 m grid, nodata collar) is
  block-averaged to 60 m and upscaled back by 2 into a Cloud-Optimized GeoTIFF (classical
  methods and the bundled ``sat-edsr-x2``).

PSNR against the truth and side-by-side PNGs show the results.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from geo_med_sr import __version__, io
from geo_med_sr.degrade import block_average
from geo_med_sr.errors import ModelError, OutputError, file_error
from geo_med_sr.geometry import corner_to_centre
from geo_med_sr.inference.protocols import Window
from geo_med_sr.metrics.image import psnr
from geo_med_sr.optional import available, require
from geo_med_sr.spatial import SpatialArray

SCALE = (1, 1, 4)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``demo`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "demo",
        help="run the main job on generated sample data",
        description=(
            "Generate a synthetic oblique MRI-like volume, make it thick-sliced, upscale it from NIfTI and "
            "from DICOM, and write outputs plus a side-by-side PNG."
        ),
    )
    p.add_argument(
        "--out",
        default="demo_output",
        help="folder for the demo's files (default demo_output); files the demo made before are replaced",
    )


def run(args: argparse.Namespace) -> None:
    """Run the demo into ``args.out``."""
    run_demo(args.out)


def oblique_affine(spacing: tuple[float, float, float], angles_deg: tuple[float, float] = (12.0, -7.0)) -> np.ndarray:
    """Centre-anchored RAS affine rotated about x then z by ``angles_deg``, with ``spacing`` mm."""
    ax, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag(spacing)
    affine[:3, 3] = (-40.0, -45.0, -30.0)
    return affine


def make_phantom(shape: tuple[int, int, int] = (72, 80, 64), seed: int = 0) -> np.ndarray:
    """A head-like int16 volume ``(X, Y, Z)``: skull shell, brain, ventricles, lesions, texture."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    x, y, z = grids

    def ellipsoid(cx, cy, cz, rx, ry, rz):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0

    vol = np.zeros(shape, np.float32)
    vol[ellipsoid(0, 0, 0, 0.9, 0.95, 0.85)] = 900.0
    vol[ellipsoid(0, 0, 0, 0.8, 0.85, 0.75)] = 450.0
    vol[ellipsoid(-0.15, 0.05, 0.05, 0.12, 0.35, 0.2)] = 150.0
    vol[ellipsoid(0.15, 0.05, 0.05, 0.12, 0.35, 0.2)] = 150.0
    for _ in range(12):
        c = rng.uniform(-0.5, 0.5, 3)
        r = rng.uniform(0.04, 0.1)
        vol[ellipsoid(*c, r, r, r * rng.uniform(0.6, 1.5))] = rng.uniform(600, 800)
    stripes = 40.0 * np.sin(9 * np.pi * x + 3 * z) * (vol > 300)
    noise = rng.normal(0, 8, shape)
    return np.clip(vol + stripes + noise, 0, None).astype(np.int16)


def make_scene(width: int = 240, height: int = 200, seed: int = 0) -> SpatialArray:
    """A 4-band uint16 "surface reflectance x1e4" scene ``(4, W, H)`` on a rotated UTM grid.

    Fields, a river and roads at several scales, with a nodata (0) collar on two sides.
    """
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64), indexing="ij")
    fields = np.floor(x / 23) * 7 + np.floor(y / 17) * 13
    fields = (np.sin(fields) + 1) / 2
    river = np.exp(-(((y - 90 - 25 * np.sin(x / 30)) / 4) ** 2))
    roads = ((np.abs((x + 0.6 * y) % 61 - 30) < 1.2) | (np.abs((y - 0.3 * x) % 47 - 20) < 1.0)).astype(float)
    bands = []
    for b, (base, f, r, w) in enumerate(
        [(600, 500, -300, 900), (900, 900, -500, 900), (800, 700, -600, 1200), (2500, 2500, -2200, 300)]
    ):
        texture = rng.normal(0, 40 + 10 * b, (width, height))
        bands.append(base + f * fields + r * river + w * roads + texture)
    array = np.clip(np.stack(bands), 1, 65535).astype(np.uint16)
    valid = ~((x < 12 + 0.1 * y) | (y > height - 10))
    array[:, ~valid] = 0
    angle = np.deg2rad(8.0)
    corner = np.array(
        [
            [30 * np.cos(angle), 30 * np.sin(angle), 500000.0],
            [30 * np.sin(angle), -30 * np.cos(angle), 4500000.0],
            [0, 0, 1],
        ]
    )
    meta = {
        "format": "geotiff",
        "dtype": "uint16",
        "geotiff": {
            "crs": "EPSG:32618",
            "nodata": 0.0,
            "descriptions": ["blue", "green", "red", "nir"],
            "tags": {"SOURCE": "geo_med_sr demo scene"},
            "area_or_point": "Area",
        },
    }
    return SpatialArray(array, corner_to_centre(corner), meta, valid)


def _save_figure(path: Path, panels: dict[str, np.ndarray], title: str) -> None:
    """A row of panels (2D grey or RGB ``(W, H, 3)``) as a PNG; skipped with a note without matplotlib."""
    if not available("matplotlib"):
        print(f"{path.name} not written: figures need matplotlib (pip install 'geo-med-sr[plot]')")
        return
    matplotlib = require("matplotlib", "the demo's figures")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "the demo's figures")

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    vmax = max(float(p.max()) for p in panels.values())
    for ax, (name, img) in zip(axes, panels.items()):
        rgb = img.ndim == 3
        shown = np.clip(img / vmax, 0, 1).transpose(1, 0, 2) if rgb else img.T
        ax.imshow(
            shown,
            cmap=None if rgb else "gray",
            origin="upper" if rgb else "lower",
            vmin=0,
            vmax=1 if rgb else vmax,
            interpolation="nearest",
        )
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(out: str | os.PathLike = "demo_output") -> dict[str, float]:
    """Run the demo into ``out``; returns PSNR (dB) per output against the phantom."""
    from geo_med_sr.upscale.config import SRConfig  # pydantic + yaml: only when the demo runs
    from geo_med_sr.upscale.pipeline import super_resolve  # torch: only when the demo runs

    out = Path(out)
    if out.exists() and not (out / ".geo_med_sr_demo").exists():
        raise file_error(OutputError, out, "exists and was not made by the demo; choose another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / ".geo_med_sr_demo").write_text("made by geo-med-sr demo; its files are replaced on the next run\n")

    hr = SpatialArray(
        make_phantom()[np.newaxis],
        oblique_affine((1.0, 1.0, 1.0)),
        {"format": "nifti", "dtype": "int16", "description": "geo_med_sr phantom"},
    )
    lr = block_average(hr, SCALE)
    lr = SpatialArray(np.rint(lr.array).astype(np.int16), lr.affine, {**lr.meta, "description": "phantom 1x1x4 mm"})
    paths = {name: out / name for name in ("phantom_1mm.nii.gz", "thick_1x1x4mm.nii.gz", "thick_1x1x4mm_dicom")}
    for name, image in (("phantom_1mm.nii.gz", hr), ("thick_1x1x4mm.nii.gz", lr), ("thick_1x1x4mm_dicom", lr)):
        io.write(_sample(image), paths[name], overwrite=True)

    jobs = [
        ("thick_1x1x4mm.nii.gz", "sr_nearest.nii.gz", "nearest"),
        ("thick_1x1x4mm.nii.gz", "sr_linear.nii.gz", "linear"),
        ("thick_1x1x4mm.nii.gz", "sr_bspline.nii.gz", "bspline"),
        ("thick_1x1x4mm_dicom", "sr_bspline_dicom", "bspline"),
        ("thick_1x1x4mm_dicom", "sr_bspline_from_dicom.nii.gz", "bspline"),
    ]
    if _bundled(SCALE, "medical"):
        jobs.append(("thick_1x1x4mm.nii.gz", "sr_model.nii.gz", "model"))
    scores: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    crop = Window.from_shape(lr.array.shape[1:] * np.array(SCALE)).toslices()
    for src, dst, method in jobs:
        config = SRConfig().updated(model={"method": method})
        super_resolve(out / src, out / dst, SCALE, config, overwrite=True, progress=False)
        result = io.read(out / dst)
        if np.abs(result.affine - hr.affine).max() > 1e-4:
            raise RuntimeError(f"demo output {dst} is off the phantom's grid; please report this bug")
        outputs[dst] = result.array[0]
        scores[dst] = psnr(hr.array[0][crop], result.array[0])
    from geo_med_sr.models.bundled import available

    names = ", ".join(m.name for m in available()) or "none installed (run make weights)"
    print(
        f"method model = the bundled network for the scale (bundled: {names}); --method self trains one on the image "
        "itself"
    )
    print(f"{'output':<34} {'method':<8} {'PSNR vs 1 mm phantom':>20}")
    for _src, dst, method in jobs:
        print(f"{dst:<34} {method:<8} {scores[dst]:>17.2f} dB")
    j = hr.array.shape[2] // 2
    _save_figure(
        out / "side_by_side.png",
        {
            "thick input (nearest)": outputs["sr_nearest.nii.gz"][:, j, :],
            "linear": outputs["sr_linear.nii.gz"][:, j, :],
            "cubic B-spline": outputs["sr_bspline.nii.gz"][:, j, :],
            **({"bundled network": outputs["sr_model.nii.gz"][:, j, :]} if "sr_model.nii.gz" in outputs else {}),
            "1 mm phantom (truth)": hr.array[0][crop][:, j, :],
        },
        "geo-med-sr demo: 1x1x4 mm -> 1x1x1 mm (slice through the thick axis)",
    )
    scores.update(_satellite_demo(out))
    scores.update(_sharpen_demo(out))
    print(
        f"wrote {out}/ (NIfTI, DICOM series, COG GeoTIFFs, side_by_side.png, side_by_side_geotiff.png, "
        "side_by_side_sharpen.png)"
    )
    return scores


def _sample(image: SpatialArray) -> SpatialArray:
    """``image`` marked as a sample this tool made (its provenance), so the next demo run may replace it."""
    provenance = {"tool": f"geo_med_sr {__version__}", "method": "demo sample (synthetic)"}
    return SpatialArray(image.array, image.affine, {**image.meta, "provenance": provenance}, image.valid)


def _bundled(scale: tuple[int, ...], domain: str) -> bool:
    """Whether a bundled model serves ``scale`` for ``domain`` (the demo then shows it too)."""
    from geo_med_sr.models.bundled import default_for

    try:
        default_for(domain, tuple(scale))
    except ModelError:
        return False
    return True


def _satellite_demo(out: Path) -> dict[str, float]:
    """Scene at 30 m -> block average to 60 m (GeoTIFF) -> x2 back to a COG; PSNR on valid pixels."""
    from geo_med_sr.upscale.config import SRConfig  # pydantic + yaml: only when the demo runs
    from geo_med_sr.upscale.pipeline import super_resolve

    scene = make_scene()
    lr = block_average(scene, 2)
    lr = SpatialArray(np.rint(lr.array).astype(np.uint16), lr.affine, lr.meta, lr.valid)
    io.write(_sample(scene), out / "scene_30m.tif", overwrite=True)
    io.write(_sample(lr), out / "scene_60m.tif", overwrite=True)
    scores, rgb = {}, {}
    for method in ("nearest", "bspline", "model") if _bundled((2, 2), "geo") else ("nearest", "bspline"):
        dst = out / f"scene_60m_x2_{method}.tif"
        super_resolve(
            out / "scene_60m.tif", dst, 2, SRConfig().updated(model={"method": method}), overwrite=True, progress=False
        )
        result = io.read(dst)
        if np.abs(result.affine - scene.affine).max() > 1e-6:
            raise RuntimeError(f"demo output {dst.name} is off the scene's grid; please report this bug")
        both = scene.valid & (result.valid if result.valid is not None else True)
        scores[dst.name] = psnr(scene.array[:, both], result.array[:, both])
        rgb[method] = result.array[[2, 1, 0]].transpose(1, 2, 0).astype(np.float64)
    print(f"{'scene_60m.tif -> 30 m':<34} {'method':<8} {'PSNR vs 30 m scene':>20}")
    for name, value in scores.items():
        print(f"{name:<34} {name.split('_')[-1][:-4]:<8} {value:>17.2f} dB")
    truth = scene.array[[2, 1, 0]].transpose(1, 2, 0).astype(np.float64)
    _save_figure(
        out / "side_by_side_geotiff.png",
        {
            "60 m input (nearest)": rgb["nearest"],
            "cubic B-spline x2": rgb["bspline"],
            **({"bundled network x2": rgb["model"]} if "model" in rgb else {}),
            "30 m scene (truth)": truth,
        },
        "geo-med-sr demo: 4-band GeoTIFF 60 m -> 30 m (RGB), COG output",
    )
    return scores


#: self-training steps in the demo's sharpening example (steps, not seconds: the demo is reproducible).
DEMO_SELF_STEPS = 100


def sample_s2() -> Path:
    """The Sentinel-2 crop shipped with the package (12 bands, 10/20/60 m; see its ATTRIBUTION.md)."""
    from importlib import resources

    return Path(str(resources.files("geo_med_sr.samples").joinpath("s2_T49JGM_crop")))


def _sharpen_demo(out: Path) -> dict[str, float]:
    """The shipped S2 crop sharpened to 10 m (a COG), and the 20 m bands scored at reduced resolution."""
    from geo_med_sr.sharpening.evaluate import evaluate_sharpening, format_sharpen_table
    from geo_med_sr.sharpening.pipeline import sharpen

    crop = sample_s2()
    result = sharpen(crop, out / "s2_sharpened_10m.tif", method="glp", overwrite=True, progress=False)
    print(f"s2_sharpened_10m.tif: {len(result.bands)} bands on the 10 m grid ({result.shape[0]}x{result.shape[1]})")
    methods = ["bicubic", "glp", "self"] + (["model"] if _bundled_guided() else [])
    report = evaluate_sharpening([crop], methods=methods, ratios=[2], steps=DEMO_SELF_STEPS, keep_arrays=True)
    print("Sentinel-2 20 m bands restored from 40 m with the 10 m bands at 20 m (reduced-resolution protocol):")
    print(format_sharpen_table(report))
    group = report["groups"][0]
    arrays = group["_arrays"]
    pick = [group["bands"].index(b) for b in ("B12", "B8A", "B05")]
    panels = {name: arrays["outputs"][name][pick].transpose(1, 2, 0) for name in methods}
    panels["truth (20 m)"] = arrays["truth"][pick].transpose(1, 2, 0)
    _save_figure(out / "side_by_side_sharpen.png", panels, "geo-med-sr demo: S2 20 m bands x2 (B12, B8A, B05)")
    return {f"sharpen_{k}": v["psnr_mean"] for k, v in group["methods"].items() if "psnr_mean" in v}


def _bundled_guided() -> bool:
    from geo_med_sr.models.bundled import find

    return find("s2-guided-x2") is not None
