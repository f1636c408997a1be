"""NIfTI adapter: what it reads it keeps (codes, both forms, scaling, header fields), what it
cannot read it refuses in one line naming the file (RGB, complex, truncated or lying headers).

Affines are compared with ``atol=1e-6`` mm plus float32's relative epsilon: NIfTI-1 stores
srow/qoffset/quatern as float32, so a translation of 40 mm cannot be held closer than ~2e-6 mm.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, shared_path, smooth_volume
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr import io
from geo_med_sr.cli.main import main
from geo_med_sr.errors import InputError
from geo_med_sr.geometry import scale_affine

F32 = float(np.finfo(np.float32).eps)


def assert_affine(actual, expected):
    np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=F32)


def make_nifti(path, data, qform, sform, qcode=1, scode=1, dtype=None, **fields):
    """A NIfTI file with explicit qform/sform and codes, and any other header ``fields``."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype or data.dtype)
    img = nib.Nifti1Image(data, None, header=header)
    img.set_qform(qform, code=qcode)
    img.set_sform(sform, code=scode)
    img.header.set_xyzt_units("mm", "sec")
    for name, value in fields.items():
        img.header[name] = value
    nib.save(img, str(path))
    return path


def upscale(src, out, scale, *extra):
    """Run the CLI; return the output loaded with nibabel."""
    code = main(["upscale", str(src), str(out), "--scale", scale, "--quiet", *extra])
    assert code == 0
    return nib.load(str(out))


def blob(shape=(10, 9, 6)):
    """uint8 raw values: 0 outside a box, 1..200 inside (a "foreground" with a true 0 background)."""
    raw = np.zeros(shape, np.uint8)
    inner = smooth_volume(tuple(n - 4 for n in shape), dtype=np.float64)
    raw[2:-2, 2:-2, 2:-2] = 1 + np.round(inner / 1000 * 199).astype(np.uint8)
    return raw


# ------------------------------------------------------------------ 1, 2: codes and both forms


@pytest.mark.parametrize("qcode,scode", [(0, 0), (1, 0), (0, 2), (3, 0)])
def test_codes_are_kept_and_the_affine_nibabel_returns_is_scale_affine(tmp_path, qcode, scode):
    affine = oblique_affine(origin=(-7.5, 3.25, 10.0))
    src = make_nifti(tmp_path / "a.nii.gz", smooth_volume((6, 5, 4)), affine, affine, qcode, scode)
    before = nib.load(str(src))
    out = upscale(src, tmp_path / "b.nii.gz", "2,3,1", "--method", "linear")
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (qcode, scode)
    assert out.shape == (12, 15, 4)
    assert_affine(out.affine, scale_affine(before.affine, (2, 3, 1)))
    if (qcode, scode) == (0, 0):  # nibabel's fallback: the pixdim-based centred affine
        zooms = np.array(before.header.get_zooms()) / (2, 3, 1)
        assert_affine(out.affine[:3, :3], np.diag(zooms * (-1, 1, 1)))


@pytest.mark.parametrize("scale", ["2,2,1", "1,3,2", "4,1,1"])
@pytest.mark.parametrize("flip", [False, True])  # True: an LAS sform/qform (qfac -1)
def test_disagreeing_qform_and_sform_are_each_scaled(tmp_path, scale, flip):
    sign = np.diag([-1.0, 1, 1, 1]) if flip else np.eye(4)
    qform = oblique_affine(spacing=(0.9, 1.1, 2.5), angles_deg=(17, -9, 23), origin=(-7.5, 3.25, 10.0)) @ sign
    sform = oblique_affine(spacing=(0.9, 1.1, 2.5), angles_deg=(-5, 12, 31), origin=(4.0, -6.5, 12.0)) @ sign
    src = make_nifti(tmp_path / "a.nii", smooth_volume((6, 5, 4)), qform, sform, 1, 2)
    before = nib.load(str(src))
    factors = tuple(int(v) for v in scale.split(","))
    out = upscale(src, tmp_path / "b.nii.gz", scale, "--method", "nearest")
    assert_affine(out.header.get_qform(), scale_affine(before.header.get_qform(), factors))
    assert_affine(out.header.get_sform(), scale_affine(before.header.get_sform(), factors))
    assert_affine(out.affine, scale_affine(before.affine, factors))
    assert out.header["pixdim"][0] == before.header["pixdim"][0]  # qfac


