"""The pseudo-mask cache: each item's masks as PNGs plus an ``index.json`` of statuses, resumable.

:func:`build_mask_cache` computes masks with :func:`beauty_app.training.masks.compute_masks` and
stores them next to the mined training set; the trainer reads them back with
:func:`load_cached_masks`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from beauty_app.fileio import atomic_write_bytes
from beauty_app.errors import ImageLoadError, UserError
from beauty_app.imaging import load_image
from beauty_app.jobs import JobControl, report
from beauty_app.training.masks import MIN_SIDE, STATUS_OK, STATUS_UNREADABLE, compute_masks, text_mask_source

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
INDEX_NAME = "index.json"

_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")

def mask_stem(item_id: str) -> str:
    """File stem of an item's cached masks: the id itself when it is a safe file name.

    Ids with other characters, or with capitals (which collide on case-insensitive file systems),
    get a sanitised name plus a short hash of the id.
    """
    if _SAFE_ID.fullmatch(item_id) and item_id == item_id.lower():
        return item_id
    safe = re.sub(r"[^a-z0-9_.-]", "_", item_id.lower())[:80].lstrip(".") or "_"
    return f"{safe}-{hashlib.sha1(item_id.encode('utf-8')).hexdigest()[:10]}"


def _paths(cache_dir: Path, item_id: str) -> tuple[Path, Path]:
    stem = mask_stem(item_id)
    return cache_dir / f"{stem}.sal.png", cache_dir / f"{stem}.txt.png"


def _read_index(cache_dir: Path, size: int | None = None, text_source: str | None = None) -> dict[str, dict]:
    path = cache_dir / INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring unreadable mask index %s (%s); masks will be recomputed", path, exc)
        return {}
    if (not isinstance(data, dict) or data.get("version") != CACHE_VERSION
            or not isinstance(data.get("items"), dict)):
        logger.warning("Mask index %s has another format; masks will be recomputed", path)
        return {}
    if size is not None and data.get("size") != size:
        logger.info("Mask cache %s was made at %s px, not %s px; recomputing",
                    cache_dir, data.get("size"), size)
        return {}
    # Indexes from before the detector name no source; theirs was the heuristic.
    cached_source = data.get("text_source", "opencv-heuristic")
    if text_source is not None and cached_source != text_source:
        logger.info("Mask cache %s has text masks from %s, not %s; recomputing", cache_dir, cached_source, text_source)
        return {}
    return data["items"]


def _write_index(cache_dir: Path, size: int, items: dict[str, dict], text_source: str) -> None:
    text = json.dumps({"version": CACHE_VERSION, "size": size, "text_source": text_source, "items": items},
                      indent=0, sort_keys=True)
    atomic_write_bytes(cache_dir / INDEX_NAME, text.encode("utf-8"))


def _png_bytes(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - encoding a uint8 2-D array does not fail
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _process_item(item_id: str, path: Path, cache_dir: Path, size: int) -> dict:
    """Load, estimate and write one item's masks; returns its index entry."""
    try:
        img = np.asarray(load_image(path, max_side=size))
    except ImageLoadError as exc:
        logger.warning("Mask cache: %s", exc)
        return {"status": STATUS_UNREADABLE, "path": str(path)}
    res = compute_masks(img)
    sal_path, txt_path = _paths(cache_dir, item_id)
    try:
        if res.saliency is not None:
            atomic_write_bytes(sal_path, _png_bytes(res.saliency))
            atomic_write_bytes(txt_path, _png_bytes(res.text))
        else:  # a stale pair from an earlier run must not be served for a failed image
            for p in (sal_path, txt_path):
                p.unlink(missing_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f'The mask cache folder "{cache_dir}" cannot be written ({reason}).') from None
    return {"status": res.status, "path": str(path), "width": img.shape[1], "height": img.shape[0]}


def _is_cached(entry: dict | None, path: Path, cache_dir: Path, item_id: str) -> bool:
    if not entry or entry.get("path") != str(path) or entry.get("status") == STATUS_UNREADABLE:
        return False
    if entry.get("status") != STATUS_OK:
        return True
    return all(p.is_file() for p in _paths(cache_dir, item_id))


