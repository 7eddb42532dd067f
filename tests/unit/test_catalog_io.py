"""Catalog CSV/folder reading: rows, skip reasons, lazy entries, progress."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from beauty_app import catalog_io
from beauty_app.catalog_io import Catalog, CatalogEntry, read_catalog
from beauty_app.errors import CatalogError
from beauty_app.fileio import unescape_csv_cell


def _png(path: Path, color: tuple[int, int, int] = (200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def _reasons(catalog: Catalog) -> dict[str, str]:
    return dict(catalog.skipped)


# --- catalog CSV ----------------------------------------------------------------------------------


@pytest.fixture()
def csv_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    _png(root / "img" / "a.png")
    _png(root / "img" / "b.jpg")
    _png(root / "img" / "c.PNG")
    _png(tmp_path / "outside.png")
    (root / "img" / "notes.txt").write_text("not an image")
    (root / "img" / "sub.png").mkdir()
    os.symlink(tmp_path / "outside.png", root / "img" / "link_out.png")
    os.symlink(root / "img" / "a.png", root / "img" / "link_in.png")
    os.symlink(root / "img" / "gone.png", root / "img" / "broken.png")
    rows = [
        # Column order free, extra column ignored, BOM at the start.
        "path,extra,description,id,category",
        'img/a.png,x,"Red lipstick, matte",a,lipstick',
        "img/b.jpg,x,Mascara,  b  ,",
        'img/c.PNG,x,=HYPERLINK("http://evil"),c,',
        "img/a.png,x,no id,,",  # row 5: empty id
        "img/b.jpg,x,dup,a,",  # row 6: duplicate id
        "img/missing.png,x,gone,m,",  # row 7: missing file
        "../outside.png,x,escape,dotdot,",  # row 8: .. escapes root
        f"{tmp_path / 'outside.png'},x,abs,absout,",  # row 9: absolute path outside root
        "img/link_out.png,x,link,linkout,",  # row 10: symlink resolving outside
        "img/notes.txt,x,text,txt,",  # row 11: extension
        "img/sub.png,x,folder,dir,",  # row 12: a folder
        "img/broken.png,x,broken,broken,",  # row 13: broken symlink
        "",  # blank line
        "img/link_in.png,x,alias,linkin,",  # row 15: symlink inside root is fine
        f"{root / 'img' / 'b.jpg'},x,abs inside,absin,",  # row 16: absolute inside root is fine
    ]
    path = root / "catalog.csv"
    path.write_bytes(("\ufeff" + "\n".join(rows) + "\n").encode("utf-8"))
    return path


def test_csv_catalog_entries(csv_catalog: Path) -> None:
    cat = read_catalog(csv_catalog)
    root = csv_catalog.parent.resolve()
    assert cat.root == root
    assert [e.id for e in cat.entries] == ["a", "b", "c", "linkin", "absin"]
    first = cat.entries[0]
    assert first == CatalogEntry("a", root / "img" / "a.png", "Red lipstick, matte", "lipstick")
    assert all(e.path.is_absolute() and e.path == e.path.resolve() for e in cat.entries)
    # Fields are data: the formula is kept verbatim, never evaluated or altered.
    assert cat.entries[2].description == '=HYPERLINK("http://evil")'
    assert cat.entries[3].path == root / "img" / "a.png"  # resolved through the in-root symlink
    assert len(cat) == 5


def test_csv_catalog_skip_reasons(csv_catalog: Path) -> None:
    reasons = _reasons(read_catalog(csv_catalog))
    assert "row 5" in reasons["img/a.png"] and "empty id" in reasons["img/a.png"]
    assert "row 6" in reasons["a (row 6)"] and "duplicate" in reasons["a (row 6)"] and "row 2" in reasons["a (row 6)"]
    assert "row 7" in reasons["m"] and "not found" in reasons["m"]
    for item, row in (("dotdot", 8), ("absout", 9), ("linkout", 10)):
        assert f"row {row}" in reasons[item] and "outside the catalog folder" in reasons[item]
    assert "image extension" in reasons["txt"]
    assert "folder" in reasons["dir"]
    assert "broken symbolic link" in reasons["broken"]
    assert len(reasons) == 9


def test_csv_catalog_allow_outside_root(csv_catalog: Path) -> None:
    cat = read_catalog(csv_catalog, allow_outside_root=True)
    ids = [e.id for e in cat.entries]
    assert {"dotdot", "absout", "linkout"} <= set(ids)
    outside = (csv_catalog.parent.parent / "outside.png").resolve()
    assert {e.path for e in cat.entries if e.id in ("dotdot", "absout", "linkout")} == {outside}


def test_csv_catalog_description_optional(tmp_path: Path) -> None:
    _png(tmp_path / "x.png")
    (tmp_path / "c.csv").write_text("ID,Path\nx,x.png\n")
    cat = read_catalog(tmp_path / "c.csv")
    assert cat.entries == [CatalogEntry("x", (tmp_path / "x.png").resolve())]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"name,file\nx,x.png\n", "missing the column(s) id, path"),
        (b"id,description\nx,y\n", "missing the column(s) path"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not a utf-8"),
        (b"id,path,id\n", "twice"),
    ],
)
def test_csv_catalog_file_errors(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CatalogError) as info:
        read_catalog(path)
    assert words in str(info.value).lower()
    assert "bad.csv" in str(info.value)


def test_catalog_source_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "nothing.csv")
    with pytest.raises(CatalogError, match="is an image"):
        read_catalog(_png(tmp_path / "photo.png"))


# --- catalog folder -------------------------------------------------------------------------------


def test_folder_catalog(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _png(root / "b.png")
    _png(root / "A.JPG")
    _png(root / "sub" / "c.webp")
    _png(root / "sub" / "b.jpg")  # duplicate stem of b.png: sorted first wins
    _png(root / ".hidden.png")
    _png(root / ".cache" / "d.png")
    (root / "readme.txt").write_text("hello")
    _png(tmp_path / "elsewhere" / "e.png")
    os.symlink(tmp_path / "elsewhere" / "e.png", root / "e_link.png")
    os.symlink(tmp_path / "elsewhere", root / "outdir")
    os.symlink(root / "missing.png", root / "dead.png")
    os.symlink(root, root / "sub" / "loop")  # must not recurse forever

    cat = read_catalog(root)
    assert cat.root == root.resolve()
    assert [e.id for e in cat.entries] == ["A", "b", "c"]
    assert [e.path.name for e in cat.entries] == ["A.JPG", "b.png", "c.webp"]
    assert all(e.description == "" and e.path.is_absolute() for e in cat.entries)
    reasons = _reasons(cat)
    assert "duplicate" in reasons["sub/b.jpg"] and "b.png" in reasons["sub/b.jpg"]
    assert "outside" in reasons["e_link.png"]
    assert "outside" in reasons["outdir"]
    assert "broken" in reasons["dead.png"]
    assert not any("hidden" in item or ".cache" in item for item in reasons)

    allowed = read_catalog(root, allow_outside_root=True)
    # Sorted by path below the root: "e_link.png" < "outdir/e.png" < "sub/c.webp".
    assert [e.id for e in allowed.entries] == ["A", "b", "e_link", "e", "c"]
    assert allowed.entries[2].path == (tmp_path / "elsewhere" / "e.png").resolve()
    assert read_catalog(root).entries == cat.entries  # deterministic


# --- a catalog CSV is read lazily ------------------------------------------------------------------


def _eager_reference(path: Path) -> list[tuple[str, str, str]]:
    """(id, description, category) of the rows a plain csv.reader sees, for comparison."""
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    header = [c.strip() for c in rows[0]]
    return [(r[header.index("id")].strip(), r[header.index("description")].strip(), r[header.index("category")].strip())
            for r in rows[1:]]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_lazy_csv_rows_read_back_exactly(tmp_path: Path, newline: str) -> None:
    _png(tmp_path / "x.png")
    descriptions = ['multi\nline "quoted", text', "café crème 💄", "plain", "", "=SUM(A1)", "tab\there"]
    body = "id,path,description,category" + newline
    for i, text in enumerate(descriptions * 5):
        cell = '"' + text.replace('"', '""') + '"'
        body += f"p{i},x.png,{cell},cat{i % 3}{newline}"
    path = tmp_path / "catalog.csv"
    path.write_bytes(("\ufeff" + body).encode("utf-8"))
    cat = read_catalog(path)
    assert isinstance(cat.entries, catalog_io.CsvCatalogEntries)
    assert [(e.id, e.description, e.category) for e in cat.entries] == _eager_reference(path)
    assert cat.entries[0].description == 'multi\nline "quoted", text'
    assert all(e.path == (tmp_path / "x.png").resolve() and not e.problem for e in cat.entries)


def test_lazy_entries_index_and_slice_like_a_list(csv_catalog: Path) -> None:
    lazy = read_catalog(csv_catalog).entries
    plain = list(lazy)
    assert len(lazy) == len(plain) == 5
    for key in (0, 3, -1, -5):
        assert lazy[key] == plain[key]
    for key in (slice(1, 4), slice(None, None, 2), slice(1, None, 3), slice(None, None, -1), slice(4, 1, -2),
                slice(7, 9), slice(0, 0)):
        assert list(lazy[key]) == plain[key], key
    assert lazy[1:][1:][::2] == plain[1:][1:][::2]  # views of views
    assert lazy == plain and lazy != plain[:-1]
    assert list(lazy.ids()) == [e.id for e in plain] and list(lazy[::-2].ids()) == [e.id for e in plain[::-2]]
    with pytest.raises(IndexError):
        lazy[5]


def test_lazy_csv_changed_while_in_use_is_refused(tmp_path: Path) -> None:
    _png(tmp_path / "x.png")
    path = tmp_path / "catalog.csv"
    path.write_text("id,path\na,x.png\nb,x.png\n")
    cat = read_catalog(path)
    path.write_text("id,path\nb,x.png\na,x.png\n")  # same size, rows swapped
    os.utime(path, ns=(1, 1))
    with pytest.raises(CatalogError, match="changed while it was in use"):
        list(cat.entries)
    path.unlink()
    with pytest.raises(CatalogError, match="cannot be read any more"):
        cat.entries[0]


def test_lazy_csv_paths_are_checked_again_when_read(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    _png(root / "a.png")
    _png(root / "b.png")
    _png(tmp_path / "secret.png")
    (root / "catalog.csv").write_text("id,path\na,a.png\nb,b.png\n")
    cat = read_catalog(root / "catalog.csv")
    (root / "b.png").unlink()
    os.symlink(tmp_path / "secret.png", root / "b.png")  # now leads out of the catalog folder
    a, b = cat.entries
    assert not a.problem and a.path == (root / "a.png").resolve()
    assert "outside the catalog folder" in b.problem and b.path != (tmp_path / "secret.png").resolve()


def test_duplicates_are_found_among_many_rows(tmp_path: Path) -> None:
    _png(tmp_path / "x.png")
    lines = ["id,path"] + [f"p{i % 997 if i % 5000 == 4999 else i},x.png" for i in range(20_000)]
    (tmp_path / "c.csv").write_text("\n".join(lines))
    cat = read_catalog(tmp_path / "c.csv")
    dup_ids = [f"p{i % 997} (row {i + 2})" for i in range(20_000) if i % 5000 == 4999]
    assert [item for item, _ in cat.skipped] == dup_ids
    assert cat.skipped[0][1] == f"row 5001: duplicate id (first used on row {4999 % 997 + 2})"
    assert len(cat.entries) == 20_000 - 4


def test_a_large_catalog_csv_is_kept_in_a_few_bytes_a_row(tmp_path: Path) -> None:
    """What read_catalog keeps for 20,000 rows: row offsets and id digests, not 20,000 entries."""
    import gc
    import tracemalloc

    _png(tmp_path / "x.png")
    rows = 20_000
    text = "id,path,description,category\n" + "".join(
        f"item-{i:06d},x.png,Hydrating face cream with hyaluronic acid {i},moisturizer\n" for i in range(rows))
    (tmp_path / "big.csv").write_text(text)
    gc.collect()
    tracemalloc.start()
    cat = read_catalog(tmp_path / "big.csv")
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(cat.entries) == rows and not cat.skipped
    assert kept < 40 * rows, f"{kept / rows:.0f} bytes a row kept"  # 24 bytes a row + constants
    assert cat.entries[-1].id == f"item-{rows - 1:06d}"


class _Label(str):
    """A skipped row's label (not an id): made unlike every id of the catalog."""


