"""The faiss search structures of an index: build, train and tune, save, check and load.

This is the only module of the project that imports faiss (torch and faiss can clash over
OpenMP when both are imported in arbitrary places); everything else names a structure as
:data:`SearchStructure` and calls the functions here. What to build (type, lists, probes) is
planned without faiss in :mod:`beauty_app.retrieval.ann`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from ...errors import IndexStoreError, UserError
from ..ann import (
    DEFAULT_RECALL_TARGET,
    NPROBE_STEPS,
    RECALL_K,
    RECALL_QUERIES,
    ExactNeighbours,
    IndexPlan,
    plan_index,
    recall_bounds,
    split_sample,
    without_self,
)

log = logging.getLogger(__name__)

FAISS_NAME = "index.faiss"
#: A built faiss index (the type other modules name without importing faiss).
SearchStructure = faiss.Index


def new_structure(plan: IndexPlan) -> SearchStructure:
    """An empty (untrained) faiss structure for `plan`, inner-product metric."""
    metric = faiss.METRIC_INNER_PRODUCT
    dim = plan.dim
    if plan.kind == "flat":
        return faiss.IndexFlatIP(dim)
    if plan.kind == "sq8":
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, metric)
    if plan.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, plan.hnsw_m, metric)
        index.hnsw.efConstruction = 80
        return index
    quantizer = faiss.IndexFlatIP(dim)
    if plan.kind == "ivf":
        return faiss.IndexIVFFlat(quantizer, dim, plan.nlist, metric)
    if plan.kind == "ivfsq8":
        return faiss.IndexIVFScalarQuantizer(quantizer, dim, plan.nlist, faiss.ScalarQuantizer.QT_8bit, metric)
    if plan.kind == "ivfpq":
        return faiss.IndexIVFPQ(quantizer, dim, plan.nlist, plan.pq_m, 8, metric)
    raise IndexStoreError(f"The index records an unknown search structure {plan.kind!r}; rebuild it.")


def _apply_search_params(index: SearchStructure, plan: IndexPlan) -> None:
    if plan.nprobe and hasattr(index, "nprobe"):
        index.nprobe = int(plan.nprobe)
    if plan.ef_search and hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(plan.ef_search)


class IndexBuilder:
    """Builds the planned faiss structure from vectors given chunk by chunk, and measures its recall.

    Training uses a sample given up front; held-out catalog vectors (given with their positions)
    are searched exactly as the chunks go by, so recall@k against exact search costs no second pass.
    """

    def __init__(self, plan: IndexPlan, training: np.ndarray | None = None, queries: np.ndarray | None = None,
                 query_positions: np.ndarray | None = None, k: int = RECALL_K):
        self.plan = plan
        self.k = k
        self.index = new_structure(plan)
        if plan.trained and plan.n:
            if training is None or not len(training):
                raise IndexStoreError("An approximate index needs training vectors.")
            self.index.train(np.ascontiguousarray(training, np.float32))
        self.queries = queries if queries is not None and len(queries) and not plan.exact else None
        self.positions = query_positions
        self.exact = ExactNeighbours(self.queries, query_positions, k) if self.queries is not None else None
        self.added = 0

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, np.float32)
        if self.exact is not None:
            self.exact.add(vectors, self.added)
        if len(vectors):
            self.index.add(vectors)
        self.added += len(vectors)

    def _recall(self) -> tuple[float, float]:
        """(mean recall@k on the held-out vectors, its 95% lower confidence bound)."""
        _, found = self.index.search(self.queries, min(self.k + 1, self.added))
        return recall_bounds(without_self(found, self.positions, self.k), self.exact.ids, self.k)

    def finish(self, recall_target: float = DEFAULT_RECALL_TARGET) -> tuple[SearchStructure, IndexPlan, float | None]:
        """The built index, its plan with the search parameter chosen, and recall@k (None: not measured)."""
        plan = self.plan
        if plan.exact:
            return self.index, plan, 1.0
        if self.exact is None:
            _apply_search_params(self.index, plan)
            return self.index, plan, None
        if not (plan.tune and plan.nlist):
            _apply_search_params(self.index, plan)
            return self.index, plan, self._recall()[0]
        # Raise nprobe until the recall target is met (by the lower confidence bound, so that it
        # holds beyond the measured queries); if it never is, take the smallest nprobe that comes
        # within half a point of the best recall seen (more lists would only cost time).
        tried: list[tuple[int, float]] = []
        for nprobe in [p for p in NPROBE_STEPS if p < plan.nlist] + [plan.nlist]:
            self.index.nprobe = nprobe
            mean, low = self._recall()
            tried.append((nprobe, mean))
            if low >= recall_target:
                break
        nprobe, reached = tried[-1]
        if low < recall_target:
            best = max(r for _, r in tried)
            nprobe, reached = next((p, r) for p, r in tried if r >= best - 0.005)
            log.warning("the %s index reaches recall@%d %.3f, below the target %.2f", plan.describe(), self.k,
                        best, recall_target)
        plan = replace(plan, nprobe=nprobe)
        _apply_search_params(self.index, plan)
        log.info("%s: recall@%d %.3f against exact search (tried nprobe %s)", plan.describe(), self.k, reached,
                 ", ".join(f"{p}: {r:.3f}" for p, r in tried))
        return self.index, plan, reached


def sample_positions(plan: IndexPlan) -> tuple[np.ndarray, np.ndarray]:
    """(held-out recall queries, training sample) positions for a plan; the same on every rebuild."""
    return split_sample(plan.n, 0 if plan.exact else RECALL_QUERIES, plan.training_size())


def rebuild_structure(plan: IndexPlan, training: np.ndarray, chunks: Iterable[np.ndarray]) -> SearchStructure:
    """The structure of `plan` rebuilt from search-space vectors given chunk by chunk (no recall measured).

    With the training sample of :func:`sample_positions` and the recorded plan (nprobe included),
    this gives back the structure that finalising built.
    """
    builder = IndexBuilder(plan, training)
    for vectors in chunks:
        builder.add(vectors)
    return builder.finish()[0]


def make_faiss_index(vectors: np.ndarray, index_type: str = "flat", *, memory_budget: int | None = None,
                     recall_target: float = DEFAULT_RECALL_TARGET) -> SearchStructure:
    """Build a faiss inner-product index of the given type over L2-normalised `vectors`.

    flat: exact search. ivf: inverted lists (nlist ~ 4 sqrt(N)) searched with nprobe 16.
    hnsw: graph index (M=32, efSearch 128). pq: IVF with 8-bit product quantisation (small memory).
    auto: chosen by size and `memory_budget` and tuned to `recall_target` (see
    :mod:`beauty_app.retrieval.ann`). Approximate types fall back to flat when the catalog is too
    small to train them; trained types learn from a sample (:meth:`IndexPlan.training_size`).
    """
    return build_faiss_index(vectors, index_type, memory_budget=memory_budget, recall_target=recall_target,
                             measure=index_type == "auto")[0]


def build_faiss_index(vectors: np.ndarray, index_type: str = "auto", *, memory_budget: int | None = None,
                      recall_target: float = DEFAULT_RECALL_TARGET, measure: bool = True,
                      chunk_rows: int = 50_000) -> tuple[SearchStructure, IndexPlan, float | None]:
    """:func:`make_faiss_index` that also returns the plan (with the tuned nprobe) and recall@7.

    The same path `catalog build` takes, on vectors in memory (the benchmark calls it). With
    `measure`, recall@7 against exact search is measured on held-out vectors (auto plans need it
    to tune nprobe); otherwise the recall returned is None (1.0 for exact search).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    try:
        plan = plan_index(index_type, n, dim, memory_budget)
    except UserError as exc:
        raise IndexStoreError(str(exc)) from None
    held_out, training = sample_positions(plan)
    builder = IndexBuilder(plan, vectors[training], vectors[held_out] if measure or plan.tune else None, held_out)
    for start in range(0, n, chunk_rows):
        builder.add(vectors[start:start + chunk_rows])
    return builder.finish(recall_target)


