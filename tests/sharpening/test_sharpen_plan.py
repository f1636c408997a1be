"""Sharpening decided once: the method registry, the plan (refusals from headers, before any pixel or
training), the request fingerprint, and the Python API exactly as the README shows it."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REPO
from s2_fixtures import S2_10, S2_20, s2_folder

import geo_med_sr
from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import ConfigError, InputError, ModelError
from geo_med_sr.models.bundled import find
from geo_med_sr.sharpening.pipeline import open_scene, sharpen
from geo_med_sr.sharpening.plan import (
    DEFAULT_STEPS,
    DEFAULT_STEPS_COARSE,
    DEFAULT_STEPS_FINETUNE,
    REDUCED,
    plan_sharpening,
)
from geo_med_sr.sharpening.registry import DEFAULT_METHOD, PROXY, SHARPEN_METHODS, SharpenMethod
from geo_med_sr.sharpening.request import sharpen_request
from geo_med_sr.sharpening.scene import plan


class NoPixels:
    """A band source that refuses to be read: what runs before it is pixel-free."""

    def __init__(self, source) -> None:
        self.source = source

    def __getattr__(self, name):
        return getattr(self.source, name)

    def read(self, *args, **kwargs):
        raise AssertionError("a pixel was read while planning")

    read_valid = read


@contextlib.contextmanager
def headers_only(inputs, **kwargs):
    """The scene of ``inputs`` with readers that fail on any pixel read, and its layout."""
    with open_scene(inputs, **kwargs) as scene:
        for band in scene.bands:
            band.source = NoPixels(band.source)
        yield scene, plan(scene)


def guided_checkpoint(path: Path, bands: int, guides: int, ratio: int = 2, seed: int = 0, **extra) -> Path:
    """A tiny guided checkpoint for ``bands`` bands and ``guides`` guides (random head, zero tail)."""
    import torch

    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks.guided import GuidedNet

    torch.manual_seed(seed)
    return save_checkpoint(GuidedNet(bands, guides, ratio, features=4, blocks=0), path, extra=extra)


# ------------------------------------------------------------------ the registry


def test_registry_names_the_methods_and_the_cli_offers_exactly_them():
    import argparse

    from geo_med_sr.cli.main import build_parser

    assert SHARPEN_METHODS.names() == ["bicubic", "brovey", "glp", "model", "self"]
    assert DEFAULT_METHOD in SHARPEN_METHODS
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    (method,) = [a for a in sub.choices["sharpen"]._actions if "--method" in a.option_strings]
    assert list(method.choices) == SHARPEN_METHODS.names() and method.default == DEFAULT_METHOD
    evaluate_sharpen_parser = sub.choices["evaluate"].modes["--sharpen"]
    (method,) = [a for a in evaluate_sharpen_parser._actions if "--method" in a.option_strings]
    assert list(method.choices) == SHARPEN_METHODS.names()
    for name in SHARPEN_METHODS:  # every record names a builder that exists
        assert callable(SHARPEN_METHODS.get(name).build_function())


def test_registry_refuses_duplicates_and_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="already registered"):
        SHARPEN_METHODS.add("glp", SharpenMethod("glp", "x:y"))
    with pytest.raises(ConfigError, match="did you mean 'brovey'"):
        SHARPEN_METHODS.get("brovy")
    with pytest.raises(ConfigError, match="did you mean 'brovey'"):
        sharpen("nowhere", "out.tif", method="brovy")  # before any file is looked at


def test_pipeline_has_no_branch_on_a_method_name():
    """The pipeline executes the plan: which method runs is the registry's business."""
    text = (REPO / "geo_med_sr" / "sharpening" / "pipeline.py").read_text(encoding="utf-8")
    for name in SHARPEN_METHODS:
        assert not re.search(rf"""["']{name}["']""", text), name


# ------------------------------------------------------------------ the plan