@settings(max_examples=25, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-180, 180)] * 3),
    other=st.tuples(*[st.floats(-180, 180)] * 3),
    spacing=st.tuples(*[st.floats(0.2, 5.0)] * 3),
    factors=st.tuples(*[st.integers(1, 4)] * 3),
    codes=st.tuples(st.integers(0, 4), st.integers(0, 4)),
)
def test_write_maps_both_forms_by_the_same_index_map(tmp_path_factory, angles, other, spacing, factors, codes):
    """Adapter level (no engine): any rotation, spacing, scale and code pair."""
    tmp = tmp_path_factory.mktemp("forms")
    qform = oblique_affine(spacing, angles, origin=(1.5, -2.0, 3.0))
    sform = oblique_affine(spacing, other, origin=(-4.0, 5.5, -0.5))
    src = make_nifti(tmp / "a.nii", np.arange(24, dtype=np.int16).reshape(4, 3, 2), qform, sform, *codes)
    image = io.read(src)
    assert json.loads(json.dumps(image.meta["nifti"])) == image.meta["nifti"]  # JSON-able record
    values = image.array
    for axis, factor in enumerate(factors, start=1):
        values = np.repeat(values, factor, axis=axis)
    io.write(image.with_array(values, factors), tmp / "b.nii")
    before, out = nib.load(str(src)), nib.load(str(tmp / "b.nii"))
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == codes
    for get in ("get_qform", "get_sform"):
        assert_affine(getattr(out.header, get)(), scale_affine(getattr(before.header, get)(), factors))
    assert_affine(out.affine, scale_affine(before.affine, factors))


def test_nifti2_input_gives_a_nifti2_output_with_its_header(tmp_path):
    img = nib.Nifti2Image(smooth_volume((5, 4, 3)), oblique_affine())
    img.header["cal_max"] = 700.0
    nib.save(img, str(tmp_path / "two.nii.gz"))
    out = upscale(tmp_path / "two.nii.gz", tmp_path / "o.nii.gz", "2,1,3", "--method", "nearest")
    assert isinstance(out, nib.Nifti2Image) and out.header["cal_max"] == 700.0
    np.testing.assert_allclose(out.affine, scale_affine(img.affine, (2, 1, 3)), atol=1e-9)  # float64 srow


# ------------------------------------------------------------------ 3: scl_slope / scl_inter


def test_scaled_source_keeps_its_slope_so_background_stays_zero(tmp_path):
    raw = blob()
    src = make_nifti(tmp_path / "s.nii.gz", raw, oblique_affine(), oblique_affine(), dtype=np.uint8)
    img = nib.load(str(src))
    img.header.set_slope_inter(6.48, 0.0)
    nib.save(img, str(src))
    mask = raw > 0
    near = upscale(src, tmp_path / "n.nii.gz", "2,2,2", "--method", "nearest")
    assert near.get_data_dtype() == np.uint8 and near.dataobj.slope == np.float32(6.48) and near.dataobj.inter == 0
    repeated = raw.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    np.testing.assert_array_equal(np.asanyarray(near.dataobj.get_unscaled()), repeated)  # stored ints unchanged
    assert (near.get_fdata() > 0).sum() == mask.sum() * 8
    linear = upscale(src, tmp_path / "l.nii.gz", "2,2,2", "--method", "linear").get_fdata()
    assert linear[:2].max() == 0 and linear[:, :2].max() == 0  # background 0 -> exactly 0
    grown = np.zeros_like(mask)
    grown[1:-1, 1:-1, 1:-1] = True  # the box dilated by one voxel bounds where interpolation reaches
    assert mask.sum() * 8 <= (linear > 0).sum() <= grown.sum() * 8
    floats = upscale(src, tmp_path / "f.nii.gz", "2,2,2", "--method", "nearest", "--float32")
    assert floats.get_data_dtype() == np.float32 and floats.dataobj.slope == 1 and floats.dataobj.inter == 0
    np.testing.assert_allclose(floats.get_fdata(), repeated * np.float32(6.48), rtol=1e-6)


# ------------------------------------------------------------------ 4: header fields


FIELDS = {
    "cal_min": 5.0,
    "cal_max": 900.0,
    "intent_code": 1002,  # NIFTI_INTENT_LABEL
    "intent_name": b"tissue",
    "intent_p1": 1.5,
    "intent_p2": -2.0,
    "intent_p3": 7.0,
    "aux_file": b"lut.txt",
    "descrip": b"TE=49;Time=133625.745",
    "toffset": 3.5,
    "dim_info": 1 | (2 << 2) | (3 << 4),  # freq i, phase j, slice k (nibabel stores axis + 1)
    "slice_code": 3,  # NIFTI_SLICE_ALT_INC
    "slice_start": 0,
    "slice_end": 3,
    "slice_duration": 0.08,
}


