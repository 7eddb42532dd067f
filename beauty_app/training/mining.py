# Kept in one module (about 550 lines): the private steps of the one mine_dataset pipeline (read, label,
# choose, sample, split, statistics, write); proposal, coherence and the report are already apart.
"""Mining a labelled classification set ("Perfect-30K") from an unlabelled catalog's descriptions.

The paper (supplement A.1) ran TF-IDF over all Perfect-500K descriptions, counted 44 rough product
categories by hand and took the images whose description names one of them. :func:`mine_dataset`
does the same in named steps:

1. **Read** the catalog and its descriptions (:func:`_read_descriptions`).
2. **Keywords**: proposed from the descriptions (:mod:`beauty_app.training.propose`, TF-IDF), the
   built-in list or a keyword file (:mod:`beauty_app.training.keywords`, which also holds the
   matching rules).
3. **Label** every description with the categories it names (:func:`_label`), and **drop the
   ambiguous** ones and those naming none (:func:`_drop_ambiguous`).
4. **Choose** the categories with at least ``min_images`` matches (the ``n_categories`` largest) and
   **sample** each, capped at ``per_category`` images, replacing unreadable images by other
   matches (:func:`_sample_readable`).
5. **Title labels** (with ``title_labels > 0``): a multi-label vocabulary of frequent description
   n-grams (:mod:`beauty_app.training.titles`). Every other readable image with at least one title
   label is kept too, with "no category" (label -1, which the category loss ignores).
6. **Split** each class (and the title-only images) into train/val (:func:`_split`), measure the
   **statistics** (:func:`_mean_std`) and **write** the folder (:func:`_write_dataset`, with the report
   of :mod:`beauty_app.training.mining_report`).

Output folder (read back with :meth:`MinedDataset.load`; a small stable API for the trainer):

* ``classes.txt``: one class name per line; the label of a class is its 0-based line number.
* ``train.csv``, ``val.csv``: columns ``id,path,label,category,description`` with absolute image
  paths; ``category`` is the class name (the source of truth), ``label`` its index. Both files are
  valid catalog CSVs for :func:`beauty_app.catalog_io.read_catalog`. With title labels a
  ``titles`` column follows: the image's title label indices, separated by spaces; an image
  without a category has an empty ``category`` and label -1.
* ``titles.txt`` (with title labels): one title label per line; its index is its 0-based line
  number. A folder without it has no title labels (the feature is off).
* ``stats.json``: per-channel RGB ``mean``/``std`` (0..1, from up to ``stats_images`` images resized
  to 224x224), per-class counts, split sizes, source catalog, keyword source, settings, timestamp.
  Written last: a folder without it is an unfinished run.
* ``report.md``: categories, counts, three example descriptions each, what was dropped and why.
* ``keywords.txt``: the keywords used, in the keyword file format (edit and re-run with
  ``--keywords``); ``proposed_keywords.txt`` too when they were proposed by TF-IDF.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from beauty_app.catalog_io import CatalogEntry, read_catalog
from beauty_app.fileio import atomic_write_text, unescape_csv_cell, write_csv
from beauty_app.errors import CatalogError, ImageLoadError, UserError
from beauty_app.imaging import load_image
from beauty_app.jobs import JobControl
from beauty_app.training.keywords import KeywordSet, PhraseMatcher, split_clauses
from beauty_app.training.mining_report import report_markdown, titles_markdown
from beauty_app.training.coherence import MIN_COHERENCE, Coherence, Embedder, category_coherence, drop_incoherent
from beauty_app.training.propose import StageProgress, check_positive, propose_categories
from beauty_app.training.titles import TitleLabels
from beauty_app.training.titles import title_labels as make_title_labels

logger = logging.getLogger(__name__)

STATS_SIZE = 224
"""Side of the square resize (no letterbox) at which mean/std are measured, as in the paper."""

DATASET_FORMAT = "beautylens-mined-dataset"
DATASET_VERSION = 2
"""Version 2 adds title labels; a folder without them is written as version 1, which older apps read."""
LIST_COLUMNS = ("id", "path", "label", "category", "description")
TITLE_COLUMN = "titles"
TITLES_FILE = "titles.txt"
NO_CATEGORY = -1
"""The label of an image kept for its title labels only (the category loss ignores it)."""


@dataclass(frozen=True)
class MinedSample:
    """One image of a mined dataset.

    Attributes:
        id: Catalog id.
        path: Absolute image path.
        label: Class index (line number in ``classes.txt``, from 0), or :data:`NO_CATEGORY`.
        category: Class name ("" without a category).
        description: The catalog description it was mined from.
        titles: Title label indices (line numbers in ``titles.txt``), sorted.
    """

    id: str
    path: Path
    label: int
    category: str
    description: str = ""
    titles: tuple[int, ...] = ()


@dataclass
class MinedDataset:
    """A mined classification set: classes, train/val lists, normalisation statistics.

    Attributes:
        root: The dataset folder.
        classes: Class names; a class's label is its index.
        train: Training samples.
        val: Validation samples.
        mean: Per-channel RGB mean in 0..1.
        std: Per-channel RGB standard deviation in 0..1.
        stats: The content of ``stats.json``.
        skipped: ``(item, reason)`` for list rows whose image is gone (only from :meth:`load`).
        titles: The title label vocabulary (empty: the dataset has no title labels).
    """

    root: Path
    classes: list[str]
    train: list[MinedSample]
    val: list[MinedSample]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stats: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_titles(self) -> bool:
        return bool(self.titles)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> MinedDataset:
        """Read a folder written by :func:`mine_dataset`.

        Rows whose image file no longer exists are left out and listed in ``skipped``.

        Raises:
            CatalogError: The folder is not a complete mined dataset, or its files disagree.
        """
        folder = Path(root).resolve()
        stats_path = folder / "stats.json"
        try:
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(
                f'"{folder}" is not a mined dataset (no stats.json); create one with "beauty-app dataset mine".'
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CatalogError(f'The dataset file "{stats_path}" cannot be read ({exc}).') from None
        if not isinstance(stats, dict) or stats.get("format") != DATASET_FORMAT:
            raise CatalogError(f'"{stats_path}" does not describe a mined dataset.')
        if stats.get("version", 0) > DATASET_VERSION:
            raise CatalogError(f'The dataset "{folder}" was written by a newer BeautyLens; update the app.')
        try:
            classes = [c for c in (folder / "classes.txt").read_text(encoding="utf-8").splitlines() if c.strip()]
        except OSError as exc:
            raise CatalogError(f'The dataset file "{folder / "classes.txt"}" cannot be read ({exc}).') from None
        if classes != list(stats.get("classes", classes)):
            raise CatalogError(f'The dataset "{folder}" has classes.txt and stats.json that disagree.')
        label_of = {name: i for i, name in enumerate(classes)}
        titles = _read_titles(folder) if stats.get("titles") else []
        if titles:
            label_of[""] = NO_CATEGORY
        skipped: list[tuple[str, str]] = []

        def read_list(name: str) -> list[MinedSample]:
            catalog = read_catalog(folder / name, allow_outside_root=True)
            skipped.extend((f"{name}: {item}", reason) for item, reason in catalog.skipped)
            title_cells = _read_title_cells(folder / name, len(titles)) if titles else {}
            samples = []
            for entry in catalog.entries:
                if entry.category not in label_of:
                    raise CatalogError(f'The dataset list "{folder / name}" names the unknown class "{entry.category}".')
                samples.append(MinedSample(entry.id, entry.path, label_of[entry.category], entry.category,
                                           entry.description, title_cells.get(entry.id, ())))
            return samples

        train, val = read_list("train.csv"), read_list("val.csv")
        if skipped:
            logger.warning("Dataset %s: %d listed images are missing", folder, len(skipped))
        return cls(folder, classes, train, val, _triple(stats.get("mean")), _triple(stats.get("std")), stats,
                   skipped, titles)


def _read_titles(folder: Path) -> list[str]:
    try:
        return [t for t in (folder / TITLES_FILE).read_text(encoding="utf-8").splitlines() if t.strip()]
    except OSError as exc:
        raise CatalogError(f'The dataset file "{folder / TITLES_FILE}" cannot be read ({exc}).') from None


def _read_title_cells(path: Path, n_titles: int) -> dict[str, tuple[int, ...]]:
    """Each list row's title label indices by id (the ``titles`` column; the catalog reader ignores it)."""
    import csv

    out: dict[str, tuple[int, ...]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    labels = tuple(int(v) for v in (row.get(TITLE_COLUMN) or "").split())
                except ValueError:
                    labels = (-1,)
                if any(not 0 <= v < n_titles for v in labels):
                    raise CatalogError(f'The dataset list "{path}" has a row with title labels that are not line '
                                       f"numbers of {TITLES_FILE} ({row.get(TITLE_COLUMN)!r}).")
                out[unescape_csv_cell(row.get("id") or "").strip()] = labels
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CatalogError(f'The dataset list "{path}" cannot be read ({exc}).') from None
    return out


def _triple(value) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CatalogError("The dataset's stats.json has no valid 3-channel mean/std.") from None
    return a, b, c



def _check_image(path: Path) -> str | None:
    """None when the image decodes, else the reason (small decode: JPEG draft mode keeps it fast)."""
    try:
        load_image(path, max_side=64)
    except ImageLoadError as exc:
        return str(exc)
    except Exception as exc:  # one odd file must not end a mining run over thousands
        logger.warning("Unexpected error decoding %s", path, exc_info=True)
        return f'Image file "{path}" could not be decoded ({exc.__class__.__name__}: {exc}).'
    return None


def _pixel_sums(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Per-channel sum and sum of squares (0..1) of the image resized to STATS_SIZE x STATS_SIZE."""
    try:
        img = load_image(path, max_side=STATS_SIZE)
    except Exception:  # checked moments ago; a file changed underneath is just left out
        logger.warning("Image %s could not be read for the statistics", path, exc_info=True)
        return None
    from PIL import Image

    arr = np.asarray(img.resize((STATS_SIZE, STATS_SIZE), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    pixels = arr.reshape(-1, 3)
    return pixels.sum(axis=0), np.square(pixels).sum(axis=0), pixels.shape[0]


def _map(pool: ThreadPoolExecutor | None, fn: Callable, items: Sequence) -> list:
    return list(pool.map(fn, items)) if pool is not None else [fn(x) for x in items]


def _split_counts(n: int, val_fraction: float) -> int:
    """Validation images of a class of n: the fraction rounded, at least 1 when n >= 2, never all."""
    if n < 2 or val_fraction <= 0:
        return 0
    return min(n - 1, max(1, round(n * val_fraction)))


@dataclass
class _Labels:
    """Every description's categories, and the unambiguous ones grouped by category."""

    matched: list[tuple[str, ...]]  # per catalog entry: the sorted categories its description names
    by_category: dict[str, list[int]]  # category -> entries naming it and nothing else
    ambiguous: list[int]  # entries naming two or more categories
    unmatched: int  # entries naming none


@dataclass
class _Selection:
    """The readable images kept per category, and what was left out on the way."""

    selected: dict[str, list[int]]  # category -> entries, in the category's seeded random order
    unreadable: list[tuple[str, str]]  # (id, reason) of images that did not decode
    too_few_readable: dict[str, int]  # category -> readable images, when below min_images


def mine_dataset(
    catalog_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    n_categories: int = 44,
    per_category: int = 800,
    keywords: str | os.PathLike[str] | KeywordSet | None = None,
    min_images: int = 10,
    val_fraction: float = 0.2,
    seed: int = 0,
    stats_images: int = 2000,
    workers: int = 2,
    allow_outside_root: bool = False,
    coherence: Embedder | None = None,
    min_coherence: float = MIN_COHERENCE,
    title_labels: int = 0,
    job: JobControl | None = None,
) -> MinedDataset:
    """Mine a labelled classification set from a catalog's descriptions and write it to a folder.

    Args:
        catalog_csv: Catalog CSV with ``id,path,description`` (its ``category`` column is not used).
        out_dir: Output folder (created; the dataset files in it are replaced).
        n_categories: Most categories to keep (those with the most matches).
        per_category: Most images per category (a seeded random sample).
        keywords: ``None`` to propose them with TF-IDF, ``"default"`` for the built-in list, a
            keyword file path, or a :class:`KeywordSet`.
        min_images: Categories with fewer usable images are dropped.
        val_fraction: Share of each class that goes to validation (at least one image per class
            of two or more).
        seed: Seed of the per-category sample, the split and the statistics sample.
        stats_images: Most images used for mean/std.
        workers: Threads decoding images.
        allow_outside_root: Accept catalog paths outside the CSV's folder.
        coherence: Image features (e.g. :func:`~beauty_app.training.coherence.backbone_embedder`)
            to measure each category's visual coherence with; proposed categories below
            ``min_coherence`` (proper names spread over unrelated products) are dropped, given
            keywords are only measured. ``None``: not measured.
        min_coherence: Least coherence score a proposed category keeps (see
            :func:`~beauty_app.training.coherence.category_coherence`).
        title_labels: Most title labels (frequent description n-grams, :mod:`.titles`; each needs
            ``min_images`` descriptions). Every readable image with one is kept, without a
            category when its description names none, several or a category over the cap (at most
            ``n_categories * per_category`` such images, a seeded sample). 0: off, the paper's rule
            (images without exactly one category are dropped).
        job: Optional progress/cancel control (stage ``"mine"``).

    Returns:
        The dataset as written.

    Raises:
        CatalogError: The catalog has no descriptions, the keywords are malformed, or no category
            keeps ``min_images`` readable images.
        UserError: An argument is out of range or the output folder cannot be written.
    """
    check_positive(n_categories=n_categories, per_category=per_category, min_images=min_images,
                   stats_images=stats_images, workers=workers)
    if not isinstance(title_labels, int) or title_labels < 0:
        raise UserError(f"The number of title labels must be a whole number of at least 0 (0 = off), not "
                        f"{title_labels!r}.")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"The validation fraction must be at least 0 and below 1, not {val_fraction}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f'The output "{out}" is a file; choose a folder for the mined dataset.')

    progress = StageProgress(job)
    catalog = read_catalog(catalog_csv, allow_outside_root=allow_outside_root)
    entries = list(catalog.entries)  # TF-IDF needs every description in memory anyway
    # Plan every phase up front (image counts estimated, corrected once known) so the one "mine"
    # stage never reaches its total before the end.
    check_estimate = min(len(entries), n_categories * per_category)
    stats_estimate = min(check_estimate, stats_images)
    progress.plan(len(entries) + check_estimate + stats_estimate + (len(entries) if title_labels else 0))
    descriptions = _read_descriptions(catalog_csv, entries)
    kw, keyword_source = _keywords_for(keywords, descriptions, n_categories, min_images, progress)
    titles = (make_title_labels(descriptions, max_labels=title_labels, min_images=min_images, progress=progress)
              if title_labels else None)
    if titles is not None and not titles.vocabulary:
        logger.warning("No description n-gram is in %d descriptions: mining without title labels", min_images)
        titles = None

    labels = _drop_ambiguous(_label(descriptions, kw, progress), kw)
    coherence_scores: dict[str, Coherence] = {}
    incoherent: list[str] = []
    if coherence is not None:
        coherence_scores = category_coherence(
            {n: [entries[i].path for i in ix] for n, ix in labels.by_category.items()},
            [e.path for e in entries], coherence, seed=seed)
        if keyword_source == "tfidf":
            kw, incoherent = drop_incoherent(kw, coherence_scores, min_coherence)
            if incoherent:  # their descriptions may now name one category only: label again
                progress.plan(len(entries))
                labels = _drop_ambiguous(_label(descriptions, kw, progress), kw)
    chosen, small, beyond_cap = _choose_categories(labels, kw, n_categories, min_images)
    progress.plan(sum(min(per_category, len(labels.by_category[n])) for n in chosen) - check_estimate)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mine") if workers > 1 else None
    try:
        selection = _sample_readable(entries, labels, chosen, per_category, min_images, seed, pool, progress)
        if not selection.selected:
            raise CatalogError(
                f"No category has at least {min_images} readable images whose description names it "
                f"({len(labels.ambiguous)} ambiguous, {labels.unmatched} unmatched of {len(entries)}); check the "
                "keywords or lower --min-images."
            )
        title_only, over_title_cap = (
            _readable_title_only(entries, titles, selection, n_categories * per_category, seed, pool, progress)
            if titles is not None else ([], 0))
        classes, train_ix, val_ix = _split(selection.selected, val_fraction, title_only, seed)
        kept = [i for ix in selection.selected.values() for i in ix] + title_only
        mean, std, n_used = _mean_std(entries, kept, stats_images, seed, stats_estimate, pool, progress)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)

    def samples(ix: list[tuple[int, int]]) -> list[MinedSample]:
        return [MinedSample(entries[i].id, entries[i].path, label, classes[label] if label >= 0 else "",
                            entries[i].description, titles.per_description[i] if titles is not None else ())
                for label, i in ix]

    train, val = samples(train_ix), samples(val_ix)
    counts = {name: {"train": sum(s.category == name for s in train), "val": sum(s.category == name for s in val),
                     "matched": len(labels.by_category[name])} for name in classes}
    stats = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION if titles is not None else 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_catalog": str(Path(catalog_csv).resolve()),
        "catalog_images": len(entries),
        "catalog_skipped": len(catalog.skipped),
        "keyword_source": keyword_source,
        "classes": classes,
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "stats_images": n_used,
        "stats_size": STATS_SIZE,
        "counts": counts,
        "split": {"train": len(train), "val": len(val), "val_fraction": val_fraction},
        "dropped": {
            "unmatched": labels.unmatched,
            "ambiguous": len(labels.ambiguous),
            "unreadable": len(selection.unreadable),
            "over_per_category": sum(max(0, len(labels.by_category[n]) - per_category) for n in selection.selected),
            "small_categories": small,
            "beyond_n_categories": beyond_cap,
            "too_few_readable": selection.too_few_readable,
            "incoherent": incoherent,
        },
        "coherence": {name: {"images": c.images, "within": round(c.within, 4), "baseline": round(c.baseline, 4),
                             "score": round(c.score, 4)} for name, c in coherence_scores.items()},
        "settings": {"n_categories": n_categories, "per_category": per_category, "min_images": min_images,
                     "val_fraction": val_fraction, "seed": seed, "stats_images": stats_images,
                     "title_labels": title_labels},
    }
    if titles is not None:
        with_category = len(train) + len(val) - len(title_only)
        stats["titles"] = {"file": TITLES_FILE, "labels": len(titles.vocabulary),
                           "images": dict(zip(titles.vocabulary, titles.images)),
                           "fragments_merged": len(titles.fragments)}
        stats["kept"] = {"with_category": with_category, "titles_only": len(title_only),
                         "dropped": len(entries) - with_category - len(title_only),
                         "over_titles_only_cap": over_title_cap}
    dataset = MinedDataset(out.absolute(), classes, train, val, _triple(stats["mean"]), _triple(stats["std"]),
                           stats, titles=list(titles.vocabulary) if titles is not None else [])
    report_md = (report_markdown(dataset, kw, entries, labels.matched, labels.ambiguous, selection.unreadable,
                                 catalog.skipped) + _coherence_markdown(coherence_scores, incoherent, min_coherence)
                 + (titles_markdown(dataset, titles) if titles is not None else ""))
    _write_dataset(out, dataset, kw, report_md, proposed=keyword_source == "tfidf")
    dataset.root = out.resolve()
    logger.info("Mined %d classes, %d train / %d val images into %s", len(classes), len(train), len(val), out)
    return dataset


