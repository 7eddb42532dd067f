"""Global and regional pooling of CNN feature maps into retrieval descriptors.

Every descriptor function takes a feature map ``x`` of shape (B, C, H, W) (any float dtype; the
arithmetic is float32) and returns an L2-normalised (B, C) float32 tensor. An all-zero input gives
an all-zero descriptor rather than NaN.

SR-MAC is the product's retrieval feature (Wang et al. 2020): R-MAC (Tolias et al. 2016) whose
regions are weighted, and background regions dropped, by a saliency map. RA-MAC applies the same
rule with an unsupervised attention map computed from the activations themselves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

EPS = 1e-6
Region = tuple[int, int, int, int]  # (top, left, height, width) in feature-map cells


def _check_map(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) feature map, got shape {tuple(x.shape)}")
    return x.float()


def _l2n(v: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    return v / (v.norm(p=2, dim=-1, keepdim=True) + eps)


def gap(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling, L2-normalised."""
    return _l2n(_check_map(x).mean(dim=(2, 3)))


def mac(x: torch.Tensor) -> torch.Tensor:
    """Global max pooling (MAC, Razavian et al.), L2-normalised."""
    return _l2n(_check_map(x).amax(dim=(2, 3)))


def spoc(x: torch.Tensor) -> torch.Tensor:
    """Sum pooling with the Gaussian centre prior of SPoC (Babenko & Lempitsky 2015), L2-normalised.

    Each cell is weighted by exp(-d^2 / (2 sigma^2)), d being the distance of the cell centre from
    the map centre and sigma one third of the distance from the centre to the closest border.
    """
    x = _check_map(x)
    h, w = x.shape[-2:]
    sigma = min(h, w) / 6.0
    ys = torch.arange(h, dtype=torch.float32, device=x.device) + 0.5 - h / 2.0
    xs = torch.arange(w, dtype=torch.float32, device=x.device) + 0.5 - w / 2.0
    prior = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2.0 * sigma**2))
    return _l2n((x * prior).sum(dim=(2, 3)))


def gem(x: torch.Tensor, p: float = 3.0, eps: float = EPS) -> torch.Tensor:
    """Generalised-mean pooling (GeM) with exponent ``p``, L2-normalised.

    Activations are clamped to ``eps`` before the power. The map is divided by its per-channel
    maximum first (GeM is homogeneous) so that large ``p`` cannot overflow float32.
    """
    x = _check_map(x).clamp(min=eps)
    peak = x.amax(dim=(2, 3), keepdim=True)
    pooled = (x / peak).pow(p).mean(dim=(2, 3)).pow(1.0 / p) * peak[..., 0, 0]
    return _l2n(pooled)


@lru_cache(maxsize=256)
def _regions(height: int, width: int, levels: int) -> tuple[Region, ...]:
    # The arithmetic is float32 on purpose: the reference toolkit computes in float32, and for a few
    # shapes (e.g. 3x11, where two step counts tie exactly) float64 would choose other regions.
    w = min(height, width)
    steps = torch.arange(2, 8, dtype=torch.float32)
    b = (max(height, width) - w) / (steps - 1)
    idx = int(torch.argmin(torch.abs((w**2 - w * b) / w**2 - 0.4)))
    extra_w = idx + 1 if height < width else 0
    extra_h = idx + 1 if height > width else 0

    def starts(size: int, wl: int, wl2: int, m: int) -> list[int]:
        step = 0.0 if m == 1 else (size - wl) / (m - 1)
        return (torch.floor(wl2 + torch.arange(m, dtype=torch.float32) * step) - wl2).long().tolist()

    out: list[Region] = []
    for level in range(1, levels + 1):
        wl = math.floor(2 * w / (level + 1))
        if wl == 0:
            continue
        wl2 = math.floor(wl / 2 - 1)
        for top in starts(height, wl, wl2, level + extra_h):
            for left in starts(width, wl, wl2, level + extra_w):
                out.append((top, left, wl, wl))
    return tuple(out)


