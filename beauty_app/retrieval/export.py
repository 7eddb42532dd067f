"""Export a catalog index's rows and vectors for other tools (a vector database, a notebook).

Formats, chosen by the output's suffix:

* ``.npy``: one structured NumPy array, one element per catalog row, with fields ``id``, ``path``,
  ``description``, ``category`` (fixed-width unicode) and ``vector`` (float32, the index's dimension).
  ``np.load(path)`` reads it without ``allow_pickle``; ``data["vector"]`` is the N x dim matrix.
* ``.npz``: the same columns as separate arrays (``ids``, ``paths``, ``descriptions``, ``categories``,
  ``vectors``), for readers that want a plain 2-D ``vectors`` array.
* ``.parquet``: columns ``id``, ``path``, ``description``, ``category`` and ``vector`` (a fixed-size list
  of float32), written a chunk at a time; needs pyarrow (the ``export`` extra). The index's model,
  pooling, dimension, scales and input size are stored in the file's schema metadata.

The vectors are the stored ones (L2-normalised image descriptors before any PCA whitening the index
applies at search time), in the index's row order. Rows are read through the index's own reading
API, which checks every chunk against its checksum, so a damaged index is refused, not exported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexStoreError, UserError
from .index import CatalogIndex

#: Output suffixes `export_index` writes.
EXPORT_FORMATS = (".npy", ".npz", ".parquet")

_TEXT_FIELDS = ("id", "path", "description", "category")


@dataclass(frozen=True)
class ExportSummary:
    """What `export_index` wrote."""

    out: Path
    rows: int
    dim: int
    format: str

    def as_dict(self) -> dict:
        return {"out": str(self.out), "rows": self.rows, "dim": self.dim, "format": self.format}


def export_format(out: str | os.PathLike) -> str:
    """The format the suffix of `out` names; a UserError for any other suffix."""
    suffix = Path(out).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(f"Cannot export to {Path(out).name}: the file name must end in "
                        f"{', '.join(EXPORT_FORMATS[:-1])} or {EXPORT_FORMATS[-1]}.")
    return suffix


def index_rows(index: CatalogIndex) -> Iterator[tuple[list[dict], np.ndarray]]:
    """(row dicts, raw vectors) of the whole catalog in row order, a chunk at a time, checksums checked."""
    items = index.iter_items()
    for rows, vectors in index.vector_chunks():
        chunk = [next(items, None) for _ in rows]
        if any(item is None or item["row"] != row for item, row in zip(chunk, rows)):
            # Both readers walk the same table in row order; a difference means it changed under us.
            raise IndexStoreError("The index changed while it was being exported; export it again.")
        yield chunk, vectors
    if next(items, None) is not None:
        raise IndexStoreError("The index changed while it was being exported; export it again.")


def export_index(index_dir: str | os.PathLike, out: str | os.PathLike) -> ExportSummary:
    """Write the ids, paths, descriptions, categories and vectors of the index in `index_dir` to `out`.

    The format follows the suffix of `out` (see the module's docstring). The file is written beside
    `out` under a temporary name and renamed at the end, so an interrupted export leaves no half file.
    """
    out = Path(out)
    fmt = export_format(out)
    if fmt == ".parquet":
        pyarrow = _pyarrow()
    if out.is_dir():
        raise UserError(f"{out} is a folder; give a file name ending in {fmt}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with CatalogIndex.open(index_dir) as index:
            settings = index.settings()
            dim = int(settings["dim"])
            if fmt == ".parquet":
                rows = _write_parquet(pyarrow, index_rows(index), partial, dim, settings)
            else:
                rows = _write_numpy(index_rows(index), partial, dim, fmt)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return ExportSummary(out=out, rows=rows, dim=dim, format=fmt.lstrip("."))


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the writer lives in this submodule)
    except ImportError:
        raise UserError("Exporting to Parquet needs pyarrow: pip install 'beauty-app[export]' "
                        "(or export to .npy).") from None
    return pyarrow


def _write_numpy(chunks, partial: Path, dim: int, fmt: str) -> int:
    columns: dict[str, list[str]] = {name: [] for name in _TEXT_FIELDS}
    vectors: list[np.ndarray] = []
    for items, chunk_vectors in chunks:
        for name in _TEXT_FIELDS:
            columns[name].extend(item[name] or "" for item in items)
        vectors.append(chunk_vectors)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    # Fixed-width unicode keeps the file loadable without pickle; at least 1 wide so empty columns work.
    texts = {name: np.array(values, dtype=f"U{max([1, *map(len, values)])}") for name, values in columns.items()}
    with open(partial, "wb") as handle:
        if fmt == ".npz":
            np.savez(handle, ids=texts["id"], paths=texts["path"], descriptions=texts["description"],
                     categories=texts["category"], vectors=matrix)
        else:
            dtype = [(name, texts[name].dtype) for name in _TEXT_FIELDS] + [("vector", np.float32, (dim,))]
            table = np.zeros(len(matrix), dtype=dtype)
            for name in _TEXT_FIELDS:
                table[name] = texts[name]
            table["vector"] = matrix
            np.save(handle, table, allow_pickle=False)
    return len(matrix)


def _write_parquet(pyarrow, chunks, partial: Path, dim: int, settings: dict) -> int:
    metadata = {key: str(settings[key]) for key in ("model_spec", "pooling", "dim", "scales", "input_size") if key in settings}
    schema = pyarrow.schema(
        [(name, pyarrow.string()) for name in _TEXT_FIELDS] + [("vector", pyarrow.list_(pyarrow.float32(), dim))],
        metadata={"beauty_app": json.dumps(metadata)})
    rows = 0
    with pyarrow.parquet.ParquetWriter(partial, schema) as writer:
        for items, vectors in chunks:
            flat = pyarrow.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))
            columns = [pyarrow.array([item[name] for item in items], pyarrow.string()) for name in _TEXT_FIELDS]
            columns.append(pyarrow.FixedSizeListArray.from_arrays(flat, dim))
            writer.write_table(pyarrow.Table.from_arrays(columns, schema=schema))
            rows += len(items)
    return rows
