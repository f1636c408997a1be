"""Which torch device runs the engine and training, and its mixed precision."""

from __future__ import annotations

import contextlib

import torch

from geo_med_sr.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch.

    Raises:
        ConfigError: an unknown device name, or a CUDA device when CUDA is not available.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """Mixed precision (float16 autocast) on CUDA when ``amp``; a no-op context otherwise (CPU
    always runs in the model's own dtype)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