def rmac_regions(height: int, width: int, levels: int = 3) -> list[Region]:
    """R-MAC regions of a ``height`` x ``width`` feature map, as the reference toolkit chooses them.

    Square regions of side floor(2 * min(H, W) / (l + 1)) at levels l = 1..L, l regions along the
    short side and l + extra along the long side, where the extra count (1..6) makes neighbouring
    regions overlap by about 40% (cirtorch after its Dec-2018 off-by-one fix).

    Returns:
        (top, left, height, width) tuples in feature-map cells, level by level, rows then columns.
    """
    if height < 1 or width < 1 or levels < 1:
        raise ValueError(f"rmac_regions needs positive sizes and levels, got {height}x{width}, L={levels}")
    return list(_regions(int(height), int(width), int(levels)))


def _regional_macs(x: torch.Tensor, regions: list[Region]) -> torch.Tensor:
    """L2-normalised max-pooled vector of every region: (B, R, C)."""
    return _l2n(_regional_maxes(x, regions))


def _regional_maxes(x: torch.Tensor, regions: list[Region]) -> torch.Tensor:
    """Max-pooled vector of every region, not normalised: (B, R, C)."""
    # Max is separable: reduce each distinct row band once, then only its column windows. The map
    # is laid out channels-last first, so every reduction takes elementwise maxima of contiguous
    # channel vectors (about ten times faster on a CPU than reducing strided cells). Maxima are
    # exact, so the layout changes no bit of the result.
    cells = x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, C)
    bands: dict[tuple[int, int], torch.Tensor] = {}
    vecs = []
    for t, s, h, w in regions:
        if (t, h) not in bands:
            bands[(t, h)] = cells[:, t : t + h].amax(dim=1)  # (B, W, C)
        vecs.append(bands[(t, h)][:, s : s + w].amax(dim=1))
    return torch.stack(vecs, dim=1)