def faiss_to_bytes(index: SearchStructure) -> bytes:
    """The structure serialised (its size is what it takes in memory, near enough)."""
    return faiss.serialize_index(index).tobytes()


def faiss_from_bytes(data: bytes) -> SearchStructure:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def set_search_threads(count: int) -> None:
    """Limit faiss's OpenMP threads (single queries are faster on one thread)."""
    faiss.omp_set_num_threads(max(1, int(count)))


# ---------------------------------------------------------------------------------------------
# The structure's file


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_structure_file(path: Path, index: SearchStructure) -> tuple[Path, str]:
    """Write `index` to a synced temporary file beside `path`; returns it and its SHA-256 (rename it to commit).

    faiss writes the file itself, so a large index is never held twice in memory as bytes.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    return tmp, file_sha256(tmp)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temp files of writes that were killed; only the lock holder writes them, so none is live."""
    for tmp in directory.glob(f".{FAISS_NAME}.*.tmp"):
        tmp.unlink(missing_ok=True)


#: Bytes each stored vector takes at least in a file of each faiss type we write, as a function of
#: the dimension: flat and HNSW keep float32 vectors, SQ 8-bit (or 4-bit) codes, PQ at least half
#: a byte. faiss allocates what a header declares before reading it, so the file must hold as much.
_MIN_BYTES_PER_VECTOR = {b"IxFI": lambda d: 4 * d, b"IxF2": lambda d: 4 * d, b"IHNf": lambda d: 4 * d,
                         b"IwFl": lambda d: 4 * d, b"IxSQ": lambda d: d / 2, b"IwSq": lambda d: d / 2}
