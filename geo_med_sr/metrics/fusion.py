"""Quality metrics of guided sharpening and pan-sharpening (numpy in, floats out).

Two protocols (Vivone et al., "A new benchmark based on recent advances in multispectral
pansharpening", IEEE GRSM 2021):

* **reduced resolution** (Wald protocol: every band degraded by the resolution ratio, sharpened back,
  compared with the original): :func:`band_scores` (per-band PSNR, SSIM, UIQI), :func:`ergas`,
  :func:`sam`, :func:`q2n` (Q4 for 4 bands), all in :func:`fusion_report`;
* **full resolution**, no reference: :func:`qnr` (D_lambda, D_s, QNR).

Conventions:

* Images are ``(C, H, W)`` arrays (any real dtype, computed in float64), bands first; ``valid`` is
  an ``(H, W)`` bool mask or None (all pixels). Pixel metrics (PSNR, ERGAS, SAM) use the valid
  pixels only; windowed ones (SSIM, UIQI, Q2n) use only the windows / blocks whose pixels are all
  valid: a window or block containing an invalid pixel is dropped, so invalid pixels may hold
  anything (nodata, NaN).
* ERGAS ``ratio`` is the integer resolution ratio ``l/h`` (coarse pixel size / fine pixel size: 2 for
  20 m -> 10 m, 4 for a typical pan); the literature writes the factor ``100 * h/l`` (h/l = 1/2 for
  20 m -> 10 m), torchmetrics and the Pansharpening Toolbox write ``100 / ratio``: the same number.
* UIQI (Wang & Bovik 2002) is torchmetrics' ``universal_image_quality_index`` with its defaults, an
  11 x 11 Gaussian window of sigma 1.5 (not the original 8 x 8 box), averaged over the windows that
  lie inside the image; it is also the ``Q`` of D_lambda and D_s.
* Bad data (mismatched shapes, too few bands, a constant reference band for PSNR, nothing valid,
  non-finite valid values) raises :class:`~geo_med_sr.errors.InputError`; a bad parameter (ratio,
  block size, exponents) raises :class:`~geo_med_sr.errors.ConfigError`.

torch and torchmetrics are imported only inside the functions that use them.
"""

from __future__ import annotations

import math

import numpy as np

from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.metrics.image import data_range, psnr, ssim

__all__ = ["band_scores", "ergas", "fusion_report", "q2n", "qnr", "sam", "uiqi_map"]

#: torchmetrics' UIQI window (pixels per side) and Gaussian sigma (pixels).
UQI_WINDOW = 11
UQI_SIGMA = 1.5


# ----------------------------------------------------------------------------- validation


def _image(name: str, array: object) -> np.ndarray:
    """``array`` as a float64 ``(C, H, W)`` array, or InputError."""
    image = np.asarray(array)
    if image.ndim != 3 or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise InputError(f"{name}: expected a real (C, H, W) array, got shape {image.shape} of {image.dtype}")
    if 0 in image.shape:
        raise InputError(f"{name}: empty array of shape {image.shape}")
    return image.astype(np.float64)


def _pair(
    reference: object, estimate: object, valid: object | None, min_bands: int = 1, what: str = "metric"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 ``(C, H, W)`` reference and estimate and an ``(H, W)`` bool mask.

    Invalid pixels are set to 0 in the returned copies (so NaN nodata cannot leak into a window).
    """
    ref, est = _image("reference", reference), _image("estimate", estimate)
    if ref.shape != est.shape:
        raise InputError(f"{what}: reference {ref.shape} and estimate {est.shape} differ in shape; pass the same grid")
    if ref.shape[0] < min_bands:
        raise InputError(f"{what} needs at least {min_bands} bands, got {ref.shape[0]}")
    mask = np.ones(ref.shape[1:], bool) if valid is None else np.asarray(valid)
    if mask.shape != ref.shape[1:] or mask.dtype != bool:
        raise InputError(f"{what}: valid must be an {ref.shape[1:]} bool mask, got {mask.shape} of {mask.dtype}")
    if not mask.any():
        raise InputError(f"{what}: no valid pixel to score")
    for name, image in (("reference", ref), ("estimate", est)):
        if not np.isfinite(image[:, mask]).all():
            raise InputError(f"{what}: the {name} has NaN or infinite values on valid pixels; mask them out")
        image[:, ~mask] = 0.0
    return ref, est, mask


def _windows_inside(valid: np.ndarray, size: int) -> np.ndarray:
    """``(H - size + 1, W - size + 1)``: ``valid[i : i+size, j : j+size].all()`` for every window start."""
    return np.lib.stride_tricks.sliding_window_view(valid, (size, size)).all(axis=(-2, -1))


def _number(what: str, value: object, integer: bool, minimum: float) -> float:
    """``value`` as a finite number ``>= minimum`` (an integer when ``integer``), or ConfigError."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < minimum or (integer and number != int(number)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{what} must be {kind} >= {minimum:g}, got {value!r}")
    return number