def rmac(x: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """R-MAC (Tolias et al. 2016): global MAC plus every region's MAC, each L2-normalised, summed.

    Returns:
        The L2-normalised sum, (B, C) float32.
    """
    return _l2n(rmac_terms(x, levels).sum(dim=1))


def rmac_terms(x: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """The additive parts of R-MAC before its final normalisation: ``rmac(x) == L2norm(terms.sum(1))``.

    Returns:
        (B, 1 + R, C) float32: row 0 the L2-normalised global MAC, row 1 + r the L2-normalised MAC of
        region ``rmac_regions(H, W, levels)[r]``. Because a score between two R-MAC vectors is a dot
        product of these sums, it splits exactly into region-pair terms (see retrieval/explain.py).
    """
    x = _check_map(x)
    regional = _regional_macs(x, rmac_regions(x.shape[-2], x.shape[-1], levels))
    return torch.cat([_l2n(x.amax(dim=(2, 3)))[:, None], regional], dim=1)


def _prepare_saliency(saliency: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Saliency as (B, H, W) float32 in [0, 1] at the feature map's resolution."""
    s = saliency.float()
    if s.dim() == 3:
        s = s.unsqueeze(1)
    if s.dim() != 4 or s.shape[1] != 1:
        raise ValueError(f"expected saliency of shape (B, 1, h, w) or (B, h, w), got {tuple(saliency.shape)}")
    if s.shape[-2:] != (height, width):
        # Area averaging keeps a shrunk mask's mean exact; bilinear is the sane choice for upsampling.
        if s.shape[-2] >= height and s.shape[-1] >= width:
            s = F.interpolate(s, size=(height, width), mode="area")
        else:
            s = F.interpolate(s, size=(height, width), mode="bilinear", align_corners=False)
    return s[:, 0].clamp(0.0, 1.0)


def _region_weights(
    s: torch.Tensor, regions: list[Region], keep_ratio: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-region weights and kept mask (B, R), and the saliency actually applied (B, H, W).

    An image whose saliency is (nearly) zero everywhere carries no information about where the
    product is, so it falls back to an all-ones saliency, i.e. to plain R-MAC.
    """
    weights = torch.stack([s[:, t : t + h, l : l + w].mean(dim=(1, 2)) for t, l, h, w in regions], dim=1)
    empty = weights.amax(dim=1) <= eps
    if bool(empty.any()):
        log.debug("saliency is empty for %d image(s); falling back to R-MAC", int(empty.sum()))
        s = torch.where(empty[:, None, None], torch.ones_like(s), s)
        weights = torch.where(empty[:, None], torch.ones_like(weights), weights)
    kept = weights >= keep_ratio * weights.amax(dim=1, keepdim=True)
    return weights, kept, s


def srmac(
    x: torch.Tensor,
    saliency: torch.Tensor,
    levels: int = 3,
    keep_ratio: float = 0.5,
    eps: float = EPS,
) -> torch.Tensor:
    """SR-MAC: saliency-based R-MAC (Wang et al. 2020), the product's retrieval feature.

    Rule: ``saliency`` ((B, 1, h, w) or (B, h, w), values in [0, 1], any resolution) is resized to
    the map's (H, W) (area averaging when shrinking, bilinear otherwise). For every R-MAC region r,
    w_r = mean saliency inside r. Regions with w_r < keep_ratio * max_r(w_r) are dropped, so
    background regions do not contribute; each kept region's L2-normalised MAC vector is multiplied
    by w_r. The global term is the L2-normalised MAC of the saliency-weighted map x * s. Everything
    is summed and L2-normalised. With an all-ones saliency this equals :func:`rmac`. An image whose
    saliency is all zero (max_r w_r <= eps) is treated as all ones, i.e. it gets plain R-MAC.

    Returns:
        (B, C) float32, L2-normalised.
    """
    return _l2n(srmac_terms(x, saliency, levels, keep_ratio, eps).sum(dim=1))


def srmac_terms(
    x: torch.Tensor,
    saliency: torch.Tensor,
    levels: int = 3,
    keep_ratio: float = 0.5,
    eps: float = EPS,
    *,
    regional_macs: torch.Tensor | None = None,
) -> torch.Tensor:
    """The additive parts of SR-MAC before its final normalisation: ``srmac(x, s) == L2norm(terms.sum(1))``.

    Args:
        regional_macs: ``_regional_macs(x, rmac_regions(H, W, levels))`` when the caller has it
            (:func:`pool_several` shares it with R-MAC).

    Returns:
        (B, 1 + R, C) float32: row 0 the L2-normalised MAC of the saliency-weighted map, row 1 + r
        region r's L2-normalised MAC times its weight w_r, or zeros where the region was dropped
        (regions in :func:`rmac_regions` order).
    """
    x = _check_map(x)
    if saliency.shape[0] != x.shape[0]:
        raise ValueError(f"saliency batch {saliency.shape[0]} does not match feature batch {x.shape[0]}")
    h, w = x.shape[-2:]
    regions = rmac_regions(h, w, levels)
    weights, kept, s = _region_weights(_prepare_saliency(saliency, h, w), regions, keep_ratio, eps)
    if regional_macs is None:
        regional_macs = _regional_macs(x, regions)
    regional = regional_macs * (weights * kept)[..., None]
    global_term = _l2n((x * s[:, None]).amax(dim=(2, 3)))
    return torch.cat([global_term[:, None], regional], dim=1)


def srmac_region_weights(
    saliency: torch.Tensor, height: int, width: int, levels: int = 3, keep_ratio: float = 0.5,
    eps: float = EPS,
) -> list[list[tuple[int, int, int, int, float, bool]]]:
    """The regions SR-MAC uses for each image, with their weights, for drawing them.

    Returns:
        Per batch item, a list of (top, left, height, width, weight, kept) in feature-map cells.
        Weights are those actually applied, so an empty saliency shows every region kept at 1.0.
    """
    regions = rmac_regions(height, width, levels)
    weights, kept, _ = _region_weights(_prepare_saliency(saliency, height, width), regions, keep_ratio, eps)
    return [
        [(*r, float(wt), bool(k)) for r, wt, k in zip(regions, ws.tolist(), ks.tolist())]
        for ws, ks in zip(weights, kept)
    ]


def activation_attention(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Unsupervised attention of RA-MAC / GR-MAC: channel sum of the non-negative activations.

    Min-max normalised per image to [0, 1]; a flat map (no contrast) gives zeros.

    Returns:
        (B, 1, H, W) float32.
    """
    a = _check_map(x).clamp(min=0.0).sum(dim=1, keepdim=True)
    lo = a.amin(dim=(2, 3), keepdim=True)
    hi = a.amax(dim=(2, 3), keepdim=True)
    return torch.where(hi - lo > eps, (a - lo) / (hi - lo).clamp(min=eps), torch.zeros_like(a))


def ramac(x: torch.Tensor, levels: int = 3, keep_ratio: float = 0.5) -> torch.Tensor:
    """RA-MAC: the SR-MAC region rule driven by :func:`activation_attention` instead of saliency."""
    return srmac(x, activation_attention(x), levels=levels, keep_ratio=keep_ratio)


def _required_saliency(saliency: torch.Tensor | None) -> torch.Tensor:
    """The saliency map SR-MAC needs, or one clear error when there is none."""
    if saliency is None:
        raise ValueError("srmac pooling needs a saliency map; use a model with a saliency branch or pass one")
    return saliency


def _srmac_entry(x: torch.Tensor, saliency: torch.Tensor | None = None) -> torch.Tensor:
    saliency = _required_saliency(saliency)
    return srmac(x, saliency)


def _ignoring_saliency(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    def pool(x: torch.Tensor, saliency: torch.Tensor | None = None) -> torch.Tensor:
        return fn(x)

    pool.__name__ = fn.__name__
    pool.__doc__ = fn.__doc__
    return pool


def pool_several(x: torch.Tensor, saliency: torch.Tensor | None, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{name: POOLINGS[name](x, saliency)}`` for several poolings of one map, sharing their common work.

    MAC, R-MAC, RA-MAC and SR-MAC all take the global maximum or the R-MAC regions' maxima; here
    each is computed once (an index build stores four poolings per image). The vectors are the
    ones :data:`POOLINGS` gives, bit for bit.
    """
    x = _check_map(x)
    shared: dict[str, torch.Tensor] = {}

    def global_mac() -> torch.Tensor:
        if "mac" not in shared:
            shared["mac"] = _l2n(x.amax(dim=(2, 3)))
        return shared["mac"]

    def regional() -> torch.Tensor:
        if "regions" not in shared:
            shared["regions"] = _regional_macs(x, rmac_regions(x.shape[-2], x.shape[-1]))
        return shared["regions"]

    out = {}
    for name in names:
        if name == "mac":
            out[name] = global_mac()
        elif name == "rmac":
            out[name] = _l2n(torch.cat([global_mac()[:, None], regional()], dim=1).sum(dim=1))
        elif name == "srmac":
            out[name] = _l2n(srmac_terms(x, _required_saliency(saliency), regional_macs=regional()).sum(dim=1))
        elif name == "ramac":
            out[name] = _l2n(srmac_terms(x, activation_attention(x), regional_macs=regional()).sum(dim=1))
        else:
            out[name] = POOLINGS[name](x, saliency)
    return out


POOLINGS: dict[str, Callable[..., torch.Tensor]] = {
    "gap": _ignoring_saliency(gap),
    "mac": _ignoring_saliency(mac),
    "spoc": _ignoring_saliency(spoc),
    "gem": _ignoring_saliency(gem),
    "rmac": _ignoring_saliency(rmac),
    "ramac": _ignoring_saliency(ramac),
    "srmac": _srmac_entry,
}
"""Uniform ``f(x, saliency=None) -> (B, C)`` callables by name; only "srmac" uses the saliency."""


def _single_term(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def terms(x: torch.Tensor, saliency: torch.Tensor | None = None) -> torch.Tensor:
        return fn(x, saliency)[:, None]

    return terms


def _srmac_terms_entry(x: torch.Tensor, saliency: torch.Tensor | None = None) -> torch.Tensor:
    saliency = _required_saliency(saliency)
    return srmac_terms(x, saliency)


REGIONAL_POOLINGS = ("rmac", "ramac", "srmac")
"""Poolings whose vector is a sum over regions (their terms follow :func:`rmac_regions`, after a global row)."""

POOLING_TERMS: dict[str, Callable[..., torch.Tensor]] = {
    **{name: _single_term(fn) for name, fn in POOLINGS.items() if name not in REGIONAL_POOLINGS},
    "rmac": lambda x, saliency=None: rmac_terms(x),
    "ramac": lambda x, saliency=None: srmac_terms(x, activation_attention(x)),
    "srmac": _srmac_terms_entry,
}
"""``f(x, saliency=None) -> (B, T, C)`` by name, with ``POOLINGS[name](x, s) == L2norm(f(x, s).sum(1))``
(up to float rounding); a non-regional pooling has one term, its own vector."""
