"""Decoding catalog images for indexing: file -> letterboxed pixels + thumbnail, off the main process.

Decoding, resizing and thumbnail encoding cost more CPU per image than a fast network, and on
threads they share the main process's GIL with the loop that feeds the network and writes the
database. For a catalog they run in worker processes instead (a torch DataLoader whose "index"
is a whole chunk of files, so one round trip per batch), a batch or two ahead of the network.
Workers write uint8 pixels (H,W,3), a quarter of the bytes of normalised floats, straight into a
small ring of shared-memory chunk buffers made once per stream (:class:`_ChunkRing`); only the
thumbnails and errors travel pickled. The consumer gets a view of its chunk's buffer: no shared
segment per piece, no copy to join the pieces (on 2 cores every bit of main-process and kernel work
is taken off the workers). Normalising happens where the network runs.

Small jobs (a few query photos, a 10-image add) decode on threads: starting processes would cost
more than it saves.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing
import multiprocessing.heap
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..imaging import letterbox, load_image

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 160
#: Longest side images are decoded at: bounds memory for huge files; far above the network input.
DECODE_MAX_SIDE = 1024
#: Below this many images a job decodes on threads: worker processes would not pay for their start.
PROCESS_MIN_IMAGES = 64

#: One file to decode: its path, or the reason it is known to be unusable (never opened then).
DecodeRequest = tuple[str, str]


def make_thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of the image for result grids and the catalog browser."""
    thumb = image.copy()
    thumb.thumbnail((side, side))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def decode_for_index(path: str, input_size: int) -> tuple[np.ndarray | None, bytes | None, str | None]:
    """One catalog file -> (letterboxed uint8 pixels (S,S,3), thumbnail JPEG, None) or (None, None, reason)."""
    try:
        image = load_image(path, max_side=DECODE_MAX_SIDE)
    except UserError as exc:
        return None, None, str(exc)
    return np.asarray(letterbox(image, input_size), dtype=np.uint8), make_thumbnail(image), None


@dataclass
class DecodedChunk:
    """A chunk of files decoded: the readable ones' pixels stacked, thumbnails, and every file's error.

    From worker processes, `pixels` is a view of a reused shared buffer: valid until the consumer
    asks :func:`decode_stream` for the next chunk (or closes it). Keep them longer with ``.clone()``.
    """

    pixels: torch.Tensor  # (readable, S, S, 3) uint8
    thumbnails: list[bytes]
    errors: list[str | None]  # one per requested file, None where it was decoded


def decode_chunk(requests: Sequence[DecodeRequest], input_size: int) -> DecodedChunk:
    """Decode a chunk of files in the calling thread or process."""
    images, thumbnails, errors = [], [], []
    for path, problem in requests:
        pixels, thumb, error = (None, None, problem) if problem else decode_for_index(path, input_size)
        errors.append(error)
        if error is None:
            images.append(pixels)
            thumbnails.append(thumb)
    stacked = (torch.from_numpy(np.stack(images)) if images
               else torch.zeros((0, input_size, input_size, 3), dtype=torch.uint8))
    return DecodedChunk(stacked, thumbnails, errors)


#: A worker's share of a chunk: the ring slot, the piece's first row in it, and its files.
PieceTask = tuple[int, int, tuple[DecodeRequest, ...]]


class _ChunkRing:
    """Shared-memory pixel buffers for the chunks in flight, reused in turn (chunk k -> slot k % slots).

    Made before the workers start and handed to them inside the dataset, so every worker maps it
    once instead of torch making, sending and mapping a new shared segment for every piece it
    returns. The memory is a :class:`multiprocessing.heap.Arena` (an unlinked file in /dev/shm on
    Linux, a named mapping on Windows): pickled while a worker starts, its file descriptor travels
    with the start request (to the fork server too), and it costs no copy or page touching up front,
    where ``torch.empty(...).share_memory_()`` copied the whole ring (15-20 ms of main-process CPU).
    """

    def __init__(self, slots: int, rows: int, input_size: int):
        self.slots = slots
        self.shape = (slots, rows, input_size, input_size, 3)
        self.arena = multiprocessing.heap.Arena(max(1, math.prod(self.shape)))
        self._buffer: torch.Tensor | None = None

    @property
    def buffer(self) -> torch.Tensor:
        """The ring as one (slots, rows, S, S, 3) uint8 tensor over the shared memory (made once per process)."""
        if self._buffer is None:
            size = math.prod(self.shape)
            flat = (torch.frombuffer(self.arena.buffer, dtype=torch.uint8, count=size) if size
                    else torch.empty(0, dtype=torch.uint8))  # chunks of refused files only: no pixels
            self._buffer = flat.view(self.shape)
        return self._buffer

    def __getstate__(self):
        return {"slots": self.slots, "shape": self.shape, "arena": self.arena, "_buffer": None}

    def slot_of(self, chunk_index: int) -> int:
        return chunk_index % self.slots