def _eager_read_catalog_csv(csv_path: Path, allow_outside_root: bool = False) -> tuple[list, list]:
    """The reader before catalogs were read lazily (a list of every row), kept as the oracle."""
    import csv

    root = csv_path.resolve().parent
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        rows = [(reader.line_num, [unescape_csv_cell(c) for c in row]) for row in reader]
    header_line, header = next(((n, r) for n, r in rows if any(c.strip() for c in r)), (0, None))
    columns = catalog_io._header_columns(header, csv_path)
    entries, skipped, first_row_of_id = [], [], {}
    for line_no, row in rows:
        if line_no <= header_line or not any(c.strip() for c in row):
            continue

        def cell(name, row=row):
            idx = columns.get(name)
            return row[idx].strip() if idx is not None and idx < len(row) else ""

        item_id, raw_path = cell("id"), cell("path")
        if not item_id:
            skipped.append((_Label(raw_path or f"row {line_no}"), f"row {line_no}: empty id"))
            continue
        if item_id in first_row_of_id:
            skipped.append((_Label(f"{item_id} (row {line_no})"),
                            f"row {line_no}: duplicate id (first used on row {first_row_of_id[item_id]})"))
            continue
        first_row_of_id[item_id] = line_no
        resolved, problem = catalog_io._resolve_catalog_path(root, raw_path, allow_outside_root)
        if problem:
            skipped.append((item_id, f"row {line_no}: {problem}"))
            continue
        entries.append(CatalogEntry(item_id, resolved, cell("description"), cell("category")))

    def apart(item: str) -> str:
        while isinstance(item, _Label) and item in first_row_of_id:
            item = _Label(item + " (skipped row)")
        return str(item)

    return entries, [(apart(item), reason) for item, reason in skipped]


