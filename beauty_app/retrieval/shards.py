"""Indexing across processes and machines: shards written in parallel, merged into one index.

`torchrun` (torch.distributed) starts one process per GPU or node; each runs `catalog build
--shard-out DIR`, takes every world-th catalog row (rank r: rows r, r + world, ...) and writes
them, with their thumbnails, comparison vectors and catalog positions, into its own shard, an
ordinary index folder ``DIR/shard-RRRRR-of-WWWWW``. Shards are resumable like any build. The
processes meet once at the end (a gloo barrier) to check that they read the same catalog and to
report totals; no tensors cross the network.

`catalog merge --shards DIR... --out INDEX` then streams the shards back in catalog order into
one index and finalises it (search structure, recall, checksums), so the result has the same rows
in the same order as a build in one process. It writes into a staging folder beside INDEX
(``.INDEX.merging``) and renames it to INDEX when the index is complete, so a killed merge never
leaves a half-built INDEX; run again, it continues in the staging folder (or starts it anew if the
kill left it unreadable). See docs/scale.md for multi-node commands.
"""

from __future__ import annotations

import datetime
import hashlib
import heapq
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..catalog_io import Catalog, CsvCatalogEntries
from ..errors import IndexStoreError, UserError
from ..jobs import JobControl, report
from .build import BuildSummary, _featurise_missing
from .extractor import FeatureExtractor
from .index import DB_NAME, CatalogIndex, ItemRecord

log = logging.getLogger(__name__)

#: Settings that must agree between shards (and that the merged index records).
_MODEL_SETTINGS = ("model_spec", "model_fingerprint", "pooling", "dim", "scales", "input_size")
MERGE_BATCH = 256


def shard_dir_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}"


def catalog_fingerprint(catalog: Catalog) -> str:
    """SHA-256 of the catalog's ids in order: shards of one build must have read the same catalog."""
    digest = hashlib.sha256()
    entries = catalog.entries
    ids = entries.ids() if isinstance(entries, CsvCatalogEntries) else (entry.id for entry in entries)
    for item_id in ids:  # every process of a build runs this: no file checks, which are slow on shared storage
        digest.update(item_id.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


# ---------------------------------------------------------------------------- processes
@dataclass
class Distributed:
    """This process's place in a distributed build: rank, world size, local rank (GPU number)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    _group: bool = False

    def gather(self, value) -> list:
        """Every process's `value`, in rank order (a single process: [value])."""
        if not self._group:
            return [value]
        import torch.distributed as dist

        values: list = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self._group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._group = False


def parse_shard(text: str) -> tuple[int, int]:
    """"2/8" -> (2, 8): this process writes shard 2 of 8 (without torchrun, e.g. in a job array)."""
    try:
        rank, world = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like RANK/WORLD, e.g. 0/2, not {text!r}.") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"--shard {text}: the rank must be at least 0 and below the number of shards.")
    return rank, world


def distributed_from_environment(shard: tuple[int, int] | None = None,
                                 timeout: datetime.timedelta = datetime.timedelta(hours=12)) -> Distributed:
    """Where this process stands: an explicit `shard`, or torchrun's RANK / WORLD_SIZE / LOCAL_RANK.

    Under torchrun a gloo process group is started (CPU-only and fine across nodes: only a few
    small Python objects are exchanged); the generous timeout lets fast ranks wait for slow ones.
    """
    if shard is not None:
        return Distributed(shard[0], shard[1], 0)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return Distributed(rank, world, local_rank)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timeout)
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, True)