def _readable_title_only(entries: Sequence[CatalogEntry], titles: TitleLabels, selection: _Selection, cap: int,
                         seed: int, pool: ThreadPoolExecutor | None, progress: StageProgress) -> tuple[list[int], int]:
    """The images kept for their title labels only: the others with a title label that decode.

    At most ``cap`` of them (a seeded sample), so that a huge catalog does not make a set many
    times the category images (every kept image gets pseudo masks before training).

    Returns:
        The kept entries (sorted), and how many readable candidates were left over the cap.
    """
    taken = {i for ix in selection.selected.values() for i in ix}
    unreadable = {item for item, _ in selection.unreadable}
    candidates = [i for i, found in enumerate(titles.per_description)
                  if found and i not in taken and entries[i].id not in unreadable]
    order = [candidates[k] for k in np.random.default_rng([seed, 3]).permutation(len(candidates))]
    progress.plan(min(cap, len(order)))
    kept, pos = _take_readable(entries, order, cap, pool, selection.unreadable, progress,
                               "checking images with title labels", max_batch=256)
    return sorted(kept), len(order) - pos


def _coherence_markdown(scores: dict[str, Coherence], dropped: list[str], min_score: float) -> str:
    """The report's table of visual coherence per category (empty when it was not measured)."""
    if not scores:
        return ""
    lines = ["", "## Visual coherence", "",
             "Mean pairwise cosine of each category's images (off-the-shelf features) against random catalog "
             f"images; score 0 = as alike as chance, 1 = identical. Proposed categories under {min_score:g} "
             "are dropped (a name spread over unrelated products is a poor category).", "",
             "| category | images | within | random | score | |", "|---|---:|---:|---:|---:|---|"]
    for name, c in sorted(scores.items(), key=lambda item: -item[1].score):
        lines.append(f"| {name} | {c.images} | {c.within:.3f} | {c.baseline:.3f} | {c.score:.3f} | "
                     f"{'dropped' if name in dropped else ''} |")
    return "\n".join(lines) + "\n"


