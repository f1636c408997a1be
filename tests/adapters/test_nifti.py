"""NIfTI adapter: values, geometry and header fields survive a round trip."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, shared_path, smooth_volume, write_nifti
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr import io
from geo_med_sr.adapters.nifti import NiftiAdapter
from geo_med_sr.errors import InputError
from geo_med_sr.spatial import SpatialArray


def test_read_keeps_index_order_values_and_affine(tmp_path):
    data = np.arange(5 * 4 * 3, dtype=np.int16).reshape(5, 4, 3)
    affine = oblique_affine()
    image = io.read(write_nifti(tmp_path / "a.nii.gz", data, affine))
    assert image.array.shape == (1, 5, 4, 3)
    np.testing.assert_array_equal(image.array[0], data)
    np.testing.assert_allclose(image.affine, affine, atol=1e-6)
    assert image.meta["dtype"] == "int16" and image.meta["nifti"]["sform_code"] == 1


def test_round_trip_keeps_header_fields(tmp_path):
    src = write_nifti(tmp_path / "a.nii", smooth_volume((6, 5, 4)), oblique_affine())
    image = io.read(src)
    io.write(image, tmp_path / "b.nii.gz")
    back = nib.load(str(tmp_path / "b.nii.gz"))
    orig = nib.load(str(src))
    assert back.get_data_dtype() == orig.get_data_dtype()
    for field in ("sform_code", "qform_code", "descrip", "xyzt_units"):
        assert back.header[field] == orig.header[field], field
    np.testing.assert_allclose(back.get_sform(), orig.get_sform(), atol=1e-6)
    np.testing.assert_allclose(back.get_qform(), orig.get_qform(), atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(orig.dataobj))


def test_scaled_file_reads_real_values_and_writes_them_back(tmp_path):
    raw = (np.arange(60) % 200).astype(np.uint8).reshape(5, 4, 3)
    src = write_nifti(tmp_path / "s.nii.gz", raw, oblique_affine(), dtype=np.uint8, slope=6.48, inter=-10.0)
    image = io.read(src)
    assert image.array.dtype == np.float32 and image.meta["nifti"]["scaled"]
    np.testing.assert_allclose(image.array[0], raw * 6.48 - 10.0, rtol=1e-6)
    io.write(image, tmp_path / "t.nii.gz")
    back = nib.load(str(tmp_path / "t.nii.gz"))
    assert back.get_data_dtype() == np.uint8
    np.testing.assert_allclose(back.get_fdata(), raw * 6.48 - 10.0, atol=6.48 / 2 + 1e-4)


def test_4d_keeps_the_fourth_axis_as_channels(tmp_path):
    data = smooth_volume((5, 4, 3, 2))
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_zooms(tuple(np.linalg.norm(oblique_affine()[:3, :3], axis=0)) + (2.5,))
    nib.save(img, str(tmp_path / "d.nii.gz"))
    image = io.read(tmp_path / "d.nii.gz")
    assert image.array.shape == (2, 5, 4, 3)
    np.testing.assert_array_equal(image.array[1], data[..., 1])
    io.write(image, tmp_path / "e.nii.gz")
    back = nib.load(str(tmp_path / "e.nii.gz"))
    assert back.shape == (5, 4, 3, 2) and back.header.get_zooms()[3] == pytest.approx(2.5)


def test_provenance_is_stored_as_a_json_extension(tmp_path):
    image = io.read(write_nifti(tmp_path / "a.nii.gz", smooth_volume((4, 4, 4)), oblique_affine()))
    image = image.with_array(image.array, meta_update={"provenance": {"method": "bspline", "scale": [1, 1, 1]}})
    io.write(image, tmp_path / "p.nii.gz")
    ext = nib.load(str(tmp_path / "p.nii.gz")).header.extensions
    assert json.loads(ext[0].get_content())["method"] == "bspline"


@pytest.mark.parametrize(
    "name,content,problem",
    [
        ("text.nii", b"this is not an image\n" * 30, "not a readable NIfTI"),
        ("trunc.nii.gz", None, "not a readable NIfTI"),
    ],
)
def test_corrupt_files_raise_input_error_naming_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is None:  # a real gzipped NIfTI cut in half
        full = tmp_path / "full.nii.gz"
        write_nifti(full, smooth_volume((20, 20, 20)), oblique_affine())
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=problem) as info:
        io.read(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_real_scaled_mri_round_trip(tmp_path):
    src = shared_path("mri", "MR_Gd_T1gd_1mm_iso.nii.gz")
    image = io.read(src)
    assert image.array.shape == (1, 176, 188, 144) and image.meta["dtype"] == "uint8"
    io.write(image, tmp_path / "copy.nii.gz")
    back = io.read(tmp_path / "copy.nii.gz")
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-6)
    np.testing.assert_allclose(back.array, image.array, atol=float(image.array.max()) / 255 / 2 + 1e-3)


# ------------------------------------------------------------------ hand-offs: provenance and sidecar

PROVENANCE = {
    "tool": "geo_med_sr 0.1.0",
    "method": "edsr",
    "scale": (2, 2, 1),
    "normalization": {"kind": "percentile", "low": [1.5], "high": (900.0,)},
    "request": {"input_sha256": "cd" * 32, "scale": [2, 2, 1], "config": {"halo": 8}},
    "note": "2",
    "unicode": "Jürgen µm",
}
EXPECTED = json.loads(json.dumps(PROVENANCE))


def with_provenance(tmp_path, provenance=PROVENANCE):
    image = io.read(write_nifti(tmp_path / "a.nii.gz", smooth_volume((6, 5, 4)), oblique_affine()))
    return image.with_array(image.array, meta_update={"provenance": provenance})


def test_read_provenance_reads_the_header_not_the_voxels(tmp_path):
    io.write(with_provenance(tmp_path), tmp_path / "p.nii")
    data = (tmp_path / "p.nii").read_bytes()
    vox_offset = nib.load(str(tmp_path / "p.nii")).dataobj.offset
    assert 352 < vox_offset < len(data)
    (tmp_path / "cut.nii").write_bytes(data[:vox_offset])  # header and extension only, no voxel
    assert NiftiAdapter.read_provenance(tmp_path / "cut.nii") == EXPECTED
    with pytest.raises(InputError):
        io.read(tmp_path / "cut.nii")


def test_read_provenance_skips_foreign_comments(tmp_path):
    img = nib.Nifti1Image(smooth_volume((4, 4, 4)), oblique_affine())
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"scanner note, not JSON"))
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"[1, 2]"))
    nib.save(img, str(tmp_path / "foreign.nii.gz"))
    assert NiftiAdapter.read_provenance(tmp_path / "foreign.nii.gz") is None
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", json.dumps(EXPECTED).encode()))
    nib.save(img, str(tmp_path / "ours.nii.gz"))
    assert NiftiAdapter.read_provenance(tmp_path / "ours.nii.gz") == EXPECTED


def test_read_provenance_of_missing_or_plain_files_is_none(tmp_path):
    assert NiftiAdapter.read_provenance(tmp_path / "missing.nii.gz") is None
    plain = write_nifti(tmp_path / "plain.nii.gz", smooth_volume((4, 4, 4)), oblique_affine())
    assert NiftiAdapter.read_provenance(plain) is None


def test_adapter_write_puts_the_sidecar_beside_the_path_it_is_given(tmp_path):
    NiftiAdapter.write(with_provenance(tmp_path), tmp_path / "direct.nii.gz")
    sidecar = json.loads((tmp_path / "direct.json").read_text(encoding="utf-8"))
    assert sidecar["GeoMedSR"] == EXPECTED
    assert sidecar["Description"] == "Super-resolved by geo_med_sr 0.1.0 (method edsr, scale 2x2x1)"
    ext = nib.load(str(tmp_path / "direct.nii.gz")).header.extensions
    assert [e.get_code() for e in ext] == [6] and json.loads(ext[0].get_content()) == EXPECTED


def _file_bytes(path):
    import gzip

    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


@pytest.mark.parametrize(
    "slope, channels, suffix", [(None, 1, ".nii.gz"), (0.25, 1, ".nii.gz"), (None, 3, ".nii"), (0.25, 2, ".nii")]
)
def test_streamed_sink_writes_what_the_whole_image_writer_writes(tmp_path, slope, channels, suffix):
    """The NIfTI sink writes each window to disk as it arrives (cast to the storage dtype): the file equals
    the one the whole-image writer makes from the float values, byte for byte (header, extension, voxels),
    for windows of every kind (whole slices, whole rows, partial rows; 3D and 4D)."""
    from geo_med_sr.inference.protocols import Window

    src = write_nifti(tmp_path / "s.nii.gz", smooth_volume((9, 7, 5)), oblique_affine(), slope=slope, inter=slope)
    image = io.read(src)
    values = np.random.default_rng(0).normal(300, 200, size=(channels, 18, 14, 5))
    meta = {**image.meta, "provenance": {"tool": "test"}}
    affine = oblique_affine(spacing=(0.5, 0.5, 1.0))
    NiftiAdapter.write(SpatialArray(values, affine, meta), tmp_path / f"whole{suffix}")
    boxes = [
        ((0, 18), (0, 14), (0, 2)),
        ((0, 18), (0, 6), (2, 5)),
        ((0, 10), (6, 14), (2, 5)),
        ((10, 18), (6, 14), (2, 5)),
    ]
    with NiftiAdapter.open_sink(tmp_path / f"sink{suffix}", values.shape, affine, meta, None) as sink:
        assert not hasattr(sink, "array")  # nothing image-sized is held
        for box in boxes:
            sink.write(Window(box), values[(slice(None), *[slice(a, b) for a, b in box])])
    assert _file_bytes(tmp_path / f"sink{suffix}") == _file_bytes(tmp_path / f"whole{suffix}")
    assert (tmp_path / "sink.json").read_text() == (tmp_path / "whole.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.nii.gz", f"sink{suffix}", "sink.json", f"whole{suffix}", "whole.json"]
    )  # the scratch data file is gone


@settings(max_examples=25, deadline=None)
@given(cuts=st.tuples(*[st.lists(st.integers(1, n - 1), max_size=3, unique=True) for n in (11, 6, 4)]))
def test_streamed_sink_any_tiling_equals_one_window(tmp_path_factory, cuts):
    """Property: cutting the output into any grid of windows, written in any order, gives the same file."""
    from geo_med_sr.inference.protocols import Window

    folder = tmp_path_factory.mktemp("tiling")
    values = np.random.default_rng(1).normal(0, 1000, size=(1, 11, 6, 4)).astype(np.float32)
    meta = {"format": "nifti", "dtype": "int16", "nifti": {}}
    affine = oblique_affine()
    edges = [sorted({0, n, *c}) for n, c in zip((11, 6, 4), cuts)]
    boxes = [
        ((x0, x1), (y0, y1), (z0, z1))
        for x0, x1 in zip(edges[0], edges[0][1:])
        for y0, y1 in zip(edges[1], edges[1][1:])
        for z0, z1 in zip(edges[2], edges[2][1:])
    ]
    for name, order in (("one.nii.gz", [((0, 11), (0, 6), (0, 4))]), ("tiled.nii.gz", boxes[::-1])):
        with NiftiAdapter.open_sink(folder / name, values.shape, affine, meta, None) as sink:
            for box in order:
                sink.write(Window(box), values[(slice(None), *[slice(a, b) for a, b in box])])
    assert _file_bytes(folder / "tiled.nii.gz") == _file_bytes(folder / "one.nii.gz")


def test_streamed_sink_abort_leaves_nothing(tmp_path):
    """A failed run (exception inside the sink's block) writes no file and removes the scratch data."""
    from geo_med_sr.inference.protocols import Window

    meta = {"format": "nifti", "dtype": "float32", "nifti": {}}
    with pytest.raises(RuntimeError, match="stop"):
        with NiftiAdapter.open_sink(tmp_path / "o.nii.gz", (1, 4, 4, 4), np.eye(4), meta, None) as sink:
            sink.write(Window(((0, 4), (0, 4), (0, 2))), np.ones((1, 4, 4, 2), np.float32))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Exception, match="already closed"):
        sink.write(Window(((0, 4), (0, 4), (0, 2))), np.ones((1, 4, 4, 2), np.float32))


def test_streamed_sink_that_cannot_make_its_scratch_file_says_so(tmp_path, monkeypatch):
    """No room for the scratch data block: a one-line OutputError naming the output, nothing left behind."""
    from geo_med_sr.adapters import nifti_stream
    from geo_med_sr.errors import OutputError

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nifti_stream.tempfile, "mkstemp", refuse)
    meta = {"format": "nifti", "dtype": "int16", "nifti": {}}
    with pytest.raises(OutputError, match=r"o\.nii\.gz.*No space left on device"):
        NiftiAdapter.open_sink(tmp_path / "o.nii.gz", (1, 4, 4, 4), np.eye(4), meta, None)
    assert list(tmp_path.iterdir()) == []
