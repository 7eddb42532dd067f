"""`beauty-app catalog build|merge|add|remove|info|verify|export`: make and maintain a catalog index."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .common import (POOLING_CHOICES, add_command, add_device_option, device_of, folder_or_new, input_side,
                     non_negative_int, parse_scales, positive_int, print_json, scales_list)
from .progress import progress_bar, progress_for


def _add_runtime_option(parser: argparse.ArgumentParser) -> None:
    # No `choices`: the names live in retrieval.runtime, which imports torch; it refuses unknown ones.
    parser.add_argument("--runtime", default=None, metavar="NAME",
                        help="indexing runtime: auto (default: the fastest measured on this machine for this "
                             "model, cached; or $BEAUTY_APP_RUNTIME), torch, torch-channels-last, torch-compile, "
                             "onnxruntime, openvino")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `catalog` and its actions to the top-level sub-commands."""
    catalog = add_command(subparsers, "catalog", help="build and maintain a catalog index")
    actions = catalog.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")

    build = add_command(actions, "build", help="featurise a catalog CSV or image folder into an index")
    build.add_argument("--catalog", required=True, help="CSV with id,path,description[,category] or an image folder")
    build.add_argument("--model", required=True, help="checkpoint path or imagenet:<backbone>")
    build.add_argument("--pooling", default="srmac", choices=POOLING_CHOICES)
    build.add_argument("--out", default=None, type=folder_or_new, help="index directory to create")
    _add_index_options(build)
    build.add_argument("--scales", default=(1.0,), type=scales_list, help="multi-scale extraction factors, e.g. 1,0.707,1.414")
    build.add_argument("--input-size", type=input_side, default=None, help="network input side (default: the model's)")
    build.add_argument("--batch-size", type=positive_int, default=16)
    build.add_argument("--workers", type=positive_int, default=2, help="image decoding processes")
    build.add_argument("--fp32", action="store_true", help="disable bf16/fp16 autocast (eager torch, exact fp32)")
    _add_runtime_option(build)
    build.add_argument("--resume", action="store_true", help="finish an interrupted build in --out")
    build.add_argument("--allow-outside-root", action="store_true",
                       help="let catalog CSV paths point outside the CSV's folder")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.add_argument("--progress", default="bar", choices=["bar", "jsonl", "none"],
                       help="terminal bar (default), one JSON object per progress step on stdout, or nothing")
    build.add_argument("--shard-out", default=None, metavar="DIR", type=folder_or_new,
                       help="write this process's shard of a distributed build into DIR (under torchrun: one "
                            "process per GPU or node, each takes every WORLD-th catalog row); then `catalog merge`")
    build.add_argument("--shard", default=None, metavar="RANK/WORLD",
                       help="with --shard-out and without torchrun: write shard RANK of WORLD (e.g. 0/4)")
    add_device_option(build)
    build.set_defaults(func=cmd_catalog_build)

    merge = add_command(actions, "merge", help="merge the shards of a distributed build into one index")
    merge.add_argument("--shards", required=True, nargs="+", metavar="DIR",
                       help="shard folders, or folders holding shard-* folders (the --shard-out of each node)")
    merge.add_argument("--out", required=True, type=folder_or_new, help="index directory to create (run again to finish an interrupted merge)")
    _add_index_options(merge)
    merge.add_argument("--json", action="store_true", help="print the summary as JSON")
    merge.set_defaults(func=cmd_catalog_merge)

    add = add_command(actions, "add", help="add new or changed images of a catalog to an index "
                      "(made with the index's own model, pooling, scales and input size)")
    add.add_argument("--index", required=True)
    add.add_argument("--catalog", required=True)
    add.add_argument("--batch-size", type=positive_int, default=16)
    add.add_argument("--fp32", action="store_true")
    _add_runtime_option(add)
    add.add_argument("--allow-outside-root", action="store_true")
    add.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_device_option(add)
    add.set_defaults(func=cmd_catalog_add)

    remove = add_command(actions, "remove", help="remove catalog ids from an index")
    remove.add_argument("--index", required=True)
    remove.add_argument("ids", nargs="+", metavar="ID")
    remove.add_argument("--json", action="store_true", help="print the counts as JSON")
    remove.set_defaults(func=cmd_catalog_remove)

    info = add_command(actions, "info", help="describe an index")
    info.add_argument("--index", required=True)
    info.add_argument("--skipped", action="store_true", help="list skipped files with reasons")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_catalog_info)

    verify = add_command(actions, "verify", help="check every row, vector and file of an index against its "
                         "checksums (opening an index checks its settings; rows are checked when read)")
    verify.add_argument("--index", required=True)
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=cmd_catalog_verify)

    export = add_command(actions, "export", help="write the ids, paths, descriptions, categories and vectors of an "
                         "index to FILE.npy (a structured array), FILE.npz or FILE.parquet (needs the export extra)")
    export.add_argument("--index", required=True)
    export.add_argument("--out", required=True, metavar="FILE", help="output file; its suffix picks the format")
    export.add_argument("--json", action="store_true", help="print the summary as JSON")
    export.set_defaults(func=cmd_catalog_export)