# ---------------------------------------------------------------------------- writing a shard
def build_shard(catalog: Catalog, extractor: FeatureExtractor, shard_root: str | Path, rank: int, world: int, *,
                job: JobControl | None = None) -> BuildSummary:
    """Featurise catalog rows rank, rank + world, ... into ``shard_root/shard-RANK-of-WORLD``.

    Run again after an interruption, it continues where it stopped (like `catalog build --resume`).
    """
    started = time.perf_counter()
    out = Path(shard_root) / shard_dir_name(rank, world)
    shard = {"rank": rank, "world": world, "catalog_size": len(catalog.entries),
             "catalog_sha256": catalog_fingerprint(catalog)}
    # Rows the catalog reader refused are every shard's; the first shard records them.
    summary = BuildSummary(skipped=list(catalog.skipped) if rank == 0 else [])
    with CatalogIndex.create(out, {**extractor.settings(), "catalog": str(catalog.root), "shard": shard}) as index:
        recorded = index.settings().get("shard")
        if recorded != shard:
            raise IndexStoreError(f"{out} holds a shard of another catalog or split ({recorded}); "
                                  f"use a new --shard-out folder.")
        index.add_items([], summary.skipped)
        _featurise_missing(index, catalog.entries[rank::world], extractor, summary, job,
                           positions=range(rank, len(catalog.entries), world))
        index.update_settings({"shard_done": True})
        summary.info = {**index.info(), "shard": shard}
    summary.elapsed_s = time.perf_counter() - started
    return summary


# ---------------------------------------------------------------------------- merging
def find_shards(paths: Sequence[str | Path]) -> list[Path]:
    """Shard folders among `paths`: each path is a shard, or a folder holding shard-* folders."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / DB_NAME).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.glob("shard-*-of-*") if (p / DB_NAME).is_file())
        else:
            raise UserError(f"Shard folder {path} does not exist.")
    if not found:
        raise UserError(f"No shards found in {', '.join(map(str, paths))}; "
                        f"write them with `catalog build --shard-out DIR`.")
    return list(dict.fromkeys(p.resolve() for p in found))


def _check_shards(shards: list[CatalogIndex]) -> dict:
    """The shards' common settings; refuses missing, unfinished, duplicate or mismatched shards."""
    settings = [s.settings() for s in shards]
    for index, s in zip(shards, settings):
        if not isinstance(s.get("shard"), dict):
            raise IndexStoreError(f"{index.directory} is not a shard of a distributed build.")
        if not s.get("shard_done"):
            raise IndexStoreError(f"The shard {index.directory} is unfinished; run its `catalog build "
                                  f"--shard-out` again to finish it.")
    first = settings[0]
    for index, s in zip(shards, settings):
        for key in _MODEL_SETTINGS:
            if s.get(key) != first.get(key):
                raise IndexStoreError(f"The shard {index.directory} was built with a different "
                                      f"{key.replace('_', ' ')} than {shards[0].directory}.")
        for key in ("world", "catalog_size", "catalog_sha256"):
            if s["shard"].get(key) != first["shard"].get(key):
                raise IndexStoreError(f"The shard {index.directory} comes from a different catalog or split than "
                                      f"{shards[0].directory}.")
    world = first["shard"]["world"]
    ranks = sorted(s["shard"]["rank"] for s in settings)
    if ranks != list(range(world)):
        missing = sorted(set(range(world)) - set(ranks))
        if missing:
            raise IndexStoreError(f"Shard {missing[0]} of {world} is missing; pass every shard folder to the merge.")
        raise IndexStoreError("The same shard was given twice; pass each shard folder once.")
    return first


def _shard_rows(shard: CatalogIndex, number: int) -> Iterator[tuple]:
    """(position, shard number, id, path, description, category, vector, thumbnail) in catalog order."""
    for row in shard.positioned_rows():
        yield (row[0], number, *row[1:])


