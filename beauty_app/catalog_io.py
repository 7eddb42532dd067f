# Kept in one module (about 500 lines): the CSV reader and the folder scan are the two halves of
# read_catalog and share its entry and error types; challenge files and atomic writes are already apart.
"""Catalogs: a catalog CSV or a folder of images, read into ids and image paths.

Formats:

* **Catalog CSV**: a header row naming the columns ``id`` and ``path`` (required) and
  ``description`` and ``category`` (optional); column order is free, other columns are ignored,
  UTF-8 with or without BOM. Paths are relative to the CSV's folder, which is the catalog root.
  Rows that cannot be used are skipped with a reason instead of failing the whole catalog.
* **Catalog folder**: every image file below the folder (recursively, hidden entries ignored); the
  id is the file name without extension.

Cells are read through :func:`beauty_app.fileio.unescape_csv_cell`, so catalogs we wrote round-trip
exactly. The challenge's truth and ranking files are :mod:`beauty_app.challenge_files`; atomic
writes and CSV export are :mod:`beauty_app.fileio`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import stat
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beauty_app.errors import CatalogError
from beauty_app.fileio import (csv_read_errors, ends_inside_quotes, error_reason, unescape_csv_cell,
                               unterminated_quote_error)
from beauty_app.imaging import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

#: The progress stage of reading a catalog CSV (done and total in bytes).
READ_STAGE = "read catalog"
#: The progress stage of listing a catalog folder (done: images found; the total is not known).
SCAN_STAGE = "scan folder"
_SCAN_REPORT_EVERY = 2048

@dataclass(frozen=True)
class CatalogEntry:
    """One catalog image.

    Attributes:
        id: Unique catalog id (what rankings and truth files refer to).
        path: Absolute, resolved path of the image file.
        description: Product text (may be empty).
        category: Optional category label (may be empty).
        problem: Why the image cannot be used, found when the entry was read again during a long
            job (the file went missing, or a symlink now leads out of the catalog folder); such an
            entry is reported as skipped with this reason and its file is never opened.
    """

    id: str
    path: Path
    description: str = ""
    category: str = ""
    problem: str = ""


@dataclass
class Catalog:
    """A list of catalog images plus the items that were skipped and why.

    Attributes:
        root: Resolved folder the catalog paths are relative to.
        entries: Usable images in file order (CSV) or sorted path order (folder). For a CSV this is
            a :class:`CsvCatalogEntries`, which reads rows from the file when they are used, so a
            500,000-row catalog costs 24 bytes a row in memory instead of about 1 KB.
        skipped: ``(item, reason)`` pairs for rows or files that were left out.
    """

    root: Path
    entries: Sequence[CatalogEntry]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)


# ---------------------------------------------------------------------------------------------
# Catalog reading


def read_catalog(source: str | os.PathLike[str], *, allow_outside_root: bool = False, job=None) -> Catalog:
    """Read a catalog from a CSV file or scan it from a folder of images.

    Args:
        source: A catalog CSV (``id,path[,description][,category]``) or a folder of images.
        allow_outside_root: Accept image paths (``..``, absolute paths, symlinks) that lead out of
            the catalog root. Off by default so a shared catalog cannot point at arbitrary files.
        job: a :class:`~beauty_app.jobs.JobControl` told how far a CSV has been read (stage
            "read catalog", in bytes: 13 s for 500,000 rows) or how many images a folder holds so
            far (stage "scan folder"); it can also cancel the reading.

    Returns:
        The catalog; unusable rows/files are listed in ``Catalog.skipped`` with a reason.

    Raises:
        CatalogError: The source does not exist, or the CSV is empty, not text, or lacks the
            required columns.
    """
    src = Path(source)
    try:
        st = src.stat()
    except FileNotFoundError:
        raise CatalogError(f'Catalog "{src}" does not exist.') from None
    except OSError as exc:
        raise CatalogError(f'Catalog "{src}" cannot be read ({error_reason(exc)}).') from None
    if stat.S_ISDIR(st.st_mode):
        catalog = _scan_folder(src.resolve(), allow_outside_root, job)
    elif stat.S_ISREG(st.st_mode):
        if src.suffix.lower() in IMAGE_EXTENSIONS:
            raise CatalogError(
                f'Catalog "{src}" is an image; choose a catalog CSV file or a folder of images.'
            )
        catalog = _read_catalog_csv(src, allow_outside_root, job)
    else:
        raise CatalogError(f'Catalog "{src}" is neither a CSV file nor a folder.')
    if catalog.skipped:
        logger.info("Catalog %s: %d images, %d skipped", src, len(catalog.entries), len(catalog.skipped))
    return catalog


_BOM = b"\xef\xbb\xbf"


class _CsvLines:
    """Feeds :func:`csv.reader` one line at a time from a binary file, counting bytes consumed.

    csv.reader asks for a line only when it needs one, so between records :attr:`offset` is where
    the next record starts; :meth:`seek` jumps straight to a record found in an earlier pass. Lines
    end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (universal newlines, as ``open(newline="")`` reads).
    """

    def __init__(self, fh: io.BufferedReader, offset: int = 0):
        self._fh = fh
        self._parts: list[bytes] = []
        self.offset = offset
        fh.seek(offset)

    def seek(self, offset: int) -> None:
        if offset != self.offset:
            self._fh.seek(offset)
            self._parts.clear()
            self.offset = offset

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if not self._parts:
            raw = self._fh.readline()
            if not raw:
                raise StopIteration
            self._parts = raw.splitlines(keepends=True)[::-1]  # a lone "\r" ends a line too
        part = self._parts.pop()
        start = self.offset
        self.offset += len(part)
        if start == 0 and part.startswith(_BOM):
            part = part[len(_BOM):]
        return part.decode("utf-8")


def _id_digest(item_id: str) -> bytes:
    # 128 bits: two ids of a catalog never collide in practice, so duplicates are found by digest.
    return hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_DIGEST = np.dtype([("hi", "<u8"), ("lo", "<u8")])


@dataclass
class _CsvSource:
    """Where a catalog CSV's rows are read from, and the file's identity when it was first read."""

    csv_path: Path
    root: Path
    columns: dict[str, int]  # column name -> position in a row
    allow_outside_root: bool
    size: int
    mtime_ns: int

    def cell(self, row: list[str], name: str) -> str:
        idx = self.columns.get(name)
        return unescape_csv_cell(row[idx]).strip() if idx is not None and idx < len(row) else ""

    def open(self) -> io.BufferedReader:
        try:
            fh = open(self.csv_path, "rb")
        except OSError as exc:
            raise CatalogError(f'Catalog "{self.csv_path}" cannot be read any more ({error_reason(exc)}).') from None
        st = os.fstat(fh.fileno())
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            fh.close()
            raise CatalogError(f'Catalog "{self.csv_path}" was changed while it was in use; run the command again.')
        return fh


class CsvCatalogEntries(Sequence[CatalogEntry]):
    """The usable rows of a catalog CSV, parsed from the file when they are used.

    :func:`read_catalog` reads the CSV once to find the usable rows and keeps only where each one
    starts in the file and a digest of its id (24 bytes a row). Indexing, slicing and iterating read
    those rows again; a slice is another lazy view. Paths are resolved again when read, so a file
    that went missing or a symlink that now leads out of the catalog folder is reported through
    :attr:`CatalogEntry.problem`. A CSV that changed since it was read raises :class:`CatalogError`.
    """

    def __init__(self, source: _CsvSource, offsets: np.ndarray, digests: np.ndarray):
        self._source, self._offsets, self._digests = source, offsets, digests

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return CsvCatalogEntries(self._source, self._offsets[key], self._digests[key])
        position = range(len(self))[key]  # IndexError and negative indices as a list has them
        return next(iter(self[position:position + 1]))

    def __iter__(self) -> Iterator[CatalogEntry]:
        return self._read(resolve=True)

    def ids(self) -> Iterator[str]:
        """The entries' ids in order, without checking their files (cheap on a network file system)."""
        return (entry.id for entry in self._read(resolve=False))

    def _read(self, resolve: bool) -> Iterator[CatalogEntry]:
        if not len(self):
            return
        if len(self) > 1 and not bool(np.all(np.diff(self._offsets) > 0)):  # a reversed slice
            for i in range(len(self)):
                yield from self[i:i + 1]._read(resolve)
            return
        source = self._source
        with source.open() as fh:
            lines = _CsvLines(fh, int(self._offsets[0]))
            reader = csv.reader(lines)
            for offset, digest in zip(self._offsets.tolist(), self._digests):
                lines.seek(offset)
                try:
                    row = next(reader)
                except (StopIteration, csv.Error, UnicodeDecodeError):
                    row = []
                item_id = source.cell(row, "id")
                if np.frombuffer(_id_digest(item_id), _DIGEST)[0] != digest:
                    raise CatalogError(
                        f'Catalog "{source.csv_path}" was changed while it was in use; run the command again.')
                raw_path = source.cell(row, "path")
                resolved, problem = (_resolve_catalog_path(source.root, raw_path, source.allow_outside_root)
                                     if resolve else (None, ""))
                yield CatalogEntry(id=item_id, path=resolved or source.root / raw_path,
                                   description=source.cell(row, "description"), category=source.cell(row, "category"),
                                   problem=problem)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} catalog entries from {self._source.csv_path}>"


