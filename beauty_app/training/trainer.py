"""MANet training: the paper's two-stage schedule on a mined set, with pseudo-mask supervision.

Stage 1 trains the saliency branch (and the classifier head) on a frozen backbone until the
saliency loss stops improving; stage 2 trains backbone, both branches and head end to end
("solves non-convergence", Wang et al. 2020, A.3). Paper defaults: SGD momentum 0.9, lr 0.01,
weight decay 5e-4, 500 iterations with the learning rate decayed to 1e-5, 224x224 inputs,
normalisation from the mined set.

Losses (:mod:`.losses`): cross-entropy on the categories, plus binary cross-entropy of each
attention map against its target (the pseudo saliency / text mask, or the exact mask of a synthetic
"photo"), counted only for samples whose target exists and was not marked wrong by an annotator.
With ``instance_weight > 0`` every batch holds (photo, catalog view) pairs of the same catalog
image, and a symmetric InfoNCE over those identities trains the retrieval vector itself (the
pooled F' the index stores: SR-MAC with a saliency map) in stage 2. With ``title_weight > 0`` and a
mined set with title labels, a multi-label title head learns the description n-grams of each image
(BCE); the category loss skips the images kept for their title labels only (label -1), and the
accuracy counts only images with a category.

The loop reports through :class:`TrainingEvents` callbacks (terminal bar, JSON lines for the GUI),
saves a resumable state every N iterations and on interruption, and runs under torchrun
(:mod:`.distributed`; batch norm is synchronised on GPUs). The data it reads (tensors, sampler,
mask cache, annotators' marks) is in :mod:`.data`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..device import autocast, autocast_dtype, pick_device
from ..errors import UserError
from ..models.checkpoint import read_checkpoint, save_checkpoint
from ..models.open_set import choose_threshold
from ..models.manet import MANet
from ..retrieval.pooling import POOLINGS
from .config import TrainConfig, resume_path_for
from .data import MASK_CACHE_DIR, EndlessSampler, MinedImages, external_saliency, prepare_masks, read_mask_marks
from .distributed import (
    all_reduce_gradients,
    all_reduce_mean,
    init_distributed,
    mean_over_ranks,
    per_process_batch,
    same_decision,
    use_sync_batchnorm,
)
from .losses import CrossBatchMemory, Temperature, attention_loss, category_loss, symmetric_info_nce, title_loss
from .mining import MinedDataset

log = logging.getLogger(__name__)


@dataclass
class StepInfo:
    """One optimisation step, as reported to the terminal bar and the GUI (JSON lines)."""

    stage: int
    iteration: int  # within the stage, 1-based
    total: int  # iterations planned for the stage
    loss: float
    loss_cls: float
    loss_saliency: float | None
    loss_text: float | None
    lr: float
    throughput: float  # images per second (this process)
    eta_s: float
    loss_instance: float | None = None
    loss_title: float | None = None


@dataclass
class TrainingEvents:
    """Callbacks of a training run (all optional)."""

    on_step: Callable[[StepInfo], None] | None = None
    on_stage: Callable[[int, str], None] | None = None
    on_validation: Callable[[dict], None] | None = None
    on_checkpoint: Callable[[str, str], None] | None = None  # (kind, path)
    on_message: Callable[[str], None] | None = None


@dataclass
class TrainResult:
    checkpoint: Path
    val_accuracy: float | None
    metrics: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


class Interrupted(Exception):
    """Training stopped early (Ctrl-C, SIGTERM or cancel); a resumable state was saved."""

    def __init__(self, resume_path: Path):
        super().__init__(f"training interrupted; resume with --resume (state in {resume_path})")
        self.resume_path = resume_path


# ---------------------------------------------------------------------------- schedule and losses
def decayed_lr(config: TrainConfig, step: int, total: int) -> float:
    """Exponential decay from lr to final_lr over `total` steps (the paper's "slows down to 1e-5")."""
    if total <= 1:
        return config.lr
    fraction = min(max(step / (total - 1), 0.0), 1.0)
    return config.lr * (config.final_lr / config.lr) ** fraction


def instance_pooling_name(config: TrainConfig, model: MANet) -> str:
    """The pooling the instance loss trains: the configured one, or SR-MAC when there is a saliency map."""
    if config.instance_pooling != "auto":
        if config.instance_pooling not in POOLINGS:
            raise UserError(f"Unknown pooling {config.instance_pooling!r}; choose auto or one of {', '.join(POOLINGS)}.")
        if config.instance_pooling == "srmac" and "saliency" not in model.attention:
            raise UserError("SR-MAC needs a saliency map; train with --attention saliency or both, or pick another "
                            "--instance-pooling.")
        return config.instance_pooling
    return "srmac" if "saliency" in model.attention else "rmac"


class Stage1Convergence:
    """Decides when stage 1 has converged: the smoothed saliency loss stopped improving by 1%.

    Under torchrun every process must leave stage 1 at the same step, so the trainer feeds it the
    all-reduced loss and broadcasts rank 0's decision (:func:`same_decision`).
    """

    def __init__(self, patience: int = 30, min_iterations: int = 40):
        self.patience, self.min_iterations = patience, min_iterations
        self.smoothed: float | None = None
        self.best = math.inf
        self.since_best = 0

    def update(self, value: float, done: int) -> bool:
        """Record the loss of step `done` (1-based); True when the stage should end."""
        self.smoothed = value if self.smoothed is None else 0.9 * self.smoothed + 0.1 * value
        if self.smoothed < self.best * 0.99:
            self.best, self.since_best = self.smoothed, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience and done >= self.min_iterations

    def state(self) -> dict:
        return {"smoothed": self.smoothed, "best": self.best, "since_best": self.since_best}

    def restore(self, state: dict | None) -> None:
        if state:
            self.smoothed, self.best, self.since_best = state["smoothed"], state["best"], state["since_best"]


def _set_modes(model: MANet, stage: int) -> None:
    """Train mode, except a frozen backbone keeps its pretrained batch-norm statistics in stage 1."""
    model.train()
    if stage == 1:
        model.backbone.eval()


def _set_trainable(model: MANet, stage: int) -> list[nn.Parameter]:
    """Stage 1: saliency branch + head on a frozen backbone; stage 2: everything."""
    _set_modes(model, stage)
    groups = model.parameter_groups()
    heads = groups["classifier"] + groups["titles"]
    trainable = (groups["saliency"] + heads) if stage == 1 else [p for p in model.parameters()]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in trainable:
        parameter.requires_grad_(True)
    return trainable


# ---------------------------------------------------------------------------- the run
def evaluate_accuracy(model: MANet, loader, device, config: TrainConfig) -> dict:
    """Top-1 accuracy (and per-class accuracy) on a plain-view loader (leaves the model in eval mode).

    Only images with a category count (those kept for their title labels only have label -1). The
    open-set threshold is chosen on photos, not on these views (:func:`open_set_on_photos`).
    """
    model.eval()
    correct = total = 0
    per_class: dict[int, list[int]] = {}
    with torch.inference_mode():
        for batch in loader:
            with autocast(device, config.amp):
                out = model(batch["image"].to(device), saliency=external_saliency(batch, device, model))
            known = batch["label"] >= 0
            logits = out.logits.float().cpu()[known]
            labels = batch["label"][known]
            predicted = logits.argmax(dim=1)
            for label, guess in zip(labels.tolist(), predicted.tolist()):
                stats = per_class.setdefault(label, [0, 0])
                stats[0] += int(label == guess)
                stats[1] += 1
            correct += int((predicted == labels).sum())
            total += len(predicted)
    return {"val_accuracy": correct / total if total else None, "val_images": total,
            "val_per_class": {str(k): v[0] / v[1] for k, v in sorted(per_class.items())}}


def open_set_on_photos(model: MANet, rows: list, mask_dir: Path, config: TrainConfig, mean, std, device,
                       wrong_marks: set[tuple[str, str]] = frozenset()) -> dict:
    """The open-set threshold record chosen on synthetic photos of the validation images.

    Queries are photos, not catalog views: on plain views a trained model's top class takes nearly
    all the probability, so a threshold chosen there (0.98 for the demo model) calls most photos of
    known categories unknown. Each validation image with a category is pasted into a scene by the
    training augmenter (every sample a photo; seeded, so the record is reproducible), and the rule of
    :func:`beauty_app.models.open_set.choose_threshold` is applied to those photos' top-class
    probabilities. Images without a saliency mask cannot be pasted and stay plain views.
    """
    from dataclasses import replace

    known = [row for row in rows if int(row.label) >= 0]
    if not known:
        return {}
    # At the side the model is used at (its query size), as the app will see queries.
    side = config.query_size or config.input_size
    photos = MinedImages(known, mask_dir, replace(config, photo_probability=1.0, input_size=side), mean, std, train=True,
                         wrong_marks=wrong_marks)
    state = torch.get_rng_state()
    torch.manual_seed(config.seed)  # the photos' scenes draw from the seed (see MinedImages.__getitem__)
    try:
        model.eval()
        top: list[float] = []
        with torch.inference_mode():
            for batch in DataLoader(photos, batch_size=max(2, config.batch_size), shuffle=False, num_workers=0):
                with autocast(device, config.amp):
                    out = model(batch["image"].to(device), saliency=external_saliency(batch, device, model))
                top += torch.softmax(out.logits.float().cpu(), dim=1).amax(dim=1).tolist()
    finally:
        torch.set_rng_state(state)
    record = choose_threshold(top)
    if record:
        record["images"] = "synthetic photos of the validation images (pasted into scenes, seeded)"
    return record


def recalibrate_open_set(checkpoint: str | Path, data: str | Path, device: str = "cpu") -> dict:
    """Choose a trained checkpoint's open-set threshold again, on photos of `data`'s validation images.

    For models trained before the threshold came from photos (:func:`open_set_on_photos`): the
    checkpoint is rewritten in place (atomically) with the new record in its metrics; nothing else
    changes. Returns the record.

    Raises:
        UserError: unreadable checkpoint or data folder, or a model without categories.
    """
    from dataclasses import fields

    from ..models.checkpoint import model_from_checkpoint, rewrite_checkpoint
    from .mask_cache import build_mask_cache

    path = Path(checkpoint)
    payload = read_checkpoint(path)
    if not payload.get("num_classes"):
        raise UserError(f"{path.name} has no categories, so it has no open-set threshold to choose.")
    dataset = MinedDataset.load(data)
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in (payload.get("train_config") or {}).items() if k in names})
    config.query_size = int(payload.get("query_size") or 0)
    torch_device = pick_device(device)
    model = model_from_checkpoint(payload).to(torch_device)
    mask_dir = Path(dataset.root) / MASK_CACHE_DIR
    build_mask_cache([(row.id, Path(row.path)) for row in dataset.val], mask_dir)  # only the images it pastes
    wrong = read_mask_marks(config.mask_marks)
    record = open_set_on_photos(model, dataset.val, mask_dir, config, tuple(payload["mean"]), tuple(payload["std"]),
                                torch_device, wrong)
    if not record:
        raise UserError(f"The validation split of {data} has no image with a category.")
    payload["metrics"] = {**(payload.get("metrics") or {}), "open_set": record}
    rewrite_checkpoint(path, payload)
    return record