def test_plan_decides_groups_weights_and_budget_from_headers_only(tmp_path):
    folder = s2_folder(tmp_path / "S2X", n=96, scl=False)
    with headers_only([folder]) as (scene, layout):
        decided = plan_sharpening(scene, layout, "self", budget=100.0, seed=3)
        x2, x6 = decided.groups
        assert x2.bands == S2_20 and x2.guides == S2_10 and x2.ratio == (2, 2) and x2.learn_from == REDUCED
        assert x6.bands == ("B01",) and x6.guides == S2_10 + S2_20 and x6.learn_from == PROXY and x6.donor == 0
        assert (x2.budget, x6.budget) == (75.0, 25.0) and decided.seed == 3
        assert x2.network["params"]["target_channels"] == 6
        if find("s2-guided-x2") is not None:  # self fine-tunes the bundled x2 model (it fits these bands)
            assert x2.model == "s2-guided-x2" and x2.weights is not None and len(x2.weights_sha256) == 64
        scratch = plan_sharpening(scene, layout, "self", model="scratch").groups[0]
        assert scratch.weights is None and scratch.network["params"]["features"] == 64
        assert x6.network["params"]["bandwise"] and not x6.use_between and x6.weights is None  # proxy: scratch
        steps = {g.index: (g.steps, g.steps_from) for g in plan_sharpening(scene, layout, "self").groups}
        fine = DEFAULT_STEPS_FINETUNE if find("s2-guided-x2") is not None else DEFAULT_STEPS
        assert steps == {0: (fine, "default"), 1: (DEFAULT_STEPS_COARSE, "default")}
        ckpt = guided_checkpoint(tmp_path / "g.safetensors", 6, 4)
        given = plan_sharpening(scene, layout, "model", model=str(ckpt), group=0)
        (only,) = given.groups
        assert only.weights == ckpt and len(only.weights_sha256) == 64 and only.network["params"]["features"] == 4
        glp = plan_sharpening(scene, layout, "glp").groups
        assert (glp[0].learn_from, glp[1].learn_from) == (REDUCED, "full-scale")  # 16 px of B01: 2 once reduced
        for name in ("bicubic", "brovey"):
            assert all(g.learn_from is None and g.weights is None for g in plan_sharpening(scene, layout, name).groups)


def test_plan_refuses_before_reading_a_pixel(tmp_path):
    folder = s2_folder(tmp_path / "S2X", n=48, scl=False)
    bands = ",".join((*S2_10, "B05", "B06"))
    with headers_only([folder], bands=bands.split(",")) as (scene, layout):
        with pytest.raises(ConfigError, match="not both"):
            plan_sharpening(scene, layout, "self", budget=1.0, steps=1)
        with pytest.raises(ModelError, match="takes 4 guides and 6 bands"):
            plan_sharpening(scene, layout, "model", model=str(guided_checkpoint(tmp_path / "a.safetensors", 6, 4)))
        with pytest.raises(ModelError, match="trained for x4, these bands need x2"):
            plan_sharpening(scene, layout, "self", model=str(guided_checkpoint(tmp_path / "b.safetensors", 2, 4, 4)))
        named = guided_checkpoint(tmp_path / "c.safetensors", 2, 4, targets=["B11", "B12"])
        with pytest.raises(ModelError, match="trained for bands B11, B12, not B05, B06"):
            plan_sharpening(scene, layout, "model", model=str(named))
    with headers_only([folder], bands=[*S2_10, "B01"]) as (scene, layout):
        with pytest.raises(InputError, match="B01 are too small for a reduced-resolution copy"):
            plan_sharpening(scene, layout, "self")  # no finer coarse band can stand in
        assert plan_sharpening(scene, layout, "glp").groups[0].learn_from == "full-scale"


