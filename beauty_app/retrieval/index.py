"""The catalog index on disk: an SQLite database of catalog rows and vectors, plus a faiss index.

This is the only module that imports faiss (torch and faiss can clash over OpenMP when both are
imported in arbitrary places).

Layout of an index directory::

    catalog.sqlite   items (id, path, description, category, vector, thumbnail), skipped files,
                     settings (model spec + fingerprint, pooling, dimension, index type, whitening)
    index.faiss      the search structure, derived from the vectors in the database
    .lock            held by the one process allowed to write

The database is the source of truth and every change to it is one SQLite transaction, so a
killed build or `catalog add` leaves either the old or the new state, never a mix. The faiss file
is written atomically after each change together with the database revision and checksum it was
made from; on open, a stale or damaged faiss file is detected and rebuilt from the vectors.
Finalising also records a checksum of the database content that search results are made of
(catalog rows, vectors, whitening, model settings); a damaged or edited database fails that check
on open with a hint to rebuild, instead of giving wrong results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Iterable, Iterator, Sequence

import faiss
import numpy as np

from ..errors import IndexStoreError, UserError
from .ann import (
    DEFAULT_RECALL_TARGET,
    INDEX_TYPE_CHOICES,
    NPROBE_STEPS,
    RECALL_K,
    RECALL_QUERIES,
    ExactNeighbours,
    IndexPlan,
    format_bytes,
    plan_index,
    recall_bounds,
    split_sample,
    without_self,
)

log = logging.getLogger(__name__)

DB_NAME = "catalog.sqlite"
FAISS_NAME = "index.faiss"
LOCK_NAME = ".lock"
FORMAT_VERSION = 1
INDEX_TYPES = INDEX_TYPE_CHOICES  # auto, flat, ivf, hnsw, pq
#: Rows read from the database at a time when finalising or checking (about 32 MiB of 1280-d vectors).
CHUNK_BYTES = 32 << 20
#: Settings that change what the stored vectors mean; covered by the content checksum.
_CHECKED_SETTINGS = ("model_fingerprint", "pooling", "dim", "scales", "input_size")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL,
    thumbnail BLOB
);
CREATE TABLE IF NOT EXISTS staged (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL,
    thumbnail BLOB
);
CREATE TABLE IF NOT EXISTS alt_vectors (
    pooling TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (pooling, id)
);
CREATE TABLE IF NOT EXISTS skipped (
    item TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staged_alt_vectors (
    pooling TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (pooling, id)
);
CREATE TABLE IF NOT EXISTS staged_skipped (
    item TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shard_positions (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


@dataclass
class SearchHit:
    """One ranked catalog result."""

    rank: int
    id: str
    score: float
    path: str
    description: str
    category: str
    row: int

    def as_dict(self) -> dict:
        return {"rank": self.rank, "id": self.id, "score": round(float(self.score), 6), "path": self.path,
                "description": self.description, "category": self.category}


@dataclass
class ItemRecord:
    """A catalog row to store: identity, text and its feature vector (+ optional thumbnail JPEG)."""

    id: str
    path: str
    description: str
    category: str
    vector: np.ndarray
    thumbnail: bytes | None = None
    extra: dict[str, np.ndarray] | None = None  # vectors of other poolings, for ranking comparisons
    position: int | None = None  # row of the catalog (shards of a distributed build record it for the merge)


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class PCAWhitening:
    """PCA whitening learned on catalog vectors: x -> L2norm(P (x - mean)).

    The projection scales each principal direction by 1/sqrt(eigenvalue) (with a small floor so
    near-empty directions are not blown up), which is the classic Jegou & Chum (2012) recipe.
    """

    mean: np.ndarray
    projection: np.ndarray  # (out_dim, in_dim)

    @classmethod
    def learn(cls, vectors: np.ndarray, dim: int | None = None, eps: float = 1e-6) -> "PCAWhitening":
        return cls.learn_chunks([vectors], dim, eps)

    @classmethod
    def learn_chunks(cls, chunks: Iterable[np.ndarray], dim: int | None = None, eps: float = 1e-6) -> "PCAWhitening":
        """:meth:`learn` from vectors given chunk by chunk (memory: one chunk and a dim x dim matrix).

        Sums are taken around the first chunk's mean, so the covariance keeps its precision even
        though it is never formed from all vectors at once.
        """
        count, shift, total, outer = 0, None, None, None
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float64)
            if not len(chunk):
                continue
            if shift is None:
                shift = chunk.mean(axis=0)
                total = np.zeros_like(shift)
                outer = np.zeros((len(shift), len(shift)))
            centred = chunk - shift
            count += len(chunk)
            total += centred.sum(axis=0)
            outer += centred.T @ centred
        if count < 2:
            raise IndexStoreError("PCA whitening needs at least two catalog images.")
        mean = shift + total / count
        cov = (outer - np.outer(total, total) / count) / (count - 1)
        n_vectors, vector_dim = count, len(mean)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1]
        keep = min(dim or vector_dim, vector_dim, n_vectors - 1)
        order = order[:keep]
        floor = eigval[order].max() * eps + 1e-12
        projection = (eigvec[:, order] / np.sqrt(np.maximum(eigval[order], floor))).T
        return cls(mean.astype(np.float32), projection.astype(np.float32))

    @property
    def out_dim(self) -> int:
        return int(self.projection.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return _normalize((np.asarray(vectors, np.float32) - self.mean) @ self.projection.T)

    def to_bytes(self) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, projection=self.projection)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PCAWhitening":
        import io

        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(arrays["mean"], arrays["projection"])


def _new_faiss_index(plan: IndexPlan) -> faiss.Index:
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


def _apply_search_params(index: faiss.Index, plan: IndexPlan) -> None:
    if plan.nprobe and hasattr(index, "nprobe"):
        index.nprobe = int(plan.nprobe)
    if plan.ef_search and hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(plan.ef_search)


class _IndexBuilder:
    """Builds the planned faiss structure from vectors given chunk by chunk, and measures its recall.

    Training uses a sample given up front; held-out catalog vectors (given with their positions)
    are searched exactly as the chunks go by, so recall@k against exact search costs no second pass.
    """

    def __init__(self, plan: IndexPlan, training: np.ndarray | None = None, queries: np.ndarray | None = None,
                 query_positions: np.ndarray | None = None, k: int = RECALL_K):
        self.plan = plan
        self.k = k
        self.index = _new_faiss_index(plan)
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

    def finish(self, recall_target: float = DEFAULT_RECALL_TARGET) -> tuple[faiss.Index, IndexPlan, float | None]:
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


def _sample_positions(plan: IndexPlan) -> tuple[np.ndarray, np.ndarray]:
    """(held-out recall queries, training sample) positions for a plan; the same on every rebuild."""
    return split_sample(plan.n, 0 if plan.exact else RECALL_QUERIES, plan.training_size())


def make_faiss_index(vectors: np.ndarray, index_type: str = "flat", *, memory_budget: int | None = None,
                     recall_target: float = DEFAULT_RECALL_TARGET) -> faiss.Index:
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
                      chunk_rows: int = 50_000) -> tuple[faiss.Index, IndexPlan, float | None]:
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
    held_out, training = _sample_positions(plan)
    builder = _IndexBuilder(plan, vectors[training], vectors[held_out] if measure or plan.tune else None, held_out)
    for start in range(0, n, chunk_rows):
        builder.add(vectors[start:start + chunk_rows])
    return builder.finish(recall_target)


def faiss_to_bytes(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def faiss_from_bytes(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def set_search_threads(count: int) -> None:
    """Limit faiss's OpenMP threads (single queries are faster on one thread)."""
    faiss.omp_set_num_threads(max(1, int(count)))


