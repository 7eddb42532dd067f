"""Do the attention maps look at the product and its text on real photos? Scores against boxes.

For each photo the app's own maps (:meth:`FeatureExtractor.analyze`, the maps the search tab
shows) are compared with boxes:

* the **saliency** map with hand-drawn *product* boxes (``tests/data/real_photo_boxes.csv`` for the
  50 real photos in ``shared/data/real_photos``);
* the **text** map with *text* boxes found by PP-OCR's detector
  (:mod:`beauty_app.training.text_detection`), on the photos where it finds text.

Per map and photo (:class:`MapScore`): the share of the map's mass inside the union of boxes, the
boxes' share of the image area, their ratio (1 = no better than spreading the mass evenly), the
pointing game (does the map's maximum fall in a box), the peak value and the centre of mass. The
same is computed for a **centre Gaussian** (σ = :data:`CENTRE_SIGMA` of the image's width and of its
height), the prior a map must beat to be looking at the photo at all. :func:`summarise` gives means
with standard errors over the photos.

How the product boxes were drawn: axis-aligned, relative (0..1) ``photo,x0,y0,x1,y1`` rows around
each product as sold (packaging included, several products give several rows); a bottle's cap and
body, or a long product lying diagonally, as two or three boxes so the union stays tight; hands,
faces, props and advertising text outside the product are left out.

Command line: ``beauty-app bench maps --photos DIR [--boxes CSV] [--model M] [--out DIR]``
(:mod:`beauty_app.cli.bench`).

No Qt here.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..fileio import atomic_write_bytes, atomic_write_text
from ..errors import UserError
from ..jobs import JobControl, report

log = logging.getLogger(__name__)

#: Standard deviation of the centre-Gaussian baseline, as a fraction of the image width (x) and height (y).
CENTRE_SIGMA = 0.25

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), relative 0..1


# ----------------------------------------------------------------------------- boxes
def read_boxes(path: str | os.PathLike[str]) -> dict[str, list[Box]]:
    """Product boxes from a ``photo,x0,y0,x1,y1`` CSV (relative coordinates): ``{photo file name: boxes}``.

    Raises:
        UserError: the file is missing or a row is not a box inside the unit square.
    """
    path = Path(path)
    boxes: dict[str, list[Box]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"photo", "x0", "y0", "x1", "y1"} - set(reader.fieldnames or ())
            if missing:
                raise UserError(f"The box file {path} needs the columns photo,x0,y0,x1,y1 "
                                f"(missing: {', '.join(sorted(missing))}).")
            for line, row in enumerate(reader, start=2):
                try:
                    box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
                except (TypeError, ValueError):
                    raise UserError(f"Line {line} of {path} has a coordinate that is not a number.") from None
                x0, y0, x1, y1 = box
                if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                    raise UserError(f"Line {line} of {path} is not a box inside the image "
                                    f"(relative coordinates with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1).")
                boxes.setdefault(row["photo"].strip(), []).append(box)
    except OSError as exc:
        raise UserError(f"The box file {path} cannot be read ({exc.strerror or exc}).") from None
    return boxes


def box_mask(boxes: Sequence[Box], size: tuple[int, int]) -> np.ndarray:
    """Union of relative boxes as a bool mask of ``size`` = (width, height)."""
    width, height = size
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        left, right = int(round(x0 * width)), max(int(round(x1 * width)), int(round(x0 * width)) + 1)
        top, bottom = int(round(y0 * height)), max(int(round(y1 * height)), int(round(y0 * height)) + 1)
        mask[top:bottom, left:right] = True
    return mask


def centre_gaussian(size: tuple[int, int], sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """A centred Gaussian over ``size`` = (width, height), peak 1, σ = ``sigma`` x width and x height."""
    width, height = size
    x = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    y = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2)).astype(np.float32)


def to_size(attention: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map of any resolution resized bilinearly to ``size`` = (width, height), negatives cut to 0."""
    attention = np.asarray(attention, dtype=np.float32)
    width, height = size
    if attention.shape != (height, width):
        attention = cv2.resize(attention, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.nan_to_num(attention, nan=0.0), 0, None)