def _read_catalog_csv(csv_path: Path, allow_outside_root: bool, job=None) -> Catalog:
    """Check every row of a catalog CSV once, keeping only where the usable rows start."""
    root = csv_path.resolve().parent
    with csv_read_errors(csv_path, "Catalog"):
        fh = open(csv_path, "rb")

    columns: dict[str, int] | None = None
    offsets, lines_of, digests = array("q"), array("q"), bytearray()  # rows that name an id
    problems: dict[int, tuple[str, str]] = {}  # line -> (item, reason), rows with an id but no usable image
    skipped: list[tuple[int, str, str]] = []  # (line, item, reason), rows without an id
    with fh, csv_read_errors(csv_path, "Catalog"):
        st = os.fstat(fh.fileno())
        lines = _CsvLines(fh)
        reader = csv.reader(lines)
        last_record = (0, 1)  # (offset, line) where the last record read starts
        while True:
            offset, first_line = lines.offset, reader.line_num + 1
            try:
                raw_row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a cell over the size limit: often a quote never closed
                raise _csv_record_error(csv_path, fh, offset, first_line, exc) from None
            last_record = (offset, first_line)
            line_no = reader.line_num
            if job is not None and line_no % 2048 == 0:
                job.report(READ_STAGE, lines.offset, st.st_size, f"{line_no:,} rows")
            if not any(c.strip() for c in raw_row):
                continue
            if columns is None:
                columns = _header_columns([unescape_csv_cell(c) for c in raw_row], csv_path)
                source = _CsvSource(csv_path, root, columns, allow_outside_root, st.st_size, st.st_mtime_ns)
                continue
            item_id, raw_path = source.cell(raw_row, "id"), source.cell(raw_row, "path")
            if not item_id:
                skipped.append((line_no, raw_path or f"row {line_no}", f"row {line_no}: empty id"))
                continue
            offsets.append(offset)
            lines_of.append(line_no)
            digests += _id_digest(item_id)
            _, problem = _resolve_catalog_path(root, raw_path, allow_outside_root)
            if problem:
                problems[line_no] = (item_id, f"row {line_no}: {problem}")
        _refuse_unterminated_quote(csv_path, fh, *last_record)
    if columns is None:
        raise CatalogError(f'Catalog "{csv_path}" is empty.')
    if job is not None:
        job.report(READ_STAGE, st.st_size, st.st_size, "checked")

    # A later row with an id already used is a duplicate, whatever its path: the first row keeps it.
    all_offsets = np.frombuffer(offsets, np.int64) if offsets else np.zeros(0, np.int64)
    all_lines = np.frombuffer(lines_of, np.int64) if lines_of else np.zeros(0, np.int64)
    all_digests = np.frombuffer(bytes(digests), _DIGEST)
    id_digests, first_index, inverse = np.unique(all_digests, return_index=True, return_inverse=True)
    first_of_row = first_index[inverse.reshape(-1)]
    duplicate = first_of_row != np.arange(len(all_digests))
    usable = ~duplicate
    for line_no in problems:
        usable[np.searchsorted(all_lines, line_no)] = False
    for position in np.flatnonzero(duplicate):
        line_no = int(all_lines[position])
        problems[line_no] = ("", f"row {line_no}: duplicate id (first used on row {all_lines[first_of_row[position]]})")
    if duplicate.any():  # the duplicates' ids, for the skipped list: read those rows again
        rows = CsvCatalogEntries(source, all_offsets[duplicate], all_digests[duplicate])
        for line_no, item_id in zip(all_lines[duplicate].tolist(), rows.ids()):
            problems[line_no] = (_label_apart_from_ids(f"{item_id} (row {line_no})", id_digests),
                                 problems[line_no][1])
    skipped = [(line_no, _label_apart_from_ids(item, id_digests), reason) for line_no, item, reason in skipped]
    skipped += [(line_no, item, reason) for line_no, (item, reason) in problems.items()]
    skipped.sort(key=lambda s: s[0])
    entries = CsvCatalogEntries(source, all_offsets[usable].copy(), all_digests[usable].copy())
    return Catalog(root=root, entries=entries, skipped=[(item, reason) for _, item, reason in skipped])


