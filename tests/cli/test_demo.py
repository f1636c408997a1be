"""`geo-med-sr demo` runs end to end on generated data and writes outputs plus a PNG."""

from __future__ import annotations

import json
from contextlib import redirect_stdout
from io import StringIO

import nibabel as nib
import pytest
import rasterio

from geo_med_sr import io
from geo_med_sr.cli.demo import run_demo
from geo_med_sr.errors import OutputError
from geo_med_sr.models import bundled


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One run of the demo, shared by the tests below: ``(folder, scores, printed text)``."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    printed = StringIO()
    with redirect_stdout(printed):
        scores = run_demo(out)
    return out, scores, printed.getvalue()


@pytest.mark.slow
def test_demo_writes_outputs_and_figure(demo):
    out, scores, printed = demo
    assert (out / "side_by_side.png").stat().st_size > 10_000
    assert (out / "sr_bspline_dicom").is_dir() and len(list((out / "sr_bspline_dicom").iterdir())) == 64
    # B-spline beats the thick slices themselves; DICOM and NIfTI paths agree.
    assert scores["sr_bspline.nii.gz"] > scores["sr_nearest.nii.gz"] + 0.5
    assert scores["sr_bspline_dicom"] == pytest.approx(scores["sr_bspline.nii.gz"], abs=0.05)
    assert io.read(out / "sr_bspline.nii.gz").spatial_shape == (72, 80, 64)
    assert "--method self" in printed
    # the satellite part: a COG on the exact 30 m grid, B-spline better than the 60 m pixels
    from rio_cogeo.cogeo import cog_validate

    assert cog_validate(str(out / "scene_60m_x2_bspline.tif"))[0]
    assert scores["scene_60m_x2_bspline.tif"] > scores["scene_60m_x2_nearest.tif"] + 0.5
    assert (out / "side_by_side_geotiff.png").stat().st_size > 10_000


@pytest.mark.slow
def test_demo_runs_the_bundled_through_plane_network(demo):
    """The bundled networks run in the demo too, on the exact grids (checked inside run_demo)."""
    if bundled.find("mri-throughplane-x4") is None:
        pytest.skip("mri-throughplane-x4 weights not installed (make weights-mri-throughplane-x4)")
    out, scores, _ = demo
    prov = json.loads(nib.load(str(out / "sr_model.nii.gz")).header.extensions[0].get_content())
    assert prov["model"] == "mri-throughplane-x4" and scores["sr_model.nii.gz"] > scores["sr_nearest.nii.gz"]


def test_demo_runs_the_bundled_satellite_network(demo):
    if bundled.find("sat-edsr-x2") is None:
        pytest.skip("sat-edsr-x2 weights not installed (make weights-sat-x2)")
    out, scores, _ = demo
    with rasterio.open(out / "scene_60m_x2_model.tif") as src:
        assert src.tags()["GEO_MED_SR_MODEL"] == "sat-edsr-x2"
    assert scores["scene_60m_x2_model.tif"] > scores["scene_60m_x2_nearest.tif"]


@pytest.mark.slow
def test_demo_replaces_its_own_files(demo):
    out, scores, _ = demo
    again = run_demo(out)  # a second run replaces the demo's own files
    assert again == pytest.approx(scores)


@pytest.mark.slow
def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(OutputError, match="not made by the demo"):
        run_demo(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_demo_sharpens_the_shipped_sentinel2_crop(demo):
    """The sharpening example: the shipped S2 crop to one 10 m COG, and guided methods beating bicubic."""
    from rio_cogeo.cogeo import cog_validate

    from geo_med_sr.cli.demo import sample_s2

    out, scores, printed = demo
    sharp = out / "s2_sharpened_10m.tif"
    assert cog_validate(str(sharp))[0]
    with rasterio.open(sharp) as dst, rasterio.open(sample_s2() / "B02.tif") as ref:
        assert dst.transform == ref.transform and dst.shape == ref.shape and dst.count == 12
    assert scores["sharpen_glp"] > scores["sharpen_bicubic"] + 1.0
    assert scores["sharpen_self"] > scores["sharpen_bicubic"] + 1.0
    assert (out / "side_by_side_sharpen.png").stat().st_size > 10_000
    assert "reduced-resolution protocol" in printed
    assert sum(p.stat().st_size for p in sample_s2().iterdir()) < 1_000_000  # the shipped crop stays small
