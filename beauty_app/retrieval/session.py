"""The one way from a model to an index and back: extractors for a build, an add or a search.

An index records how its vectors were made (model fingerprint, pooling, scales, input size; its
whitening is its own and applied to every row). Whoever adds rows or searches must make vectors the
same way, so the extractor for an existing index is always built here from those settings
(:func:`extractor_for_index`), never assembled by hand. The command line, the GUI worker, the demo
and the self-test go through these functions:

- a new index:      :func:`build_catalog` (model -> :func:`new_extractor` -> catalog -> build)
- add to an index:  :func:`add_catalog` (index settings -> :func:`extractor_for_index` -> add)
- search an index:  :class:`beauty_app.retrieval.search.SearchSession`, whose extractor comes from
  :func:`extractor_for_index` too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from ..catalog_io import Catalog, read_catalog
from ..errors import UserError
from ..jobs import JobControl
from ..models.checkpoint import ModelBundle, load_model
from ..models.presets import default_pooling
from .build import BuildSummary, add_to_index, build_index, index_scales
from .extractor import FeatureExtractor
from .index import CatalogIndex

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def new_extractor(model: str | ModelBundle, pooling: str | None = None, *, device="cpu",
                  scales: Sequence[float] = (1.0,), input_size: int | None = None, batch_size: int = 16,
                  use_amp: bool = True, decode_workers: int = 2, runtime: str = "auto") -> FeatureExtractor:
    """An extractor for a new index: loads the model spec (or reuses a loaded bundle).

    Args:
        model: a model spec (checkpoint path or ``imagenet:<backbone>``) or a loaded bundle.
        pooling: None picks SR-MAC for a model with a saliency branch, else RA-MAC.
        runtime: the indexing runtime: auto (measured once per machine and model; eager torch on a
            GPU, with ``use_amp=False`` and for small jobs) or a name of :mod:`.runtime`.
    """
    bundle = model if isinstance(model, ModelBundle) else load_model(model, device=device)
    return FeatureExtractor(bundle, pooling or default_pooling(bundle.has_saliency), batch_size=batch_size,
                            use_amp=use_amp, scales=scales, input_size=input_size,
                            decode_workers=decode_workers, runtime=runtime)


def extractor_for_index(index: CatalogIndex | PathLike, *, model_spec: str | None = None, device="cpu",
                        bundle: ModelBundle | None = None, batch_size: int = 16, use_amp: bool = True,
                        decode_workers: int = 2, runtime: str = "auto") -> FeatureExtractor:
    """The extractor that makes vectors the way `index` holds them (model, pooling, scales, input size).

    Args:
        index: an open index or its directory.
        model_spec: another spec for the same weights (e.g. a moved checkpoint); default: the index's.
        bundle: a loaded model to reuse: when it is the spec asked for, or (no spec asked for) when it
            holds the index's weights. Otherwise the model is loaded.

    Raises:
        IndexStoreError: the model is not the one the index was built with.
    """
    if not isinstance(index, CatalogIndex):
        with CatalogIndex.open(index) as opened:
            return extractor_for_index(opened, model_spec=model_spec, device=device, bundle=bundle,
                                       batch_size=batch_size, use_amp=use_amp, decode_workers=decode_workers,
                                       runtime=runtime)
    settings = index.settings()
    spec = model_spec or settings["model_spec"]
    reusable = bundle is not None and (
        bundle.spec == spec or (model_spec is None and bundle.fingerprint == settings.get("model_fingerprint")))
    if not reusable:
        bundle = load_model(spec, device=device)
    index.check_model(bundle.fingerprint)
    return FeatureExtractor(bundle, settings["pooling"], batch_size=batch_size, use_amp=use_amp,
                            scales=index_scales(settings), input_size=settings.get("input_size"),
                            decode_workers=decode_workers, runtime=runtime)


def load_catalog(source: PathLike, *, allow_outside_root: bool = False, job: JobControl | None = None) -> Catalog:
    """Read a catalog CSV or scan an image folder; a catalog without usable images is a user error."""
    catalog = read_catalog(source, allow_outside_root=allow_outside_root, job=job)
    if not catalog.entries:
        raise UserError(f"The catalog {source} lists no usable images.")
    return catalog


def build_catalog(source: PathLike | Catalog, out_dir: PathLike, extractor: FeatureExtractor, *,
                  allow_outside_root: bool = False, job: JobControl | None = None, resume: bool = False,
                  **index_options) -> BuildSummary:
    """Featurise a catalog (CSV, image folder or an already read Catalog) into a new index.

    Make `extractor` with :func:`new_extractor` first, so that a wrong model fails before a large
    catalog is read. `index_options` are :func:`beauty_app.retrieval.build.build_index`'s
    (index_type, whitening, memory_budget, recall_target).
    """
    catalog = source if isinstance(source, Catalog) else load_catalog(
        source, allow_outside_root=allow_outside_root, job=job)
    try:
        return build_index(catalog, extractor, out_dir, resume=resume, job=job, **index_options)
    finally:
        extractor.release_runtimes()


def add_catalog(index_dir: PathLike, source: PathLike | Catalog, *, device="cpu", bundle: ModelBundle | None = None,
                batch_size: int = 16, use_amp: bool = True, decode_workers: int = 2, runtime: str = "auto",
                allow_outside_root: bool = False, job: JobControl | None = None) -> BuildSummary:
    """Add a catalog's new and changed images to an index, with vectors made exactly as the index's.

    The extractor comes from the index settings (model, pooling, scales, input size), so an index
    built at ``--scales 1,0.707 --input-size 128`` gets rows computed the same way.

    Args:
        bundle: a loaded model to reuse when it is the index's (otherwise the index's model is loaded).
    """
    # The model first: an index whose model is missing fails before a large catalog is read.
    extractor = extractor_for_index(index_dir, device=device, bundle=bundle, batch_size=batch_size,
                                    use_amp=use_amp, decode_workers=decode_workers, runtime=runtime)
    # No "lists no usable images" check here: an add of nothing new (or only skips) is a valid update.
    catalog = source if isinstance(source, Catalog) else read_catalog(
        source, allow_outside_root=allow_outside_root, job=job)
    try:
        return add_to_index(catalog, extractor, index_dir, job=job)
    finally:
        extractor.release_runtimes()
