"""Training pairs made on the fly: random HR patches from valid regions, degraded to LR.

Every training image is normalised once with its own statistics (the normaliser of the
training config, fitted on valid pixels), so a network learns in the same value space the
inference pipeline feeds it. Patches touching invalid pixels are rejected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geo_med_sr import io
from geo_med_sr.degrade import Degradation
from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import InputError, file_error
from geo_med_sr.inference.protocols import Window
from geo_med_sr.normalize import Normalizer
from geo_med_sr.spatial import SpatialArray


@dataclass
class TrainImage:
    """One normalised training image: ``(C, *S)`` float32 values, ``S`` valid mask, source."""

    path: Path
    values: np.ndarray
    valid: np.ndarray
    sha256: str


def load_training_images(
    paths: Sequence[str | os.PathLike], normalizer: Normalizer, spatial_dims: int
) -> list[TrainImage]:
    """Read and normalise every file (NIfTI/DICOM/GeoTIFF, or PNG/JPEG/BMP photos for 2D);
    channels become separate images.

    Args:
        paths: files or DICOM folders.
        normalizer: fitted per image on its valid pixels.
        spatial_dims: 2 (bands/slices are split into 2D images) or 3.
    """
    images = []
    for path in paths:
        image = io.read_for_training(path)
        if image.spatial_dims != spatial_dims:
            if spatial_dims == 2 and image.spatial_dims == 3:
                image = _as_2d(image)
            else:
                raise file_error(
                    InputError, path, f"a {image.spatial_dims}D image cannot train a {spatial_dims}D network"
                )
        valid = image.valid if image.valid is not None else np.ones(image.spatial_shape, bool)
        valid = valid & np.all(np.isfinite(image.array), axis=0)
        stats = normalizer.fit(image.array, valid)
        values = np.where(valid, normalizer.forward(image.array, stats), 0.0).astype(np.float32)
        digest = sha256_file(path) if Path(path).is_file() else ""
        for c in range(values.shape[0]):
            images.append(TrainImage(Path(path), values[c : c + 1], valid, digest))
    if not images:
        raise InputError("no training images given")
    return images


def _as_2d(image: SpatialArray) -> SpatialArray:
    """A 3D volume as a stack of 2D slices along its last axis (channels), for 2D training."""
    array = np.moveaxis(image.array, -1, 1).reshape(-1, *image.spatial_shape[:2])
    valid = None if image.valid is None else np.all(image.valid, axis=-1)
    return SpatialArray(array, image.affine[[0, 1, 3]][:, [0, 1, 3]], image.meta, valid)


class PatchSampler:
    """Random (LR, HR) patch pairs from a list of training images.

    Args:
        images: normalised training images.
        degradation: HR -> LR model (its ``scale`` is the SR factor).
        patch_size: LR patch size per axis (HR patches are ``patch_size * scale``).
        seed: random seed.
        max_tries: attempts to find an all-valid patch in an image before picking another image.
        decimate_p: probability that an HR patch is taken from a nearest-neighbour decimated copy
            of the image (every ``k``-th pixel, random phase, ``k`` from ``decimate_factors``):
            teaches the heavy aliasing of products resampled by nearest neighbour (quicklooks,
            thumbnails) that no native-resolution training image has.
        decimate_factors: the decimation factors ``k``.
        transpose: also transpose 2D patches at random (only when the HR patch is square and the
            scale is the same on both axes).

    Augmentation: random flips on every axis (they keep the grid of DESIGN §3), and transposes
    when asked.
    """

    def __init__(
        self,
        images: Sequence[TrainImage],
        degradation: Degradation,
        patch_size: int,
        seed: int = 0,
        max_tries: int = 50,
        decimate_p: float = 0.0,
        decimate_factors: Sequence[int] = (2, 3),
        transpose: bool = False,
    ) -> None:
        self.images = [
            im for im in images if all(n >= patch_size * s for n, s in zip(im.values.shape[1:], degradation.scale))
        ]
        if not self.images:
            raise InputError(
                f"no training image is large enough for {patch_size}-pixel LR patches at scale {degradation.scale}"
            )
        self.degradation = degradation
        self.hr_size = tuple(patch_size * s for s in degradation.scale)
        self.rng = np.random.default_rng(seed)
        self.max_tries = max_tries
        self.decimate_p = float(decimate_p)
        self.decimate_factors = tuple(int(k) for k in decimate_factors)
        self.transpose = (
            transpose and len(self.hr_size) == 2 and len(set(self.hr_size)) == 1 and len(set(degradation.scale)) == 1
        )
        weights = np.array([im.valid.sum() for im in self.images], dtype=np.float64)
        self.weights = weights / weights.sum()

    def _patch(self) -> np.ndarray:
        for _ in range(1000):
            image = self.images[self.rng.choice(len(self.images), p=self.weights)]
            step = (
                int(self.rng.choice(self.decimate_factors))
                if self.decimate_p > 0 and self.rng.random() < self.decimate_p
                else 1
            )
            span = tuple(h * step for h in self.hr_size)
            if any(n < w for n, w in zip(image.values.shape[1:], span)):
                continue
            for _ in range(self.max_tries):
                start = [int(self.rng.integers(0, n - w + 1)) for n, w in zip(image.values.shape[1:], span)]
                box = Window((a, a + w) for a, w in zip(start, span)).toslices()
                if image.valid[box].all():
                    phase = tuple(slice(int(self.rng.integers(0, step)), None, step) for _ in span)
                    patch = image.values[(slice(None),) + box][(slice(None),) + phase]
                    for axis in range(patch.ndim - 1):  # flips keep the grid (symmetric kernels)
                        if self.rng.random() < 0.5:
                            patch = np.flip(patch, axis=axis + 1)
                    if self.transpose and self.rng.random() < 0.5:
                        patch = patch.transpose(0, 2, 1)
                    return np.ascontiguousarray(patch)
        raise InputError(
            f"found no HR patch of {self.hr_size} pixels without invalid pixels in the training images; use smaller "
            "patches"
        )

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)``: ``(B, 1, *patch)`` and ``(B, 1, *patch*scale)`` float32 tensors."""
        hr = torch.from_numpy(np.stack([self._patch() for _ in range(size)]))
        with torch.no_grad():
            lr = self.degradation(hr)
        return lr, hr