def _read_descriptions(catalog_csv: str | os.PathLike[str], entries: Sequence[CatalogEntry]) -> list[str]:
    """Read: every entry's description; a catalog without any cannot be mined."""
    descriptions = [e.description for e in entries]
    if not any(d.strip() for d in descriptions):
        raise CatalogError(
            f'Catalog "{catalog_csv}" has no product descriptions to mine categories from (its description '
            "column is missing or empty)."
        )
    return descriptions


def _keywords_for(keywords: str | os.PathLike[str] | KeywordSet | None, descriptions: Sequence[str],
                  n_categories: int, min_images: int, progress: StageProgress) -> tuple[KeywordSet, str]:
    """The keywords to mine with and their source (``tfidf``, ``given``, ``default`` or a file path)."""
    if keywords is None:
        return propose_categories(descriptions, n_categories, min_images, "default", progress), "tfidf"
    if isinstance(keywords, KeywordSet):
        return keywords, "given"
    if str(keywords) == "default":
        return KeywordSet.default(), "default"
    return KeywordSet.load(keywords), str(Path(keywords).resolve())


def _label(descriptions: Sequence[str], kw: KeywordSet, progress: StageProgress) -> list[tuple[str, ...]]:
    """Label: the sorted categories each description names (the rules of :mod:`.keywords`)."""
    matcher = PhraseMatcher(kw)
    matched: list[tuple[str, ...]] = []
    for start in range(0, len(descriptions), 512):
        chunk = descriptions[start:start + 512]
        matched += [tuple(sorted(matcher.match(split_clauses(d)))) for d in chunk]
        progress.step(len(chunk), "matching descriptions")
    return matched