_CELL_TEXT = ["a", "b", "A", " a ", "", "  ", "=x", "'=x", "'+1", "x,y", 'say "hi"', "two\nlines", "cr\rin",
              "crlf\r\nin", "💄", "é", "img/a.png", "img/b.png", "img/missing.png", "../out.png", "notes.txt",
              "img", "IMG/A.PNG"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.permutations(["id", "path", "description", "category", "extra"]),
       rows=st.lists(st.lists(st.sampled_from(_CELL_TEXT), min_size=0, max_size=6), max_size=25),
       newline=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans(), blank_first=st.booleans())
def test_lazy_reader_agrees_with_the_eager_reader_on_any_csv(tmp_path_factory, header, rows, newline, bom, blank_first):
    import csv
    import io

    root = tmp_path_factory.mktemp("shop")
    _png(root / "img" / "a.png")
    _png(root / "img" / "b.png")
    (root / "notes.txt").write_text("x")
    _png(root.parent / "out.png")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    if blank_first:
        buffer.write(newline)
    writer.writerow(header)
    writer.writerows(rows)
    path = root / "catalog.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buffer.getvalue().encode("utf-8"))

    expected_entries, expected_skipped = _eager_read_catalog_csv(path)
    catalog = read_catalog(path)
    assert list(catalog.entries) == expected_entries
    assert catalog.skipped == expected_skipped
    assert [catalog.entries[i] for i in range(len(catalog.entries))] == expected_entries


