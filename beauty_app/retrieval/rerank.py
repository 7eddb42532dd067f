"""Query expansion: re-query with the query averaged with its best catalog matches.

Average query expansion (Chum et al. 2007), optionally weighted as alpha-QE (Radenovic et al.
2018): q' = L2norm(q + sum_i w_i * v_i) over the top-n results v_i, w_i = max(0, s_i)^alpha.
"""

from __future__ import annotations

import numpy as np


def expand_queries(queries: np.ndarray, neighbours: np.ndarray, scores: np.ndarray, alpha: float = 3.0) -> np.ndarray:
    """Expanded, L2-normalised queries.

    Args:
        queries: (Q,D) search-space query vectors (already whitened if the index whitens).
        neighbours: (Q,n,D) search-space vectors of each query's top-n results.
        scores: (Q,n) their similarity scores; alpha=0 gives plain average QE.
    """
    weights = np.power(np.clip(scores, 0.0, None), alpha)[..., None]
    expanded = queries + (weights * neighbours).sum(axis=1)
    norms = np.linalg.norm(expanded, axis=1, keepdims=True)
    return (expanded / np.maximum(norms, 1e-12)).astype(np.float32)