def test_a_group_that_cannot_learn_is_refused_before_another_group_trains(tmp_path, monkeypatch):
    """36 px: the 20 m group could train, the 60 m group cannot (its 20 m stand-ins reduced by 6: 3 px)."""
    import geo_med_sr.sharpening.training as training

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the plan was complete")

    monkeypatch.setattr(training, "train_guided", no_training)
    folder = s2_folder(tmp_path / "S2X", n=36, scl=False)
    with pytest.raises(InputError, match=r"S2X: bands B05, .* too small for a reduced-resolution copy"):
        sharpen(folder, tmp_path / "o.tif", method="self", steps=5, progress=False)
    assert not (tmp_path / "o.tif").exists()


# ------------------------------------------------------------------ the request fingerprint


def _request(inputs, method="glp", **settings):
    cog = settings.pop("cog", True)
    with headers_only(inputs) as (scene, layout):
        return sharpen_request(scene, plan_sharpening(scene, layout, method, **settings), cog=cog)


def test_request_changes_with_the_method_a_weight_or_an_input_byte(tmp_path):
    folder = s2_folder(tmp_path / "S2X", n=48, scl=False)
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    base = _request([folder])
    assert base == _request([folder]) == _request([copy])  # content, not paths
    assert base["command"] == "sharpen" and len(base["input_sha256"]) == 11 and base["method"] == "glp"
    assert base != _request([folder], method="bicubic")
    assert base != _request([folder], cog=False)
    assert _request([folder], "self", steps=5) != _request([folder], "self", steps=6)
    assert _request([folder], "bicubic") == _request([folder], "bicubic", device="cpu", seed=7)  # not used

    bands = [str(folder / f"{b}.tif") for b in (*S2_10, "B05", "B06")]
    a = guided_checkpoint(tmp_path / "a.safetensors", 2, 4, seed=0)
    b = guided_checkpoint(tmp_path / "b.safetensors", 2, 4, seed=1)
    with_a = _request(bands, "model", model=str(a))
    assert with_a == _request(bands, "model", model=str(shutil.copy(a, tmp_path / "same.safetensors")))
    assert with_a != _request(bands, "model", model=str(b))
    assert with_a["model_sha256"] == [sha256_file(a)]

    with rasterio.open(folder / "B05.tif", "r+") as dst:  # one pixel one DN brighter
        data = dst.read(1)
        data[3, 4] += 1
        dst.write(data, 1)
    assert _request([folder]) != base


def test_the_output_records_the_request_and_the_common_provenance(tmp_path):
    from geo_med_sr import io
    from geo_med_sr.provenance import read_fields

    folder = s2_folder(tmp_path / "S2X", n=48, scl=False)
    result = sharpen(folder, tmp_path / "o.tif", method="glp", progress=False)
    stored = io.read_provenance(tmp_path / "o.tif")
    assert stored["request"] == result.provenance["request"] == _request([folder])
    fields = read_fields(stored)
    assert (fields.tool, fields.version, fields.command, fields.method) == (
        "geo_med_sr",
        geo_med_sr.__version__,
        "sharpen",
        "glp",
    )
    assert fields.inputs == (str(folder),)


# ------------------------------------------------------------------ the Python API, as the README shows it


def test_the_readme_python_call_runs_on_the_bundled_sample(tmp_path, monkeypatch, capsys):
    from geo_med_sr.cli.demo import sample_s2

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Sharpening: Sentinel-2 bands and pan-sharpening") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'geo_med_sr.sharpen("S2_FOLDER", "OUT.tif"' in code
    code = code.replace('"S2_FOLDER"', repr(str(sample_s2())))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # exactly the README's lines, on the shipped crop
    assert (tmp_path / "OUT.tif").is_file()
    printed = capsys.readouterr().out
    assert "OUT.tif (192, 192)" in printed and "reduced resolution" in printed
    with rasterio.open(tmp_path / "OUT.tif") as src:
        assert src.count == 12 and src.res == (10.0, 10.0) and np.isfinite(src.read()).all()
    assert geo_med_sr.sharpen is sharpen
