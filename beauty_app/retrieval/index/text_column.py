"""The catalog browser's filter: every row's text in one numpy buffer, searched in a few vector passes.

A filter matches a row when it is a substring of the row's id, description or category, without
case (both sides lower-cased with :meth:`str.lower`). FTS5's trigram index answers a rare filter
fast but must walk every posting of a common one (326 ms for 500,000 matches); here each row's
lower-cased UTF-8 text sits in one fixed-width slot of a (rows, width) byte matrix, and a filter
is found by comparing its rarest byte with the whole buffer and then checking its other bytes at
the surviving positions only. A match's row is its position // width, so counting and paging
need no per-row Python work.

Fields are separated and rows padded with the byte 0xFF, which never occurs in UTF-8, so a filter
never matches across fields or rows. The few rows far longer than the rest are kept aside and
searched one by one (so one long description does not widen every slot).
"""

from __future__ import annotations

import sqlite3

import numpy as np

#: Not a byte of any UTF-8 text: separates fields and pads rows.
_GAP = b"\xff"
#: Slots are as wide as this share of the rows needs; longer rows are searched one by one.
_SLOT_QUANTILE = 0.99
#: Separators of the one-string fast read (a field holding either is read row by row instead).
_ROW_MARK, _FIELD_MARK = "\x1e", "\x1f"


def _encode(text: str | None) -> bytes:
    return (text or "").lower().encode("utf-8", "surrogatepass")


class TextColumn:
    """Lower-cased id, description and category of every catalog row, for exact substring filters."""

    def __init__(self, rows: np.ndarray, texts: list[bytes]):
        """`rows`: row numbers in ascending order; `texts`: each row's encoded fields joined by 0xFF (the list is taken over)."""
        self.rows = np.asarray(rows, dtype=np.int64)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        longest = int(lengths.max()) if len(texts) else 0
        typical = int(np.quantile(lengths, _SLOT_QUANTILE)) if len(texts) else 0
        self.width = (longest if longest <= 2 * typical + 16 else typical) + 1  # >= 1 pad byte a row
        long_rows = np.flatnonzero(lengths >= self.width)
        self._long = [(int(i), texts[i]) for i in long_rows]
        for i in long_rows:
            texts[i] = b""
        # A padding slot before the first row (no candidate start falls before the buffer) and 8
        # bytes after the last (the check reads 8-byte windows).
        self._buffer = b"".join([_GAP * self.width] + [t.ljust(self.width, _GAP) for t in texts] + [_GAP * 8])
        self._flat = np.frombuffer(self._buffer, dtype=np.uint8)
        # Every position's next 8 bytes as one little-endian integer (a view: no copy).
        self._windows = np.ndarray((len(self._flat) - 7,), dtype="<u8", buffer=self._buffer, strides=(1,))
        # How often each byte occurs (in a sample: bincount works in int64): the filter's rarest
        # byte gives the fewest candidate positions.
        self._byte_counts = np.bincount(self._flat[::7], minlength=256)

    @classmethod
    def from_db(cls, db: sqlite3.Connection) -> TextColumn:
        """Read every catalog row's text (one pass over the table, no vectors)."""
        found = db.execute(f"SELECT row, id || '{_FIELD_MARK}' || description || '{_FIELD_MARK}' || category "
                           "FROM items ORDER BY row").fetchall()
        rows = np.fromiter((row for row, _ in found), dtype=np.int64, count=len(found))
        # Lower-case and encode all rows as one string (str.lower is per character but for the Greek
        # final sigma, whose context the separators end as a field's end does).
        joined = _ROW_MARK.join([text for _, text in found])
        if len(found) and joined.count(_ROW_MARK) == len(found) - 1 and joined.count(_FIELD_MARK) == 2 * len(found):
            encoded = joined.lower().encode("utf-8", "surrogatepass").replace(_FIELD_MARK.encode(), _GAP)
            return cls(rows, encoded.split(_ROW_MARK.encode()))
        texts = [_GAP.join(_encode(field) for field in fields) for _, *fields in db.execute(
            "SELECT row, id, description, category FROM items ORDER BY row")]
        return cls(rows, texts)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        """Memory held (the text buffer and the row numbers)."""
        return len(self._buffer) + self.rows.nbytes + sum(len(t) for _, t in self._long)

    def matching_rows(self, filter_text: str) -> np.ndarray:
        """Row numbers (ascending, int64) whose id, description or category contains `filter_text`, without case."""
        needle = _encode(filter_text)
        if not needle:
            return self.rows.copy()
        positions = self._matching_positions(needle)
        if self._long:
            found = [position for position, text in self._long if needle in text]
            if found:
                positions = np.union1d(positions, np.array(found, dtype=np.int64))
        return self.rows[positions]

    def _matching_positions(self, needle: bytes) -> np.ndarray:
        """Indexes (into :attr:`rows`) of the slotted rows that contain `needle`."""
        size = len(needle)
        if size >= self.width or not len(self.rows):
            return np.zeros(0, dtype=np.int64)
        if size == 1:  # every row holding the byte, without positions
            slotted = self._flat[:len(self._flat) - 8].reshape(-1, self.width)
            return np.flatnonzero((slotted == needle[0]).any(axis=1)) - 1
        code = np.frombuffer(needle, dtype=np.uint8)
        anchor = int(np.argmin(self._byte_counts[code]))  # the rarest byte: fewest candidates
        # Padding ends every row and leads the buffer, so no candidate runs off either end.
        starts = np.flatnonzero(self._flat == code[anchor]) - anchor
        for offset in range(0, size, 8):  # then 8 bytes of the filter at a time
            if not len(starts):
                break
            piece = needle[offset:offset + 8]
            value = int.from_bytes(piece, "little")
            windows = self._windows[starts + offset]
            if len(piece) < 8:
                windows &= (1 << (8 * len(piece))) - 1
            starts = starts[windows == value]
        slots = starts // self.width - 1  # the first slot is padding
        if len(slots) > 1:  # a row can hold the filter more than once; starts are ascending
            slots = slots[np.concatenate(([True], slots[1:] != slots[:-1]))]
        return slots
