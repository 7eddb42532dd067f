"""Why this match: a result's score split into the contributions of (query region x catalog region) pairs.

An R-MAC / SR-MAC vector is a normalised sum of region terms (:func:`pooling.srmac_terms`):
``q = (sum_i q_i) / |sum_i q_i|`` and ``c = (sum_j c_j) / |sum_j c_j|``. Multi-scale extraction sums
such vectors and normalises again, which only rescales the terms. The score is a dot product, so

    score = <q, c> = sum_ij <q_i, c_j> / (|q| |c|)

exactly: every pair's term is its contribution, and the contributions add up to the score.

PCA whitening (``x -> normalise(P (x - mu))``) keeps the split exact because it is affine: each
term maps to ``P q_i`` and the mean adds one constant part ``-P mu`` per image. Its pairs with the
regions (and with each other) are reported as "whitening offset" contributions, not dropped, so the
sum still equals the score. What is *not* covered: query expansion (the expanded query is a blend
of other catalog vectors; the explanation is of the plain query's score) and approximate search
structures (IVF/PQ scores are approximations of the exact score explained here). The catalog image
is recomputed from its file, so with bf16 autocast its vector can differ from the stored one in
the third decimal; :attr:`MatchExplanation.stored_score` (exact, from the stored vectors) shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..imaging import load_image
from . import pooling as pooling_ops
from .extractor import DECODE_MAX_SIDE, FeatureExtractor
from .index.whitening import PCAWhitening

log = logging.getLogger(__name__)

#: A term whose box covers at least this share of the photo is "the whole photo": described, not drawn.
WHOLE_IMAGE_SHARE = 0.85
#: Index used for an image's whitening offset in pair tuples (it has no region).
OFFSET = -1


@dataclass
class RegionTerm:
    """One additive part of an image's retrieval vector."""

    box: tuple[int, int, int, int]  # left, top, width, height in decoded-image pixels, clipped to the image
    label: str  # "whole photo (saliency-weighted)", "region 3 of level 2", ...
    weight: float  # the saliency weight SR-MAC gave the region (1 for R-MAC and the global term)
    scale: float
    whole_image: bool  # covers (nearly) the whole photo: named in the text, not drawn as a box


@dataclass
class ImageTerms:
    """An image's search-space vector as ``parts.sum(0) + offset`` (float64), with the region of each part."""

    terms: list[RegionTerm]
    parts: np.ndarray  # (T, D)
    offset: np.ndarray  # (D,) the whitening mean's share; zeros without whitening
    image_size: tuple[int, int]  # (width, height)

    @property
    def vector(self) -> np.ndarray:
        return self.parts.sum(axis=0) + self.offset


@dataclass
class PairContribution:
    """One (query term, catalog term) pair's part of the score; OFFSET stands for a whitening offset."""

    query: int
    catalog: int
    value: float
    share: float  # value / score (negative for a pair that lowers the score)


@dataclass
class MatchExplanation:
    """A result's score and the pair contributions that add up to it."""

    pooling: str
    query: ImageTerms
    catalog: ImageTerms
    contributions: np.ndarray  # (Tq + 1, Tc + 1): last row / column are the whitening offsets
    index_score: float | None = None  # the score the search returned
    stored_score: float | None = None  # exact score of the query against the catalog vector stored in the index
    whitened: bool = False
    notes: list[str] = field(default_factory=list)
    catalog_image: Image.Image | None = None  # the catalog file, decoded (not the thumbnail)

    @property
    def score(self) -> float:
        """The explained score: the sum of all contributions."""
        return float(self.contributions.sum())

    def pairs(self) -> list[PairContribution]:
        """Every pair with a non-zero contribution, largest first."""
        score = self.score
        rows, cols = self.contributions.shape
        out = []
        for i in range(rows):
            for j in range(cols):
                value = float(self.contributions[i, j])
                if value != 0.0:
                    out.append(PairContribution(i if i < rows - 1 else OFFSET, j if j < cols - 1 else OFFSET,
                                                value, value / score if score else 0.0))
        return sorted(out, key=lambda p: p.value, reverse=True)

    def top_pairs(self, n: int = 5) -> list[PairContribution]:
        """The `n` region pairs (whitening offsets left out) that add most to the score."""
        return [p for p in self.pairs() if p.query != OFFSET and p.catalog != OFFSET][:n]

    def region_totals(self, side: str) -> list[tuple[int, float]]:
        """(term index, contribution summed over the other image's terms) for "query" or "catalog", largest first.

        Where in one image the similarity comes from, whatever it matched on the other side.
        """
        regions = self.contributions[:-1, :] if side == "query" else self.contributions[:, :-1].T
        totals = regions.sum(axis=1)
        return sorted(((i, float(t)) for i, t in enumerate(totals)), key=lambda item: item[1], reverse=True)

    def offset_total(self) -> float:
        """What the whitening offsets add in all (zero without whitening)."""
        return float(self.contributions[-1, :].sum() + self.contributions[:-1, -1].sum())


