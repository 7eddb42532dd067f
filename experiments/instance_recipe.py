"""Experiment: does the instance-level cross-domain objective beat the paper's category recipe?

Same data as ``beauty-app bench accuracy`` builds it (a generated training catalog mined into
categories; a separate catalog of unseen products, one query photo each, other seed), same
iterations and batch for every trained variant; MAP@7 (paper denominator) with the standard error
over the queries, through the product's own index and search code.

    PYTHONPATH=. python experiments/instance_recipe.py --work /tmp/instance-exp --iterations 200

Variants (trained ones are cached by their train_config, so a re-run only adds what is missing):
  offshelf          ImageNet backbone, no training                    GAP, R-MAC
  paper             recipe paper, MANet (saliency + text)             GAP, SR-MAC
  instance          recipe instance, MANet (saliency + text)          GAP, R-MAC, SR-MAC
  instance_none     recipe instance, no attention                     GAP, R-MAC
  instance_only     instance loss only (category weight 0), MANet     SR-MAC
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

VARIANTS = {
    # key: (recipe, attention, overrides, poolings)
    "paper": ("paper", "both", {}, ("gap", "srmac")),
    "instance": ("instance", "both", {}, ("gap", "rmac", "srmac")),
    "instance_none": ("instance", "none", {}, ("gap", "rmac")),
    "instance_only": ("instance", "both", {"category_weight": 0.0}, ("srmac",)),
}
LABELS = {"gap": "GAP", "rmac": "R-MAC", "srmac": "SR-MAC"}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def make_data(work: Path, args):
    from beauty_app.demo.products import generate_demo
    from beauty_app.training.mining import MinedDataset, mine_dataset

    train_dir = work / f"train-{args.products}p-seed{args.seed}-{args.image_size}px"
    eval_seed = args.seed + 7919  # as the accuracy bench: other products than training
    eval_dir = work / f"eval-{args.eval_products}p-seed{eval_seed}-{args.image_size}px"
    if not (train_dir / "truth.csv").is_file():
        shutil.rmtree(train_dir, ignore_errors=True)
        generate_demo(train_dir, n_products=args.products, seed=args.seed, image_size=args.image_size, workers=2)
    if not (eval_dir / "truth.csv").is_file():
        shutil.rmtree(eval_dir, ignore_errors=True)
        generate_demo(eval_dir, n_products=args.eval_products, seed=eval_seed, image_size=args.image_size,
                      query_fraction=1.0, workers=2)
    mined_dir = train_dir / "mined-min5"
    if (mined_dir / "stats.json").is_file():
        mined = MinedDataset.load(mined_dir)
    else:
        mined = mine_dataset(train_dir / "catalog.csv", mined_dir, keywords="default", min_images=5,
                             seed=args.seed, workers=2)
    return mined, eval_dir


def train_variant(key: str, mined, models: Path, args) -> Path:
    from beauty_app.models.checkpoint import read_checkpoint
    from beauty_app.training.config import config_for_recipe, resume_path_for
    from beauty_app.training.trainer import TrainingEvents, train

    recipe, attention, overrides, _ = VARIANTS[key]
    out = models / f"{key}.pt"
    config = config_for_recipe(
        recipe, data=str(mined.root), out=str(out), backbone=args.backbone, pretrained=args.backbone != "tiny",
        attention=attention, iterations=args.iterations, stage1_iterations=args.stage1_iterations,
        batch_size=args.batch_size, input_size=args.input_size, workers=args.workers,
        checkpoint_every=max(10, args.iterations // 4), seed=args.seed, device="cpu", **overrides)
    wanted = asdict(config)
    if out.is_file() and read_checkpoint(out).get("train_config") == wanted:
        print(f"{key}: reusing {out}", flush=True)
        return out
    state = resume_path_for(out)
    resume = state.is_file() and read_checkpoint(state).get("train_config") == wanted
    if state.is_file() and not resume:
        state.unlink()

    def on_step(step) -> None:
        if step.iteration % 20 == 0 or step.iteration == step.total:
            inst = "" if step.loss_instance is None else f" inst {step.loss_instance:.3f}"
            print(f"{key} stage {step.stage} {step.iteration}/{step.total} loss {step.loss:.3f} "
                  f"cls {step.loss_cls:.3f}{inst} {step.throughput:.1f} img/s", flush=True)

    started = time.perf_counter()
    print(f"{key}: training ({uptime()})", flush=True)
    train(config, resume=resume, events=TrainingEvents(on_step=on_step, on_message=print))
    print(f"{key}: trained in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def map_at_7(name: str, spec: str, pooling: str, eval_dir: Path, indexes: Path, args) -> dict:
    from beauty_app.catalog_io import read_catalog
    from beauty_app.evaluation.evaluate import evaluate
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.extractor import FeatureExtractor
    from beauty_app.retrieval.search import SearchSession

    bundle = load_model(spec, device="cpu")
    index_dir = indexes / f"{name}-{pooling}"
    if index_dir.exists():
        shutil.rmtree(index_dir)  # a retrained model of the same name must not reuse old vectors
    extractor = FeatureExtractor(bundle, pooling, batch_size=16, input_size=args.input_size, use_amp=True)
    build_index(read_catalog(eval_dir / "catalog.csv"), extractor, index_dir)
    with SearchSession(index_dir, bundle.spec, device="cpu", bundle=bundle, use_amp=True) as session:
        result = evaluate(session, eval_dir / "queries", eval_dir / "truth.csv", k=7)
    aps = np.array(list(result.result.per_query.values()), dtype=np.float64)
    se = float(aps.std(ddof=1) / math.sqrt(len(aps))) if len(aps) > 1 else None
    return {"map": float(result.result.value), "se": se, "queries": len(aps)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/instance-exp")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--stage1-iterations", type=int, default=20)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--eval-products", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--variants", default="offshelf," + ",".join(VARIANTS))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    load_before = uptime()
    started = time.perf_counter()
    mined, eval_dir = make_data(work, args)
    print(f"mined {len(mined.train)} train / {len(mined.val)} val images in {len(mined.classes)} categories", flush=True)
    indexes = work / f"indexes-{args.input_size}px"
    results: dict[str, dict] = {}
    for key in args.variants.split(","):
        if key == "offshelf":
            spec, poolings = f"imagenet:{args.backbone}", ("gap", "rmac")
        else:
            spec, poolings = str(train_variant(key, mined, work / "models", args)), VARIANTS[key][3]
        for pooling in poolings:
            entry = map_at_7(key, spec, pooling, eval_dir, indexes, args)
            results[f"{key}/{pooling}"] = entry
            print(f"RESULT {key} {LABELS[pooling]}: MAP@7 {entry['map']:.4f} ± {entry['se']:.4f} "
                  f"({entry['queries']} queries)", flush=True)
    report = {"settings": vars(args), "results": results, "uptime_before": load_before, "uptime_after": uptime(),
              "seconds": round(time.perf_counter() - started), "train_images": len(mined.train),
              "classes": len(mined.classes)}
    out = work / f"results-{args.input_size}px-{args.iterations}it.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
