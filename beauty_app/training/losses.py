"""Training losses: categories, title labels, attention-map supervision and the instance-level metric loss.

The category loss counts only images that have a category (label -1: kept for its title labels
only); the title loss is a multi-label binary cross-entropy over the title n-grams.

The instance loss treats every catalog image (or product, where the rows carry a product id) as
its own identity. A batch holds a synthetic "photo" and a catalog view of each identity; the
retrieval vectors of the two (exactly what the index stores, e.g. SR-MAC of F') are pulled
together and pushed away from every other identity in the batch by a symmetric InfoNCE
(photo -> catalog and catalog -> photo), optionally with a memory of earlier batches' catalog
vectors as extra negatives (cross-batch memory, Wang et al. 2020 "XBM").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def attention_loss(logits: torch.Tensor | None, target: torch.Tensor, valid: torch.Tensor,
                   dice_weight: float = 0.0) -> torch.Tensor | None:
    """BCE between an attention logit map (B,1,h,w) and a mask target pooled to h x w, valid samples only.

    With ``dice_weight`` > 0 a soft Dice term is added per sample. Pixel-averaged BCE lets a map whose
    positives are rare (text lines: a tenth of a photo) stay faint and spread; Dice scores the overlap
    of the map with the mask as a whole, which keeps the map's mass on the mask (as text detectors
    such as DB pair the two).
    """
    if logits is None or valid.sum() == 0:
        return None
    pooled = F.adaptive_avg_pool2d(target, logits.shape[-2:])
    per_sample = F.binary_cross_entropy_with_logits(logits.float(), pooled, reduction="none").mean(dim=(1, 2, 3))
    if dice_weight > 0:
        probs = torch.sigmoid(logits.float())
        overlap = (probs * pooled).sum(dim=(1, 2, 3))
        dice = 1.0 - (2.0 * overlap + 1.0) / (probs.sum(dim=(1, 2, 3)) + pooled.sum(dim=(1, 2, 3)) + 1.0)
        per_sample = per_sample + dice_weight * dice
    return (per_sample * valid).sum() / valid.sum()


def category_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the images with a category; images labelled -1 are ignored.

    A batch without any category gives 0, still in the graph (under DDP every parameter, the
    classifier too, must receive a gradient in every step).
    """
    if not bool((labels >= 0).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=-1)


def title_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE-with-logits over the title labels, summed and divided by the positives in the batch.

    Normalising by the positives (as RetinaNet does for its anchors) keeps the loss on one scale
    whether the vocabulary has 30 labels or 3,000, where a plain mean over every (image, label)
    would shrink with the vocabulary.

    Args:
        logits: (B, T) title logits.
        targets: (B, T) multi-hot targets (1 where the image's description holds the title).
    """
    targets = targets.float()
    total = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="sum")
    return total / targets.sum().clamp(min=1.0)


def _multi_positive_nce(similarity: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """-log(sum of exp over positives / sum of exp over all), averaged over rows (logits already scaled)."""
    log_all = torch.logsumexp(similarity, dim=1)
    log_pos = torch.logsumexp(similarity.masked_fill(~positives, float("-inf")), dim=1)
    return (log_all - log_pos).mean()


def symmetric_info_nce(photos: torch.Tensor, catalog: torch.Tensor, identities: torch.Tensor,
                       temperature: torch.Tensor | float, memory: tuple[torch.Tensor, torch.Tensor] | None = None,
                       ) -> torch.Tensor:
    """Symmetric InfoNCE between photo and catalog vectors of the same identities.

    Args:
        photos: (B, D) L2-normalised retrieval vectors of the "photos".
        catalog: (B, D) L2-normalised retrieval vectors of the catalog views, row i the same
            identity as ``photos[i]``.
        identities: (B,) integer identity of each row; rows that share an identity (two images of
            one product) count as positives of each other, not as negatives.
        temperature: softmax temperature (a float or a scalar tensor, e.g. a learned one).
        memory: optional (vectors (M, D), identities (M,)) of earlier catalog views, used as extra
            keys for the photo -> catalog direction.

    Returns:
        Scalar loss: the mean of the photo -> catalog and catalog -> photo cross-entropies.
    """
    if photos.shape != catalog.shape or photos.shape[0] != identities.shape[0]:
        raise ValueError(f"photos {tuple(photos.shape)}, catalog {tuple(catalog.shape)} and identities "
                         f"{tuple(identities.shape)} do not match")
    photos, catalog = photos.float(), catalog.float()
    keys, key_ids = catalog, identities
    if memory is not None and memory[0].shape[0] > 0:
        keys = torch.cat([catalog, memory[0].to(catalog)], dim=0)
        key_ids = torch.cat([identities, memory[1].to(identities)], dim=0)
    to_catalog = photos @ keys.T / temperature
    to_photos = catalog @ photos.T / temperature
    same = identities[:, None] == identities[None, :]
    forward = _multi_positive_nce(to_catalog, identities[:, None] == key_ids[None, :])
    backward = _multi_positive_nce(to_photos, same)
    return 0.5 * (forward + backward)


class Temperature(nn.Module):
    """InfoNCE temperature, fixed or learned (kept as a log so it stays positive; clamped to [0.01, 1])."""

    def __init__(self, initial: float = 0.05, learnable: bool = False):
        super().__init__()
        if not 0.0 < initial <= 1.0:
            raise ValueError(f"the temperature must be in (0, 1], got {initial}")
        log_t = torch.tensor(math.log(initial))
        if learnable:
            self.log_t = nn.Parameter(log_t)
        else:
            self.register_buffer("log_t", log_t)

    def forward(self) -> torch.Tensor:
        return self.log_t.exp().clamp(0.01, 1.0)


class CrossBatchMemory:
    """First-in first-out memory of detached catalog vectors and their identities (extra negatives).

    Vectors of a slowly changing network are nearly as good as fresh ones (the "slow drift" that
    cross-batch memory relies on), so a memory of a few batches adds negatives for free.
    """

    def __init__(self, size: int):
        self.size = int(size)
        self.vectors: torch.Tensor | None = None
        self.identities: torch.Tensor | None = None

    def contents(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(vectors, identities) held so far, or None while empty or disabled."""
        if self.size <= 0 or self.vectors is None:
            return None
        return self.vectors, self.identities

    def add(self, vectors: torch.Tensor, identities: torch.Tensor) -> None:
        """Remember a batch (newest last), dropping the oldest rows beyond ``size``."""
        if self.size <= 0:
            return
        vectors, identities = vectors.detach().float(), identities.detach()
        if self.vectors is not None:
            vectors = torch.cat([self.vectors, vectors], dim=0)
            identities = torch.cat([self.identities, identities], dim=0)
        self.vectors, self.identities = vectors[-self.size:], identities[-self.size:]
