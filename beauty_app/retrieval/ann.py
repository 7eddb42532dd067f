"""Choosing the search structure for a catalog: exact or approximate, by size and memory budget.

Pure planning and bookkeeping (no faiss here; :mod:`beauty_app.retrieval.index.structures` builds what
the plan says). The rule, in the spirit of autofaiss:

* **Small catalogs** (one query costs at most :data:`EXACT_WORK` multiply-adds, about 25,000
  vectors of 1280 dimensions, a few milliseconds on one core): exact search (``flat``), or an
  exhaustive scan of 8-bit codes (``sq8``) when the float vectors do not fit the budget.
* **Larger catalogs**: an inverted file of about sqrt(N) lists, trained on a sample, whose lists
  hold full vectors (``ivf``) when they fit the budget, 8-bit scalar-quantised vectors (``ivfsq8``,
  a quarter of the memory, recall barely lower) when those fit, and product-quantised codes
  (``ivfpq``, as many bytes per vector as the budget allows) otherwise.

Trained structures learn from a sample (64 vectors per list, 20,000 to 65,536), never from
every vector. The number of lists searched (nprobe) is then raised until recall@7 against exact
search, on 500 catalog vectors held out of training, reaches the target by its 95% lower
confidence bound; the recall reached is stored with the index and shown by `catalog info` and
the app. docs/scale.md has the measurements.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UserError

#: Index types `catalog build --index-type` accepts; "auto" plans by catalog size and memory budget.
INDEX_TYPE_CHOICES = ("auto", "flat", "ivf", "hnsw", "pq")
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of search structure, 1 GiB
DEFAULT_RECALL_TARGET = 0.95
RECALL_K = 7
#: Exact search is chosen while one query costs at most this many multiply-adds (N x dim).
EXACT_WORK = 1 << 25
#: Catalog vectors held out of training and used as queries to measure recall at build time.
RECALL_QUERIES = 500
#: At most this many vectors train an IVF quantiser (k-means) or a scalar/product quantiser
#: (65,536 x 1280 floats = 320 MiB while finalising); fewer when the lists need fewer.
TRAIN_SAMPLE_MAX = 65_536
TRAIN_POINTS_PER_LIST = 64
TRAIN_SAMPLE_MIN = 20_000  # product quantisers want about 10,000 (39 x 256 codes)
#: faiss wants about 39 training points per k-means centroid.
POINTS_PER_CENTROID = 39
NPROBE_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
_ID_BYTES = 8  # faiss stores one int64 id per vector in inverted lists
_PQ_M = (128, 96, 80, 64, 48, 40, 32, 24, 20, 16, 12, 10, 8, 5, 4, 2, 1)

KIND_LABELS = {"flat": "exact (flat)", "sq8": "exhaustive, 8-bit codes (SQ8)", "ivf": "IVF-Flat",
               "ivfsq8": "IVF-SQ8", "ivfpq": "IVF-PQ", "hnsw": "HNSW"}


@dataclass(frozen=True)
class IndexPlan:
    """What to build: the faiss structure, its parameters and the memory it will take.

    Attributes:
        kind: flat | sq8 | ivf | ivfsq8 | ivfpq | hnsw.
        n: catalog vectors. dim: their (search) dimension.
        nlist: inverted lists (IVF kinds). pq_m: bytes per vector of a product quantiser.
        hnsw_m: graph degree (hnsw). nprobe / ef_search: search-time parameter (0: none).
        tune: raise nprobe at build time until the recall target is met (auto plans).
    """

    kind: str
    n: int
    dim: int
    nlist: int = 0
    pq_m: int = 0
    hnsw_m: int = 0
    nprobe: int = 0
    ef_search: int = 0
    tune: bool = False

    @property
    def trained(self) -> bool:
        return self.kind not in ("flat", "hnsw")

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def training_size(self) -> int:
        """Vectors to train on: 64 per inverted list (faiss wants 39 to 256), within the bounds above."""
        if not self.trained:
            return 0
        return min(TRAIN_SAMPLE_MAX, max(TRAIN_POINTS_PER_LIST * self.nlist, TRAIN_SAMPLE_MIN))

    def estimated_bytes(self) -> int:
        """Memory the built structure takes (vectors or codes, ids, centroids, graph)."""
        return estimate_bytes(self.kind, self.n, self.dim, self.nlist, self.pq_m, self.hnsw_m)

    def describe(self) -> str:
        """One line for `catalog info`: e.g. "IVF-SQ8, 707 lists, nprobe 8"."""
        text = KIND_LABELS.get(self.kind, self.kind)
        if self.kind == "ivfpq":
            text += f" ({self.pq_m} bytes/vector)"
        if self.nlist:
            text += f", {self.nlist:,} lists"
        if self.nprobe:
            text += f", nprobe {self.nprobe}"
        if self.kind == "hnsw":
            text += f", M {self.hnsw_m}, efSearch {self.ef_search}"
        return text

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexPlan":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)


def estimate_bytes(kind: str, n: int, dim: int, nlist: int = 0, pq_m: int = 0, hnsw_m: int = 0) -> int:
    """Bytes of a faiss structure of `kind` over `n` vectors of `dim` dimensions (a close estimate)."""
    centroids = nlist * dim * 4
    if kind == "flat":
        return n * dim * 4
    if kind == "sq8":
        return n * dim + 2 * dim * 4
    if kind == "ivf":
        return n * (dim * 4 + _ID_BYTES) + centroids
    if kind == "ivfsq8":
        return n * (dim + _ID_BYTES) + centroids + 2 * dim * 4
    if kind == "ivfpq":
        return n * (pq_m + _ID_BYTES) + centroids + 256 * dim * 4
    if kind == "hnsw":
        # level 0 keeps 2M int32 neighbours, the upper levels about 1/M as many again
        return n * (dim * 4 + int(2 * hnsw_m * 4 * (1 + 1 / max(hnsw_m, 1))) + 16)
    raise ValueError(f"unknown index kind {kind!r}")


def default_nlist(n: int) -> int:
    """About sqrt(N) inverted lists, with enough training points for each centroid."""
    return max(1, min(int(round(math.sqrt(max(n, 1)))), n // POINTS_PER_CENTROID, 65_536))


def plan_index(index_type: str, n: int, dim: int, memory_budget: int | None = None,
               exact_work: int | None = None) -> IndexPlan:
    """The structure `catalog build --index-type TYPE` makes for `n` vectors of `dim` dimensions.

    Explicit types keep their fixed settings (ivf: IVF-Flat with about 4 sqrt(N) lists and nprobe
    16; pq: IVF-PQ with 8-bit codes; hnsw: M 32, efSearch 128; the IVF types become exact search
    when the catalog is too small to train them). "auto" chooses by size and `memory_budget`
    (bytes; default 1 GiB); see the module docstring.

    Raises:
        UserError: an unknown type, or a budget too small for any structure.
    """
    if index_type not in INDEX_TYPE_CHOICES:
        raise UserError(f"Unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPE_CHOICES)}.")
    if index_type == "flat" or n == 0:
        return IndexPlan("flat", n, dim)
    if index_type == "hnsw":
        return IndexPlan("hnsw", n, dim, hnsw_m=32, ef_search=128)
    if index_type in ("ivf", "pq"):
        if n < POINTS_PER_CENTROID * 4:
            return IndexPlan("flat", n, dim)
        nlist = max(1, min(int(4 * math.sqrt(n)), n // POINTS_PER_CENTROID))
        if index_type == "ivf":
            return IndexPlan("ivf", n, dim, nlist=nlist, nprobe=min(16, nlist))
        m = next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if dim % m == 0 and m <= dim)
        return IndexPlan("ivfpq", n, dim, nlist=nlist, pq_m=m, nprobe=min(16, nlist))
    return _plan_auto(n, dim, DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget),
                      EXACT_WORK if exact_work is None else int(exact_work))


def _plan_auto(n: int, dim: int, budget: int, exact_work: int) -> IndexPlan:
    nlist = default_nlist(n)
    small = n * dim <= exact_work or nlist < 4
    if small:
        candidates = [IndexPlan("flat", n, dim), IndexPlan("sq8", n, dim)]
    else:
        candidates = [IndexPlan("ivf", n, dim, nlist=nlist, nprobe=1, tune=True),
                      IndexPlan("ivfsq8", n, dim, nlist=nlist, nprobe=1, tune=True)]
    if nlist >= 1 and n >= POINTS_PER_CENTROID:
        candidates += [IndexPlan("ivfpq", n, dim, nlist=nlist, pq_m=m, nprobe=1, tune=True)
                       for m in _PQ_M if m < dim and dim % m == 0]
    for plan in candidates:
        if plan.estimated_bytes() <= budget:
            return plan
    smallest = min(plan.estimated_bytes() for plan in candidates)
    raise UserError(f"A memory budget of {format_bytes(budget)} is too small for {n:,} vectors of {dim} dimensions; "
                    f"allow at least {format_bytes(smallest)} (--memory-budget) or reduce them with --whiten DIM.")


def parse_memory(text: str | int) -> int:
    """"1GiB", "512MB", "800M", "1.5g" or a byte count -> bytes (K/M/G are powers of 1024)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UserError(f"--memory-budget must be a size such as 1GiB or 800M, not {text!r}.")
    value = float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " ")
    if value < 1:
        raise UserError("--memory-budget must be positive.")
    return int(value)


