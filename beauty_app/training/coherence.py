"""Visual coherence of proposed categories: a product kind looks alike, a proper name does not.

Text cannot tell a product kind from a proper name that ends many titles (a brand, a shade, a
person): :func:`category_coherence` measures how alike a category's images look to an
off-the-shelf backbone (:func:`backbone_embedder`) against random catalog images, and
:func:`drop_incoherent` removes the categories whose images look no more alike than chance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beauty_app.training.keywords import KeywordSet

MIN_COHERENCE = 0.1
"""Least :attr:`Coherence.score` a proposed category keeps: its images must look more alike than random ones."""
COHERENCE_IMAGES = 24
"""Images per category (and in the random baseline) whose features are compared."""

Embedder = Callable[[Sequence[Path]], np.ndarray]
"""Image files -> (n, d) L2-normalised feature vectors, one row per file in order."""


@dataclass(frozen=True)
class Coherence:
    """How alike a category's images look, against random catalog images.

    Attributes:
        images: Images compared.
        within: Mean pairwise cosine similarity of the category's images.
        baseline: Mean pairwise cosine similarity of random catalog images.
        score: ``(within - baseline) / (1 - baseline)``: 0 as alike as chance, 1 identical.
    """

    images: int
    within: float
    baseline: float
    score: float


def backbone_embedder(spec: str = "imagenet:efficientnet_lite0", *, input_size: int = 128,
                      device: str = "cpu", batch_size: int = 16) -> Embedder:
    """An :data:`Embedder` of global-average-pooled features of an (off-the-shelf) model.

    Args:
        spec: Model spec (``imagenet:<backbone>`` or a checkpoint path).
        input_size: Network input side; small suffices to compare shapes and colours.
        device: Where the network runs.
        batch_size: Images per forward pass.
    """
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.extractor import FeatureExtractor

    extractor = FeatureExtractor(load_model(spec, device=device), "gap", batch_size=batch_size,
                                 input_size=input_size, use_amp=False)

    def embed(paths: Sequence[Path]) -> np.ndarray:
        vectors, failures = extractor.extract_paths(paths)
        if failures:  # keep rows aligned with paths: an unreadable image compares as nothing
            failed = {str(item) for item, _ in failures}
            full = np.zeros((len(paths), vectors.shape[1]), np.float32)
            full[[i for i, p in enumerate(paths) if str(p) not in failed]] = vectors
            return full
        return vectors

    return embed


def _mean_pairwise_cosine(vectors: np.ndarray) -> float:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
    n = len(unit)
    if n < 2:
        return float("nan")
    gram = unit @ unit.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


def category_coherence(category_images: Mapping[str, Sequence[Path]], all_images: Sequence[Path],
                       embed: Embedder, *, per_category: int = COHERENCE_IMAGES, seed: int = 0,
                       ) -> dict[str, Coherence]:
    """Visual coherence of each category: how much more alike its images look than random ones.

    Args:
        category_images: Category -> the images its descriptions name (unambiguously).
        all_images: Every catalog image (the random baseline is drawn from them).
        embed: Feature function, e.g. :func:`backbone_embedder`.
        per_category: Most images compared per category and in the baseline (a seeded sample).
        seed: Seed of the samples.

    Returns:
        Category -> :class:`Coherence` (categories with fewer than two images are left out).
    """
    rng = np.random.default_rng(seed)

    def sample(paths: Sequence[Path]) -> list[Path]:
        if len(paths) <= per_category:
            return list(paths)
        return [paths[i] for i in sorted(rng.choice(len(paths), per_category, replace=False))]

    baseline = _mean_pairwise_cosine(embed(sample(list(all_images))))
    out: dict[str, Coherence] = {}
    for name, paths in category_images.items():
        chosen = sample(list(paths))
        if len(chosen) < 2:
            continue
        within = _mean_pairwise_cosine(embed(chosen))
        score = (within - baseline) / (1.0 - baseline) if baseline < 1.0 else 0.0
        out[name] = Coherence(len(chosen), within, baseline, float(score))
    return out


def drop_incoherent(keywords: KeywordSet, coherence: Mapping[str, Coherence],
                    min_score: float = MIN_COHERENCE) -> tuple[KeywordSet, list[str]]:
    """The keywords without the categories whose images look no more alike than ``min_score``.

    Returns:
        (kept keywords, names dropped); categories without a measurement are kept.
    """
    dropped = [name for name in keywords.categories
               if name in coherence and not coherence[name].score >= min_score]  # NaN scores drop too
    kept = KeywordSet({n: s for n, s in keywords.categories.items() if n not in dropped}, keywords.ignore)
    return kept, dropped
