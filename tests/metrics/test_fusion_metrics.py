"""Pan-sharpening metrics (geo_med_sr.metrics.fusion) against numpy oracles written from the formulas.

Every oracle here is a direct, loop-based transcription of the published formula (Wald's ERGAS,
Yuhas' SAM, Wang & Bovik's UIQI with torchmetrics' Gaussian window, SSIM, Alparone's Q4 with the
Hamilton quaternion product / Q2 with numpy complex numbers, the Pansharpening Toolbox's block
normalisation and mirror extension, Alparone's D_lambda / D_s / QNR); nothing calls torchmetrics,
except one test that checks our D_lambda / D_s follow torchmetrics' own definitions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import smooth_volume
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.metrics import fusion as fm

windows = np.lib.stride_tricks.sliding_window_view
EPS = np.finfo(np.float64).eps


def textured(bands: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Positive, textured ``(bands, h, w)`` float64 image: smooth structure plus noise, values ~[100, 1200]."""
    rng = np.random.default_rng(seed)
    smooth = smooth_volume((bands, h, w), seed=seed, dtype=np.float64)
    return smooth + rng.uniform(100, 200, (bands, h, w))


# ----------------------------------------------------------------------------- oracles


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    d = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (d / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def local_moments(x: np.ndarray, y: np.ndarray):
    """Gaussian-weighted means, variances and covariance of every 11 x 11 window (valid positions)."""
    k = gaussian_window()
    wx, wy = windows(x, k.shape), windows(y, k.shape)
    mx, my = (wx * k).sum((-2, -1)), (wy * k).sum((-2, -1))
    vx = (wx * wx * k).sum((-2, -1)) - mx**2
    vy = (wy * wy * k).sum((-2, -1)) - my**2
    cxy = (wx * wy * k).sum((-2, -1)) - mx * my
    return mx, my, vx, vy, cxy


def uiqi_oracle(x, y, inside=None) -> float:
    mx, my, vx, vy, cxy = local_moments(x, y)
    q = 4 * cxy * mx * my / ((vx + vy) * (mx**2 + my**2))
    return float(q.mean() if inside is None else q[inside].mean())


def ssim_oracle(x, y, peak, inside) -> float:
    mx, my, vx, vy, cxy = local_moments(x, y)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s[inside].mean())


def inside_windows(valid, size=11):
    return windows(valid, (size, size)).all((-2, -1))


def ergas_oracle(ref, est, ratio, valid=None) -> float:
    valid = np.ones(ref.shape[1:], bool) if valid is None else valid
    total = 0.0
    for b in range(ref.shape[0]):
        r, e = ref[b][valid], est[b][valid]
        total += np.mean((r - e) ** 2) / np.mean(r) ** 2
    return 100 / ratio * math.sqrt(total / ref.shape[0])


def sam_oracle(ref, est, valid=None) -> float:
    valid = np.ones(ref.shape[1:], bool) if valid is None else valid
    angles = []
    for i, j in zip(*np.nonzero(valid)):
        r, e = ref[:, i, j], est[:, i, j]
        if np.linalg.norm(r) == 0 or np.linalg.norm(e) == 0:
            continue
        cosine = np.dot(r, e) / (np.linalg.norm(r) * np.linalg.norm(e))
        angles.append(math.degrees(math.acos(min(1.0, max(-1.0, cosine)))))
    return float(np.mean(angles))


def hamilton(x, y):
    """Quaternion product x y, components first: x = x0 + x1 i + x2 j + x3 k."""
    a0, a1, a2, a3 = x
    b0, b1, b2, b3 = y
    return np.array(
        [
            a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
            a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
            a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1,
            a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0,
        ]
    )