def _label_apart_from_ids(label: str, id_digests: np.ndarray) -> str:
    """`label` for a skipped row that has no id of its own, made unlike every id of the catalog.

    An index keys its skipped list by item and treats an id found there as done, so a duplicate
    row listed under its bare id would make a build skip the first row, which keeps that id.
    """
    while True:
        digest = np.frombuffer(_id_digest(label), _DIGEST)
        where = int(np.searchsorted(id_digests, digest)[0])
        if where >= len(id_digests) or id_digests[where] != digest[0]:
            return label
        label += " (skipped row)"


def _refuse_unterminated_quote(csv_path: Path, fh: io.BufferedReader, offset: int, line_no: int) -> None:
    """Raise when the last record, read from `offset` to the end, is still inside a quoted cell.

    An unterminated quote swallows every following row into one cell, so only the last record
    can be inside one; reading it again costs what the csv reader already held.
    """
    fh.seek(offset)
    tail = fh.read()
    if offset == 0 and tail.startswith(_BOM):
        tail = tail[len(_BOM):]
    if ends_inside_quotes(tail.decode("utf-8")):
        raise unterminated_quote_error(csv_path, "Catalog", line_no)


def _csv_record_error(csv_path: Path, fh: io.BufferedReader, offset: int, line_no: int,
                      exc: csv.Error) -> CatalogError:
    """The sentence for a record the csv reader refused, naming the line it starts on."""
    fh.seek(offset)
    head = fh.read(4 * csv.field_size_limit()).decode("utf-8", "replace")
    if ends_inside_quotes(head):
        return unterminated_quote_error(csv_path, "Catalog", line_no)
    return CatalogError(f'Catalog "{csv_path}" is not a valid CSV file on line {line_no} ({error_reason(exc)}).')


