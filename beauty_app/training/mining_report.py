"""The ``report.md`` of a mined dataset: categories, counts, examples, and what was dropped and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from beauty_app.catalog_io import CatalogEntry
from beauty_app.training.keywords import KeywordSet

if TYPE_CHECKING:  # mining imports this module to write its report
    from beauty_app.training.mining import MinedDataset
    from beauty_app.training.titles import TitleLabels

TOP_TITLE_LABELS = 40
"""Title labels listed in the report (all of them are in ``titles.txt``)."""


def _md(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def report_markdown(ds: MinedDataset, kw: KeywordSet, entries: list[CatalogEntry],
                    matched: list[tuple[str, ...]], ambiguous: list[int],
                    unreadable: list[tuple[str, str]], catalog_skipped: list[tuple[str, str]]) -> str:
    """The Markdown report of a mined dataset, from its ``stats.json`` content and the mining's leftovers.

    Args:
        ds: The dataset (its ``stats`` hold the counts and settings).
        kw: The keywords used.
        entries: The catalog entries, indexed like ``matched``.
        matched: Every entry's categories.
        ambiguous: Entries naming two or more categories.
        unreadable: ``(id, reason)`` of images that did not decode.
        catalog_skipped: ``(item, reason)`` of rows the catalog reader skipped.
    """
    s = ds.stats
    d = s["dropped"]
    source = {"tfidf": "proposed by TF-IDF over the descriptions (see `proposed_keywords.txt`)",
              "default": "the built-in list (`default_keywords.txt`)",
              "given": "given by the caller"}.get(s["keyword_source"], f"`{s['keyword_source']}`")
    mean = ", ".join(f"{v:.4f}" for v in ds.mean)
    std = ", ".join(f"{v:.4f}" for v in ds.std)
    lines = [
        f"# Mined dataset: {len(ds.classes)} categories, {len(ds.train) + len(ds.val)} images",
        "",
        f"- Source catalog: `{s['source_catalog']}` ({s['catalog_images']} images"
        + (f", {s['catalog_skipped']} rows skipped by the catalog reader" if s["catalog_skipped"] else "") + ")",
        f"- Keywords: {source}; the ones used are in `keywords.txt`",
        (f"- Settings: at most {s['settings']['n_categories']} categories, at most "
         f"{s['settings']['per_category']} images each, at least {s['settings']['min_images']} images, "
         f"validation fraction {s['settings']['val_fraction']}, seed {s['settings']['seed']}"),
        f"- Split: {len(ds.train)} train, {len(ds.val)} val (stratified per class)",
        f"- RGB mean {mean}; std {std} (from {s['stats_images']} images at {s['stats_size']}x{s['stats_size']})",
        f"- Created {s['created']}",
        "",
        ("Several views of one product may land in both train and val: the catalog has no product ids "
         "to group them by."),
        "",
        "## Categories",
        "",
        "| label | category | images | train | val | matched | keywords |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for label, name in enumerate(ds.classes):
        c = s["counts"][name]
        lines.append(f"| {label} | {_md(name)} | {c['train'] + c['val']} | {c['train']} | {c['val']} | "
                     f"{c['matched']} | {_md(', '.join(kw.categories[name]), 120)} |")
    lines += ["", "## Examples", ""]
    for name in ds.classes:
        examples = [x.description for x in (ds.train + ds.val) if x.category == name][:3]
        lines.append(f"### {name}")
        lines += [f"- {_md(e)}" for e in examples] or ["- (no description)"]
        lines.append("")
    lines += ["## Dropped", ""]
    fate = ("; they are kept without a category when they have a title label (see below)" if "kept" in s
            else " and were left out")
    lines.append(f"- {d['unmatched']} descriptions name no category" + (fate if "kept" in s else "") + ".")
    lines.append(f"- {d['ambiguous']} descriptions name two or more categories (ambiguous){fate}.")
    for i in ambiguous[:10]:
        lines.append(f"  - {_md(entries[i].description, 120)} \u2192 {', '.join(matched[i])}")
    if d["over_per_category"]:
        lines.append(f"- {d['over_per_category']} matching images were over the per-category cap.")
    if d["small_categories"]:
        listed = ", ".join(f"{n} ({c})" for n, c in sorted(d["small_categories"].items(), key=lambda x: -x[1]))
        lines.append(f"- Categories with fewer than {s['settings']['min_images']} matching images, dropped: {listed}.")
    if d["beyond_n_categories"]:
        listed = ", ".join(f"{n} ({c})" for n, c in d["beyond_n_categories"].items())
        lines.append(f"- Categories beyond the {s['settings']['n_categories']} largest, dropped: {listed}.")
    if d["too_few_readable"]:
        listed = ", ".join(f"{n} ({c})" for n, c in d["too_few_readable"].items())
        lines.append(f"- Categories with too few readable images, dropped: {listed}.")
    lines.append(f"- {len(unreadable)} images could not be read and were replaced by other matches where possible.")
    for item, reason in unreadable[:200]:
        lines.append(f"  - {_md(item, 60)}: {_md(reason, 200)}")
    if len(unreadable) > 200:
        lines.append(f"  - ... and {len(unreadable) - 200} more")
    if catalog_skipped:
        lines.append(f"- {len(catalog_skipped)} catalog rows were skipped by the catalog reader:")
        for item, reason in catalog_skipped[:50]:
            lines.append(f"  - {_md(item, 60)}: {_md(reason, 200)}")
        if len(catalog_skipped) > 50:
            lines.append(f"  - ... and {len(catalog_skipped) - 50} more")
    return "\n".join(lines) + "\n"


def titles_markdown(ds: MinedDataset, titles: TitleLabels) -> str:
    """The report's section on title labels: images kept with a category, with title labels only, dropped."""
    kept = ds.stats["kept"]
    total = ds.stats["catalog_images"]
    lines = [
        "", "## Title labels", "",
        (f"{len(titles.vocabulary)} title labels (description n-grams of 1 to 3 words, each in at least "
         f"{ds.stats['settings']['min_images']} descriptions; all in `titles.txt`). "
         f"{titles.labelled} of {total} descriptions have one."), "",
        f"- Kept with a category: {kept['with_category']} images",
        f"- Kept with title labels only (no category, ignored by the category loss): {kept['titles_only']} images",
        f"- Dropped (no category and no title label, unreadable, or over a cap): {kept['dropped']} images",
    ]
    if kept.get("over_titles_only_cap"):
        lines.append(f"  - {kept['over_titles_only_cap']} images with title labels only were over the cap of "
                     f"{ds.stats['settings']['n_categories'] * ds.stats['settings']['per_category']} such images "
                     "(categories x images per category).")
    if titles.fragments:
        merged = ", ".join(f"{_md(a, 40)} \u2192 {_md(b, 40)}" for a, b in list(titles.fragments.items())[:10])
        lines.append(f"- {len(titles.fragments)} cut-off n-grams joined the label they were cut from: {merged}"
                     + (", ..." if len(titles.fragments) > 10 else ""))
    lines += ["", f"Top {min(TOP_TITLE_LABELS, len(titles.vocabulary))} title labels:", "",
              "| label | title | images |", "|---:|---|---:|"]
    for index, (name, count) in enumerate(zip(titles.vocabulary[:TOP_TITLE_LABELS], titles.images)):
        lines.append(f"| {index} | {_md(name, 80)} | {count} |")
    return "\n".join(lines) + "\n"
