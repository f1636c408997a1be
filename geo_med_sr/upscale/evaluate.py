"""``geo-med-sr evaluate``: degrade a reference, restore it with each method, measure.

Protocol (documented in the README):

* The reference is cropped to a whole number of blocks, degraded by a model of
  :mod:`geo_med_sr.degrade` (``blockavg`` by default: exact geometry), and the float LR image
  is restored by each method through the same pipeline ``upscale`` uses, each method resolved
  once (:func:`~geo_med_sr.upscale.methods.resolve_method`).
* PSNR and SSIM (:mod:`geo_med_sr.metrics.image`: MONAI's ``PSNRMetric`` and ``compute_ssim_and_cs``,
  Gaussian window 11, sigma 1.5) are computed on valid pixels only (the reference's valid mask;
  SSIM windows must lie wholly on valid pixels), with a border of ``scale`` HR pixels per side
  excluded, all channels together, and the data range = max - min of the reference's valid pixels.
* Data consistency: the RMS of ``D(output) - LR`` on valid LR pixels, as a fraction of the data
  range; ``bspline-ibp`` and ``--consistency`` drive it towards 0.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geo_med_sr import io
from geo_med_sr.degrade import build_degradation
from geo_med_sr.errors import ConfigError, InputError, OutputError, file_error
from geo_med_sr.metrics.image import SSIM_SIGMA, SSIM_WINDOW, crop_to_blocks, data_range, psnr, ssim, valid_region
from geo_med_sr.optional import require
from geo_med_sr.scale import for_input as scale_for_input
from geo_med_sr.spatial import SpatialArray
from geo_med_sr.upscale.config import SRConfig, as_config
from geo_med_sr.upscale.guided import check_request
from geo_med_sr.upscale.methods import learned_methods, resolve_method
from geo_med_sr.upscale.pipeline import GuideInput, upscale_image


@dataclass(frozen=True)
class MethodScore:
    """Scores of one method; ``consistency`` as a fraction of the data range."""

    method: str
    psnr: float
    ssim: float
    consistency: float
    seconds: float


def evaluate(
    reference: str | os.PathLike,
    scale: str | int | Sequence[int],
    methods: Sequence[str] = ("bicubic", "bspline", "bspline-ibp"),
    *,
    model: str | None = None,
    degrade: str = "blockavg",
    consistency: bool = False,
    ensemble: bool = False,
    config: SRConfig | None = None,
    series: str | None = None,
    bands: Sequence[int] | None = None,
    guide: str | os.PathLike | None = None,
    guide_registered: bool = False,
    allow_other_study: bool = False,
) -> dict[str, Any]:
    """Degrade ``reference`` by ``scale``, restore it with each method and score the results.

    Args:
        reference: an image file or DICOM folder (read whole: evaluation images are small).
        scale: one factor or one per spatial axis (index order).
        methods: ``model`` (needs ``model``), or classical ``bicubic``, ``bspline``,
            ``bspline-ibp``, ``linear``, ``nearest``.
        model: checkpoint for the ``model`` method.
        degrade: degradation model name (``blockavg``, ``gaussian``, ``slice``).
        consistency: also score each method followed by back-projection (``<method>+ibp``).
        ensemble: run the learned methods (``model``, ``self``) with the geometric self-ensemble
            (``<method>+ens``); classical methods are symmetric already and run as they are.
        config: base configuration (normalisation, inference settings).
        guide: a finer volume of the same subject (guided MRI): ``self`` is restored with it (rows
            ``self+guide``; the guide is registered onto the degraded reference unless
            ``guide_registered``); the other methods ignore it.
        guide_registered, allow_other_study: as for :func:`~geo_med_sr.upscale.pipeline.super_resolve`.

    Returns:
        JSON-able dict with the protocol, the shapes and one entry per method.
    """
    config = as_config(config)
    options: dict[str, Any] = {}
    if series:
        options["series"] = series
    try:
        band_list = io.parse_bands(bands)
    except ConfigError as exc:
        raise file_error(ConfigError, reference, str(exc)) from exc
    if band_list:
        options["bands"] = list(band_list)
    hr = io.read(reference, **options)
    factors = scale_for_input(scale, hr.spatial_dims, reference)
    guide_input = _guide(guide, hr, factors, methods, guide_registered, allow_other_study)
    _check_size(reference, hr.spatial_shape, factors)
    hr = crop_to_blocks(hr, factors)
    hr_float = SpatialArray(hr.array.astype(np.float32), hr.affine, hr.meta, hr.valid)
    degradation = build_degradation(degrade, factors, hr.spatial_dims)
    lr = degradation.apply(hr_float)
    peak = data_range(hr_float.array, hr.valid)
    if not np.isfinite(peak) or peak <= 0:
        raise file_error(
            InputError,
            reference,
            "the reference holds a single value on its valid pixels, so PSNR and SSIM are undefined; "
            "evaluate on an image with some contrast",
        )
    region = valid_region(hr.spatial_shape, factors, hr.valid)
    domain = io.domain_of(hr.meta)

    runs = [(m, False) for m in methods] + ([(m, True) for m in methods if m != "bspline-ibp"] if consistency else [])
    scores, outputs = [], {}
    for method, project in runs:
        ens = ensemble and method in learned_methods()
        guided = guide_input is not None and method == "self"
        name = method + ("+guide" if guided else "") + ("+ens" if ens else "") + ("+ibp" if project else "")
        cfg = config.updated(
            model={
                "method": method,
                "name": model if method == "model" else None,
                "consistency": project,
                "ensemble": ens,
                "degradation": degrade,
            }
        )
        resolved = resolve_method(cfg, domain=domain, scale=factors)
        start = time.perf_counter()
        out, _ = upscale_image(lr, factors, cfg, progress=False, method=resolved, guide=guide_input if guided else None)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            redegraded = degradation(torch.from_numpy(out.array)[None])[0].numpy()
        lr_region = np.ones(lr.spatial_shape, bool) if lr.valid is None else lr.valid
        rms = float(np.sqrt(np.mean((redegraded[:, lr_region] - lr.array[:, lr_region]) ** 2)))
        try:
            structural = ssim(hr_float.array, out.array, region, peak)
        except ConfigError as exc:
            raise file_error(InputError, reference, str(exc)) from exc
        scores.append(MethodScore(name, psnr(hr_float.array, out.array, region, peak), structural, rms / peak, seconds))
        outputs[name] = out.array
    result = {
        "reference": str(reference),
        "scale": list(factors),
        "degradation": degrade,
        "protocol": {
            "data_range": peak,
            "border_px": list(factors),
            "mask": "reference valid pixels",
            "ssim_window": SSIM_WINDOW,
            "ssim_sigma": SSIM_SIGMA,
        },
        "hr_shape": list(hr.spatial_shape),
        "lr_shape": list(lr.spatial_shape),
        "methods": [asdict(s) for s in scores],
    }
    result["gains_db"] = gains(result)
    result["_arrays"] = {"hr": hr_float.array, "lr": lr.array, "outputs": outputs, "region": region}
    return result


def _guide(
    guide: str | os.PathLike | None,
    hr: SpatialArray,
    factors: Sequence[int],
    methods: Sequence[str],
    registered: bool,
    allow_other_study: bool,
) -> GuideInput | None:
    """The guide volume for the ``self`` rows (read once, checked before any restoration), or None."""
    if guide is None:
        if registered or allow_other_study:
            raise ConfigError("--guide-registered and --allow-other-study apply to --guide")
        return None
    path = check_request(guide, io.domain_of(hr.meta), factors, "self")
    if "self" not in methods:
        raise ConfigError("--guide restores the self rows: add --method self")
    with io.naming(path):
        image = io.read(path)
    return GuideInput(image, path, registered, allow_other_study)


def _check_size(reference: object, shape: Sequence[int], factors: Sequence[int]) -> None:
    """Refuse a reference too small to degrade by ``factors`` and score: at least 3 LR pixels per
    axis, so that something is left inside the border of ``factor`` HR pixels per side."""
    for axis, (n, f) in enumerate(zip(shape, factors)):
        need = 3 * f if n > 1 else 1
        if n < need:
            raise file_error(
                InputError,
                reference,
                f"too small to evaluate at scale {tuple(factors)}: axis {axis} has {n} pixels and needs at least "
                f"{need} (3 LR pixels, a border of {f} pixels per side is left out of the scores)",
            )


#: what marks a report this tool wrote (JSON key, PNG text chunk), so a rerun may replace it.
REPORT_MARK = "geo_med_sr evaluate"


def check_report_paths(*paths: str | os.PathLike | None) -> None:
    """Before any work: each report path (``--json``, ``--plot``) must be writable, and an
    existing file there must be a report this tool wrote (anything else is never replaced).

    Raises:
        OutputError: naming the path.
    """
    for path in (Path(p) for p in paths if p is not None):
        parent = path.resolve().parent
        if not parent.is_dir():
            raise file_error(OutputError, path, f"the folder {parent} does not exist")
        if path.is_dir():
            raise file_error(OutputError, path, "is a folder; give a file name for the report")
        if not os.access(parent, os.W_OK):
            raise file_error(OutputError, path, f"cannot write in the folder {parent} (permission denied)")
        if path.exists() and not _is_our_report(path):
            raise file_error(
                OutputError, path, "exists and is not a report of geo-med-sr evaluate; choose another name"
            )


def _is_our_report(path: Path) -> bool:
    """Whether ``path`` is a JSON or PNG report written by :func:`save_json` / :func:`save_plot`."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data.startswith(b"\x89PNG"):
        return REPORT_MARK.encode() in data[:4096]
    try:
        content = json.loads(data)
    except ValueError:
        return False
    return isinstance(content, dict) and content.get("tool") == REPORT_MARK


