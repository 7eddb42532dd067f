"""Tests of the pooling functions against independent loop implementations and their properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from beauty_app.retrieval.pooling import (
    POOLINGS,
    activation_attention,
    gap,
    gem,
    mac,
    ramac,
    rmac,
    rmac_regions,
    spoc,
    srmac,
    srmac_region_weights,
)

F32 = np.float32


# ---------------------------------------------------------------- independent reference (numpy loops)
def ref_regions(height: int, width: int, levels: int = 3) -> list[tuple[int, int, int, int]]:
    """R-MAC regions written from the REFERENCES.md description.

    Overlap scores and centre spacings use float32 like the reference toolkit, which decides the
    exact ties (e.g. 3x11, where 4 and 5 extra steps give overlaps 0.333 and 0.467 around 0.4).
    """
    short, long_ = min(height, width), max(height, width)
    extra, best_err = 0, math.inf
    for gaps in range(1, 7):  # 2..7 regions along the long side means 1..6 gaps
        spacing = F32(long_ - short) / F32(gaps)
        overlap = (F32(short * short) - F32(short) * spacing) / F32(short * short)
        err = abs(float(overlap - F32(0.4)))
        if err < best_err:
            extra, best_err = gaps, err
    if height == width:
        extra = 0

    def positions(size: int, side: int, half: int, count: int) -> list[int]:
        if count == 1:
            return [0]
        spacing = F32((size - side) / (count - 1))
        return [int(np.floor(F32(half) + F32(i) * spacing)) - half for i in range(count)]

    out = []
    for level in range(1, levels + 1):
        side = (2 * short) // (level + 1)
        if side == 0:
            continue
        half = math.floor(side / 2 - 1)
        rows = level + (extra if height > width else 0)
        cols = level + (extra if width > height else 0)
        for top in positions(height, side, half, rows):
            for left in positions(width, side, half, cols):
                out.append((top, left, side, side))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-6)


def ref_rmac(x: np.ndarray, levels: int = 3) -> np.ndarray:
    b, c, h, w = x.shape
    out = np.zeros((b, c))
    for i in range(b):
        total = _unit(x[i].reshape(c, -1).max(axis=1))
        for top, left, rh, rw in ref_regions(h, w, levels):
            total = total + _unit(x[i, :, top : top + rh, left : left + rw].reshape(c, -1).max(axis=1))
        out[i] = _unit(total)
    return out


def ref_srmac(x: np.ndarray, sal: np.ndarray, keep_ratio: float = 0.5) -> np.ndarray:
    """SR-MAC rule with a saliency already at the map's resolution (B, H, W)."""
    b, c, h, w = x.shape
    out = np.zeros((b, c))
    regions = ref_regions(h, w)
    for i in range(b):
        weights = [sal[i, t : t + rh, l : l + rw].mean() for t, l, rh, rw in regions]
        total = _unit((x[i] * sal[i][None]).reshape(c, -1).max(axis=1))
        for (t, l, rh, rw), wr in zip(regions, weights):
            if wr >= keep_ratio * max(weights):
                total = total + wr * _unit(x[i, :, t : t + rh, l : l + rw].reshape(c, -1).max(axis=1))
        out[i] = _unit(total)
    return out