def merge_shards(shard_paths: Sequence[str | Path], out_dir: str | Path, *, index_type: str = "auto",
                 whitening: int | bool | None = None, memory_budget: int | None = None,
                 recall_target: float | None = None, job: JobControl | None = None) -> BuildSummary:
    """Merge the shards of a distributed build into one finalised index at `out_dir`.

    Rows are streamed in catalog order (a k-way merge on the recorded positions), a batch per
    transaction, so memory stays flat and an interrupted merge continues when run again.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    paths = find_shards(shard_paths)
    shards = [CatalogIndex.open(path) for path in paths]
    try:
        first = _check_shards(shards)
        shard_info = first["shard"]
        settings = {key: first.get(key) for key in _MODEL_SETTINGS}
        settings.update(catalog=first.get("catalog"), merged_from={
            "world": shard_info["world"], "catalog_sha256": shard_info["catalog_sha256"]})
        target = _merge_target(out_dir, settings["merged_from"])
        summary = BuildSummary()
        skipped = {item: reason for shard in shards for item, reason in shard.skipped()}
        summary.skipped = sorted(skipped.items())
        total = sum(shard.count() for shard in shards)
        with CatalogIndex.create(target, settings) as index:
            index.add_items([], summary.skipped)
            report(job, "merge", 0, total, f"merging {len(shards)} shards")
            done = 0
            rows = heapq.merge(*(_shard_rows(shard, n) for n, shard in enumerate(shards)))
            while True:
                batch = [row for _, row in zip(range(MERGE_BATCH), rows)]
                if not batch:
                    break
                known = index.known_among([row[2] for row in batch])
                todo = [row for row in batch if row[2] not in known]
                summary.already_done += len(batch) - len(todo)
                extra: dict[str, dict[str, np.ndarray]] = {}
                for number in {row[1] for row in todo}:
                    extra.update(shards[number].comparison_vectors([row[2] for row in todo if row[1] == number]))
                index.add_items([
                    ItemRecord(item_id, path, description, category, np.frombuffer(vector, np.float32), thumbnail,
                               extra.get(item_id) or None)
                    for _, _, item_id, path, description, category, vector, thumbnail in todo])
                summary.indexed += len(todo)
                done += len(batch)
                report(job, "merge", done, total, f"{done:,} of {total:,} rows")
            if index.count() == 0:
                raise IndexStoreError("The shards hold no indexed image; see their skipped files for reasons.")
            report(job, "finalize", 0, 1, "building the search index")
            index.finalize(index_type, whitening if whitening else None, memory_budget=memory_budget,
                           recall_target=recall_target)
            report(job, "finalize", 1, 1, "done")
            summary.info = {**index.info(), "merged_shards": len(shards)}
        if target != out_dir:
            os.replace(target, out_dir)  # the finished index appears at once, whole
            summary.info["directory"] = str(out_dir)
    finally:
        for shard in shards:
            shard.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def merge_staging_dir(out_dir: Path) -> Path:
    """Where a merge into `out_dir` writes until the index is complete."""
    return out_dir.with_name(f".{out_dir.name}.merging")


def _merge_target(out_dir: Path, merged_from: dict) -> Path:
    """The folder the merge writes into: `out_dir` itself if it holds this merge's finished index (run again),
    else the staging folder, continued when it holds this merge, started anew when a kill left it unreadable."""
    if out_dir.exists() and any(out_dir.iterdir()):
        try:
            with CatalogIndex.open(out_dir) as existing:
                same = existing.settings().get("merged_from") == merged_from
        except IndexStoreError:
            same = False
        if not same:
            raise IndexStoreError(f"{out_dir} already holds another index or files; choose a new --out folder.")
        return out_dir
    if out_dir.exists():
        out_dir.rmdir()  # an empty folder: the staging folder takes its place at the end
    staging = merge_staging_dir(out_dir)
    if (staging / DB_NAME).is_file():
        try:
            with CatalogIndex.open(staging) as existing:
                recorded = existing.settings().get("merged_from")
        except IndexStoreError as exc:
            log.warning("the interrupted merge in %s cannot be continued (%s); starting it again", staging, exc)
            recorded = None
        if recorded == merged_from:
            log.info("continuing the interrupted merge in %s", staging)
            return staging
    if staging.exists():
        shutil.rmtree(staging)  # our own folder, of a merge of other shards or killed before it held anything
    return staging
