"""AP / MAP@k with the three denominators, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from beauty_app.evaluation.metrics import (
    DENOMINATORS,
    MapResult,
    average_precision,
    mean_average_precision,
    recall_at_k,
)

# Query with 3 relevant ids, hits at ranks 1 and 4: P(1) = 1/1, P(4) = 2/4, sum = 1.5.
RANKED = ["a", "x1", "x2", "b", "x3", "x4", "x5"]
RELEVANT = {"a", "b", "c"}


def test_denominators_listed() -> None:
    assert DENOMINATORS == ("nrel", "min", "hits")


@pytest.mark.parametrize(
    ("denominator", "expected"), [("nrel", 1.5 / 3), ("min", 1.5 / 3), ("hits", 1.5 / 2)]
)
def test_three_relevant_hits_at_1_and_4(denominator: str, expected: float) -> None:
    assert average_precision(RANKED, RELEVANT, k=7, denominator=denominator) == pytest.approx(expected)


def test_default_is_paper_nrel_at_7() -> None:
    assert average_precision(RANKED, RELEVANT) == pytest.approx(0.5)


@pytest.mark.parametrize(("denominator", "expected"), [("nrel", 2 / 3), ("min", 1.0), ("hits", 1.0)])
def test_more_relevant_than_k(denominator: str, expected: float) -> None:
    # k=2, both top results relevant: sum = 1/1 + 2/2 = 2; Nrel = 3, min(k, Nrel) = 2, hits = 2.
    assert average_precision(["a", "b", "c"], ["a", "b", "c"], k=2, denominator=denominator) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("denominator", "expected"),
    [("nrel", (1 / 2 + 2 / 5) / 2), ("min", (1 / 2 + 2 / 5) / 2), ("hits", (1 / 2 + 2 / 5) / 2)],
)
def test_repeated_id_counts_once_but_occupies_its_rank(denominator: str, expected: float) -> None:
    # "a" is relevant at rank 2; its repeats at 3 and 4 are not hits but push "b" down to rank 5.
    ranked = ["x", "a", "a", "a", "b", "y", "z"]
    assert average_precision(ranked, ["a", "b"], k=7, denominator=denominator) == pytest.approx(expected)


def test_repeats_cannot_inflate_the_score() -> None:
    assert average_precision(["a"] * 7, ["a", "b"]) == pytest.approx(0.5)
    assert average_precision(["a"] * 7, ["a", "b"], denominator="hits") == pytest.approx(1.0)


@pytest.mark.parametrize("denominator", DENOMINATORS)
def test_no_hits_and_empty_cases(denominator: str) -> None:
    assert average_precision(["x", "y"], ["a"], denominator=denominator) == 0.0
    assert average_precision([], ["a"], denominator=denominator) == 0.0
    assert average_precision(["a"], [], denominator=denominator) == 0.0


@pytest.mark.parametrize("denominator", DENOMINATORS)
def test_single_relevant_all_denominators_agree(denominator: str) -> None:
    assert average_precision(["x", "x2", "a"], ["a"], denominator=denominator) == pytest.approx(1 / 3)


def test_hit_beyond_k_does_not_count() -> None:
    ranked = ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "a"]
    assert average_precision(ranked, ["a"], k=7) == 0.0
    assert average_precision(ranked, ["a"], k=8) == pytest.approx(1 / 8)


def test_duplicate_relevant_ids_count_once() -> None:
    assert average_precision(["a"], ["a", "a", "b"]) == pytest.approx(0.5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="denominator"):
        average_precision(RANKED, RELEVANT, denominator="kaggle")
    with pytest.raises(ValueError, match="k"):
        average_precision(RANKED, RELEVANT, k=0)
    with pytest.raises(ValueError):
        mean_average_precision({}, {}, k=7)


def test_mean_average_precision_over_truth_queries() -> None:
    truth = {"q1": ["a", "b", "c"], "q2": ["z"], "q3": ["m"]}
    rankings = {"q1": RANKED, "q2": ["y", "z"], "extra": ["a"]}  # q3 missing, "extra" ignored
    result = mean_average_precision(rankings, truth)
    assert isinstance(result, MapResult)
    assert result.per_query == pytest.approx({"q1": 0.5, "q2": 0.5, "q3": 0.0})
    assert result.value == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert result.missing_queries == ["q3"]
    assert (result.k, result.denominator) == (7, "nrel")

    hits = mean_average_precision(rankings, truth, k=7, denominator="hits")
    assert hits.value == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert hits.denominator == "hits"


def test_recall_at_k() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6], [7, -1, -1]])
    approx = np.array([[3, 2, 9], [6, 5, 4], [7, -1, -1]])
    # Row 1: 2/3; row 2: 3/3; row 3: only one valid exact id, found: 1/1.
    assert recall_at_k(approx, exact, 3) == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert recall_at_k(approx, exact, 1) == pytest.approx((0 + 0 + 1) / 3)
    # -1 in both rows must not count as a match.
    assert recall_at_k(np.array([[-1, -1]]), np.array([[5, -1]]), 2) == 0.0
    with pytest.raises(ValueError):
        recall_at_k(approx, exact, 4)
    with pytest.raises(ValueError):
        recall_at_k(approx[:2], exact, 2)
