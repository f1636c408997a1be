"""The window driver: guides windowed alongside the input (3D), tile invariance, and both tools on it."""

from __future__ import annotations

import re
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

from geo_med_sr.errors import InputError
from geo_med_sr.inference.arrays import ArraySink, ArraySource
from geo_med_sr.inference.driver import WindowDriver, WindowInputs
from geo_med_sr.inference.protocols import GuidedMethod, OutputSpec
from geo_med_sr.multires import reflect_indices


def laplacian(a: np.ndarray) -> np.ndarray:
    """``(C, *S)`` -> ``2 * nd * a - sum of the 2 * nd axis neighbours``; NaN on the border (no context)."""
    out = np.full(a.shape, np.nan)
    inner = (slice(None), *(slice(1, -1),) * (a.ndim - 1))
    acc = 2 * (a.ndim - 1) * a[inner]
    for axis in range(1, a.ndim):
        for lo, hi in ((0, -2), (2, None)):
            acc = acc - a[(slice(None), *(slice(lo, hi) if k == axis else slice(1, -1) for k in range(1, a.ndim)))]
    out[inner] = acc
    return out


def upsample(a: np.ndarray, scale: tuple[int, ...]) -> np.ndarray:
    for axis, s in enumerate(scale, start=1):
        a = np.repeat(a, s, axis=axis)
    return a


def detail_injection(x: np.ndarray, guide: np.ndarray, scale: tuple[int, ...]) -> np.ndarray:
    """A trivial guided method: the input sharpened a little (1 LR pixel of context), upsampled,
    plus the guide's detail (1 output pixel of context). Exact in any window (small integers)."""
    return upsample(x + 0.25 * laplacian(x), scale) + laplacian(guide)[:1]


class DetailInjection:
    """The window driver's compute for :func:`detail_injection`; records what it was given."""

    def __init__(self) -> None:
        self.seen: list[WindowInputs] = []

    def prepare(self, windows: list[WindowInputs]) -> list[WindowInputs]:
        return windows

    def __call__(self, windows: list[WindowInputs]) -> list[tuple[np.ndarray, None]]:
        self.seen.extend(windows)
        return [(detail_injection(w.values, w.guides[0], w.scale), None) for w in windows]

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values


def coordinates(shape: tuple[int, ...]) -> np.ndarray:
    """``(nd, *shape)``: each pixel's own index along every axis (a guide that says where it was read)."""
    return np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")).astype(np.float64)


@pytest.mark.parametrize("patch", [(2, 3, 2), (3, 5, 4), (64, 64, 64)])
def test_3d_guide_is_windowed_with_the_input_and_tiled_equals_whole(patch):
    scale, halo = (2, 1, 3), 1
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=(2, 5, 7, 4)).astype(np.float64)
    out_shape = tuple(n * s for n, s in zip(x.shape[1:], scale))
    guide = np.concatenate([rng.integers(0, 50, size=(1, *out_shape)).astype(np.float64), coordinates(out_shape)])
    padded_x = np.pad(x, [(0, 0)] + [(halo, halo)] * 3, mode="reflect")
    padded_g = np.pad(guide, [(0, 0)] + [(halo * s, halo * s) for s in scale], mode="reflect")
    crop = (slice(None), *(slice(halo * s, -halo * s) for s in scale))
    whole = detail_injection(padded_x, padded_g, scale)[crop]
    assert np.isfinite(whole).all()

    compute = DetailInjection()
    sink = ArraySink((2, *out_shape), dtype=None, values=np.float64)
    driver = WindowDriver(scale, patch, halo, batch_size=2, progress=False)
    driver.run(compute, sink, OutputSpec(None), source=ArraySource(x), guides=[ArraySource(guide)])
    np.testing.assert_array_equal(sink.array, whole)

    owned = np.zeros(out_shape, int)
    for w in compute.seen:
        read, mine = w.output_read, w.output_owned
        assert w.guides[0].shape == (4, *read.shape)  # the guide window is the output window, grown by the halo
        assert read == w.patch.tile.scaled(scale).grown([halo * s for s in scale])
        expected = np.stack(
            np.meshgrid(*(reflect_indices(a, b, n) for (a, b), n in zip(read, out_shape)), indexing="ij")
        )
        np.testing.assert_array_equal(w.guides[0][1:], expected)  # read where the output goes, mirrored outside
        np.testing.assert_array_equal(w.crop(w.guides[0])[1:], coordinates(out_shape)[(slice(None), *mine.toslices())])
        owned[mine.toslices()] += 1
    assert (owned == 1).all()


def test_a_guide_off_the_output_grid_is_refused():
    x = np.zeros((1, 4, 4, 4))
    driver = WindowDriver((2, 2, 2), 2, 1, progress=False)
    with pytest.raises(InputError, match=r"guide 0 has shape \(8, 8, 4\).*output grid's \(8, 8, 8\)"):
        driver.run(DetailInjection(), ArraySink((1, 8, 8, 8)), OutputSpec(None), source=ArraySource(x),
                   guides=[ArraySource(np.zeros((1, 8, 8, 4)))])  # fmt: skip


def test_aligned_windows_cover_whole_sink_blocks_row_after_row():
    class Boxes(ArraySink):
        def write(self, window, data):
            self.boxes.append(window)
            super().write(window, data)

    x = np.arange(2 * 11 * 9, dtype=np.float64).reshape(2, 11, 9)
    sink = Boxes((2, 11, 9), dtype=np.float64)
    sink.block, sink.boxes = (4, 4), []
    WindowDriver((1, 1), 3, 0, aligned=True, progress=False).run(
        _Copy(), sink, OutputSpec(np.dtype(np.float64)), source=ArraySource(x)
    )
    np.testing.assert_array_equal(sink.array, x)
    assert sink.boxes == [((0, 4), (0, 4)), ((4, 8), (0, 4)), ((8, 11), (0, 4)), ((0, 4), (4, 8)),
                          ((4, 8), (4, 8)), ((8, 11), (4, 8)), ((0, 4), (8, 9)), ((4, 8), (8, 9)),
                          ((8, 11), (8, 9))]  # fmt: skip


