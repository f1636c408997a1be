"""Save and load network checkpoints as ``.safetensors`` files with their configuration.

A checkpoint ``model.safetensors`` holds the weights and, in its header metadata under the
key ``"geo_med_sr"``, the JSON configuration::

    {"format_version": 1, "network": {"name": "edsr", "params": {...}}, "scale": [2, 2],
     "spatial_dims": 2, "in_channels": 1, "out_channels": 1, "receptive_radius": 8,
     "library_version": "0.1.0", "extra": {...}}

``extra`` carries what a caller adds (normalisation statistics, channel names, training file
hashes, ...). The same configuration is written to the sidecar ``model.json`` for people and
tools that do not read safetensors headers. Loading never unpickles: only
``safetensors.torch.load_file`` is used.

:func:`read_config` reads the configuration alone (header, else sidecar) without torch, so the
method can be resolved (and a batch can decide to skip an input) before torch is imported;
torch, MONAI and the networks are imported when a network is saved or built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from geo_med_sr import __version__
from geo_med_sr.errors import ModelError, file_error

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT_VERSION = 1
METADATA_KEY = "geo_med_sr"
SUFFIX = ".safetensors"

_CLASSICAL_HINT = "pass a .safetensors checkpoint or use --method bspline, linear or nearest"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar written next to checkpoint ``path`` (``x.safetensors`` -> ``x.json``)."""
    return Path(path).with_suffix(".json")


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> Path:
    """Write the weights and configuration of ``model`` to ``path`` and its JSON sidecar.

    Args:
        model: a registered geo_med_sr network (it must have ``config()``).
        path: destination ending in ``.safetensors``; an existing file is replaced.
        extra: JSON-able information stored with the network, e.g. normalisation statistics,
            channel names, training file hashes.

    Returns:
        The path written.

    Raises:
        ModelError: wrong suffix, model without a registered configuration, or ``extra`` that
            is not JSON-able.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        raise file_error(ModelError, path, f"checkpoint file names must end with {SUFFIX}")
    config = checkpoint_config(model, extra)
    text = json.dumps(config, sort_keys=True)
    state = {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        save_file(state, str(tmp), metadata={METADATA_KEY: text})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar_path(path).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def checkpoint_config(model: nn.Module, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration dictionary that :func:`save_checkpoint` stores for ``model``.

    Raises:
        ModelError: the model has no ``config()``, is not registered, or ``extra`` is not JSON-able.
    """
    from geo_med_sr.networks import NETWORKS
    from geo_med_sr.networks.edsr import ResidualSRNetwork
    from geo_med_sr.networks.guided import GuidedNet

    if not isinstance(model, (ResidualSRNetwork, GuidedNet)):
        raise ModelError(
            f"cannot save a {type(model).__name__}: only geo_med_sr networks (with config()) can be checkpointed"
        )
    network = model.config()
    if network.get("name") not in NETWORKS:
        raise ModelError(
            f"cannot save network {network.get('name')!r}: it is not registered in geo_med_sr.networks.NETWORKS"
        )
    config = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "network": network,
        "scale": list(model.scale),
        "spatial_dims": model.spatial_dims,
        "in_channels": model.in_channels,
        "out_channels": model.out_channels,
        "receptive_radius": model.receptive_radius,
        "extra": dict(extra or {}),
    }
    try:
        return json.loads(json.dumps(config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"checkpoint extra must be JSON-able (numbers, strings, lists, dicts): {exc}") from exc


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network stored in ``path`` and load its weights (no pickle involved).

    Args:
        path: a ``.safetensors`` file written by :func:`save_checkpoint`.
        device: where the returned model lives.

    Returns:
        ``(model, config)``: the network in eval mode, and the stored configuration
        (``config["extra"]`` holds what was passed to :func:`save_checkpoint`).

    Raises:
        ModelError: one line naming the file, for a missing file, a file that is not
            safetensors, a missing or invalid configuration, or weights that do not fit.
    """
    import torch
    from safetensors.torch import load_file

    from geo_med_sr.networks import build_network

    path = _check_file(path)
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise file_error(ModelError, path, f"invalid device {device!r}: {exc}") from exc
    config = read_config(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise file_error(
            ModelError, path, f"not a readable safetensors file ({exc}); the file may be truncated"
        ) from exc
    try:
        with torch.device("meta"):  # a skeleton first: nothing is allocated before the weights are checked
            skeleton = build_network(**config["network"])
    except (ModelError, TypeError, ValueError) as exc:
        raise file_error(ModelError, path, f"stored network configuration is invalid: {exc}") from exc
    if "scale" in config and list(config["scale"]) != list(skeleton.scale):
        raise file_error(
            ModelError,
            path,
            f"configuration scale {config['scale']} disagrees with the network's {list(skeleton.scale)}",
        )
    _check_weights(path, skeleton, state)
    model = build_network(**config["network"])
    model.load_state_dict(state, strict=True)
    return model.to(target).eval(), config


def _check_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path; ModelError unless it is an existing ``.safetensors`` file."""
    path = Path(path)
    if not path.exists():
        raise file_error(ModelError, path, f"checkpoint not found; {_CLASSICAL_HINT}")
    if not path.is_file():
        raise file_error(ModelError, path, f"checkpoint is not a file; {_CLASSICAL_HINT}")
    if path.suffix != SUFFIX:
        raise file_error(
            ModelError,
            path,
            f"not a {SUFFIX} file; pickled PyTorch checkpoints (.pt/.pth/.ckpt) are never loaded, "
            "re-save the weights with geo_med_sr.models.checkpoint.save_checkpoint",
        )
    return path


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The configuration stored with checkpoint ``path`` (header metadata, else the JSON sidecar),
    read without torch and without loading the weights.

    Raises:
        ModelError: as :func:`load_checkpoint` does for a missing, unreadable or unconfigured file.
    """
    path = _check_file(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise file_error(
            ModelError, path, f"not a readable safetensors file ({exc}); the file may be truncated"
        ) from exc
    return _read_config(path, metadata)


def _read_config(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    """The configuration from the header metadata, else from the JSON sidecar."""
    text = metadata.get(METADATA_KEY)
    source = "header metadata"
    if text is None:
        sidecar = sidecar_path(path)
        if not sidecar.is_file():
            raise file_error(
                ModelError,
                path,
                f"no geo_med_sr configuration (no {METADATA_KEY!r} header metadata and no {sidecar.name}); "
                "save checkpoints with geo_med_sr.models.checkpoint.save_checkpoint",
            )
        text = sidecar.read_text(encoding="utf-8")
        source = sidecar.name
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise file_error(ModelError, path, f"configuration in {source} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise file_error(ModelError, path, f"configuration in {source} must be a JSON object")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise file_error(ModelError, path, f"configuration in {source} has no integer format_version")
    if version > FORMAT_VERSION:
        raise file_error(
            ModelError,
            path,
            f"checkpoint format {version} is newer than this geo_med_sr supports ({FORMAT_VERSION}); upgrade "
            "geo_med_sr",
        )
    network = config.get("network")
    if (
        not isinstance(network, dict)
        or not isinstance(network.get("name"), str)
        or not isinstance(network.get("params"), dict)
        or set(network) - {"name", "params"}
    ):
        raise file_error(
            ModelError, path, f'configuration in {source} needs "network": {{"name": str, "params": {{...}}}}'
        )
    config.setdefault("extra", {})
    return config


def _check_weights(path: Path, model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise a one-line ModelError when ``state`` does not fit ``model`` exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and tuple(state[key].shape) != tuple(value.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {_head(missing)}")
    if unexpected:
        problems.append(f"unexpected {_head(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (stored vs network) {_head(mismatched)}")
    if problems:
        name = model.name
        raise file_error(
            ModelError, path, f"weights do not match the stored {name!r} configuration: {'; '.join(problems)}"
        )


def _head(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return f"{shown} (+{len(items) - n} more)" if len(items) > n else shown


def model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The checkpoint file a ``--model`` value names (torch is imported only to explain a bad name).

    Args:
        name_or_path: the name of a bundled model (``sat-edsr-x2``) or a ``.safetensors`` path.

    Returns:
        The bundled model's weights file, or the path as given (not checked for existence here:
        :func:`read_config` and :func:`load_checkpoint` report a missing file).

    Raises:
        ModelError: a bare network name (no bundled weights exist for it) or an unknown name
            (with the closest suggestion).
    """
    from geo_med_sr.models.bundled import find

    text = os.fspath(name_or_path)
    bundled = find(text)
    if bundled is not None:
        return bundled.path
    path = Path(text)
    if path.exists() or text.endswith(SUFFIX) or os.sep in text or isinstance(name_or_path, os.PathLike):
        return path
    from geo_med_sr.networks import NETWORKS

    if text not in NETWORKS:
        try:
            NETWORKS.get(text)
        except ModelError as exc:
            raise ModelError(
                f"model {text!r} is neither an existing checkpoint file nor a network name: {exc}"
            ) from exc
    raise ModelError(f"model {text!r}: bundled weights for this network do not exist yet; {_CLASSICAL_HINT}")


def resolve_model(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Turn a ``--model`` value into a loaded network (:func:`model_path`, then :func:`load_checkpoint`).

    Returns:
        ``(model, config)`` as from :func:`load_checkpoint`.

    Raises:
        ModelError: as :func:`model_path` and :func:`load_checkpoint`.
    """
    return load_checkpoint(model_path(name_or_path), device=device)
