"""The catalog browser's filter: exact substring matches, without case, against a brute-force count."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from beauty_app.retrieval.index import CatalogIndex, ItemRecord
from beauty_app.retrieval.index.text_column import TextColumn

ALPHABET = list("abcAB 0123-é\u00c9ß\u03a3\u03c3xyz") + ["\U0001f600", "\u0130"]


def brute_force(rows: list[tuple[int, str, str, str]], text: str) -> list[int]:
    needle = text.lower()
    return [row for row, *fields in rows if any(needle in field.lower() for field in fields)]


def random_rows(rng: np.random.Generator, n: int) -> list[tuple[int, str, str, str]]:
    def word(low, high):
        return "".join(rng.choice(ALPHABET, size=int(rng.integers(low, high))))

    rows, row = [], 0
    for i in range(n):
        row += int(rng.integers(1, 4))  # row numbers with gaps, as after removals
        rows.append((row, f"id{i}-{word(0, 3)}", word(0, 30), word(0, 6)))
    rows[7] = (rows[7][0], rows[7][1], word(200, 260), "long")  # far longer than the rest: kept aside
    return rows


def column_of(rows) -> TextColumn:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE items (row INTEGER PRIMARY KEY, id TEXT, description TEXT, category TEXT)")
    db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
    return TextColumn.from_db(db)


def test_random_filters_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    rows = random_rows(rng, 600)
    column = column_of(rows)
    assert column._long, "the long description should be searched aside"
    filters = ["".join(rng.choice(ALPHABET, size=int(rng.integers(1, 5)))) for _ in range(300)]
    # Pieces of real rows too (most random strings match nothing), up to 12 characters.
    for _ in range(300):
        _, *fields = rows[int(rng.integers(len(rows)))]
        field = fields[int(rng.integers(3))]
        start = int(rng.integers(0, max(1, len(field))))
        filters.append(field[start:start + int(rng.integers(1, 13))].upper() if rng.random() < 0.3
                       else field[start:start + int(rng.integers(1, 13))])
    matched = 0
    for text in filters:
        expected = brute_force(rows, text)
        assert column.matching_rows(text).tolist() == expected, text
        matched += bool(expected) and len(expected) < len(rows)
    assert matched > 100  # the filters were not all trivial


def test_a_filter_never_matches_across_fields_or_rows():
    rows = [(1, "abc", "def", "ghi"), (2, "jkl", "", "mno"), (3, "x", "y", "z")]
    column = column_of(rows)
    assert column.matching_rows("cd").tolist() == []
    assert column.matching_rows("ghij").tolist() == []
    assert column.matching_rows("lm").tolist() == []
    assert column.matching_rows("DEF").tolist() == [1]
    assert column.matching_rows("").tolist() == [1, 2, 3]
    assert column.matching_rows("x" * 100).tolist() == []  # longer than any row


def test_case_is_folded_per_field_as_str_lower_does():
    # A final sigma is lower-cased by its context; the fast read lowers all rows as one string.
    rows = [(1, "ΟΔΟΣ", "ΟΔΟΣ ΟΔΟΣ", "ΣΑ"), (2, "İstanbul", "", "")]
    column = column_of(rows)
    for text in ("οδος", "οδοσ", "ΟΔΟΣ", "ος ο", "σα", "ςα", "i̇st", "İST"):
        assert column.matching_rows(text).tolist() == brute_force(rows, text), text


def test_rows_holding_the_fast_reads_separators_are_read_one_by_one():
    rows = [(1, "a\x1eb", "c\x1fd", "e"), (2, "f", "g", "h")]
    column = column_of(rows)
    assert column.matching_rows("a\x1eb").tolist() == [1]
    assert column.matching_rows("c\x1fd").tolist() == [1]
    assert column.matching_rows("\x1fd").tolist() == [1]
    assert column.matching_rows("g").tolist() == [2]


def test_an_empty_catalog_matches_nothing():
    column = column_of([])
    assert len(column) == 0 and column.matching_rows("abc").tolist() == []


@pytest.mark.parametrize("text", ["product 1", "PRODUCT 1", "lip", "5", "%", "_", "ä"])
def test_the_browser_counts_and_pages_what_a_brute_force_filter_finds(tmp_path, text):
    rng = np.random.default_rng(1)
    records = [ItemRecord(f"c{i:04d}", f"/c/{i}.jpg", f"Product {i} {'100%' if i % 7 == 0 else 'Bäume'}",
                          "lipstick" if i % 3 else "nail_polish", rng.normal(size=4).astype(np.float32))
               for i in range(400)]
    with CatalogIndex.create(tmp_path / "idx", {"model_spec": "m", "model_fingerprint": "f", "pooling": "gap",
                                                "dim": 4}) as index:
        index.add_items(records)
        index.finalize("flat")
        index.remove_items([f"c{i:04d}" for i in range(0, 400, 5)])  # gaps in the row numbers
        index.finalize()
        kept = [r for r in records if int(r.id[1:]) % 5]
        expected = [r.id for r in kept if any(text.lower() in f.lower() for f in (r.id, r.description, r.category))]
        assert index.count_items(text) == len(expected)
        assert [item["id"] for item in index.iter_items(text)] == expected
        paged, offset = [], 0
        while page := list(index.iter_items(text, limit=37, offset=offset)):
            paged += [item["id"] for item in page]
            offset += len(page)
        assert paged == expected
        # A change is seen at once: the text is read again for the new rows.
        index.add_items([ItemRecord("new", "/n.jpg", f"added {text}", "", rng.normal(size=4).astype(np.float32))])
        assert index.count_items(text) == len(expected) + 1
        assert list(index.iter_items(text))[-1]["id"] == "new"