def _drop_ambiguous(matched: list[tuple[str, ...]], kw: KeywordSet) -> _Labels:
    """Drop ambiguous: group the descriptions naming exactly one category; count the others."""
    by_category: dict[str, list[int]] = {name: [] for name in kw.categories}
    ambiguous: list[int] = []
    unmatched = 0
    for i, found in enumerate(matched):
        if len(found) == 1:
            by_category[found[0]].append(i)
        elif found:
            ambiguous.append(i)
        else:
            unmatched += 1
    return _Labels(matched, by_category, ambiguous, unmatched)


def _choose_categories(labels: _Labels, kw: KeywordSet, n_categories: int,
                       min_images: int) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """The ``n_categories`` largest categories with ``min_images`` matches (ties: keyword order).

    Returns:
        The chosen names, and ``{name: matches}`` of the too small and of those beyond the cap.
    """
    by_category = labels.by_category
    rank = {name: r for r, name in enumerate(kw.categories)}
    small = {n: len(ix) for n, ix in by_category.items() if 0 < len(ix) < min_images}
    big = sorted((n for n, ix in by_category.items() if len(ix) >= min_images),
                 key=lambda n: (-len(by_category[n]), rank[n]))
    beyond_cap = {n: len(by_category[n]) for n in big[n_categories:]}
    return big[:n_categories], small, beyond_cap


