"""Query expansion works with every pooling the index stores, not only its own (issue 16, point 2)."""

from __future__ import annotations

import numpy as np
import pytest

from beauty_app.imaging import load_image
from beauty_app.retrieval.rerank import expand_queries
from beauty_app.retrieval.search import SearchSession


@pytest.mark.parametrize("pooling", ["gap", "mac", "rmac", None])
def test_query_expansion_changes_the_ranking_scores_with_every_pooling(built_index, demo_data, pooling):
    query = sorted(demo_data.queries_dir.iterdir())[0]
    with SearchSession(built_index, device="cpu") as session:
        plain = session.search_image(query, k=5, pooling=pooling)
        expanded = session.search_image(query, k=5, query_expansion=3, pooling=pooling)
    assert [h.score for h in plain.hits] != [h.score for h in expanded.hits]


def test_alternate_pooling_expansion_averages_the_query_with_its_stored_neighbours(built_index, demo_data):
    query = sorted(demo_data.queries_dir.iterdir())[1]
    with SearchSession(built_index, device="cpu") as session:
        vector = session.extractor.analyze(load_image(query), pooling="mac").vector
        rows, matrix = session.index.store.comparison_matrix("mac")
        unit = vector / np.linalg.norm(vector)
        scores = matrix @ unit
        top = np.argsort(-scores)[:3]
        expected = expand_queries(unit[None], matrix[top][None], scores[top][None])[0]
        best = int(np.argmax(matrix @ expected))
        hits = session.index.search_alternate("mac", vector, k=1, query_expansion=3)[0]
    assert hits[0].row == int(rows[best])
    assert hits[0].score == pytest.approx(float(matrix[best] @ expected), abs=1e-5)
