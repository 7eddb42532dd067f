"""Building and updating a catalog index: catalog rows -> features -> index directory.

Work is stored in single database transactions of one or more batches (a group closes when the
work since the last commit outweighs the commit's own cost 20 times, see :class:`_WriteGroup`),
so an interrupted build loses at most the last group and `--resume` continues where it stopped
without recomputing finished images.
The catalog is worked through a chunk of entries at a time and the index is finalised from the
database in chunks, so memory stays flat as catalogs grow (docs/scale.md). Builds split across
processes or machines write shards (:mod:`beauty_app.retrieval.shards`) that one command merges.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from collections.abc import Sequence
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
    #: Seconds by stage (network, waiting for decoded images, database writes; CUDA busy time) and
    #: the runtime used, summed over the run's chunks: the speed bench reads them.
    timings: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.indexed / self.elapsed_s if self.elapsed_s > 0 else 0.0


#: Poolings stored beside the index's own so the app can compare rankings (cheap: same forward pass).
COMPARISON_POOLINGS = ("gap", "mac", "rmac", "srmac")


#: Catalog entries looked up and featurised at a time: bounds what a build holds besides the catalog.
ENTRY_CHUNK = 4096


class _Progress:
    """Counts processed entries across chunks for one progress bar."""

    def __init__(self, job: JobControl | None, total: int):
        self.job, self.total, self.done = job, total, 0
        report(job, "index", 0, total, "featurising catalog images")

    def advance(self, count: int, summary: BuildSummary) -> None:
        """Count a batch as it is featurised (stored with its write group), so the bar moves and a
        cancel is seen batch by batch, whatever the size of the write groups."""
        self.done += count
        report(self.job, "index", self.done, self.total,
               f"{summary.indexed} indexed, {len(summary.skipped)} skipped")


#: A write group closes once the work since the last commit took this many times that commit.
COMMIT_SHARE = 20
#: ... or holds this many rows (bounds the memory of a group and the work a kill can lose).
WRITE_GROUP_ROWS = 1024


class _WriteGroup:
    """Batches collected into one database transaction, so commits (an fsync each) stay a small
    share of the work however small the batches, while a kill still loses only the last moments."""

    def __init__(self, index: CatalogIndex, staged: bool, summary: BuildSummary):
        self.index, self.staged, self.summary = index, staged, summary
        self.records: list[ItemRecord] = []
        self.reasons: list[tuple[str, str]] = []
        self.processed = 0
        self.opened = time.perf_counter()
        self.commit_s = 0.0  # the last commit's duration: what the next group's work is weighed against

    def add(self, records: list[ItemRecord], reasons: list[tuple[str, str]], processed: int) -> None:
        self.records += records
        self.reasons += reasons
        self.processed += processed
        if (len(self.records) >= WRITE_GROUP_ROWS
                or time.perf_counter() - self.opened >= COMMIT_SHARE * self.commit_s):
            self.flush()

    def flush(self) -> None:
        if self.processed:
            started = time.perf_counter()
            self.index.add_items(self.records, self.reasons, staged=self.staged)
            self.commit_s = time.perf_counter() - started
            timings = self.summary.timings
            timings["store_s"] = timings.get("store_s", 0.0) + self.commit_s
            timings["commits"] = timings.get("commits", 0) + 1
            self.summary.indexed += len(self.records)
            self.summary.skipped.extend(self.reasons)
        self.records, self.reasons, self.processed = [], [], 0
        self.opened = time.perf_counter()


def _featurise(index: CatalogIndex, entries: list[CatalogEntry], extractor: FeatureExtractor,
               summary: BuildSummary, progress: _Progress, staged: bool = False,
               positions: dict[str, int] | None = None) -> None:
    """Featurise `entries` and store them in write groups (one transaction each), thumbnails included."""
    extra = extractor.usable_poolings(COMPARISON_POOLINGS)
    fallbacks_before = len(extractor.memory_fallbacks)
    group = _WriteGroup(index, staged, summary)
    started, cpu_started = time.perf_counter(), time.thread_time()
    for batch in extractor.iter_batches(entries, extra_poolings=extra):
        records = [
            ItemRecord(entry.id, str(entry.path), entry.description, entry.category, batch.vectors[i],
                       batch.thumbnails[i], {name: vectors[i] for name, vectors in batch.extra.items()},
                       position=None if positions is None else positions[entry.id])
            for i, entry in enumerate(batch.items)
        ]
        processed = len(batch.items) + len(batch.failures)
        group.add(records, [(entry.id, reason) for entry, reason in batch.failures], processed)
        progress.advance(processed, summary)
        if progress.job is not None and progress.job.cancelled:
            # A cancel stops the build at its next batch, not at the end of a write group: what is
            # featurised is stored first, so a resume starts after it.
            group.flush()
            progress.job.check()
    group.flush()
    stats, timings = extractor.stats, summary.timings
    for name, value in (("featurise_s", time.perf_counter() - started),
                        ("featurise_cpu_s", time.thread_time() - cpu_started),
                        ("network_cpu_s", stats.network_cpu_s), ("network_s", stats.network_s), ("gpu_busy_s", stats.gpu_busy_s),
                        ("decode_wait_s", stats.decode.wait_s)):
        timings[name] = timings.get(name, 0.0) + value
    timings["runtime"], timings["decode_processes"] = stats.runtime, stats.decode.processes
    fallbacks = extractor.memory_fallbacks[fallbacks_before:]
    if fallbacks:
        summary.notes.append(
            f"The {extractor.device.type.upper()} device ran out of memory with batches of {fallbacks[0][0]} "
            f"images; indexing continued with batches of {fallbacks[-1][1]}.")


def _featurise_missing(index: CatalogIndex, entries: Sequence[CatalogEntry], extractor: FeatureExtractor,
                       summary: BuildSummary, job: JobControl | None, positions: Sequence[int] | None = None) -> None:
    """Featurise the entries the index does not hold yet, a chunk of the catalog at a time.

    Which entries are done is asked of the database chunk by chunk, so a resumed build of a
    500,000-image catalog never holds a set of every id, and finished chunks cost one lookup.
    """
    progress = _Progress(job, len(entries))
    for start in range(0, len(entries), ENTRY_CHUNK):
        part = list(entries[start:start + ENTRY_CHUNK])  # a lazy CSV view reads its rows here, once
        known = index.known_among([entry.id for entry in part])
        todo = [entry for entry in part if entry.id not in known]
        summary.already_done += len(part) - len(todo)
        progress.done += len(part) - len(todo)
        where = None if positions is None else {
            entry.id: positions[start + i] for i, entry in enumerate(part) if entry.id not in known}
        if todo:
            _featurise(index, todo, extractor, summary, progress, positions=where)
    if summary.already_done:
        log.info("resumed: %d of %d images were already done", summary.already_done, len(entries))


def build_index(
    catalog: Catalog,
    extractor: FeatureExtractor,
    out_dir: str | Path,
    *,
    index_type: str = "auto",
    whitening: int | bool | None = None,
    resume: bool = False,
    job: JobControl | None = None,
    memory_budget: int | None = None,
    recall_target: float | None = None,
) -> BuildSummary:
    """Featurise every catalog image into a new index directory (or finish an interrupted one).

    Features, thumbnails and comparison vectors are stored batch by batch as they are made, and
    finalising streams them back in chunks, so memory does not grow with the catalog beyond 24
    bytes a row for the catalog CSV's row offsets and the search structure (see docs/scale.md).

    Args:
        index_type: auto (default: by catalog size and `memory_budget`) | flat | ivf | hnsw | pq.
        whitening: True learns PCA whitening on the catalog, an int also reduces to that dimension.
        resume: continue a build of the same catalog and model that was interrupted.
        memory_budget: bytes the search structure may take (auto; default 1 GiB).
        recall_target: recall@7 against exact search that auto tunes for (default 0.95).
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
        index.add_items([], summary.skipped)
        _featurise_missing(index, catalog.entries, extractor, summary, job)
        if index.count() == 0:
            raise IndexStoreError("No catalog image could be indexed; see the skipped files for reasons.")
        report(job, "finalize", 0, 1, "building the search index")
        index.finalize(index_type, whitening if whitening else None, memory_budget=memory_budget,
                       recall_target=recall_target)
        report(job, "finalize", 1, 1, "done")
        summary.info = index.info()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def index_scales(settings: dict) -> tuple[float, ...]:
    """The extraction scales an index was built with (indexes from before multi-scale: scale 1)."""
    return tuple(float(s) for s in settings.get("scales") or (1.0,))


