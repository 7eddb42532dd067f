"""The challenge's files: ground truth (validation mapping) and rankings (submissions).

Both are one row per query: the query id followed by catalog ids, rows of different lengths,
UTF-8 with or without BOM. See :func:`read_truth` for the header rule. Rankings are written in
the submission format (no header) through the spreadsheet-safe, atomic writer of
:mod:`beauty_app.fileio`.

A module of its own at the top level, not inside ``evaluation/``: the command line and the app
write a submission from a folder search, which is retrieval's work, and ``retrieval/`` never
imports ``evaluation/``.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from beauty_app.errors import CatalogError
from beauty_app.fileio import (csv_read_errors, ends_inside_quotes, error_reason, unescape_csv_cell,
                               unterminated_quote_error, write_csv_rows)

# A header cell of a truth/ranking file: "id", or words ending in "id" ("Validation Image ID",
# "query_id"). Real ids ("squid", "0a3f...", "12345") do not match.
_HEADER_CELL = re.compile(r"^(?:[a-z]+[ _-])*id$", re.IGNORECASE)


def read_truth(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read the challenge ground truth: each query id with its relevant catalog ids.

    Rows are ``query_id,relevant_id[,relevant_id...]``. The first non-blank row is a header, and
    skipped, when its first cell is ``id`` or words ending in ``id`` (e.g. ``Validation Image
    ID``, ``query_id``). A UTF-8 BOM, blank lines, empty cells and surrounding whitespace are
    ignored; a relevant id repeated within a row is kept once (first position).

    Args:
        path: The truth CSV file.

    Returns:
        ``{query_id: [relevant ids]}`` in file order.

    Raises:
        CatalogError: The file is missing, unreadable, empty, lists a query twice, has a row
            without a query id, or a query without relevant ids.
    """
    table = _read_id_table(Path(path), "Truth file")
    truth: dict[str, list[str]] = {}
    for line_no, query, ids in table:
        if not ids:
            raise CatalogError(
                f'Truth file "{path}" lists query "{query}" on row {line_no} without relevant ids.'
            )
        truth[query] = list(dict.fromkeys(ids))
    if not truth:
        raise CatalogError(f'Truth file "{path}" contains no queries.')
    return truth


def read_ranking(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a ranking (submission) file: each query id followed by catalog ids, best first.

    Same format and header rule as :func:`read_truth`; repeated ids are kept in order (the
    metrics count a repeated id once), and a query may have no ids.

    Args:
        path: The ranking CSV file.

    Returns:
        ``{query_id: [ranked ids]}`` in file order.

    Raises:
        CatalogError: The file is missing, unreadable or empty, lists a query twice, or has a
            row without a query id.
    """
    return {query: ids for _, query, ids in _read_id_table(Path(path), "Ranking file")}


def _read_id_table(path: Path, what: str) -> list[tuple[int, str, list[str]]]:
    rows = _read_csv_rows(path, what)
    table: list[tuple[int, str, list[str]]] = []
    seen: dict[str, int] = {}
    first = True
    for line_no, raw in rows:
        cells = [c.strip() for c in raw]
        if not any(cells):
            continue
        if first:
            first = False
            if _HEADER_CELL.match(cells[0]):
                continue
        query = cells[0]
        if not query:
            raise CatalogError(f'{what} "{path}" has no query id in its first column on row {line_no}.')
        if query in seen:
            raise CatalogError(
                f'{what} "{path}" lists query "{query}" twice (rows {seen[query]} and {line_no}).'
            )
        seen[query] = line_no
        table.append((line_no, query, [c for c in cells[1:] if c]))
    return table


def _read_csv_rows(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """Parse a UTF-8 (optionally BOM-prefixed) CSV into (line number, unescaped cells) pairs."""
    with csv_read_errors(path, what), open(path, encoding="utf-8-sig", newline="") as fh:
        lines = list(fh)  # lines as the csv reader counts them, so a record's text can be found again
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(lines)
    last_start = 1  # the line where the last record read starts
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a cell over the size limit: often a quote never closed
            if ends_inside_quotes("".join(lines[start - 1:])):
                raise unterminated_quote_error(path, what, start) from None
            raise CatalogError(f'{what} "{path}" is not a valid CSV file on line {start} '
                               f'({error_reason(exc)}).') from None
        last_start = start
        rows.append((reader.line_num, [unescape_csv_cell(c) for c in row]))
    # A quote never closed swallows every following row into one cell: only the last record can be in one.
    if ends_inside_quotes("".join(lines[last_start - 1:])):
        raise unterminated_quote_error(path, what, last_start)
    if not any(any(c.strip() for c in row) for _, row in rows):
        raise CatalogError(f'{what} "{path}" is empty.')
    return rows


def write_ranking(path: str | os.PathLike[str], rankings: Mapping[str, Sequence[str]]) -> None:
    """Write rankings in the submission format: one row per query, no header.

    Args:
        path: Destination file; replaced atomically.
        rankings: ``{query_id: [catalog ids, best first]}``.

    Raises:
        UserError: The file cannot be written.
    """
    write_csv_rows(Path(path), ([query, *ids] for query, ids in rankings.items()))