def _take_readable(entries: Sequence[CatalogEntry], order: Sequence[int], want: int, pool: ThreadPoolExecutor | None,
                   unreadable: list[tuple[str, str]], progress: StageProgress, what: str,
                   max_batch: int | None = None) -> tuple[list[int], int]:
    """The first `want` entries of `order` that decode, checked a batch at a time (only as many as still
    needed); the others are added to `unreadable` with the reason. Returns them and how far `order` was read."""
    good: list[int] = []
    pos = 0
    while len(good) < want and pos < len(order):
        size = want - len(good) if max_batch is None else min(max_batch, want - len(good))
        batch = order[pos:pos + size]
        pos += len(batch)
        for idx, problem in zip(batch, _map(pool, _check_image, [entries[i].path for i in batch])):
            if problem is None:
                good.append(idx)
            else:
                unreadable.append((entries[idx].id, problem))
        progress.step(len(batch), what)
    return good, pos


def _sample_readable(entries: Sequence[CatalogEntry], labels: _Labels, chosen: list[str], per_category: int,
                     min_images: int, seed: int, pool: ThreadPoolExecutor | None,
                     progress: StageProgress) -> _Selection:
    """Sample each chosen category (seeded per name), replacing unreadable images by further matches."""
    selection = _Selection({}, [], {})
    for name in chosen:
        order = list(labels.by_category[name])
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        order = [order[k] for k in rng.permutation(len(order))]
        good, _ = _take_readable(entries, order, min(per_category, len(order)), pool, selection.unreadable,
                                 progress, f"checking images of {name!r}")
        if len(good) < min_images:
            selection.too_few_readable[name] = len(good)
        else:
            selection.selected[name] = good
    return selection


