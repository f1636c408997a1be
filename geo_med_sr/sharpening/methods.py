"""The sharpening methods: what turns a group's inputs (:class:`~.scene.GroupInputs`) into its bands.

Every method is a :class:`~geo_med_sr.inference.protocols.GuidedMethod`: it maps physical
values on a window ``(W, H)`` of the output grid (``up`` ``(T, W, H)``, ``guides`` ``(G, W, H)``...)
to the sharpened ``(T, W, H)``, needs ``receptive_radius`` output pixels of context around what it
returns (the window driver's halo) and says whether it uses the guides' MTF-GLP detail
(``needs_detail``).

* :class:`Bicubic`: the coarse bands sampled at the output centres (the baseline).
* :class:`Brovey`: GDAL's weighted Brovey (``gdal_pansharpen.py``): each band times
  ``pan / sum(w_b * band_b)`` with equal weights ``1/T``; several guides act as one pan (their mean).
* :class:`GLP`: MTF-GLP detail injection with **regression gains**: ``up_b + sum_k g_bk d_k``, the
  gains ``g_b`` fitted by least squares at the reduced resolution (:func:`fit_glp`), so a band
  whose detail does not follow the guides gets gains near zero instead of being harmed.
* :class:`NetworkMethod`: a :class:`~geo_med_sr.networks.guided.GuidedNet` on normalised inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from geo_med_sr.errors import InputError
from geo_med_sr.sharpening.scene import GroupInputs

__all__ = ["GLP", "Bicubic", "Brovey", "NetworkMethod", "fit_glp", "fit_glp_full_scale"]

#: ridge regularisation of the GLP gains, relative to the mean detail energy.
GLP_RIDGE = 1e-3


class Bicubic:
    """The coarse bands sampled at the output pixel centres (Keys cubic, through the grid offset)."""

    name = "bicubic"
    receptive_radius = 0
    needs_detail = False

    def __call__(self, inputs: GroupInputs) -> np.ndarray:
        return inputs.up


class Brovey:
    """GDAL's weighted Brovey transform with equal weights (physical values, no offset)."""

    name = "brovey"
    receptive_radius = 0
    needs_detail = False

    def __call__(self, inputs: GroupInputs) -> np.ndarray:
        pan = inputs.guides.mean(axis=0)
        pseudo = inputs.up.mean(axis=0)
        factor = np.divide(pan, pseudo, out=np.zeros_like(pan), where=pseudo != 0)
        return inputs.up * factor[None]


class GLP:
    """MTF-GLP detail injection with per-band, per-guide regression gains.

    Args:
        gains: ``(T, G)`` gains (from :func:`fit_glp`).
    """

    name = "glp"
    receptive_radius = 0
    needs_detail = True

    def __init__(self, gains: np.ndarray) -> None:
        self.gains = np.asarray(gains, dtype=np.float64)

    def __call__(self, inputs: GroupInputs) -> np.ndarray:
        if inputs.detail is None:
            raise ValueError("GLP needs the guides' detail (group_inputs(..., detail=True))")
        return inputs.up + np.einsum("tg,gxy->txy", self.gains, inputs.detail)


