# Kept in one module (about 640 lines): the facade over an index directory; each method is short and
# hands the work to store.py, integrity.py, structures.py or browse.py, which are already apart.
"""CatalogIndex: one index directory opened for searching or changing, over its store and structure.

The facade callers hold. It opens the directory (lock, database checks), keeps the search
structure in step with the database (:mod:`.structures` builds, repairs and saves it), applies
the whitening and ranks queries.

A change to a finalised index costs what it touches: the store rehashes only the changed chunks,
and the search structure is the file last written plus the rows changed since (recorded by the
store in the same transactions), applied in place when it is loaded (inverted-file structures:
faiss add/remove with ids, no retraining). The file is rewritten when those changes pile up or
the catalog has grown so much that its list count is far off (then it is retrained). Rows, staging and checksums are the store's
(:mod:`.store`); paging for the catalog browser is :mod:`.browse`'s.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...errors import IndexStoreError, UserError
from ..ann import DEFAULT_RECALL_TARGET, RECALL_K, IndexPlan, format_bytes, plan_index
from . import structures
from .browse import CatalogBrowser
from .lock import WriteLock
from .store import DB_NAME, FORMAT_VERSION, LEGACY_FORMAT_VERSION, CatalogStore, ItemRecord
from .structures import FAISS_NAME, IndexBuilder, SearchStructure, make_faiss_index, sample_positions
from .whitening import PCAWhitening, normalize

log = logging.getLogger(__name__)


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


class CatalogIndex:
    """An index directory opened for searching (and, with `writable=True`, for changes)."""

    def __init__(self, directory: Path, store: CatalogStore, lock: WriteLock | None):
        self.directory = directory
        self.store = store
        self._db = store.db  # the connection; the scale benchmark times raw queries on it
        self._lock = lock
        self._browser = CatalogBrowser(store)
        self._faiss: SearchStructure | None = None
        self._whitening: PCAWhitening | None = None
        self._whitening_loaded = False
        self._alt_cache: dict[str, tuple[np.ndarray, np.ndarray, SearchStructure]] = {}

    # ----------------------------------------------------------------- opening and creating
    @classmethod
    def create(cls, directory: str | os.PathLike, settings: dict) -> CatalogIndex:
        """Create a new, empty index (or reopen an unfinished one with the same settings) for writing.

        `settings` must hold model_spec, model_fingerprint, pooling and dim; other keys are kept.
        """
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in _READ_ONLY_ERRORS:
                raise IndexStoreError(f"{directory} cannot be created ({exc.strerror}); choose a writable "
                                      f"--out folder.") from None
            raise
        lock = WriteLock(directory).__enter__()
        try:
            structures.remove_stale_temporaries(directory)
            store = CatalogStore(directory, CatalogStore.connect(directory / DB_NAME))
            store.ensure_schema()
            store.ensure_text_index()
            index = cls(directory, store, lock)
            existing = store.settings()
            if existing:
                store.check_compatible(existing, settings)
            else:
                store.update_settings({**settings, "format_version": FORMAT_VERSION, "complete": False,
                                       "revision": 0, "chunk_rows": store.chunk_rows,
                                       "created": time.strftime("%Y-%m-%d %H:%M:%S")})
            return index
        except BaseException:
            lock.__exit__()
            raise

    @classmethod
    def open(cls, directory: str | os.PathLike, writable: bool = False) -> CatalogIndex:
        """Open an existing index; checks its integrity record and refuses unfinished or foreign directories.

        Opening reads no catalog row: settings, whitening, skipped list and the per-chunk checksum
        tables are checked against the integrity record (an edit is refused and named), and rows
        are checked against their chunk's checksums when they are read (`catalog verify` checks
        them all). An index on read-only media opens read-only (SQLite ``immutable``): it can be
        searched, and changing it is refused with one sentence. An index of the previous format is
        checked as that format was and upgraded in place once, when its folder is writable.
        """
        directory = Path(directory)
        db_path = directory / DB_NAME
        if not db_path.is_file():
            raise IndexStoreError(f"{directory} is not a BeautyLens index (no {DB_NAME}); build one with `catalog build`.")
        read_only_media = not media_is_writable(directory)
        if writable and read_only_media:
            raise IndexStoreError(read_only_refusal(directory))
        lock = WriteLock(directory).__enter__() if writable else None
        try:
            connection = CatalogStore.connect(db_path, readonly=not writable, immutable=read_only_media)
            store = CatalogStore(directory, connection, writable=writable)
            if writable:
                store.ensure_schema()  # tables added since the index was made, and this writer's triggers
            index = cls(directory, store, lock)
            settings = store.settings()
            if settings.get("format_version") not in (FORMAT_VERSION, LEGACY_FORMAT_VERSION):
                raise IndexStoreError(f"{directory} holds an index of an unsupported format; rebuild it.")
            store.verify_record(settings)
            if settings.get("format_version") == LEGACY_FORMAT_VERSION:
                index._upgrade_legacy(read_only_media)
            if lock is not None:
                store.ensure_text_index()
                structures.remove_stale_temporaries(directory)
            return index
        except BaseException:
            if lock is not None:
                lock.__exit__()
            raise

    def _upgrade_legacy(self, read_only_media: bool) -> None:
        """Give an index of the previous format per-chunk checksums, in place (once), when it may be written."""
        if read_only_media:
            log.info("%s holds an index of the previous format on read-only media: every open checks every row",
                     self.directory)
            return
        if self._lock is None:
            try:
                with CatalogIndex.open(self.directory, writable=True):
                    pass  # the writable open below upgraded it; this connection sees the result
            except IndexStoreError as exc:  # another writer holds it: upgraded another time
                log.info("index %s not upgraded now: %s", self.directory, exc)
            self.store._settings_cache = None
            return
        started = time.perf_counter()
        settings = self.store.settings()
        if settings.get("faiss_revision") != settings.get("revision"):
            # An update of the old format was interrupted: its faiss file is of an older revision.
            with self.store.writing():
                self.store.db.execute("DELETE FROM settings WHERE key = 'faiss_sha256'")
        self.store.upgrade()
        log.warning("upgraded the index in %s to per-chunk checksums (once, %.1f s): opening and updating it no "
                    "longer reads every row", self.directory, time.perf_counter() - started)

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.__exit__()
            self._lock = None

    def __enter__(self) -> CatalogIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- settings
    def settings(self) -> dict:
        return self.store.settings()

    def update_settings(self, values: dict) -> None:
        """Record extra settings (JSON values) in one transaction, e.g. that a shard is finished."""
        self.store.update_settings(values)

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

    # ----------------------------------------------------------------- writing (rows: the store's)
    def known_items(self) -> set[str]:
        """Ids already stored or already skipped (a resumed build does not redo them); all of them at once."""
        return self.store.known_items()

    def known_among(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` are already stored or skipped: :meth:`known_items` for one chunk of a catalog."""
        return self.store.known_among(ids)

    def stored_paths(self, ids: Sequence[str]) -> dict[str, str]:
        """Id -> image path of those `ids` stored in the catalog or staged by an unfinished `catalog add`."""
        return self.store.stored_paths(ids)

    def add_items(self, records: Sequence[ItemRecord], skipped: Iterable[tuple[str, str]] = (),
                  staged: bool = False) -> None:
        """Store one batch of vectors and skip reasons in a single transaction.

        Args:
            staged: keep the records aside (searches do not see them) until :meth:`commit_staged`;
                used by `catalog add` so an interrupted update leaves the previous index intact.
        """
        self.store.add_items(records, skipped, staged)

    def positioned_rows(self, chunk: int = 1024) -> Iterator[tuple]:
        """A shard's rows in catalog order: (catalog position, id, path, description, category, vector bytes, thumbnail)."""
        return self.store.positioned_rows(chunk)

    def comparison_vectors(self, ids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """Id -> {pooling: vector} of the stored comparison vectors of `ids`."""
        return self.store.comparison_vectors(ids)

    def staged_items(self) -> dict[str, str]:
        """Id -> path of records staged by an unfinished `catalog add`."""
        return self.store.staged_items()

    def commit_staged(self) -> int:
        """Move staged records into the catalog in one transaction; returns how many."""
        return self.store.commit_staged()

    def remove_items(self, ids: Iterable[str]) -> int:
        """Delete catalog rows by id; returns how many existed."""
        return self.store.remove_items(ids)

    def finalize(self, index_type: str | None = None, whitening: int | bool | None = None, *,
                 memory_budget: int | None = None, recall_target: float | None = None) -> None:
        """Bring the search structure and checksums up to date with the rows, and mark the index complete.

        On a finalised index with the same settings this costs what changed: the changed chunks were
        rehashed when they were written, and the search structure takes the changed rows in place
        (see :meth:`_finalize_in_place`). Otherwise (a new index, other settings, whitening to learn,
        or a catalog whose size is far from what the structure was trained for) everything is
        streamed from the database a chunk at a time: whitening is learned from running sums,
        approximate indexes are trained on a sample and filled chunk by chunk, and the per-chunk
        checksums are recorded (or, for a finalised index, checked) in the same pass. Memory is the
        search structure plus a chunk and the training sample, whatever the catalog size.

        Args:
            index_type: auto | flat | ivf | hnsw | pq (default: keep the current setting, else flat).
            whitening: None keeps the current setting; True learns full-dimension PCA whitening on
                the catalog; a positive int learns it reduced to that many dimensions; False removes it.
            memory_budget: bytes the search structure may take (auto; default: the current setting,
                else 1 GiB).
            recall_target: recall@7 against exact search that auto tunes nprobe for (default 0.95).
        """
        store = self.store
        store.refuse_if_read_only()
        settings = store.settings()
        same = (index_type in (None, settings.get("index_type")) and whitening is None
                and memory_budget in (None, settings.get("memory_budget"))
                and recall_target in (None, settings.get("recall_target")))
        index_type = index_type or settings.get("index_type", "flat")
        if memory_budget is None:
            memory_budget = settings.get("memory_budget")
        recall_target = float(recall_target or settings.get("recall_target") or DEFAULT_RECALL_TARGET)
        if same and settings.get("complete") and store.sealed and self._finalize_in_place(settings):
            return
        sealed = store.sealed
        store.forget_rows()
        rows = store.rows()
        with store.writing(), store.checks_deferred():  # one transaction; the pass below checks every chunk
            if whitening is False:
                store.set_whitening_blob(None)
            elif whitening is not None:
                learned = PCAWhitening.learn_chunks(
                    (vectors for _, vectors in store.vector_chunks()), None if whitening is True else int(whitening))
                store.set_whitening_blob(learned.to_bytes())
            self._whitening_loaded = False
            search_dim = self._search_dim()
            try:
                plan = plan_index(index_type, len(rows), search_dim, memory_budget)
            except UserError as exc:
                raise IndexStoreError(str(exc)) from None
            held_out, training = sample_positions(plan)
            builder = IndexBuilder(plan, self._search_vectors_at(rows[training]),
                                   self._search_vectors_at(rows[held_out]), held_out)
            store.digest_all(on_vectors=lambda vectors: builder.add(self._apply_whitening(vectors)), check=sealed)
            index, plan, measured = builder.finish(recall_target)
            tmp, faiss_sha256 = structures.write_structure_file(self.directory / FAISS_NAME, index)
            revision = int(settings.get("revision", 0)) + 1
            store.write_settings({
                "index_type": index_type, "complete": True, "revision": revision, "count": len(rows),
                "faiss_revision": revision, "faiss_sha256": faiss_sha256, "search_dim": search_dim,
                "index_plan": plan.as_dict(), "index_bytes": tmp.stat().st_size,
                "memory_budget": memory_budget, "recall_target": recall_target,
                f"recall_at_{RECALL_K}": None if measured is None else round(float(measured), 4),
                "recall_queries": len(held_out) if not plan.exact else 0,
                "chunk_rows": store.chunk_rows,
            })
            store.db.execute("DELETE FROM settings WHERE key = 'alt_sha256'")  # format 1's
            store.clear_structure_changes()
            store.write_integrity()
            # The faiss file is replaced before the transaction commits; if we are killed between
            # the two, its checksum no longer matches the record and it is rebuilt on open.
            os.replace(tmp, self.directory / FAISS_NAME)
        self._faiss = index
        store.forget_rows()
        self._alt_cache = {}

    #: Rows changed since the structure file was written, as a share of the catalog, before it is rewritten.
    REWRITE_SHARE = 0.05

    def _finalize_in_place(self, settings: dict) -> bool:
        """Finalise a change of a finalised index without reading the catalog; False if it needs a full pass.

        The structure file is kept while the changed rows are few: loading it applies them
        (:meth:`faiss_index`). The list count is kept unless the catalog size calls for one more
        than twice or less than half as large (then the full pass retrains).
        """
        store = self.store
        count = store.count()
        if count == 0:
            return False
        plan = self._plan(settings)
        try:
            fresh = plan_index(settings.get("index_type", "flat"), count, self._search_dim(),
                               settings.get("memory_budget"))
        except UserError:
            return False  # the full pass says why in one sentence
        if fresh.kind != plan.kind or (plan.nlist and not plan.nlist / 2 <= fresh.nlist <= plan.nlist * 2):
            log.info("catalog size %d calls for %s instead of %s: retraining", count, fresh.describe(), plan.describe())
            return False
        changed, _ = store.structure_changes()
        if settings.get("faiss_sha256") is None:
            return False
        rewrite = len(changed) > max(256, int(self.REWRITE_SHARE * count))
        self._faiss = None
        self._alt_cache = {}
        with store.writing():
            revision = int(settings.get("revision", 0)) + 1
            values = {"complete": True, "revision": revision, "faiss_revision": revision, "count": count,
                      "index_plan": replace(plan, n=count).as_dict()}
            in_place = self._structure_takes_changes_in_place(plan)
            if len(changed) and (rewrite or not in_place):
                # The file with the changes applied; a structure that cannot take them (a removal from
                # a flat or HNSW one) is rebuilt from the stored vectors with its recorded plan.
                index = self._load_structure(settings) if in_place else self._rebuild_faiss(settings)
                tmp, sha256 = structures.write_structure_file(self.directory / FAISS_NAME, index)
                values.update(faiss_sha256=sha256, index_bytes=tmp.stat().st_size)
                store.write_settings(values)
                store.clear_structure_changes()
                os.replace(tmp, self.directory / FAISS_NAME)
                self._faiss = index
            else:
                store.write_settings(values)
        store.forget_rows()
        return True

    def _structure_takes_changes_in_place(self, plan: IndexPlan) -> bool:
        """Inverted-file structures take any change at load; others only rows appended at the end."""
        if plan.kind.startswith("ivf"):
            return True
        changed, was_present = self.store.structure_changes()
        if was_present.any():
            return False
        rows = self.store.rows()
        old = np.setdiff1d(rows, changed, assume_unique=True)
        return not len(old) or not len(changed) or changed.min() > old.max()

    # ----------------------------------------------------------------- reading
    def count(self) -> int:
        return self.store.count()

    def skipped(self) -> list[tuple[str, str]]:
        return self.store.skipped()

    def vector_chunks(self) -> Iterator[tuple[list[int], np.ndarray]]:
        """(rows, raw vectors) of the catalog in row order, a chunk at a time."""
        return self.store.vector_chunks()

    def raw_vectors(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """Stored (unwhitened) vectors in row order, or for the given ids in that order.

        All of them at once: N x dim floats (2.5 GB at 500,000 x 1280); the index itself only reads
        them chunk by chunk.
        """
        return self.store.raw_vectors(ids)

    def thumbnail(self, item_id: str) -> bytes | None:
        return self.store.thumbnail(item_id)

    def iter_items(self, filter_text: str = "", limit: int | None = None, offset: int = 0,
                   after_row: int | None = None) -> Iterator[dict]:
        """Catalog rows (without vectors) in row order, filtered and paged: see :meth:`CatalogBrowser.iter_items`."""
        return self._browser.iter_items(filter_text, limit, offset, after_row)

    def count_items(self, filter_text: str = "") -> int:
        """How many rows :meth:`iter_items` lists for `filter_text` (exact; see :meth:`CatalogBrowser.count_items`)."""
        return self._browser.count_items(filter_text)

    def prepare_filters(self) -> None:
        """Read the rows' text the browser's filters search now (else the first filter does; see :mod:`.browse`)."""
        self._browser.prepare_filters()

    def check_all_text(self) -> int:
        """Check every chunk's catalog text (ids, paths, descriptions) now, as the first read of each would;
        returns the chunks checked. Raises IndexStoreError naming an edit."""
        return self.store.verify_all_text()

    def verify(self) -> int:
        """Check every catalog row, vector and comparison vector against its chunk's checksum, SQLite's own
        structure, and the search structure file; returns the rows checked. Raises IndexStoreError naming an edit."""
        checked = self.store.verify_all()
        if self.complete:
            self._faiss = None
            self.faiss_index()
        return checked

    # ----------------------------------------------------------------- whitening
    def whitening(self) -> PCAWhitening | None:
        if not self._whitening_loaded:
            blob = self.store.whitening_blob()
            self._whitening = PCAWhitening.from_bytes(blob) if blob is not None else None
            self._whitening_loaded = True
        return self._whitening

    def _apply_whitening(self, vectors: np.ndarray) -> np.ndarray:
        whitening = self.whitening()
        return whitening.apply(vectors) if whitening is not None and len(vectors) else normalize(vectors)

    def _search_dim(self) -> int:
        whitening = self.whitening()
        return whitening.out_dim if whitening is not None else int(self.settings()["dim"])

    def _search_vectors_at(self, rows: Sequence[int]) -> np.ndarray:
        """Vectors of the given rows in search space (whitened, normalised)."""
        return self._apply_whitening(self.store.raw_vectors_at(rows))

    def prepare_queries(self, vectors: np.ndarray) -> np.ndarray:
        """Apply the index's whitening to raw query vectors (what search() does internally)."""
        return self._apply_whitening(np.atleast_2d(np.asarray(vectors, np.float32)))

    # ----------------------------------------------------------------- the search structure
    def faiss_index(self) -> SearchStructure:
        """The loaded faiss index, verified against the database (rebuilt when stale or damaged)."""
        if self._faiss is not None:
            return self._faiss
        settings = self.settings()
        if not settings.get("complete"):
            raise IndexStoreError(
                f"The index in {self.directory} is unfinished (an interrupted build or update); "
                f"run `catalog build --resume` to finish it."
            )
        self._faiss = self._load_structure(settings)
        return self._faiss

    def _load_structure(self, settings: dict) -> SearchStructure:
        """The structure file with the rows changed since it was written applied; rebuilt when damaged or stale."""
        path = self.directory / FAISS_NAME
        store = self.store
        if store.sealed:
            index, problem = structures.read_written_structure(path, settings.get("faiss_sha256")), None
            if index is None:
                problem = "is missing, damaged or not the one recorded"
            elif not self._apply_changes(index):
                index, problem = None, "cannot take the changed rows in place"
            elif index.ntotal != len(store.rows()):
                index, problem = None, "does not match the database"
        else:  # an index of the previous format on read-only media: its own rules
            index, problem = structures.read_structure_file(path, settings, self.count())
        if problem is not None:
            log.warning("index file %s %s; rebuilding it from the stored vectors", path, problem)
            index = self._rebuild_faiss(settings)
            if self._lock is not None:
                # We may write: repair the file and its record, so the next open trusts it again.
                with store.writing():
                    tmp, sha256 = structures.write_structure_file(path, index)
                    store.write_settings({"faiss_sha256": sha256, "faiss_revision": settings.get("revision")})
                    store.clear_structure_changes()
                    os.replace(tmp, path)
        return index

    def _apply_changes(self, index: SearchStructure) -> bool:
        """Apply the rows changed since the structure file was written (recorded by the store) to `index`."""
        changed, was_present = self.store.structure_changes()
        if not len(changed):
            return True
        rows = self.store.rows()
        kept = np.setdiff1d(rows, changed, assume_unique=True)
        old_rows = np.union1d(kept, changed[was_present])
        if index.ntotal != len(old_rows):
            return False
        added = changed[np.isin(changed, rows)]
        vectors = self._search_vectors_at(added)
        return structures.update_in_place(index, old_rows, rows, changed[was_present], added, vectors)

    def _plan(self, settings: dict | None = None) -> IndexPlan:
        """The search structure recorded when the index was finalised (indexes from before plans: by type)."""
        settings = settings or self.settings()
        if isinstance(settings.get("index_plan"), dict):
            try:
                return IndexPlan.from_dict(settings["index_plan"])
            except (TypeError, ValueError):
                pass
        try:
            return plan_index(settings.get("index_type", "flat"), len(self.store.rows()), self._search_dim(),
                              settings.get("memory_budget"))
        except UserError as exc:
            raise IndexStoreError(str(exc)) from None

    def _rebuild_faiss(self, settings: dict) -> SearchStructure:
        """The recorded search structure rebuilt from the stored vectors, streamed (same sample, same nprobe)."""
        rows = self.store.rows()
        plan = self._plan(settings)
        if plan.n != len(rows):
            plan = replace(plan, n=len(rows))
        _, training = sample_positions(plan)
        chunks = (self._apply_whitening(vectors) for _, vectors in self.store.vector_chunks())
        return structures.rebuild_structure(plan, self._search_vectors_at(rows[training]), chunks)

    # ----------------------------------------------------------------- searching
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
            from ..rerank import expand_queries

            n = min(int(query_expansion), index.ntotal)
            scores, positions = index.search(queries, n)
            rows = self.store.rows()
            # Only the neighbours' vectors are read (by row), not the whole catalog.
            wanted = rows[positions.clip(min=0)]
            neighbours = self._search_vectors_at(wanted.reshape(-1)).reshape(*wanted.shape, -1)
            neighbours[positions < 0] = 0.0  # an approximate index may return fewer than n
            queries = expand_queries(queries, neighbours, scores, qe_alpha)
        scores, positions = index.search(queries, min(k, index.ntotal))
        return self._hits(scores, positions, self.store.rows())

    def _hits(self, scores: np.ndarray, positions: np.ndarray, rows: np.ndarray) -> list[list[SearchHit]]:
        """faiss results (positions into `rows`, -1 = none) -> ranked hits with their catalog records."""
        results = []
        for query_scores, query_positions in zip(scores, positions):
            valid = [(float(score), int(rows[p])) for score, p in zip(query_scores, query_positions) if p >= 0]
            records = self.store.records([row for _, row in valid])
            hits = []
            for rank, (score, row) in enumerate(valid, start=1):
                item_id, path, description, category = records[row]
                hits.append(SearchHit(rank, item_id, score, path, description, category, row))
            results.append(hits)
        return results

    def alternate_poolings(self) -> list[str]:
        """Other poolings whose catalog vectors are stored for every catalog row (for comparisons)."""
        return self.store.alternate_poolings()

    def search_alternate(self, pooling: str, vectors: np.ndarray, k: int = 7, query_expansion: int = 0,
                         qe_alpha: float = 3.0) -> list[list[SearchHit]]:
        """Exact search among the stored vectors of another pooling (no whitening), for comparisons.

        Query expansion works as in :meth:`search`, so a ranking compared across poolings differs
        only by the pooling.
        """
        if pooling not in self._alt_cache:
            if pooling not in self.alternate_poolings():
                raise IndexStoreError(f"This index has no {pooling} vectors to compare with; rebuild it to add them.")
            rows, matrix = self.store.comparison_matrix(pooling)
            self._alt_cache[pooling] = (rows, matrix, make_faiss_index(matrix, "flat"))
        rows, matrix, index = self._alt_cache[pooling]
        queries = normalize(np.atleast_2d(np.asarray(vectors, np.float32)))
        if index.ntotal == 0:
            return [[] for _ in range(len(queries))]
        if query_expansion > 0:
            from ..rerank import expand_queries

            scores, positions = index.search(queries, min(int(query_expansion), index.ntotal))
            neighbours = matrix[positions.clip(min=0)]
            neighbours[positions < 0] = 0.0
            queries = expand_queries(queries, neighbours, scores, qe_alpha)
        scores, positions = index.search(queries, min(k, index.ntotal))
        return self._hits(scores, positions, rows)

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


#: errno values that mean "this place cannot be written" (read-only file system, no permission).
_READ_ONLY_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM)


def media_is_writable(directory: Path) -> bool:
    """Whether this process may create files in `directory` (False on read-only media or without permission)."""
    return os.access(directory, os.W_OK)


def read_only_refusal(directory: Path) -> str:
    return (f"The index in {directory} is on read-only media or not writable: it can be searched, but adding, "
            f"removing or rebuilding needs a writable copy (copy the folder elsewhere).")