# ----------------------------------------------------------------------------- scores
@dataclass(frozen=True)
class MapScore:
    """How one map sits on one photo's boxes.

    Attributes:
        mass_inside: share of the map's total mass inside the union of boxes (NaN for an all-zero map).
        area_share: share of the image the union covers.
        ratio: ``mass_inside / area_share``; 1 is what a flat map scores.
        pointing: the map's maximum (first in raster order) lies inside a box.
        peak: the map's maximum value.
        centre_x, centre_y: the map's centre of mass, relative (0..1).
    """

    mass_inside: float
    area_share: float
    ratio: float
    pointing: bool
    peak: float
    centre_x: float
    centre_y: float


def score_map(attention: np.ndarray, inside: np.ndarray) -> MapScore:
    """Score a map against a box mask of the photo's size (the map is resized to it first)."""
    height, width = inside.shape
    heat = to_size(attention, (width, height))
    total = float(heat.sum(dtype=np.float64))
    area = float(inside.mean())
    peak = float(heat.max()) if heat.size else 0.0
    if total <= 0:
        return MapScore(math.nan, area, math.nan, False, peak, math.nan, math.nan)
    mass = float(heat[inside].sum(dtype=np.float64)) / total
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    cx = float((heat.sum(axis=0, dtype=np.float64) * xs).sum() / total)
    cy = float((heat.sum(axis=1, dtype=np.float64) * ys).sum() / total)
    return MapScore(mass, area, mass / area if area > 0 else math.nan, bool(inside[row, col]), peak, cx, cy)


@dataclass
class PhotoMaps:
    """One photo's maps scored against its product boxes and its OCR text boxes.

    A score is None when there is nothing to score against (no product boxes, no text found, or the
    model has no such map); ``saliency_peak``/``text_peak`` are there whenever the map is.
    """

    photo: str
    size: tuple[int, int]
    product_boxes: int
    text_boxes: int
    saliency: MapScore | None = None  # saliency map vs product boxes
    saliency_centre: MapScore | None = None  # centre Gaussian vs product boxes
    text: MapScore | None = None  # text map vs OCR text boxes
    text_centre: MapScore | None = None  # centre Gaussian vs OCR text boxes
    text_on_products: MapScore | None = None  # text map vs product boxes (text lies on products)
    saliency_peak: float | None = None
    text_peak: float | None = None
    product_centre: tuple[float, float] | None = None  # centre of the product boxes' union, relative


def analyse_photo(extractor, image: Image.Image, product_boxes: Sequence[Box] = (), *,
                  detector=None, name: str = "photo") -> tuple[PhotoMaps, dict]:
    """Score the app's maps of one decoded photo.

    Args:
        extractor: a :class:`beauty_app.retrieval.extractor.FeatureExtractor`; its ``analyze`` gives
            the maps exactly as the app shows them.
        product_boxes: relative boxes of the products in the photo (may be empty).
        detector: a :class:`beauty_app.training.text_detection.TextDetector`, or None to skip text.

    Returns:
        The scores, and the drawing material for the contact sheet
        (``{"image", "saliency", "text", "product_boxes", "text_polygons"}``).
    """
    analysis = extractor.analyze(image)
    rgb = np.asarray(image.convert("RGB"))
    size = image.size
    products = box_mask(product_boxes, size) if product_boxes else None
    polygons: list[np.ndarray] = []
    text_inside = None
    if detector is not None:
        found = detector.detect(rgb)
        polygons = [box.points for box in found.boxes]
        if polygons:
            text_inside = found.mask() > 0
    centre = centre_gaussian(size)
    result = PhotoMaps(name, size, len(product_boxes), len(polygons))
    if analysis.saliency is not None:
        result.saliency_peak = float(analysis.saliency.max())
    if analysis.text is not None:
        result.text_peak = float(analysis.text.max())
    if products is not None:
        union = score_map(products.astype(np.float32), products)
        result.product_centre = (union.centre_x, union.centre_y)
        result.saliency_centre = score_map(centre, products)
        if analysis.saliency is not None:
            result.saliency = score_map(analysis.saliency, products)
        if analysis.text is not None:
            result.text_on_products = score_map(analysis.text, products)
    if text_inside is not None:
        result.text_centre = score_map(centre, text_inside)
        if analysis.text is not None:
            result.text = score_map(analysis.text, text_inside)
    drawing = {"image": rgb, "saliency": analysis.saliency, "text": analysis.text,
               "product_boxes": list(product_boxes), "text_polygons": polygons}
    return result, drawing