def _add_index_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-type", default="auto", choices=["auto", "flat", "ivf", "hnsw", "pq"],
                   help="auto (default): exact search for small catalogs, else the most accurate IVF index that "
                        "fits --memory-budget, tuned to --recall-target; flat = always exact")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="memory the search structure may take with --index-type auto, e.g. 1GiB or 800M "
                        "(default 1GiB)")
    p.add_argument("--recall-target", type=float, default=None, metavar="R",
                   help="recall@7 against exact search that auto tunes for (default 0.95)")
    p.add_argument("--whiten", type=non_negative_int, nargs="?", const=0, default=None, metavar="DIM",
                   help="learn PCA whitening on the catalog (optionally reduced to DIM dimensions)")


def _index_options(args: argparse.Namespace) -> dict:
    """--index-type, --memory-budget, --recall-target and --whiten as build/merge keyword arguments."""
    from ..retrieval.ann import parse_memory

    # --whiten alone (0) learns full-dimension whitening; --whiten N also reduces to N dimensions.
    whitening = None if args.whiten is None else (True if args.whiten == 0 else args.whiten)
    if args.recall_target is not None and not 0 < args.recall_target <= 1:
        raise UserError("--recall-target must be above 0 and at most 1, e.g. 0.95.")
    return {"index_type": args.index_type, "whitening": whitening,
            "memory_budget": None if args.memory_budget is None else parse_memory(args.memory_budget),
            "recall_target": args.recall_target}


def _check_memory_budget(options: dict, rows: int, dim: int) -> None:
    """Refuse a --memory-budget too small for the catalog now, not after every image is featurised."""
    from ..retrieval.ann import plan_index

    if options["index_type"] != "auto" or options["memory_budget"] is None:
        return
    whitening = options["whitening"]
    # --whiten N reduces the vectors to N dimensions, whitening to at most one per row: the estimate
    # never exceeds what the build will hold, so a budget refused here would be refused at the end.
    search_dim = whitening if isinstance(whitening, int) and not isinstance(whitening, bool) else dim
    plan_index("auto", rows, min(search_dim, dim) if whitening is None else min(search_dim, dim, rows),
               options["memory_budget"])


def summary_lines(summary) -> list[str]:
    """A build or add summary as the lines the terminal shows."""
    lines = [f"Indexed {summary.indexed} images in {summary.elapsed_s:.1f} s ({summary.rate:.1f} img/s)"
             + (f", {summary.already_done} were already done" if summary.already_done else "")
             + f"; the index holds {summary.info.get('count', 0)} images."]
    lines += [f"Note: {note}" for note in summary.notes]
    if summary.skipped:
        lines.append(f"Skipped {len(summary.skipped)} files:")
        lines += [f"  {item}: {reason}" for item, reason in summary.skipped[:50]]
        if len(summary.skipped) > 50:
            lines.append(f"  ... and {len(summary.skipped) - 50} more (see `catalog info --skipped`)")
    return lines