def q_block_oracle(ref_block, est_block) -> float:
    """Q4 (2-4 bands) of one block: toolbox normalisation, then the paper's three-factor formula."""
    c = ref_block.shape[0]
    r, e = ref_block.reshape(c, -1), est_block.reshape(c, -1)
    n = r.shape[1]
    z, v = np.empty_like(r), np.empty_like(e)
    for b in range(c):
        if r[b].max() == r[b].min():
            mu, sd = r[b, 0], EPS
        else:
            mu, sd = r[b].mean(), r[b].std(ddof=1)
        z[b], v[b] = (r[b] - mu) / sd + 1, (e[b] - mu) / sd + 1
    unbiased = n / (n - 1)
    if c == 2:  # complex numbers
        zc, vc = z[0] + 1j * z[1], v[0] + 1j * v[1]
        mz, mv = zc.mean(), vc.mean()
        cov = unbiased * (np.mean(zc * np.conj(vc)) - mz * np.conj(mv))
        var_z = unbiased * (np.mean(np.abs(zc) ** 2) - abs(mz) ** 2)
        var_v = unbiased * (np.mean(np.abs(vc) ** 2) - abs(mv) ** 2)
        cov_norm, mz_norm, mv_norm = abs(cov), abs(mz), abs(mv)
    else:  # quaternions; the 4th band of 3 is the toolbox's zero band, 1 after normalisation
        z = np.concatenate([z, np.ones((4 - c, n))])
        v = np.concatenate([v, np.ones((4 - c, n))])
        conj = np.array([1.0, -1.0, -1.0, -1.0])[:, None]
        mz, mv = z.mean(1), v.mean(1)
        cov = unbiased * (hamilton(z, v * conj).mean(1) - hamilton(mz, mv * conj[:, 0]))
        var_z = unbiased * ((z**2).sum(0).mean() - (mz**2).sum())
        var_v = unbiased * ((v**2).sum(0).mean() - (mv**2).sum())
        cov_norm, mz_norm, mv_norm = np.linalg.norm(cov), np.linalg.norm(mz), np.linalg.norm(mv)
    sz, sv = math.sqrt(var_z), math.sqrt(var_v)
    return cov_norm / (sz * sv) * (2 * sz * sv / (var_z + var_v)) * (2 * mz_norm * mv_norm / (mz_norm**2 + mv_norm**2))


def mirror_extend(x, ex, ey):
    """q2n.m's extension: columns then rows mirrored, edge pixel repeated (``N:-1:N-est+1``)."""
    x = np.concatenate([x, x[:, :, ::-1][:, :, :ey]], axis=2)
    return np.concatenate([x, x[:, ::-1][:, :ex]], axis=1)


def q2n_oracle(ref, est, block, shift, valid=None) -> float:
    _, h, w = ref.shape
    sx, sy = math.ceil(h / shift), math.ceil(w / shift)
    ex, ey = max((sx - 1) * shift + block - h, 0), max((sy - 1) * shift + block - w, 0)
    ref, est = mirror_extend(ref, ex, ey), mirror_extend(est, ex, ey)
    mask = np.ones(ref.shape[1:], bool) if valid is None else mirror_extend(valid[None], ex, ey)[0]
    values = []
    for j in range(sx):
        for i in range(sy):
            rows, cols = slice(j * shift, j * shift + block), slice(i * shift, i * shift + block)
            if mask[rows, cols].all():
                values.append(q_block_oracle(ref[:, rows, cols], est[:, rows, cols]))
    return float(np.mean(values))


