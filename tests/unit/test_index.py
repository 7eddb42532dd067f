"""The catalog index: exact ranking, persistence, resume, incremental updates, integrity, locking."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest

import beauty_app
from beauty_app.errors import IndexStoreError
from beauty_app.retrieval.index import FAISS_NAME, CatalogIndex, ItemRecord, PCAWhitening, make_faiss_index

DIM = 16


def _records(n, seed=0, prefix="c"):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [ItemRecord(f"{prefix}{i:03d}", f"/cat/{prefix}{i}.jpg", f"product {i}", "lipstick", v) for i, v in enumerate(vectors)]


def _settings(fingerprint="fp-a", pooling="srmac"):
    return {"model_spec": "m.pt", "model_fingerprint": fingerprint, "pooling": pooling, "dim": DIM}


def _make(tmp_path, n=50, **finalize):
    records = _records(n)
    with CatalogIndex.create(tmp_path / "idx", _settings()) as index:
        index.add_items(records)
        index.finalize(**finalize)
    return tmp_path / "idx", records


def test_flat_search_equals_brute_force_inner_product(tmp_path):
    directory, records = _make(tmp_path)
    matrix = np.stack([r.vector for r in records])
    queries = matrix[:5] + 0.05 * np.random.default_rng(1).normal(size=(5, DIM)).astype(np.float32)
    with CatalogIndex.open(directory) as index:
        hits = index.search(queries, k=7)
    normed = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(-(normed @ matrix.T), axis=1)[:, :7]
    for q in range(5):
        assert [h.id for h in hits[q]] == [records[i].id for i in expected[q]]
        assert hits[q][0].id == records[q].id
        assert [h.rank for h in hits[q]] == list(range(1, 8))
        assert hits[q][0].description == f"product {q}"


def test_add_and_remove_update_the_ranking(tmp_path):
    directory, records = _make(tmp_path, n=20)
    extra = _records(3, seed=9, prefix="n")
    with CatalogIndex.open(directory, writable=True) as index:
        index.add_items(extra, staged=True)
        index.commit_staged()
        index.finalize()
        assert index.count() == 23
        assert index.search(extra[0].vector[None], k=1)[0][0].id == "n000"
        assert index.remove_items(["n000", "missing"]) == 1
        index.finalize()
    with CatalogIndex.open(directory) as index:
        assert index.count() == 22
        assert index.search(extra[0].vector[None], k=1)[0][0].id != "n000"


def test_interrupted_add_leaves_the_previous_index_searchable(tmp_path):
    directory, records = _make(tmp_path, n=20)
    with CatalogIndex.open(directory, writable=True) as index:
        index.add_items(_records(3, seed=9, prefix="n"), staged=True)
        # ...killed here: nothing committed, nothing finalised
    with CatalogIndex.open(directory) as index:
        assert index.count() == 20
        assert index.search(records[4].vector[None], k=1)[0][0].id == records[4].id
        assert set(index.staged_items()) == {"n000", "n001", "n002"}


def test_stale_or_damaged_faiss_file_is_detected_and_rebuilt(tmp_path):
    directory, records = _make(tmp_path)
    path = directory / FAISS_NAME
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with CatalogIndex.open(directory) as index:
        assert index.search(records[7].vector[None], k=1)[0][0].id == records[7].id
    path.unlink()
    with CatalogIndex.open(directory) as index:
        assert index.search(records[3].vector[None], k=1)[0][0].id == records[3].id


def test_damaged_database_is_reported_not_crashed(tmp_path):
    directory, _ = _make(tmp_path)
    db = directory / "catalog.sqlite"
    for side in ("-wal", "-shm"):
        (directory / f"catalog.sqlite{side}").unlink(missing_ok=True)
    data = bytearray(db.read_bytes())
    data[:16] = b"garbage garbage!"
    db.write_bytes(bytes(data))
    with pytest.raises(IndexStoreError, match="rebuild"):
        CatalogIndex.open(directory)


def test_unfinished_build_refuses_search_with_a_hint(tmp_path):
    with CatalogIndex.create(tmp_path / "idx", _settings()) as index:
        index.add_items(_records(5))
    with CatalogIndex.open(tmp_path / "idx") as index:
        with pytest.raises(IndexStoreError, match="--resume"):
            index.search(np.ones((1, DIM), np.float32))


def test_model_mismatch_and_incompatible_resume_are_refused(tmp_path):
    directory, _ = _make(tmp_path)
    with CatalogIndex.open(directory) as index:
        index.check_model("fp-a", "srmac")
        with pytest.raises(IndexStoreError, match="built with model"):
            index.check_model("fp-b")
        with pytest.raises(IndexStoreError, match="srmac features"):
            index.check_model("fp-a", "mac")
    with pytest.raises(IndexStoreError, match="different model fingerprint"):
        CatalogIndex.create(directory, _settings(fingerprint="fp-b"))


def test_second_writer_is_locked_out(tmp_path):
    directory, _ = _make(tmp_path)
    with CatalogIndex.open(directory, writable=True):
        with pytest.raises(IndexStoreError, match="being written"):
            CatalogIndex.open(directory, writable=True)
        with CatalogIndex.open(directory) as reader:  # readers are never blocked
            assert reader.count() == 50
    with CatalogIndex.open(directory, writable=True):
        pass


def test_whitening_is_learned_applied_and_reduces_dimension(tmp_path):
    directory, records = _make(tmp_path, whitening=8)
    with CatalogIndex.open(directory) as index:
        assert index.info()["whitening"] and index.info()["search_dim"] == 8
        hits = index.search(records[2].vector[None], k=3)[0]
        assert hits[0].id == records[2].id
    whitening = PCAWhitening.learn(np.stack([r.vector for r in records]))
    projected = whitening.apply(np.stack([r.vector for r in records]))
    # Whitened catalog vectors are decorrelated: their covariance is close to diagonal.
    cov = np.cov((projected / np.linalg.norm(projected, axis=1, keepdims=True)).T)
    off = cov - np.diag(np.diag(cov))
    assert np.abs(off).max() < 0.05


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw", "pq"])
def test_index_types_find_the_exact_neighbour_of_catalog_vectors(index_type):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = make_faiss_index(vectors, index_type)
    _, found = index.search(vectors[:50], 1)
    assert (found[:, 0] == np.arange(50)).mean() >= (0.9 if index_type == "pq" else 0.98)


def test_query_expansion_changes_scores_but_keeps_the_match(tmp_path):
    directory, records = _make(tmp_path)
    with CatalogIndex.open(directory) as index:
        plain = index.search(records[1].vector[None], k=5)[0]
        expanded = index.search(records[1].vector[None], k=5, query_expansion=2)[0]
    assert expanded[0].id == records[1].id
    assert [h.score for h in plain] != [h.score for h in expanded]


def test_index_copy_is_self_contained(tmp_path):
    directory, records = _make(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    with CatalogIndex.open(copy) as index:
        assert index.search(records[0].vector[None], k=1)[0][0].id == records[0].id


def test_writable_open_repairs_a_damaged_faiss_file_for_good(tmp_path, caplog):
    directory, records = _make(tmp_path)
    path = directory / FAISS_NAME
    path.write_bytes(b"broken")
    with CatalogIndex.open(directory, writable=True) as index:
        assert index.search(records[5].vector[None], k=1)[0][0].id == records[5].id
    assert path.read_bytes() != b"broken"
    caplog.clear()
    with CatalogIndex.open(directory) as index:
        index.faiss_index()
    assert "rebuilding" not in caplog.text  # the repaired file and its record agree now


def test_faiss_is_imported_by_the_structures_module_only():
    # torch and faiss can clash over OpenMP when both are imported in arbitrary places.
    package = Path(beauty_app.__file__).parent
    importers = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(name == "faiss" or name.startswith("faiss.") for name in names):
                importers.add(source.relative_to(package).as_posix())
    assert importers == {"retrieval/index/structures.py"}


# ---------------------------------------------------------------------------- changes cost what they touch
def _ivf_index(tmp_path, n=3000, dim=DIM):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with CatalogIndex.create(tmp_path / "idx", _settings()) as index:
        index.add_items([ItemRecord(f"c{i:05d}", f"/c/{i}.jpg", f"product {i}", "", v, None, {"mac": v[::-1].copy()})
                         for i, v in enumerate(vectors)])
        index.finalize("ivf")
    return tmp_path / "idx", vectors


def test_adding_to_a_large_index_reads_only_the_chunks_it_touches(tmp_path, monkeypatch):
    from beauty_app.retrieval.index import store as index_store

    directory, vectors = _ivf_index(tmp_path)
    faiss_before = (directory / FAISS_NAME).read_bytes()
    new = _records(10, seed=4, prefix="n")
    read: list[int] = []
    original = index_store.CatalogStore._chunk_items
    monkeypatch.setattr(index_store.CatalogStore, "_chunk_items",
                        lambda self, chunk, columns: read.append(chunk) or original(self, chunk, columns))
    with CatalogIndex.open(directory, writable=True) as index:
        index.add_items(new, staged=True)
        index.commit_staged()
        index.remove_items(["c00005"])
        index.finalize()
        assert set(read) <= {0, 11}  # rows 1-3000 fill chunks 0-11 of 256: the new rows go to 11, c00005 is in 0
        assert index.settings()["index_plan"]["kind"] == "ivf"
    assert (directory / FAISS_NAME).read_bytes() == faiss_before  # the file is kept; loading applies the change
    with CatalogIndex.open(directory) as index:
        assert index.faiss_index().ntotal == 3009 == index.count()
        assert [hits[0].id for hits in index.search(np.stack([r.vector for r in new]), k=1)] == [r.id for r in new]
        found = [hits[0].id for hits in index.search(vectors[:40], k=1)]
        assert found[5] != "c00005" and found[:5] + found[6:] == [f"c{i:05d}" for i in range(40) if i != 5]
        assert index.verify() == 3009


def test_in_place_changes_give_the_rows_a_full_rebuild_gives(tmp_path):
    """Removed, replaced and added rows: every remaining catalog vector still finds itself, nothing removed is found,
    and position i of the structure holds the vector of the i-th row, as a structure rebuilt from the database does."""
    directory, vectors = _ivf_index(tmp_path)
    rng = np.random.default_rng(8)
    with CatalogIndex.open(directory, writable=True) as index:
        gone = [f"c{i:05d}" for i in rng.choice(3000, 60, replace=False)]
        index.remove_items(gone)
        replaced = -vectors[100]
        index.add_items([ItemRecord("c00100", "/c/new.jpg", "replaced", "", replaced)], staged=True)
        index.add_items(_records(30, seed=5, prefix="n"), staged=True)
        index.commit_staged()
        index.finalize()
    with CatalogIndex.open(directory) as index:
        structure = index.faiss_index()
        rows = index.store.rows()
        in_place = structure.search(index.prepare_queries(vectors[:300]), 3)[1]
        assert index.search(replaced[None], k=1)[0][0].id == "c00100"
        assert structure.ntotal == len(rows) == 3000 - 60 + 30
        structure.make_direct_map()  # refuses ids outside 0..ntotal-1; then each position can be read back
        space = index._search_vectors_at(rows)
        for position in range(0, len(rows), 37):  # position i holds the i-th row's vector, as a rebuild would
            np.testing.assert_allclose(structure.reconstruct(position), space[position], atol=1e-6)
        ids = [hits[0].id for hits in index.search(vectors[:300], k=1)]
        assert not set(ids) & set(gone)
        assert all(found == f"c{i:05d}" for i, found in enumerate(ids) if f"c{i:05d}" not in gone and i != 100)
        assert (in_place >= 0).all()


def test_an_index_of_the_previous_format_is_upgraded_once(tmp_path, caplog):
    import json
    import sqlite3

    directory, records = _make(tmp_path, n=50)
    with CatalogIndex.open(directory) as index:
        before = [h.id for h in index.search(records[3].vector[None], k=5)[0]]
        legacy = index.store.legacy_content_digest()
    with sqlite3.connect(directory / "catalog.sqlite") as db:  # what the previous version wrote
        for table in ("chunk_digests", "alt_chunk_digests", "structure_changes", "dirty_chunks", "items_text"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DELETE FROM settings WHERE key IN ('integrity', 'chunk_rows')")
        db.executemany("UPDATE settings SET value = ? WHERE key = ?",
                       [("1", "format_version"), (json.dumps(legacy), "content_sha256")])
    caplog.set_level("INFO")
    with CatalogIndex.open(directory) as index:  # a reader: upgraded under the write lock, in place
        assert [h.id for h in index.search(records[3].vector[None], k=5)[0]] == before
        assert index.settings()["format_version"] == 2 and index.verify() == 50
        assert index.count_items("product 1") == 11
        assert index.store.has_text_index()  # the FTS5 table was made too
    assert caplog.text.count("upgraded the index") == 1
    caplog.clear()
    with CatalogIndex.open(directory) as index:
        index.search(records[3].vector[None], k=5)
    assert "upgraded" not in caplog.text


def test_a_legacy_index_with_an_edited_row_is_refused_not_upgraded(tmp_path):
    import json
    import sqlite3

    directory, _ = _make(tmp_path, n=20)
    with CatalogIndex.open(directory) as index:
        legacy = index.store.legacy_content_digest()
    with sqlite3.connect(directory / "catalog.sqlite") as db:
        db.execute("DELETE FROM settings WHERE key IN ('integrity', 'chunk_rows')")
        db.executemany("UPDATE settings SET value = ? WHERE key = ?",
                       [("1", "format_version"), (json.dumps(legacy), "content_sha256")])
        db.execute("UPDATE items SET description = 'edited' WHERE id = 'c003'")
    with pytest.raises(IndexStoreError, match="does not match its recorded checksum"):
        CatalogIndex.open(directory)


def test_the_trigram_index_is_kept_up_to_date_and_agrees_with_the_browser_filter(tmp_path):
    def fts_matches(index, text):
        return index._db.execute("SELECT count(*) FROM items_text WHERE items_text MATCH ?", (f'"{text}"',)).fetchone()[0]

    with CatalogIndex.create(tmp_path / "idx", _settings()) as index:
        index.add_items(_records(50))
        assert fts_matches(index, "product 1") == 0  # filled when the build is finalised, not row by row
        assert index.count_items("product 1") == 11  # the browser reads the rows' text itself
        index.finalize()
        assert fts_matches(index, "product 1") == 11 == index.count_items("PRODUCT 1")
        index.add_items([ItemRecord("n1", "/n.jpg", "product 100 new", "", _records(1)[0].vector)], staged=True)
        index.commit_staged()
        index.remove_items(["c010"])
        index.finalize()
        assert fts_matches(index, "product 1") == 11 == index.count_items("product 1")  # +product 100, -product 10
        assert [item["id"] for item in index.iter_items("uct 10", limit=5)] == ["n1"]
