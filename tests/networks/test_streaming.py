"""Streamed EDSR (column by column, chunk by chunk, valid convolutions) equals the plain forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.errors import ConfigError
from geo_med_sr.inference.arrays import ArraySource
from geo_med_sr.inference.memory import reuse_freed_memory
from geo_med_sr.inference.radiometry import Radiometry
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.networks import build_network
from geo_med_sr.networks.streaming import StreamedEDSR
from geo_med_sr.normalize import build_normalizer


def randomised(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            std = 1.0 / np.sqrt(p[0].numel()) if p.ndim > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return net.eval()


def streamed_column(net, x: torch.Tensor, margin: int, planes: int, hr_planes: int) -> tuple[torch.Tensor, int]:
    """Feed ``x`` (planes ``-margin..``) chunk by chunk; return the concatenated output and its HR start."""
    column = StreamedEDSR(net, hr_planes=hr_planes).start((margin,) * (x.ndim - 3))
    out = []
    for a in range(0, x.shape[-1], planes):
        out += column.feed(x[..., a : a + planes], a - margin)
    starts = [c.start for c in out]
    lengths = [c.data.shape[-1] for c in out]
    assert all(s0 + n0 == s1 for s0, n0, s1 in zip(starts, lengths, starts[1:])), "chunks must follow each other"
    return torch.cat([c.data for c in out], dim=-1), starts[0]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    dims=st.sampled_from([2, 3]),
    scale=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    blocks=st.integers(0, 2),
    kernel=st.sampled_from([3, 5]),
    extra=st.integers(0, 2),
    planes=st.integers(1, 9),
    hr_planes=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_streamed_equals_forward_on_the_column(dims, scale, blocks, kernel, extra, planes, hr_planes, seed):
    scale = tuple(scale[:dims])
    net = randomised(
        build_network(
            "edsr", spatial_dims=dims, in_channels=1, scale=scale, features=4, num_blocks=blocks, kernel_size=kernel
        ),
        seed,
    )
    margin = net.receptive_radius + extra
    inplane, length = (5,) * (dims - 1), 7
    x = torch.randn(
        2, 1, *(n + 2 * margin for n in inplane), length + 2 * margin, generator=torch.Generator().manual_seed(seed)
    )
    with torch.inference_mode():
        whole = net(x)[(Ellipsis, *(slice(margin * f, -margin * f) for f in scale))]
        got, start = streamed_column(net, x, margin, planes, hr_planes)
    assert start <= 0 and start + got.shape[-1] >= length * scale[-1]
    got = got[..., -start : -start + length * scale[-1]]
    assert got.shape == whole.shape
    assert float((got - whole).abs().max()) <= 1e-5 * max(1.0, float(whole.abs().max()))
    assert float(whole.abs().max()) > 0.05  # not a trivial network


def test_halo_below_the_receptive_radius_is_refused():
    net = build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=4, num_blocks=1)
    with pytest.raises(ConfigError, match="receptive radius"):
        StreamedEDSR(net).start((net.receptive_radius - 1,))


def test_only_edsr_streams():
    rcan = build_network("rcan", spatial_dims=2, in_channels=1, scale=2, features=8, num_groups=1, num_blocks=1)
    assert not StreamedEDSR.supports(rcan)
    assert SuperResolver(rcan, 2, device="cpu").streamed is None
    with pytest.raises(ConfigError):
        StreamedEDSR(rcan)


@pytest.mark.parametrize(
    "shape,scale", [((3, 37, 29), (2, 2)), ((1, 13, 11, 17), (2, 2, 2)), ((2, 12, 9, 10), (1, 1, 4))]
)
@pytest.mark.parametrize("column_size,chunk_mb", [(6, 1e-4), (64, 64.0)])
def test_engine_streamed_equals_tiled_with_nodata(shape, scale, column_size, chunk_mb):
    """Columns (any column size and chunk length), with a nodata mask filled before the network
    and re-applied after, give the tile engine's result: equal after casting to uint16."""
    nd = len(scale)
    net = randomised(build_network("edsr", spatial_dims=nd, in_channels=1, scale=scale, features=6, num_blocks=2), 3)
    rng = np.random.default_rng(4)
    x = (1000 + 300 * rng.normal(size=shape)).astype(np.float32)
    valid = rng.random(shape[1:]) > 0.15
    norm = build_normalizer("percentile")
    radiometry = Radiometry(norm, norm.fit(x), fill_radius=2, out_dtype=np.dtype("float32"), nodata=0.0)
    tiled = SuperResolver(net, scale, patch_size=7, batch_size=2, device="cpu", stream=False)(x, valid, radiometry)
    resolver = SuperResolver(net, scale, column_size=column_size, chunk_mb=chunk_mb, batch_size=2, device="cpu")
    assert resolver.streamed is not None
    streamed = resolver(x, valid, radiometry)
    assert streamed.shape == tiled.shape
    np.testing.assert_array_equal(streamed == 0, tiled == 0)  # the same nodata pixels
    assert np.abs(streamed - tiled).max() <= 1e-5 * np.abs(tiled).max()


def test_reuse_freed_memory_nests():
    """Reuse stays on until the outermost block ends; a disabled block turns nothing on."""
    from geo_med_sr.inference import memory

    if not memory.available():
        pytest.skip("not glibc: reuse_freed_memory is a no-op here")
    assert not memory.is_reusing()
    with reuse_freed_memory():
        with reuse_freed_memory():
            assert memory.is_reusing()
        assert memory.is_reusing()  # the inner block's end does not restore the defaults
    assert not memory.is_reusing()
    with reuse_freed_memory(enabled=False):
        assert not memory.is_reusing()


class BlockSink:
    """An in-memory sink with a block size, recording every window it is given."""

    def __init__(self, shape, block):
        self.array = np.zeros(shape, np.float32)
        self.block = block
        self.boxes = []

    def write(self, box, data):
        self.boxes.append(box)
        self.array[(slice(None), *(slice(a, b) for a, b in box))] = data


def test_column_writes_cover_whole_blocks_along_the_stream():
    """Writes are buffered to the sink's block height (no compressed block rewritten piece by
    piece), side-by-side columns are joined, and the result is unchanged."""
    net = randomised(build_network("edsr", spatial_dims=2, in_channels=1, scale=2, features=4, num_blocks=1), 5)
    x = np.random.default_rng(5).normal(size=(2, 24, 61)).astype(np.float32)
    sink = BlockSink((2, 48, 122), block=(16, 16))
    resolver = SuperResolver(net, 2, column_size=8, chunk_mb=1e-4, batch_size=3, device="cpu")
    resolver.run(ArraySource(x), sink)
    for _columns, (r0, r1) in sink.boxes:
        assert r0 % 16 == 0 and (r1 % 16 == 0 or r1 == 122)
    assert {c for c, _ in sink.boxes} == {(0, 48)}  # three 8-px columns written as one window
    np.testing.assert_allclose(sink.array, SuperResolver(net, 2, device="cpu", stream=False)(x), atol=1e-5)