def format_bytes(value: int | float) -> str:
    """1073741824 -> "1.0 GiB"."""
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


# ---------------------------------------------------------------------------- sampling and recall
def split_sample(n: int, queries: int, train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (sorted) of held-out recall queries and of training vectors, disjoint, reproducible."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    q = min(queries, max(n - 1, 0))
    held_out = np.sort(order[:q])
    training = np.sort(order[q:q + min(train, n - q)]) if train else np.zeros(0, np.int64)
    return held_out, training


class ExactNeighbours:
    """Exact top-(k+1) inner-product neighbours of a few query vectors, accumulated chunk by chunk.

    Each query is itself a catalog vector (at position ``positions[i]``); that position is left
    out of its own neighbours, so recall measures finding the *other* close vectors.
    """

    def __init__(self, queries: np.ndarray, positions: np.ndarray, k: int = RECALL_K):
        self.queries = np.ascontiguousarray(queries, np.float32)
        self.positions = np.asarray(positions, np.int64)
        self.k = k
        self.scores = np.full((len(queries), k), -np.inf, np.float32)
        self.ids = np.full((len(queries), k), -1, np.int64)

    def add(self, vectors: np.ndarray, start: int) -> None:
        """Fold in catalog vectors at positions start, start+1, ... ."""
        if not len(self.queries) or not len(vectors):
            return
        scores = self.queries @ np.ascontiguousarray(vectors, np.float32).T
        ids = np.arange(start, start + len(vectors), dtype=np.int64)
        own = (self.positions >= start) & (self.positions < start + len(vectors))
        scores[np.nonzero(own)[0], self.positions[own] - start] = -np.inf
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids, scores.shape)], axis=1)
        keep = min(self.k, all_scores.shape[1])
        # Stable order on ties (lower position first), like faiss' flat index.
        order = np.lexsort((all_ids, -all_scores), axis=1)[:, :keep]
        self.scores = np.take_along_axis(all_scores, order, axis=1)
        self.ids = np.take_along_axis(all_ids, order, axis=1)
        self.ids[~np.isfinite(self.scores)] = -1


