"""Same input, same output: ``upscale --method self`` and ``sharpen`` (default method) train a fixed number of
steps by default, and no wall-clock time is written into the output, so a rerun gives the same bytes, also
while another CPU-heavy process runs (a time budget would do fewer steps then)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import oblique_affine, smooth_volume, write_nifti
from s2_fixtures import s2_folder

from geo_med_sr.geometry import scale_affine

pytest.importorskip("torch")


@contextmanager
def busy_cpu() -> Iterator[None]:
    """A busy-loop process for the duration of the block (one of the CI machine's two cores taken)."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"])]
    try:
        yield
    finally:
        for p in loops:
            p.kill()
            p.wait()


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_sharpen_default_twice_gives_the_same_bytes_also_on_a_busy_machine(tmp_path, monkeypatch):
    from geo_med_sr.sharpening import plan
    from geo_med_sr.sharpening.pipeline import sharpen

    monkeypatch.setattr(plan, "DEFAULT_STEPS", 6)  # the default's kind (steps, not seconds), on a small scale
    monkeypatch.setattr(plan, "DEFAULT_STEPS_FINETUNE", 6)
    monkeypatch.setattr(plan, "DEFAULT_STEPS_COARSE", 3)
    folder = s2_folder(tmp_path / "S2X", n=64, scl=False)
    outputs = []
    for k in range(2):
        (tmp_path / f"run{k}").mkdir()
        out = tmp_path / f"run{k}" / "sharp.tif"
        if k == 0:
            result = sharpen(folder, out, device="cpu", progress=False)
        else:
            with busy_cpu():
                result = sharpen(folder, out, device="cpu", progress=False)
        assert result.provenance["method"] == "self"
        assert {g["steps_from"] for g in result.provenance["groups"]} == {"default"}
        outputs.append(_files(out.parent))
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_upscale_self_twice_gives_the_same_bytes_also_on_a_busy_machine(tmp_path, monkeypatch):
    from geo_med_sr.training import selfsup
    from geo_med_sr.upscale.config import SRConfig
    from geo_med_sr.upscale.pipeline import super_resolve

    monkeypatch.setitem(selfsup.DEFAULT_STEPS, "through-plane", 5)
    hr = smooth_volume((20, 16, 24))
    lr = hr.reshape(20, 16, 12, 2).mean(axis=3).astype(np.int16)
    src = write_nifti(tmp_path / "thick.nii.gz", lr, scale_affine(oblique_affine(spacing=(1.0, 1.0, 1.0)), (1, 1, 0.5)))
    config = SRConfig().updated(model={"method": "self"}, inference={"patch_size": 16})
    outputs = []
    for k in range(2):
        (tmp_path / f"run{k}").mkdir()
        out = tmp_path / f"run{k}" / "sr.nii.gz"
        if k == 0:
            result = super_resolve(src, out, "1,1,2", config, progress=False)
        else:
            with busy_cpu():
                result = super_resolve(src, out, "1,1,2", config, progress=False)
        info = result.provenance["self_supervised"]
        assert info["steps"] == 5 and info["steps_from"] == "default" and info["budget_s"] is None
        outputs.append(_files(out.parent))
    assert outputs[0] == outputs[1]  # the NIfTI and its JSON sidecar