def _split(selected: dict[str, list[int]], val_fraction: float, title_only: Sequence[int] = (),
           seed: int = 0) -> tuple[list[str], list[tuple[int, int]], list[tuple[int, int]]]:
    """Stratified split: the first n_val of each class's random order go to validation.

    The title-only images (label :data:`NO_CATEGORY`) are one more group, in a seeded random order.

    Returns:
        The class names (sorted; a label is an index), and sorted ``(label, entry)`` pairs of train and val.
    """
    classes = sorted(selected)
    train_ix: list[tuple[int, int]] = []
    val_ix: list[tuple[int, int]] = []
    groups = [(label, selected[name]) for label, name in enumerate(classes)]
    if title_only:
        order = np.random.default_rng([seed, 2]).permutation(len(title_only))
        groups.append((NO_CATEGORY, [title_only[k] for k in order]))
    for label, members in groups:
        n_val = _split_counts(len(members), val_fraction)
        val_ix += [(label, i) for i in members[:n_val]]
        train_ix += [(label, i) for i in members[n_val:]]
    train_ix.sort()
    val_ix.sort()
    return classes, train_ix, val_ix


def _mean_std(entries: Sequence[CatalogEntry], kept: Sequence[int], stats_images: int, seed: int,
              stats_estimate: int, pool: ThreadPoolExecutor | None,
              progress: StageProgress) -> tuple[np.ndarray, np.ndarray, int]:
    """Statistics: per-channel mean and std on a seeded sample of all mined images, and the images used."""
    everything = sorted(kept)
    rng = np.random.default_rng([seed, 1])
    sample = sorted(rng.choice(len(everything), size=min(stats_images, len(everything)), replace=False))
    paths = [entries[everything[k]].path for k in sample]
    progress.plan(len(paths) - stats_estimate)
    total, total_sq, n_pixels, n_used = np.zeros(3), np.zeros(3), 0, 0
    for start in range(0, len(paths), 64):
        for result in _map(pool, _pixel_sums, paths[start:start + 64]):
            if result is not None:
                total, total_sq = total + result[0], total_sq + result[1]
                n_pixels += result[2]
                n_used += 1
        progress.step(len(paths[start:start + 64]), "measuring mean and std")
    if not n_used:  # every sampled image vanished or changed between the check and now
        raise CatalogError("None of the mined images could be read again to measure their mean and std.")
    mean = total / n_pixels
    std = np.sqrt(np.maximum(total_sq / n_pixels - mean**2, 0.0))
    return mean, std, n_used


