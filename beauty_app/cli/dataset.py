"""`beauty-app dataset mine|masks`: a labelled training set mined from a catalog, and its masks.

The work is done by :func:`beauty_app.training.mining.mine_dataset` and
:func:`beauty_app.training.masks.build_mask_cache`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json

from .common import add_command, folder_or_new, non_negative_int, positive_int
from .progress import progress_bar

#: beauty_app.training.titles.MAX_TITLE_LABELS, repeated so that registering the command imports no numpy.
MAX_TITLE_LABELS = 3000


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``dataset mine`` on the top-level sub-command parsers.

    Args:
        subparsers: The object returned by ``parser.add_subparsers()`` of the main parser.

    Returns:
        The ``dataset`` parser (for callers that add more actions).
    """
    dataset = add_command(subparsers, "dataset", help="mine a labelled training set from catalog descriptions")
    actions = dataset.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")

    mine = add_command(
        actions, "mine", help="TF-IDF categories from descriptions -> class lists, split, mean/std (the paper's Perfect-30K)",
        description="Find product categories in the catalog descriptions (TF-IDF, or a keyword file), give each "
                    "image whose description names exactly one category that label, cap and split them 8:2 per "
                    "class, and measure the RGB mean/std. Writes classes.txt, train.csv, val.csv, stats.json, "
                    "report.md and keywords.txt to --out.")
    mine.add_argument("--catalog", required=True, help="catalog CSV with id,path,description")
    mine.add_argument("--out", required=True, type=folder_or_new, help="folder for the mined dataset")
    mine.add_argument("--categories", type=positive_int, default=44, metavar="N", help="most categories to keep (default 44)")
    mine.add_argument("--per-category", type=positive_int, default=800, metavar="N",
                      help="most images per category (default 800)")
    mine.add_argument("--keywords", default=None, metavar="FILE",
                      help="keyword file ('category: synonym, synonym' per line) or 'default' for the built-in "
                           "44 categories; without it categories are proposed by TF-IDF and written to "
                           "proposed_keywords.txt for editing")
    mine.add_argument("--min-images", type=positive_int, default=10, metavar="N",
                      help="drop categories with fewer images (default 10)")
    mine.add_argument("--val-fraction", type=float, default=0.2, help="share of each class for validation (default 0.2)")
    mine.add_argument("--stats-images", type=positive_int, default=2000, metavar="N",
                      help="most images used for the mean/std (default 2000)")
    mine.add_argument("--seed", type=int, default=0, help="seed of the sampling and the split (default 0)")
    mine.add_argument("--workers", type=positive_int, default=2, help="threads decoding images (default 2)")
    mine.add_argument("--allow-outside-root", action="store_true",
                      help="let catalog CSV paths point outside the CSV's folder")
    mine.add_argument("--coherence-model", default=None, metavar="SPEC",
                      help="measure how alike each category's images look with this model's features (e.g. "
                           "imagenet:efficientnet_lite0) and drop proposed categories that look no more alike than "
                           "random images (proper names spread over unrelated products)")
    mine.add_argument("--min-coherence", type=float, default=None, metavar="X",
                      help="least coherence score a proposed category keeps (default 0.1; 0 = as alike as chance)")
    mine.add_argument("--title-labels", type=non_negative_int, default=MAX_TITLE_LABELS, metavar="N",
                      help="most title labels (frequent description n-grams; each image with one is kept, without a "
                           "category when it names none or several); 0 = the paper's rule, images without exactly "
                           "one category are dropped (default %(default)s)")
    mine.add_argument("--json", action="store_true", help="print the summary as JSON")
    mine.set_defaults(func=cmd_dataset_mine)

    masks = add_command(
        actions, "masks", help="make the pseudo saliency/text masks of a mined set and preview them as a contact sheet")
    masks.add_argument("--data", required=True, help="folder written by `dataset mine`")
    masks.add_argument("--preview", default=None, metavar="PNG", help="write a contact sheet of masks over images")
    masks.add_argument("--limit", type=positive_int, default=48, help="images on the contact sheet (default 48)")
    masks.add_argument("--workers", type=positive_int, default=2)
    masks.add_argument("--json", action="store_true", help="print the summary as JSON")
    masks.set_defaults(func=cmd_dataset_masks)
    return dataset