def build_summary_dict(summary) -> dict:
    """A build or add summary as the JSON object `--json` prints."""
    return {"indexed": summary.indexed, "already_done": summary.already_done,
            "skipped": [{"item": i, "reason": r} for i, r in summary.skipped],
            "elapsed_s": round(summary.elapsed_s, 3), "notes": summary.notes, "index": summary.info}


def _print_build(args: argparse.Namespace, summary, header: bool = True) -> None:
    if args.json:
        print_json(build_summary_dict(summary))
        return
    if header:
        print("\n".join(summary_lines(summary)))
    info = summary.info
    if info.get("structure"):
        recall = info.get("recall_at_7")
        measured = isinstance(recall, float) and not info["structure"].startswith("exact")
        print(f"Search structure: {info['structure']}" + (f", {info['index_size']}" if info.get("index_size") else "")
              + (f"; recall@7 {recall:.3f} against exact search" if measured else "") + ".")


def cmd_catalog_build(args: argparse.Namespace) -> int:
    """Featurise a catalog into a new index, or into this process's shard of a distributed build."""
    from ..retrieval.session import build_catalog, load_catalog, new_extractor

    if (args.out is None) == (args.shard_out is None):
        raise UserError("Give either --out (one index) or --shard-out (this process's shard of a distributed build).")
    if args.shard is not None and args.shard_out is None:
        raise UserError("--shard needs --shard-out.")
    options = _index_options(args)
    distributed = None
    if args.shard_out is not None:
        from ..retrieval.shards import distributed_from_environment, parse_shard

        distributed = distributed_from_environment(parse_shard(args.shard) if args.shard else None)
    try:
        device = device_of(args)
        if distributed is not None and distributed.world > 1 and device.type == "cuda" and device.index is None:
            import torch

            device = torch.device("cuda", distributed.local_rank % torch.cuda.device_count())  # one GPU per process
        # The model first: a wrong --model or --pooling fails at once, not after reading a large catalog.
        extractor = new_extractor(args.model, args.pooling, device=device, scales=parse_scales(args.scales),
                                  input_size=args.input_size, batch_size=args.batch_size, use_amp=not args.fp32,
                                  decode_workers=args.workers, runtime=args.runtime or "auto")
        quiet_rank = distributed is not None and distributed.rank != 0
        with (progress_bar(False) if quiet_rank else progress_for(args)) as job:
            catalog = load_catalog(args.catalog, allow_outside_root=args.allow_outside_root, job=job)
        if distributed is not None:
            return _build_shard(args, catalog, extractor, distributed)
        _check_memory_budget(options, len(catalog.entries), extractor.dim)
        with progress_for(args) as job:
            summary = build_catalog(catalog, args.out, extractor, resume=args.resume, job=job, **options)
    finally:
        if distributed is not None:
            distributed.close()
    _print_build(args, summary)
    return 0


def _build_shard(args: argparse.Namespace, catalog, extractor, distributed) -> int:
    """This process's shard of a distributed build; every process checks the others read the same catalog."""
    from ..retrieval.shards import build_shard, catalog_fingerprint

    rank, world = distributed.rank, distributed.world
    fingerprints = distributed.gather(catalog_fingerprint(catalog))
    if len(set(fingerprints)) > 1:
        raise UserError("The processes of this build read different catalogs; give every node the same catalog file.")
    with progress_bar(not args.quiet and rank == 0) as job:
        summary = build_shard(catalog, extractor, args.shard_out, rank, world, job=job)
    counts = distributed.gather((summary.indexed, summary.already_done, len(summary.skipped)))
    if args.json:
        print_json({"shard": summary.info.get("shard"), "indexed": summary.indexed,
                    "already_done": summary.already_done, "elapsed_s": round(summary.elapsed_s, 3),
                    "skipped": [{"item": i, "reason": r} for i, r in summary.skipped], "notes": summary.notes})
    elif rank == 0 or len(counts) == 1:
        indexed, done, skipped = (sum(c[i] for c in counts) for i in range(3))
        print(f"All {world} shards written to {args.shard_out}" if len(counts) > 1 else
              f"Shard {rank} of {world} written to {args.shard_out}")
        print(f"Indexed {indexed} images in {summary.elapsed_s:.1f} s" + (f", {done} were already done" if done else "")
              + (f"; {skipped} files skipped" if skipped else "") + ".")
        print(f"Merge the shards with: beauty-app catalog merge --shards {args.shard_out} --out INDEX_DIR")
    return 0