def rand_map(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ regions
def test_square_regions_by_hand():
    regions = rmac_regions(7, 7, levels=3)
    assert len(regions) == 1 + 4 + 9
    assert regions[0] == (0, 0, 7, 7)  # level 1 covers the whole square map
    assert [r[2] for r in regions] == [7] + [4] * 4 + [3] * 9
    assert regions[1:5] == [(0, 0, 4, 4), (0, 3, 4, 4), (3, 0, 4, 4), (3, 3, 4, 4)]
    assert sorted({r[1] for r in regions[5:]}) == [0, 2, 4]
    assert rmac_regions(14, 14)[0] == (0, 0, 14, 14)


def test_wide_regions_by_hand():
    regions = rmac_regions(7, 14, levels=3)
    # 7 of slack over a side of 7: two extra steps give overlap 0.5, the closest to 0.4.
    assert regions[:3] == [(0, 0, 7, 7), (0, 3, 7, 7), (0, 7, 7, 7)]
    by_level = [[r for r in regions if r[2] == side] for side in (7, 4, 3)]
    assert [len(level) for level in by_level] == [1 * 3, 2 * 4, 3 * 5]
    for level in by_level:
        assert len({r[1] for r in level}) > len({r[0] for r in level})  # more columns than rows


def test_tiny_maps():
    assert rmac_regions(1, 1) == [(0, 0, 1, 1)]  # levels 2 and 3 have side 0 and are skipped
    regions = rmac_regions(2, 3)
    assert regions[:2] == [(0, 0, 2, 2), (0, 1, 2, 2)]
    assert all(r[2] == 1 for r in regions[2:])


@pytest.mark.parametrize("height", range(1, 31))
def test_regions_symmetric_square_and_in_bounds(height):
    for width in range(1, 31):
        regions = rmac_regions(height, width)
        flipped = sorted((left, top, w, h) for top, left, h, w in rmac_regions(width, height))
        assert sorted(regions) == flipped
        for top, left, h, w in regions:
            assert h == w >= 1
            assert 0 <= top and top + h <= height and 0 <= left and left + w <= width


def test_regions_match_independent_reference():
    for height in range(1, 41):
        for width in range(1, 41):
            assert rmac_regions(height, width) == ref_regions(height, width), (height, width)
    assert rmac_regions(9, 20, levels=5) == ref_regions(9, 20, levels=5)


def test_regions_reject_bad_sizes():
    with pytest.raises(ValueError):
        rmac_regions(0, 5)


# --------------------------------------------------------------------------------------------- R-MAC
@pytest.mark.parametrize(
    "hw", [(7, 7), (14, 14), (7, 10), (5, 16), (3, 20), (10, 7), (16, 5), (1, 1), (2, 3), (3, 11)]
)
def test_rmac_matches_loop_reference(hw):
    x = rand_map(3, 16, *hw, seed=hw[0] * 100 + hw[1]) ** 3  # skewed, non-negative
    got = rmac(x).numpy()
    np.testing.assert_allclose(got, ref_rmac(x.double().numpy()), atol=1e-5)


# -------------------------------------------------------------------------------- common properties
def _all_pools(x: torch.Tensor, saliency: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: fn(x, saliency=saliency) for name, fn in POOLINGS.items()}


def test_every_pooling_shape_norm_finite():
    x = rand_map(4, 32, 7, 9, seed=1)
    sal = rand_map(4, 1, 56, 72, seed=2)
    for name, v in _all_pools(x, sal).items():
        assert v.shape == (4, 32) and v.dtype == torch.float32, name
        assert torch.isfinite(v).all(), name
        torch.testing.assert_close(v.norm(dim=1), torch.ones(4), atol=1e-5, rtol=0, msg=name)


def test_every_pooling_on_zero_map_is_finite():
    x = torch.zeros(2, 8, 5, 6)
    for sal in (torch.zeros(2, 5, 6), torch.ones(2, 5, 6)):
        for name, v in _all_pools(x, sal).items():
            assert v.shape == (2, 8) and torch.isfinite(v).all(), name
    for fn in (gap, mac, spoc, gem, rmac, ramac):
        assert torch.isfinite(fn(torch.zeros(1, 4, 1, 1))).all()


def test_bf16_input():
    x16 = rand_map(2, 16, 6, 8, seed=3).to(torch.bfloat16)
    sal = rand_map(2, 6, 8, seed=4)
    for name, fn in POOLINGS.items():
        v = fn(x16, saliency=sal)
        assert v.dtype == torch.float32 and torch.isfinite(v).all(), name
        torch.testing.assert_close(v, fn(x16.float(), saliency=sal), msg=name)


def test_rejects_non_4d_map():
    with pytest.raises(ValueError):
        mac(torch.rand(3, 7, 7))


def test_poolings_registry_and_missing_saliency():
    assert set(POOLINGS) == {"gap", "mac", "spoc", "gem", "rmac", "ramac", "srmac"}
    x = rand_map(2, 8, 5, 5)
    torch.testing.assert_close(POOLINGS["rmac"](x, saliency=torch.zeros(2, 5, 5)), rmac(x))
    with pytest.raises(ValueError, match="saliency"):
        POOLINGS["srmac"](x)


# --------------------------------------------------------------------------------- global poolings
def test_gap_and_mac_values():
    x = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]]])  # (1, 2, 2, 2)
    torch.testing.assert_close(gap(x), torch.tensor([[1.0, 2.0]]) / math.sqrt(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(mac(x), torch.tensor([[3.0, 2.0]]) / math.sqrt(13), atol=1e-6, rtol=0)


def test_spoc_weights_centre_more_than_gap():
    x = torch.zeros(1, 2, 9, 9)
    x[0, 0, 4, 4] = 1.0  # channel 0 lives in the centre
    x[0, 1, 0, 0] = 1.0  # channel 1 lives in a corner
    g, s = gap(x), spoc(x)
    torch.testing.assert_close(g[0, 0], g[0, 1])
    assert s[0, 0] > 0.99 and s[0, 1] < 0.01
    uniform = torch.ones(1, 3, 6, 6)
    torch.testing.assert_close(spoc(uniform), gap(uniform))


def test_gem_limits():
    x = rand_map(2, 16, 7, 7, seed=5)
    torch.testing.assert_close(gem(x, p=1.0), gap(x), atol=1e-5, rtol=0)
    big = gem(x * 100.0, p=200.0)  # would overflow float32 without rescaling
    assert torch.isfinite(big).all()
    torch.testing.assert_close(big, mac(x), atol=5e-3, rtol=0)
    assert (gem(x, p=3.0) - gap(x)).abs().max() > 1e-3


# ------------------------------------------------------------------------------------ SR-MAC, RA-MAC
@pytest.mark.parametrize("hw", [(7, 7), (7, 14), (16, 5), (1, 1)])
def test_srmac_all_ones_equals_rmac(hw):
    x = rand_map(3, 24, *hw, seed=6)
    torch.testing.assert_close(srmac(x, torch.ones(3, 1, *hw)), rmac(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(srmac(x, torch.ones(3, 224, 224)), rmac(x), atol=1e-5, rtol=0)


def test_srmac_zero_saliency_falls_back_to_rmac():
    x = rand_map(2, 24, 7, 10, seed=7)
    sal = torch.zeros(2, 1, 7, 10)
    sal[1, 0, 2:5, 3:6] = 1.0  # only the first image has an empty map
    v = srmac(x, sal)
    assert torch.isfinite(v).all()
    torch.testing.assert_close(v[0], rmac(x)[0], atol=1e-5, rtol=0)
    assert (v[1] - rmac(x)[1]).abs().max() > 1e-3
    weights = srmac_region_weights(sal, 7, 10)
    assert all(kept and wt == 1.0 for *_, wt, kept in weights[0])


@pytest.mark.parametrize("hw", [(7, 7), (6, 11), (12, 5)])
def test_srmac_matches_loop_reference(hw):
    x = rand_map(2, 16, *hw, seed=8) ** 2
    sal = rand_map(2, *hw, seed=9) ** 4  # peaky, so some regions fall below keep_ratio * max
    expected = ref_srmac(x.double().numpy(), sal.double().numpy())
    np.testing.assert_allclose(srmac(x, sal).numpy(), expected, atol=1e-5)
    kept = [k for item in srmac_region_weights(sal, *hw) for *_, k in item]
    assert any(kept) and not all(kept)


def _distractor_scene(channels: slice) -> torch.Tensor:
    x = rand_map(1, 32, 7, 14, seed=10) * 0.5
    x[0, channels, 2:5, 11:14] = 5.0  # bright clutter at the right edge, outside the product
    return x


def test_srmac_ignores_background_distractor():
    sal = torch.zeros(1, 1, 112, 224)
    sal[..., :112] = 1.0  # the product fills the left half of the picture
    a, b = _distractor_scene(slice(0, 8)), _distractor_scene(slice(8, 16))  # different clutter
    torch.testing.assert_close(srmac(a, sal), srmac(b, sal), atol=1e-6, rtol=0)
    assert (rmac(a) - rmac(b)).abs().max() > 0.05  # plain R-MAC follows the clutter
    for _top, left, _h, w, weight, kept in srmac_region_weights(sal, 7, 14)[0]:
        if left + w > 11:  # every region touching the clutter is background and dropped
            assert not kept and weight < 0.5


def test_srmac_region_weights_values():
    sal = torch.zeros(1, 7, 7)
    sal[0, :, :3] = 1.0
    regions = srmac_region_weights(sal, 7, 7)[0]
    assert [r[:4] for r in regions] == rmac_regions(7, 7)
    assert regions[0][4] == pytest.approx(3 / 7)
    assert not regions[0][5]  # 3/7 < 0.5 * 1.0, the weight of the small regions inside the stripe
    assert regions[1][4:] == (pytest.approx(3 / 4), True)  # top-left 4x4 region
    assert regions[5][4:] == (pytest.approx(1.0), True)  # top-left 3x3 region
    right = [r for r in regions if r[1] >= 2]
    assert right and all(not r[5] for r in right)


def test_srmac_checks_batch():
    with pytest.raises(ValueError):
        srmac(rand_map(2, 4, 5, 5), torch.ones(3, 5, 5))


def test_activation_attention_range():
    x = rand_map(2, 8, 6, 9, seed=11) - 0.2  # some negative activations are ignored
    att = activation_attention(x)
    assert att.shape == (2, 1, 6, 9)
    torch.testing.assert_close(att.amin(dim=(1, 2, 3)), torch.zeros(2))
    torch.testing.assert_close(att.amax(dim=(1, 2, 3)), torch.ones(2))
    assert torch.equal(activation_attention(torch.ones(1, 3, 4, 4)), torch.zeros(1, 1, 4, 4))


def test_ramac_is_srmac_with_activation_attention():
    x = rand_map(2, 16, 7, 7, seed=12) * 0.1
    x[:, :, :3, :3] += 1.0  # the object sits in a corner
    torch.testing.assert_close(ramac(x), srmac(x, activation_attention(x)))
    assert (ramac(x) - rmac(x)).abs().max() > 1e-3
    torch.testing.assert_close(ramac(torch.ones(1, 4, 5, 5)), rmac(torch.ones(1, 4, 5, 5)))


# ---------------------------------------------------------------- several poolings of one map at once
@pytest.mark.parametrize("shape", [(3, 16, 7, 7), (2, 8, 5, 9), (1, 4, 11, 3), (2, 6, 1, 1)])
def test_pool_several_gives_every_pooling_bit_for_bit(shape):
    from beauty_app.retrieval.pooling import pool_several

    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=generator).relu()
    saliency = torch.rand((shape[0], 1, shape[2], shape[3]), generator=generator)
    saliency[0] = 0.0  # an empty saliency: plain R-MAC for that image
    names = ["srmac", "gap", "mac", "rmac", "ramac", "spoc", "gem"]
    together = pool_several(x, saliency, names)
    assert list(together) == names
    for name in names:
        assert torch.equal(together[name], POOLINGS[name](x, saliency)), name
    with pytest.raises(ValueError, match="saliency"):
        pool_several(x, None, ["srmac"])


def test_regional_maxima_do_not_depend_on_the_layout():
    # The regions are reduced channels-last; the same maxima as reducing the (B, C, H, W) map.
    from beauty_app.retrieval.pooling import _regional_maxes

    x = torch.randn((2, 5, 6, 9), generator=torch.Generator().manual_seed(3))
    regions = rmac_regions(6, 9)
    expected = torch.stack([x[:, :, t:t + h, s:s + w].amax(dim=(2, 3)) for t, s, h, w in regions], dim=1)
    assert torch.equal(_regional_maxes(x, regions), expected)
