"""Packaging: a non-editable install provides geo_med_sr.adapters and no top-level `adapters`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_non_editable_install_imports_adapters_under_the_package(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    assert (target / "geo_med_sr" / "adapters" / "nifti.py").is_file()
    assert (target / "geo_med_sr" / "adapters" / "geotiff" / "sink.py").is_file()
    assert (target / "geo_med_sr" / "adapters" / "dicom" / "adapter.py").is_file()
    assert (target / "geo_med_sr" / "py.typed").is_file()  # PEP 561: type checkers read our annotations
    assert not (target / "adapters").exists()
    probe = (
        "import importlib.util, importlib.resources, geo_med_sr.adapters.nifti as m;"
        "print(m.__file__);"
        "spec = importlib.util.find_spec('adapters');"
        "print(spec.origin if spec else None);"
        "print(importlib.resources.files('geo_med_sr.configs').joinpath('medical/mri.yaml').is_file());"
        "import pkgutil, importlib, geo_med_sr;"
        "mods = [m.name for m in pkgutil.walk_packages(geo_med_sr.__path__, 'geo_med_sr.') if not "
        "m.name.endswith('__main__')];"
        "[importlib.import_module(m) for m in mods];"
        "print(len(mods))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=env
    ).stdout.split("\n")
    assert out[0].startswith(str(target)), out
    assert out[1] == "None" or not out[1].startswith(str(REPO)), out
    assert out[2] == "True", out
    assert int(out[3]) >= 30, out  # every module (training, inference, networks, ...) was installed and imports