def train(config: TrainConfig, *, resume: bool = False, events: TrainingEvents | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Run (or resume) a training run; returns the final checkpoint and its validation accuracy.

    Raises:
        Interrupted: stopped by `should_stop` or KeyboardInterrupt; a resumable state was saved.
        UserError: bad data folder, missing weights, resume state that does not fit the config.
    """
    events = events or TrainingEvents()
    started = time.perf_counter()
    device = pick_device(config.device)
    dist_info = init_distributed(device)
    if device.type == "cuda" and dist_info.world > 1:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed + dist_info.rank)

    def say(message: str) -> None:
        if dist_info.main and events.on_message:
            events.on_message(message)

    dataset = MinedDataset.load(config.data)
    if not dataset.train:
        raise UserError(f"The mined set in {config.data} has no training images.")
    mask_dir = Path(dataset.root) / MASK_CACHE_DIR
    if dist_info.main:
        say(f"pseudo masks for {len(dataset.train) + len(dataset.val)} images (cached in {mask_dir})")
        prepare_masks(dataset, workers=config.workers)
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
    wrong = read_mask_marks(config.mask_marks)
    classes = list(dataset.classes)
    mean, std = tuple(dataset.mean), tuple(dataset.std)

    pretrained = config.weights or config.pretrained
    # The title head exists only when it is trained: under DDP every parameter must get a gradient.
    titles = list(dataset.titles) if config.title_weight > 0 else []
    if titles:
        say(f"title head over {len(titles)} title labels (weight {config.title_weight:g})")
    model = MANet(config.backbone, len(classes), attention=config.attention, pretrained=pretrained,
                  external_saliency=config.external_saliency, num_titles=len(titles),
                  retrieval_attention=config.retrieval_attention).to(device)
    model.map_gradient = config.map_gradient
    if use_sync_batchnorm(device, dist_info.world):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state-dict keys as BatchNorm2d
    instance = config.instance_weight > 0
    pooling = POOLINGS[instance_pooling_name(config, model)] if instance else None
    temperature = Temperature(config.temperature, learnable=config.learn_temperature).to(device)
    memory = CrossBatchMemory(config.instance_memory)
    out_path = Path(config.out)
    state_path = resume_path_for(out_path)
    stage, step_in_stage, optimizer_state, resumed_extra = (1 if config.two_stage else 2), 0, None, {}
    if resume:
        if not state_path.is_file():
            raise UserError(f"There is no interrupted run to resume ({state_path} does not exist).")
        payload = read_checkpoint(state_path)
        if list(payload.get("title_names", [])) != titles:
            raise UserError(f"The interrupted run in {state_path} was trained with {len(payload.get('title_names', []))} "
                            f"title labels, not {len(titles)}; resume with the same data and --title-weight or start "
                            "a new run without --resume.")
        model.load_state_dict(payload["state_dict"])
        resumed_extra = payload.get("extra", {})
        stage, step_in_stage = int(resumed_extra["stage"]), int(resumed_extra["step"])
        optimizer_state = resumed_extra.get("optimizer")
        if "log_temperature" in resumed_extra:
            temperature.log_t.data.fill_(float(resumed_extra["log_temperature"]))
        say(f"resuming stage {stage} at iteration {step_in_stage}")

    train_set = MinedImages(dataset.train, mask_dir, config, mean, std, train=True, wrong_marks=wrong, pairs=instance,
                            num_titles=len(titles))
    val_set = MinedImages(dataset.val, mask_dir, config, mean, std, train=False, wrong_marks=wrong)
    per_rank_batch = per_process_batch(config, dist_info.world)
    # A pair sample is two images, so a step sees the same number of images with or without pairs.
    per_rank_samples = max(2, per_rank_batch // 2) if instance else per_rank_batch
    images_per_step = per_rank_samples * (2 if instance else 1) * dist_info.world
    say(f"global batch {images_per_step} images per step ({dist_info.world} process(es) x "
        f"{images_per_step // dist_info.world})" + (f", {images_per_step // 2} (photo, catalog) pairs" if instance else ""))
    loader_args = {"num_workers": config.workers, "persistent_workers": config.workers > 0,
                   "pin_memory": device.type == "cuda"}
    train_loader = DataLoader(train_set, batch_size=per_rank_samples,
                              sampler=EndlessSampler(len(train_set), config.seed, dist_info.rank, dist_info.world),
                              drop_last=True, **loader_args)
    val_loader = DataLoader(val_set, batch_size=per_rank_batch, shuffle=False, num_workers=config.workers)
    batches = iter(train_loader)
    use_scaler = device.type == "cuda" and autocast_dtype(device, config.amp) == torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    metrics: dict = {}

    def save_state(current_stage: int, step: int, optimizer, convergence: Stage1Convergence) -> None:
        if dist_info.main:
            save_checkpoint(state_path, model, class_names=classes, input_size=config.input_size, mean=mean,
                            std=std, train_config=asdict(config), title_names=titles,
                            extra={"stage": current_stage, "step": step,
                                   "optimizer": None if optimizer is None else optimizer.state_dict(),
                                   "log_temperature": float(temperature.log_t.detach()), "stage1": convergence.state()})
            if events.on_checkpoint:
                events.on_checkpoint("resume", str(state_path))

    position = {"stage": stage, "step": step_in_stage, "optimizer": None, "convergence": Stage1Convergence()}
    try:
        for current_stage in (1, 2):
            if current_stage < stage or (current_stage == 1 and not config.two_stage):
                continue
            total = config.stage1_iterations if current_stage == 1 else config.iterations
            trainable = _set_trainable(model, current_stage)
            if dist_info.world > 1:
                from torch.nn.parallel import DistributedDataParallel

                network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  find_unused_parameters=current_stage == 1)
            else:
                network = model
            # The temperature lives outside the network (and outside DDP); it learns with the instance loss.
            extra_parameters = [temperature.log_t] if (config.learn_temperature and instance
                                                       and current_stage == 2) else []
            groups = [{"params": trainable}] + ([{"params": extra_parameters, "weight_decay": 0.0}]
                                                  if extra_parameters else [])
            optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                                        weight_decay=config.weight_decay)
            convergence = Stage1Convergence(config.stage1_patience, config.stage1_min_iterations)
            if optimizer_state is not None and current_stage == stage:
                optimizer.load_state_dict(optimizer_state)
                convergence.restore(resumed_extra.get("stage1"))
            first = step_in_stage if current_stage == stage else 0
            position.update(stage=current_stage, step=first, optimizer=optimizer, convergence=convergence)
            if dist_info.main and events.on_stage:
                events.on_stage(current_stage, "saliency branch on a frozen backbone" if current_stage == 1
                                else "end to end")
            stage_start = time.perf_counter()
            for step in range(first, total):
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
                lr = decayed_lr(config, step, total) if current_stage == 2 else config.lr
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = next(batches)
                if instance:  # photos first, then their catalog views: row i and row n + i are one identity
                    for key in ("image", "saliency", "saliency_valid", "text", "text_valid"):
                        batch[key] = torch.cat([batch[key], batch.pop(f"view_{key}")])
                    for key in ("label", "titles"):
                        if key in batch:
                            batch[key] = torch.cat([batch[key], batch[key]])
                images = batch["image"].to(device, non_blocking=True)
                labels = batch["label"].to(device)
                with autocast(device, config.amp):
                    out = network(images, saliency=external_saliency(batch, device, model))
                loss_cls = category_loss(out.logits, labels)
                loss_title = (title_loss(out.title_logits, batch["titles"].to(device))
                              if out.title_logits is not None else None)
                loss_sal = attention_loss(out.saliency_logits, batch["saliency"].to(device),
                                          batch["saliency_valid"].to(device), config.map_dice_weight)
                loss_text = attention_loss(out.text_logits, batch["text"].to(device), batch["text_valid"].to(device),
                                           config.map_dice_weight)
                loss_instance = None
                if instance and current_stage == 2:
                    vectors = pooling(out.features.float(), None if out.saliency is None else out.saliency.float())
                    identities = batch["identity"].to(device)
                    half = vectors.shape[0] // 2
                    loss_instance = symmetric_info_nce(vectors[:half], vectors[half:], identities, temperature(),
                                                       memory.contents())
                    memory.add(vectors[half:], identities)
                # The category term stays in the graph even at weight 0: under DDP every parameter
                # (the classifier too) must receive a gradient in every step.
                loss = config.category_weight * loss_cls
                if loss_sal is not None:
                    loss = loss + config.saliency_weight * loss_sal
                if loss_text is not None and current_stage == 2:
                    loss = loss + config.text_weight * loss_text
                if loss_instance is not None:
                    loss = loss + config.instance_weight * loss_instance
                if loss_title is not None:
                    loss = loss + config.title_weight * loss_title
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    all_reduce_gradients(extra_parameters, dist_info)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    all_reduce_gradients(extra_parameters, dist_info)
                    optimizer.step()
                done = step + 1
                position["step"] = done
                elapsed = time.perf_counter() - stage_start
                rate = (done - first) * images.shape[0] / max(elapsed, 1e-9)
                eta = (total - done) * elapsed / max(done - first, 1)
                reported = all_reduce_mean(loss.detach().float(), dist_info).item()
                if not math.isfinite(reported):  # the mean over all processes: every process stops together
                    raise UserError("The training loss became NaN or infinite; lower --lr and try again.")
                if dist_info.main and events.on_step:
                    events.on_step(StepInfo(current_stage, done, total, reported, loss_cls.item(),
                                            None if loss_sal is None else loss_sal.item(),
                                            None if loss_text is None else loss_text.item(), lr, rate, eta,
                                            None if loss_instance is None else loss_instance.item(),
                                            None if loss_title is None else loss_title.item()))
                if config.checkpoint_every and done % config.checkpoint_every == 0 and done < total:
                    save_state(current_stage, done, optimizer, convergence)
                if config.validate_every and current_stage == 2 and done % config.validate_every == 0 and done < total:
                    result = evaluate_accuracy(model, val_loader, device, config)
                    _set_modes(model, current_stage)
                    if dist_info.main and events.on_validation:
                        events.on_validation({"stage": current_stage, "iteration": done, **result})
                if current_stage == 1:
                    # Every process must take this branch at the same step, or their collectives stop
                    # matching: decide on the loss averaged over all processes, then use rank 0's verdict.
                    value = mean_over_ranks(loss_sal, device, dist_info)
                    converged = value is not None and convergence.update(value, done)
                    if same_decision(converged, device, dist_info):
                        say(f"saliency branch converged after {done} iterations")
                        break
            optimizer_state = None
            stage = current_stage + 1
            step_in_stage = 0
            if current_stage == 1 and config.checkpoint_every:
                # The stage switch is a resume point: a kill early in stage 2 must not redo the end of
                # stage 1. Stage 2 starts a fresh optimizer over every parameter, so none is saved.
                save_state(2, 0, None, convergence)
    except KeyboardInterrupt:
        if position["optimizer"] is not None:
            save_state(position["stage"], position["step"], position["optimizer"], position["convergence"])
        raise Interrupted(state_path) from None

    metrics = evaluate_accuracy(model, val_loader, device, config)
    if model.num_classes > 0:
        metrics["open_set"] = open_set_on_photos(model, dataset.val, mask_dir, config, mean, std, device, wrong)
    metrics["train_images"] = len(dataset.train)
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    metrics["device"] = str(device)
    metrics["global_batch"] = images_per_step
    metrics["processes"] = dist_info.world
    if titles:
        metrics["title_labels"] = len(titles)
    if instance:
        metrics["temperature"] = round(float(temperature().detach()), 5)
    if dist_info.main and events.on_validation:
        events.on_validation({"stage": 2, "iteration": config.iterations, "final": True, **metrics})
    if dist_info.main:
        save_checkpoint(out_path, model, class_names=classes, input_size=config.input_size, mean=mean, std=std,
                        train_config=asdict(config), metrics=metrics, title_names=titles, query_size=config.query_size)
        state_path.unlink(missing_ok=True)
        if events.on_checkpoint:
            events.on_checkpoint("final", str(out_path))
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(out_path, metrics.get("val_accuracy"), metrics, time.perf_counter() - started)