def check_extractor_matches(settings: dict, extractor: FeatureExtractor) -> None:
    """Refuse an extractor that makes vectors another way than the index's rows were made.

    Rows of one index must come from the same model, pooling, scales and input size, or their
    distances mean nothing. The index's whitening is not the extractor's: the index applies it to
    every stored row, added ones included. Indexes from before multi-scale extraction recorded no
    scales (they used scale 1) nor an input size (they used the model's).
    """
    recorded = {"pooling": settings.get("pooling"),
                "scales": list(index_scales(settings)),
                "input size": int(settings.get("input_size") or extractor.bundle.input_size)}
    offered = {"pooling": extractor.pooling, "scales": [float(s) for s in extractor.scales],
               "input size": int(extractor.input_size)}
    different = [name for name in recorded if recorded[name] != offered[name]]
    if different:
        def show(values: dict) -> str:
            return ", ".join(f"{name} {values[name]}" for name in different)

        raise IndexStoreError(f"This index holds vectors made with {show(recorded)}, not {show(offered)}; add "
                              f"with the index's own settings (`catalog add` reads them) or build a new index.")


def add_to_index(catalog: Catalog, extractor: FeatureExtractor, index_dir: str | Path,
                 job: JobControl | None = None) -> BuildSummary:
    """Add new catalog images (and re-featurise changed ones) in an existing index.

    `extractor` must make vectors as the index's were made (see :func:`check_extractor_matches`);
    :func:`beauty_app.retrieval.session.add_catalog` builds such an extractor from the index.

    New vectors are staged batch by batch and enter the catalog in one transaction at the end, so
    an interrupted add leaves the previous index searchable as it was; running the same add again
    reuses the batches staged before the interruption.
    """
    started = time.perf_counter()
    summary = BuildSummary(skipped=list(catalog.skipped))
    with CatalogIndex.open(index_dir, writable=True) as index:
        index.check_model(extractor.bundle.fingerprint)
        check_extractor_matches(index.settings(), extractor)
        index.add_items([], summary.skipped, staged=True)
        progress = _Progress(job, len(catalog.entries))
        for start in range(0, len(catalog.entries), ENTRY_CHUNK):  # one chunk of ids in memory at a time
            part = list(catalog.entries[start:start + ENTRY_CHUNK])
            stored = index.stored_paths([entry.id for entry in part])
            todo = [entry for entry in part if stored.get(entry.id) != str(entry.path)]
            summary.already_done += len(part) - len(todo)
            progress.done += len(part) - len(todo)
            if todo:
                _featurise(index, todo, extractor, summary, progress, staged=True)
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