class _Copy:
    def prepare(self, windows):
        return windows

    def __call__(self, windows):
        return [(w.values, None) for w in windows]

    def finish(self, values):
        return values


def test_sharpening_methods_satisfy_the_guided_method_protocol():
    from geo_med_sr.networks.guided import GuidedNet
    from geo_med_sr.sharpening.methods import GLP, Bicubic, Brovey, NetworkMethod

    stats = [{"mean": 0.0, "std": 1.0}]
    net = NetworkMethod(GuidedNet(1, 1, 2, features=4, blocks=1), stats, stats)
    methods: list[GuidedMethod] = [Bicubic(), Brovey(), GLP(np.ones((1, 1))), net]
    for method in methods:
        assert isinstance(method.name, str) and isinstance(method.needs_detail, bool)
        assert isinstance(method.receptive_radius, int) and method.receptive_radius >= 0
        assert not hasattr(method, "radius")  # one name for the concept
    assert net.receptive_radius == GuidedNet(1, 1, 2, features=4, blocks=1).receptive_radius > 0


def test_one_window_walk():
    """Only the driver builds a grid of windows; the tools' engines hand it a compute."""
    root = Path(__file__).resolve().parents[2] / "geo_med_sr"
    builders = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if re.search(r"PatchGrid\.create\(|def tiles\(", p.read_text())
    )
    assert builders == ["inference/driver.py"]


def test_a_classical_walk_imports_no_torch():
    """Sharpening with a classical method never needed torch: the driver imports it only for a model."""
    probe = (
        "import sys\n"
        "import numpy as np\n"
        "from geo_med_sr.inference.arrays import ArraySink, ArraySource\n"
        "from geo_med_sr.inference.driver import WindowDriver\n"
        "from geo_med_sr.inference.protocols import OutputSpec\n"
        "import geo_med_sr.sharpening.engine, geo_med_sr.sharpening.methods\n"
        "class Copy:\n"
        "    prepare = staticmethod(lambda windows: windows)\n"
        "    __call__ = staticmethod(lambda windows: [(w.values, None) for w in windows])\n"
        "    finish = staticmethod(lambda values: values)\n"
        "sink = ArraySink((1, 5, 4))\n"
        "driver = WindowDriver((1, 1), 2, 1, progress=False)\n"
        "driver.run(Copy(), sink, OutputSpec(None), source=ArraySource(np.ones((1, 5, 4))))\n"
        "assert sink.array.sum() == 20\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def walks(monkeypatch):
    """Count the driver's window walks."""
    calls = []
    walk = WindowDriver.walk

    def counting(self, *args, **kwargs):
        calls.append(self.desc)
        return walk(self, *args, **kwargs)

    monkeypatch.setattr(WindowDriver, "walk", counting)
    return calls


@pytest.mark.parametrize("method", ["bspline", "model"])
def test_upscale_goes_through_the_driver(tmp_path, walks, method):
    from geotiff_fixtures import lr_file as _lr_file
    from geotiff_fixtures import method_config as _config

    from geo_med_sr.upscale.pipeline import super_resolve

    _, lr_path = _lr_file(tmp_path, 2, size=(20, 16))
    super_resolve(lr_path, tmp_path / "sr.tif", 2, _config(method, tmp_path, 2), progress=False)
    assert walks == ["super-resolving"]  # tiles (bspline) or the streamed columns (EDSR)


def test_sharpen_goes_through_the_driver(tmp_path, walks):
    from s2_fixtures import s2_folder

    from geo_med_sr.sharpening.pipeline import sharpen

    sharpen(s2_folder(tmp_path / "S2X_TEST", n=24, scl=True), tmp_path / "sharp.tif", method="glp", progress=False)
    assert walks == ["sharpening"]


def test_without_threads_a_window_is_let_go_before_the_next_is_read():
    """Peak memory is one window's: without threads, a window's prepared inputs and its outputs are
    freed before the next window is read (``prepare``) and computed (the sharpening tiles are ~25 MB
    of float64 each; holding two was +30 MB of peak RSS on a 2560² product)."""

    class Tracked:
        def __init__(self) -> None:
            self.earlier: list[weakref.ref] = []
            self.calls = 0

        def held(self) -> int:
            return sum(ref() is not None for ref in self.earlier)

        def prepare(self, windows):
            assert self.held() == 0, "an earlier window is still held while the next one is read"
            prepared = [w.values.astype(np.float64) for w in windows]
            self.earlier += [weakref.ref(p) for p in prepared]
            return prepared

        def __call__(self, prepared):
            self.calls += 1
            assert self.held() == len(prepared), "an earlier window is still held while the next one is computed"
            out = [(2.0 * p, None) for p in prepared]
            self.earlier += [weakref.ref(values) for values, _ in out]
            return out

        def finish(self, values):
            return values

    x = np.arange(2 * 12 * 10, dtype=np.float64).reshape(2, 12, 10)
    compute = Tracked()
    sink = ArraySink((2, 12, 10), dtype=None, values=np.float64)
    WindowDriver((1, 1), 4, 0, threads=False, progress=False).run(
        compute, sink, OutputSpec(None), source=ArraySource(x)
    )
    np.testing.assert_array_equal(sink.array, 2 * x)
    assert compute.calls == 9