def _need_size(what: str, shape: tuple[int, ...], size: int) -> None:
    if min(shape[-2:]) < size:
        raise InputError(f"{what} needs images of at least {size} x {size} pixels, got {shape[-2]} x {shape[-1]}")


# ----------------------------------------------------------------------------- UIQI


def uiqi_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """torchmetrics' UIQI map of every band pair ``(x[c], y[c])``, in float64.

    ``Q = 4 s_xy m_x m_y / ((s_x^2 + s_y^2)(m_x^2 + m_y^2))`` with Gaussian-weighted local means ``m``,
    variances ``s^2`` and covariance ``s_xy`` (11 x 11 window, sigma 1.5; torchmetrics adds float64
    ``eps`` to the denominator).

    Args:
        x, y: ``(C, H, W)`` float64 arrays, ``H, W >= 11``.

    Returns:
        ``(C, H - 10, W - 10)``: entry ``[c, i, j]`` is the window over rows ``i..i+10``, columns ``j..j+10``.
    """
    import torch
    from torchmetrics.functional.image import universal_image_quality_index

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 3 or x.shape != y.shape:
        raise InputError(f"UIQI: expected two (C, H, W) arrays of one shape, got {x.shape} and {y.shape}")
    _need_size("UIQI (11-pixel windows)", x.shape, UQI_WINDOW)
    qmap = universal_image_quality_index(
        torch.from_numpy(np.ascontiguousarray(x))[None],
        torch.from_numpy(np.ascontiguousarray(y))[None],
        kernel_size=(UQI_WINDOW, UQI_WINDOW),
        sigma=(UQI_SIGMA, UQI_SIGMA),
        reduction="none",
    )
    return qmap[0].numpy()


def _uiqi(x: np.ndarray, y: np.ndarray) -> float:
    """Mean UIQI of two ``(H, W)`` bands over all windows (the ``Q`` of D_lambda and D_s)."""
    return float(uiqi_map(x[None], y[None]).mean())


# ----------------------------------------------------------------------------- reference metrics


def band_scores(reference: np.ndarray, estimate: np.ndarray, valid: np.ndarray | None = None) -> list[dict]:
    """Per-band PSNR (dB), SSIM and UIQI of ``estimate`` against ``reference``.

    The peak of band ``b`` (PSNR's peak, SSIM's ``L``) is the max - min of the reference band's valid
    pixels. PSNR: :func:`geo_med_sr.metrics.image.psnr` on the valid pixels (``inf`` for an identical band).
    SSIM: :func:`geo_med_sr.metrics.image.ssim` (MONAI, Gaussian 11 / 1.5, float32), over windows wholly valid.
    UIQI: :func:`uiqi_map` averaged over windows wholly valid.

    Args:
        reference, estimate: ``(C, H, W)``, ``H, W >= 11``.
        valid: ``(H, W)`` bool mask or None.

    Returns:
        one ``{"psnr", "ssim", "uiqi"}`` dict per band, in band order.

    Raises:
        InputError: shapes differ, a reference band is constant on the valid pixels, no 11 x 11
            window is wholly valid, or non-finite valid values.
    """
    ref, est, mask = _pair(reference, estimate, valid, what="band scores")
    _need_size("band scores (11-pixel windows)", ref.shape, UQI_WINDOW)
    inside = _windows_inside(mask, UQI_WINDOW)
    if not inside.any():
        raise InputError(f"band scores: no {UQI_WINDOW} x {UQI_WINDOW} window lies wholly in the valid pixels")
    qmap = uiqi_map(est, ref)
    scores = []
    for b in range(ref.shape[0]):
        values = ref[b][mask]
        if values.max() == values.min():
            raise InputError(f"band {b} of the reference is constant ({values[0]:g}): PSNR has no data range")
        peak = data_range(ref[b : b + 1], mask)
        scores.append(
            {
                "psnr": psnr(ref[b : b + 1], est[b : b + 1], mask, data_range=peak),
                "ssim": ssim(ref[b : b + 1], est[b : b + 1], mask, data_range=peak),
                "uiqi": float(qmap[b][inside].mean()),
            }
        )
    return scores


