"""CLI: each bad input is one line naming the file, exit status 2, and no output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_fixtures import assert_clean_failure, run_cli
from conftest import oblique_affine, smooth_volume, write_nifti

from geo_med_sr import io
from geo_med_sr.cli.main import main


def test_missing_input(tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", tmp_path / "nope.nii.gz", out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, tmp_path / "nope.nii.gz", out, "no such file")


def test_empty_file(tmp_path, capsys):
    src = tmp_path / "empty.nii.gz"
    src.write_bytes(b"")
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, src, out, "empty")


def test_truncated_gzip(tmp_path, capsys):
    full = write_nifti(tmp_path / "full.nii.gz", smooth_volume((24, 24, 24)), oblique_affine())
    src = tmp_path / "cut.nii.gz"
    src.write_bytes(full.read_bytes()[:-200])
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, src, out, "not a readable NIfTI")


def test_text_file_named_nii(tmp_path, capsys):
    src = tmp_path / "notes.nii"
    src.write_text("patient notes, not an image\n" * 20)
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, src, out, "not a readable NIfTI")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels(tmp_path, capsys, bad):
    data = smooth_volume((6, 6, 6)).astype(np.float32)
    data[2, 3, 1] = bad
    src = write_nifti(tmp_path / "nan.nii.gz", data, oblique_affine())
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", src, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, src, out, "1 NaN/Inf voxel")


@pytest.mark.parametrize(
    "scale,problem",
    [
        ("1.5", "whole numbers"),
        ("0", "whole numbers"),
        ("2,0,2", "whole numbers"),
        ("two", "not a number"),
        ("2,2", "3 spatial axes"),
    ],
)
def test_bad_scale(oblique_nifti, capsys, scale, problem):
    out = oblique_nifti.parent / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", scale, "--method", "linear")
    assert_clean_failure(code, err, oblique_nifti, out, problem)


def test_output_equal_to_input(oblique_nifti, capsys):
    before = oblique_nifti.read_bytes()
    code, _, err = run_cli(
        capsys, "upscale", oblique_nifti, oblique_nifti, "--scale", "2", "--method", "linear", "--overwrite"
    )
    assert code == 2 and "same as the input" in err and str(oblique_nifti) in err
    assert oblique_nifti.read_bytes() == before


def test_existing_output_needs_overwrite(oblique_nifti, capsys):
    out = oblique_nifti.parent / "out.nii.gz"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "2", "--method", "linear")
    assert code == 2 and "--overwrite" in err and str(out) in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"precious"
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "2", "--method", "linear", "--overwrite")
    assert code == 2 and "not written by geo_med_sr" in err and out.read_bytes() == b"precious"
    out.unlink()
    for _ in range(2):  # our own output is replaced with --overwrite
        code, stdout, _ = run_cli(
            capsys, "upscale", oblique_nifti, out, "--scale", "2", "--method", "linear", "--overwrite"
        )
        assert code == 0 and "wrote" in stdout
    assert io.read(out).spatial_shape == (26, 20, 18)


def test_model_method_without_matching_weights_says_so(oblique_nifti, capsys):
    out = oblique_nifti.parent / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "3")  # no bundled x3 model
    assert code == 2 and "no bundled model for medical images at scale (3, 3, 3)" in err and "--model" in err
    assert not out.exists()


def test_unsupported_output_name(oblique_nifti, capsys):
    out = oblique_nifti.parent / "out.png"
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, out, out, "unsupported output")


def test_info_prints_geometry(oblique_nifti, capsys):
    code, out, _ = run_cli(capsys, "info", oblique_nifti)
    assert code == 0
    for word in ("shape", "(13, 10, 9)", "spacing", "orientation", "origin", "int16", "affine"):
        assert word in out


def test_failed_write_leaves_no_output(oblique_nifti, capsys, monkeypatch):
    """A crash inside the writer (disk full, kill) must not leave a partial file at OUTPUT."""
    from geo_med_sr.adapters import nifti

    def crash(*args, **options):
        Path(args[-1]).write_bytes(b"half a file")  # the path is the last argument of both writers
        raise OSError("No space left on device")

    # the last step of every NIfTI output: whole images and streamed ones
    monkeypatch.setattr(nifti.NiftiAdapter, "write_stored", crash)
    monkeypatch.setattr(nifti.NiftiAdapter, "finish_streamed", crash)
    out = oblique_nifti.parent / "out.nii.gz"
    assert main(["upscale", str(oblique_nifti), str(out), "--scale", "2", "--method", "linear"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err  # one line, no traceback
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


@pytest.mark.slow
def test_killed_mid_run_leaves_no_output(tmp_path):
    """SIGKILL while the output is being produced: OUTPUT never exists half-written."""
    src = write_nifti(tmp_path / "big.nii.gz", smooth_volume((64, 64, 48)), oblique_affine())
    out = tmp_path / "out.nii.gz"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "geo_med_sr",
            "upscale",
            str(src),
            str(out),
            "--scale",
            "3",
            "--method",
            "bspline",
            "--quiet",
        ],
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if [p for p in tmp_path.iterdir() if ".partial-" in p.name]:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed mid-write"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()


@pytest.mark.slow
def test_console_script_exit_code(tmp_path):
    exe = Path(sys.executable).with_name("geo-med-sr")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    proc = subprocess.run(
        [str(exe), "upscale", str(tmp_path / "missing.nii"), str(tmp_path / "o.nii"), "--scale", "2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing.nii" in proc.stderr


@pytest.mark.slow
def test_ensemble_and_consistency_are_recorded(oblique_nifti, tmp_path, capsys):
    import json

    import nibabel as nib

    out = tmp_path / "e.nii.gz"
    code, _, err = run_cli(
        capsys,
        "upscale",
        oblique_nifti,
        out,
        "--scale",
        "2",
        "--method",
        "bspline",
        "--ensemble",
        "--consistency",
        "--quiet",
    )
    assert code == 0, err
    prov = json.loads(nib.load(str(out)).header.extensions[0].get_content())
    assert prov["method"] == "bspline" and prov["ensemble"] == 8
    assert prov["consistency"]["degradation"] == "blockavg"


@pytest.mark.slow
def test_progress_flag_shows_bars_off_a_terminal(tmp_path):
    """--progress keeps tqdm's bars on stderr when it is a pipe (what the QGIS plugin reads); without it a pipe
    gets no bar; --quiet and --progress together are refused."""
    src = write_nifti(tmp_path / "v.nii.gz", smooth_volume((12, 10, 8)), oblique_affine())

    def run(*flags: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "geo_med_sr", "upscale", str(src), str(tmp_path / "o.nii.gz"), "--scale", "2"]
        return subprocess.run([*cmd, "--method", "linear", "--overwrite", *flags], capture_output=True, text=True)

    shown, hidden, both = run("--progress"), run(), run("--progress", "--quiet")
    assert shown.returncode == 0 and "super-resolving:" in shown.stderr and "%|" in shown.stderr
    assert hidden.returncode == 0 and "%|" not in hidden.stderr
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def _subparsers():
    import argparse

    from geo_med_sr.cli.main import build_parser

    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--sharpen", "S2X", "--method", "glp"],
        ["evaluate", "S2X", "--method", "glp", "--sharpen"],
        ["evaluate", "S2X", "--sharp", "--method", "glp"],
    ],
)
def test_evaluate_sharpen_is_a_mode_that_argparse_routes(argv):
    """``--sharpen`` anywhere (even spelt short) parses the whole command with the sharpening mode's options."""
    from geo_med_sr.cli.main import build_parser

    args = build_parser().parse_args(argv)
    assert args.command == "evaluate" and args.sharpen is True
    assert args.inputs == ["S2X"] and args.methods == ["glp"] and args.device == "auto" and args.seed == 0
    single = build_parser().parse_args(["evaluate", "r.tif", "--scale", "2", "--method", "bspline"])
    assert single.sharpen is False and single.reference == "r.tif" and single.methods == ["bspline"]


