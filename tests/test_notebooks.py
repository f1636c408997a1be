"""The quickstart notebooks run top to bottom (each well under 2 minutes on a CPU)."""

from __future__ import annotations

import time

import pytest
from conftest import REPO

nbformat = pytest.importorskip("nbformat", reason="nbformat is a test dependency (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a test dependency (pip install -e '.[test]')")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_mri_quickstart.ipynb", "02_satellite_quickstart.ipynb"])
def test_notebook_executes(name, tmp_path):
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.perf_counter() - start
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "PSNR dB" in text and "bspline-ibp" in text and "self" in text  # the metrics table
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the before/after figure
    assert elapsed < 120, f"{name} took {elapsed:.0f} s"


@pytest.mark.slow
def test_batch_notebook_executes_and_makes_the_readme_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_MED_SR_FIGURES", str(tmp_path / "figures"))
    notebook = nbformat.read(REPO / "notebooks" / "03_batch_and_workflows.ipynb", as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.perf_counter() - start
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "7 done, 0 skipped" in text and "0 done, 7 skipped" in text  # the batch, then the re-run
    assert "COG valid=True" in text and "overviews=[2]" in text and "transform = input transform at half the pixel size: True" in text
    for line in ("same study     : True", "same frame     : True", "new series     : True", "references     : True"):
        assert line in text
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["batch_evaluation.png", "handoff_dicom_series.png", "handoff_gis_mosaic.png"]
    assert elapsed < 120, f"the notebook took {elapsed:.0f} s"
