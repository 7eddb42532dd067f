"""The annotator's marks (is a saliency/text map of an image good or wrong?) and their CSV file.

The file is what training reads with ``--mask-marks`` (``training.data.read_mask_marks``): columns
``id,map,mark`` with map ``saliency``/``text``, mark ``good``/``wrong``, and the image's file stem as
id. It is rewritten atomically after every change, so an annotator never loses more than one click.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...fileio import atomic_write_bytes, unescape_csv_cell, write_csv
from ...errors import UserError

MAPS = ("saliency", "text")
MARKS = ("good", "wrong")
MARKS_FILE = "mask_marks.csv"
HEADER = ("id", "map", "mark")


class MarkStore:
    """Marks of one folder of photos, saved to `path` after every change."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._marks: dict[str, dict[str, str]] = {}

    def load(self) -> int:
        """Read the existing file (if any); returns how many marks it held. Unknown rows are skipped."""
        self._marks.clear()
        if not self.path.is_file():
            return 0
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not set(HEADER) <= {name.strip() for name in reader.fieldnames}:
                    raise UserError(f"The marks file {self.path} needs the columns id,map,mark.")
                for row in reader:
                    row = {key.strip(): (value or "") for key, value in row.items() if key}
                    item = unescape_csv_cell(row["id"].strip())
                    which, mark = row["map"].strip().lower(), row["mark"].strip().lower()
                    if item and which in MAPS and mark in MARKS:
                        self._marks.setdefault(item, {})[which] = mark
        except OSError as exc:
            raise UserError(f"The marks file {self.path} cannot be read ({exc.strerror or exc}).") from None
        return sum(len(maps) for maps in self._marks.values())

    def get(self, item: str, which: str) -> str | None:
        return self._marks.get(item, {}).get(which)

    def marks_of(self, item: str) -> dict[str, str]:
        return dict(self._marks.get(item, {}))

    def is_marked(self, item: str) -> bool:
        return bool(self._marks.get(item))

    def count_marked(self, items) -> int:
        """How many of `items` have at least one mark."""
        return sum(1 for item in items if self._marks.get(item))

    def set(self, item: str, which: str, mark: str | None) -> bool:
        """Set (or with None clear) one mark and save; returns whether anything changed."""
        if which not in MAPS or (mark is not None and mark not in MARKS):
            raise ValueError(f"bad mark {which}={mark}")
        current = self._marks.get(item, {}).get(which)
        if current == mark:
            return False
        if mark is None:
            self._marks[item].pop(which, None)
            if not self._marks[item]:
                del self._marks[item]
        else:
            self._marks.setdefault(item, {})[which] = mark
        self.save()
        return True

    def save(self) -> None:
        """Write the whole file atomically (sorted, so diffs between versions stay small)."""
        rows = [(item, which, maps[which]) for item, maps in sorted(self._marks.items())
                for which in MAPS if which in maps]
        write_csv(self.path, HEADER, rows)


def export_maps(folder: str | Path, stem: str, maps: dict[str, np.ndarray | None]) -> list[Path]:
    """Write each present map as an 8-bit PNG and a float32 .npy (`<stem>_<map>.png/.npy`) into `folder`.

    Raises:
        UserError: The folder cannot be created or a file cannot be written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"The export folder {folder} cannot be created ({exc.strerror or exc}).") from None
    written: list[Path] = []
    for which, heat in maps.items():
        if heat is None:
            continue
        values = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0)
        png = io.BytesIO()
        Image.fromarray(np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8), mode="L").save(png, "PNG")
        npy = io.BytesIO()
        np.save(npy, values, allow_pickle=False)
        for suffix, data in ((".png", png.getvalue()), (".npy", npy.getvalue())):
            target = folder / f"{stem}_{which}{suffix}"
            try:
                atomic_write_bytes(target, data)
            except OSError as exc:
                raise UserError(f"{target} cannot be written ({exc.strerror or exc}).") from None
            written.append(target)
    return written
