"""Guided MRI super-resolution: a thick-slice series restored with the patient's own finer image.

A clinical protocol acquires one isotropic 3D T1w and several 2D series with thick slices (T2w,
FLAIR). ``upscale TARGET OUT --guide GUIDE --scale 1,1,4`` restores the thick axis of TARGET with
GUIDE's anatomy. What happens here, in order, before any training:

1. the request is checked (:func:`check_request`): one thick axis of a 3D volume, a guide that is a
   NIfTI file or a DICOM series folder of its own, the method that uses it;
2. the guide is read (never written) and checked against the target
   (:mod:`geo_med_sr.guidance.checks`): same patient and study when both are DICOM, finer than the
   target along the thick axis;
3. it is registered rigidly onto the target (:func:`geo_med_sr.guidance.registration.register_rigid`,
   unless ``--guide-registered`` states that both share world space), the registration checked, and
   the guide resampled once onto the output grid with its inside mask (inference); training takes that
   averaged over each thick slice (below);
4. a guide that misses a significant part of the target's anatomy is refused; where it does not
   reach, the target is restored without it (the mask channel is 0 there: the network learned that
   case through guide dropout), and the provenance says how much and where.

The guide channels fed to the network are ``(2, *S)``: the guide normalised by its own statistics
(the target's normaliser kind, fitted on the guide's voxels inside the target's anatomy), 0 outside
the guide, and the 0/1 inside mask.

Training sees the target's own in-plane slices, each a thick slice (the acquisition averaged the
anatomy across it). The guide plane that goes with a slice must carry the same through-plane blur,
or the network would learn a relation between a thick target and a thin guide that does not hold at
inference (where the output and the guide are both thin): so the guide on the target's grid is the
guide on the output grid averaged over each thick slice (the ``s`` output voxels it spans;
contiguous slices), inside only where all of them are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr import io
from geo_med_sr.errors import ConfigError, InputError, file_error
from geo_med_sr.geometry import scale_affine, scaled_shape
from geo_med_sr.normalize import build_normalizer
from geo_med_sr.spatial import SpatialArray

__all__ = ["GUIDE_CHANNELS", "GuideChannels", "PreparedGuide", "check_request", "prepare_guide", "thick_axis"]

#: channels of the guide input: normalised guide values and the 0/1 inside mask.
GUIDE_CHANNELS = 2
#: slices of the last axis normalised at a time (bounded temporaries).
SLAB = 16


class GuideChannels:
    """The guide channels on the output grid as a window :class:`~geo_med_sr.inference.protocols.Source`,
    computed window by window from the resampled guide and its inside mask.

    Holding the raw values (float32) and the mask (bool) instead of the two float32 channels saves
    about 3 bytes per output voxel (125 MB on a 512x512x160 output grid); a window's channels equal
    :func:`_channels` of the whole grid cropped to it (the normaliser is voxel-wise).

    Args:
        values: ``(*S)`` float32 guide values on the output grid.
        inside: ``(*S)`` bool, where the guide reaches.
        normalizer, stats: the guide's normaliser and its fitted statistics.

    Shapes:
        ``shape`` is ``(2, *S)``; ``read(window)`` returns ``(2, *window.shape)`` float32.
    """

    may_have_invalid = False

    def __init__(self, values: np.ndarray, inside: np.ndarray, normalizer: Any, stats: dict[str, Any]) -> None:
        self.values, self.inside = values, inside
        self.normalizer, self.stats = normalizer, stats
        self.shape = (GUIDE_CHANNELS, *values.shape)
        self.dtype = np.dtype(np.float32)
        self.affine = np.eye(values.ndim + 1)
        self.meta: dict[str, Any] = {}

    def read(self, window: Any) -> np.ndarray:
        box = tuple(slice(int(a), int(b)) for a, b in window)
        return _channels(self.values[box], self.inside[box], self.normalizer, self.stats)

    def read_valid(self, window: Any) -> None:
        """None: the guide's own extent is its mask channel, not a validity."""
        return None

    def read_band_valid(self, window: Any) -> None:
        return None

    def whole(self) -> np.ndarray:
        """``(2, *S)`` float32: every channel of the whole grid (tests; inference reads windows)."""
        return _channels(self.values, self.inside, self.normalizer, self.stats)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class PreparedGuide:
    """The guide brought into the target's space.

    Attributes:
        on_target: ``(2, *S)`` float32 on the target's grid ``S`` (training).
        on_output: the guide's channels ``(2, *S*scale)`` on the output grid (inference), read by window.
        provenance: JSON-able record: the guide file, registration, coverage, what was restored without it.
    """

    on_target: np.ndarray
    on_output: GuideChannels
    provenance: dict[str, Any]


def thick_axis(scale: Sequence[int]) -> int | None:
    """The one scaled axis of a 3D ``scale`` (``(1, 1, 4)`` -> 2), None when there is not exactly one."""
    thick = [a for a, s in enumerate(scale) if int(s) > 1]
    return thick[0] if len(scale) == 3 and len(thick) == 1 else None