def test_evaluate_modes_keep_their_own_options(capsys):
    from geo_med_sr.cli.main import build_parser

    for argv, refused in (
        (["evaluate", "r.tif", "--scale", "2", "--method", "glp"], "invalid choice: 'glp'"),
        (["evaluate", "--sharpen", "S2X", "--scale", "2"], "unrecognized arguments: --scale 2"),
        (["evaluate", "--sharpen", "S2X", "--budget", "5", "--steps", "3"], "not allowed with argument"),
    ):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(argv)
        assert info.value.code == 2 and refused in capsys.readouterr().err


def test_evaluate_help_documents_both_modes():
    text = _subparsers()["evaluate"].format_help()
    single, _, sharpen = text.partition("usage: geo-med-sr evaluate --sharpen")
    assert "--scale SCALE" in single and "reference" in single and "--sharpen" in single
    assert "INPUT [INPUT ...]" in sharpen and "--qnr" in sharpen and "{bicubic,brovey,glp,model,self}" in sharpen


def test_patch_size_means_one_unit_in_every_command():
    """One declaration of --patch-size: its help states the unit, for each tool on its own grid."""
    commands = _subparsers()
    grids = {"upscale": "input voxels", "batch": "input voxels", "evaluate": "reference", "sharpen": "output grid"}
    for name, grid in grids.items():
        option = next(a for a in commands[name]._actions if "--patch-size" in a.option_strings)
        assert option.help.startswith("tile edge in pixels of the input's finest grid ("), (name, option.help)
        assert grid in option.help and option.type("64") == 64  # a whole number (checked: options_check)
    assert next(a for a in commands["sharpen"]._actions if "--patch-size" in a.option_strings).default == 512


