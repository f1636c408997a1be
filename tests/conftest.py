"""Shared fixtures: oblique anisotropic grids, tiny NIfTI files, the shared real-data folder."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present: real-data tests need the project's shared sample data (../shared/data)")
    return path


def oblique_affine(spacing=(0.9, 1.1, 2.5), angles_deg=(17.0, -9.0, 23.0), origin=(-31.5, 12.25, 40.0)) -> np.ndarray:
    """A centre-anchored RAS affine rotated about x, y and z, with anisotropic ``spacing``."""
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def smooth_volume(shape, seed=0, dtype=np.int16) -> np.ndarray:
    """A smooth random volume with structure at several scales, values in ~[0, 1000]."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    vol = np.zeros(shape)
    for _ in range(6):
        k = rng.uniform(1, 6, len(shape))
        phase = rng.uniform(0, 2 * np.pi)
        vol += np.sin(sum(ki * g for ki, g in zip(k, grids)) * np.pi + phase)
    vol = (vol - vol.min()) / (np.ptp(vol) + 1e-9) * 1000
    return vol.astype(dtype)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=None, slope=None, inter=None) -> Path:
    """Write a NIfTI file with sform/qform code 1 (scanner), mm units and a description."""
    img = nib.Nifti1Image(data, affine)
    if dtype is not None:
        img.header.set_data_dtype(dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"geo_med_sr test"
    if slope is not None:
        img.header.set_slope_inter(slope, inter or 0.0)
    nib.save(img, str(path))
    return path


@pytest.fixture
def oblique_nifti(tmp_path: Path) -> Path:
    """An oblique anisotropic int16 NIfTI file of odd shape (13, 10, 9)."""
    return write_nifti(tmp_path / "oblique.nii.gz", smooth_volume((13, 10, 9)), oblique_affine())