def build_mask_cache(items: Sequence[tuple[str, Path]], cache_dir: Path, *, size: int = 256, workers: int = 2,
                     job: JobControl | None = None) -> dict[str, str]:
    """Compute and store pseudo masks for catalog images; resumable.

    Writes ``<stem>.sal.png`` and ``<stem>.txt.png`` (``uint8`` {0, 255}, at the image size after
    loading with longest side ``size``) for each item whose saliency succeeded, and ``index.json``
    with every item's status. Items already in the index with the same path are skipped, so an
    interrupted or cancelled run continues where it stopped. Unreadable images are retried. The index
    records the text-mask source (:func:`~beauty_app.training.masks.text_mask_source`); a cache made
    by another source (the OpenCV heuristic before the PP-OCR detector was installed, say) is
    recomputed.

    Args:
        items: ``(id, image path)`` pairs; later duplicates of an id are ignored.
        cache_dir: Folder for the masks (created), usually next to the mined training set.
        size: Longest side at which images are loaded and masks stored.
        workers: Threads computing masks (OpenCV and the JPEG decoder release the GIL).
        job: Optional progress/cancel control; stage ``"masks"``.

    Returns:
        ``id -> status`` for every item (``"ok"`` or the reason it failed).

    Raises:
        UserError: ``cache_dir`` cannot be created.
        Cancelled: the job was cancelled (progress so far is kept in the index).
    """
    if size < MIN_SIDE:
        raise ValueError(f"size must be at least {MIN_SIDE} pixels, got {size}")
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f'The mask cache folder "{cache_dir}" cannot be created ({reason}).') from None

    text_source = text_mask_source()
    index = _read_index(cache_dir, size, text_source)
    statuses: dict[str, str] = {}
    todo: list[tuple[str, Path]] = []
    for item_id, path in items:
        if item_id in statuses:
            continue
        path = Path(path)
        entry = index.get(item_id)
        if _is_cached(entry, path, cache_dir, item_id):
            statuses[item_id] = entry["status"]
        else:
            statuses[item_id] = ""
            todo.append((item_id, path))
    total = len(statuses)
    done = total - len(todo)
    logger.info("Mask cache %s: %d cached, %d to compute", cache_dir, done, len(todo))
    report(job, "masks", done, total, f"{done} of {total} cached")

    last_save = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(1, workers)) if workers > 1 else None
    pending: list[tuple[str, Future | None, Path]] = []
    try:
        it = iter(todo)
        while True:
            # A small window of submitted work keeps cancellation prompt.
            while pool is not None and len(pending) < 2 * workers:
                nxt = next(it, None)
                if nxt is None:
                    break
                pending.append((nxt[0], pool.submit(_process_item, nxt[0], nxt[1], cache_dir, size), nxt[1]))
            if pool is None:
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt[0], None, nxt[1]))
            if not pending:
                break
            item_id, fut, path = pending.pop(0)
            entry = fut.result() if fut is not None else _process_item(item_id, path, cache_dir, size)
            index[item_id] = entry
            statuses[item_id] = entry["status"]
            done += 1
            if time.monotonic() - last_save > 5.0:
                _write_index(cache_dir, size, index, text_source)
                last_save = time.monotonic()
            report(job, "masks", done, total, f"{item_id}: {entry['status']}")
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            # Work that finished while the job was being cancelled is kept, not redone next time.
            for item_id, fut, _ in pending:
                if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                    index[item_id] = fut.result()
        _write_index(cache_dir, size, index, text_source)
    n_ok = sum(s == STATUS_OK for s in statuses.values())
    logger.info("Mask cache %s: %d of %d images have a saliency mask", cache_dir, n_ok, total)
    return statuses


def _read_png(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(path, np.uint8)
    except (FileNotFoundError, OSError):
        return None
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if mask is None:
        logger.warning("Cached mask %s cannot be decoded; ignoring it", path)
    return mask


def load_cached_masks(cache_dir: str | os.PathLike[str],
                      item_id: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Read an item's cached masks.

    Returns:
        ``(saliency, text)`` as ``uint8`` {0, 255} arrays at the cached size, each ``None`` when
        the item failed, is not cached or its file is unreadable. Text is only stored for items
        whose saliency succeeded.
    """
    sal_path, txt_path = _paths(Path(cache_dir), item_id)
    return _read_png(sal_path), _read_png(txt_path)


def cached_statuses(cache_dir: str | os.PathLike[str]) -> dict[str, str]:
    """``id -> status`` of every item in a mask cache's index (empty when there is none)."""
    return {k: v.get("status", "") for k, v in _read_index(Path(cache_dir)).items()}