class _ChunkDecoder(torch.utils.data.Dataset):
    """A dataset whose keys are pieces of chunks: each worker call decodes one piece into its rows of the ring."""

    def __init__(self, input_size: int, ring: _ChunkRing):
        self.input_size = input_size
        self.ring = ring

    def __getitem__(self, task: PieceTask):
        slot, first_row, requests = task
        rows = self.ring.buffer[slot].numpy()
        thumbnails, errors = [], []
        for path, problem in requests:
            pixels, thumb, error = (None, None, problem) if problem else decode_for_index(path, self.input_size)
            errors.append(error)
            if error is None:
                rows[first_row + len(thumbnails)] = pixels
                thumbnails.append(thumb)
        # The readable files' pixels fill rows first_row .. first_row + len(thumbnails), in order.
        return first_row, thumbnails, errors


class _PieceSampler(torch.utils.data.Sampler):
    """The pieces in order, each with its ring slot; refuses to hand out a slot the consumer still reads.

    The DataLoader keeps at most prefetch_factor * workers pieces in flight past the last one the
    consumer received, so a ring of that many chunks plus the consumer's own is never overrun; the
    check turns a change in that bound into an error instead of pixels overwritten under the consumer.
    """

    def __init__(self, pieces: list[list[tuple[DecodeRequest, ...]]], ring: _ChunkRing, progress: list[int]):
        self.pieces = pieces
        self.ring = ring
        self.progress = progress  # [index of the chunk the consumer holds or waits for]

    def __iter__(self) -> Iterator[PieceTask]:
        for chunk_index, chunk_pieces in enumerate(self.pieces):
            if chunk_index - self.progress[0] >= self.ring.slots:
                raise RuntimeError(f"decoding chunk {chunk_index} would overwrite chunk {self.progress[0]}, "
                                   f"still in use ({self.ring.slots} ring slots)")
            first_row = 0
            for piece in chunk_pieces:
                yield self.ring.slot_of(chunk_index), first_row, piece
                first_row += len(piece)

    def __len__(self) -> int:
        return sum(len(chunk_pieces) for chunk_pieces in self.pieces)


