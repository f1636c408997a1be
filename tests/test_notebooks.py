"""The notebooks run top to bottom and print what they claim (their run time is measured by the
benchmarks, never asserted here: a cell stuck for 5 minutes fails through nbclient's timeout)."""

from __future__ import annotations

import pytest
from conftest import REPO

nbformat = pytest.importorskip("nbformat", reason="nbformat is a test dependency (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a test dependency (pip install -e '.[test]')")


def execute(name: str, folder) -> tuple[list[dict], str]:
    """Run ``notebooks/name`` in ``folder``; returns its outputs and its printed text.

    Fails when a cell raises or runs for more than 5 minutes.
    """
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs, "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_mri_quickstart.ipynb", "02_satellite_quickstart.ipynb"])
def test_notebook_executes(name, tmp_path):
    outputs, text = execute(name, tmp_path)
    assert "PSNR dB" in text and "bspline-ibp" in text and "self" in text  # the metrics table
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the before/after figure


@pytest.mark.slow
def test_batch_notebook_executes_and_makes_the_readme_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_MED_SR_FIGURES", str(tmp_path / "figures"))
    _, text = execute("03_batch_and_workflows.ipynb", tmp_path)
    assert "7 done, 0 skipped" in text and "0 done, 7 skipped" in text  # the batch, then the re-run
    assert (
        "COG valid=True" in text
        and "overviews=[2]" in text
        and "transform = input transform at half the pixel size: True" in text
    )
    for line in ("same study     : True", "same frame     : True", "new series     : True", "references     : True"):
        assert line in text
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "batch_evaluation.png",
        "handoff_dicom_series.png",
        "handoff_gis_mosaic.png",
    ]
