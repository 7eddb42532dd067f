"""`catalog export`: an index's rows and vectors, read back equal to the index's own."""

from __future__ import annotations

import builtins
import json
import shutil
import sqlite3

import numpy as np
import pytest

from beauty_app.cli import main
from beauty_app.errors import IndexStoreError, UserError
from beauty_app.retrieval.export import export_index
from beauty_app.retrieval.index import CatalogIndex


@pytest.fixture(scope="module")
def expected(built_index):
    with CatalogIndex.open(built_index) as index:
        return list(index.iter_items()), index.raw_vectors()


def test_npy_export_is_a_structured_array_equal_to_the_index(built_index, expected, tmp_path, capsys):
    out = tmp_path / "catalog.npy"
    assert main(["catalog", "export", "--index", str(built_index), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    items, vectors = expected
    assert summary == {"out": str(out), "rows": len(items), "dim": vectors.shape[1], "format": "npy"}
    table = np.load(out, allow_pickle=False)
    np.testing.assert_array_equal(table["vector"], vectors)
    assert table["vector"].dtype == np.float32
    assert list(table["id"]) == [item["id"] for item in items]
    assert list(table["description"]) == [item["description"] for item in items]
    assert list(table["path"]) == [item["path"] for item in items]
    assert not list(tmp_path.glob(".*partial"))


def test_npz_export_has_plain_columns(built_index, expected, tmp_path):
    export_index(built_index, tmp_path / "catalog.npz")
    with np.load(tmp_path / "catalog.npz", allow_pickle=False) as data:
        np.testing.assert_array_equal(data["vectors"], expected[1])
        assert list(data["ids"]) == [item["id"] for item in expected[0]]
        assert list(data["categories"]) == [item["category"] or "" for item in expected[0]]


def test_parquet_export_equals_the_index(built_index, expected, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    summary = export_index(built_index, tmp_path / "catalog.parquet")
    table = pq.read_table(tmp_path / "catalog.parquet")
    items, vectors = expected
    assert summary.rows == table.num_rows == len(items)
    np.testing.assert_array_equal(np.array(table.column("vector").to_pylist(), dtype=np.float32), vectors)
    assert table.column("id").to_pylist() == [item["id"] for item in items]
    assert table.column("description").to_pylist() == [item["description"] for item in items]
    assert json.loads(table.schema.metadata[b"beauty_app"])["pooling"] == "srmac"


def test_parquet_without_pyarrow_names_the_extra(built_index, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(UserError, match=r"beauty-app\[export\]"):
        export_index(built_index, tmp_path / "catalog.parquet")


def test_unknown_suffix_is_one_sentence(built_index, tmp_path, capsys):
    assert main(["catalog", "export", "--index", str(built_index), "--out", str(tmp_path / "x.csv")]) == 2
    assert ".npy" in capsys.readouterr().err


def test_a_damaged_index_is_refused_not_exported(built_index, tmp_path):
    damaged = shutil.copytree(built_index, tmp_path / "idx")
    db = next(p for p in damaged.iterdir() if p.suffix in (".db", ".sqlite", ".sqlite3"))
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE items SET description = 'edited' WHERE row = (SELECT min(row) FROM items)")
    with pytest.raises(IndexStoreError):
        export_index(damaged, tmp_path / "catalog.npy")
    assert not (tmp_path / "catalog.npy").exists() and not list(tmp_path.glob(".*partial"))