def test_reading_a_large_csv_reports_progress_in_bytes_and_can_be_cancelled(tmp_path):
    from beauty_app.jobs import Cancelled, JobControl

    _png(tmp_path / "x.png")
    path = tmp_path / "c.csv"
    path.write_text("id,path\n" + "".join(f"p{i},x.png\n" for i in range(10_000)))
    events = []
    read_catalog(path, job=JobControl(events.append, min_interval_s=0))
    assert {e.stage for e in events} == {catalog_io.READ_STAGE}
    done = [e.done for e in events]
    assert done == sorted(done) and len(done) >= 5 and done[-1] == events[-1].total == path.stat().st_size

    job = JobControl(lambda event: job.cancel() if event.done > 0 else None, min_interval_s=0)
    with pytest.raises(Cancelled):
        read_catalog(path, job=job)


def test_scanning_a_folder_reports_the_images_found(tmp_path, monkeypatch):
    from beauty_app.jobs import JobControl

    monkeypatch.setattr(catalog_io, "_SCAN_REPORT_EVERY", 3)
    for i in range(7):
        _png(tmp_path / f"{i}.png")
    events = []
    cat = read_catalog(tmp_path, job=JobControl(events.append, min_interval_s=0))
    assert len(cat.entries) == 7
    assert [e.done for e in events] == [3, 6] and {e.stage for e in events} == {catalog_io.SCAN_STAGE}


