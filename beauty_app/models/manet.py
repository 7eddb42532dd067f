"""MANet: a classification network with saliency- and text-attention branches (Wang et al. 2020).

backbone feature map F (B,C,h,w), and an earlier, finer map E (B,C',H/8,W/8) at stride 8
  -> saliency branch: S = sigmoid(head(E, F))  (B,1,H/8,W/8), where the product is
  -> text branch:     T = sigmoid(head(E, F))  (B,1,H/8,W/8), where printed text is
  -> re-weighted features  F' = F * (1 + pool(S) + pool(T))   (pool: area average onto F's grid;
                    residual attention: a map can only add emphasis, so an untrained branch never
                    erases the backbone)
  -> global average pooling -> dropout -> linear classifier (the 44 Perfect-30K categories)
                                       -> linear title head (optional: multi-label logits over the
                                          title n-grams of :mod:`beauty_app.training.titles`)

F' is the retrieval feature map (its GAP is the paper's "last pooling layer" feature) and S drives
SR-MAC (which pools S onto F's grid itself). With ``retrieval_attention="saliency"`` the index pools
F * (1 + pool(S)) instead, and T re-weights only what the classifier and title heads see (an ablation
of the instance recipe: it scored +0.035 to +0.07 MAP@7 after 500 iterations and the same as F' after
its default 1000; docs/benchmarks.md, issue 18). Either branch can be switched off for the Table A1
ablations, and the saliency can come from outside ("MANet with DSS": a mask from a separate
saliency detector instead of the branch).

Attention heads (:data:`ATTENTION_HEADS`, recorded in checkpoints):

* ``"fine"`` (the default): each branch fuses the stride-8 map E (a lateral 1x1 convolution) with F
  (1x1, upsampled: what the product is) and predicts the map at stride 8, so it can follow a
  product's outline and a label's lines (a 224 px input gives 28x28 maps, not 7x7).
* ``"coarse"``: each branch reads F alone and predicts at F's resolution (stride 32 for
  EfficientNet-Lite0 and ResNet50). Checkpoints written before the fine head existed have this head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ATTENTIONS, DEFAULT_RETRIEVAL_ATTENTION, RETRIEVAL_ATTENTIONS, parse_attention  # noqa: F401 (re-exported)
from .backbones import BackboneInfo, build_backbone

#: Attention heads a MANet can have (see the module docstring).
ATTENTION_HEADS = ("fine", "coarse")
DEFAULT_ATTENTION_HEAD = "fine"
#: The head of checkpoints that do not name one (all written before the fine head existed).
LEGACY_ATTENTION_HEAD = "coarse"


class AttentionBranch(nn.Module):
    """The coarse head: a small convolutional head on the final feature map, one attention logit map."""

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


class FineAttentionBranch(nn.Module):
    """The fine head: the stride-8 map fused with the upsampled final map, one logit map at stride 8.

    Top-down fusion as in a feature pyramid: the final map says what is a product (semantics), the
    earlier map where its edges and strokes are (resolution).
    """

    def __init__(self, fine_channels: int, coarse_channels: int, hidden: int = 64):
        super().__init__()
        self.lateral = nn.Sequential(nn.Conv2d(fine_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden))
        self.top_down = nn.Sequential(nn.Conv2d(coarse_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden))
        self.body = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, kernel_size=1),
        )

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        top = F.interpolate(self.top_down(coarse), size=_grid(fine), mode="bilinear", align_corners=False)
        return self.body(self.lateral(fine) + top)


def scale_gradient(tensor: torch.Tensor, scale: float) -> torch.Tensor:
    """`tensor` unchanged in the forward pass, its gradient multiplied by `scale` in the backward pass."""
    if scale == 1.0:
        return tensor
    detached = tensor.detach()
    return detached if scale == 0.0 else detached + scale * (tensor - detached)


def _grid(tensor: torch.Tensor) -> tuple[int, int]:
    """A feature map's (H, W) as plain ints: an exported graph (ONNX, traced at a fixed input size)
    then holds constant sizes, which its resize and adaptive-pooling operators require."""
    return int(tensor.shape[-2]), int(tensor.shape[-1])


def pool_to(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An attention map (B,1,h,w) averaged (or, when it is coarser, interpolated) onto a (H,W) grid."""
    if tuple(attention.shape[-2:]) == tuple(size):
        return attention
    height, width = _grid(attention)
    if height % size[0] == 0 and width % size[1] == 0:
        # The usual case (a stride-8 map onto the stride-32 grid): a plain average pool equals the
        # adaptive one here and, unlike it, exports to ONNX with a dynamic batch.
        return F.avg_pool2d(attention, (height // size[0], width // size[1]))
    if height >= size[0] and width >= size[1]:
        return F.adaptive_avg_pool2d(attention, size)
    return F.interpolate(attention, size=size, mode="bilinear", align_corners=False)


@dataclass
class MANetOutput:
    """Everything one forward pass gives: retrieval features, attention maps and class logits.

    `saliency` / `text` are probabilities in [0,1] at the attention head's resolution (B,1,h,w):
    stride 8 for the fine head, the feature map's for the coarse head (:func:`pool_to` gives the
    feature grid); the `*_logits` are the same before the sigmoid (for numerically stable losses).
    Maps that are switched off are None. Use :func:`upsample_map` for input resolution.
    """

    features: torch.Tensor
    logits: torch.Tensor | None
    saliency: torch.Tensor | None
    text: torch.Tensor | None
    saliency_logits: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None
    title_logits: torch.Tensor | None = None  # (B, num_titles) multi-label logits; None without a title head
    # What the classifier and title heads read when it differs from `features` (retrieval_attention
    # "saliency" with a text branch); None: they read `features`.
    head_features: torch.Tensor | None = None


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
        attention_head: ``"fine"`` (stride-8 maps fused from an earlier stage) or ``"coarse"``
            (maps at the final feature map's resolution; checkpoints from before the fine head).
        num_titles: size of the multi-label title head on the pooled feature; 0 builds none.
        retrieval_attention: which maps re-weight the retrieval features (:data:`RETRIEVAL_ATTENTIONS`).
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
        attention_head: str = DEFAULT_ATTENTION_HEAD,
        num_titles: int = 0,
        retrieval_attention: str = DEFAULT_RETRIEVAL_ATTENTION,
    ):
        super().__init__()
        if attention_head not in ATTENTION_HEADS:
            raise ValueError(f"unknown attention head {attention_head!r}; choose {' or '.join(ATTENTION_HEADS)}")
        if retrieval_attention not in RETRIEVAL_ATTENTIONS:
            raise ValueError(f"unknown retrieval attention {retrieval_attention!r}; "
                             f"choose {' or '.join(RETRIEVAL_ATTENTIONS)}")
        self.retrieval_attention = retrieval_attention
        self.backbone_name = backbone
        self.attention = parse_attention(attention)
        self.external_saliency = bool(external_saliency)
        self.attention_head = attention_head
        self.backbone = build_backbone(backbone, pretrained=pretrained, allow_download=allow_download)
        channels = self.info.out_channels

        def branch() -> nn.Module:
            if attention_head == "fine":
                return FineAttentionBranch(self.info.fine_channels, channels)
            return AttentionBranch(channels)

        learn_saliency = "saliency" in self.attention and not self.external_saliency
        self.saliency_branch = branch() if learn_saliency else None
        self.text_branch = branch() if "text" in self.attention else None
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes) if num_classes > 0 else None
        self.num_titles = int(num_titles)
        self.title_head = nn.Linear(channels, self.num_titles) if self.num_titles > 0 else None
        #: Share of the attention branches' gradient that reaches the backbone while training (1: all,
        #: as in the paper; 0: the maps learn on the backbone's features without reshaping them, so the
        #: map losses do not compete with the retrieval objective for the backbone). Training only.
        self.map_gradient = 1.0
        if self.title_head is not None:
            # Start every title at probability 1/num_titles: the multi-label loss then begins near
            # log(num_titles), the scale of the category cross-entropy, instead of being swamped by
            # thousands of confident-at-0.5 negatives.
            nn.init.constant_(self.title_head.bias, -math.log(max(self.num_titles - 1, 1)))

    @property
    def info(self) -> BackboneInfo:
        return self.backbone.info

    @property
    def feature_dim(self) -> int:
        return self.info.out_channels

    def forward_features(self, images: torch.Tensor, saliency: torch.Tensor | None = None, *,
                         head_input: bool = False) -> MANetOutput:
        """Backbone + attention branches; returns re-weighted features and the maps (no logits).

        Args:
            images: normalised (B,3,H,W) batch.
            saliency: (B,1,H',W') external saliency in [0,1], required when the model was built
                with `external_saliency=True` and ignored otherwise.
            head_input: also give the heads' input as `head_features` where it differs from
                `features` (:meth:`forward` asks; indexing needs only the retrieval features).
        """
        # Only a fine head needs the earlier map; the others keep the plain (cheaper to trace) forward.
        uses_fine = self.attention_head == "fine" and (self.saliency_branch is not None or self.text_branch is not None)
        if uses_fine:
            fine, features = self.backbone.forward_levels(images)
        else:
            fine, features = None, self.backbone(images)
        size = _grid(features)

        def predict(branch: nn.Module) -> torch.Tensor:
            coarse = scale_gradient(features, self.map_gradient)
            return branch(scale_gradient(fine, self.map_gradient), coarse) if uses_fine else branch(coarse)

        weight = head_weight = None
        saliency_map = saliency_logits = text_map = text_logits = None
        if "saliency" in self.attention:
            if self.external_saliency:
                if saliency is None:
                    raise ValueError("this MANet uses external saliency masks; pass `saliency`")
                saliency_map = F.interpolate(saliency.float(), size=size, mode="area").clamp(0, 1)
                saliency_map = saliency_map.to(features.dtype)
            else:
                saliency_logits = predict(self.saliency_branch)
                saliency_map = torch.sigmoid(saliency_logits)
            weight = pool_to(saliency_map, size)
        if self.text_branch is not None:
            text_logits = predict(self.text_branch)
            text_map = torch.sigmoid(text_logits)
            with_text = pool_to(text_map, size) if weight is None else weight + pool_to(text_map, size)
            if self.retrieval_attention == DEFAULT_RETRIEVAL_ATTENTION:
                weight = with_text
            elif head_input:
                head_weight = with_text
        head_features = None if head_weight is None else features * (1.0 + head_weight)
        if weight is not None:
            features = features * (1.0 + weight)
        return MANetOutput(features, None, saliency_map, text_map, saliency_logits, text_logits,
                           head_features=head_features)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor | None:
        """Classifier logits from a (re-weighted) feature map, or None without a classifier."""
        if self.classifier is None:
            return None
        pooled = features.float().mean(dim=(2, 3))
        return self.classifier(self.dropout(pooled).to(self.classifier.weight.dtype))

    def forward_titles(self, features: torch.Tensor) -> torch.Tensor | None:
        """Multi-label title logits from a (re-weighted) feature map, or None without a title head."""
        if self.title_head is None:
            return None
        pooled = features.float().mean(dim=(2, 3))
        return self.title_head(self.dropout(pooled).to(self.title_head.weight.dtype))

    def forward(self, images: torch.Tensor, saliency: torch.Tensor | None = None) -> MANetOutput:
        out = self.forward_features(images, saliency, head_input=True)
        head_input = out.features if out.head_features is None else out.head_features
        out.logits = self.forward_head(head_input)
        out.title_logits = self.forward_titles(head_input)
        return out

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part, for the two-stage schedule (saliency branch first, then all)."""
        groups = {
            "backbone": list(self.backbone.parameters()),
            "saliency": list(self.saliency_branch.parameters()) if self.saliency_branch is not None else [],
            "text": list(self.text_branch.parameters()) if self.text_branch is not None else [],
            "classifier": list(self.classifier.parameters()) if self.classifier is not None else [],
            "titles": list(self.title_head.parameters()) if self.title_head is not None else [],
        }
        return groups
