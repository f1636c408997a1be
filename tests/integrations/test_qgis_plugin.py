"""The QGIS Processing provider (integrations/qgis): built, installed and run in the REAL QGIS.

The plugin runs the ``geo-med-sr`` CLI as a subprocess; these tests check it end to end with
``qgis_process.bin`` (QGIS >= 3.22, headless: QT_QPA_PLATFORM=offscreen, a temporary HOME and
profile) and with a system-Python script using QGIS's own Processing (``processing.run`` with a
QgsProcessingFeedback canceled from a thread). The oracle for every algorithm is the CLI itself:
the layer QGIS makes has the extent, CRS, pixel size and pixels of the CLI's own output.

The first tests need no QGIS: the plugin's copy of the CLI's choices against the CLI's parser,
the zip the build script makes, and the runner (progress, errors, cancel and cleanup) with
scripted fake CLIs. The QGIS tests skip with the reason when ``qgis_process.bin`` or the system
Python's ``import qgis`` is absent (Debian/Ubuntu: apt-get install qgis python3-qgis).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import REPO

QGIS_DIR = REPO / "integrations" / "qgis"
PLUGIN_SRC = QGIS_DIR / "geo_med_sr_qgis"
SYSTEM_PYTHON = "/usr/bin/python3"
VENV_BIN = Path(sys.executable).parent
CLI = VENV_BIN / "geo-med-sr"
QGIS_PROCESS = shutil.which("qgis_process.bin")


def _load(name: str, path: Path):
    """Import a module of the plugin from its file (the package's __init__ needs no QGIS)."""
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(QGIS_DIR))
import geo_med_sr_qgis.cli_spec as cli_spec  # noqa: E402
import geo_med_sr_qgis.runner as runner  # noqa: E402

sys.path.remove(str(QGIS_DIR))
build_script = _load("geo_med_sr_qgis_build", QGIS_DIR / "build.py")


def write_geotiff(path: Path, width: int, height: int, bands: int, pixel: float, seed: int = 0) -> Path:
    """A smooth uint16 GeoTIFF in EPSG:32633 with its top-left corner at (500000, 5000000)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    data = np.stack(
        [np.sin(2 * np.pi * (rng.uniform(1, 3) * x + rng.uniform(1, 3) * y)) * 400 + 1000 for _ in range(bands)]
    )
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype="uint16", crs="EPSG:32633")
    profile.update(transform=Affine(pixel, 0, 500000, 0, -pixel, 5000000), tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype("uint16"))
    return path


def geometry(path: Path) -> dict:
    """What a GIS sees of a raster: CRS, bounds, pixel size, shape and band count."""
    with rasterio.open(path) as src:
        return {
            "crs": src.crs.to_epsg(),
            "bounds": tuple(src.bounds),
            "res": src.res,
            "shape": src.shape,
            "count": src.count,
        }


def pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI itself, the oracle of the algorithms."""
    return subprocess.run([str(CLI), *args, "--quiet"], capture_output=True, text=True, check=True, timeout=120)


# --- no QGIS needed -----------------------------------------------------------------------


def test_plugin_choices_are_the_cli_choices():
    """The plugin cannot import the CLI (QGIS's Python has no torch): its copy must match the parser."""
    import argparse

    from geo_med_sr.cli.main import build_parser
    from geo_med_sr.scale import MAX_FACTOR

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))

    def option(command: str, flag: str) -> argparse.Action:
        return next(a for a in sub.choices[command]._actions if flag in a.option_strings)

    assert tuple(option("upscale", "--method").choices) == cli_spec.UPSCALE_METHODS
    assert tuple(option("batch", "--method").choices) == cli_spec.UPSCALE_METHODS
    assert tuple(option("sharpen", "--method").choices) == cli_spec.SHARPEN_METHODS
    assert option("sharpen", "--method").default == cli_spec.SHARPEN_DEFAULT
    assert tuple(option("upscale", "--degrade").choices) == cli_spec.DEGRADATIONS
    assert cli_spec.MAX_SCALE == MAX_FACTOR


def test_plugin_sharpen_methods_are_the_registry_names():
    """The plugin's static list is the sharpening method registry's, and its default the same."""
    from geo_med_sr.sharpening.registry import DEFAULT_METHOD, SHARPEN_METHODS

    assert cli_spec.SHARPEN_METHODS == tuple(SHARPEN_METHODS.names())
    assert cli_spec.SHARPEN_DEFAULT == DEFAULT_METHOD


