"""Retrieval metrics: AP and MAP@k as the paper and the Perfect-500K challenge define them.

``AP(q) = sum_{i=1..k} P(i) * rel(i) / D``, where ``P(i)`` is the precision of the top ``i``
results and ``rel(i)`` is 1 when result ``i`` is relevant. Public code disagrees on ``D``, so all
three variants are offered; they agree whenever a query has exactly one relevant image:

* ``"nrel"``: the number of relevant catalog ids (the paper's Nrel; the default);
* ``"min"``: ``min(k, Nrel)`` (Kaggle ``apk`` style);
* ``"hits"``: the number of relevant ids found in the top ``k`` (several 2018 challenge solutions).

A catalog id repeated in a ranking counts only at its first position; later copies still occupy
their rank, so padding a ranking with repeats cannot raise the score.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

DENOMINATORS: tuple[str, ...] = ("nrel", "min", "hits")


def _check_args(k: int, denominator: str) -> None:
    if denominator not in DENOMINATORS:
        raise ValueError(f"unknown AP denominator {denominator!r}; choose one of {', '.join(DENOMINATORS)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def average_precision(
    ranked: Sequence[str], relevant: Collection[str], k: int = 7, denominator: str = "nrel"
) -> float:
    """Average precision of one ranking, cut at ``k``.

    Args:
        ranked: Catalog ids, best first.
        relevant: The query's relevant catalog ids (duplicates are ignored).
        k: Cut-off rank.
        denominator: ``"nrel"``, ``"min"`` or ``"hits"`` (see the module docstring).

    Returns:
        AP in [0, 1]; 0.0 when ``relevant`` is empty or nothing relevant is in the top ``k``.

    Raises:
        ValueError: Unknown denominator or ``k < 1``.
    """
    _check_args(k, denominator)
    relevant_set = set(relevant)
    if not relevant_set:
        return 0.0
    seen: set[str] = set()
    hits = 0
    total = 0.0
    for rank, item in enumerate(itertools.islice(ranked, k), start=1):
        if item in relevant_set and item not in seen:
            hits += 1
            total += hits / rank
        seen.add(item)
    if denominator == "nrel":
        norm = len(relevant_set)
    elif denominator == "min":
        norm = min(k, len(relevant_set))
    else:
        norm = hits
    return total / norm if norm else 0.0


@dataclass
class MapResult:
    """Mean average precision over a truth file's queries.

    Attributes:
        value: The MAP@k.
        per_query: AP of every truth query (0.0 for queries without a ranking).
        missing_queries: Truth queries that had no ranking, in truth order.
        k: Cut-off rank used.
        denominator: AP denominator used.
    """

    value: float
    per_query: dict[str, float] = field(default_factory=dict)
    missing_queries: list[str] = field(default_factory=list)
    k: int = 7
    denominator: str = "nrel"


def mean_average_precision(
    rankings: Mapping[str, Sequence[str]],
    truth: Mapping[str, Collection[str]],
    k: int = 7,
    denominator: str = "nrel",
) -> MapResult:
    """MAP@k over the truth's queries.

    Args:
        rankings: ``{query_id: [catalog ids, best first]}``; queries not in ``truth`` are ignored.
        truth: ``{query_id: relevant catalog ids}``.
        k: Cut-off rank.
        denominator: ``"nrel"``, ``"min"`` or ``"hits"``.

    Returns:
        The MAP with per-query APs; truth queries without a ranking score 0 and are listed in
        ``missing_queries``.

    Raises:
        ValueError: ``truth`` is empty, unknown denominator or ``k < 1``.
    """
    _check_args(k, denominator)
    if not truth:
        raise ValueError("the ground truth has no queries, so MAP is undefined")
    per_query: dict[str, float] = {}
    missing: list[str] = []
    for query, relevant in truth.items():
        ranked = rankings.get(query)
        if ranked is None:
            missing.append(query)
            per_query[query] = 0.0
        else:
            per_query[query] = average_precision(ranked, relevant, k, denominator)
    value = float(sum(per_query.values()) / len(per_query))
    return MapResult(value=value, per_query=per_query, missing_queries=missing, k=k, denominator=denominator)


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """How many of the exact top-``k`` neighbours an approximate index also returns.

    Per query: ``|approx[:k] ∩ exact[:k]| / n``, where ``n`` is the number of valid exact ids
    among the first ``k`` (equal to ``k`` unless the index holds fewer than ``k`` vectors). Id
    ``-1`` (faiss' "no result") is ignored on both sides; queries whose exact row has no valid id
    are left out of the mean.

    Args:
        approx: ``(n_queries, >= k)`` ids from the index under test.
        exact: ``(n_queries, >= k)`` ids from exhaustive search.
        k: Cut-off.

    Returns:
        Mean recall in [0, 1] (1.0 if no query has a valid exact id).

    Raises:
        ValueError: Shapes do not match or are narrower than ``k``.
    """
    approx = np.asarray(approx)
    exact = np.asarray(exact)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if approx.ndim != 2 or exact.ndim != 2 or approx.shape[0] != exact.shape[0]:
        raise ValueError(f"approx {approx.shape} and exact {exact.shape} must be 2-D with the same rows")
    if approx.shape[1] < k or exact.shape[1] < k:
        raise ValueError(f"k={k} exceeds the result width ({approx.shape[1]}, {exact.shape[1]})")
    recalls: list[float] = []
    for a_row, e_row in zip(approx[:, :k], exact[:, :k]):
        truth = {int(i) for i in e_row if i != -1}
        if not truth:
            continue
        found = {int(i) for i in a_row if i != -1}
        recalls.append(len(found & truth) / len(truth))
    return float(np.mean(recalls)) if recalls else 1.0