# ----------------------------------------------------------------------------- summary
def _mean_se(values: Sequence[float]) -> dict:
    """Mean, standard error of the mean and count of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return {"mean": math.nan, "se": math.nan, "n": 0}
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return {"mean": float(v.mean()), "se": se, "n": int(v.size)}


def summarise_scores(scores: Sequence[MapScore]) -> dict:
    """Means and standard errors of one map's scores over photos, and where its centre of mass lies."""
    scores = [s for s in scores if s is not None]
    out = {name: _mean_se([getattr(s, name) for s in scores])
           for name in ("mass_inside", "area_share", "ratio", "peak")}
    out["pointing"] = _mean_se([float(s.pointing) for s in scores])
    mass, area = out["mass_inside"]["mean"], out["area_share"]["mean"]
    out["ratio_of_means"] = mass / area if area and math.isfinite(area) else math.nan
    cx = np.asarray([s.centre_x for s in scores if math.isfinite(s.centre_x)])
    cy = np.asarray([s.centre_y for s in scores if math.isfinite(s.centre_y)])
    out["centre_of_mass"] = {
        "x": {"mean": float(cx.mean()), "sd": float(cx.std()), "min": float(cx.min()), "max": float(cx.max())}
        if cx.size else None,
        "y": {"mean": float(cy.mean()), "sd": float(cy.std()), "min": float(cy.min()), "max": float(cy.max())}
        if cy.size else None,
    }
    return out


def following(photos: Sequence[PhotoMaps]) -> dict:
    """Does the saliency's centre of mass move with the products? Per axis, the least-squares slope of
    the map's centre of mass on the product boxes' centre (1: follows them, 0: stays put) and the correlation."""
    pairs = [(p.product_centre, (p.saliency.centre_x, p.saliency.centre_y)) for p in photos
             if p.product_centre is not None and p.saliency is not None and math.isfinite(p.saliency.centre_x)]
    out: dict = {"photos": len(pairs)}
    for axis, name in enumerate(("x", "y")):
        product = np.asarray([pc[axis] for pc, _ in pairs])
        mapped = np.asarray([mc[axis] for _, mc in pairs])
        if len(pairs) < 3 or product.std() == 0:
            out[name] = {"slope": math.nan, "correlation": math.nan}
            continue
        slope = float(np.polyfit(product, mapped, 1)[0])
        correlation = float(np.corrcoef(product, mapped)[0, 1]) if mapped.std() > 0 else math.nan
        out[name] = {"slope": slope, "correlation": correlation}
    return out


def summarise(photos: Sequence[PhotoMaps]) -> dict:
    """The bench's numbers over all photos (see the module docstring for what each one means)."""
    pick = {name: [getattr(p, name) for p in photos if getattr(p, name) is not None]
            for name in ("saliency", "saliency_centre", "text", "text_centre", "text_on_products")}
    summary = {name: summarise_scores(scores) | {"photos": len(scores)} for name, scores in pick.items()}
    summary["saliency_peak"] = _mean_se([p.saliency_peak for p in photos])
    summary["text_peak"] = _mean_se([p.text_peak for p in photos])
    summary["photos"] = len(photos)
    summary["photos_with_text"] = sum(1 for p in photos if p.text_boxes)
    summary["centre_sigma"] = CENTRE_SIGMA
    summary["saliency_follows_products"] = following(photos)
    sal, gauss = summary["saliency"]["mass_inside"]["mean"], summary["saliency_centre"]["mass_inside"]["mean"]
    summary["saliency_mass_vs_centre"] = sal / gauss if gauss and math.isfinite(gauss) else math.nan
    return summary


def _fmt(stat: dict, percent: bool = False) -> str:
    if not stat or not math.isfinite(stat.get("mean", math.nan)):
        return "-"
    scale = 100 if percent else 1
    se = stat.get("se", math.nan)
    unit = "%" if percent else ""
    return (f"{stat['mean'] * scale:.{0 if percent else 2}f}{unit}"
            + (f" ± {se * scale:.{0 if percent else 2}f}" if math.isfinite(se) else ""))