def ergas(reference: np.ndarray, estimate: np.ndarray, ratio: float, valid: np.ndarray | None = None) -> float:
    """ERGAS (Wald 2002): ``100 / ratio * sqrt(mean_b(RMSE_b^2 / mu_b^2))``, lower is better, 0 = identical.

    ``RMSE_b`` and the reference band mean ``mu_b`` are over the valid pixels. ``ratio`` is the integer
    resolution ratio (coarse / fine pixel size: 2 for 20 m -> 10 m), i.e. the literature's ``100 * h/l``
    with ``h/l = 1/ratio``; it is passed unchanged to torchmetrics'
    ``error_relative_global_dimensionless_synthesis``, whose ``ratio`` ("high to low resolution",
    default 4) enters as ``100 / ratio`` too.

    Raises:
        InputError: shapes differ, a reference band has mean 0 on the valid pixels.
        ConfigError: ``ratio`` is not a positive finite number.
    """
    import torch
    from torchmetrics.functional.image import error_relative_global_dimensionless_synthesis

    ratio = _number("ERGAS ratio (coarse / fine pixel size)", ratio, integer=False, minimum=0)
    if ratio == 0:
        raise ConfigError("ERGAS ratio (coarse / fine pixel size) must be positive, got 0")
    ref, est, mask = _pair(reference, estimate, valid, what="ERGAS")
    ref, est = ref[:, mask], est[:, mask]  # (C, N)
    zero = np.flatnonzero(ref.mean(axis=1) == 0)
    if zero.size:
        raise InputError(f"ERGAS divides by each reference band's mean, and band {int(zero[0])} has mean 0")
    value = error_relative_global_dimensionless_synthesis(
        torch.from_numpy(est)[None, :, :, None], torch.from_numpy(ref)[None, :, :, None], ratio=ratio
    )
    return float(value)