@pytest.mark.slow
def test_build_makes_an_installable_zip(tmp_path):
    """What Plugins > Install from ZIP and the plugin repository need: one folder at the root with
    __init__.py, metadata.txt (required fields) and LICENSE; no caches or hidden files; reproducible."""
    src = tmp_path / "src" / "geo_med_sr_qgis"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "runner.cpython-311.pyc").write_bytes(b"\0")
    (src / ".hidden.swp").write_text("x")
    first = build_script.build(tmp_path / "a", plugin=src)
    second = build_script.build(tmp_path / "b", plugin=src)
    assert first.read_bytes() == second.read_bytes()  # same sources, same zip
    meta = build_script.metadata(PLUGIN_SRC)
    assert first.name == f"geo_med_sr_qgis-{meta['version']}.zip"
    names = zipfile.ZipFile(first).namelist()
    assert all(n.startswith("geo_med_sr_qgis/") for n in names), names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/." in n], names
    sources = [p for p in PLUGIN_SRC.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    expected = {p.relative_to(PLUGIN_SRC).as_posix() for p in sources} - {".hidden.swp"}
    assert {n.split("/", 1)[1] for n in names} == expected
    for required in build_script.REQUIRED_METADATA:
        assert meta[required].strip(), required
    assert meta["qgisMinimumVersion"] == "3.22" and meta["category"] == "Raster"
    assert meta["hasProcessingProvider"] == "yes"
    project = (REPO / "pyproject.toml").read_text()
    assert f'version = "{meta["version"]}"' in project  # the plugin's version is the release's
    assert 'license = { text = "Apache-2.0" }' in project
    assert (
        "Apache License" in (PLUGIN_SRC / "LICENSE").read_text()
        and "Version 2.0" in (PLUGIN_SRC / "LICENSE").read_text()
    )
    # the command the Makefile runs
    out = subprocess.run(
        [sys.executable, str(QGIS_DIR / "build.py"), "--dist", str(tmp_path / "c")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(out) == tmp_path / "c" / first.name and Path(out).is_file()


class Feedback:
    """The part of QgsProcessingFeedback the runner uses, recording what it is told."""

    def __init__(self, cancel_on: str | None = None) -> None:
        self.progress: list[int] = []
        self.info: list[str] = []
        self.warnings: list[str] = []
        self.cancel_on = cancel_on
        self.canceled = False

    def setProgress(self, value):
        self.progress.append(value)

    def pushInfo(self, line):
        self.info.append(line)
        if self.cancel_on and self.cancel_on in line:
            self.canceled = True

    def pushWarning(self, line):
        self.warnings.append(line)

    def isCanceled(self):
        return self.canceled


def running(pid: int) -> bool:
    """The process runs (a zombie waiting for a parent that does not reap, e.g. a container's init, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def fake_cli(tmp_path: Path, body: str) -> list[str]:
    """``[script]``: a fake CLI run by this Python (the runner's executable)."""
    script = tmp_path / "fake_cli.py"
    script.write_text(textwrap.dedent(body))
    return [str(script)]


@pytest.mark.slow
def test_runner_reports_tqdm_progress_and_lines(tmp_path, monkeypatch):
    """The last NN% of tqdm's \\r-separated updates becomes setProgress(NN); other stderr lines are log
    lines (warnings as warnings), bars never are; QGIS's PYTHONPATH does not reach the CLI."""
    script = fake_cli(
        tmp_path,
        """
        import os, sys, time
        from tqdm import tqdm
        print("geo-med-sr: warning: nodata is not set", file=sys.stderr, flush=True)
        for _ in tqdm(range(4), file=sys.stderr, mininterval=0, desc="super-resolving"):
            time.sleep(0.15)
        print("wrote out.tif", file=sys.stderr, flush=True)
        print("PYTHONPATH=" + repr(os.environ.get("PYTHONPATH")))
        """,
    )
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python")
    feedback = Feedback()
    result = runner.run_cli(script, feedback, executable=sys.executable)
    assert result.returncode == 0
    assert result.stdout == "PYTHONPATH=None\n"
    assert [p for p in feedback.progress if p < 100] == [0, 25, 50, 75], feedback.progress
    assert feedback.progress[-1] == 100 and feedback.progress == sorted(feedback.progress)
    assert feedback.info == ["wrote out.tif"]
    assert feedback.warnings == ["geo-med-sr: warning: nodata is not set"]


def test_runner_raises_the_cli_one_line_error(tmp_path):
    script = fake_cli(
        tmp_path,
        """
        import sys
        sys.stderr.write("super-resolving:   0%|          | 0/3 [00:00<?, ?chunk/s]\\r")
        sys.stderr.write("geo-med-sr: error: in.tif: not a readable GeoTIFF; check the file\\n")
        sys.exit(2)
        """,
    )
    with pytest.raises(runner.CliError) as caught:
        runner.run_cli(script, Feedback(), executable=sys.executable)
    assert str(caught.value) == "geo-med-sr: error: in.tif: not a readable GeoTIFF; check the file"
    assert caught.value.returncode == 2


@pytest.mark.slow
def test_runner_cancel_kills_a_stubborn_cli_and_removes_only_what_it_made(tmp_path):
    """A CLI (and its worker) that ignore SIGINT and SIGTERM are killed; the output, its hidden
    temporary and the new entries of a folder output go; everything that existed before stays."""
    out_dir, folder_out = tmp_path / "out", tmp_path / "out" / "batch"
    folder_out.mkdir(parents=True)
    keep = out_dir / "keep.txt"
    keep.write_text("not ours")
    foreign_temp = out_dir / ".scene.tif.partial-otherhost-1-abc"  # another run's, existed before
    foreign_temp.mkdir()
    (folder_out / "old.tif").write_text("an earlier batch output")
    pids = tmp_path / "pids.txt"
    script = fake_cli(
        tmp_path,
        f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        worker = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                   "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"])
        out = {str(out_dir)!r}
        os.makedirs(os.path.join(out, ".scene.tif.partial-host-%d-xyz" % os.getpid()))
        open(os.path.join(out, ".scene.tif.partial-host-%d-xyz" % os.getpid(), "scene.tif"), "w").write("half")
        open(os.path.join(out, "scene.tif"), "w").write("half")
        open(os.path.join({str(folder_out)!r}, "new.tif"), "w").write("half")
        open({str(pids)!r}, "w").write("%d %d" % (os.getpid(), worker.pid))
        print("started", file=sys.stderr, flush=True)
        time.sleep(60)
        open({str(tmp_path / "finished")!r}, "w").write("the CLI ran to its end: cancel did not stop it")
        """,
    )
    feedback = Feedback(cancel_on="started")
    with pytest.raises(runner.Canceled):
        runner.run_cli(
            script, feedback, executable=sys.executable, outputs=[out_dir / "scene.tif", folder_out], grace_s=0.5
        )
    assert not (tmp_path / "finished").exists()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([keep.name, foreign_temp.name, "batch"])
    assert keep.read_text() == "not ours"
    assert [p.name for p in folder_out.iterdir()] == ["old.tif"]
    time.sleep(0.2)  # the SIGKILL is delivered asynchronously
    assert [pid for pid in map(int, pids.read_text().split()) if running(pid)] == []


def test_runner_says_where_to_set_the_executable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(runner.CliError, match="Processing > Providers > geo_med_sr"):
        runner.find_executable(None)
    with pytest.raises(runner.CliError, match=f"{tmp_path / 'nowhere'}: the configured geo-med-sr executable"):
        runner.find_executable(str(tmp_path / "nowhere"))


# --- in the real QGIS ---------------------------------------------------------------------


def _qgis_available() -> str | None:
    """None when QGIS can run the tests, else why not."""
    if QGIS_PROCESS is None:
        return "qgis_process.bin not installed (apt-get install qgis)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} (QGIS's Python) not found (apt-get install python3-qgis)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, env=env)
    if probe.returncode != 0:
        return f"{SYSTEM_PYTHON} cannot import qgis (apt-get install python3-qgis)"
    if not CLI.is_file():
        return f"{CLI} not found: the tests run the venv's geo-med-sr"
    return None


@pytest.fixture(scope="module")
def qgis(tmp_path_factory) -> dict[str, str]:
    """The environment of a headless QGIS with the plugin installed from its zip and enabled.

    A temporary HOME holds the profile; the zip is unpacked by QGIS's own installer code
    (pyplugin_installer.unzip) into the folder QGIS_PLUGINPATH names. The venv's bin folder goes
    at the END of the PATH: QGIS's embedded Python takes the first ``python3`` on the PATH as its
    home, so a venv first would hide ``qgis`` from it.
    """
    reason = _qgis_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("qgis")
    home, plugins = root / "home", root / "plugins"
    (home / "run").mkdir(parents=True)
    (home / "run").chmod(0o700)
    zip_path = build_script.build(root / "dist")
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d) != VENV_BIN]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "QGIS", "VIRTUAL_ENV"))}
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(home / "run"),
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(plugins),
        PATH=os.pathsep.join([*path, str(VENV_BIN)]),
    )
    unzip = "import sys; from pyplugin_installer.unzip import unzip; unzip(sys.argv[1], sys.argv[2])"
    subprocess.run(
        [SYSTEM_PYTHON, "-c", unzip, str(zip_path), str(plugins)],
        env={**env, "PYTHONPATH": "/usr/share/qgis/python"}, check=True, timeout=60,
    )  # fmt: skip
    assert (plugins / "geo_med_sr_qgis" / "metadata.txt").is_file()
    enable = subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", "geo_med_sr_qgis"], env=env, capture_output=True, text=True, timeout=60
    )
    assert enable.returncode == 0, enable.stdout + enable.stderr
    return env


def qgis_run(env: dict[str, str], algorithm: str, **parameters) -> subprocess.CompletedProcess:
    """``qgis_process.bin --json run geo_med_sr:ALGORITHM -- KEY=VALUE ...`` (lists repeat the key)."""
    args = [f"{k}={v}" for k, values in parameters.items() for v in (values if isinstance(values, list) else [values])]
    return subprocess.run(
        [QGIS_PROCESS, "--json", "run", f"geo_med_sr:{algorithm}", "--", *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def results(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)["results"]


def method_index(name: str, choices=cli_spec.UPSCALE_METHODS, offset: int = 1) -> int:
    """The enum index of a method (upscale/batch list the CLI's default first)."""
    return choices.index(name) + offset


@pytest.mark.slow
def test_provider_loads_in_qgis_process(qgis):
    listing = subprocess.run([QGIS_PROCESS, "list"], env=qgis, capture_output=True, text=True, timeout=60).stdout
    ids = {line.split()[0] for line in listing.splitlines() if line.strip().startswith("geo_med_sr:")}
    assert ids == {"geo_med_sr:upscale", "geo_med_sr:sharpen", "geo_med_sr:batch", "geo_med_sr:info"}, listing


@pytest.mark.slow
def test_real_scene_layer_equals_the_cli_output(qgis, tmp_path):
    """A real Sentinel-2 band (the CC BY 4.0 T49JGM crop shipped in the package, EPSG:32749): QGIS's upscaled layer
    has the extent, CRS, pixel size and pixels of the CLI's output."""
    import geo_med_sr

    source = Path(geo_med_sr.__file__).parent / "samples" / "s2_T49JGM_crop" / "B04.tif"
    copy = tmp_path / "B04.tif"  # QGIS writes .aux.xml beside its inputs: never into the package
    copy.write_bytes(source.read_bytes())
    results(qgis_run(qgis, "upscale", INPUT=copy, SCALE=2, METHOD=method_index("bicubic"), OUTPUT=tmp_path / "q.tif"))
    run_cli("upscale", str(copy), str(tmp_path / "cli.tif"), "--scale", "2", "--method", "bicubic")
    expected = geometry(tmp_path / "cli.tif")
    assert geometry(tmp_path / "q.tif") == expected and expected["crs"] == 32749
    assert expected["bounds"] == geometry(copy)["bounds"] and expected["res"] == (5.0, 5.0)
    np.testing.assert_array_equal(pixels(tmp_path / "q.tif"), pixels(tmp_path / "cli.tif"))


@pytest.mark.slow
def test_upscale_layer_equals_the_cli_output(qgis, tmp_path):
    """Extent, CRS, pixel size and pixels of QGIS's layer are those of the CLI's output (bands 1 and 3)."""
    source = write_geotiff(tmp_path / "scene.tif", 64, 64, 3, pixel=10.0)
    made = results(
        qgis_run(qgis, "upscale", INPUT=source, SCALE=2, METHOD=method_index("bicubic"), BANDS=[1, 3],
                 OUTPUT=tmp_path / "qgis.tif")
    )["OUTPUT"]  # fmt: skip
    assert Path(made) == tmp_path / "qgis.tif"
    run_cli("upscale", str(source), str(tmp_path / "cli.tif"), "--scale", "2", "--method", "bicubic", "--bands", "1,3")
    expected = geometry(tmp_path / "cli.tif")
    assert geometry(tmp_path / "qgis.tif") == expected
    assert expected["res"] == (5.0, 5.0) and expected["count"] == 2 and expected["bounds"] == geometry(source)["bounds"]
    np.testing.assert_array_equal(pixels(tmp_path / "qgis.tif"), pixels(tmp_path / "cli.tif"))


@pytest.mark.slow
def test_sharpen_layer_equals_the_cli_output(qgis, tmp_path):
    """A 20 m raster sharpened with a 10 m guide (glp): QGIS's layer is the CLI's output."""
    fine = write_geotiff(tmp_path / "fine_10m.tif", 64, 64, 2, pixel=10.0, seed=1)
    coarse = write_geotiff(tmp_path / "coarse_20m.tif", 32, 32, 2, pixel=20.0, seed=2)
    glp = method_index("glp", cli_spec.SHARPEN_METHODS, offset=0)
    results(qgis_run(qgis, "sharpen", INPUT=coarse, GUIDE=fine, METHOD=glp, OUTPUT=tmp_path / "qgis.tif"))
    run_cli("sharpen", str(coarse), "--guide", str(fine), str(tmp_path / "cli.tif"), "--method", "glp")
    assert geometry(tmp_path / "qgis.tif") == geometry(tmp_path / "cli.tif")
    assert geometry(tmp_path / "qgis.tif")["res"] == (10.0, 10.0)
    np.testing.assert_array_equal(pixels(tmp_path / "qgis.tif"), pixels(tmp_path / "cli.tif"))


@pytest.mark.slow
def test_batch_outputs_are_loaded_into_the_project(qgis, tmp_path):
    """processing.runAndLoadResults (what the toolbox does): every batch output is a layer of the
    project, with the input's extent and half its pixel size."""
    inputs = [write_geotiff(tmp_path / f"tile{i}.tif", 48, 32, 2, pixel=10.0, seed=i) for i in range(2)]
    state = qgis_script(qgis, tmp_path, BATCH_SCRIPT, tmp_path / "sr", method_index("bicubic"), *inputs)
    expected = [str(tmp_path / "sr" / p.name) for p in inputs]
    assert state["results"]["OUTPUT"] == str(tmp_path / "sr")
    assert state["results"]["OUTPUT_LAYERS"] == expected
    assert state["loaded"] == expected
    for source, output in zip(inputs, expected):
        got = geometry(Path(output))
        assert got["bounds"] == geometry(source)["bounds"] and got["res"] == (5.0, 5.0) and got["shape"] == (64, 96)


@pytest.mark.slow
def test_info_text_with_the_executable_setting(qgis, tmp_path):
    """With geo-med-sr off the PATH, the Processing setting finds it; the TEXT is the CLI's own."""
    source = write_geotiff(tmp_path / "scene.tif", 16, 16, 1, pixel=30.0)
    home = tmp_path / "home"
    shutil.copytree(qgis["HOME"], home, symlinks=True)
    ini = home / ".local/share/QGIS/QGIS3/profiles/default/QGIS/QGIS3.ini"
    settings = configparser.RawConfigParser()
    settings.optionxform = str
    settings.read(ini)
    env = {**qgis, "HOME": str(home), "PATH": "/usr/bin:/bin"}

    def with_setting(value: str) -> subprocess.CompletedProcess:
        settings["Processing"] = {"Configuration\\GEO_MED_SR_EXECUTABLE": value}
        with open(ini, "w") as handle:
            settings.write(handle, space_around_delimiters=False)
        return qgis_run(env, "info", INPUT=source, OUTPUT=tmp_path / "info.html")

    made = results(with_setting(str(CLI)))
    expected = subprocess.run([str(CLI), "info", str(source)], capture_output=True, text=True, check=True).stdout
    assert made["TEXT"] == expected and "EPSG:32633" in expected
    assert "EPSG:32633" in (tmp_path / "info.html").read_text()
    failed = with_setting(str(tmp_path / "missing" / "geo-med-sr"))
    assert failed.returncode != 0
    assert "the configured geo-med-sr executable does not exist" in failed.stdout + failed.stderr


@pytest.mark.slow
def test_bad_input_shows_the_cli_one_line_error(qgis, tmp_path):
    """A text file named .tif reaches the CLI (not QGIS's "could not load"): its one-line error is QGIS's."""
    bad = tmp_path / "notes.tif"
    bad.write_text("not a raster\n")
    proc = subprocess.run(
        [QGIS_PROCESS, "run", "geo_med_sr:upscale", "--", f"INPUT={bad}", f"OUTPUT={tmp_path / 'out.tif'}"],
        env=qgis, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("ERROR:")]
    assert errors and errors[0].startswith(f"ERROR:\tgeo-med-sr: error: {bad}: not a readable GeoTIFF"), errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.tif"]


#: the start of a QGIS script: QGIS's Python, Processing, and the installed plugin loaded as QGIS loads it.
QGIS_PRELUDE = """
import glob, json, os, sys, threading, time
sys.path.insert(0, "/usr/share/qgis/python/plugins")
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsProject
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
import processing
Processing.initialize()
sys.path.insert(0, os.environ["QGIS_PLUGINPATH"])
import geo_med_sr_qgis
plugin = geo_med_sr_qgis.classFactory(None)
plugin.initProcessing()
"""

CANCEL_SCRIPT = """
source, output = sys.argv[1:3]
feedback = QgsProcessingFeedback()
state = {"seen": None}
partial = os.path.join(os.path.dirname(output), "." + os.path.basename(output) + ".partial-*")

def cancel_mid_write():  # once the CLI writes into its temporary and reports progress
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not feedback.isCanceled():
        if glob.glob(partial) and feedback.progress() > 0:
            state["seen"] = sorted(os.listdir(os.path.dirname(output)))
            state["progress"] = feedback.progress()
            break
        time.sleep(0.05)
    feedback.cancel()

threading.Thread(target=cancel_mid_write, daemon=True).start()
try:
    processing.run("geo_med_sr:upscale", {"INPUT": source, "SCALE": 2, "OUTPUT": output}, feedback=feedback)
    state["outcome"] = "finished"
except QgsProcessingException as exc:
    state["outcome"] = str(exc)
print("STATE " + json.dumps(state))
"""

BATCH_SCRIPT = """
folder, method, inputs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
parameters = {"INPUT": inputs, "METHOD": method, "WORKERS": 1, "OUTPUT": folder}
made = processing.runAndLoadResults("geo_med_sr:batch", parameters)
loaded = sorted(layer.source() for layer in QgsProject.instance().mapLayers().values())
print("STATE " + json.dumps({"results": made, "loaded": loaded}))
"""


def qgis_script(env: dict[str, str], tmp_path: Path, body: str, *args, timeout: float = 150) -> dict:
    """Run QGIS_PRELUDE + ``body`` with QGIS's Python; returns the JSON it printed after ``STATE ``."""
    script = tmp_path / "qgis_script.py"
    script.write_text(QGIS_PRELUDE + body)
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(script), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("STATE ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[6:])


@pytest.mark.slow
def test_cancel_leaves_nothing_behind(qgis, tmp_path):
    """processing.run canceled from a thread while the CLI writes (bundled network, 512x512): the
    CLI is stopped, no output or temporary remains, an unrelated file in the folder is untouched."""
    (tmp_path / "in").mkdir()  # QGIS may write an .aux.xml beside its input: keep it out of the output folder
    source = write_geotiff(tmp_path / "in" / "scene.tif", 512, 512, 3, pixel=10.0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("unrelated")
    output = out_dir / "scene_x2.tif"
    state = qgis_script(qgis, tmp_path, CANCEL_SCRIPT, source, output)
    assert state["seen"] is not None, state  # canceled mid-write: the temporary existed, progress > 0
    assert any(name.startswith(".scene_x2.tif.partial-") for name in state["seen"]), state
    assert state["outcome"].startswith("geo-med-sr: canceled"), state
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]
    assert (out_dir / "keep.txt").read_text() == "unrelated"
    assert not output.exists()
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(output).encode() in cmdline.read_bytes() and running(int(cmdline.parent.name)):
                alive.append(cmdline.parent.name)
        except OSError:
            continue
    assert not alive, f"geo-med-sr still running: {alive}"


@pytest.mark.slow
def test_screenshot_script_saves_the_dialog(qgis, tmp_path):
    """integrations/qgis/screenshot.py (QGIS GUI under Xvfb) writes a PNG of the upscale dialog."""
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run not installed (apt-get install xvfb)")
    out = tmp_path / "dialog.png"
    env = {k: v for k, v in qgis.items() if k != "QT_QPA_PLATFORM"}
    subprocess.run(
        ["xvfb-run", "-a", SYSTEM_PYTHON, str(QGIS_DIR / "screenshot.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert width >= 600 and height >= 400
    samples = REPO / "geo_med_sr" / "samples" / "s2_T49JGM_crop"
    assert not list(samples.glob("*.aux.xml"))  # the sample band it shows is left as shipped
