"""Which model to use when the user names none (torch-free, so the command line can ask cheaply)."""

from __future__ import annotations

from ..paths import demo_checkpoint

#: Pooling for a model with a saliency branch (the paper's SR-MAC) and for one without (RA-MAC).
SALIENCY_POOLING = "srmac"
PLAIN_POOLING = "ramac"


def default_model_spec() -> tuple[str, str]:
    """(model spec, pooling): the shipped MANet with SR-MAC, else the pretrained backbone with RA-MAC."""
    checkpoint = demo_checkpoint()
    if checkpoint.is_file():
        return str(checkpoint), SALIENCY_POOLING
    return "imagenet:efficientnet_lite0", PLAIN_POOLING


def default_pooling(has_saliency: bool) -> str:
    """The pooling a model suits when none is asked for: SR-MAC needs the saliency branch."""
    return SALIENCY_POOLING if has_saliency else PLAIN_POOLING
