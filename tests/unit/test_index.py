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