@pytest.mark.parametrize(
    "flag,defaults",
    [
        ("--budget", {"upscale": None, "batch": None, "evaluate": None, "sharpen": None}),
        ("--steps", {"upscale": None, "batch": None, "evaluate": None, "sharpen": None}),
        ("--device", {"upscale": None, "batch": None, "sharpen": "auto", "train": None}),
        ("--amp", {"upscale": None, "batch": None, "sharpen": False}),
        ("--seed", {"sharpen": 0, "train": None}),
        ("--overwrite", {"upscale": False, "batch": False, "sharpen": False, "train": False}),
        ("--model", {"upscale": None, "batch": None, "evaluate": None, "sharpen": None}),
    ],
)
def test_shared_options_keep_each_commands_default(flag, defaults):
    commands = _subparsers()
    for name, default in defaults.items():
        option = next(a for a in commands[name]._actions if flag in a.option_strings)
        assert option.default == default, (name, flag, option.default)


def test_train_dispatches_on_the_task_of_the_config(tmp_path, monkeypatch, capsys):
    """A ``task: sharpen`` config goes to the guided trainer with its validated config; the SR one to train."""
    import geo_med_sr.sharpening.train as guided
    import geo_med_sr.training.loop as loop
    from geo_med_sr.training.config import GuidedTrainConfig, TrainConfig

    seen = []
    monkeypatch.setattr(guided, "train_sharpen", lambda c, d, o, command: seen.append(c) or {
        "steps": c.steps, "seconds": 0.0, "pairs": 1})  # fmt: skip
    monkeypatch.setattr(loop, "train", lambda c, d, o, val, resume: seen.append(c) or {
        "steps": c.steps, "seconds": 0.0, "loss": 0.5})  # fmt: skip
    config = tmp_path / "g.yaml"
    config.write_text("task: sharpen\nratio: 2\n")
    out = tmp_path / "m.safetensors"
    assert main(["train", "--config", str(config), "--data", "S2X", "--out", str(out), "--steps", "4"]) == 0
    assert main(["train", "--data", "a.tif", "--out", str(out), "--steps", "3", "--seed", "5"]) == 0
    assert [type(c) for c in seen] == [GuidedTrainConfig, TrainConfig]
    assert seen[0].steps == 4 and seen[1].steps == 3 and seen[1].seed == 5
    assert "(1 pairs)" in capsys.readouterr().out
    config.write_text("task: sharpen\nratio: 2\nratio: 3\n")
    code, _, err = run_cli(capsys, "train", "--config", config, "--data", "S2X", "--out", out)
    assert code == 2 and err.strip() == f"geo-med-sr: error: {config}: not valid YAML: key 'ratio' is given twice " \
        "(lines 2 and 3); keep one"  # fmt: skip


def test_a_file_to_file_upscale_never_enters_the_pacs_code(oblique_nifti, capsys, monkeypatch):
    from geo_med_sr.pacs import fetch

    def pacs_called(*args, **kwargs):
        raise AssertionError("the PACS code ran for a file-to-file upscale")

    for name in ("fetched_input", "check_push", "push_series"):
        monkeypatch.setattr(fetch, name, pacs_called)
    out = oblique_nifti.parent / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "2", "--method", "linear")
    assert code == 0, err
    assert out.exists()
    monkeypatch.undo()  # a PACS option still goes through it: --send needs a DICOM series output
    code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "2", "--send", "PACS@127.0.0.1:4242")
    assert code == 2 and "--send" in err
