"""Training settings with the paper's defaults (no torch import, so the CLI and GUI stay light)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..models.attention import parse_attention


@dataclass
class TrainConfig:
    """Every knob of a training run (saved in the checkpoint; defaults are the paper's)."""

    data: str = ""
    out: str = "model_store/manet.safetensors"
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None  # explicit ImageNet weight file for the backbone
    attention: str = "both"  # none | saliency | text | both
    external_saliency: bool = False  # "MANet with DSS": masks from the pseudo-mask generator as input
    iterations: int = 500  # stage 2 (end to end)
    stage1_iterations: int = 150  # at most; stops earlier when the saliency loss has converged
    batch_size: int = 16
    lr: float = 0.01
    final_lr: float = 1e-5
    momentum: float = 0.9
    weight_decay: float = 5e-4
    input_size: int = 224
    saliency_weight: float = 1.0
    text_weight: float = 1.0
    photo_probability: float = 0.5  # share of synthetic "real photo" samples
    workers: int = 2
    checkpoint_every: int = 100
    validate_every: int = 0  # 0 = only at the end
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    mask_marks: str | None = None  # annotator CSV: id,map,mark (maps marked "wrong" are not supervised)

    @property
    def attention_names(self) -> tuple[str, ...]:
        return parse_attention(self.attention)

    @property
    def two_stage(self) -> bool:
        return "saliency" in self.attention_names and not self.external_saliency


def resume_path_for(out: str | os.PathLike) -> Path:
    """Where a run writing checkpoint `out` keeps its resumable state (``<out>.resume``)."""
    out = Path(out)
    return out.with_name(out.name + ".resume")
