"""`beauty-app search|eval|score`: rank catalog images for photos, and measure MAP@k."""

from __future__ import annotations

import argparse

from .common import add_command, add_device_option, device_of, non_negative_int, print_json, results_count
from .progress import progress_bar

DENOMINATORS = ["nrel", "min", "hits"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `search`, `eval` and `score` to the top-level sub-commands."""
    search = add_command(subparsers, "search", help="rank catalog images for query photos")
    search.add_argument("--index", required=True)
    search.add_argument("images", nargs="+", metavar="IMAGE")
    search.add_argument("-k", type=results_count, default=7, help="results per query (default 7)")
    search.add_argument("--qe", type=non_negative_int, default=0, metavar="N", help="query expansion with the top N results")
    search.add_argument("--model", default=None, help="model spec (default: the index's own)")
    search.add_argument("--json", action="store_true", help="one JSON object per query")
    add_device_option(search)
    search.set_defaults(func=cmd_search)

    evaluate = add_command(subparsers, "eval", help="MAP@k of an index on a folder of queries with a truth CSV")
    evaluate.add_argument("--index", required=True)
    evaluate.add_argument("--queries", required=True, help="folder of query images (id = file stem)")
    evaluate.add_argument("--truth", required=True, help="challenge ground-truth CSV")
    evaluate.add_argument("-k", type=results_count, default=7)
    evaluate.add_argument("--denominator", default="nrel", choices=DENOMINATORS)
    evaluate.add_argument("--qe", type=non_negative_int, default=0, metavar="N")
    evaluate.add_argument("--model", default=None)
    evaluate.add_argument("--ranking-out", default=None, help="write the ranking in the submission format")
    evaluate.add_argument("--worst", type=non_negative_int, default=5, help="how many worst queries to list")
    evaluate.add_argument("--json", action="store_true")
    add_device_option(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    score = add_command(subparsers, "score", help="MAP@k of a ranking file against a truth file")
    score.add_argument("--truth", required=True)
    score.add_argument("--ranking", required=True)
    score.add_argument("-k", type=results_count, default=7)
    score.add_argument("--denominator", default="nrel", choices=DENOMINATORS,
                       help="nrel: the paper's (all relevant images); min: min(k, Nrel); hits: hits in the top k")
    score.add_argument("--json", action="store_true")
    score.set_defaults(func=cmd_score)


def cmd_search(args: argparse.Namespace) -> int:
    """Search the index for each image; print the ranking (or one JSON object per query)."""
    from ..retrieval.search import SearchSession

    with SearchSession(args.index, args.model, device=device_of(args)) as session:
        for image in args.images:
            result = session.search_image(image, k=args.k, query_expansion=args.qe)
            if args.json:
                print_json(result.as_dict())
                continue
            print(f"Query {image}")
            if result.analysis and result.analysis.top_classes:
                guesses = ", ".join(f"{name} {p:.0%}" for name, p in result.analysis.top_classes)
                print(f"  predicted: {guesses}")
            for hit in result.hits:
                print(f"  {hit.rank:>2}. {hit.score:.4f}  {hit.id}  {hit.description[:70]}  ({hit.path})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """MAP@k of the index on a query folder; optionally write the ranking in the submission format."""
    from ..challenge_files import write_ranking
    from ..evaluation.evaluate import evaluate
    from ..retrieval.search import SearchSession

    with SearchSession(args.index, args.model, device=device_of(args)) as session, \
            progress_bar(not args.quiet) as job:
        report = evaluate(session, args.queries, args.truth, k=args.k, denominator=args.denominator,
                          query_expansion=args.qe, job=job)
    if args.ranking_out:
        write_ranking(args.ranking_out, report.rankings)
    if args.json:
        print_json(report.as_dict())
        return 0
    result = report.result
    print(f"MAP@{result.k} = {result.value:.4f} over {len(result.per_query)} queries "
          f"(denominator: {result.denominator}; {report.elapsed_s:.1f} s)")
    if result.missing_queries:
        print(f"{len(result.missing_queries)} queries had no ranking (AP 0): {', '.join(result.missing_queries[:10])}")
    for query, reason in report.failures:
        print(f"  could not read query {query}: {reason}")
    print("Worst queries:")
    for query, ap in report.worst(args.worst):
        print(f"  {query}: AP {ap:.3f}")
    if args.ranking_out:
        print(f"Ranking written to {args.ranking_out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """MAP@k of a ranking file against a truth file (no model needed)."""
    from ..challenge_files import read_ranking, read_truth
    from ..evaluation.metrics import mean_average_precision

    truth = read_truth(args.truth)
    ranking = read_ranking(args.ranking)
    result = mean_average_precision(ranking, truth, k=args.k, denominator=args.denominator)
    if args.json:
        print_json({"map": result.value, "k": result.k, "denominator": result.denominator,
                    "queries": len(result.per_query), "missing_queries": result.missing_queries,
                    "per_query": result.per_query})
    else:
        print(f"MAP@{result.k} = {result.value:.4f} over {len(result.per_query)} queries "
              f"(denominator: {result.denominator})")
        if result.missing_queries:
            print(f"{len(result.missing_queries)} truth queries have no ranking row and count as AP 0.")
    return 0
