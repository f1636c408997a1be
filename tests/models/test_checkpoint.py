"""Tests for geo_med_sr.models.checkpoint: safetensors round trips, no pickle, clear errors."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import safetensors.torch
import torch

from geo_med_sr.errors import ModelError
from geo_med_sr.models.checkpoint import (
    FORMAT_VERSION,
    METADATA_KEY,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
    sidecar_path,
)
from geo_med_sr.networks import build_network

TINY = {
    "edsr": {"features": 8, "num_blocks": 2},
    "rcan": {"features": 8, "num_groups": 1, "num_blocks": 2, "reduction": 4, "attention_window": 3},
}
EXTRA = {
    "normalization": {"kind": "percentile", "low": [12.5], "high": [980.0]},
    "channels": ["t1"],
    "training_files": {"a.nii.gz": "sha256:00ff"},
}


def trained_like(name: str, spatial_dims: int, scale, in_channels: int = 1) -> torch.nn.Module:
    """A tiny network with every parameter random (as if trained), so predictions are non-trivial."""
    torch.manual_seed(3)
    net = build_network(name, spatial_dims=spatial_dims, in_channels=in_channels, scale=scale, **TINY[name])
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.2)
    return net.eval()


def header(path: Path) -> dict:
    """Parse the safetensors header by hand: 8-byte little-endian length + JSON."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length])


def assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


@pytest.mark.parametrize("name", ["edsr", "rcan"])
@pytest.mark.parametrize(("spatial_dims", "scale", "size"), [(2, (2, 3), (6, 5)), (3, (1, 1, 2), (4, 5, 3))])
def test_round_trip_reproduces_predictions(tmp_path: Path, name: str, spatial_dims: int, scale, size) -> None:
    net = trained_like(name, spatial_dims, scale, in_channels=2)
    x = torch.randn(1, 2, *size)
    with torch.no_grad():
        expected = net(x)
    path = save_checkpoint(net, tmp_path / "model.safetensors", extra=EXTRA)
    assert path == tmp_path / "model.safetensors"

    loaded, config = load_checkpoint(path)
    assert type(loaded) is type(net)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert config["network"] == net.config()
    assert config["scale"] == list(scale)
    assert config["format_version"] == FORMAT_VERSION
    assert config["receptive_radius"] == net.receptive_radius
    assert config["extra"] == EXTRA

    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path) == tmp_path / "model.json"
    assert sidecar == config == json.loads(header(path)["__metadata__"][METADATA_KEY])


def test_file_is_plain_safetensors_and_loads_without_pickle(tmp_path: Path, monkeypatch) -> None:
    net = trained_like("edsr", 2, 2)
    path = save_checkpoint(net, tmp_path / "m.safetensors")
    tensors = safetensors.torch.load_file(str(path))
    assert set(tensors) == set(net.state_dict())
    assert all(key == "__metadata__" or "dtype" in value for key, value in header(path).items())

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    loaded, _ = load_checkpoint(path)
    x = torch.randn(1, 1, 5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_overwrite_and_nested_folder(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "a" / "m.safetensors"
    save_checkpoint(trained_like("edsr", 2, 2), path)
    save_checkpoint(trained_like("rcan", 2, 3), path)
    loaded, config = load_checkpoint(path)
    assert config["network"]["name"] == "rcan"
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.json", "m.safetensors"]


def test_config_falls_back_to_sidecar(tmp_path: Path) -> None:
    net = trained_like("edsr", 2, 2)
    path = save_checkpoint(net, tmp_path / "m.safetensors")
    safetensors.torch.save_file(net.state_dict(), str(path))  # same weights, no header metadata
    loaded, config = load_checkpoint(path)
    assert config["network"] == net.config()


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(ModelError, match="not found") as exc:
        load_checkpoint(path)
    assert_one_line_naming(exc, path)


@pytest.mark.parametrize("content", [b"", b"garbage bytes", b"\xff" * 64])
def test_not_a_safetensors_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="not a readable safetensors file") as exc:
        load_checkpoint(path)
    assert_one_line_naming(exc, path)


def test_truncated_file(tmp_path: Path) -> None:
    path = save_checkpoint(trained_like("edsr", 2, 2), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="not a readable safetensors file") as exc:
        load_checkpoint(path)
    assert_one_line_naming(exc, path)


def test_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelError, match="never loaded") as exc:
        load_checkpoint(path)
    assert_one_line_naming(exc, path)