def gather_rows(rows: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """The (first row, count) spans of `rows`, in order, as one tensor: a view when they are contiguous from row 0.

    A piece's unreadable files leave its span short, so a later piece's rows move up in place
    (rare: only chunks with a bad file pay for a copy).
    """
    end = 0
    for first, count in spans:
        if first != end and count:
            rows.numpy()[end:end + count] = rows.numpy()[first:first + count]  # numpy copies overlaps safely
        end += count
    return rows[:end]


def _identity(sample):
    return sample


def _worker_context():
    """How worker processes start: from a fork server where the platform has one.

    A plain fork copies the parent's thread pools and locks mid-use (OpenVINO's TBB, ONNX Runtime,
    Qt): a speed bench that had loaded OpenVINO and then forked decoders crashed later in the
    parent. The fork server is a clean process started once (it imports this module, with torch,
    and decodes one image so that PIL's plugins are loaded: :mod:`.decode_preload`), and each worker
    is forked from it quickly and warm.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None  # the platform's own (spawn on Windows)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, f"{__package__}.decode_preload"])
    return context


#: Pieces smaller than this are not worth a round trip to a worker.
MIN_PIECE = 4


def split_chunk(chunk: Sequence[DecodeRequest], parts: int) -> list[tuple[DecodeRequest, ...]]:
    """`chunk` cut into at most `parts` consecutive pieces of near-equal size (at least MIN_PIECE files each)."""
    chunk = tuple(chunk)
    count = max(1, min(int(parts), len(chunk) // MIN_PIECE))
    bounds = [round(i * len(chunk) / count) for i in range(count + 1)]
    return [chunk[bounds[i]:bounds[i + 1]] for i in range(count)]


@dataclass
class DecodeStats:
    """Where a decode stream's consumer waited: seconds blocked on a chunk that was not ready yet."""

    wait_s: float = 0.0
    chunks: int = 0
    processes: int = 0
    extra: dict = field(default_factory=dict)


def decode_stream(chunks: Sequence[Sequence[DecodeRequest]], input_size: int, *, workers: int = 2,
                  processes: bool | None = None, pin_memory: bool = False,
                  stats: DecodeStats | None = None) -> Iterator[DecodedChunk]:
    """Decode chunks of files in order, up to two chunks per worker ahead of the consumer.

    Args:
        workers: decoding processes (or threads).
        processes: True: worker processes; False: threads; None: processes from
            :data:`PROCESS_MIN_IMAGES` images on.
        pin_memory: page-lock the pixels for a fast asynchronous copy to a CUDA device.
        stats: filled with the time the consumer spent waiting for decoded chunks.

    From processes, a chunk's pixels are valid until the next chunk is asked for (see :class:`DecodedChunk`).
    """
    chunks = [tuple(chunk) for chunk in chunks]
    workers = max(1, int(workers))
    stats = stats if stats is not None else DecodeStats()
    if processes is None:
        processes = sum(len(chunk) for chunk in chunks) >= PROCESS_MIN_IMAGES
    if not chunks:
        return
    if processes:
        stats.processes = workers
        # Each chunk is decoded in `workers` pieces, one per worker, so that every worker is busy on
        # the chunk the consumer waits for: the first chunk arrives sooner and the last round leaves
        # no worker idle (whole chunks dealt out in turns did, which capped 1 -> 2 process scaling).
        pieces = [split_chunk(chunk, workers) for chunk in chunks]
        prefetch = 2
        # Slots: the consumer's chunk, plus one per piece the loader may have in flight beyond it
        # (each in a different chunk at worst); no more than there are chunks.
        ring = _ChunkRing(min(len(chunks), prefetch * workers + 1), max(len(chunk) for chunk in chunks), input_size)
        progress = [0]
        loader = torch.utils.data.DataLoader(
            _ChunkDecoder(input_size, ring), batch_size=None, sampler=_PieceSampler(pieces, ring, progress),
            num_workers=workers, collate_fn=_identity, pin_memory=False, prefetch_factor=prefetch,
            multiprocessing_context=_worker_context())
        iterator = iter(loader)
        try:
            for chunk_index, chunk_pieces in enumerate(pieces):
                progress[0] = chunk_index  # the previous chunk's slot may be decoded into from now on
                t = time.perf_counter()
                parts = [next(iterator) for _ in chunk_pieces]
                stats.wait_s += time.perf_counter() - t
                stats.chunks += 1
                pixels = gather_rows(ring.buffer[ring.slot_of(chunk_index)],
                                     [(first_row, len(thumbnails)) for first_row, thumbnails, _ in parts])
                if pin_memory:
                    # torch pins whole allocations, not a view of the shared ring: one copy into a
                    # page-locked block (the host allocator caches them, so no cudaHostAlloc per batch).
                    pinned = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
                    pinned.numpy()[...] = pixels.numpy()
                    pixels = pinned
                yield DecodedChunk(pixels, [thumb for part in parts for thumb in part[1]],
                                   [error for part in parts for error in part[2]])
        finally:
            # Stop the workers now, not whenever the iterator is collected (a cancelled build).
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        def submit(chunk) -> list[Future]:
            return [pool.submit(decode_chunk, (request,), input_size) for request in chunk]

        ahead = [submit(chunks[0])]
        for index in range(len(chunks)):
            if index + 1 < len(chunks):
                ahead.append(submit(chunks[index + 1]))
            t = time.perf_counter()
            parts = [future.result() for future in ahead.pop(0)]
            stats.wait_s += time.perf_counter() - t
            stats.chunks += 1
            pixels = torch.cat([part.pixels for part in parts]) if parts else None
            yield DecodedChunk(pixels, [t for part in parts for t in part.thumbnails],
                               [part.errors[0] for part in parts])