def sam(reference: np.ndarray, estimate: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean spectral angle (degrees), ``arccos(<r, e> / (|r| |e|))`` per pixel, over the valid pixels.

    Pixels whose reference or estimate spectrum has norm 0 have no angle and are left out. Computed
    with torchmetrics' ``spectral_angle_mapper`` (float64, cosine clamped to [-1, 1]); for identical
    spectra the float64 ``arccos`` leaves up to ~1e-6 degrees.

    Raises:
        InputError: shapes differ, fewer than 2 bands, no valid pixel with non-zero spectra.
    """
    import torch
    from torchmetrics.functional.image import spectral_angle_mapper

    ref, est, mask = _pair(reference, estimate, valid, min_bands=2, what="SAM")
    ref, est = ref[:, mask], est[:, mask]
    keep = (np.linalg.norm(ref, axis=0) > 0) & (np.linalg.norm(est, axis=0) > 0)
    if not keep.any():
        raise InputError("SAM: every valid pixel has an all-zero spectrum; there is no angle to measure")
    ref, est = np.ascontiguousarray(ref[:, keep]), np.ascontiguousarray(est[:, keep])
    angle = spectral_angle_mapper(torch.from_numpy(est)[None, :, :, None], torch.from_numpy(ref)[None, :, :, None])
    return math.degrees(float(angle))


# ----------------------------------------------------------------------------- Q2n


def _conj(x: np.ndarray) -> np.ndarray:
    """Hypercomplex conjugate of ``(N, ...)`` components: components 1..N-1 negated."""
    return np.concatenate([x[:1], -x[1:]])


def _onion_mult(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of ``2^n``-ons stored as ``(N, ...)`` components (``N = 2^n``).

    The Pansharpening Toolbox's ``onion_mult`` / ``onion_mult2D`` (which define Q2n in practice):
    with ``x = (a, b)``, ``y = (c, d)`` halves and ``b' = b*``, ``d' = d*``,
    ``x y = (a c - d' b'*, a* d' + c b')``; for ``N = 2`` complex multiplication, for ``N = 4`` the
    Hamilton product with the last component negated (same modulus).
    """
    n = x.shape[0]
    if n == 1:
        return x * y
    half = n // 2
    a, b = x[:half], _conj(x[half:])
    c, d = y[:half], _conj(y[half:])
    return np.concatenate([_onion_mult(a, c) - _onion_mult(d, _conj(b)), _onion_mult(_conj(a), d) + _onion_mult(c, b)])


def _blocks(image: np.ndarray, block: int, shift: int, counts: tuple[int, int]) -> np.ndarray:
    """``(nx * ny, C, block * block)``: blocks starting at ``(i*shift, j*shift)``, row-major."""
    view = np.lib.stride_tricks.sliding_window_view(image, (block, block), axis=(1, 2))
    view = view[:, : counts[0] * shift : shift, : counts[1] * shift : shift]  # (C, nx, ny, b, b)
    c, nx, ny = view.shape[:3]
    return view.reshape(c, nx * ny, block * block).transpose(1, 0, 2)


def q2n(
    reference: np.ndarray, estimate: np.ndarray, block: int = 32, shift: int = 32, valid: np.ndarray | None = None
) -> float:
    """Q2n (Garzelli & Nencini 2009; Q4 of Alparone et al. 2004 for 4 bands), 1 = identical.

    Each pixel's spectrum is a hypercomplex number with ``2^n >= C`` components (z: reference,
    v: estimate); on each ``block x block`` block,

        Q2n_block = |s_zv| / (s_z s_v) * 2 s_z s_v / (s_z^2 + s_v^2) * 2 |m_z| |m_v| / (|m_z|^2 + |m_v|^2)

    with ``m`` the block means, ``s_z^2 = E|z - m_z|^2`` and the hypercomplex covariance
    ``s_zv = E[(z - m_z)(v - m_v)*]`` (unbiased: times ``N / (N - 1)``, ``N = block^2``), the product
    being :func:`_onion_mult`; Q2n is the mean of the blocks' values. As in the Pansharpening
    Toolbox's ``q2n.m`` / ``onions_quality.m``:

    * blocks start every ``shift`` pixels, ``ceil(H / shift) x ceil(W / shift)`` of them; the image
      (and ``valid``) is extended at the bottom/right by mirror symmetry (edge pixel repeated) so
      that the last blocks fit;
    * each block's bands are normalised with the reference block band's mean and sample std:
      ``x -> (x - mean) / std + 1`` for both images (std ``eps`` for a constant reference band);
    * ``C`` is padded to a power of 2 with bands equal to 1 after normalisation (the toolbox's zero
      bands); if both blocks are constant (``s_z = s_v = 0``) the block's value is the mean term.

    Differences from the toolbox: no ``uint16`` rounding of the inputs; the normalisation divides
    by the std also when the reference block's mean is exactly 0 (the toolbox does not, which makes
    Q2n of identical images differ from 1 there); a constant band is detected exactly (max == min).
    With ``valid``, blocks containing an invalid pixel (after the mirror extension) are dropped.

    Raises:
        InputError: shapes differ, fewer than 2 bands, no block wholly valid.
        ConfigError: ``block < 2`` or ``shift < 1``.
    """
    block = int(_number("Q2n block size (pixels)", block, integer=True, minimum=2))
    shift = int(_number("Q2n block shift (pixels)", shift, integer=True, minimum=1))
    ref, est, mask = _pair(reference, estimate, valid, min_bands=2, what="Q2n")
    counts = (-(-ref.shape[1] // shift), -(-ref.shape[2] // shift))
    extend = [(0, max((k - 1) * shift + block - n, 0)) for k, n in zip(counts, ref.shape[1:])]
    ref, est = (np.pad(x, [(0, 0), *extend], mode="symmetric") for x in (ref, est))
    mask = np.pad(mask, extend, mode="symmetric")
    keep = _windows_inside(mask, block)[::shift, ::shift][: counts[0], : counts[1]].ravel()
    if not keep.any():
        raise InputError(f"Q2n: no {block} x {block} block lies wholly in the valid pixels")
    z, v = _blocks(ref, block, shift, counts)[keep], _blocks(est, block, shift, counts)[keep]  # (nb, C, N)

    constant = z.max(axis=-1, keepdims=True) == z.min(axis=-1, keepdims=True)
    mean = np.where(constant, z[..., :1], z.mean(axis=-1, keepdims=True))
    std = np.where(constant, np.finfo(np.float64).eps, z.std(axis=-1, ddof=1, keepdims=True))
    z, v = (z - mean) / std + 1.0, (v - mean) / std + 1.0
    n_comp = 1 << (z.shape[1] - 1).bit_length()
    ones = np.ones((z.shape[0], n_comp - z.shape[1], z.shape[2]))
    z, v = (np.concatenate([x, ones], axis=1).transpose(1, 0, 2) for x in (z, v))  # (n_comp, nb, N)

    n = z.shape[-1]
    unbiased = n / (n - 1)
    mz, mv = z.mean(axis=-1, keepdims=True), v.mean(axis=-1, keepdims=True)
    zc, vc = z - mz, v - mv
    var_sum = unbiased * ((zc**2).sum(axis=0).mean(axis=-1) + (vc**2).sum(axis=0).mean(axis=-1))  # s_z^2 + s_v^2
    cov = unbiased * _onion_mult(zc, _conj(vc)).mean(axis=-1)  # (n_comp, nb)
    norm_mz, norm_mv = np.linalg.norm(mz[..., 0], axis=0), np.linalg.norm(mv[..., 0], axis=0)
    mean_term = 2 * norm_mz * norm_mv / (norm_mz**2 + norm_mv**2)
    flat = var_sum == 0
    values = np.where(flat, 1.0, 2 * np.linalg.norm(cov, axis=0) / np.where(flat, 1.0, var_sum)) * mean_term
    return float(values.mean())


# ----------------------------------------------------------------------------- no reference


def qnr(
    fused: np.ndarray,
    ms: np.ndarray,
    pan: np.ndarray,
    ratio: int,
    alpha: float = 1,
    beta: float = 1,
    p: int = 1,
    q: int = 1,
    pan_lr: np.ndarray | None = None,
) -> dict:
    """Full-resolution quality without reference (Alparone et al. 2008): D_lambda, D_s and QNR.

    ``Q`` is the mean UIQI (:func:`uiqi_map`, torchmetrics' definition) of two bands on one grid:

    * ``D_lambda = (1 / (C (C-1)) sum_{k != r} |Q(F_k, F_r) - Q(M_k, M_r)|^p)^(1/p)``: the band-to-band
      similarities of the fused image F should be those of the multispectral image M (0 for C = 1);
    * ``D_s = (1 / (C K) sum_c sum_k |Q(F_c, P_k) - Q(M_c, P_k^L)|^q)^(1/q)``: each band's similarity
      to the guide P should be the same at both resolutions; ``P^L`` is the guide degraded to M's
      grid, by default the mean over each ``ratio x ratio`` block (area average of a grid that nests
      with offset 0); with K guide bands the mean runs over all (band, guide) pairs;
    * ``QNR = max(0, 1 - D_lambda)^alpha * max(0, 1 - D_s)^beta`` in [0, 1], 1 = no distortion (the
      ``max`` only matters when anti-correlated bands push a distortion past 1).

    These are torchmetrics' ``spectral_distortion_index`` / ``spatial_distortion_index`` /
    ``quality_with_no_reference`` formulas (its D_s pairs band c with guide channel c, here every
    guide band is paired with every band), evaluated here on torchmetrics' float64 UIQI because
    torchmetrics collects the per-band Q values in float32 tensors and degrades the guide through
    torchvision (not a dependency).

    Args:
        fused: ``(C, H, W)`` on the guide's grid.
        ms: ``(C, h, w)`` with ``H = ratio * h``, ``W = ratio * w``, ``h, w >= 11``.
        pan: ``(K, H, W)`` (or ``(H, W)``) guide band(s).
        ratio: integer resolution ratio (4 for a typical pan, 2 for 20 m -> 10 m).
        alpha, beta: non-negative exponents; p, q: positive integer norm orders.
        pan_lr: optional ``(K, h, w)`` degraded guide, e.g. for a grid offset by a fraction of a pixel.

    Returns:
        ``{"d_lambda", "d_s", "qnr"}`` floats.
    """
    ratio = int(_number("QNR ratio (coarse / fine pixel size)", ratio, integer=True, minimum=1))
    p = int(_number("QNR norm order p", p, integer=True, minimum=1))
    q = int(_number("QNR norm order q", q, integer=True, minimum=1))
    alpha = _number("QNR exponent alpha", alpha, integer=False, minimum=0)
    beta = _number("QNR exponent beta", beta, integer=False, minimum=0)
    fus, low = _image("fused", fused), _image("ms", ms)
    guide = np.asarray(pan)
    guide = _image("pan", guide[None] if guide.ndim == 2 else guide)
    c, h, w = low.shape
    if fus.shape != (c, h * ratio, w * ratio):
        raise InputError(f"QNR: fused {fus.shape} must be ms {low.shape} with each side times the ratio {ratio}")
    if guide.shape[1:] != fus.shape[1:]:
        raise InputError(f"QNR: pan {guide.shape} and fused {fus.shape} must share the grid (H, W)")
    _need_size("QNR on the ms grid (11-pixel UIQI windows)", low.shape, UQI_WINDOW)
    if pan_lr is None:
        guide_lr = guide.reshape(guide.shape[0], h, ratio, w, ratio).mean(axis=(2, 4))
    else:
        guide_lr = _image("pan_lr", pan_lr)
        if guide_lr.shape != (guide.shape[0], h, w):
            raise InputError(f"QNR: pan_lr {guide_lr.shape} must be ({guide.shape[0]}, {h}, {w})")
    for name, image in (("fused", fus), ("ms", low), ("pan", guide), ("pan_lr", guide_lr)):
        if not np.isfinite(image).all():
            raise InputError(f"QNR: {name} has NaN or infinite values; QNR has no valid mask, crop to valid data")

    pairs = [(k, r) for k in range(c) for r in range(k + 1, c)]
    spectral = [abs(_uiqi(fus[k], fus[r]) - _uiqi(low[k], low[r])) ** p for k, r in pairs]
    d_lambda = float(np.mean(spectral)) ** (1 / p) if pairs else 0.0
    spatial = [
        abs(_uiqi(fus[b], guide[g]) - _uiqi(low[b], guide_lr[g])) ** q for b in range(c) for g in range(len(guide))
    ]
    d_s = float(np.mean(spatial)) ** (1 / q)
    score = max(0.0, 1 - d_lambda) ** alpha * max(0.0, 1 - d_s) ** beta
    return {"d_lambda": d_lambda, "d_s": d_s, "qnr": float(score)}


def fusion_report(reference: np.ndarray, estimate: np.ndarray, ratio: float, valid: np.ndarray | None = None) -> dict:
    """All reduced-resolution scores of ``estimate`` against ``reference`` (see the module docstring).

    Returns:
        ``{"bands": band_scores, "ergas", "sam", "q2n", "psnr_mean", "ssim_mean"}``; ``sam`` and ``q2n``
        are None for a single band (they need a spectrum); the means are over bands (``psnr_mean`` is
        ``inf`` when a band is identical).
    """
    bands = band_scores(reference, estimate, valid)
    several = np.asarray(reference).ndim == 3 and np.asarray(reference).shape[0] >= 2
    return {
        "bands": bands,
        "ergas": ergas(reference, estimate, ratio, valid),
        "sam": sam(reference, estimate, valid) if several else None,
        "q2n": q2n(reference, estimate, valid=valid) if several else None,
        "psnr_mean": float(np.mean([b["psnr"] for b in bands])),
        "ssim_mean": float(np.mean([b["ssim"] for b in bands])),
    }
