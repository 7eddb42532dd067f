"""MANet: a classification network with saliency- and text-attention branches (Wang et al. 2020).

backbone feature map F (B,C,h,w)
  -> saliency branch: S = sigmoid(conv(F))  (B,1,h,w), where the product is
  -> text branch:     T = sigmoid(conv(F))  (B,1,h,w), where printed text is
  -> re-weighted features  F' = F * (1 + S + T)   (residual attention: a map can only add emphasis,
                                                   so an untrained branch never erases the backbone)
  -> global average pooling -> dropout -> linear classifier (the 44 Perfect-30K categories)

F' is the retrieval feature map (its GAP is the paper's "last pooling layer" feature) and S drives
SR-MAC. Either branch can be switched off for the Table A1 ablations, and the saliency can come
from outside ("MANet with DSS": a mask from a separate saliency detector instead of the branch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ATTENTIONS, parse_attention  # noqa: F401 (re-exported)
from .backbones import BackboneInfo, build_backbone

class AttentionBranch(nn.Module):
    """A small convolutional head that predicts a one-channel spatial attention logit map."""

    def __init__(self, in_channels: int, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, kernel_size=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


@dataclass
class MANetOutput:
    """Everything one forward pass gives: retrieval features, attention maps and class logits.

    `saliency` / `text` are probabilities in [0,1] at feature resolution (B,1,h,w); the
    `*_logits` are the same before the sigmoid (for numerically stable losses). Maps that are
    switched off are None. Use :func:`upsample_map` for input resolution.
    """

    features: torch.Tensor
    logits: torch.Tensor | None
    saliency: torch.Tensor | None
    text: torch.Tensor | None
    saliency_logits: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None


def upsample_map(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a (B,1,h,w) attention map to `size` (H,W), clamped to [0,1]."""
    return F.interpolate(attention.float(), size=size, mode="bilinear", align_corners=False).clamp_(0, 1)


class MANet(nn.Module):
    """Multi-attention network.

    Args:
        backbone: registry name (see :mod:`beauty_app.models.backbones`).
        num_classes: number of categories; 0 builds no classifier (off-the-shelf feature extractor).
        attention: which branches exist: any of "saliency", "text" (or "none"/"both").
        pretrained: passed to the backbone builder (True, False or a weight file).
        external_saliency: the saliency map is given to :meth:`forward` instead of predicted.
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        attention: str | tuple[str, ...] = "both",
        pretrained: bool | str = False,
        external_saliency: bool = False,
        dropout: float = 0.2,
        allow_download: bool = True,
    ):
        super().__init__()
        self.backbone_name = backbone
        self.attention = parse_attention(attention)
        self.external_saliency = bool(external_saliency)
        self.backbone = build_backbone(backbone, pretrained=pretrained, allow_download=allow_download)
        channels = self.info.out_channels
        learn_saliency = "saliency" in self.attention and not self.external_saliency
        self.saliency_branch = AttentionBranch(channels) if learn_saliency else None
        self.text_branch = AttentionBranch(channels) if "text" in self.attention else None
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes) if num_classes > 0 else None

    @property
    def info(self) -> BackboneInfo:
        return self.backbone.info

    @property
    def feature_dim(self) -> int:
        return self.info.out_channels

    def forward_features(self, images: torch.Tensor, saliency: torch.Tensor | None = None) -> MANetOutput:
        """Backbone + attention branches; returns re-weighted features and the maps (no logits).

        Args:
            images: normalised (B,3,H,W) batch.
            saliency: (B,1,H',W') external saliency in [0,1], required when the model was built
                with `external_saliency=True` and ignored otherwise.
        """
        features = self.backbone(images)
        size = features.shape[-2:]
        weight = None
        saliency_map = saliency_logits = text_map = text_logits = None
        if "saliency" in self.attention:
            if self.external_saliency:
                if saliency is None:
                    raise ValueError("this MANet uses external saliency masks; pass `saliency`")
                saliency_map = F.interpolate(saliency.float(), size=size, mode="area").clamp(0, 1)
                saliency_map = saliency_map.to(features.dtype)
            else:
                saliency_logits = self.saliency_branch(features)
                saliency_map = torch.sigmoid(saliency_logits)
            weight = saliency_map
        if self.text_branch is not None:
            text_logits = self.text_branch(features)
            text_map = torch.sigmoid(text_logits)
            weight = text_map if weight is None else weight + text_map
        if weight is not None:
            features = features * (1.0 + weight)
        return MANetOutput(features, None, saliency_map, text_map, saliency_logits, text_logits)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor | None:
        """Classifier logits from a (re-weighted) feature map, or None without a classifier."""
        if self.classifier is None:
            return None
        pooled = features.float().mean(dim=(2, 3))
        return self.classifier(self.dropout(pooled).to(self.classifier.weight.dtype))

    def forward(self, images: torch.Tensor, saliency: torch.Tensor | None = None) -> MANetOutput:
        out = self.forward_features(images, saliency)
        out.logits = self.forward_head(out.features)
        return out

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part, for the two-stage schedule (saliency branch first, then all)."""
        groups = {
            "backbone": list(self.backbone.parameters()),
            "saliency": list(self.saliency_branch.parameters()) if self.saliency_branch is not None else [],
            "text": list(self.text_branch.parameters()) if self.text_branch is not None else [],
            "classifier": list(self.classifier.parameters()) if self.classifier is not None else [],
        }
        return groups
