"""A search session: one loaded model and the catalog index built with it.

This is the path a query takes in both the CLI and the GUI worker (its extractor comes from
:func:`beauty_app.retrieval.session.extractor_for_index`, like every extractor for an existing index):
photo -> imaging.load_image -> FeatureExtractor.analyze (MANet forward, pooling, maps)
-> CatalogIndex.search -> ranked catalog hits.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import UserError
from ..imaging import load_image
from ..jobs import JobControl, report
from ..models.checkpoint import ModelBundle
from .extractor import DECODE_MAX_SIDE, QueryAnalysis
from .index import CatalogIndex, SearchHit
from .session import extractor_for_index

log = logging.getLogger(__name__)

#: The warm-up checks every catalog chunk's text up to this many rows (about 400 chunks; well under a second).
WARM_UP_CHECKED_ROWS = 100_000


@dataclass
class QueryResult:
    """One query's outcome: hits and analysis, or the reason it failed."""

    query: str
    hits: list[SearchHit]
    analysis: QueryAnalysis | None = None
    error: str | None = None
    #: Seconds per stage of :meth:`SearchSession.search_image` ("decode", "network", "index"), in order.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {"query": self.query, "results": [hit.as_dict() for hit in self.hits]}
        if self.analysis is not None and self.analysis.top_classes:
            data["predicted"] = [{"category": name, "probability": round(p, 4)} for name, p in self.analysis.top_classes]
        if self.error:
            data["error"] = self.error
        return data