def format_summary(summary: Mapping) -> str:
    """A short plain-text table of :func:`summarise`'s numbers (mean ± standard error)."""
    lines = [f"{summary['photos']} photos, {summary['photos_with_text']} with text found by the detector; "
             f"centre Gaussian sigma = {summary['centre_sigma']} of width and height",
             f"{'map vs boxes':<28}{'photos':>7}{'mass in':>14}{'area':>12}{'ratio':>13}{'pointing':>12}"]
    for key, label in (("saliency", "saliency vs products"), ("saliency_centre", "centre Gaussian vs products"),
                       ("text", "text map vs OCR boxes"), ("text_centre", "centre Gaussian vs OCR boxes"),
                       ("text_on_products", "text map vs products")):
        s = summary[key]
        lines.append(f"{label:<28}{s['photos']:>7}{_fmt(s['mass_inside']):>14}{_fmt(s['area_share']):>12}"
                     f"{_fmt(s['ratio']):>13}{_fmt(s['pointing'], True):>12}")
    lines.append(f"saliency mass in products / centre Gaussian's: {summary['saliency_mass_vs_centre']:.2f}")
    com = summary["saliency"]["centre_of_mass"]
    if com["x"]:
        lines.append("saliency centre of mass: x {:.2f}..{:.2f} (sd {:.2f}), y {:.2f}..{:.2f} (sd {:.2f})".format(
            com["x"]["min"], com["x"]["max"], com["x"]["sd"], com["y"]["min"], com["y"]["max"], com["y"]["sd"]))
    follow = summary["saliency_follows_products"]
    lines.append("saliency centre of mass vs product centre ({} photos): slope x {:.2f} (r {:.2f}), "
                 "y {:.2f} (r {:.2f}); 1 follows the product, 0 stays put".format(
                     follow["photos"], follow["x"]["slope"], follow["x"]["correlation"],
                     follow["y"]["slope"], follow["y"]["correlation"]))
    lines.append(f"map peaks: saliency {_fmt(summary['saliency_peak'])}, text {_fmt(summary['text_peak'])}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- contact sheet
_PANEL = 170
_CAPTION = 30
PRODUCT_COLOUR = (40, 220, 40)
TEXT_COLOUR = (255, 140, 0)


def _panel(rgb: np.ndarray, product_boxes: Sequence[Box], polygons: Sequence[np.ndarray],
           heat: np.ndarray | None, side: int = _PANEL) -> Image.Image:
    """One photo, optionally under a heatmap (the app's overlay), with its product and text boxes, fit in a square."""
    from ..visualize import overlay

    height, width = rgb.shape[:2]
    canvas = overlay(rgb, heat, opacity=0.55) if heat is not None else rgb.copy()
    scale = side / max(width, height)
    tile = Image.fromarray(canvas).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                          Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(tile)
    for polygon in polygons:
        draw.polygon([(float(x) * scale, float(y) * scale) for x, y in polygon], outline=TEXT_COLOUR)
    for x0, y0, x1, y1 in product_boxes:
        draw.rectangle((x0 * tile.width, y0 * tile.height, x1 * tile.width - 1, y1 * tile.height - 1),
                       outline=PRODUCT_COLOUR, width=2)
    square = Image.new("RGB", (side, side), (30, 30, 30))
    square.paste(tile, ((side - tile.width) // 2, (side - tile.height) // 2))
    return square


def contact_sheet(rows: Sequence[tuple[PhotoMaps, dict]], out_png: str | os.PathLike[str], *,
                  columns: int = 2) -> Path:
    """A PNG with, per photo: the photo with product (green) and OCR text (orange) boxes, the saliency
    overlay, the text overlay on the app's fixed 0..1 scale, and the text map stretched to its own peak.

    Raises:
        UserError: there is nothing to draw, or the PNG cannot be written.
    """
    if not rows:
        raise UserError("There are no photos to put on the maps contact sheet.")
    cell_w, cell_h = 4 * _PANEL, _PANEL + _CAPTION
    cols = min(columns, len(rows))
    sheet = Image.new("RGB", (cols * cell_w, math.ceil(len(rows) / cols) * cell_h), (45, 45, 45))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, (scores, drawing) in enumerate(rows):
        x, y = (k % cols) * cell_w, (k // cols) * cell_h
        rgb, boxes, polygons = drawing["image"], drawing["product_boxes"], drawing["text_polygons"]
        text = drawing["text"]
        stretched = text / text.max() if text is not None and text.max() > 0 else None
        for j, heat in enumerate((None, drawing["saliency"], text, stretched)):
            sheet.paste(_panel(rgb, boxes, polygons, heat), (x + j * _PANEL, y))
        sal = scores.saliency
        txt = scores.text
        caption = (f"{scores.photo}  saliency: mass in products "
                   f"{'-' if sal is None else f'{sal.mass_inside:.2f} (area {sal.area_share:.2f})'}, "
                   f"peak {scores.saliency_peak if scores.saliency_peak is not None else float('nan'):.2f}")
        caption2 = (f"text: {scores.text_boxes} OCR boxes, mass in them "
                    f"{'-' if txt is None else f'{txt.mass_inside:.2f} (area {txt.area_share:.2f})'}, "
                    f"peak {scores.text_peak if scores.text_peak is not None else float('nan'):.2f}"
                    f"  | panels: photo, saliency, text, text / its peak")
        draw.text((x + 4, y + _PANEL + 2), caption, fill=(230, 230, 230), font=font)
        draw.text((x + 4, y + _PANEL + 15), caption2, fill=(230, 230, 230), font=font)
    return _write_png(sheet, out_png, "contact sheet")


_FIGURE_PANEL = 300


def maps_figure(rows: Sequence[tuple[PhotoMaps, dict]], out_png: str | os.PathLike[str]) -> Path:
    """A PNG for documents: per photo, the photo, its saliency map and its text map as the app overlays
    them (fixed 0..1 scale, turbo colours), with the colour scale at the bottom.

    Raises:
        UserError: there is nothing to draw, or the PNG cannot be written.
    """
    from ..visualize import colour_bar

    if not rows:
        raise UserError("None of the photos named for the figure is among the photos.")
    side, caption = _FIGURE_PANEL, 18
    legend_h = 34
    sheet = Image.new("RGB", (3 * side, len(rows) * (side + caption) + legend_h), (45, 45, 45))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for k, (scores, drawing) in enumerate(rows):
        y = k * (side + caption)
        labels = (scores.photo, f"saliency (peak {scores.saliency_peak or 0:.2f})",
                  f"text (peak {scores.text_peak or 0:.2f})")
        for j, heat in enumerate((None, drawing["saliency"], drawing["text"])):
            sheet.paste(_panel(drawing["image"], (), (), heat, side=side), (j * side, y))
            draw.text((j * side + 6, y + side + 2), labels[j], fill=(230, 230, 230), font=font)
    bar_y = len(rows) * (side + caption) + 4
    bar = Image.fromarray(colour_bar(3 * side - 80, 12))
    sheet.paste(bar, (40, bar_y))
    draw.text((6, bar_y - 1), "0", fill=(230, 230, 230), font=font)
    draw.text((3 * side - 34, bar_y - 1), "1", fill=(230, 230, 230), font=font)
    draw.text((40, bar_y + 14), "attention, on the app's fixed scale", fill=(230, 230, 230), font=font)
    return _write_png(sheet, out_png, "figure")


def _write_png(image: Image.Image, out_png: str | os.PathLike[str], what: str) -> Path:
    """Save `image` as a PNG atomically; a write error becomes one sentence naming `what` it was."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    out = Path(out_png)
    try:
        atomic_write_bytes(out, buffer.getvalue())
    except OSError as exc:
        raise UserError(f'The {what} "{out}" cannot be written ({exc.strerror or exc}).') from None
    return out


# ----------------------------------------------------------------------------- the bench
@dataclass
class MapsReport:
    """What :func:`run_maps_bench` measured and wrote."""

    photos: list[PhotoMaps]
    summary: dict
    files: dict[str, Path] = field(default_factory=dict)
    text_detector: str = ""  # the detector's model file, or why there was none


def run_maps_bench(extractor, photo_paths: Sequence[str | os.PathLike[str]],
                   product_boxes: Mapping[str, Sequence[Box]] | None, out_dir: str | os.PathLike[str], *,
                   detector=None, job: JobControl | None = None, figure_photos: Sequence[str] = ()) -> MapsReport:
    """Score the app's maps on real photos and write ``maps.json``, ``maps_per_photo.csv`` and ``maps_sheet.png``.

    Args:
        extractor: a :class:`beauty_app.retrieval.extractor.FeatureExtractor` (the model under test).
        photo_paths: the photos; each is decoded as the app decodes a query.
        product_boxes: ``{photo file name: relative boxes}`` (:func:`read_boxes`), or None.
        detector: a text detector; by default the PP-OCR one when :func:`text_detection.available`,
            otherwise the text map is not scored (the report says why).
        figure_photos: file names of photos to draw into ``maps_figure.png`` (:func:`maps_figure`).

    Raises:
        UserError: no photo can be read, or the output cannot be written.
    """
    from ..imaging import load_image
    from ..retrieval.extractor import DECODE_MAX_SIDE
    from ..training import text_detection

    if detector is None and text_detection.available():
        detector = text_detection.default_detector()
    detector_note = str(detector.model) if detector is not None else text_detection.unavailable_reason()
    if detector is None:
        log.warning("Text maps are not scored: %s", detector_note)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"The output folder {out} cannot be created ({exc.strerror or exc}).") from None
    missing = [name for name in figure_photos if name not in {Path(p).name for p in photo_paths}]
    if missing:  # before the network runs, not after
        raise UserError(f"The figure's photo(s) {', '.join(missing)} are not among the photos.")
    boxes = dict(product_boxes or {})
    unknown = sorted(set(boxes) - {Path(p).name for p in photo_paths})
    if unknown:
        log.warning("%d boxed photos are not among the photos: %s", len(unknown), ", ".join(unknown[:5]))
    rows: list[tuple[PhotoMaps, dict]] = []
    for i, path in enumerate(photo_paths):
        name = Path(path).name
        try:
            image = load_image(path, max_side=DECODE_MAX_SIDE)
        except UserError as exc:
            log.warning("%s", exc)
            continue
        rows.append(analyse_photo(extractor, image, boxes.get(name, ()), detector=detector, name=name))
        report(job, "photos", i + 1, len(photo_paths))
    if not rows:
        raise UserError("None of the photos could be read.")
    photos = [scores for scores, _ in rows]
    summary = summarise(photos)
    summary["model"] = extractor.bundle.spec
    summary["text_detector"] = detector_note
    files = {"summary": out / "maps.json", "per_photo": out / "maps_per_photo.csv", "sheet": out / "maps_sheet.png"}
    try:
        atomic_write_text(files["summary"], json.dumps(summary, indent=2, allow_nan=True) + "\n")
        atomic_write_text(files["per_photo"], _per_photo_csv(photos))
    except OSError as exc:
        raise UserError(f"The results cannot be written to {out} ({exc.strerror or exc}).") from None
    contact_sheet(rows, files["sheet"])
    if figure_photos:
        by_name = {scores.photo: (scores, drawing) for scores, drawing in rows}
        unreadable = [name for name in figure_photos if name not in by_name]
        if unreadable:
            raise UserError(f"The figure's photo(s) {', '.join(unreadable)} could not be read.")
        files["figure"] = maps_figure([by_name[name] for name in figure_photos], out / "maps_figure.png")
    return MapsReport(photos, summary, files, detector_note)


def _per_photo_csv(photos: Sequence[PhotoMaps]) -> str:
    import io

    maps = ("saliency", "saliency_centre", "text", "text_centre", "text_on_products")
    fields = [f.name for f in MapScore.__dataclass_fields__.values()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["photo", "width", "height", "product_boxes", "text_boxes", "saliency_peak", "text_peak",
                     "product_centre_x", "product_centre_y"] + [f"{m}.{f}" for m in maps for f in fields])
    for p in photos:
        row = [p.photo, p.size[0], p.size[1], p.product_boxes, p.text_boxes, p.saliency_peak, p.text_peak,
               *(p.product_centre or (None, None))]
        for m in maps:
            score = getattr(p, m)
            row += [asdict(score)[f] if score is not None else "" for f in fields]
        writer.writerow(["" if v is None else (f"{v:.4f}" if isinstance(v, float) else v) for v in row])
    return buffer.getvalue()
