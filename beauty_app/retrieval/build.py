"""Building and updating a catalog index: catalog rows -> features -> index directory.

Work is stored batch by batch in single database transactions, so an interrupted build loses at
most one batch and `--resume` continues where it stopped without recomputing finished images.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog_io import Catalog, CatalogEntry
from ..errors import IndexStoreError
from ..jobs import JobControl, report
from .extractor import FeatureExtractor
from .index import DB_NAME, CatalogIndex, ItemRecord

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    """What a build or update did, for the CLI summary and the catalog tab."""

    indexed: int = 0  # images featurised in this run
    already_done: int = 0  # found finished from an earlier, interrupted run
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason) in this catalog
    notes: list[str] = field(default_factory=list)  # things the user should know, e.g. a smaller batch
    elapsed_s: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.indexed / self.elapsed_s if self.elapsed_s > 0 else 0.0


#: Poolings stored beside the index's own so the app can compare rankings (cheap: same forward pass).
COMPARISON_POOLINGS = ("gap", "mac", "rmac", "srmac")


def _featurise(index: CatalogIndex, entries: list[CatalogEntry], extractor: FeatureExtractor,
               summary: BuildSummary, job: JobControl | None, staged: bool = False) -> None:
    done = 0
    report(job, "index", 0, len(entries), "featurising catalog images")
    extra = extractor.usable_poolings(COMPARISON_POOLINGS)
    fallbacks_before = len(extractor.memory_fallbacks)
    for batch in extractor.iter_batches(entries, extra_poolings=extra):
        records = [
            ItemRecord(entry.id, str(entry.path), entry.description, entry.category, batch.vectors[i],
                       batch.thumbnails[i], {name: vectors[i] for name, vectors in batch.extra.items()})
            for i, entry in enumerate(batch.items)
        ]
        reasons = [(entry.id, reason) for entry, reason in batch.failures]
        index.add_items(records, reasons, staged=staged)
        summary.indexed += len(records)
        summary.skipped.extend(reasons)
        done += len(batch.items) + len(batch.failures)
        report(job, "index", done, len(entries), f"{summary.indexed} indexed, {len(summary.skipped)} skipped")
    fallbacks = extractor.memory_fallbacks[fallbacks_before:]
    if fallbacks:
        summary.notes.append(
            f"The {extractor.device.type.upper()} device ran out of memory with batches of {fallbacks[0][0]} "
            f"images; indexing continued with batches of {fallbacks[-1][1]}.")


def build_index(
    catalog: Catalog,
    extractor: FeatureExtractor,
    out_dir: str | Path,
    *,
    index_type: str = "flat",
    whitening: int | bool | None = None,
    resume: bool = False,
    job: JobControl | None = None,
) -> BuildSummary:
    """Featurise every catalog image into a new index directory (or finish an interrupted one).

    Args:
        whitening: True learns PCA whitening on the catalog, an int also reduces to that dimension.
        resume: continue a build of the same catalog and model that was interrupted.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    if (out_dir / DB_NAME).exists() and not resume:
        raise IndexStoreError(
            f"{out_dir} already holds an index; use --resume to finish it, `catalog add` to update it, "
            f"or another --out folder."
        )
    summary = BuildSummary(skipped=[(item, reason) for item, reason in catalog.skipped])
    with CatalogIndex.create(out_dir, {**extractor.settings(), "catalog": str(catalog.root)}) as index:
        known = index.known_items()
        todo = [entry for entry in catalog.entries if entry.id not in known]
        summary.already_done = len(catalog.entries) - len(todo)
        if summary.already_done:
            log.info("resuming: %d of %d images already done", summary.already_done, len(catalog.entries))
        index.add_items([], summary.skipped)
        _featurise(index, todo, extractor, summary, job)
        if index.count() == 0:
            raise IndexStoreError("No catalog image could be indexed; see the skipped files for reasons.")
        report(job, "finalize", 0, 1, "building the search index")
        index.finalize(index_type, whitening if whitening else None)
        report(job, "finalize", 1, 1, "done")
        summary.info = index.info()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def add_to_index(catalog: Catalog, extractor: FeatureExtractor, index_dir: str | Path,
                 job: JobControl | None = None) -> BuildSummary:
    """Add new catalog images (and re-featurise changed ones) in an existing index.

    New vectors are staged batch by batch and enter the catalog in one transaction at the end, so
    an interrupted add leaves the previous index searchable as it was; running the same add again
    reuses the batches staged before the interruption.
    """
    started = time.perf_counter()
    summary = BuildSummary(skipped=list(catalog.skipped))
    with CatalogIndex.open(index_dir, writable=True) as index:
        index.check_model(extractor.bundle.fingerprint, extractor.pooling)
        stored = {item["id"]: item["path"] for item in index.iter_items()}
        stored.update(index.staged_items())
        todo = [entry for entry in catalog.entries if stored.get(entry.id) != str(entry.path)]
        summary.already_done = len(catalog.entries) - len(todo)
        index.add_items([], summary.skipped, staged=True)
        _featurise(index, todo, extractor, summary, job, staged=True)
        index.commit_staged()
        index.finalize()
        summary.info = index.info()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def remove_from_index(index_dir: str | Path, ids: list[str]) -> int:
    """Remove catalog ids from an index; returns how many were present."""
    with CatalogIndex.open(index_dir, writable=True) as index:
        removed = index.remove_items(ids)
        index.finalize()
    return removed
