"""`beauty-app train`: MANet training from the command line (terminal bar or JSON lines)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path

from ..training.config import (DEFAULT_RECIPE, RECIPES, TrainConfig,  # torch-free: the options' defaults
                               config_for_recipe)
from ..errors import UserError
from ..models.attention import RETRIEVAL_ATTENTIONS
from .common import add_command, device_name, input_side, non_negative_int, positive_int, print_json



def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train` to the top-level sub-commands."""
    defaults = TrainConfig()
    p = add_command(subparsers, "train", help="train MANet on a mined data folder (two-stage schedule of the paper)")
    p.add_argument("--data", required=True, help="folder written by `dataset mine`")
    p.add_argument("--out", default=defaults.out, help="checkpoint to write (default %(default)s)")
    p.add_argument("--backbone", default=defaults.backbone,
                   choices=["efficientnet_lite0", "resnet50", "vgg16", "tiny"])
    p.add_argument("--weights", default=None, help="ImageNet weight file for the backbone (else the torch cache)")
    p.add_argument("--no-pretrained", action="store_true", help="start the backbone from random weights")
    p.add_argument("--attention", default=defaults.attention, choices=["none", "saliency", "text", "both"])
    p.add_argument("--external-saliency", action="store_true",
                   help='"MANet with DSS": saliency from the pseudo-mask generator instead of the learned branch')
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="end-to-end iterations (default: the recipe's, paper 500, instance 1000)")
    p.add_argument("--stage1-iterations", type=non_negative_int, default=defaults.stage1_iterations,
                   help="at most this many saliency-branch iterations (stops when converged)")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                   help="images per step over all processes (default %(default)s)")
    p.add_argument("--per-device-batch", type=non_negative_int, default=defaults.per_device_batch,
                   help="images per step and process under torchrun (0: --batch-size split over the processes)")
    p.add_argument("--stage1-patience", type=positive_int, default=defaults.stage1_patience,
                   help="stage 1 ends when the saliency loss has not improved by 1%% in this many steps")
    p.add_argument("--stage1-min-iterations", type=non_negative_int, default=defaults.stage1_min_iterations)
    objective = p.add_argument_group("objective", "the losses; --recipe sets them, the flags below override it")
    # TrainConfig keeps the paper's recipe (the accuracy bench reproduces the paper with it); the
    # command defaults to the instance recipe, which measured better on cross-domain retrieval
    # (`bench recipes`, docs/benchmarks.md: MAP@7 +0.206 +- 0.040 paired s.e. over the paper recipe).
    objective.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES),
                           help="paper: category classification only; instance: plus the instance-level "
                                "cross-domain loss on the retrieval vector (default %(default)s)")
    objective.add_argument("--category-weight", type=float, default=None, help="weight of the category loss")
    objective.add_argument("--instance-weight", type=float, default=None,
                           help="weight of the (photo, catalog view) InfoNCE on the retrieval vector; 0 = off")
    objective.add_argument("--title-weight", type=float, default=None,
                           help="weight of the multi-label title loss (a title head over the mined set's title "
                                "labels; the instance recipe: 1 where the set has them); 0 = off, no title head")
    objective.add_argument("--map-dice-weight", type=float, default=None,
                           help="weight of a soft Dice term next to the attention maps' BCE (the instance recipe: 1); "
                                "0 = BCE only, as in the paper")
    objective.add_argument("--map-gradient", type=float, default=None,
                           help="share of the attention maps' loss gradient that reaches the backbone "
                                "(1: all, as in the paper; 0: the maps do not reshape the backbone)")
    objective.add_argument("--retrieval-attention", default=None, choices=RETRIEVAL_ATTENTIONS,
                           help="maps that re-weight the retrieval features: all (saliency and text, as in the "
                                "paper; default) or saliency (text re-weights only the classifier's input)")
    objective.add_argument("--instance-pooling", default=defaults.instance_pooling,
                           choices=["auto", "gap", "mac", "gem", "rmac", "srmac"],
                           help="retrieval vector the instance loss trains (auto: srmac with saliency, else rmac)")
    objective.add_argument("--temperature", type=float, default=defaults.temperature,
                           help="InfoNCE temperature (default %(default)s)")
    objective.add_argument("--learn-temperature", action="store_true", help="learn the InfoNCE temperature")
    objective.add_argument("--instance-memory", type=non_negative_int, default=defaults.instance_memory,
                           help="catalog vectors of earlier batches kept as extra negatives (0 = none)")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--final-lr", type=float, default=defaults.final_lr)
    p.add_argument("--momentum", type=float, default=defaults.momentum)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--input-size", type=input_side, default=defaults.input_size, help="training input side")
    p.add_argument("--query-size", type=lambda value: 0 if value.strip() == "0" else input_side(value),
                   default=None,
                   help="input side the trained model is used at for queries and catalog images "
                        "(0: the training input side; default: the instance recipe 10/7 of the training side "
                        "in steps of 32, 320 for 224; the paper recipe the training side)")
    p.add_argument("--photo-probability", type=float, default=defaults.photo_probability,
                   help="share of synthetic real-photo samples (cross-domain augmentation)")
    p.add_argument("--workers", type=non_negative_int, default=defaults.workers, help="data loading processes")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=defaults.checkpoint_every)
    p.add_argument("--validate-every", type=non_negative_int, default=defaults.validate_every)
    p.add_argument("--mask-marks", default=None, help="annotator CSV id,map,mark: maps marked wrong are not supervised")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default="auto", type=device_name)
    p.add_argument("--fp32", action="store_true", help="disable mixed precision")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run that writes --out")
    p.add_argument("--progress", default="bar", choices=["bar", "jsonl", "none"],
                   help="terminal bar, one JSON object per step on stdout (for the GUI), or nothing (as -q)")
    p.add_argument("--json", action="store_true",
                   help="print the final summary as one JSON object (not with --progress jsonl)")
    p.add_argument("--recalibrate-open-set", action="store_true",
                   help="do not train: choose the open-set threshold of the trained checkpoint --out again, on "
                        "synthetic photos of --data's validation images (for models trained before it came from "
                        "photos); the file is rewritten, so indexes built with it must be rebuilt")
    p.set_defaults(func=cmd_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training configuration the options describe (flags left at None take the recipe's value)."""
    names = {f.name for f in fields(TrainConfig)} - {"recipe"}
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    values["pretrained"] = not args.no_pretrained and args.backbone != "tiny"
    values["amp"] = not args.fp32
    return config_for_recipe(getattr(args, "recipe", DEFAULT_RECIPE), **values)


def check_resume_matches(config: TrainConfig) -> None:
    """Refuse `--resume` of a saved run made with another network, before any data is prepared.

    The saved weights only fit the backbone and attention branches they were trained with; loading
    them into another network fails deep in torch with a page of key names.
    """
    from ..models.checkpoint import read_checkpoint
    from ..models.manet import parse_attention
    from ..training.config import resume_path_for

    state_path = resume_path_for(config.out)
    if not state_path.is_file():
        return  # the trainer says there is nothing to resume
    saved = read_checkpoint(state_path)
    ours = {"backbone": config.backbone, "attention": "+".join(parse_attention(config.attention)) or "none",
            "external saliency": bool(config.external_saliency)}
    theirs = {"backbone": saved["backbone"], "attention": "+".join(parse_attention(tuple(saved["attention"]))) or "none",
              "external saliency": bool(saved.get("external_saliency", False))}
    different = [name for name in ours if ours[name] != theirs[name]]
    if different:
        raise UserError(f"The interrupted run in {state_path} was trained with "
                        + ", ".join(f"{name} {theirs[name]}" for name in different) + ", not "
                        + ", ".join(f"{name} {ours[name]}" for name in different)
                        + "; resume with the same options or start a new run without --resume.")


def _jsonl_events():
    from ..training.trainer import TrainingEvents

    def emit(event: str, **data) -> None:
        sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
        sys.stdout.flush()

    return TrainingEvents(
        on_step=lambda s: emit("step", stage=s.stage, iteration=s.iteration, total=s.total, loss=s.loss,
                               loss_cls=s.loss_cls, loss_saliency=s.loss_saliency, loss_text=s.loss_text,
                               loss_instance=s.loss_instance, loss_title=s.loss_title, lr=s.lr,
                               throughput=s.throughput, eta_s=s.eta_s),
        on_stage=lambda stage, text: emit("stage", stage=stage, description=text),
        on_validation=lambda result: emit("validation", **result),
        on_checkpoint=lambda kind, path: emit("checkpoint", kind=kind, path=path),
        on_message=lambda text: emit("message", text=text),
    )


def _bar_events():
    from tqdm import tqdm

    from ..training.trainer import TrainingEvents

    state = {"bar": None}

    def on_stage(stage: int, text: str) -> None:
        if state["bar"] is not None:
            state["bar"].close()
        state["bar"] = None
        print(f"stage {stage}: {text}", file=sys.stderr)

    def on_step(step) -> None:
        if state["bar"] is None:
            state["bar"] = tqdm(total=step.total, initial=step.iteration - 1, desc=f"stage {step.stage}",
                                unit="it", file=sys.stderr, dynamic_ncols=True)
        parts = [f"loss {step.loss:.3f}", f"cls {step.loss_cls:.3f}"]
        if step.loss_saliency is not None:
            parts.append(f"sal {step.loss_saliency:.3f}")
        if step.loss_text is not None:
            parts.append(f"txt {step.loss_text:.3f}")
        if step.loss_instance is not None:
            parts.append(f"inst {step.loss_instance:.3f}")
        if step.loss_title is not None:
            parts.append(f"title {step.loss_title:.3f}")
        parts.append(f"lr {step.lr:.1e}")
        parts.append(f"{step.throughput:.1f} img/s")
        state["bar"].set_postfix_str(" ".join(parts), refresh=False)
        state["bar"].update(step.iteration - state["bar"].n)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    events = TrainingEvents(
        on_step=on_step, on_stage=on_stage,
        on_validation=lambda r: print(f"validation accuracy {r['val_accuracy']:.3f} on {r['val_images']} images",
                                      file=sys.stderr) if r.get("val_accuracy") is not None else None,
        on_checkpoint=lambda kind, path: print(f"{kind} checkpoint: {path}", file=sys.stderr) if kind == "final" else None,
        on_message=lambda text: print(text, file=sys.stderr),
    )
    return events, close


def cmd_train(args: argparse.Namespace) -> int:
    """Train; Ctrl-C or SIGTERM saves a resumable state and exits 130."""
    from ..training.trainer import Interrupted, TrainingEvents, train

    if args.json and args.progress == "jsonl":
        raise UserError("--json and --progress jsonl both write to stdout; choose one.")
    config = config_from_args(args)
    if args.recalibrate_open_set:
        from ..training.trainer import recalibrate_open_set

        if not Path(config.out).is_file():
            raise UserError(f"There is no trained checkpoint {config.out} to recalibrate; give it with --out.")
        record = recalibrate_open_set(config.out, config.data, device=config.device)
        if args.json:
            print_json({"checkpoint": str(config.out), "open_set": record})
        elif not args.quiet:
            print(f"{config.out}: open-set threshold {record['threshold']:.3f}, which {record['keep']:.0%} of "
                  f"{record['val_images']} synthetic photos of the validation images reach")
        return 0
    if args.resume:
        check_resume_matches(config)
    close = lambda: None  # noqa: E731
    if args.quiet and args.progress == "bar":
        args.progress = "none"
    if args.progress == "jsonl":
        events = _jsonl_events()
    elif args.progress == "bar":
        events, close = _bar_events()
    else:
        events = TrainingEvents()

    # SIGTERM (the GUI's cancel, a cluster scheduler) stops like Ctrl-C: save a resumable state.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        result = train(config, resume=args.resume, events=events)
    except Interrupted as exc:
        close()
        if args.progress == "jsonl":
            print(json.dumps({"event": "interrupted", "resume_path": str(exc.resume_path)}), flush=True)
        print(f"beauty-app: training interrupted; run the same command with --resume to continue "
              f"(state saved in {exc.resume_path}).", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    close()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports (and writes the checkpoint)
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "checkpoint": str(result.checkpoint), "val_accuracy": result.val_accuracy,
                          "elapsed_s": round(result.elapsed_s, 1)}), flush=True)
    elif args.json:
        print_json({"checkpoint": str(result.checkpoint), "backbone": config.backbone, "attention": config.attention,
                    "val_accuracy": result.val_accuracy, "elapsed_s": round(result.elapsed_s, 1)})
    else:
        accuracy = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.3f}"
        print(f"Trained {config.backbone} MANet ({config.attention}) in {result.elapsed_s:.0f} s; "
              f"validation accuracy {accuracy}; checkpoint {result.checkpoint}")
    return 0
