"""The warm-up's core parts: a search's stages are timed by name, and every catalog chunk's text can be
checked before any search reads it (issue 16: the first search costs what later ones do)."""

from __future__ import annotations

import contextlib
import sqlite3

import numpy as np
import pytest
from PIL import Image

from beauty_app.errors import IndexStoreError
from beauty_app.retrieval.index import store as index_store
from beauty_app.retrieval.index import DB_NAME, CatalogIndex, ItemRecord
from beauty_app.retrieval.search import SearchSession, warm_up_photo

DIM = 8


def _chunked_index(directory, rows: int = 40) -> None:
    """An index of `rows` random vectors; with 8-row chunks (monkeypatched) they lie in rows / 8 chunks."""
    vectors = np.random.default_rng(1).normal(size=(rows, DIM)).astype(np.float32)
    records = [ItemRecord(f"c{i:03d}", f"/cat/c{i}.jpg", f"product {i}", "lipstick", v, b"thumb") for i, v in enumerate(vectors)]
    with CatalogIndex.create(directory, {"model_spec": "m.pt", "model_fingerprint": "fp", "pooling": "gap",
                                         "dim": DIM}) as index:
        index.add_items(records)
        index.finalize()


def test_checking_all_text_checks_every_chunk_so_no_search_reads_one_first(tmp_path, monkeypatch):
    monkeypatch.setattr(index_store, "CHUNK_ROWS", 8)
    _chunked_index(tmp_path / "idx")
    with CatalogIndex.open(tmp_path / "idx") as index:
        chunks = list(index.store.chunks())
        assert len(chunks) >= 5 and index.check_all_text() == len(chunks)
        assert {(chunk, "text") for chunk in chunks} <= index.store._verified
        compared = []
        monkeypatch.setattr(index.store, "_compare_chunk", lambda *args: compared.append(args[0]))
        index.search(np.ones((1, DIM), np.float32), k=40)  # reads every chunk's rows
        assert compared == []  # none was checked again on its first read


def test_checking_all_text_refuses_an_edit_in_a_chunk_no_search_has_read(tmp_path, monkeypatch):
    monkeypatch.setattr(index_store, "CHUNK_ROWS", 8)
    _chunked_index(tmp_path / "idx")
    with contextlib.closing(sqlite3.connect(tmp_path / "idx" / DB_NAME)) as db, db:
        db.execute("UPDATE items SET description = 'edited' WHERE id = 'c030'")
        low = db.execute("SELECT row FROM items WHERE id = 'c030'").fetchone()[0] // 8 * 8
    with CatalogIndex.open(tmp_path / "idx") as index, pytest.raises(IndexStoreError, match=f"rows {low}-{low + 7} "):
        index.check_all_text()


def test_a_search_times_each_stage_it_runs(built_index, demo_data):
    photo = sorted(demo_data.queries_dir.iterdir())[0]
    with SearchSession(built_index) as session:
        assert list(session.search_image(photo, k=3).stage_seconds) == ["decode", "network", "index"]
        decoded = session.search_image(Image.open(photo).convert("RGB"), k=3)
        assert list(decoded.stage_seconds) == ["network", "index"]  # nothing to decode
        assert all(seconds >= 0 for seconds in decoded.stage_seconds.values())


def test_the_warm_up_checks_the_catalog_text_unless_the_index_is_too_large(built_index):
    with SearchSession(built_index) as session:
        assert session.check_catalog_text(max_rows=0) == 0 and not session.index.store._verified
        session.warm_up()
        chunks = len(list(session.index.store.chunks()))
        assert chunks >= 1 and {(chunk, "text") for chunk in range(chunks)} <= session.index.store._verified


def test_the_warm_up_photo_is_phone_sized_and_not_blank():
    photo = warm_up_photo((640, 480))
    assert photo.size == (640, 480) and photo.mode == "RGB"
    assert np.asarray(photo).std() > 10  # structured: SR-MAC's saliency path, not its empty-map fall-back


def test_preparing_the_filters_reads_the_catalog_text_unless_the_index_is_too_large(built_index):
    with SearchSession(built_index) as session:
        browser = session.index._browser
        assert session.prepare_catalog_filters(max_rows=0) is False and browser._text is None
        assert session.prepare_catalog_filters() is True and browser._text is not None
        column = browser._text[1]
        assert session.index.count_items("c0") >= 1 and browser._text[1] is column  # a filter uses it, not re-read