@pytest.mark.parametrize("scale,timing_kept", [("2,2,1", True), ("1,1,2", False)])
def test_header_fields_are_carried_and_slice_timing_only_on_an_unscaled_slice_axis(tmp_path, scale, timing_kept):
    src = make_nifti(tmp_path / "h.nii.gz", smooth_volume((6, 5, 4)), oblique_affine(), oblique_affine(), **FIELDS)
    img = nib.load(str(src))
    img.header["pixdim"][4:8] = [2.5, 0.5, 0.25, 0.125]  # TR of a 3D file, and the rest
    img.header.set_xyzt_units("mm", "msec")
    nib.save(img, str(src))
    before = nib.load(str(src)).header
    after = upscale(src, tmp_path / "o.nii.gz", scale, "--method", "nearest").header
    for name in ("cal_min", "cal_max", "intent_code", "intent_name", "intent_p1", "intent_p2", "intent_p3"):
        assert after[name] == before[name], name
    for name in ("aux_file", "descrip", "toffset", "dim_info", "xyzt_units"):
        assert after[name] == before[name], name
    np.testing.assert_array_equal(after["pixdim"][4:8], before["pixdim"][4:8])
    assert after.get_dim_info() == (0, 1, 2)
    for name in ("slice_code", "slice_start", "slice_end", "slice_duration"):
        assert after[name] == (before[name] if timing_kept else 0), name


def test_real_dcm2niix_file_keeps_tr_and_dim_info(tmp_path):
    src = shared_path("mri", "T2w_1x1x2mm.nii.gz")
    image = io.read(src)
    io.write(image.with_array(image.array.repeat(2, axis=3), (1, 1, 2)), tmp_path / "t2.nii.gz")
    before, after = nib.load(str(src)), nib.load(str(tmp_path / "t2.nii.gz"))
    assert after.header["pixdim"][4] == pytest.approx(5.73) == before.header["pixdim"][4]
    assert after.header.get_dim_info() == before.header.get_dim_info() == (1, 0, 2)
    assert after.header["descrip"] == before.header["descrip"]
    assert_affine(after.header.get_qform(), scale_affine(before.header.get_qform(), (1, 1, 2)))
    assert_affine(after.affine, scale_affine(before.affine, (1, 1, 2)))


# ------------------------------------------------------------------ 5: dtypes


@pytest.mark.parametrize(
    "dtype,problem",
    [
        ([("R", "u1"), ("G", "u1"), ("B", "u1")], "RGB NIfTI (datatype RGB24) is not supported"),
        ([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")], "RGB NIfTI (datatype RGBA32) is not supported"),
        (np.complex64, "complex data (complex64) is not supported"),
        (np.complex128, "complex data (complex128) is not supported"),
    ],
)
def test_rgb_and_complex_are_refused_in_one_line_naming_the_file(tmp_path, capsys, dtype, problem):
    src = tmp_path / "odd.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), dtype=dtype), np.eye(4)), str(src))
    with pytest.raises(InputError) as info:
        io.read(src)
    assert str(info.value).startswith(f"{src}: {problem}") and "\n" not in str(info.value)
    assert main(["upscale", str(src), str(tmp_path / "o.nii.gz"), "--scale", "2", "--method", "linear"]) == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_64_bit_integers_are_read_and_written_exactly(tmp_path, dtype):
    data = (np.arange(60, dtype=dtype).reshape(5, 4, 3) * 3_000_000_000_001) % np.iinfo(np.int64).max
    src = tmp_path / "big.nii"
    nib.save(nib.Nifti1Image(data.astype(dtype), oblique_affine(), dtype=dtype), str(src))
    image = io.read(src)
    assert image.array.dtype == dtype and image.meta["dtype"] == np.dtype(dtype).name
    io.write(image, tmp_path / "copy.nii.gz")
    back = nib.load(str(tmp_path / "copy.nii.gz"))
    assert back.get_data_dtype() == dtype
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), data.astype(dtype))


def test_int64_nearest_output_equals_repeat(tmp_path):
    data = np.arange(60, dtype=np.int64).reshape(5, 4, 3) * 1_000_000_007 + 2**40  # not exact in float32
    src = tmp_path / "big.nii.gz"
    nib.save(nib.Nifti1Image(data, oblique_affine(), dtype=np.int64), str(src))
    out = upscale(src, tmp_path / "o.nii.gz", "2,2,1", "--method", "nearest")
    assert out.get_data_dtype() == np.int64
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), data.repeat(2, 0).repeat(2, 1))


# ------------------------------------------------------------------ 6: dims that the file cannot hold


def _lying(path, data, dims, compress):
    """A valid file whose header then claims ``dims``."""
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path.with_suffix(".tmp.nii")))
    raw = bytearray(path.with_suffix(".tmp.nii").read_bytes())
    header = np.frombuffer(bytes(raw[:348]), dtype=nib.Nifti1Header.template_dtype)[0].copy()
    header["dim"][1:4] = dims
    raw[:348] = header.tobytes()
    path.write_bytes(gzip.compress(bytes(raw)) if compress else bytes(raw))
    return path