def gains(result: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per method: PSNR gain (dB) over the best of bicubic/B-spline and over ``bspline-ibp``."""
    rows = result["methods"]
    classical = max((r["psnr"] for r in rows if r["method"] in ("bicubic", "bspline")), default=None)
    ibp = next((r["psnr"] for r in rows if r["method"] == "bspline-ibp"), None)
    return {
        r["method"]: {
            "over_classical": None if classical is None else r["psnr"] - classical,
            "over_bspline_ibp": None if ibp is None else r["psnr"] - ibp,
        }
        for r in rows
    }


def format_table(result: dict[str, Any]) -> str:
    """The scores as an aligned text table, with the gains over bicubic/B-spline and bspline-ibp."""
    gain = gains(result)

    def cell(value: float | None) -> str:
        return f"{'':>8}" if value is None else f"{value:+8.2f}"

    lines = [
        f"{result['reference']}  scale {tuple(result['scale'])}  degradation {result['degradation']}  "
        f"({tuple(result['lr_shape'])} -> {tuple(result['hr_shape'])})"
    ]
    lines.append(
        f"{'method':<18} {'PSNR dB':>8} {'gain dB':>8} {'vs ibp':>8} {'SSIM':>7} {'consistency':>12} {'seconds':>8}"
    )
    for r in result["methods"]:
        g = gain[r["method"]]
        lines.append(
            f"{r['method']:<18} {r['psnr']:>8.2f} {cell(g['over_classical'])} {cell(g['over_bspline_ibp'])} "
            f"{r['ssim']:>7.4f} {r['consistency']:>12.2e} {r['seconds']:>8.2f}"
        )
    lines.append("gain dB: over the best of bicubic and bspline; vs ibp: over bspline-ibp")
    return "\n".join(lines)


def save_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the JSON-able part of ``result``."""
    content = {"tool": REPORT_MARK, **{k: v for k, v in result.items() if not k.startswith("_")}}
    Path(path).write_text(json.dumps(content, indent=2))


def save_plot(result: dict[str, Any], path: str | os.PathLike) -> None:
    """LR / each method / HR panels (middle slice, first channel), a zoomed crop and error maps."""
    matplotlib = require("matplotlib", "evaluate --plot")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "evaluate --plot")

    arrays = result["_arrays"]
    hr, lr, outputs = arrays["hr"], arrays["lr"], arrays["outputs"]

    def plane(a: np.ndarray) -> np.ndarray:
        a = a[0]
        return a if a.ndim == 2 else a[:, :, a.shape[2] // 2]

    scale = result["scale"]
    lr_up = lr
    for axis, s in enumerate(scale):
        lr_up = np.repeat(lr_up, s, axis=axis + 1)
    panels = {"LR (nearest)": lr_up, **outputs, "HR reference": hr}
    vmin, vmax = np.percentile(plane(hr), [1, 99])
    ref = plane(hr)
    h, w = ref.shape
    crop = (slice(h // 3, h // 3 + max(16, h // 4)), slice(w // 3, w // 3 + max(16, w // 4)))
    err_max = max(float(np.percentile(np.abs(plane(o) - ref), 99)) for o in outputs.values()) or 1.0
    fig, axes = plt.subplots(3, len(panels), figsize=(2.6 * len(panels), 8), squeeze=False)
    for col, (name, arr) in enumerate(panels.items()):
        img = plane(arr)
        axes[0, col].imshow(img.T, cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
        axes[0, col].set_title(name, fontsize=8)
        axes[1, col].imshow(img[crop].T, cmap="gray", vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest")
        if name in outputs:
            axes[2, col].imshow(np.abs(img - ref).T, cmap="magma", vmin=0, vmax=err_max, origin="lower")
        for row in range(3):
            axes[row, col].axis("off")
    axes[1, 0].set_title("zoom", fontsize=8)
    axes[2, 1 if len(panels) > 2 else 0].set_title("|error|", fontsize=8)
    fig.suptitle(
        f"evaluate: {Path(result['reference']).name}, scale {tuple(scale)}, {result['degradation']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": REPORT_MARK})
    plt.close(fig)