def cmd_catalog_merge(args: argparse.Namespace) -> int:
    """Merge the shards of a distributed build into one index."""
    from ..retrieval.shards import merge_shards

    with progress_bar(not args.quiet) as job:
        summary = merge_shards(args.shards, args.out, job=job, **_index_options(args))
    if not args.json:
        shards = summary.info.get("merged_shards")
        print(f"Merged {summary.indexed} images from {shards} shards in {summary.elapsed_s:.1f} s"
              + (f", {summary.already_done} were already merged" if summary.already_done else "")
              + f"; the index holds {summary.info.get('count', 0)} images"
              + (f" and lists {len(summary.skipped)} skipped files (see `catalog info --skipped`)."
                 if summary.skipped else "."))
    _print_build(args, summary, header=args.json)
    return 0


def cmd_catalog_add(args: argparse.Namespace) -> int:
    """Add a catalog's new and changed images with the index's own extraction settings."""
    from ..retrieval.session import add_catalog

    with progress_bar(not args.quiet) as job:
        summary = add_catalog(args.index, args.catalog, device=device_of(args), batch_size=args.batch_size,
                              use_amp=not args.fp32, runtime=args.runtime or "auto",
                              allow_outside_root=args.allow_outside_root, job=job)
    if args.json:
        print_json(build_summary_dict(summary))
    else:
        print("\n".join(summary_lines(summary)))
    return 0


def cmd_catalog_remove(args: argparse.Namespace) -> int:
    """Remove catalog ids from an index."""
    from ..retrieval.build import remove_from_index

    removed = remove_from_index(args.index, args.ids)
    if args.json:
        print_json({"index": str(args.index), "removed": removed, "asked": len(args.ids)})
        return 0
    print(f"Removed {removed} of {len(args.ids)} ids from {args.index}.")
    return 0


def cmd_catalog_info(args: argparse.Namespace) -> int:
    """Describe an index (and list its skipped files with --skipped)."""
    from ..retrieval.index import CatalogIndex

    with CatalogIndex.open(args.index) as index:
        info = index.info()
        skipped = index.skipped()
    if args.json:
        print_json({**info, "skipped_items": [{"item": i, "reason": r} for i, r in skipped]})
        return 0
    for key, value in info.items():
        print(f"{key:>12}: {value}")
    if args.skipped:
        for item, reason in skipped:
            print(f"  skipped {item}: {reason}")
    return 0


def cmd_catalog_verify(args: argparse.Namespace) -> int:
    """Check a whole index: every chunk of rows against its checksums, SQLite's structure, the faiss file."""
    from ..retrieval.index import CatalogIndex

    with CatalogIndex.open(args.index) as index:
        rows = index.verify()
    if args.json:
        print_json({"index": str(args.index), "intact": True, "rows": rows})
        return 0
    print(f"The index in {args.index} is intact: its settings, {rows} catalog rows with their vectors and comparison "
          f"vectors, and its search structure match their checksums.")
    return 0


def cmd_catalog_export(args: argparse.Namespace) -> int:
    """Export an index's rows and vectors for other tools (see retrieval/export.py for the formats)."""
    from ..retrieval.export import export_index

    summary = export_index(args.index, args.out)
    if args.json:
        print_json(summary.as_dict())
    else:
        print(f"Exported {summary.rows} rows with {summary.dim}-dimensional vectors to {summary.out}.")
    return 0