def test_a_duplicate_row_is_listed_apart_from_the_id_the_first_row_keeps(tmp_path: Path) -> None:
    """The index treats an id in its skipped list as done: a duplicate listed as "a" lost the first row."""
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    (tmp_path / "c.csv").write_text("id,path\na,a.png\na,b.png\n,b.png\n")
    cat = read_catalog(tmp_path / "c.csv")
    assert [e.id for e in cat.entries] == ["a"] and cat.entries[0].path.name == "a.png"
    labels = [item for item, _ in cat.skipped]
    assert labels == ["a (row 3)", "b.png"]
    assert not {e.id for e in cat.entries} & set(labels)
    (tmp_path / "d.csv").write_text("id,path\na,a.png\na,b.png\na (row 3),b.png\n")
    cat = read_catalog(tmp_path / "d.csv")
    assert [e.id for e in cat.entries] == ["a", "a (row 3)"]
    assert [item for item, _ in cat.skipped] == ["a (row 3) (skipped row)"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_unterminated_quote_is_refused_with_its_line(tmp_path: Path, newline: str) -> None:
    """Before: the quote swallowed every following row into one description, exit 0, nothing said."""
    for name in ("a", "b", "c"):
        _png(tmp_path / f"{name}.png")
    rows = ["id,path,description", 'a,a.png,"Red lipstick', "b,b.png,Mascara", "c,c.png,Cream"]
    (tmp_path / "c.csv").write_text(newline.join(rows) + newline, newline="")
    with pytest.raises(CatalogError, match=r"quote opened on line 2 that is never closed"):
        read_catalog(tmp_path / "c.csv")
    # A long swallowed tail over the csv module's cell limit names the line too.
    tail = "".join(f"x{i},a.png,filler text {i}{newline}" for i in range(20_000))
    (tmp_path / "long.csv").write_text(newline.join(rows[:2]) + newline + tail, newline="")
    with pytest.raises(CatalogError, match=r"quote opened on line 2 that is never closed"):
        read_catalog(tmp_path / "long.csv")
    # Closed quotes, quoted newlines, escaped quotes and a quote inside a plain cell are fine.
    good = ['id,path,description', 'a,a.png,"two', 'lines, ""quoted"""', 'b,b.png,5" tall', 'c,c.png,"x"y']
    (tmp_path / "ok.csv").write_text(newline.join(good) + newline, newline="")
    assert [e.id for e in read_catalog(tmp_path / "ok.csv").entries] == ["a", "b", "c"]


def test_a_build_indexes_the_first_row_of_a_duplicated_id(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Before: the duplicate was listed as skipped under the bare id, so the build took the id as done."""
    from beauty_app.models.checkpoint import load_model
    from beauty_app.retrieval.build import build_index
    from beauty_app.retrieval.extractor import FeatureExtractor
    from beauty_app.retrieval.index import CatalogIndex

    for name in ("a", "b", "c"):
        Image.new("RGB", (64, 64), (40 * len(name), 90, 160)).save(tmp_path / f"{name}.png")
    (tmp_path / "c.csv").write_text("id,path\nx,a.png\nx,b.png\ny,c.png\n")
    extractor = FeatureExtractor(load_model(str(tiny_checkpoint)), "srmac", batch_size=4)
    summary = build_index(read_catalog(tmp_path / "c.csv"), extractor, tmp_path / "idx")
    with CatalogIndex.open(tmp_path / "idx") as index:
        assert index.stored_paths(["x", "y"]) == {"x": str((tmp_path / "a.png").resolve()),
                                                  "y": str((tmp_path / "c.png").resolve())}
        assert [item for item, _ in index.skipped()] == ["x (row 3)"]
    assert summary.indexed == 2