try:
    import fcntl

    def _lock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
except ImportError:  # Windows (untested): lock the file's first byte instead
    import msvcrt

    def _lock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


class WriteLock:
    """An exclusive, non-blocking lock on an index directory, held while writing it."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._handle = None

    def __enter__(self) -> "WriteLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            try:
                holder = handle.read().strip() or "another process"
            except OSError:  # Windows locks are mandatory: the holder's note cannot be read
                holder = "another process"
            handle.close()
            raise IndexStoreError(
                f"The index {self.path.parent} is being written by {holder}; wait for it to finish."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            _unlock(self._handle)
            self._handle.close()
            self._handle = None


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete temp files of writes that were killed; only the lock holder writes them, so none is live."""
    for tmp in directory.glob(f".{FAISS_NAME}.*.tmp"):
        tmp.unlink(missing_ok=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_faiss_file(path: Path, index: faiss.Index) -> tuple[Path, str]:
    """Write `index` to a synced temporary file beside `path`; returns it and its SHA-256 (rename it to commit).

    faiss writes the file itself, so a large index is never held twice in memory as bytes.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    return tmp, _file_sha256(tmp)


class CatalogIndex:
    """An index directory opened for searching (and, with `writable=True`, for changes)."""

    def __init__(self, directory: Path, connection: sqlite3.Connection, lock: WriteLock | None):
        self.directory = directory
        self._db = connection
        self._lock = lock
        self._faiss: faiss.Index | None = None
        self._whitening: PCAWhitening | None = None
        self._whitening_loaded = False
        self._row_cache: np.ndarray | None = None
        self._page_end: tuple[str, int, int] | None = None  # (filter, offset, row) where the last page ended
        self._dense_rows: tuple[tuple, int | None] | None = None  # (database state, first row if rows have no gaps)
        self._alt_cache: dict[str, tuple[np.ndarray, faiss.Index]] = {}

    # ----------------------------------------------------------------- opening and creating
    @classmethod
    def create(cls, directory: str | os.PathLike, settings: dict) -> "CatalogIndex":
        """Create a new, empty index (or reopen an unfinished one with the same settings) for writing.

        `settings` must hold model_spec, model_fingerprint, pooling and dim; other keys are kept.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        lock = WriteLock(directory).__enter__()
        try:
            _remove_stale_temporaries(directory)
            db = cls._connect(directory / DB_NAME)
            with db:
                db.executescript(_SCHEMA)
            index = cls(directory, db, lock)
            existing = index.settings()
            if existing:
                index._check_compatible(existing, settings)
            else:
                with db:
                    index._write_settings({**settings, "format_version": FORMAT_VERSION, "complete": False,
                                           "revision": 0, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
            return index
        except BaseException:
            lock.__exit__()
            raise

    @classmethod
    def open(cls, directory: str | os.PathLike, writable: bool = False) -> "CatalogIndex":
        """Open an existing index; checks integrity and refuses unfinished or foreign directories."""
        directory = Path(directory)
        db_path = directory / DB_NAME
        if not db_path.is_file():
            raise IndexStoreError(f"{directory} is not a BeautyLens index (no {DB_NAME}); build one with `catalog build`.")
        lock = WriteLock(directory).__enter__() if writable else None
        try:
            db = cls._connect(db_path, readonly=not writable)
            try:
                ok = db.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise IndexStoreError(
                    f"The index database in {directory} is damaged ({exc}); rebuild it with `catalog build`."
                ) from None
            if ok != "ok":
                raise IndexStoreError(f"The index database in {directory} is damaged; rebuild it with `catalog build`.")
            if writable:
                with db:
                    db.executescript(_SCHEMA)  # tables added since the index was made (the staging tables)
            index = cls(directory, db, lock)
            settings = index.settings()
            if settings.get("format_version") != FORMAT_VERSION:
                raise IndexStoreError(f"{directory} holds an index of an unsupported format; rebuild it.")
            index._verify_content(settings)
            if lock is not None:
                _remove_stale_temporaries(directory)
            return index
        except BaseException:
            if lock is not None:
                lock.__exit__()
            raise

    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        try:
            if readonly:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                db = sqlite3.connect(path, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: text that is not UTF-8
            raise IndexStoreError(
                f"The index database {path} cannot be read ({exc}); rebuild it with `catalog build`."
            ) from None
        return db

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.__exit__()
            self._lock = None

    def __enter__(self) -> "CatalogIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- settings
    def settings(self) -> dict:
        try:
            rows = self._db.execute("SELECT key, value FROM settings").fetchall()
            return {key: json.loads(value) for key, value in rows}
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise IndexStoreError(f"The index database in {self.directory} is damaged ({exc}); rebuild it.") from None

    def _write_settings(self, values: dict) -> None:
        self._db.executemany(
            "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    @staticmethod
    def _check_compatible(existing: dict, wanted: dict) -> None:
        for key in ("model_fingerprint", "pooling", "dim", "scales", "input_size"):
            if key in wanted and key in existing and existing[key] != wanted[key]:
                raise IndexStoreError(
                    f"The index was started with a different {key.replace('_', ' ')} ({existing[key]} vs "
                    f"{wanted[key]}); use a new output folder or the same settings."
                )

    def check_model(self, fingerprint: str, pooling: str | None = None) -> None:
        """Refuse to search with vectors from a different model (or pooling) than the index's."""
        settings = self.settings()
        if settings.get("model_fingerprint") != fingerprint:
            raise IndexStoreError(
                f"This index was built with model {settings.get('model_spec')!r}; search it with that model "
                f"or rebuild the index with the new one."
            )
        if pooling is not None and settings.get("pooling") != pooling:
            raise IndexStoreError(
                f"This index holds {settings.get('pooling')} features, not {pooling}; rebuild it for {pooling}."
            )

    @property
    def complete(self) -> bool:
        return bool(self.settings().get("complete"))

    # ----------------------------------------------------------------- writing
    def known_items(self) -> set[str]:
        """Ids already stored or already skipped (a resumed build does not redo them); all of them at once."""
        stored = {row[0] for row in self._db.execute("SELECT id FROM items")}
        return stored | {row[0] for row in self._db.execute("SELECT item FROM skipped")}

    def known_among(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are already stored or skipped: :meth:`known_items` for one chunk of a catalog."""
        found: set[str] = set()
        for start in range(0, len(ids), 900):  # stay under SQLite's limit on bound parameters
            part = list(ids[start:start + 900])
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self._db.execute(f"SELECT id FROM items WHERE id IN ({marks})", part))
            found.update(r[0] for r in self._db.execute(f"SELECT item FROM skipped WHERE item IN ({marks})", part))
        return found

    def stored_paths(self, ids: Sequence[str]) -> dict[str, str]:
        """Id -> image path of those `ids` stored in the catalog or staged by an unfinished `catalog add`."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), 900):
            part = list(ids[start:start + 900])
            marks = ",".join("?" * len(part))
            found.update(self._db.execute(f"SELECT id, path FROM items WHERE id IN ({marks})", part).fetchall())
            found.update(self._db.execute(f"SELECT id, path FROM staged WHERE id IN ({marks})", part).fetchall())
        return found

    def add_items(self, records: Sequence[ItemRecord], skipped: Iterable[tuple[str, str]] = (),
                  staged: bool = False) -> None:
        """Store one batch of vectors and skip reasons in a single transaction.

        Args:
            staged: keep the records aside (searches do not see them) until :meth:`commit_staged`;
                used by `catalog add` so an interrupted update leaves the previous index intact.
        """
        dim = self.settings().get("dim")
        # A staged add touches none of the tables searches read (or their checksums) before commit_staged.
        table, alt_table, skipped_table = (("staged", "staged_alt_vectors", "staged_skipped") if staged
                                           else ("items", "alt_vectors", "skipped"))
        with self._db:
            for record in records:
                vector = np.ascontiguousarray(record.vector, dtype=np.float32).reshape(-1)
                if dim is not None and vector.shape[0] != dim:
                    raise IndexStoreError(f"Vector of dimension {vector.shape[0]} does not fit this {dim}-d index.")
                self._db.execute(
                    f"INSERT INTO {table}(id, path, description, category, vector, thumbnail) VALUES(?,?,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET path=excluded.path, description=excluded.description, "
                    "category=excluded.category, vector=excluded.vector, thumbnail=excluded.thumbnail",
                    (record.id, record.path, record.description, record.category, vector.tobytes(), record.thumbnail),
                )
                if record.position is not None:
                    self._db.execute(
                        "INSERT INTO shard_positions(id, position) VALUES(?, ?) "
                        "ON CONFLICT(id) DO UPDATE SET position=excluded.position", (record.id, int(record.position)))
                for pooling, extra in (record.extra or {}).items():
                    self._db.execute(
                        f"INSERT INTO {alt_table}(pooling, id, vector) VALUES(?,?,?) "
                        "ON CONFLICT(pooling, id) DO UPDATE SET vector=excluded.vector",
                        (pooling, record.id, np.ascontiguousarray(extra, dtype=np.float32).tobytes()))
            self._db.executemany(f"DELETE FROM {skipped_table} WHERE item = ?", [(r.id,) for r in records])
            if not staged:
                self._bump_revision()
            self._db.executemany(
                f"INSERT INTO {skipped_table}(item, reason) VALUES(?, ?) "
                "ON CONFLICT(item) DO UPDATE SET reason=excluded.reason",
                list(skipped),
            )

    def update_settings(self, values: dict) -> None:
        """Record extra settings (JSON values) in one transaction, e.g. that a shard is finished."""
        with self._db:
            self._write_settings(values)

    def positioned_rows(self, chunk: int = 1024) -> Iterator[tuple]:
        """A shard's rows in catalog order, read a chunk at a time.

        Yields (catalog position, id, path, description, category, vector bytes, thumbnail).
        """
        last = -1
        while True:
            found = self._db.execute(
                "SELECT p.position, i.id, i.path, i.description, i.category, i.vector, i.thumbnail FROM "
                "shard_positions p JOIN items i ON i.id = p.id WHERE p.position > ? ORDER BY p.position LIMIT ?",
                (last, chunk)).fetchall()
            if not found:
                return
            yield from found
            last = found[-1][0]

    def comparison_vectors(self, ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """Id -> {pooling: vector} of the stored comparison vectors of `ids`."""
        found: dict[str, dict[str, np.ndarray]] = {}
        for start in range(0, len(ids), 900):
            part = list(ids[start:start + 900])
            for item_id, pooling, vector in self._db.execute(
                    f"SELECT id, pooling, vector FROM alt_vectors WHERE id IN ({','.join('?' * len(part))})", part):
                found.setdefault(item_id, {})[pooling] = np.frombuffer(vector, np.float32)
        return found

    def staged_items(self) -> dict[str, str]:
        """Id -> path of records staged by an unfinished `catalog add`."""
        return dict(self._db.execute("SELECT id, path FROM staged").fetchall())

    def commit_staged(self) -> int:
        """Move staged records into the catalog in one transaction; returns how many."""
        with self._db:
            moved = int(self._db.execute("SELECT count(*) FROM staged").fetchone()[0])
            self._db.execute(
                "INSERT INTO items(id, path, description, category, vector, thumbnail) "
                "SELECT id, path, description, category, vector, thumbnail FROM staged WHERE true "
                "ON CONFLICT(id) DO UPDATE SET path=excluded.path, description=excluded.description, "
                "category=excluded.category, vector=excluded.vector, thumbnail=excluded.thumbnail")
            self._db.execute(
                "INSERT INTO alt_vectors(pooling, id, vector) SELECT pooling, id, vector FROM staged_alt_vectors "
                "WHERE true ON CONFLICT(pooling, id) DO UPDATE SET vector=excluded.vector")
            self._db.execute(
                "INSERT INTO skipped(item, reason) SELECT item, reason FROM staged_skipped WHERE true "
                "ON CONFLICT(item) DO UPDATE SET reason=excluded.reason")
            self._db.execute("DELETE FROM skipped WHERE item IN (SELECT id FROM staged)")
            for table in ("staged", "staged_alt_vectors", "staged_skipped"):
                self._db.execute(f"DELETE FROM {table}")
            self._bump_revision()
        return moved

    def remove_items(self, ids: Iterable[str]) -> int:
        """Delete catalog rows by id; returns how many existed."""
        ids = list(ids)
        with self._db:
            before = self.count()
            self._db.executemany("DELETE FROM items WHERE id = ?", [(item,) for item in ids])
            self._db.executemany("DELETE FROM alt_vectors WHERE id = ?", [(item,) for item in ids])
            removed = before - self.count()
            self._bump_revision()
        return removed

    def _bump_revision(self) -> None:
        """Note that the stored rows changed (the faiss file of the old revision is now stale)."""
        revision = int(self.settings().get("revision", 0)) + 1
        self._write_settings({"revision": revision})

    def finalize(self, index_type: str | None = None, whitening: int | bool | None = None, *,
                 memory_budget: int | None = None, recall_target: float | None = None) -> None:
        """Learn whitening (optional), build and save the faiss index, and mark the index complete.

        Everything is streamed from the database in chunks of about CHUNK_BYTES: whitening is
        learned from running sums, approximate indexes are trained on a sample and filled chunk by
        chunk, and the content checksum is taken in the same pass. Memory is the search structure
        plus a chunk and the training sample, whatever the catalog size.

        Args:
            index_type: auto | flat | ivf | hnsw | pq (default: keep the current setting, else flat).
            whitening: None keeps the current setting; True learns full-dimension PCA whitening on
                the catalog; a positive int learns it reduced to that many dimensions; False removes it.
            memory_budget: bytes the search structure may take (auto; default: the current setting,
                else 1 GiB).
            recall_target: recall@7 against exact search that auto tunes nprobe for (default 0.95).
        """
        settings = self.settings()
        index_type = index_type or settings.get("index_type", "flat")
        if memory_budget is None:
            memory_budget = settings.get("memory_budget")
        recall_target = float(recall_target or settings.get("recall_target") or DEFAULT_RECALL_TARGET)
        self._row_cache = None
        rows = self._rows()
        with self._db:
            if whitening is False:
                self._db.execute("DELETE FROM blobs WHERE key = 'whitening'")
            elif whitening is not None:
                learned = PCAWhitening.learn_chunks(
                    (vectors for _, vectors in self.vector_chunks()), None if whitening is True else int(whitening))
                self._db.execute(
                    "INSERT INTO blobs(key, value) VALUES('whitening', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (learned.to_bytes(),))
            self._whitening_loaded = False
            search_dim = self._search_dim()
            try:
                plan = plan_index(index_type, len(rows), search_dim, memory_budget)
            except UserError as exc:
                raise IndexStoreError(str(exc)) from None
            held_out, training = _sample_positions(plan)
            builder = _IndexBuilder(plan, self._search_vectors_at(rows[training]),
                                    self._search_vectors_at(rows[held_out]), held_out)
            digest = self._content_digest(on_vectors=lambda vectors: builder.add(self._apply_whitening(vectors)))
            index, plan, measured = builder.finish(recall_target)
            tmp, faiss_sha256 = _write_faiss_file(self.directory / FAISS_NAME, index)
            revision = int(settings.get("revision", 0)) + 1
            self._write_settings({
                "index_type": index_type, "complete": True, "revision": revision, "count": len(rows),
                "faiss_revision": revision, "faiss_sha256": faiss_sha256, "search_dim": search_dim,
                "content_sha256": digest, "index_plan": plan.as_dict(), "index_bytes": tmp.stat().st_size,
                "memory_budget": memory_budget, "recall_target": recall_target,
                f"recall_at_{RECALL_K}": None if measured is None else round(float(measured), 4),
                "recall_queries": len(held_out) if not plan.exact else 0,
                "alt_sha256": {pooling: self._alt_digest(pooling) for pooling in self.alternate_poolings()},
            })
            # The faiss file is replaced before the transaction commits; if we are killed between
            # the two, the revision check on open notices the mismatch and rebuilds it.
            os.replace(tmp, self.directory / FAISS_NAME)
        self._faiss = index
        self._row_cache = None
        self._alt_cache = {}

    # ----------------------------------------------------------------- streaming reads
    def _chunk_rows(self) -> int:
        dim = int(self.settings().get("dim") or 1)
        return max(256, CHUNK_BYTES // (4 * dim))

    def _item_chunks(self, columns: str = "row, vector") -> Iterator[list[tuple]]:
        """Catalog rows in row order, a chunk at a time (keyset paging: each chunk costs the same)."""
        size = self._chunk_rows()
        last = None
        while True:
            found = self._db.execute(
                f"SELECT {columns} FROM items WHERE row > ? ORDER BY row LIMIT ?",
                (-(1 << 62) if last is None else last, size)).fetchall()
            if not found:
                return
            yield found
            last = found[-1][0]

    def _decode_vectors(self, blobs: Sequence[bytes]) -> np.ndarray:
        dim = int(self.settings()["dim"])
        if not blobs:
            return np.zeros((0, dim), np.float32)
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)

    def vector_chunks(self) -> Iterator[tuple[list[int], np.ndarray]]:
        """(rows, raw vectors) of the catalog in row order, a chunk at a time."""
        for found in self._item_chunks("row, vector"):
            yield [r[0] for r in found], self._decode_vectors([r[1] for r in found])

    def _raw_vectors_at(self, rows: Sequence[int]) -> np.ndarray:
        """Stored vectors of the given database rows, in that order."""
        rows = [int(r) for r in rows]
        lookup: dict[int, bytes] = {}
        for start in range(0, len(rows), 900):  # stay under SQLite's limit on bound parameters
            part = rows[start:start + 900]
            lookup.update(self._db.execute(
                f"SELECT row, vector FROM items WHERE row IN ({','.join('?' * len(part))})", part).fetchall())
        return self._decode_vectors([lookup[r] for r in rows])

    def _search_vectors_at(self, rows: Sequence[int]) -> np.ndarray:
        """Vectors of the given rows in search space (whitened, normalised)."""
        return self._apply_whitening(self._raw_vectors_at(rows))

    # ----------------------------------------------------------------- integrity
    def _content_digest(self, on_vectors=None) -> str:
        """SHA-256 of what search results are made of: catalog rows and vectors, whitening, model settings.

        Thumbnails and skip reasons never change a ranking; the comparison vectors of other poolings
        have their own checksums (``alt_sha256``), checked when a comparison first reads them, so that
        opening an index does not read every pooling's vectors.
        Read chunk by chunk; `on_vectors` receives each chunk's raw vectors (finalising builds the
        search structure in the same pass).
        """
        digest = hashlib.sha256()

        def feed(value) -> None:
            data = value if isinstance(value, bytes) else repr(value).encode()
            digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: fields cannot run together
            digest.update(data)

        settings = self.settings()
        feed(json.dumps({key: settings.get(key) for key in _CHECKED_SETTINGS}, sort_keys=True))
        for found in self._item_chunks("row, id, path, description, category, vector"):
            for row in found:
                for value in row:
                    feed(value)
            if on_vectors is not None:
                on_vectors(self._decode_vectors([row[5] for row in found]))
        for row in self._db.execute("SELECT key, value FROM blobs ORDER BY key"):
            for value in row:
                feed(value)
        return digest.hexdigest()

    def _alt_chunks(self, pooling: str) -> Iterator[list[tuple]]:
        """(row, id, vector) of another pooling's stored vectors in catalog order, a chunk at a time."""
        size = self._chunk_rows()
        last = -(1 << 62)
        while True:
            found = self._db.execute(
                "SELECT i.row, a.id, a.vector FROM items i JOIN alt_vectors a ON a.pooling = ? AND a.id = i.id "
                "WHERE i.row > ? ORDER BY i.row LIMIT ?", (pooling, last, size)).fetchall()
            if not found:
                return
            yield found
            last = found[-1][0]

    def _alt_digest(self, pooling: str, chunks: Iterable[list[tuple]] | None = None) -> str:
        """SHA-256 of another pooling's stored vectors (ids and vectors in catalog order)."""
        digest = hashlib.sha256()
        for found in self._alt_chunks(pooling) if chunks is None else chunks:
            for _, item_id, vector in found:
                for data in (str(item_id).encode(), vector if isinstance(vector, bytes) else repr(vector).encode()):
                    digest.update(len(data).to_bytes(8, "little"))
                    digest.update(data)
        return digest.hexdigest()

    @contextlib.contextmanager
    def _damage_guard(self) -> Iterator[None]:
        """Report SQLite's errors about a damaged file (in tables outside the checksum) as one sentence."""
        try:
            yield
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:  # text that is not UTF-8, a mangled type
            raise IndexStoreError(
                f"The index database in {self.directory} is damaged ({exc}); rebuild it with `catalog build`."
            ) from None

    def _verify_content(self, settings: dict) -> None:
        """Refuse a database whose content no longer matches the checksum recorded when it was finalised."""
        expected = settings.get("content_sha256")
        if expected is None or settings.get("faiss_revision") != settings.get("revision"):
            # No checksum yet (an unfinished build, an index from before checksums), or an update
            # that was interrupted after its commit: nothing recorded to compare with.
            return
        with self._damage_guard():
            actual = self._content_digest()
        if actual != expected:
            raise IndexStoreError(
                f"The index database in {self.directory} does not match its recorded checksum (it was damaged "
                f"or edited); rebuild it with `catalog build`."
            )

    # ----------------------------------------------------------------- reading
    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM items").fetchone()[0])

    def skipped(self) -> list[tuple[str, str]]:
        with self._damage_guard():
            return [tuple(row) for row in self._db.execute("SELECT item, reason FROM skipped ORDER BY item")]

    def _rows(self) -> np.ndarray:
        if self._row_cache is None:
            self._row_cache = np.array([r[0] for r in self._db.execute("SELECT row FROM items ORDER BY row")],
                                       dtype=np.int64)
        return self._row_cache

    def raw_vectors(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """Stored (unwhitened) vectors in row order, or for the given ids in that order.

        All of them at once: N x dim floats (2.5 GB at 500,000 x 1280); the index itself only reads
        them chunk by chunk.
        """
        dim = int(self.settings()["dim"])
        if ids is None:
            blobs = [r[0] for r in self._db.execute("SELECT vector FROM items ORDER BY row")]
        else:
            lookup = dict(self._db.execute(
                f"SELECT id, vector FROM items WHERE id IN ({','.join('?' * len(ids))})", list(ids)).fetchall()) if ids else {}
            missing = [item for item in ids if item not in lookup]
            if missing:
                raise IndexStoreError(f"Catalog id {missing[0]!r} is not in this index.")
            blobs = [lookup[item] for item in ids]
        if not blobs:
            return np.zeros((0, dim), np.float32)
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim).copy()

    def whitening(self) -> PCAWhitening | None:
        if not self._whitening_loaded:
            row = self._db.execute("SELECT value FROM blobs WHERE key = 'whitening'").fetchone()
            self._whitening = PCAWhitening.from_bytes(row[0]) if row else None
            self._whitening_loaded = True
        return self._whitening

    def _apply_whitening(self, vectors: np.ndarray) -> np.ndarray:
        whitening = self.whitening()
        return whitening.apply(vectors) if whitening is not None and len(vectors) else _normalize(vectors)

    def _search_dim(self) -> int:
        whitening = self.whitening()
        return whitening.out_dim if whitening is not None else int(self.settings()["dim"])

    def prepare_queries(self, vectors: np.ndarray) -> np.ndarray:
        """Apply the index's whitening to raw query vectors (what search() does internally)."""
        return self._apply_whitening(np.atleast_2d(np.asarray(vectors, np.float32)))

    def faiss_index(self) -> faiss.Index:
        """The loaded faiss index, verified against the database (rebuilt when stale or damaged)."""
        if self._faiss is not None:
            return self._faiss
        settings = self.settings()
        if not settings.get("complete"):
            raise IndexStoreError(
                f"The index in {self.directory} is unfinished (an interrupted build or update); "
                f"run `catalog build --resume` to finish it."
            )
        path = self.directory / FAISS_NAME
        problem = None
        if not path.is_file():
            problem = "is missing"
        elif settings.get("faiss_revision") != settings.get("revision"):
            problem = "is older than the catalog database (an update was interrupted)"
        elif _file_sha256(path) != settings.get("faiss_sha256"):
            problem = "does not match its recorded checksum (damaged or edited)"
        if problem is None:
            try:
                index = faiss.read_index(str(path))  # straight from the file: no second copy in memory
            except RuntimeError:
                problem = "cannot be read"
            else:
                if index.ntotal != self.count():
                    problem = "does not match the database"
        if problem is not None:
            log.warning("index file %s %s; rebuilding it from the stored vectors", path, problem)
            index = self._rebuild_faiss(settings)
            if self._lock is not None:
                # We may write: repair the file and its record, so the next open trusts it again.
                with self._db:
                    tmp, sha256 = _write_faiss_file(path, index)
                    os.replace(tmp, path)
                    self._write_settings({"faiss_sha256": sha256, "faiss_revision": settings.get("revision")})
        self._faiss = index
        return index

    def _plan(self, settings: dict | None = None) -> IndexPlan:
        """The search structure recorded when the index was finalised (indexes from before plans: by type)."""
        settings = settings or self.settings()
        if isinstance(settings.get("index_plan"), dict):
            try:
                return IndexPlan.from_dict(settings["index_plan"])
            except (TypeError, ValueError):
                pass
        try:
            return plan_index(settings.get("index_type", "flat"), len(self._rows()), self._search_dim(),
                              settings.get("memory_budget"))
        except UserError as exc:
            raise IndexStoreError(str(exc)) from None

    def _rebuild_faiss(self, settings: dict) -> faiss.Index:
        """The recorded search structure rebuilt from the stored vectors, streamed (same sample, same nprobe)."""
        plan = self._plan(settings)
        if plan.n != len(self._rows()):
            plan = replace(plan, n=len(self._rows()))
        _, training = _sample_positions(plan)
        builder = _IndexBuilder(plan, self._search_vectors_at(self._rows()[training]))
        for _, vectors in self.vector_chunks():
            builder.add(self._apply_whitening(vectors))
        return builder.finish()[0]

    def search(self, vectors: np.ndarray, k: int = 7, query_expansion: int = 0,
               qe_alpha: float = 3.0) -> list[list[SearchHit]]:
        """Rank catalog rows for raw query vectors (Q,D); returns Q lists of hits, best first.

        Args:
            query_expansion: n > 0 re-queries with each query averaged with its top-n results
                (alpha-weighted, see :mod:`beauty_app.retrieval.rerank`).
        """
        queries = self.prepare_queries(vectors)
        index = self.faiss_index()
        if index.ntotal == 0:
            return [[] for _ in range(len(queries))]
        if query_expansion > 0:
            from .rerank import expand_queries

            n = min(int(query_expansion), index.ntotal)
            scores, positions = index.search(queries, n)
            rows = self._rows()
            # Only the neighbours' vectors are read (by row), not the whole catalog.
            wanted = rows[positions.clip(min=0)]
            neighbours = self._search_vectors_at(wanted.reshape(-1)).reshape(*wanted.shape, -1)
            neighbours[positions < 0] = 0.0  # an approximate index may return fewer than n
            queries = expand_queries(queries, neighbours, scores, qe_alpha)
        scores, positions = index.search(queries, min(k, index.ntotal))
        return self._hits(scores, positions, self._rows())

    def _hits(self, scores: np.ndarray, positions: np.ndarray, rows: np.ndarray) -> list[list[SearchHit]]:
        """faiss results (positions into `rows`, -1 = none) -> ranked hits with their catalog records."""
        results = []
        for query_scores, query_positions in zip(scores, positions):
            valid = [(float(score), int(rows[p])) for score, p in zip(query_scores, query_positions) if p >= 0]
            records = self._records([row for _, row in valid])
            hits = []
            for rank, (score, row) in enumerate(valid, start=1):
                item_id, path, description, category = records[row]
                hits.append(SearchHit(rank, item_id, score, path, description, category, row))
            results.append(hits)
        return results

    def alternate_poolings(self) -> list[str]:
        """Other poolings whose catalog vectors are stored for every catalog row (for comparisons)."""
        count = self.count()
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alt_vectors'").fetchone():
            return []  # an index from before comparisons were stored
        with self._damage_guard():
            rows = self._db.execute(
                "SELECT a.pooling, count(*) FROM alt_vectors a JOIN items i ON i.id = a.id GROUP BY a.pooling"
            ).fetchall()
        return sorted(pooling for pooling, n in rows if n == count and count > 0)

    def search_alternate(self, pooling: str, vectors: np.ndarray, k: int = 7) -> list[list[SearchHit]]:
        """Exact search among the stored vectors of another pooling (no whitening), for comparisons."""
        if pooling not in self._alt_cache:
            if pooling not in self.alternate_poolings():
                raise IndexStoreError(f"This index has no {pooling} vectors to compare with; rebuild it to add them.")
            settings = self.settings()
            with self._damage_guard():
                found = [row for chunk in self._alt_chunks(pooling) for row in chunk]
                digest = self._alt_digest(pooling, [found])
                expected = (settings.get("alt_sha256") or {}).get(pooling)
                if expected is not None and settings.get("faiss_revision") == settings.get("revision") \
                        and digest != expected:
                    raise IndexStoreError(
                        f"The stored {pooling} vectors in {self.directory} do not match their recorded checksum "
                        f"(damaged or edited); rebuild the index with `catalog build`.")
                rows = np.array([r for r, _, _ in found], dtype=np.int64)
                matrix = _normalize(
                    np.frombuffer(b"".join(v for _, _, v in found), np.float32).reshape(len(found), -1))
            self._alt_cache[pooling] = (rows, make_faiss_index(matrix, "flat"))
        rows, index = self._alt_cache[pooling]
        queries = _normalize(np.atleast_2d(np.asarray(vectors, np.float32)))
        scores, positions = index.search(queries, min(k, index.ntotal))
        return self._hits(scores, positions, rows)

    def _records(self, rows: Sequence[int]) -> dict[int, tuple]:
        if not rows:
            return {}
        found = self._db.execute(
            f"SELECT row, id, path, description, category FROM items WHERE row IN ({','.join('?' * len(rows))})",
            list(rows)).fetchall()
        return {r[0]: r[1:] for r in found}

    def iter_items(self, filter_text: str = "", limit: int | None = None, offset: int = 0,
                   after_row: int | None = None) -> Iterator[dict]:
        """Catalog rows (without vectors) in row order, optionally filtered by description/category/id.

        Each row's dict carries its database ``row``. Paging is by key: pass the last row you got
        as `after_row` and the next page costs the same however deep it is (SQLite's OFFSET walks
        past every skipped row). A plain `offset` that continues the previous page of the same
        filter is turned into such a keyset query too, so the catalog browser's scrolling stays
        fast at the end of a 500,000-row catalog.
        """
        page_offset = int(offset) if after_row is None else None
        if page_offset and self._page_end is not None and self._page_end[:2] == (filter_text, page_offset):
            after_row, offset = self._page_end[2], 0  # continue after the last row served
        elif page_offset and not filter_text and (first := self._first_row_if_dense()) is not None:
            after_row, offset = first + page_offset - 1, 0  # a jump: rows are numbered without gaps
        sql = "SELECT row, id, path, description, category FROM items WHERE row > ?"
        params: list = [-(1 << 62) if after_row is None else int(after_row)]
        if filter_text:
            sql += " AND (id LIKE ? OR description LIKE ? OR category LIKE ?)"
            params += [f"%{filter_text}%"] * 3
        sql += " ORDER BY row LIMIT ? OFFSET ?"
        params += [-1 if limit is None else int(limit), int(offset)]
        if limit is None:  # everything: stream it
            for row, item_id, path, description, category in self._db.execute(sql, params):
                yield {"id": item_id, "path": path, "description": description, "category": category, "row": row}
            return
        found = self._db.execute(sql, params).fetchall()
        if page_offset is not None and found:
            self._page_end = (filter_text, page_offset + len(found), found[-1][0])
        for row, item_id, path, description, category in found:
            yield {"id": item_id, "path": path, "description": description, "category": category, "row": row}

    def _first_row_if_dense(self) -> int | None:
        """The first row number when rows are numbered without gaps (no removals), else None.

        Then the row at any offset is known without SQLite's OFFSET walking past every row before
        it, so the browser's jumps cost what a first page costs. Cached until the database changes.
        """
        state = (self._db.execute("PRAGMA data_version").fetchone()[0], self.settings().get("revision"))
        if self._dense_rows is None or self._dense_rows[0] != state:
            # Three statements: each alone is optimised (min/max read one end of the b-tree, count(*)
            # counts b-tree cells without reading the rows); together they would scan the table.
            first = self._db.execute("SELECT min(row) FROM items").fetchone()[0]
            last = self._db.execute("SELECT max(row) FROM items").fetchone()[0]
            count = self.count()
            dense = first is not None and last - first + 1 == count
            self._dense_rows = (state, first if dense else None)
        return self._dense_rows[1]

    def count_items(self, filter_text: str = "") -> int:
        """How many rows :meth:`iter_items` lists for `filter_text` (a filter scans the table)."""
        if not filter_text:
            return self.count()
        pattern = f"%{filter_text}%"
        return int(self._db.execute(
            "SELECT count(*) FROM items WHERE id LIKE ? OR description LIKE ? OR category LIKE ?",
            (pattern, pattern, pattern)).fetchone()[0])

    def thumbnail(self, item_id: str) -> bytes | None:
        row = self._db.execute("SELECT thumbnail FROM items WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def info(self) -> dict:
        """A summary for `catalog info`, the status bar and the catalog tab."""
        settings = self.settings()
        plan = None
        if isinstance(settings.get("index_plan"), dict):
            with contextlib.suppress(TypeError, ValueError):
                plan = IndexPlan.from_dict(settings["index_plan"])
        return {
            "directory": str(self.directory),
            "count": self.count(),
            "skipped": len(self.skipped()),
            "model_spec": settings.get("model_spec"),
            "pooling": settings.get("pooling"),
            "dim": settings.get("dim"),
            "search_dim": settings.get("search_dim"),
            "index_type": settings.get("index_type", "flat"),
            "structure": plan.describe() if plan is not None else None,
            "index_size": format_bytes(settings["index_bytes"]) if settings.get("index_bytes") else None,
            # recall@7 of the search structure against exact search, measured when it was built on
            # catalog vectors held out of training (1.0: exact search; None: not measured)
            f"recall_at_{RECALL_K}": settings.get(f"recall_at_{RECALL_K}"),
            "whitening": self.whitening() is not None,
            "scales": settings.get("scales"),
            "input_size": settings.get("input_size"),
            "complete": bool(settings.get("complete")),
            "created": settings.get("created"),
        }
