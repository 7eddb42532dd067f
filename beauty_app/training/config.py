"""Training settings with the paper's defaults (no torch import, so the CLI and GUI stay light)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..models.attention import DEFAULT_RETRIEVAL_ATTENTION, parse_attention


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
    stage1_patience: int = 30  # converged: the smoothed saliency loss has not improved by 1% in this many steps
    stage1_min_iterations: int = 40  # ... and at least this many stage-1 steps have run
    batch_size: int = 16  # images per step over all processes (split across them under torchrun)
    per_device_batch: int = 0  # images per step and process; 0 = batch_size // processes
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
    # Objective (see RECIPES): category cross-entropy and the instance-level cross-domain InfoNCE on the
    # retrieval vector; the attention map losses are weighted by saliency_weight / text_weight.
    recipe: str = "paper"
    category_weight: float = 1.0
    instance_weight: float = 0.0  # > 0: batches of (photo, catalog view) pairs of the same image
    instance_pooling: str = "auto"  # the vector the index stores: auto = srmac with saliency, else rmac
    temperature: float = 0.05
    learn_temperature: bool = False
    instance_memory: int = 0  # catalog vectors of earlier batches kept as extra negatives (0 = none)
    # > 0 and the mined set has title labels: a multi-label title head on the pooled feature, trained with
    # BCE over the title n-grams (images without a category still teach it); 0 = no title head.
    title_weight: float = 0.0
    # Share of the attention map losses' gradient that reaches the backbone (1: all, the paper; 0: none).
    map_gradient: float = 1.0
    map_dice_weight: float = 0.0  # > 0: a soft Dice term next to each attention map's BCE (see losses.attention_loss)
    # Which attention maps re-weight the feature map the index pools (and the instance loss trains):
    # "all" (saliency and text, the paper's F') or "saliency" (the text map re-weights only the
    # classifier's and title head's input; see models.manet). An ablation: on the instance recipe's
    # default schedule both measured the same (docs/benchmarks.md, session 6).
    retrieval_attention: str = DEFAULT_RETRIEVAL_ATTENTION
    # Input side for queries and catalog images of the trained model (0 = input_size). A model trained on
    # pasted photos at 224 px retrieves and maps best at a larger side (docs/benchmarks.md, issue 13/18).
    query_size: int = 0

    @property
    def attention_names(self) -> tuple[str, ...]:
        return parse_attention(self.attention)

    @property
    def two_stage(self) -> bool:
        return "saliency" in self.attention_names and not self.external_saliency


#: Named objectives. "paper": category classification only (Wang et al. 2020). "instance": the
#: paper's losses plus the instance-level cross-domain InfoNCE on the pooled retrieval vector, and the
#: multi-label title loss where the mined set has title labels.
RECIPES: dict[str, dict[str, object]] = {
    "paper": {"category_weight": 1.0, "instance_weight": 0.0, "title_weight": 0.0, "map_dice_weight": 0.0},
    # 1000 iterations: at the paper's 500 the instance objective is still climbing (bench recipes, 224 px:
    # MANet + SR-MAC 0.641 after 500 and 0.694 after 1000 iterations, docs/benchmarks.md).
    "instance": {"category_weight": 1.0, "instance_weight": 1.0, "title_weight": 1.0, "map_dice_weight": 1.0,
                 "iterations": 1000},
}


#: The recipe `beauty-app train` and the app's Training tab use unless told: it measured better on
#: cross-domain retrieval than the paper's (`bench recipes`, docs/benchmarks.md). TrainConfig() itself
#: keeps the paper's recipe, which the accuracy bench reproduces.
DEFAULT_RECIPE = "instance"

#: The side a recipe's models are used at, as a multiple of their training side (in steps of 32 px);
#: a recipe not named here is used at its training side. The instance recipe's models, trained at
#: 224 px on pasted photos, retrieved and mapped best at 320-352 px (docs/benchmarks.md).
QUERY_SCALES: dict[str, float] = {"instance": 320 / 224}


def recipe_iterations(recipe: str, paper_iterations: int) -> int:
    """End-to-end iterations of `recipe` on a schedule where the paper's recipe runs `paper_iterations`."""
    paper = int(RECIPES["paper"].get("iterations", TrainConfig.iterations))
    return max(1, round(paper_iterations * int(RECIPES[recipe].get("iterations", paper)) / paper))


def recipe_query_size(recipe: str, input_size: int) -> int:
    """The input side a model of `recipe` trained at `input_size` is used at (0: its training side)."""
    scale = QUERY_SCALES.get(recipe)
    return 0 if scale is None else max(32, round(input_size * scale / 32) * 32)


def config_for_recipe(recipe: str, **overrides) -> TrainConfig:
    """A TrainConfig with the recipe's objective; `overrides` win over both recipe and defaults.

    The query side follows the recipe (:func:`recipe_query_size`) unless `overrides` name one.

    Raises:
        ValueError: unknown recipe or setting name.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown training recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
    if "query_size" not in overrides:
        side = int(overrides.get("input_size", TrainConfig.input_size))
        overrides = {**overrides, "query_size": recipe_query_size(recipe, side)}
    return TrainConfig(**{**RECIPES[recipe], **overrides, "recipe": recipe})


def same_training(recorded: dict | None, wanted: TrainConfig) -> bool:
    """Whether a checkpoint's recorded ``train_config`` describes the run `wanted` asks for.

    A setting the record lacks (the checkpoint predates it) counts as its default, which is how that
    run behaved: adding a setting does not make every earlier checkpoint a stranger.
    """
    if not isinstance(recorded, dict):
        return False
    defaults = TrainConfig()
    return all(recorded.get(f.name, getattr(defaults, f.name)) == getattr(wanted, f.name) for f in fields(TrainConfig))


def resume_path_for(out: str | os.PathLike) -> Path:
    """Where a run writing checkpoint `out` keeps its resumable state (``<out>.resume``)."""
    out = Path(out)
    return out.with_name(out.name + ".resume")
