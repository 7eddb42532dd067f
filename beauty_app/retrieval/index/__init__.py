"""The catalog index on disk: an SQLite database of catalog rows and vectors, plus a faiss index.

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

Modules, one reason to change each:

* :mod:`.catalog_index`: :class:`CatalogIndex`, the facade callers hold (open, finalise, search).
* :mod:`.store`: the SQLite rows, staging and settings (:class:`CatalogStore`).
* :mod:`.schema`: the database file's tables and format version.
* :mod:`.integrity`: per-chunk checksums, the integrity record, verification, format-1 upgrade.
* :mod:`.text_search`: the browser's FTS5 text index.
* :mod:`.structures`: the faiss structures (build, tune, save, check, rebuild); the only module
  of the project that imports faiss.
* :mod:`.whitening`: PCA whitening and L2 normalisation.
* :mod:`.browse`: paging through rows for the catalog browser.
* :mod:`.lock`: the directory's write lock.
"""

from __future__ import annotations

from ..ann import INDEX_TYPE_CHOICES
from .catalog_index import CatalogIndex, SearchHit
from .lock import LOCK_NAME, WriteLock
from .store import DB_NAME, FORMAT_VERSION, CatalogStore, ItemRecord
from .structures import (
    FAISS_NAME,
    SearchStructure,
    build_faiss_index,
    faiss_from_bytes,
    faiss_to_bytes,
    make_faiss_index,
    set_search_threads,
)
from .whitening import PCAWhitening

INDEX_TYPES = INDEX_TYPE_CHOICES  # auto, flat, ivf, hnsw, pq

__all__ = [
    "DB_NAME",
    "FAISS_NAME",
    "FORMAT_VERSION",
    "INDEX_TYPES",
    "LOCK_NAME",
    "CatalogIndex",
    "CatalogStore",
    "ItemRecord",
    "PCAWhitening",
    "SearchHit",
    "SearchStructure",
    "WriteLock",
    "build_faiss_index",
    "faiss_from_bytes",
    "faiss_to_bytes",
    "make_faiss_index",
    "set_search_threads",
]
