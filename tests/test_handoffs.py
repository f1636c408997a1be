"""Hand-offs to other tools: provenance read back from every output format, the NIfTI JSON
sidecar written atomically with the image, and output checks that protect the user's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import oblique_affine, smooth_volume, write_nifti
from dicom_fixtures import make_synthetic_series
from geotiff_fixtures import make_geotiff

from geo_med_sr import io
from geo_med_sr.adapters.geotiff import GeoTiffAdapter
from geo_med_sr.adapters.nifti import NiftiAdapter
from geo_med_sr.errors import OutputError

#: a provenance as the pipeline writes it, with the awkward cases: tuples, a nested request,
#: strings that look like JSON or that GDAL would strip, non-ASCII text, None and booleans.
PROVENANCE = {
    "tool": "geo_med_sr 0.1.0",
    "method": "edsr",
    "model": "sat-edsr-x2",
    "weights_sha256": "ab" * 32,
    "scale": (2, 2, 1),
    "normalization": {"kind": "percentile", "low": [1.5, 2.25], "high": (9000.0, 12000.5)},
    "request": {
        "input_sha256": "cd" * 32,
        "scale": [2, 2, 1],
        "bands": None,
        "cog": True,
        "config": {"patch_size": 64, "halo": 8},
    },
    "note": "2",
    "empty": "",
    "spaced": "  padded ",
    "unicode": "Jürgen µm",
    "flag": False,
    "nothing": None,
}
#: what must come back: the provenance after a JSON round trip (tuples become lists).
EXPECTED = json.loads(json.dumps(PROVENANCE))


def nifti_image(tmp_path: Path, provenance: dict | None = PROVENANCE):
    image = io.read(write_nifti(tmp_path / "src.nii.gz", smooth_volume((6, 5, 4)), oblique_affine()))
    return image if provenance is None else image.with_array(image.array, meta_update={"provenance": provenance})


def listing(folder: Path) -> list[str]:
    """Every entry of ``folder`` (hidden temporary files included), sorted."""
    return sorted(os.listdir(folder))


# ------------------------------------------------------------------ io.read_provenance


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii"])
def test_nifti_provenance_round_trips_through_io(tmp_path, name):
    out = io.write(nifti_image(tmp_path), tmp_path / name)
    assert io.read_provenance(out) == EXPECTED
    assert NiftiAdapter.read_provenance(out) == EXPECTED


@pytest.mark.parametrize("cog", [False, True])
def test_geotiff_provenance_round_trips_through_io(tmp_path, cog):
    path, _ = make_geotiff(tmp_path / "src.tif")
    image = io.read(path)
    image = image.with_array(image.array, meta_update={"provenance": PROVENANCE})
    out = io.write(image, tmp_path / "out.tif", cog=cog)
    assert io.read_provenance(out) == EXPECTED


@pytest.mark.parametrize("cog", [False, True])
def test_streamed_geotiff_provenance_round_trips_through_io(tmp_path, cog):
    """The pipeline's streaming path: a sink writing windows into io.atomic_path's target."""
    path, _ = make_geotiff(tmp_path / "src.tif", width=40, height=33)
    dst = tmp_path / "streamed.tif"
    with GeoTiffAdapter.open_source(path) as source:
        meta = {**source.meta, "provenance": PROVENANCE}
        with io.atomic_path(dst) as tmp:
            with GeoTiffAdapter.open_sink(
                tmp, source.shape, source.affine, meta, source.dtype, cog=cog, block_size=16, name=dst
            ) as sink:
                for c0 in range(0, 40, 16):
                    box = ((c0, min(c0 + 16, 40)), (0, 33))
                    sink.write(box, source.read(box))
    assert io.read_provenance(dst) == EXPECTED
    assert listing(tmp_path) == ["src.tif", "streamed.tif"]


def test_dicom_provenance_round_trips_through_io(tmp_path):
    make_synthetic_series(tmp_path / "src")
    image = io.read(tmp_path / "src")
    image = image.with_array(image.array, meta_update={"provenance": PROVENANCE})
    out = io.write(image, tmp_path / "out")
    assert io.read_provenance(out) == EXPECTED


def test_outputs_without_provenance_read_none(tmp_path):
    io.write(nifti_image(tmp_path, provenance=None), tmp_path / "plain.nii.gz")
    tif, _ = make_geotiff(tmp_path / "plain.tif")
    make_synthetic_series(tmp_path / "series")
    assert io.read_provenance(tmp_path / "plain.nii.gz") is None
    assert io.read_provenance(tif) is None
    assert io.read_provenance(tmp_path / "series") is None


def test_missing_unknown_and_corrupt_paths_read_none(tmp_path):
    assert io.read_provenance(tmp_path / "missing.nii.gz") is None
    assert io.read_provenance(tmp_path / "missing") is None
    (tmp_path / "notes.txt").write_text("hello")
    assert io.read_provenance(tmp_path / "notes.txt") is None  # not an output format
    full = io.write(nifti_image(tmp_path), tmp_path / "full.nii.gz")
    (tmp_path / "half.nii.gz").write_bytes(full.read_bytes()[:40])  # a gzip stream cut inside the header
    (tmp_path / "text.nii").write_bytes(b"not an image\n" * 40)
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "text.tif").write_bytes(b"II*\x00garbage" * 10)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "IM_0001.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10")
    for name in ("half.nii.gz", "text.nii", "empty.tif", "text.tif", "folder"):
        assert io.read_provenance(tmp_path / name) is None, name


# ------------------------------------------------------------------ NIfTI sidecar


def test_sidecar_holds_the_provenance_and_a_description(tmp_path):
    io.write(nifti_image(tmp_path), tmp_path / "sub-01_T1w.nii.gz")
    sidecar = json.loads((tmp_path / "sub-01_T1w.json").read_text(encoding="utf-8"))
    assert sidecar == {
        "Description": "Super-resolved by geo_med_sr 0.1.0 (method edsr, model sat-edsr-x2, scale 2x2x1)",
        "GeoMedSR": EXPECTED,
    }


def test_no_provenance_means_no_sidecar(tmp_path):
    io.write(nifti_image(tmp_path, provenance=None), tmp_path / "out.nii")
    assert listing(tmp_path) == ["out.nii", "src.nii.gz"]


def test_failed_write_leaves_neither_image_nor_sidecar(tmp_path, monkeypatch):
    original = NiftiAdapter.write.__func__

    def write_then_fail(cls, image, path, **options):
        original(cls, image, path, **options)
        assert (Path(path).parent / "out.json").is_file()  # the sidecar is in the temporary folder
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(NiftiAdapter, "write", classmethod(write_then_fail))
    with pytest.raises(OSError, match="simulated"):
        io.write(nifti_image(tmp_path), tmp_path / "out.nii.gz")
    assert listing(tmp_path) == ["src.nii.gz"]


def test_image_and_sidecar_are_written_in_one_temporary_folder_and_moved_in_order(tmp_path, monkeypatch):
    moves = []
    real_replace = os.replace

    def spy(src, dst):
        moves.append((Path(src).parent.name.startswith(".out.nii.gz.partial-"), Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", spy)
    io.write(nifti_image(tmp_path), tmp_path / "out.nii.gz")
    assert moves == [(True, "out.nii.gz"), (True, "out.json")]
    assert listing(tmp_path) == ["out.json", "out.nii.gz", "src.nii.gz"]


def test_an_unrelated_json_file_is_never_overwritten_silently(tmp_path):
    user_file = tmp_path / "out.json"
    user_file.write_text('{"mine": true}')
    with pytest.raises(OutputError, match="already exists; pass --overwrite") as info:
        io.check_output(tmp_path / "out.nii.gz", inputs=(tmp_path / "src.nii.gz",))
    assert str(user_file) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(OutputError, match="already exists; pass --overwrite") as info:
        io.write(nifti_image(tmp_path), tmp_path / "out.nii.gz")
    assert str(user_file) in str(info.value)
    assert user_file.read_text() == '{"mine": true}'
    assert listing(tmp_path) == ["out.json", "src.nii.gz"]  # nothing written, no temporary folder left


def test_overwrite_replaces_our_image_and_sidecar_but_never_a_users_sidecar(tmp_path):
    (tmp_path / "out.json").write_text('{"mine": true}')
    with pytest.raises(OutputError, match="not written by geo_med_sr"):
        io.check_output(tmp_path / "out.nii.gz", overwrite=True)
    with pytest.raises(OutputError, match="not written by geo_med_sr"):
        io.write(nifti_image(tmp_path), tmp_path / "out.nii.gz", overwrite=True)
    assert (tmp_path / "out.json").read_text() == '{"mine": true}'
    (tmp_path / "out.json").unlink()
    io.write(nifti_image(tmp_path), tmp_path / "out.nii.gz")
    assert io.check_output(tmp_path / "out.nii.gz", overwrite=True) is NiftiAdapter
    assert json.loads((tmp_path / "out.json").read_text())["GeoMedSR"] == EXPECTED
    second = {**PROVENANCE, "method": "bspline"}
    io.write(nifti_image(tmp_path, second), tmp_path / "out.nii.gz", overwrite=True)
    assert json.loads((tmp_path / "out.json").read_text())["GeoMedSR"]["method"] == "bspline"
    assert io.read_provenance(tmp_path / "out.nii.gz")["method"] == "bspline"
    assert listing(tmp_path) == ["out.json", "out.nii.gz", "src.nii.gz"]


def test_existing_output_is_reported_before_its_sidecar(tmp_path):
    io.write(nifti_image(tmp_path), tmp_path / "out.nii.gz")
    with pytest.raises(OutputError, match="output already exists") as info:
        io.check_output(tmp_path / "out.nii.gz")
    assert str(info.value).startswith(str(tmp_path / "out.nii.gz"))


def test_a_folder_named_like_the_sidecar_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match="sidecar file name is taken by a folder"):
        io.check_output(tmp_path / "out.nii", overwrite=True)


def test_companions_of_each_adapter(tmp_path):
    assert NiftiAdapter.companions(tmp_path / "a.b.nii.gz") == [tmp_path / "a.b.json"]
    assert NiftiAdapter.companions(tmp_path / "A.NII") == [tmp_path / "A.json"]
    assert GeoTiffAdapter.companions(tmp_path / "a.tif") == []
    assert io.adapter_for_output(tmp_path / "series").companions(tmp_path / "series") == []


def test_atomic_path_moves_only_the_companions_that_were_written(tmp_path):
    (tmp_path / "b.json").write_text("old")
    with io.atomic_path(tmp_path / "a.bin", companions=[tmp_path / "a.json"], overwrite=False) as tmp:
        tmp.write_bytes(b"main")
        (tmp.parent / "a.json").write_text("side")
    with io.atomic_path(tmp_path / "b.bin", companions=[tmp_path / "b.json"], overwrite=True) as tmp:
        tmp.write_bytes(b"main")  # no companion written: the existing b.json is left alone
    assert (tmp_path / "a.bin").read_bytes() == b"main" and (tmp_path / "a.json").read_text() == "side"
    assert (tmp_path / "b.json").read_text() == "old"
    assert listing(tmp_path) == ["a.bin", "a.json", "b.bin", "b.json"]
    with pytest.raises(ValueError, match="single-file outputs"):
        with io.atomic_path(tmp_path / "c", folder=True, companions=[tmp_path / "c.json"]):
            pass