_HEADER = struct.Struct("<4siq")  # fourcc, dimension, number of vectors: the start of every faiss index file
#: Above any feature dimension a backbone of ours gives (VGG16: 512, ResNet-50: 2048).
MAX_STRUCTURE_DIM = 65_536


def check_structure_header(path: Path, count: int | None) -> str | None:
    """What is wrong with a faiss file's header, read before faiss allocates what it declares; None if fine.

    A 77-byte file can declare 1.5 billion vectors, and faiss would allocate for them before
    noticing the file is short. The header must declare a sane dimension, one vector per catalog
    row (unless `count` is None: a structure that is brought up to date in place), and no more
    vectors than the file can hold.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER.size)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return "cannot be read"
    if len(head) < _HEADER.size:
        return "is too short to be a search structure"
    fourcc, dim, total = _HEADER.unpack(head)
    if not 0 < dim <= MAX_STRUCTURE_DIM or total < 0:
        return "has an impossible header (damaged or edited)"
    if count is not None and total != count:
        return "does not match the database"
    least = _MIN_BYTES_PER_VECTOR.get(fourcc, lambda d: 1 / 8)(dim)
    if total * least > size:
        return "is shorter than the vectors its header declares (damaged or edited)"
    return None


def read_structure_file(path: Path, settings: dict, count: int) -> tuple[SearchStructure | None, str | None]:
    """The saved structure if it is the one recorded in `settings` for `count` rows, else (None, what is wrong).

    Checked in order of cost: the file exists, was written for the database's current revision,
    has the recorded checksum, can be read, and holds one vector per catalog row.
    """
    if not path.is_file():
        return None, "is missing"
    if settings.get("faiss_revision") != settings.get("revision"):
        return None, "is older than the catalog database (an update was interrupted)"
    if file_sha256(path) != settings.get("faiss_sha256"):
        return None, "does not match its recorded checksum (damaged or edited)"
    problem = check_structure_header(path, count)
    if problem:
        return None, problem
    try:
        index = faiss.read_index(str(path))  # straight from the file: no second copy in memory
    except RuntimeError:
        return None, "cannot be read"
    if index.ntotal != count:
        return None, "does not match the database"
    return index, None


# ---------------------------------------------------------------------------------------------
# Changing a written structure in place (`catalog add` / `remove` on a large index)


def read_written_structure(path: Path, sha256: str | None) -> SearchStructure | None:
    """The structure file last written (whatever revision the database is at now), if it has checksum `sha256`."""
    if sha256 is None or not path.is_file() or file_sha256(path) != sha256:
        return None
    if check_structure_header(path, None) is not None:
        return None
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        return None


def _inverted_lists(index: SearchStructure):
    """The IVF structure's array inverted lists (whose ids can be renumbered in place), else None."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    return (ivf, lists) if isinstance(lists, faiss.ArrayInvertedLists) else None


def update_in_place(index: SearchStructure, old_rows: np.ndarray, new_rows: np.ndarray, removed_rows: np.ndarray,
                    added_rows: np.ndarray, added_vectors: np.ndarray) -> bool:
    """Bring a structure over `old_rows` to `new_rows` without retraining; False if its type cannot be.

    Position i of a structure is the i-th catalog row in row order. Inverted-file structures hold
    each position as an id in their lists, so rows are removed by id, the remaining ids renumbered
    to their new positions, and new or changed rows added under theirs (faiss add with ids: no
    retraining, the coarse quantiser and codes are kept). Other structures are only appended to:
    that works when every added row comes after the old ones and none was removed.

    Args:
        old_rows, new_rows: sorted database rows before and after (the structure holds old_rows).
        removed_rows: rows of old_rows to take out (removed or changed).
        added_rows, added_vectors: rows of new_rows to put in, with their search-space vectors.
    """
    added_vectors = np.ascontiguousarray(added_vectors, np.float32)
    ivf = _inverted_lists(index)
    if ivf is None:
        appends_only = not len(removed_rows) and (not len(old_rows) or not len(added_rows)
                                                  or added_rows.min() > old_rows.max())
        if not appends_only:
            return False
        order = np.argsort(added_rows)
        if len(order):
            index.add(added_vectors[order])
        return True
    structure, lists = ivf
    if len(removed_rows):
        structure.remove_ids(np.searchsorted(old_rows, removed_rows).astype(np.int64))
    for number in range(structure.nlist):  # renumber: old position -> new position of the same row
        size = lists.list_size(number)
        if size:
            ids = faiss.rev_swig_ptr(lists.get_ids(number), size)
            ids[:] = np.searchsorted(new_rows, old_rows[ids])
    if len(added_rows):
        index.add_with_ids(added_vectors, np.searchsorted(new_rows, added_rows).astype(np.int64))
    return True
