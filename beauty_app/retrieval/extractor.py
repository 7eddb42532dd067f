"""Batched feature extraction: images -> MANet forward -> pooled retrieval vectors (+ maps).

The same path serves catalog indexing (many images, parallel decoding, bf16 autocast) and a
single query (vector plus the saliency / text heatmaps, class probabilities and the SR-MAC
regions the GUI draws).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..device import autocast
from ..errors import ModelError, UserError
from ..imaging import image_to_tensor, letterbox, letterbox_box
from ..limits import MAX_SCALE, input_size_problem
from ..models.checkpoint import ModelBundle
from ..models.manet import upsample_map
from . import pooling as pooling_ops
from .pipeline import DECODE_MAX_SIDE, THUMBNAIL_SIDE, DecodeStats, decode_stream, make_thumbnail
from .runtime import AUTO, RUNTIME_ENV, InferenceRuntime, TorchRuntime, choose_runtime, make_runtime

log = logging.getLogger(__name__)

POOLING_NAMES = tuple(pooling_ops.POOLINGS)
#: Below this many images an indexing job uses eager torch: another runtime would not pay for its set-up.
RUNTIME_MIN_IMAGES = 64
__all__ = ["DECODE_MAX_SIDE", "THUMBNAIL_SIDE", "Batch", "FeatureExtractor", "PipelineStats", "QueryAnalysis",
           "is_out_of_memory", "make_thumbnail"]


@dataclass
class QueryAnalysis:
    """Everything the app shows about one query image."""

    vector: np.ndarray  # (D,) raw pooled vector of the pooling asked for (the index applies its whitening)
    image_size: tuple[int, int]  # (width, height) of the decoded image
    saliency: np.ndarray | None  # (height, width) float32 in [0,1] over the decoded image
    text: np.ndarray | None
    top_classes: list[tuple[str, float]] = field(default_factory=list)
    regions: list[tuple[int, int, int, int, float, bool]] = field(default_factory=list)  # image pixels


@dataclass
class Batch:
    """One batch of a many-image extraction: the readable items and their vectors, and the failures."""

    items: list
    vectors: np.ndarray  # (len(items), D) with the extractor's own pooling
    thumbnails: list[bytes]
    failures: list[tuple[object, str]]
    extra: dict[str, np.ndarray]  # other poolings asked for, same rows


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an accelerator running out of memory (CUDA's own error, or MPS/older builds' RuntimeError)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


@dataclass
class PipelineStats:
    """Where an indexing run's time went in the main process (for the speed bench).

    ``network_s`` is the device's work: the runtime's forward pass, pooling and the copy of the
    vectors to the host; ``gpu_busy_s`` the GPU time of forward and pooling (CUDA events);
    ``decode``'s wait is the time the main process waited for decoded images.
    """

    images: int = 0
    network_s: float = 0.0
    network_cpu_s: float = 0.0  # CPU time of the calling thread in there (torch runs part of its work on it)
    gpu_busy_s: float = 0.0
    decode: DecodeStats = field(default_factory=DecodeStats)
    runtime: str = ""


def check_extraction_settings(input_size: object, scales: Sequence[object]) -> None:
    """Refuse an input size or scales (from arguments, a checkpoint or an index's settings) out of bounds.

    Checked before anything is allocated: an index whose settings say input size 60000 would
    otherwise make every query allocate until the system stops the process.
    """
    problem = input_size_problem(input_size)
    if problem:
        raise UserError(f"The input size {problem}.")
    if not all(isinstance(s, int | float) and not isinstance(s, bool) and 0 < s <= MAX_SCALE for s in scales):
        raise UserError(f"The scales must be numbers above 0 and at most {MAX_SCALE:g}, not {list(scales)!r}.")


class FeatureExtractor:
    """Turns images into retrieval vectors with one loaded model.

    Args:
        bundle: the loaded model (see :func:`beauty_app.models.checkpoint.load_model`).
        pooling: gap | mac | spoc | gem | rmac | ramac | srmac.
        batch_size: images per forward pass when indexing.
        use_amp: bf16/fp16 autocast where the device supports it (2-3x faster on AMX CPUs).
        scales: multi-scale extraction: each factor resizes the network input; vectors are summed.
        input_size: network input side (default: the model's).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        pooling: str = "srmac",
        *,
        batch_size: int = 16,
        use_amp: bool = True,
        scales: Sequence[float] = (1.0,),
        input_size: int | None = None,
        decode_workers: int = 2,
        runtime: str = "torch",
        decode_processes: bool | None = None,
    ):
        if pooling not in pooling_ops.POOLINGS:
            raise UserError(f"Unknown pooling {pooling!r}; choose one of {', '.join(POOLING_NAMES)}.")
        if pooling == "srmac" and not bundle.has_saliency:
            raise ModelError(
                f"SR-MAC needs a model with a saliency branch and {bundle.spec} has none; "
                f"use --pooling rmac or ramac, or a trained MANet checkpoint."
            )
        if bundle.model.external_saliency:
            raise ModelError(
                f"{bundle.spec} expects external saliency masks (the DSS variant) and cannot extract features "
                f"on its own; use an end-to-end MANet checkpoint."
            )
        check_extraction_settings(input_size or bundle.input_size, scales)
        self.bundle = bundle
        self.pooling = pooling
        self.batch_size = max(1, int(batch_size))
        self.use_amp = use_amp
        self.scales = tuple(float(s) for s in scales) or (1.0,)
        self.input_size = int(input_size or bundle.input_size)
        self.decode_workers = max(1, int(decode_workers))
        #: Indexing runtime asked for: "auto" (measured, see :mod:`.runtime`) or a runtime name.
        self.runtime_name = runtime
        #: Decode in worker processes: None = from pipeline.PROCESS_MIN_IMAGES images on.
        self.decode_processes = decode_processes
        self._runtimes: dict[str, InferenceRuntime] = {}
        #: Timings of the last iter_batches run.
        self.stats = PipelineStats()
        self.device = next(bundle.model.parameters()).device
        #: (batch size that ran out of memory, batch size used instead), in order; see pooled_in_pieces.
        self.memory_fallbacks: list[tuple[int, int]] = []

    @property
    def dim(self) -> int:
        return self.bundle.model.feature_dim

    def settings(self) -> dict:
        """What an index must record to be searched with compatible vectors."""
        return {"model_spec": self.bundle.spec, "model_fingerprint": self.bundle.fingerprint,
                "pooling": self.pooling, "dim": self.dim, "scales": list(self.scales),
                "input_size": self.input_size}

    # ------------------------------------------------------------------ tensors
    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """Letterbox to the input size (white padding) and normalise with the model's mean/std."""
        return image_to_tensor(letterbox(image, self.input_size), self.bundle.mean, self.bundle.std)

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor):
        with autocast(self.device, self.use_amp):
            out = self.bundle.model(batch.to(self.device, non_blocking=True))
        return out

    def pooled(self, batch: torch.Tensor, poolings: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of several poolings from one forward pass per scale: {pooling: (N,D) unit vectors}.

        Pooling is cheap next to the network, so the GUI's pooling comparison costs almost nothing
        extra when the catalog is indexed.
        """
        return self._pooled_with_output(batch, poolings)[0]

    @torch.inference_mode()
    def forward_scales(self, batch: torch.Tensor) -> Iterator[tuple[float, object]]:
        """(scale, network output) for each of the extractor's scales: the passes a vector sums over."""
        for scale in self.scales:
            scaled = batch
            if scale != 1.0:
                side = max(32, int(round(batch.shape[-1] * scale)))
                scaled = F.interpolate(batch, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
            yield scale, self._forward(scaled)

    def region_to_image(self, region: tuple[int, int, int, int], feature_hw: tuple[int, int],
                        image_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """A region in feature-map cells (top, left, height, width) -> the same in decoded-image pixels.

        Every scale's feature map covers the whole letterboxed input, so one cell is input_size / W
        input pixels at any scale. The box may reach into the letterbox padding (outside the image).
        """
        r_top, r_left, r_h, r_w = region
        fh, fw = feature_hw
        width, height = image_size
        left, top_px, new_w, _ = letterbox_box(width, height, self.input_size)
        cell_x, cell_y = self.input_size / fw, self.input_size / fh
        scale = width / new_w
        return (int(round((r_top * cell_y - top_px) * scale)), int(round((r_left * cell_x - left) * scale)),
                int(round(r_h * cell_y * scale)), int(round(r_w * cell_x * scale)))

    @torch.inference_mode()
    def _pooled_with_output(self, batch: torch.Tensor, poolings: Sequence[str]):
        """:meth:`pooled`, plus the network's output at scale 1 (None when the scales leave 1 out)."""
        totals: dict[str, torch.Tensor] = {}
        at_scale_one = None
        for scale, out in self.forward_scales(batch):
            if scale == 1.0:
                at_scale_one = out
            features = out.features.float()
            saliency = out.saliency.float() if out.saliency is not None else None
            for name, pooled in pooling_ops.pool_several(features, saliency, poolings).items():
                totals[name] = pooled if name not in totals else totals[name] + pooled
        vectors = {name: F.normalize(total, dim=1).cpu().numpy().astype(np.float32) for name, total in totals.items()}
        return vectors, at_scale_one

    def release_runtimes(self) -> None:
        """Drop the indexing runtimes built so far: an ONNX Runtime or OpenVINO session owns a pool of
        threads that would otherwise live as long as this extractor (in the app, the whole session)."""
        self._runtimes.clear()

    def runtime_for(self, count: int) -> InferenceRuntime:
        """The runtime that indexes a job of `count` images (built once per name and kept).

        With ``runtime="auto"`` a job under :data:`RUNTIME_MIN_IMAGES` images uses eager torch, whose
        set-up is free; larger ones use the runtime measured fastest on this machine for this model.
        """
        requested = os.environ.get(RUNTIME_ENV) or AUTO if self.runtime_name == AUTO else self.runtime_name
        if self.scales != (1.0,) or (requested == AUTO and count < RUNTIME_MIN_IMAGES):
            name = "torch"  # runtimes other than torch take scale 1 only (multi-scale resizes the batch)
        else:
            name = choose_runtime(self.bundle, self.input_size, use_amp=self.use_amp, requested=requested)
        if name not in self._runtimes:
            self._runtimes[name] = (TorchRuntime(self.bundle, use_amp=self.use_amp) if name == "torch" else
                                    make_runtime(name, self.bundle, self.input_size, use_amp=self.use_amp))
        return self._runtimes[name]

    def pooled_pixels(self, pixels: torch.Tensor, poolings: Sequence[str],
                      runtime: InferenceRuntime | None = None) -> dict[str, np.ndarray]:
        """:meth:`pooled` for letterboxed uint8 pixels (N,S,S,3), through `runtime` (default eager torch)."""
        runtime = runtime or self.runtime_for(0)
        if self.scales != (1.0,):  # runtime_for gave eager torch: the scales resize the normalised batch
            started = time.perf_counter()
            vectors = self.pooled(runtime.normalise(pixels), poolings)
            self.stats.network_s += time.perf_counter() - started
            return vectors
        # Timed as the device's work: forward, pooling and the copy of the vectors to the host (on a
        # GPU all of it runs there); what the main process does around it is the pipeline's cost.
        started, cpu_started = time.perf_counter(), time.thread_time()
        if self.device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        with torch.inference_mode():
            features, saliency = runtime.features(pixels)
            pooled = {name: F.normalize(vector, dim=1)
                      for name, vector in pooling_ops.pool_several(features, saliency, poolings).items()}
        if self.device.type == "cuda":
            end.record()
        vectors = {name: vector.cpu().numpy().astype(np.float32) for name, vector in pooled.items()}
        if self.device.type == "cuda":
            self.stats.gpu_busy_s += begin.elapsed_time(end) / 1000  # the copy above waited for `end`
        self.stats.network_s += time.perf_counter() - started
        self.stats.network_cpu_s += time.thread_time() - cpu_started
        return vectors

    def pooled_in_pieces(self, pixels: torch.Tensor, poolings: Sequence[str],
                         runtime: InferenceRuntime | None = None) -> dict[str, np.ndarray]:
        """:meth:`pooled_pixels` in pieces of at most ``batch_size`` images, halving them when memory runs out.

        A GPU that cannot hold a batch should slow indexing down, not stop it: on out-of-memory the
        batch size is halved for this and all later batches, with a warning and an entry in
        :attr:`memory_fallbacks`.

        Raises:
            ModelError: even a single image does not fit in the device's memory.
        """
        parts: list[dict[str, np.ndarray]] = []
        start = 0
        while start < len(pixels):
            size = min(self.batch_size, len(pixels) - start)
            try:
                parts.append(self.pooled_pixels(pixels[start:start + size], poolings, runtime))
                start += size
                continue
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(exc):
                    raise
                if size == 1:
                    raise ModelError(
                        f"The {self.device.type.upper()} device ran out of memory even for a single image; "
                        f"use --device cpu or a smaller --input-size."
                    ) from None
            # Outside the except block: the error's traceback, which pins the failed batch's
            # activations, is gone, so the cached blocks can really be released.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.batch_size = max(1, size // 2)
            self.memory_fallbacks.append((size, self.batch_size))
            log.warning("The %s device ran out of memory with a batch of %d images; continuing with batches of %d.",
                        self.device.type.upper(), size, self.batch_size)
        return {name: np.concatenate([part[name] for part in parts]) for name in poolings}

    def vectors(self, batch: torch.Tensor) -> np.ndarray:
        """Pooled L2-normalised vectors (N,D) for a normalised batch (N,3,S,S), all scales summed."""
        return self.pooled(batch, (self.pooling,))[self.pooling]

    def usable_poolings(self, names: Sequence[str]) -> list[str]:
        """The poolings among `names` this model can compute (SR-MAC needs a saliency branch)."""
        return [n for n in names if n in pooling_ops.POOLINGS and (n != "srmac" or self.bundle.has_saliency)]

    # ------------------------------------------------------------------ single query
    @torch.inference_mode()
    def analyze(self, image: Image.Image, top: int = 3, pooling: str | None = None) -> QueryAnalysis:
        """Vector, heatmaps (over the decoded image), top classes and SR-MAC regions of one image.

        Args:
            pooling: the pooling of the returned vector (default the extractor's own); the scale-1
                forward pass serves both the vector and the maps (multi-scale adds the other scales).
        """
        pooling = pooling or self.pooling
        width, height = image.size
        batch = self.to_tensor(image).unsqueeze(0)
        vectors, out = self._pooled_with_output(batch, (pooling,))
        vector = vectors[pooling][0]
        if out is None:  # scales without 1 (e.g. 0.707,1.414): the maps still come from the image as it is
            out = self._forward(batch)
        left, top_px, new_w, new_h = letterbox_box(width, height, self.input_size)

        def to_image_map(attention: torch.Tensor | None) -> np.ndarray | None:
            if attention is None:
                return None
            full = upsample_map(attention, (self.input_size, self.input_size))[0, 0]
            crop = full[top_px:top_px + new_h, left:left + new_w][None, None]
            return F.interpolate(crop, size=(height, width), mode="bilinear",
                                 align_corners=False)[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32)

        top_classes: list[tuple[str, float]] = []
        if out.logits is not None and self.bundle.class_names:
            probs = torch.softmax(out.logits.float()[0], dim=0)
            values, indices = probs.topk(min(top, probs.numel()))
            top_classes = [(self.bundle.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]

        regions = []
        if out.saliency is not None or self.pooling == "ramac":
            attention = out.saliency if out.saliency is not None else pooling_ops.activation_attention(out.features.float())
            fh, fw = out.features.shape[-2:]
            for *cells, weight, kept in pooling_ops.srmac_region_weights(attention.float(), fh, fw)[0]:
                regions.append((*self.region_to_image(tuple(cells), (fh, fw), (width, height)),
                                float(weight), bool(kept)))
        return QueryAnalysis(vector, (width, height), to_image_map(out.saliency), to_image_map(out.text),
                             top_classes, regions)

    # ------------------------------------------------------------------ many images
    def iter_batches(self, items: Sequence, path_of: Callable = lambda item: item.path,
                     extra_poolings: Sequence[str] = ()) -> Iterator[Batch]:
        """Decode `items` ahead of the network and yield one :class:`Batch` of vectors at a time.

        Decoding, letterboxing and thumbnails run in worker processes for catalogs (threads for a
        few images; see :mod:`.pipeline`) one or two batches ahead of the network, so the CPU/GPU is
        kept busy while the next images are read. Bad files become (item, reason) failures, never
        exceptions. `extra_poolings` are computed from the same forward pass (for pooling
        comparisons). A device that runs out of memory gets smaller batches (see
        :meth:`pooled_in_pieces`). :attr:`stats` times the run.
        """
        poolings = [self.pooling, *[p for p in extra_poolings if p != self.pooling]]
        self.stats = PipelineStats()
        runtime = self.runtime_for(len(items))
        self.stats.runtime = runtime.name
        chunks = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        requests = [[("", problem) if (problem := getattr(item, "problem", "")) else (str(path_of(item)), "")
                     for item in chunk] for chunk in chunks]
        stream = decode_stream(requests, self.input_size, workers=self.decode_workers,
                               processes=self.decode_processes, pin_memory=self.device.type == "cuda",
                               stats=self.stats.decode)
        try:
            for chunk, decoded in zip(chunks, stream):
                batch = Batch([], np.zeros((0, self.dim), np.float32), decoded.thumbnails, [], {})
                for item, error in zip(chunk, decoded.errors):
                    if error is None:
                        batch.items.append(item)
                    else:
                        batch.failures.append((item, error))
                if batch.items:
                    vectors = self.pooled_in_pieces(decoded.pixels, poolings, runtime)
                    batch.vectors = vectors.pop(self.pooling)
                    batch.extra = vectors
                self.stats.images += len(batch.items)
                yield batch
        finally:
            stream.close()  # a cancelled job stops its decoding workers now

    def extract_paths(self, paths: Iterable) -> tuple[np.ndarray, list[tuple[object, str]]]:
        """Vectors for image files (in order, failures left out and returned with reasons)."""
        items = list(paths)
        vectors, failures = [], []
        for batch in self.iter_batches(items, path_of=lambda p: p):
            vectors.append(batch.vectors)
            failures.extend(batch.failures)
        return (np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)), failures