def cmd_dataset_masks(args: argparse.Namespace) -> int:
    """Build (or reuse) the mask cache next to a mined set; optionally write a contact sheet."""
    from collections import Counter
    from pathlib import Path

    from ..training.mask_cache import build_mask_cache
    from ..training.mask_preview import mask_contact_sheet
    from ..training.mining import MinedDataset
    from ..training.data import MASK_CACHE_DIR

    dataset = MinedDataset.load(args.data)
    items = [(sample.id, Path(sample.path)) for sample in dataset.train + dataset.val]
    cache = Path(dataset.root) / MASK_CACHE_DIR
    with progress_bar(not args.quiet) as job:
        statuses = build_mask_cache(items, cache, workers=args.workers, job=job)
    counts = Counter(statuses.values())
    sheet = mask_contact_sheet(items, cache, args.preview, limit=args.limit) if args.preview else None
    if args.json:
        print(json.dumps({"cache": str(cache), "images": len(statuses), "statuses": dict(counts),
                          "contact_sheet": None if sheet is None else str(sheet)}, ensure_ascii=False))
        return 0
    print(f"Masks for {len(statuses)} images in {cache}: "
          + ", ".join(f"{count} {status}" for status, count in counts.most_common()))
    if sheet is not None:
        print(f"Contact sheet: {sheet}")
    return 0


def cmd_dataset_mine(args: argparse.Namespace) -> int:
    """Run the mining and print a short summary (or JSON with ``--json``)."""
    from ..training.mining import mine_dataset
    from ..training.coherence import MIN_COHERENCE, backbone_embedder

    coherence = backbone_embedder(args.coherence_model) if args.coherence_model else None
    min_coherence = MIN_COHERENCE if args.min_coherence is None else args.min_coherence
    with progress_bar(not args.quiet) as job:
        ds = mine_dataset(args.catalog, args.out, n_categories=args.categories, per_category=args.per_category,
                          keywords=args.keywords, min_images=args.min_images, val_fraction=args.val_fraction,
                          seed=args.seed, stats_images=args.stats_images, workers=args.workers,
                          allow_outside_root=args.allow_outside_root, coherence=coherence,
                          min_coherence=min_coherence, title_labels=args.title_labels, job=job)
    stats = ds.stats
    dropped = stats["dropped"]
    if args.json:
        print(json.dumps({
            "out": str(ds.root), "classes": ds.classes, "counts": stats["counts"], "train": len(ds.train),
            "val": len(ds.val), "mean": list(ds.mean), "std": list(ds.std), "stats_images": stats["stats_images"],
            "keyword_source": stats["keyword_source"], "dropped": dropped,
            "report": str(ds.root / "report.md"), "keywords": str(ds.root / "keywords.txt"),
            "title_labels": len(ds.titles), "kept": stats.get("kept"),
        }, ensure_ascii=False))
        return 0
    print(f"Mined {len(ds.classes)} categories, {len(ds.train) + len(ds.val)} images "
          f"({len(ds.train)} train, {len(ds.val)} val) into {ds.root}")
    width = max(len(c) for c in ds.classes)
    for label, name in enumerate(ds.classes):
        c = stats["counts"][name]
        print(f"  {label:>3} {name:<{width}}  {c['train'] + c['val']:>5}  ({c['train']} train, {c['val']} val)")
    print(f"RGB mean {', '.join(f'{v:.4f}' for v in ds.mean)}; std {', '.join(f'{v:.4f}' for v in ds.std)} "
          f"(from {stats['stats_images']} images)")
    if ds.has_titles:
        kept = stats["kept"]
        print(f"Title labels: {len(ds.titles)} (top: {', '.join(ds.titles[:8])}); kept {kept['with_category']} images "
              f"with a category, {kept['titles_only']} with title labels only; dropped {kept['dropped']}")
    print(("Without a category" if ds.has_titles else "Left out")
          + f": {dropped['unmatched']} descriptions naming no category, {dropped['ambiguous']} naming several, "
          f"{dropped['unreadable']} unreadable images"
          + (f", {len(dropped['small_categories'])} categories under {args.min_images} images" if
             dropped["small_categories"] else "")
          + (f", visually incoherent categories {', '.join(dropped['incoherent'])}" if dropped["incoherent"] else "")
          + ".")
    print(f"Report: {ds.root / 'report.md'}\nKeywords: {ds.root / 'keywords.txt'} "
          "(edit and re-run with --keywords FILE)")
    return 0
