"""GPU path check: the CUDA engine agrees with the CPU, mixed precision costs little, training runs.

Needs a CUDA GPU (exits with a message otherwise). On a synthetic smooth 2D scene (512 x 512,
x2) with the bundled ``sat-edsr-x2``:

* CPU fp32 vs CUDA fp32 vs CUDA AMP (fp16 autocast): max abs difference and PSNR of each against
  the CPU result (data range of the scene), tiled (64-px tiles) and per method wall time;
* a 200-step training run on CUDA with ``amp: true`` on a synthetic NIfTI volume: first and last
  loss, checkpoint written and reloaded.

Usage::

    python benchmarks/gpu_check.py --json benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def scene(n: int = 512) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    rng = np.random.default_rng(0)
    return (
        np.sin(x / 9.0) * np.cos(y / 13.0) + 0.3 * np.sin((x + 2 * y) / 5.0) + 0.05 * rng.normal(size=(n, n))
    ).astype(np.float32)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here")
    from geo_med_sr.inference.resolver import SuperResolver
    from geo_med_sr.metrics.image import psnr
    from geo_med_sr.models.bundled import find
    from geo_med_sr.models.checkpoint import load_checkpoint

    net, _ = load_checkpoint(find("sat-edsr-x2").path)
    x = scene()
    rows, outputs = [], {}
    for name, device, amp, tf32 in (
        ("cpu fp32", "cpu", False, False),
        ("cuda fp32", "cuda", False, True),
        ("cuda fp32 no-tf32", "cuda", False, False),
        ("cuda amp", "cuda", True, True),
    ):
        resolver = SuperResolver(net, (2, 2), patch_size=64, batch_size=16, device=device, amp=amp, progress=False)
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=tf32):
            resolver(x[:, :128, :128])  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            outputs[name] = resolver(x)
            seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
        rows.append({"run": name, "seconds": seconds, "peak_cuda_mib": peak})
    ref = outputs["cpu fp32"]
    for row in rows:
        diff = outputs[row["run"]] - ref
        row["max_abs_diff_vs_cpu"] = float(np.abs(diff).max())
        value = psnr(ref, outputs[row["run"]])
        row["psnr_vs_cpu_db"] = None if value == float("inf") else value
    print(f"{'run':<18} {'seconds':>8} {'peak MiB':>9} {'max|diff|':>10} {'PSNR vs cpu':>12}")
    for row in rows:
        peak = "" if row["peak_cuda_mib"] is None else f"{row['peak_cuda_mib']:.0f}"
        psnr = "exact" if row["psnr_vs_cpu_db"] is None else f"{row['psnr_vs_cpu_db']:.1f} dB"
        print(
            f"{row['run']:<18} {row['seconds']:>8.3f} {peak:>9} {row['max_abs_diff_vs_cpu']:>10.2e} {psnr:>12}",
            flush=True,
        )

    import nibabel as nib

    from geo_med_sr.training.config import load_train_config
    from geo_med_sr.training.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        vol = np.repeat(scene(96)[0][:, :, None], 24, axis=2) * 1000
        nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), f"{tmp}/v.nii.gz")
        config = load_train_config(
            None,
            network={"name": "edsr", "params": {"features": 16, "num_blocks": 2}},
            spatial_dims=3,
            scale=[2, 2, 2],
            patch_size=12,
            batch_size=8,
            steps=200,
            val_every=100,
            checkpoint_every=100,
            lr=1e-3,
            device="cuda",
            amp=True,
        )
        start = time.perf_counter()
        losses: list[str] = []
        summary = train(config, [f"{tmp}/v.nii.gz"], Path(tmp) / "m.safetensors", progress=False, log=losses.append)
        train_s = time.perf_counter() - start
        model, _ = load_checkpoint(Path(tmp) / "m.safetensors")
    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "inference": rows,
        "training": {
            "steps": 200,
            "seconds": train_s,
            "summary": {"steps": summary["steps"], "last_loss": summary["loss"], "log": losses},
            "reloaded_params": sum(p.numel() for p in model.parameters()),
        },
    }
    print(f"training 200 steps (CUDA, amp): {train_s:.1f} s; {result['training']['summary']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