def _write_dataset(out: Path, dataset: MinedDataset, kw: KeywordSet, report_md: str, proposed: bool) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        # stats.json marks a complete dataset: remove it first so a failed rewrite is never mistaken
        # for a finished one, and write it last.
        (out / "stats.json").unlink(missing_ok=True)
        atomic_write_text(out / "classes.txt", "".join(f"{c}\n" for c in dataset.classes))
        if dataset.has_titles:
            atomic_write_text(out / TITLES_FILE, "".join(f"{t}\n" for t in dataset.titles))
            for name, rows in (("train.csv", dataset.train), ("val.csv", dataset.val)):
                write_csv(out / name, (*LIST_COLUMNS, TITLE_COLUMN),
                          ([s.id, str(s.path), s.label, s.category, s.description, " ".join(map(str, s.titles))]
                           for s in rows))
        else:
            (out / TITLES_FILE).unlink(missing_ok=True)
            for name, rows in (("train.csv", dataset.train), ("val.csv", dataset.val)):
                write_csv(out / name, LIST_COLUMNS,
                          ([s.id, str(s.path), s.label, s.category, s.description] for s in rows))
        source = dataset.stats["keyword_source"]
        header = (f"Keywords used to mine {out.name} (source: {source}); edit and re-run "
                  "`beauty-app dataset mine --keywords FILE`.")
        kw.save(out / "keywords.txt", header)
        if proposed:
            kw.save(out / "proposed_keywords.txt", "Categories proposed by TF-IDF over the catalog descriptions; "
                    "edit and re-run `beauty-app dataset mine --keywords FILE`.")
        else:
            (out / "proposed_keywords.txt").unlink(missing_ok=True)
        atomic_write_text(out / "report.md", report_md)
        atomic_write_text(out / "stats.json", json.dumps(dataset.stats, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UserError(f'Could not write the mined dataset to "{out}" ({exc.strerror or exc}).') from None
