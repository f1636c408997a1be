"""Tests for geo_med_sr.networks: shapes, geometry of the upsamplers, receptive radius, registry."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.errors import ModelError
from geo_med_sr.networks import (
    EDSR,
    NETWORKS,
    RCAN,
    PerAxisSubpixelUpsample,
    build_network,
    interpolate_linear,
    pixel_shuffle_nd,
)

TINY = {
    "edsr": {"features": 8, "num_blocks": 2},
    "rcan": {"features": 8, "num_groups": 2, "num_blocks": 1, "reduction": 4, "attention_window": 3},
}


def tiny(name: str, spatial_dims: int, scale, in_channels: int = 1, **overrides):
    return build_network(
        name, spatial_dims=spatial_dims, in_channels=in_channels, scale=scale, **{**TINY[name], **overrides}
    )


def randomize_tail(net: torch.nn.Module, std: float = 0.5) -> None:
    """Give the zero-initialised tail random weights so the learned branch is visible."""
    with torch.no_grad():
        for p in net.tail.parameters():
            p.normal_(0.0, std)


def pixel_unshuffle_nd(y: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    """Reference inverse of pixel_shuffle_nd: (B, C, *(S*s)) -> (B, C*prod(s), *S)."""
    nd = len(scale)
    b, c, *big = y.shape
    size = [n // s for n, s in zip(big, scale)]
    interleaved = [v for pair in zip(size, scale) for v in pair]
    y = y.reshape(b, c, *interleaved)  # (B, C, S0, s0, S1, s1, ...)
    perm = [0, 1] + [3 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)]
    return y.permute(perm).reshape(b, c * math.prod(scale), *size)


# --------------------------------------------------------------------------------------------
# pixel shuffle
# --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    nd=st.integers(1, 3),
    batch=st.integers(1, 2),
    channels=st.integers(1, 3),
)
def test_pixel_shuffle_round_trip(data, nd: int, batch: int, channels: int) -> None:
    scale = tuple(data.draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    size = tuple(data.draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    x = torch.randn(batch, channels * math.prod(scale), *size)
    y = pixel_shuffle_nd(x, scale)
    assert y.shape == (batch, channels, *(n * s for n, s in zip(size, scale)))
    assert torch.equal(pixel_unshuffle_nd(y, scale), x)
    assert torch.equal(pixel_shuffle_nd(pixel_unshuffle_nd(y, scale), scale), y)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_pixel_shuffle_matches_torch_in_2d(scale: int) -> None:
    x = torch.randn(2, 3 * scale * scale, 4, 5)
    assert torch.equal(pixel_shuffle_nd(x, scale), F.pixel_shuffle(x, scale))


def test_pixel_shuffle_sub_position_order() -> None:
    # channel k of LR voxel i lands on HR voxel i*s + k (no shift): 1D, s=3
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3).T[None]  # x[0, k, i] = 3 * i + k
    assert pixel_shuffle_nd(x, 3).flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_pixel_shuffle_rejects_bad_channels() -> None:
    with pytest.raises(ModelError, match="not divisible"):
        pixel_shuffle_nd(torch.zeros(1, 5, 3, 3), 2)


# --------------------------------------------------------------------------------------------
# edges stay in place
# --------------------------------------------------------------------------------------------


def copy_upsampler(spatial_dims: int, channels: int, scale) -> PerAxisSubpixelUpsample:
    """A PerAxisSubpixelUpsample whose conv copies input channel c into every sub-position."""
    up = PerAxisSubpixelUpsample(spatial_dims, channels, channels, scale)
    n_sub = math.prod(up.scale)
    conv = up.layer
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        centre = (conv.weight.shape[2] // 2,) * spatial_dims
        for c in range(channels):
            for k in range(n_sub):
                conv.weight[(c * n_sub + k, c, *centre)] = 1.0
    return up


@pytest.mark.parametrize(
    ("spatial_dims", "scale", "size"),
    [
        (2, (2, 2), (6, 7)),
        (2, (2, 3), (6, 7)),
        (2, (3, 1), (7, 5)),
        (3, (1, 1, 4), (3, 4, 6)),
        (3, (2, 3, 2), (5, 4, 5)),
    ],
)
def test_subpixel_edge_stays_in_place(spatial_dims: int, scale, size) -> None:
    up = copy_upsampler(spatial_dims, 2, scale)
    for axis in range(spatial_dims):
        p = size[axis] // 2
        x = torch.zeros(1, 2, *size)
        index = [slice(None)] * (spatial_dims + 2)
        index[axis + 2] = slice(p, None)
        x[tuple(index)] = 1.0
        y = up(x)
        # nearest-neighbour upsampling, exactly
        nearest = x
        for a, s in enumerate(scale):
            nearest = nearest.repeat_interleave(s, dim=a + 2)
        assert torch.equal(y, nearest)
        profile = y.movedim(axis + 2, -1).reshape(-1, y.shape[axis + 2])[0]
        first_one = int(torch.nonzero(profile)[0])
        assert first_one == p * scale[axis]


@pytest.mark.parametrize("s", [2, 3, 4, 5])
def test_interpolate_linear_keeps_step_crossing_in_place(s: int) -> None:
    n, p = 9, 4  # LR edge between voxels 3 and 4, world position p - 0.5 in LR index units
    x = torch.zeros(1, 1, n, 3)
    x[:, :, p:] = 1.0
    y = interpolate_linear(x, (s, 1))[0, 0, :, 1].double()
    j = int(torch.nonzero(y > 0.5)[0])  # first HR sample above 0.5
    crossing_hr = (j - 1) + (0.5 - y[j - 1].item()) / (y[j] - y[j - 1]).item()
    crossing_lr = (crossing_hr + 0.5) / s - 0.5  # HR index -> LR index coordinates
    assert crossing_lr == pytest.approx(p - 0.5, abs=1e-6)


@pytest.mark.parametrize(("spatial_dims", "scale"), [(2, (2, 3)), (2, (4, 1)), (3, (1, 1, 4)), (3, (3, 2, 2))])
def test_interpolate_linear_reproduces_ramps_on_the_centre_grid(spatial_dims: int, scale) -> None:
    size = (5, 6, 4)[:spatial_dims]
    slopes = torch.tensor([0.7, -1.3, 2.1][:spatial_dims], dtype=torch.float64)
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in size], indexing="ij")
    x = (sum(g * a for g, a in zip(grids, slopes)) + 0.25)[None, None]
    y = interpolate_linear(x, scale)
    assert y.shape[2:] == tuple(n * s for n, s in zip(size, scale))
    hr_grids = torch.meshgrid(
        *[(torch.arange(n * s, dtype=torch.float64) + 0.5) / s - 0.5 for n, s in zip(size, scale)], indexing="ij"
    )
    expected = (sum(g * a for g, a in zip(hr_grids, slopes)) + 0.25)[None, None]
    # away from the borders (where values are clamped) the ramp is exact
    inner = tuple(slice(None) for _ in range(2)) + tuple(slice(s, n * s - s) for n, s in zip(size, scale))
    torch.testing.assert_close(y[inner], expected[inner], rtol=0, atol=1e-12)


def test_interpolate_linear_rejects_integer_tensors() -> None:
    with pytest.raises(ModelError, match="floating-point"):
        interpolate_linear(torch.zeros(1, 1, 4, 4, dtype=torch.int32), 2)


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------

SHAPE_CASES = [
    (2, 2, (7, 9)),
    (2, 3, (5, 6)),
    (2, (2, 1), (7, 5)),
    (2, (2, 3), (5, 7)),
    (3, 2, (5, 4, 3)),
    (3, (1, 1, 4), (5, 6, 3)),
    (3, (3, 1, 2), (3, 5, 4)),
]


@pytest.mark.parametrize("name", ["edsr", "rcan"])
@pytest.mark.parametrize(("spatial_dims", "scale", "size"), SHAPE_CASES)
def test_output_shape_and_untrained_equals_interpolation(name: str, spatial_dims: int, scale, size) -> None:
    torch.manual_seed(0)
    net = tiny(name, spatial_dims, scale, in_channels=2)
    x = torch.randn(2, 2, *size)
    y = net(x)
    factors = (scale,) * spatial_dims if isinstance(scale, int) else scale
    assert y.shape == (2, 2, *(n * s for n, s in zip(size, factors)))
    assert torch.equal(y, interpolate_linear(x, factors))


@pytest.mark.parametrize("name", ["edsr", "rcan"])
def test_attributes_and_config_round_trip(name: str) -> None:
    net = tiny(name, 3, (1, 1, 4), in_channels=2)
    assert net.scale == (1, 1, 4)
    assert (net.spatial_dims, net.in_channels, net.out_channels) == (3, 2, 2)
    config = net.config()
    assert config["name"] == name
    json.dumps(config)
    rebuilt = build_network(**config)
    assert type(rebuilt) is type(net)
    assert rebuilt.config() == config
    assert rebuilt.receptive_radius == net.receptive_radius
    config["params"]["scale"].append(9)  # config() returns a copy
    assert net.config()["params"]["scale"] == [1, 1, 4]


def test_learning_signal_reaches_the_tail() -> None:
    net = tiny("edsr", 2, 2)
    x = torch.randn(1, 1, 6, 6)
    loss = (net(x) - torch.randn(1, 1, 12, 12)).pow(2).mean()
    loss.backward()
    assert net.tail.conv.weight.grad.abs().sum() > 0


def test_receptive_radius_formula() -> None:
    # head 1 + 2 per block + body 1 + upsampler conv 1 + HR tail ceil(1 / s_min)
    assert tiny("edsr", 2, 2).receptive_radius == 1 + 4 + 1 + 1 + 1
    assert tiny("edsr", 2, 4, kernel_size=5).receptive_radius == 2 + 2 * 5 + 2 + 1
    assert tiny("edsr", 2, (1, 4), kernel_size=5).receptive_radius == 2 + 2 * 5 + 2 + 2
    assert tiny("edsr", 2, 2, num_blocks=0).receptive_radius == 4
    # rcan: each block adds 2 convs + window // 2, each group a conv
    net = tiny("rcan", 2, 2, num_groups=2, num_blocks=2, attention_window=5)
    assert net.receptive_radius == 1 + 2 * (2 * (2 + 2) + 1) + 1 + 1 + 1


RADIUS_CASES = [
    ("edsr", 2, (2, 2), (40, 40), {}),
    ("edsr", 2, (3, 1), (40, 40), {}),
    ("edsr", 3, (1, 1, 2), (16, 16, 16), {"num_blocks": 1}),
    ("rcan", 2, (2, 2), (48, 48), {"num_blocks": 2, "attention_window": 3}),
    ("rcan", 2, (1, 2), (40, 40), {"num_groups": 1, "num_blocks": 2, "attention_window": 5}),
]


@pytest.mark.parametrize(("name", "spatial_dims", "scale", "size", "overrides"), RADIUS_CASES)
def test_receptive_radius_bounds_the_dependence(name, spatial_dims, scale, size, overrides) -> None:
    torch.manual_seed(1)
    net = tiny(name, spatial_dims, scale, **overrides).double().eval()
    randomize_tail(net)
    radius = net.receptive_radius
    assert all(n // 2 + radius + 1 < n for n in size), "test image too small for this radius"
    centre = tuple(n // 2 for n in size)
    x = torch.randn(1, 1, *size, dtype=torch.float64)
    with torch.no_grad():
        base = net(x)
        poked = x.clone()
        poked[(0, 0, *centre)] += 10.0
        changed = (net(poked) - base)[0, 0].nonzero()
    assert len(changed) > 0
    owners = changed // torch.tensor(net.scale)  # LR voxel owning each changed HR voxel
    reach = int((owners - torch.tensor(centre)).abs().max())
    assert reach <= radius
    if name == "edsr":  # no gating: the bound is tight
        assert reach == radius


@pytest.mark.parametrize(("name", "spatial_dims", "scale", "size", "overrides"), RADIUS_CASES)
def test_voxel_just_outside_radius_does_not_change_centre(name, spatial_dims, scale, size, overrides) -> None:
    torch.manual_seed(2)
    net = tiny(name, spatial_dims, scale, **overrides).eval()
    randomize_tail(net)
    radius = net.receptive_radius
    assert all(n // 2 + radius + 1 < n for n in size), "test image too small for this radius"
    centre = tuple(n // 2 for n in size)
    hr_block = tuple(slice(c * s, (c + 1) * s) for c, s in zip(centre, net.scale))
    x = torch.randn(1, 1, *size)
    with torch.no_grad():
        base = net(x)[(0, 0, *hr_block)]
        for axis in range(spatial_dims):
            for sign in (-1, 1):
                far = list(centre)
                far[axis] += sign * (radius + 1)
                poked = x.clone()
                poked[(0, 0, *far)] += 100.0
                assert torch.equal(net(poked)[(0, 0, *hr_block)], base)
        corner = tuple(c + radius + 1 for c in centre)
        poked = x.clone()
        poked[(0, 0, *corner)] += 100.0
        assert torch.equal(net(poked)[(0, 0, *hr_block)], base)
        # ... while a voxel one step inside the radius on the diagonal does change it (sanity)
        near = tuple(c + 1 for c in centre)
        poked = x.clone()
        poked[(0, 0, *near)] += 100.0
        assert not torch.equal(net(poked)[(0, 0, *hr_block)], base)


# --------------------------------------------------------------------------------------------
# validation and registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0, -2, 1.5, 2.0, "2", True, (2, 2, 2), (2, 0), None])
def test_invalid_scale_is_a_model_error(scale) -> None:
    with pytest.raises(ModelError, match="scale"):
        EDSR(2, 1, scale=scale, features=8, num_blocks=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spatial_dims": 4}, "spatial_dims"),
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"out_channels": 3}, "out_channels"),
        ({"features": 0}, "features"),
        ({"num_blocks": -1}, "num_blocks"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"res_scale": 0.0}, "res_scale"),
    ],
)
def test_invalid_edsr_parameters(kwargs, match) -> None:
    params = {"spatial_dims": 2, "in_channels": 1, "features": 8, "num_blocks": 1, **kwargs}
    with pytest.raises(ModelError, match=match):
        EDSR(**params)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"reduction": 16}, "reduction"), ({"attention_window": 4}, "attention_window")]
)
def test_invalid_rcan_parameters(kwargs, match) -> None:
    with pytest.raises(ModelError, match=match):
        RCAN(2, 1, features=8, num_groups=1, num_blocks=1, **kwargs)


def test_model_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        EDSR(2, 1, scale=0)


def test_wrong_input_shape_is_a_model_error() -> None:
    net = tiny("edsr", 2, 2)
    with pytest.raises(ModelError, match="expects input"):
        net(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ModelError, match="expects input"):
        net(torch.zeros(1, 1, 4, 4, 4))


def test_registry_lists_networks_and_rejects_duplicates() -> None:
    assert {"edsr", "rcan"} <= set(NETWORKS.names())
    assert NETWORKS.get("EDSR") is EDSR
    with pytest.raises(ModelError, match="already registered"):
        NETWORKS.add("edsr", RCAN)
    assert NETWORKS.get("edsr") is EDSR


@pytest.mark.parametrize(("typo", "closest"), [("edsrr", "edsr"), ("rcna", "rcan")])
def test_unknown_network_suggests_closest(typo: str, closest: str) -> None:
    with pytest.raises(ModelError, match=f"did you mean '{closest}'"):
        build_network(typo, spatial_dims=2, in_channels=1)


def test_build_network_parameter_errors() -> None:
    with pytest.raises(ModelError, match="no parameter"):
        build_network("edsr", spatial_dims=2, in_channels=1, featurez=8)
    with pytest.raises(ModelError, match="needs parameter"):
        build_network("edsr", spatial_dims=2)
    with pytest.raises(ModelError, match="given twice"):
        build_network("edsr", {"spatial_dims": 2, "in_channels": 1}, in_channels=1)
    net = build_network("edsr", {"spatial_dims": 2, "in_channels": 1}, features=8, num_blocks=1)
    assert net.features == 8