def _clip_box(box: tuple[int, int, int, int], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    top, left, height, width = box
    right, bottom = min(left + width, image_size[0]), min(top + height, image_size[1])
    left, top = max(left, 0), max(top, 0)
    return left, top, max(right - left, 0), max(bottom - top, 0)


def _region_labels(feature_hw: tuple[int, int], levels: int = 3) -> list[tuple[tuple[int, int, int, int], str]]:
    """(cells, label) per R-MAC region, in :func:`pooling.rmac_regions` order (level by level)."""
    labels, done = [], 0
    for level in range(1, levels + 1):
        regions = pooling_ops.rmac_regions(*feature_hw, levels=level)
        labels += [(region, f"level-{level} region {number}")
                   for number, region in enumerate(regions[done:], start=1)]
        done = len(regions)
    return labels


def image_terms(extractor: FeatureExtractor, image: Image.Image, pooling: str | None = None,
                whitening: PCAWhitening | None = None) -> ImageTerms:
    """Decompose an image's search vector into region terms, exactly as `extractor` makes the vector.

    Args:
        pooling: the pooling to decompose (default the extractor's); regional poolings give one term per
            region and scale plus a global term, the others a single whole-image term.
        whitening: the index's whitening, applied as the search applies it (None: only normalised).
    """
    pooling = pooling or extractor.pooling
    terms_of = pooling_ops.POOLING_TERMS[pooling]
    width, height = image.size
    batch = extractor.to_tensor(image).unsqueeze(0)
    terms: list[RegionTerm] = []
    parts: list[np.ndarray] = []
    with torch.inference_mode():
        for scale, out in extractor.forward_scales(batch):
            features = out.features.float()
            saliency = out.saliency.float() if out.saliency is not None else None
            raw = terms_of(features, saliency)[0].double().cpu().numpy()  # (T, C)
            # Each scale's vector is L2-normalised with the pooling's epsilon before the scales are summed.
            if raw.shape[0] > 1:
                raw = raw / (np.linalg.norm(raw.sum(axis=0)) + pooling_ops.EPS)
            parts.append(raw)
            scale_note = f" at scale {scale:g}" if len(extractor.scales) > 1 else ""
            whole = RegionTerm((0, 0, width, height), "whole photo" + (" (saliency-weighted)" if pooling in (
                "srmac", "ramac") else "") + scale_note, 1.0, scale, True)
            terms.append(whole)
            if raw.shape[0] == 1:
                continue
            fh, fw = features.shape[-2:]
            weights = [1.0] * (raw.shape[0] - 1)
            if pooling in ("srmac", "ramac"):
                attention = saliency if pooling == "srmac" else pooling_ops.activation_attention(features)
                weights = [w if kept else 0.0 for *_, w, kept in
                           pooling_ops.srmac_region_weights(attention, fh, fw)[0]]
            for (cells, label), weight in zip(_region_labels((fh, fw)), weights):
                box = _clip_box(extractor.region_to_image(cells, (fh, fw), (width, height)), (width, height))
                whole_image = box[2] * box[3] >= WHOLE_IMAGE_SHARE * width * height
                terms.append(RegionTerm(box, label + scale_note + (" (whole photo)" if whole_image else ""),
                                        float(weight), scale, whole_image))
    stacked = np.concatenate(parts)
    # The scales' sum is normalised (F.normalize) into the stored raw vector ...
    stacked = stacked / max(np.linalg.norm(stacked.sum(axis=0)), 1e-12)
    offset = np.zeros(stacked.shape[1])
    # ... and the search normalises it again after the (affine) whitening.
    if whitening is not None:
        projection = whitening.projection.astype(np.float64)
        stacked = stacked @ projection.T
        offset = -(whitening.mean.astype(np.float64) @ projection.T)
    norm = max(np.linalg.norm(stacked.sum(axis=0) + offset), 1e-12)
    return ImageTerms(terms, stacked / norm, offset / norm, (width, height))


def explain_pair(extractor: FeatureExtractor, query_image: Image.Image, catalog_image: Image.Image,
                 pooling: str | None = None, whitening: PCAWhitening | None = None) -> MatchExplanation:
    """Split the score between two images into (query term x catalog term) contributions."""
    query = image_terms(extractor, query_image, pooling, whitening)
    catalog = image_terms(extractor, catalog_image, pooling, whitening)
    q = np.vstack([query.parts, query.offset[None]])
    c = np.vstack([catalog.parts, catalog.offset[None]])
    return MatchExplanation(pooling or extractor.pooling, query, catalog, q @ c.T, whitened=whitening is not None)


def explain_match(session, query_image: Image.Image, hit, pooling: str | None = None,
                  query_expansion: int = 0) -> MatchExplanation:
    """Why `hit` matched `query_image` in an open :class:`~beauty_app.retrieval.search.SearchSession`.

    The catalog image is decoded from its file at the size the index used (not the thumbnail) and
    returned in the explanation. The index's own pooling is explained with its whitening; another
    stored pooling (a ranking comparison) without, as that search does.
    """
    extractor = session.extractor
    own = pooling is None or pooling == extractor.pooling
    whitening = session.index.whitening() if own else None
    catalog_image = load_image(hit.path, max_side=DECODE_MAX_SIDE)
    explanation = explain_pair(extractor, query_image, catalog_image, pooling, whitening)
    explanation.catalog_image = catalog_image
    explanation.index_score = float(hit.score)
    query_vector = explanation.query.vector
    if own:
        stored = session.index.prepare_queries(session.index.raw_vectors([hit.id]))[0]
    else:
        stored = session.index.comparison_vectors([hit.id]).get(hit.id, {}).get(pooling)
        stored = None if stored is None else stored / max(np.linalg.norm(stored), 1e-12)
    if stored is not None:
        explanation.stored_score = float(np.dot(query_vector, stored))
    notes = explanation.notes
    if explanation.whitened:
        notes.append(f"The index whitens its vectors (PCA); the whitening mean adds "
                     f"{explanation.offset_total():+.3f} to the score, counted apart from the region pairs.")
    if own and query_expansion:
        notes.append(f"Query expansion ({query_expansion}) changed the search's query; this explains the score "
                     f"of the photo itself.")
    elif explanation.stored_score is not None and abs(explanation.stored_score - explanation.index_score) > 2e-3:
        notes.append(f"The search structure is approximate: it scored {explanation.index_score:.3f}, "
                     f"the exact score is {explanation.stored_score:.3f}.")
    if explanation.stored_score is not None and abs(explanation.stored_score - explanation.score) > 2e-3:
        notes.append(f"Recomputed from the catalog file, the score is {explanation.score:.3f} (stored vector: "
                     f"{explanation.stored_score:.3f}); reduced precision (bf16) makes the difference.")
    if explanation.pooling not in pooling_ops.REGIONAL_POOLINGS:
        notes.append(f"{explanation.pooling.upper()} pools the whole photo at once: there are no regions to split "
                     f"the score over.")
    return explanation


__all__ = ["ImageTerms", "MatchExplanation", "OFFSET", "PairContribution", "RegionTerm", "explain_match",
           "explain_pair", "image_terms"]