@pytest.fixture
def voxels_never_read(monkeypatch):
    """Fail if nibabel is asked for the voxels (the header check must refuse first)."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("voxels were read")

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "get_unscaled", refuse)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", refuse)


@pytest.mark.parametrize("name", ["lie.nii", "lie.nii.gz"])
def test_lying_dims_are_refused_before_reading_voxels(tmp_path, voxels_never_read, name):
    data = smooth_volume((40, 40, 30))
    path = _lying(tmp_path / name, data, (512, 512, 300), name.endswith(".gz"))
    with pytest.raises(InputError) as info:
        io.read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "the header describes 512x512x300 int16 = 157 MB of voxels" in message
    assert "truncated or its header is wrong" in message
    if name == "lie.nii":
        assert "the file holds 96 kB after the header" in message


def test_absurd_dims_are_refused_before_allocating(tmp_path, voxels_never_read):
    path = _lying(tmp_path / "huge.nii", smooth_volume((4, 4, 4)), (30000, 30000, 30000), False)
    with pytest.raises(InputError, match=r"30000x30000x30000 int16 = 54 TB of voxels, more than the 1 TiB"):
        io.read(path)


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_files_say_how_much_is_missing(tmp_path, capsys, name):
    full = tmp_path / f"full{name[3:]}"
    nib.save(
        nib.Nifti1Image(np.random.default_rng(0).integers(0, 999, (40, 40, 30), dtype=np.int16), np.eye(4)), str(full)
    )
    path = tmp_path / name
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError) as info:
        io.read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable NIfTI file: the header describes 40x40x30 int16 = 96 kB")
    assert "after the header; the file is truncated or its header is wrong" in message and "\n" not in message
    assert main(["upscale", str(path), str(tmp_path / "o.nii.gz"), "--scale", "2", "--method", "linear"]) == 2
    assert "MemoryError" not in capsys.readouterr().err


# ------------------------------------------------------------------ 7: a 2D input


def test_2d_input_is_written_as_a_one_slice_volume_on_the_right_grid(tmp_path):
    affine = oblique_affine(origin=(-7.5, 3.25, 10.0))
    src = make_nifti(tmp_path / "flat.nii.gz", smooth_volume((7, 6)), affine, affine, 0, 2)
    before = nib.load(str(src))
    out = upscale(src, tmp_path / "o.nii.gz", "2,2,1", "--method", "nearest")
    assert out.header["dim"][0] == 3 and out.shape == (14, 12, 1)
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (0, 2)
    assert_affine(out.affine, scale_affine(before.affine, (2, 2, 1)))
    np.testing.assert_array_equal(np.asanyarray(out.dataobj)[..., 0], smooth_volume((7, 6)).repeat(2, 0).repeat(2, 1))


# ------------------------------------------------------------------ 8: a real client


def _nifti_tool(*args):
    return subprocess.run(["nifti_tool", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("nifti_tool") is None, reason="nifti_tool not installed (apt-get install nifti-bin)")
@pytest.mark.parametrize("case", ["oblique", "codes0", "scaled"])
def test_nifti_tool_accepts_outputs_and_reads_the_kept_fields(tmp_path, case):
    qform = oblique_affine()
    sform = oblique_affine(angles_deg=(-5, 12, 31)) if case == "oblique" else qform
    codes = (0, 0) if case == "codes0" else (1, 2)
    raw = blob()
    src = make_nifti(tmp_path / "in.nii.gz", raw, qform, sform, *codes, dtype=np.uint8, cal_max=200.0)
    if case == "scaled":
        img = nib.load(str(src))
        img.header.set_slope_inter(6.48, -3.0)
        nib.save(img, str(src))
    out = tmp_path / "out.nii.gz"
    upscale(src, out, "2,2,3", "--method", "linear")
    check = _nifti_tool("-check_hdr", "-check_nim", "-infiles", str(out))
    assert check.returncode == 0 and "invalid" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr
    fields = ["qform_code", "sform_code", "scl_slope", "scl_inter", "cal_max"]
    shown = _nifti_tool("-disp_hdr", *[a for f in fields for a in ("-field", f)], "-infiles", str(out)).stdout
    values = {
        line.split()[0]: line.split()[-1] for line in shown.splitlines() if line.split() and line.split()[0] in fields
    }
    assert (int(values["qform_code"]), int(values["sform_code"])) == codes
    assert float(values["cal_max"]) == 200.0
    if case == "scaled":
        assert float(values["scl_slope"]) == pytest.approx(6.48) and float(values["scl_inter"]) == -3.0
