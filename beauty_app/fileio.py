"""Safe file input and output shared by the catalog, challenge and export files.

* **Atomic writes** (:func:`atomic_write_bytes`, :func:`atomic_write_text`): readers see the old
  file or the complete new one, never a half-written file, whatever the moment of a crash.
* **Spreadsheet-safe CSV**: every cell we write goes through :func:`escape_csv_cell` (formula
  injection guard) and every cell we read goes through :func:`unescape_csv_cell`, so our own files
  round-trip exactly; :func:`write_csv` writes a whole export atomically.
* **One-sentence errors**: :func:`csv_read_errors` turns the ways a CSV file can fail to open or
  parse into a :class:`~beauty_app.errors.CatalogError` a user can act on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import numbers
import os
import stat
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from beauty_app.errors import CatalogError, UserError

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@contextlib.contextmanager
def csv_read_errors(path: Path, what: str) -> Iterator[None]:
    """Turn the ways a CSV file can fail to open or parse into one-sentence CatalogErrors."""
    try:
        yield
    except FileNotFoundError:
        raise CatalogError(f'{what} "{path}" does not exist.') from None
    except IsADirectoryError:
        raise CatalogError(f'{what} "{path}" is a folder, not a CSV file.') from None
    except UnicodeDecodeError:
        raise CatalogError(f'{what} "{path}" is not a UTF-8 text CSV file.') from None
    except csv.Error as exc:
        raise CatalogError(f'{what} "{path}" is not a valid CSV file ({error_reason(exc)}).') from None
    except OSError as exc:
        raise CatalogError(f'{what} "{path}" cannot be read ({error_reason(exc)}).') from None


def ends_inside_quotes(record_text: str) -> bool:
    """Whether :func:`csv.reader` (excel dialect, not strict) ends `record_text` inside a quoted cell.

    `record_text` is the text of one record from where it starts to the end of the file. An
    opening quote that is never closed makes the reader swallow every following line into one
    cell without complaint, so the readers call this on a file's last record to refuse it instead.
    As in the csv module, a quote opens a quoted cell only at the very start of a cell; elsewhere
    it is an ordinary character, and ``""`` inside a quoted cell is an escaped quote.
    """
    at_cell_start, i, end = True, 0, len(record_text)
    while i < end:
        char = record_text[i]
        if at_cell_start and char == '"':
            j = i + 1
            while True:
                close = record_text.find('"', j)
                if close < 0:
                    return True
                if record_text.startswith('"', close + 1):
                    j = close + 2  # an escaped quote
                    continue
                break
            i, at_cell_start = close + 1, False  # what follows the closing quote is plain text
            continue
        at_cell_start = char in ",\r\n"
        i += 1
    return False


def unterminated_quote_error(path: Path, what: str, line_no: int) -> CatalogError:
    """The one sentence for a CSV whose quote opened on `line_no` is never closed."""
    return CatalogError(f'{what} "{path}" has a quote opened on line {line_no} that is never closed; '
                        f'close it (a quote inside a cell is written "").')


def escape_csv_cell(value: object) -> str:
    """Render a value for a CSV cell that spreadsheets will not execute as a formula.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, or a lookalike of
    one of them (fullwidth ``＝``, small ``﹦``: whatever NFKC maps to them), gets a leading
    apostrophe. Real numbers (int, float, numpy numbers) are written plainly, since ``-0.5`` is data,
    not a formula. ``None`` becomes an empty cell.
    """
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if _starts_like_a_formula(text):
        return "'" + text
    return text


def _starts_like_a_formula(text: str) -> bool:
    # Spreadsheets in East Asian locales take the fullwidth and small forms (＝, ﹦, ＋, －, ＠) for
    # the ASCII ones; NFKC maps each of them to its ASCII character.
    return bool(text) and unicodedata.normalize("NFKC", text[0]).startswith(_FORMULA_PREFIXES)


def unescape_csv_cell(text: str) -> str:
    """Undo :func:`escape_csv_cell`: drop the apostrophe it put before a formula character."""
    if len(text) >= 2 and text[0] == "'" and _starts_like_a_formula(text[1:]):
        return text[1:]
    return text


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV export (GUI tables, evaluation reports) safely and atomically.

    Every cell, header included, goes through :func:`escape_csv_cell`; the file is UTF-8 with
    ``\\n`` line ends.

    Args:
        path: Destination file; replaced atomically.
        header: Column names (an empty sequence writes no header row).
        rows: Row values.

    Raises:
        UserError: The file cannot be written.
    """

    def all_rows() -> Iterable[Sequence[object]]:
        if header:
            yield header
        yield from rows

    write_csv_rows(Path(path), all_rows())


def write_csv_rows(path: Path, rows: Iterable[Sequence[object]]) -> None:
    """Write escaped rows (no header) atomically; a failure is a one-sentence UserError."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([escape_csv_cell(v) for v in row])
    try:
        atomic_write_text(path, buffer.getvalue())
    except OSError as exc:
        raise UserError(f'Could not write "{path}" ({error_reason(exc)}).') from None


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write text so that readers see either the old file or the complete new one.

    Args:
        path: Destination file.
        text: Content, written as-is (no newline translation).
        encoding: Text encoding.

    Raises:
        OSError: The folder is missing or not writable, or the disk is full.
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes atomically: temp file in the same folder, fsync, ``os.replace``, fsync folder.

    A crash or a full disk leaves the previous file intact and no temp file behind. When ``path``
    is a symbolic link, the file it points to is replaced (the link stays).

    Args:
        path: Destination file.
        data: Content.

    Raises:
        OSError: The folder is missing or not writable, or the disk is full.
    """
    dest = Path(path)
    if dest.is_symlink():
        dest = dest.resolve()
    folder = dest.parent
    # O_EXCL with mode 0o666 lets the umask decide the final permissions, like a plain open();
    # mkstemp would leave the file private (0600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 uuid collisions
        raise FileExistsError(f"could not create a temporary file in {folder}")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if dest.exists():
            try:  # keep the permissions of the file being replaced
                os.chmod(tmp, stat.S_IMODE(dest.stat().st_mode))
            except OSError:
                pass
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself; not possible on Windows, where it is skipped."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def error_reason(exc: BaseException) -> str:
    """A short lower-case reason for a message: "permission denied", "no such file or directory"."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip().rstrip(".")
    return text or exc.__class__.__name__