def fit_glp(pairs: Iterable[tuple[GroupInputs, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Least-squares gains ``(T, G)`` from reduced-resolution pairs ``(inputs, label, valid)``.

    For band ``b``: minimise ``|label_b - up_b - D g_b|^2`` over valid pixels (ridge
    :data:`GLP_RIDGE`), where ``D`` holds the guides' detail. ``pairs`` may be a generator: the
    normal equations are accumulated pair by pair, so only one pair is in memory at a time.

    Raises:
        InputError: no valid pixel to fit on.
    """
    sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # per band: D^T D, D^T residual, pixels
    for inputs, label, valid in pairs:
        if inputs.detail is None:
            raise ValueError("fit_glp needs the guides' detail (group_inputs(..., detail=True))")
        t, g = inputs.up.shape[0], inputs.detail.shape[0]
        if sums is None:
            sums = np.zeros((t, g, g)), np.zeros((t, g)), np.zeros(t, dtype=np.int64)
        a, y, count = sums
        detail = inputs.detail.reshape(g, -1)
        for bands, keep in _shared_masks((valid & inputs.valid).reshape(t, -1)):
            # bands with the same valid pixels share one Gram matrix; the detail is copied only where a mask
            # leaves pixels out (none on a scene without nodata)
            d = detail if keep is None else detail[:, keep]
            a[bands] += d @ d.T
            for b in bands:
                residual = (label[b] - inputs.up[b]).reshape(-1)
                y[b] += d @ (residual if keep is None else residual[keep])
            count[bands] += d.shape[1]
    if sums is None or np.any(sums[2] == 0):
        raise InputError("no valid pixel to fit the GLP gains on at the reduced resolution")
    a, y, _ = sums
    g = a.shape[1]
    gains = np.zeros(y.shape)
    for b in range(len(gains)):
        ridge = GLP_RIDGE * max(float(np.trace(a[b])) / g, 1e-12)
        gains[b] = np.linalg.solve(a[b] + ridge * np.eye(g), y[b])
    return gains


def _shared_masks(keep: np.ndarray) -> list[tuple[list[int], np.ndarray | None]]:
    """The distinct rows of ``keep`` ``(T, N)`` with the bands that have them: ``[(bands, mask), ...]``,
    the mask None where it keeps every pixel."""
    groups: list[tuple[list[int], np.ndarray]] = []
    for b, row in enumerate(keep):
        same = next((bands for bands, mask in groups if np.array_equal(mask, row)), None)
        if same is None:
            groups.append(([b], row))
        else:
            same.append(b)
    return [(bands, None if mask.all() else mask) for bands, mask in groups]


def fit_glp_full_scale(samples: Sequence[GroupInputs]) -> np.ndarray:
    """Gains ``(T, G)`` when no reduced copy can be made: the regression of each upsampled band on the
    guides' low-pass (``guides - detail``) at the scene's own resolution (centred, ridge :data:`GLP_RIDGE`).

    Raises:
        InputError: no valid pixel.
    """
    t, g = samples[0].up.shape[0], samples[0].guides.shape[0]
    gains = np.zeros((t, g))
    for b in range(t):
        rows, values = [], []
        for s in samples:
            keep = s.valid[b]
            rows.append((s.guides - s.detail)[:, keep].T)
            values.append(s.up[b][keep])
        x, y = np.concatenate(rows), np.concatenate(values)
        if len(y) == 0:
            raise InputError("no valid pixel to fit the GLP gains on")
        x, y = x - x.mean(0), y - y.mean()
        a = x.T @ x
        gains[b] = np.linalg.solve(a + GLP_RIDGE * max(float(np.trace(a)) / g, 1e-12) * np.eye(g), x.T @ y)
    return gains


class NetworkMethod:
    """A guided network on normalised inputs; physical values in and out.

    Args:
        model: a :class:`~geo_med_sr.networks.guided.GuidedNet` (eval mode is set here).
        target_stats: ``{"mean", "std"}`` per target band.
        guide_stats: ``{"mean", "std"}`` per guide band, then per in-between band.
        device: torch device; ``amp``: autocast on CUDA.
        use_between: feed the in-between bands too (``guide_stats`` then covers them); False: guides only.
    """

    name = "network"
    needs_detail = False

    def __init__(
        self,
        model: Any,
        target_stats: Sequence[dict[str, float]],
        guide_stats: Sequence[dict[str, float]],
        device: Any = "cpu",
        amp: bool = False,
        use_between: bool = True,
    ) -> None:
        import torch

        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.receptive_radius = int(model.receptive_radius)
        self.t_mean, self.t_std = _moments(target_stats)
        self.g_mean, self.g_std = _moments(guide_stats)
        self.use_between = bool(use_between)

    def normalised(self, inputs: GroupInputs) -> tuple[np.ndarray, np.ndarray]:
        """``(T, W, H)`` and ``(G + I, W, H)`` float32 network inputs."""
        up = (inputs.up - self.t_mean) / self.t_std
        stack = np.concatenate([inputs.guides, inputs.between]) if self.use_between else inputs.guides
        guides = (stack - self.g_mean) / self.g_std
        return up.astype(np.float32), guides.astype(np.float32)

    def __call__(self, inputs: GroupInputs) -> np.ndarray:
        import torch

        from geo_med_sr.inference.device import autocast

        up, guides = self.normalised(inputs)
        with torch.inference_mode(), autocast(self.device, self.amp):
            out = self.model(torch.from_numpy(up)[None].to(self.device), torch.from_numpy(guides)[None].to(self.device))
        z = out[0].float().cpu().numpy().astype(np.float64)
        return z * self.t_std + self.t_mean


def _moments(stats: Sequence[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([s["mean"] for s in stats], dtype=np.float64)[:, None, None]
    std = np.array([s["std"] for s in stats], dtype=np.float64)[:, None, None]
    return mean, std