def test_missing_config(tmp_path: Path) -> None:
    path = tmp_path / "raw.safetensors"
    safetensors.torch.save_file(trained_like("edsr", 2, 2).state_dict(), str(path))
    with pytest.raises(ModelError, match="no geo_med_sr configuration") as exc:
        load_checkpoint(path)
    assert_one_line_naming(exc, path)


def rewrite_config(path: Path, text: str) -> None:
    tensors = safetensors.torch.load_file(str(path))
    safetensors.torch.save_file(tensors, str(path), metadata={METADATA_KEY: text})


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: "{not json", "not valid JSON"),
        (lambda c: json.dumps([1, 2]), "JSON object"),
        (lambda c: json.dumps({**c, "format_version": None}), "format_version"),
        (lambda c: json.dumps({**c, "format_version": FORMAT_VERSION + 1}), "upgrade"),
        (lambda c: json.dumps({**c, "network": {"name": "edsr"}}), "network"),
        (lambda c: json.dumps({**c, "network": {**c["network"], "name": "edsrr"}}), "did you mean 'edsr'"),
        (
            lambda c: json.dumps(
                {**c, "network": {**c["network"], "params": {**c["network"]["params"], "features": 16}}}
            ),
            "weights do not match",
        ),
        (
            lambda c: json.dumps(
                {**c, "network": {**c["network"], "params": {**c["network"]["params"], "num_blocks": 3}}}
            ),
            "missing",
        ),
        (
            lambda c: json.dumps({**c, "network": {**c["network"], "params": {**c["network"]["params"], "scale": 0}}}),
            "invalid",
        ),
        (lambda c: json.dumps({**c, "scale": [3, 3]}), "disagrees"),
    ],
)
def test_invalid_config(tmp_path: Path, mutate, match: str) -> None:
    path = save_checkpoint(trained_like("edsr", 2, 2), tmp_path / "m.safetensors")
    config = json.loads(sidecar_path(path).read_text())
    rewrite_config(path, mutate(config))
    with pytest.raises(ModelError, match=match) as exc:
        load_checkpoint(path)
    assert_one_line_naming(exc, path)


def test_save_errors(tmp_path: Path) -> None:
    net = trained_like("edsr", 2, 2)
    with pytest.raises(ModelError, match=r"\.safetensors"):
        save_checkpoint(net, tmp_path / "m.pt")
    with pytest.raises(ModelError, match="JSON"):
        save_checkpoint(net, tmp_path / "m.safetensors", extra={"stats": object()})
    with pytest.raises(ModelError, match="JSON"):
        save_checkpoint(net, tmp_path / "m.safetensors", extra={"mean": float("nan")})
    with pytest.raises(ModelError, match="config"):
        save_checkpoint(torch.nn.Conv2d(1, 1, 3), tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# resolve_model
# --------------------------------------------------------------------------------------------


def test_resolve_model_loads_a_path(tmp_path: Path) -> None:
    net = trained_like("rcan", 2, 2)
    path = save_checkpoint(net, tmp_path / "m.safetensors")
    for value in (path, str(path)):
        loaded, config = resolve_model(value)
        assert config["network"] == net.config()


def test_resolve_model_bare_name_has_no_bundled_weights() -> None:
    with pytest.raises(ModelError, match="bundled weights") as exc:
        resolve_model("edsr")
    assert "--method" in str(exc.value) and ".safetensors" in str(exc.value)


def test_resolve_model_unknown_name_suggests_closest() -> None:
    with pytest.raises(ModelError, match="did you mean 'rcan'"):
        resolve_model("rcann")


def test_resolve_model_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "missing.safetensors"))