def block_mean(x, r):
    c, h, w = x.shape
    out = np.zeros((c, h // r, w // r))
    for i in range(r):
        for j in range(r):
            out += x[:, i::r, j::r]
    return out / r**2


def qnr_oracle(fused, ms, pan, ratio, alpha=1, beta=1, p=1, q=1):
    """Alparone 2008 D_lambda, D_s, QNR with the UIQI oracle; P_L = ratio x ratio block mean."""
    pan_lr = block_mean(pan, ratio)
    c = fused.shape[0]
    spectral = [
        abs(uiqi_oracle(fused[k], fused[r]) - uiqi_oracle(ms[k], ms[r])) ** p
        for k in range(c)
        for r in range(c)
        if k != r
    ]
    d_lambda = np.mean(spectral) ** (1 / p)
    spatial = [
        abs(uiqi_oracle(fused[b], pan[g]) - uiqi_oracle(ms[b], pan_lr[g])) ** q
        for b in range(c)
        for g in range(pan.shape[0])
    ]
    d_s = np.mean(spatial) ** (1 / q)
    return d_lambda, d_s, (1 - d_lambda) ** alpha * (1 - d_s) ** beta


def scaled_uiqi(a, b):
    """UIQI of ``a s`` against ``b s`` for any textured ``s``: ``(2ab / (a^2 + b^2))^2`` in every window."""
    return (2 * a * b / (a * a + b * b)) ** 2


# ----------------------------------------------------------------------------- band scores


@pytest.mark.parametrize("masked", [False, True])
def test_band_scores_match_numpy_oracles(masked):
    rng = np.random.default_rng(1)
    ref = textured(3, 34, 30, seed=1)
    est = ref + rng.normal(0, 40, ref.shape) + np.array([5.0, -10.0, 20.0])[:, None, None]
    valid = np.ones(ref.shape[1:], bool)
    if masked:
        valid[3:9, 20:26] = False
        valid[:, :2] = False
        ref[:, ~valid], est[:, ~valid] = np.nan, -1e30  # nodata: must not reach any score
    inside = inside_windows(valid)
    scores = fm.band_scores(ref, est, valid if masked else None)
    assert len(scores) == 3
    for b, got in enumerate(scores):
        r, e = ref[b][valid], est[b][valid]
        peak = r.max() - r.min()
        assert got["psnr"] == pytest.approx(10 * math.log10(peak**2 / np.mean((r - e) ** 2)), rel=1e-12)
        rb, eb = np.where(valid, ref[b], 0.0), np.where(valid, est[b], 0.0)
        assert got["ssim"] == pytest.approx(ssim_oracle(rb, eb, peak, inside), abs=2e-5)  # MONAI runs in float32
        assert got["uiqi"] == pytest.approx(uiqi_oracle(rb, eb, inside), rel=1e-9)
    if masked:  # the mask really removed windows: the all-pixel oracle differs
        assert scores[0]["uiqi"] != pytest.approx(uiqi_oracle(np.nan_to_num(ref[0]), est[0]), rel=1e-6)


def test_band_scores_of_identical_images():
    ref = textured(2, 24, 24, seed=2)
    for got in fm.band_scores(ref, ref.copy()):
        assert got["psnr"] == math.inf
        assert got["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert got["uiqi"] == pytest.approx(1.0, abs=1e-12)


def test_band_scores_peak_is_per_band_and_valid_only():
    ref = textured(2, 20, 20, seed=3)
    ref[1] = 10 * ref[0]  # band 1 has ten times the range of band 0
    est = ref + 1.0  # MSE 1 in every band
    valid = np.ones((20, 20), bool)
    valid[0, 0] = False
    ref[:, 0, 0] = 1e6  # an invalid outlier must not set the peak
    scores = fm.band_scores(ref, est, valid)
    for b in range(2):
        peak = np.ptp(ref[b][valid])
        assert scores[b]["psnr"] == pytest.approx(20 * math.log10(peak), rel=1e-12)
    assert scores[1]["psnr"] - scores[0]["psnr"] == pytest.approx(20.0, abs=0.01)


# ----------------------------------------------------------------------------- ERGAS


@settings(max_examples=25, deadline=None)
@given(
    bands=st.integers(1, 5),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    ratio=st.sampled_from([2, 3, 4, 6, 1.5]),
    seed=st.integers(0, 2**16),
)
def test_ergas_matches_oracle(bands, h, w, ratio, seed):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(1, 100, (bands, h, w))
    est = ref + rng.normal(0, 5, ref.shape)
    valid = rng.random((h, w)) < 0.7
    valid.flat[0] = True
    assert fm.ergas(ref, est, ratio) == pytest.approx(ergas_oracle(ref, est, ratio), rel=1e-12)
    assert fm.ergas(ref, est, ratio, valid) == pytest.approx(ergas_oracle(ref, est, ratio, valid), rel=1e-12)


def test_ergas_of_a_bandwise_offset_is_the_closed_form():
    ref = textured(4, 16, 12, seed=4)
    offsets = np.array([3.0, -7.0, 0.0, 12.5])
    est = ref + offsets[:, None, None]  # RMSE_b = |offset_b|
    means = ref.mean(axis=(1, 2))
    expected = 100 / 2 * math.sqrt(np.mean((offsets / means) ** 2))  # 20 m -> 10 m: ratio 2, factor 100 * 1/2
    assert fm.ergas(ref, est, 2) == pytest.approx(expected, rel=1e-12)
    assert fm.ergas(ref, est, 6) == pytest.approx(expected * 2 / 6, rel=1e-12)
    assert fm.ergas(ref, ref.copy(), 2) == 0.0


def test_ergas_mask_uses_only_valid_pixels():
    ref = textured(3, 10, 10, seed=5)
    est = ref.copy()
    valid = np.ones((10, 10), bool)
    valid[:, 7:] = False
    est[:, ~valid] += 1000.0  # errors only on invalid pixels
    ref[:, ~valid] = np.nan
    assert fm.ergas(ref, est, 4, valid) == 0.0
    est[0, 0, 0] += 3.0
    assert fm.ergas(ref, est, 4, valid) == pytest.approx(ergas_oracle(ref, est, 4, valid), rel=1e-12)


# ----------------------------------------------------------------------------- SAM


@pytest.mark.parametrize("degrees", [0.5, 10.0, 45.0, 90.0, 150.0])
def test_sam_of_a_rotated_two_band_spectrum_is_the_angle(degrees):
    rng = np.random.default_rng(6)
    phi = rng.uniform(0, 2 * np.pi, (9, 7))
    norm = rng.uniform(0.5, 50, (9, 7))
    ref = np.stack([norm * np.cos(phi), norm * np.sin(phi)])
    theta = math.radians(degrees)
    gain = rng.uniform(0.1, 10, (9, 7))  # the angle ignores each pixel's brightness
    est = gain * np.stack([norm * np.cos(phi + theta), norm * np.sin(phi + theta)])
    assert fm.sam(ref, est) == pytest.approx(degrees, rel=1e-9)


def test_sam_of_identical_images_is_zero():
    ref = textured(5, 12, 12, seed=7)
    assert 0.0 <= fm.sam(ref, ref.copy()) < 1e-5


@settings(max_examples=25, deadline=None)
@given(bands=st.integers(2, 6), h=st.integers(1, 8), w=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_sam_matches_oracle_with_masks_and_zero_spectra(bands, h, w, seed):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 5, (bands, h, w))
    est = ref + rng.normal(0, 1, ref.shape)
    ref[:, rng.random((h, w)) < 0.2] = 0.0  # zero-norm spectra: no angle, left out
    est[:, rng.random((h, w)) < 0.2] = 0.0
    valid = rng.random((h, w)) < 0.8
    valid.flat[0] = True
    usable = valid & (np.abs(ref).sum(0) > 0) & (np.abs(est).sum(0) > 0)
    if not usable.any():
        with pytest.raises(InputError, match="all-zero spectrum"):
            fm.sam(ref, est, valid)
        return
    assert fm.sam(ref, est, valid) == pytest.approx(sam_oracle(ref, est, valid), rel=1e-9, abs=1e-9)


# ----------------------------------------------------------------------------- Q2n


@pytest.mark.parametrize(
    ("bands", "shape", "block", "shift"),
    [(4, (32, 32), 16, 16), (4, (40, 37), 16, 16), (2, (30, 26), 8, 8), (3, (33, 20), 16, 8), (4, (20, 24), 12, 5)],
)
def test_q2n_matches_hypercomplex_oracle(bands, shape, block, shift):
    rng = np.random.default_rng(8)
    ref = textured(bands, *shape, seed=8)
    est = 0.9 * ref + rng.normal(0, 60, ref.shape) + np.arange(bands)[:, None, None] * 15
    expected = q2n_oracle(ref, est, block, shift)
    assert fm.q2n(ref, est, block, shift) == pytest.approx(expected, rel=1e-10)
    assert 0 < expected < 1


def test_q2n_mask_drops_blocks_with_an_invalid_pixel():
    rng = np.random.default_rng(9)
    ref = textured(4, 40, 40, seed=9)
    est = ref + rng.normal(0, 80, ref.shape)
    valid = np.ones((40, 40), bool)
    valid[5, 30] = valid[38, 2] = False  # one block in the first block row, one in the mirrored last row
    est[:, ~valid] = np.nan
    expected = q2n_oracle(ref, np.nan_to_num(est), 16, 16, valid)
    got = fm.q2n(ref, est, 16, 16, valid)
    assert got == pytest.approx(expected, rel=1e-10)
    assert got != pytest.approx(q2n_oracle(ref, np.nan_to_num(est), 16, 16), rel=1e-6)


@pytest.mark.parametrize("bands", [2, 3, 4, 5, 8])
def test_q2n_of_identical_images_is_one(bands):
    ref = textured(bands, 24, 24, seed=bands)
    ref[0, :12, :12] = 7.0  # band 0 constant in one block: normalised with std eps, still exactly 1
    assert fm.q2n(ref, ref.copy(), 12, 12) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(bands=st.sampled_from([2, 4, 6, 8]), noise=st.floats(1, 500), seed=st.integers(0, 2**16))
def test_q2n_is_bounded_and_invariant_to_a_common_bandwise_affine_map(bands, noise, seed):
    rng = np.random.default_rng(seed)
    ref = textured(bands, 20, 20, seed=seed % 97)
    est = ref + rng.normal(0, noise, ref.shape)
    value = fm.q2n(ref, est, 10, 10)
    assert -1e-12 <= value <= 1 + 1e-12  # division algebras up to octonions: |s_zv| <= s_z s_v
    gain, offset = rng.uniform(0.01, 100, bands)[:, None, None], rng.uniform(-1e3, 1e3, bands)[:, None, None]
    # the block normalisation uses the reference's mean and std, so this map cancels exactly
    assert fm.q2n(gain * ref + offset, gain * est + offset, 10, 10) == pytest.approx(value, rel=1e-7, abs=1e-9)


# ----------------------------------------------------------------------------- QNR


def test_qnr_is_one_for_bands_proportional_to_the_guide():
    # F_c = g_c P and M_c = g_c P_L: every Q of D_lambda and D_s is (2ab/(a^2+b^2))^2 on both grids.
    pan = textured(1, 48, 44, seed=10)
    gains = np.array([0.5, 1.0, 2.5])[:, None, None]
    fused, ms = gains * pan, gains * block_mean(pan, 4)
    got = fm.qnr(fused, ms, pan, 4)
    assert got["d_lambda"] == pytest.approx(0.0, abs=1e-12)
    assert got["d_s"] == pytest.approx(0.0, abs=1e-12)
    assert got["qnr"] == pytest.approx(1.0, abs=1e-12)


def test_qnr_of_scaled_textures_is_the_closed_form():
    # F_c = a_c S, M_c = b_c S_L, P = S: D_lambda and D_s have closed forms whatever the texture S.
    pan = textured(1, 44, 44, seed=11)
    a, b = np.array([0.4, 1.0, 3.0, 1.7]), np.array([0.8, 1.1, 2.0, 0.6])
    fused, ms = a[:, None, None] * pan, b[:, None, None] * block_mean(pan, 2)
    p, q, alpha, beta = 2, 3, 0.5, 2.0
    spectral = [
        abs(scaled_uiqi(a[k], a[r]) - scaled_uiqi(b[k], b[r])) ** p for k in range(4) for r in range(4) if k != r
    ]
    spatial = [abs(scaled_uiqi(a[c], 1.0) - scaled_uiqi(b[c], 1.0)) ** q for c in range(4)]
    d_lambda, d_s = np.mean(spectral) ** (1 / p), np.mean(spatial) ** (1 / q)
    got = fm.qnr(fused, ms, pan, 2, alpha=alpha, beta=beta, p=p, q=q)
    assert got["d_lambda"] == pytest.approx(d_lambda, rel=1e-9) and d_lambda > 0.05
    assert got["d_s"] == pytest.approx(d_s, rel=1e-9) and d_s > 0.05
    assert got["qnr"] == pytest.approx((1 - d_lambda) ** alpha * (1 - d_s) ** beta, rel=1e-9)


@pytest.mark.parametrize("guides", [1, 2])
def test_qnr_matches_oracle_on_random_images(guides):
    rng = np.random.default_rng(12)
    ms = textured(3, 14, 12, seed=12)
    pan = textured(guides, 28, 24, seed=13)
    fused = np.repeat(np.repeat(ms, 2, axis=1), 2, axis=2) + rng.normal(0, 30, (3, 28, 24)) + 0.2 * pan.mean(0)
    d_lambda, d_s, score = qnr_oracle(fused, ms, pan, 2, alpha=1.5, beta=0.5, p=1, q=2)
    got = fm.qnr(fused, ms, pan if guides > 1 else pan[0], 2, alpha=1.5, beta=0.5, p=1, q=2)
    assert got["d_lambda"] == pytest.approx(d_lambda, rel=1e-9)
    assert got["d_s"] == pytest.approx(d_s, rel=1e-9)
    assert got["qnr"] == pytest.approx(score, rel=1e-9)


def test_qnr_properties_what_is_and_is_not_zero():
    rng = np.random.default_rng(14)
    ms = textured(3, 16, 16, seed=14)
    pan = textured(1, 32, 32, seed=15)
    upsampled = np.repeat(np.repeat(ms, 2, axis=1), 2, axis=2)
    plain = fm.qnr(upsampled, ms, pan, 2)
    # fused == upsampled ms does NOT give D_lambda = 0: the windows see the bands at another scale
    assert plain["d_lambda"] > 1e-3
    assert 0 <= plain["d_s"] and 0 <= plain["qnr"] <= 1
    # D_lambda sees only band-to-band relations: a common gain on all fused bands changes nothing
    assert fm.qnr(7.0 * upsampled, ms, pan, 2)["d_lambda"] == pytest.approx(plain["d_lambda"], rel=1e-9)
    # ... and a fused image with no spatial relation to ms but the ms band gains has D_lambda = 0
    gains = np.array([1.0, 2.0, 0.5])[:, None, None]
    texture = textured(1, 32, 32, seed=16)
    assert fm.qnr(gains * texture, gains * textured(1, 16, 16, seed=17), pan, 2)["d_lambda"] < 1e-12
    noisy = fm.qnr(upsampled + rng.normal(0, 200, upsampled.shape), ms, pan, 2)
    assert noisy["qnr"] < plain["qnr"]


def test_qnr_follows_torchmetrics_definitions():
    torch = pytest.importorskip("torch")
    tmf = pytest.importorskip("torchmetrics.functional.image")
    rng = np.random.default_rng(18)
    ms = textured(3, 16, 16, seed=18)
    pan = textured(1, 32, 32, seed=19)
    fused = np.repeat(np.repeat(ms, 2, axis=1), 2, axis=2) + rng.normal(0, 50, (3, 32, 32))
    got = fm.qnr(fused, ms, pan, 2)
    t = {k: torch.from_numpy(v)[None] for k, v in {"f": fused, "m": ms, "p": np.repeat(pan, 3, 0)}.items()}
    pan_lr = torch.from_numpy(np.repeat(block_mean(pan, 2), 3, 0))[None]
    assert got["d_lambda"] == pytest.approx(float(tmf.spectral_distortion_index(t["f"], t["m"])), abs=1e-6)
    assert got["d_s"] == pytest.approx(float(tmf.spatial_distortion_index(t["f"], t["m"], t["p"], pan_lr)), abs=1e-6)


# ----------------------------------------------------------------------------- report and refusals


def test_fusion_report_gathers_the_scores():
    rng = np.random.default_rng(20)
    ref = textured(4, 40, 40, seed=20)
    est = ref + rng.normal(0, 30, ref.shape)
    valid = np.ones((40, 40), bool)
    valid[:3] = False
    report = fm.fusion_report(ref, est, 2, valid)
    assert set(report) == {"bands", "ergas", "sam", "q2n", "psnr_mean", "ssim_mean"}
    assert report["ergas"] == pytest.approx(ergas_oracle(ref, est, 2, valid), rel=1e-12)
    assert report["sam"] == pytest.approx(sam_oracle(ref, est, valid), rel=1e-9)
    assert report["q2n"] == pytest.approx(q2n_oracle(ref, est, 32, 32, valid), rel=1e-10)
    assert report["psnr_mean"] == pytest.approx(np.mean([b["psnr"] for b in report["bands"]]))
    assert report["ssim_mean"] == pytest.approx(np.mean([b["ssim"] for b in report["bands"]]))
    single = fm.fusion_report(ref[:1], est[:1], 2)
    assert single["sam"] is None and single["q2n"] is None


def test_refusals_are_input_and_config_errors():
    ref = textured(3, 16, 16, seed=21)
    with pytest.raises(InputError, match="differ in shape"):
        fm.ergas(ref, ref[:, :15], 2)
    with pytest.raises(InputError, match="at least 2 bands"):
        fm.sam(ref[:1], ref[:1])
    with pytest.raises(InputError, match="at least 2 bands"):
        fm.q2n(ref[:1], ref[:1])
    flat = ref.copy()
    flat[1] = 5.0
    with pytest.raises(InputError, match="band 1 of the reference is constant"):
        fm.band_scores(flat, ref)
    with pytest.raises(InputError, match="at least 11 x 11"):
        fm.band_scores(ref[:, :10], ref[:, :10])
    bad = ref.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        fm.sam(bad, ref)
    with pytest.raises(InputError, match="bool mask"):
        fm.sam(ref, ref, np.ones((16, 16)))
    with pytest.raises(InputError, match="no valid pixel"):
        fm.sam(ref, ref, np.zeros((16, 16), bool))
    with pytest.raises(InputError, match="each side times the ratio"):
        fm.qnr(np.zeros((3, 30, 32)), ref, np.zeros((1, 30, 32)), 2)
    with pytest.raises(InputError, match="at least 11 x 11"):
        fm.qnr(np.zeros((3, 20, 20)), ref[:, :10, :10], np.zeros((20, 20)), 2)
    with pytest.raises(InputError, match="real \\(C, H, W\\)"):
        fm.ergas(ref[0], ref[0], 2)
    for call in (
        lambda: fm.ergas(ref, ref, 0),
        lambda: fm.ergas(ref, ref, "two"),
        lambda: fm.q2n(ref, ref, block=1),
        lambda: fm.qnr(np.zeros((3, 32, 32)), ref, np.zeros((32, 32)), 2, p=1.5),
        lambda: fm.qnr(np.zeros((3, 32, 32)), ref, np.zeros((32, 32)), 2, alpha=-1),
    ):
        with pytest.raises(ConfigError):
            call()
    for call in (lambda: fm.ergas(ref, ref[:2], 2), lambda: fm.ergas(ref, ref, -1)):
        with pytest.raises((InputError, ConfigError)) as info:
            call()
        assert "\n" not in str(info.value)