class SearchSession:
    """Opens an index and the model it was built with; answers queries.

    Args:
        index_dir: a directory made by `catalog build`.
        model_spec: defaults to the spec recorded in the index; another spec must have the same
            fingerprint (the same weights), otherwise the search is refused.
        device: torch device for the model.
        bundle: an already loaded model to reuse (the GUI keeps one across index switches).
    """

    def __init__(self, index_dir: str | os.PathLike, model_spec: str | None = None, *, device="cpu",
                 bundle: ModelBundle | None = None, batch_size: int = 16, use_amp: bool = True):
        self.index = CatalogIndex.open(index_dir)
        settings = self.index.settings()
        if not settings.get("complete"):
            self.index.close()
            raise UserError(f"The index in {index_dir} is unfinished; run `catalog build --resume` to finish it.")
        try:
            self.extractor = extractor_for_index(self.index, model_spec=model_spec, device=device, bundle=bundle,
                                                 batch_size=batch_size, use_amp=use_amp)
        except BaseException:
            self.index.close()
            raise
        self.bundle = self.extractor.bundle

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "SearchSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pooling(self) -> str:
        return self.extractor.pooling

    def available_poolings(self) -> list[str]:
        """The index's own pooling first, then the others stored for ranking comparisons."""
        return [self.pooling] + [p for p in self.index.alternate_poolings() if p != self.pooling]

    def search_image(self, image: Image.Image | str | os.PathLike, k: int = 7, query_expansion: int = 0,
                     pooling: str | None = None) -> QueryResult:
        """Analyse and search one image (a decoded image or a file; bad files raise ImageLoadError).

        Args:
            query_expansion: n > 0 re-queries with the query averaged with its top-n results, with any pooling.
            pooling: rank with another pooling stored in the index (comparison; no whitening).
        """
        stages: dict[str, float] = {}
        clock = time.perf_counter()
        name = "image"
        if not isinstance(image, Image.Image):
            name = str(image)
            image = load_image(image, max_side=DECODE_MAX_SIDE)
            clock = _lap(stages, "decode", clock)
        analysis = self.extractor.analyze(image, pooling=pooling)
        clock = _lap(stages, "network", clock)
        if pooling is None or pooling == self.pooling:
            hits = self.index.search(analysis.vector[None], k, query_expansion=query_expansion)[0]
        else:
            hits = self.index.search_alternate(pooling, analysis.vector, k, query_expansion=query_expansion)[0]
        _lap(stages, "index", clock)
        return QueryResult(name, hits, analysis, stage_seconds=stages)

    def check_catalog_text(self, max_rows: int = WARM_UP_CHECKED_ROWS) -> int:
        """Check every chunk's catalog text against its checksum now, as a search's first read of it would.

        A search checks the chunks its hits lie in the first time it reads them after the index is
        opened; done here, behind the splash, no later search pays for it. Skipped (returns 0) for an
        index of more than `max_rows` rows, where reading every row would delay the window too long.
        Returns the chunks checked.
        """
        if self.index.count() > max_rows:
            return 0
        return self.index.check_all_text()

    def prepare_catalog_filters(self, max_rows: int = WARM_UP_CHECKED_ROWS) -> bool:
        """Read the text the catalog browser's filters search now, so the first filter does not wait for it.

        Skipped (False) above `max_rows` rows, as :meth:`check_catalog_text` is (0.6 s at 500,000 rows).
        """
        if self.index.count() > max_rows:
            return False
        self.index.prepare_filters()
        return True

    def warm_up(self, k: int = 12, photo_size: tuple[int, int] = (1280, 960)) -> float:
        """Search :func:`warm_up_photo` and drop the result, so the first real search costs what later ones do.

        The first pass through the network (kernel selection, memory pools), the search structure's
        load, the first JPEG decode and the first SQLite reads otherwise land on the user's first
        search. The window's worker warms up with the user's first photo instead when it knows it
        (see ``gui.worker.WarmUpRequest``). Returns the seconds it took.
        """
        started = time.perf_counter()
        result = self.search_image(warm_up_photo(photo_size), k=k)
        for hit in result.hits:
            self.index.thumbnail(hit.id)
        self.check_catalog_text()
        return time.perf_counter() - started

    def search_files(self, paths: Sequence[str | os.PathLike], k: int = 7, query_expansion: int = 0,
                     job: JobControl | None = None) -> list[QueryResult]:
        """Batched search for many query files; unreadable files come back with `error` set."""
        paths = list(paths)
        results: dict[int, QueryResult] = {}
        done = 0
        report(job, "search", 0, len(paths), "searching")
        for batch in self.extractor.iter_batches(list(enumerate(paths)), path_of=lambda item: item[1]):
            if batch.items:
                hits = self.index.search(batch.vectors, k, query_expansion=query_expansion)
                for (position, path), query_hits in zip(batch.items, hits):
                    results[position] = QueryResult(str(path), query_hits)
            for (position, path), reason in batch.failures:
                results[position] = QueryResult(str(path), [], error=reason)
            done += len(batch.items) + len(batch.failures)
            report(job, "search", done, len(paths), f"{done} of {len(paths)} queries")
        return [results[i] for i in range(len(paths))]


def warm_up_photo(photo_size: tuple[int, int] = (1280, 960)) -> Image.Image:
    """A phone-sized synthetic photo, JPEG-encoded and decoded through the query loader.

    Structured, not blank: an empty saliency map would take SR-MAC's fall-back path instead. Its
    decode, resize and map upsampling run at a real photo's sizes.
    """
    import io

    width, height = photo_size
    xs, ys = np.linspace(0, 255, width, dtype=np.float32), np.linspace(0, 255, height, dtype=np.float32)
    pixels = np.stack([np.add.outer(ys, xs) / 2, np.tile(xs, (height, 1)),
                       np.full((height, width), 200.0, np.float32)], -1)
    encoded = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(encoded, format="JPEG", quality=90)
    return load_image(encoded.getvalue(), max_side=DECODE_MAX_SIDE, name="warm-up photo")


def _lap(stages: dict[str, float], stage: str, since: float) -> float:
    """Record the seconds since `since` as `stage`; returns now (the next stage's start)."""
    now = time.perf_counter()
    stages[stage] = now - since
    return now


def query_files_in(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in a query folder, sorted (query id = file stem)."""
    from ..imaging import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"Query folder {folder} does not exist.")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise UserError(f"Query folder {folder} holds no image files.")
    return files