def _header_columns(header: list[str], csv_path: Path) -> dict[str, int]:
    columns: dict[str, int] = {}
    for idx, raw in enumerate(header):
        name = raw.strip().lower()
        if name in ("id", "path", "description", "category"):
            if name in columns:
                raise CatalogError(f'Catalog "{csv_path}" has the column "{name}" twice in its header.')
            columns[name] = idx
    missing = [name for name in ("id", "path") if name not in columns]
    if missing:
        found = ", ".join(c.strip() for c in header if c.strip())[:200] or "nothing"
        raise CatalogError(
            f'Catalog "{csv_path}" is missing the column(s) {", ".join(missing)} in its header row '
            f"(expected id,path,description; found {found})."
        )
    return columns


def _resolve_catalog_path(root: Path, raw: str, allow_outside_root: bool) -> tuple[Path | None, str]:
    """Resolve one CSV path cell; returns (path, "") or (None, reason)."""
    if not raw:
        return None, "empty path"
    candidate = Path(raw)
    if "\\" in raw and os.sep == "/" and not (root / candidate).exists():
        candidate = Path(raw.replace("\\", "/"))  # catalog written on Windows
    if candidate.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS:
        return None, f'"{raw}" {_unsupported_reason(candidate.suffix)}'
    if candidate.suffix.lower() not in IMAGE_EXTENSIONS:
        return None, f'"{raw}" does not have an image extension ({", ".join(sorted(IMAGE_EXTENSIONS))})'
    full = candidate if candidate.is_absolute() else root / candidate
    try:
        resolved = full.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
        return None, f'"{raw}" cannot be resolved ({error_reason(exc)})'
    if not allow_outside_root and not resolved.is_relative_to(root):
        return None, f'"{raw}" leads outside the catalog folder'
    try:
        st = resolved.stat()
    except FileNotFoundError:
        if full.is_symlink():
            return None, f'"{raw}" is a broken symbolic link'
        return None, f'"{raw}" not found'
    except OSError as exc:
        return None, f'"{raw}" cannot be read ({error_reason(exc)})'
    if stat.S_ISDIR(st.st_mode):
        return None, f'"{raw}" is a folder, not an image file'
    if not stat.S_ISREG(st.st_mode):
        return None, f'"{raw}" is not a regular file'
    return resolved, ""