def check_request(guide: str | os.PathLike, target_domain: str, scale: Sequence[int] | None, method: str) -> Path:
    """Refuse a guided request that cannot run, before any file is read (one-line errors).

    Args:
        guide: the guide's path (a NIfTI file or a DICOM series folder).
        target_domain: the target adapter's domain (``"medical"`` or ``"geo"``).
        scale: the factors per axis when known (None with ``--target-spacing``: checked after reading).
        method: the method name that will run.

    Returns:
        The guide's path.

    Raises:
        InputError: no such guide, not a medical volume.
        ConfigError: a GeoTIFF target, or a scale that is not one thick axis of a 3D volume.
    """
    path = Path(guide)
    if target_domain != "medical":
        raise ConfigError("--guide is for NIfTI/DICOM volumes (guided MRI); GeoTIFF scenes are sharpened with sharpen")
    if not path.exists():
        raise file_error(InputError, path, "the guide does not exist")
    adapter = io.adapter_for_input(path)
    if adapter.domain != "medical":
        raise file_error(
            InputError, path, f"the guide must be a NIfTI file or a DICOM series folder, not {adapter.name}"
        )
    if scale is not None and method == "self" and thick_axis(scale) is None:
        raise ConfigError(
            f"--guide restores one thick axis of a 3D volume (e.g. --scale 1,1,4), got scale {tuple(scale)}"
        )
    return path


def _box(mask: np.ndarray) -> list[list[int]] | None:
    """``[[lo, hi), ...]`` per axis of the True voxels of ``mask`` (None when there is none)."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append([int(hit[0]), int(hit[-1]) + 1])
    return box


def _channels(values: np.ndarray, inside: np.ndarray, normalizer: Any, stats: dict[str, Any]) -> np.ndarray:
    """``(2, *S)`` float32: normalised guide values (0 outside) and the inside mask.

    Filled in place, :data:`SLAB` slices of the last axis at a time (the normaliser is voxel-wise and
    works in float64): on a 512x512x160 output grid, whole-volume temporaries would hold about 1 GB
    more at the run's peak."""
    out = np.empty((2, *values.shape), dtype=np.float32)
    for lo in range(0, values.shape[-1], SLAB):
        out[0, ..., lo : lo + SLAB] = normalizer.forward(values[None, ..., lo : lo + SLAB], stats)[0]
    out[0][~inside] = 0.0
    out[1] = inside
    return out


def prepare_guide(
    target: SpatialArray,
    guide: SpatialArray,
    scale: Sequence[int],
    *,
    normalize: dict[str, Any],
    registered: bool = False,
    allow_other_study: bool = False,
    seed: int = 0,
    guide_path: str | os.PathLike | None = None,
) -> PreparedGuide:
    """Check, register and resample ``guide`` for restoring ``target`` by ``scale``.

    Args:
        target: the thick volume ``(1, X, Y, Z)`` with its affine (voxel centre -> RAS mm) and meta.
        guide: the finer volume ``(1, *G)`` of the same patient (any orientation, spacing, field of view).
        scale: whole factors per axis; exactly one is > 1 (the thick axis).
        normalize: ``{"name", "params"}`` of the target's normaliser: the guide is normalised alike.
        registered: the two already share world space (``--guide-registered``): no registration.
        allow_other_study: go on when DICOM PatientID / StudyInstanceUID differ (recorded).
        seed: the registration's sampling seed.
        guide_path: for messages and the provenance.

    Raises:
        InputError / ConfigError: one line naming the guide and the numbers (not finer, other study,
            registration failed, too little of the target's anatomy covered).
    """
    from geo_med_sr.guidance import (
        check_coverage,
        check_finer,
        check_registration,
        check_same_study,
        foreground,
        identity_registration,
        register_rigid,
        resample_guide,
    )

    name = Path(guide_path) if guide_path is not None else Path("<guide>")
    axis = thick_axis(scale)
    if axis is None:
        raise ConfigError(f"--guide restores one thick axis of a 3D volume (e.g. --scale 1,1,4), got {tuple(scale)}")
    if guide.array.ndim != 4 or guide.array.shape[0] != 1 or target.array.shape[0] != 1:
        raise file_error(InputError, name, "the guide and the target must each be one 3D volume (one channel)")
    with io.naming(name):
        differ = check_same_study(target.meta, guide.meta, allow_other_study)
        check_finer(target.affine, axis, guide.affine)
        reg = identity_registration() if registered else register_rigid(target, guide, seed=seed)
        if not registered:
            check_registration(reg)
        out_affine = scale_affine(target.affine, scale)
        out_shape = scaled_shape(target.spatial_shape, scale)
        values_o, inside_o = resample_guide(guide, reg, out_affine, out_shape)
        values_t, inside_t = thick_average(values_o, inside_o, axis, int(scale[axis]))
        anatomy = foreground(target.array[0])
        if target.valid is not None:
            anatomy &= target.valid
        covered = float(inside_t[anatomy].mean()) if anatomy.any() else 0.0
        check_coverage(covered)
        normalizer = build_normalizer(normalize["name"], **normalize.get("params", {}))
        fit_on = inside_t & anatomy
        stats = normalizer.fit(values_t[None], fit_on if fit_on.any() else inside_t)
    missing = ~inside_o
    provenance = {
        "path": str(name),
        "registration": "given (--guide-registered: same world space)" if registered else reg.provenance(),
        "anatomy_covered": round(covered, 6),
        "output_without_guide_share": round(float(missing.mean()), 6),
        "output_without_guide_box": _box(missing),
        "other_study_tags": differ,
        "normalization": stats,
    }
    return PreparedGuide(
        _channels(values_t, inside_t, normalizer, stats),
        GuideChannels(values_o, inside_o, normalizer, stats),
        provenance,
    )


def thick_average(values: np.ndarray, inside: np.ndarray, axis: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The output-grid guide ``(*S*scale)`` on the target's grid ``S``: the mean of every ``factor``
    consecutive voxels along ``axis`` (the target's thick slices), inside where all of them are."""
    shape = list(values.shape)
    shape[axis : axis + 1] = [shape[axis] // factor, factor]
    mean = values.reshape(shape).mean(axis=axis + 1, dtype=np.float64).astype(np.float32)
    return mean, inside.reshape(shape).all(axis=axis + 1)
