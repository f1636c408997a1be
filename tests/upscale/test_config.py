"""Configs: YAML validated into typed objects; unknown keys and bad values are errors."""

from __future__ import annotations

import pytest

from geo_med_sr.errors import ConfigError
from geo_med_sr.upscale.config import SRConfig, load_config


@pytest.mark.parametrize("name", ["medical/mri", "medical/ct", "geo/default", "geo/reflectance"])
def test_bundled_configs_load(name):
    config = load_config(name)
    assert isinstance(config, SRConfig)
    assert config.normalize.name in ("percentile", "window", "fixed")


def test_unknown_key_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inference:\n  patch_sise: 32\n")
    with pytest.raises(ConfigError, match="patch_sise") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text,problem",
    [
        ("inference: {patch_size: 0}", "patch_size"),
        ("model: {method: magic}", "method"),
        ("- a\n- b\n", "mapping"),
        ("a: [", "YAML"),
    ],
)
def test_bad_values(tmp_path, text, problem):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_missing_config():
    with pytest.raises(ConfigError, match="no such config"):
        load_config("medical/nothing")


def test_updated_ignores_none_and_validates():
    config = SRConfig().updated(inference={"patch_size": 32, "device": None})
    assert config.inference.patch_size == 32 and config.inference.device == "auto"
    with pytest.raises(ConfigError, match="batch_size"):
        SRConfig().updated(inference={"batch_size": 0})


def test_cli_uses_a_config_file(oblique_nifti, tmp_path):
    from geo_med_sr import io
    from geo_med_sr.cli.main import main

    path = tmp_path / "linear.yaml"
    path.write_text("model: {method: linear}\ninference: {patch_size: 5}\noutput: {dtype: float32}\n")
    assert (
        main(
            [
                "upscale",
                str(oblique_nifti),
                str(tmp_path / "o.nii.gz"),
                "--scale",
                "2",
                "--config",
                str(path),
                "--quiet",
            ]
        )
        == 0
    )
    out = io.read(tmp_path / "o.nii.gz")
    assert out.meta["dtype"] == "float32" and out.spatial_shape == (26, 20, 18)


@pytest.mark.parametrize(
    "text,where",
    [
        ("model: {method: linear}\ninference: {patch_size: 8}\nmodel: {method: bspline}\n", "key 'model'"),
        ("inference:\n  patch_size: 8\n  patch_size: 16\n", "key 'patch_size'"),
    ],
)
def test_a_key_given_twice_is_an_error_not_the_last_value(tmp_path, text, where):
    """PyYAML alone keeps the last of two equal keys; every config loader refuses them in one line."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid YAML: ") and "given twice" in message and "\n" not in message


def test_every_config_loader_refuses_a_repeated_key(tmp_path):
    from geo_med_sr.pacs.rules import load_rules
    from geo_med_sr.training.config import load_training_config

    path = tmp_path / "c.yaml"
    path.write_text("steps: 10\nseed: 1\nsteps: 20\n")
    with pytest.raises(ConfigError, match="key 'steps' is given twice .lines 1 and 3."):
        load_training_config(path)
    path.write_text("rules: []\nrules: []\n")
    with pytest.raises(ConfigError, match="key 'rules' is given twice"):
        load_rules(path)


def test_the_strict_bases_are_strict_and_frozen_where_they_should_be():
    from pydantic import ValidationError

    from geo_med_sr.schema import Frozen, Strict, validate

    class Part(Strict):
        size: int = 1

    class Fixed(Frozen):
        size: int = 1

    with pytest.raises(ConfigError, match=r"^src: invalid configuration: sise: Extra inputs are not permitted$"):
        validate(Part, {"sise": 2}, "src")
    part = Part()
    part.size = 3
    with pytest.raises(ValidationError):
        Fixed().size = 3
    assert SRConfig.model_config["frozen"] and SRConfig.model_config["extra"] == "forbid"