def _scan_folder(root: Path, allow_outside_root: bool, job=None) -> Catalog:
    """Collect image files below ``root`` (sorted), following symlinks only where allowed."""
    found: list[tuple[str, Path]] = []  # (path relative to root as shown to the user, resolved file)
    skipped: list[tuple[str, str]] = []
    visited_dirs = {root}
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, rel_folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append((rel_folder or ".", f"folder cannot be read ({error_reason(exc)})"))
            continue
        for child in children:
            if child.name.startswith("."):
                continue  # hidden files, macOS "._x.jpg" forks, .git, .thumbnails
            rel = f"{rel_folder}/{child.name}" if rel_folder else child.name
            is_image_name = Path(child.name).suffix.lower() in IMAGE_EXTENSIONS
            try:
                is_link = child.is_symlink()
                target = Path(child.path).resolve() if is_link else Path(child.path)
                st = target.stat() if is_link else child.stat(follow_symlinks=False)
            except FileNotFoundError:
                if is_image_name:
                    skipped.append((rel, "broken symbolic link"))
                continue
            except (OSError, RuntimeError) as exc:
                skipped.append((rel, f"cannot be read ({error_reason(exc)})"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if is_link and not allow_outside_root and not target.is_relative_to(root):
                    skipped.append((rel, "symbolic link to a folder outside the catalog folder"))
                elif target in visited_dirs:
                    logger.debug("Not descending into %s twice (symlink loop or alias)", rel)
                else:
                    visited_dirs.add(target)
                    stack.append((target, rel))
                continue
            if not is_image_name:
                if Path(child.name).suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS and stat.S_ISREG(st.st_mode):
                    skipped.append((rel, _unsupported_reason(Path(child.name).suffix)))
                continue
            if is_link and not allow_outside_root and not target.is_relative_to(root):
                skipped.append((rel, "symbolic link pointing outside the catalog folder"))
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append((rel, "not a regular file"))
                continue
            found.append((rel, target if is_link else target.resolve()))
            if job is not None and len(found) % _SCAN_REPORT_EVERY == 0:
                job.report(SCAN_STAGE, len(found), None, "images found")

    entries: list[CatalogEntry] = []
    owner: dict[str, str] = {}
    for rel, path in sorted(found, key=lambda f: f[0]):
        item_id = Path(rel).stem
        if item_id in owner:
            skipped.append((rel, f'duplicate id "{item_id}" (already used by {owner[item_id]})'))
            continue
        owner[item_id] = rel
        entries.append(CatalogEntry(id=item_id, path=path))
    return Catalog(root=root, entries=entries, skipped=skipped)


def _unsupported_reason(suffix: str) -> str:
    fmt = UNSUPPORTED_IMAGE_EXTENSIONS[suffix.lower()]
    return f"is in an unsupported image format ({fmt}); convert it to JPEG or PNG first"