def without_self(found: np.ndarray, positions: np.ndarray, k: int = RECALL_K) -> np.ndarray:
    """Drop each query's own position from its (k+1) results and keep k."""
    out = np.full((len(found), k), -1, np.int64)
    for i, (row, own) in enumerate(zip(np.asarray(found), positions)):
        others = [p for p in row if p != own and p >= 0][:k]
        out[i, :len(others)] = others
    return out


def recall(found: np.ndarray, exact: np.ndarray, k: int = RECALL_K) -> float:
    """Mean share of the exact top-k that the approximate top-k holds (ids -1 ignored)."""
    return recall_bounds(found, exact, k)[0]


def recall_bounds(found: np.ndarray, exact: np.ndarray, k: int = RECALL_K) -> tuple[float, float]:
    """(mean recall@k, its one-sided 95% lower confidence bound) over the queries.

    Tuning accepts a setting only when the lower bound reaches the target, so the target holds
    for new queries too, not just for the few hundred measured (500 queries leave about +-0.01).
    """
    found, exact = np.asarray(found)[:, :k], np.asarray(exact)[:, :k]
    per_query = []
    for got, want in zip(found, exact):
        want = {int(i) for i in want if i >= 0}
        if want:
            per_query.append(len(want & {int(i) for i in got if i >= 0}) / len(want))
    if not per_query:
        return 1.0, 1.0
    values = np.asarray(per_query)
    spread = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(values.mean()), float(values.mean() - 1.645 * spread)
