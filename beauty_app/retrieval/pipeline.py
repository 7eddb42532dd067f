"""Decoding catalog images for indexing: file -> letterboxed pixels + thumbnail, off the main process.

Decoding, resizing and thumbnail encoding cost more CPU per image than a fast network, and on
threads they share the main process's GIL with the loop that feeds the network and writes the
database. For a catalog they run in worker processes instead (a torch DataLoader whose "index"
is a whole chunk of files, so one round trip per batch), a batch or two ahead of the network.
Workers hand back uint8 pixels (H,W,3): a quarter of the bytes of normalised floats through shared
memory and, on CUDA, through the pinned copy; normalising happens where the network runs.

Small jobs (a few query photos, a 10-image add) decode on threads: starting processes would cost
more than it saves.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
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
    """A chunk of files decoded: the readable ones' pixels stacked, thumbnails, and every file's error."""

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


class _ChunkDecoder(torch.utils.data.Dataset):
    """A dataset whose keys are whole chunks of files: each worker call decodes one batch."""

    def __init__(self, input_size: int):
        self.input_size = input_size

    def __getitem__(self, requests):
        chunk = decode_chunk(requests, self.input_size)
        # A DataLoader collates tensors into shared memory; the list fields travel pickled.
        return chunk.pixels, chunk.thumbnails, chunk.errors


class _ChunkSampler(torch.utils.data.Sampler):
    def __init__(self, chunks: list[tuple[DecodeRequest, ...]]):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


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


def join_pixels(pieces: list[torch.Tensor], pin_memory: bool = False) -> torch.Tensor:
    """One (N,S,S,3) tensor of the pieces' pixels, page-locked for a CUDA copy if asked (one copy at most)."""
    if len(pieces) == 1 and not pin_memory:
        return pieces[0]
    total = sum(piece.shape[0] for piece in pieces)
    # torch's host allocator caches page-locked blocks, so this costs no cudaHostAlloc per batch.
    out = torch.empty((total, *pieces[0].shape[1:]), dtype=pieces[0].dtype, pin_memory=pin_memory)
    # numpy's copy, not torch.cat: a plain memcpy, where torch.cat of uint8 took 50 times the CPU
    # time (15 ms a batch of 32 at 224 px), all of it on the main process.
    np.concatenate([piece.numpy() for piece in pieces], out=out.numpy())
    return out


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
        loader = torch.utils.data.DataLoader(
            _ChunkDecoder(input_size), batch_size=None, sampler=_ChunkSampler([p for ps in pieces for p in ps]),
            num_workers=workers, collate_fn=_identity, pin_memory=False, prefetch_factor=2,
            multiprocessing_context=_worker_context())
        iterator = iter(loader)
        try:
            for chunk_pieces in pieces:
                t = time.perf_counter()
                parts = [next(iterator) for _ in chunk_pieces]
                stats.wait_s += time.perf_counter() - t
                stats.chunks += 1
                yield DecodedChunk(join_pixels([part[0] for part in parts], pin_memory),
                                   [thumb for part in parts for thumb in part[1]],
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
