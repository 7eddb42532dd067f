"""Imported by the decoding workers' fork server (see :func:`.pipeline._worker_context`): warms the decoder once.

The first image a fresh process decodes pays for importing every PIL format plugin, registering
the HEIF opener and setting up the JPEG encoder (about 20 ms). Done here, in the fork server,
every worker forked from it starts warm, so a build's workers start sooner; on 2 cores their
start was a good part of what kept two workers from decoding twice as fast as one.
"""

from __future__ import annotations

import io
import logging

from PIL import Image

from ..imaging import letterbox, load_image
from .pipeline import make_thumbnail

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Decode, letterbox and thumbnail one small in-memory JPEG, as a worker does a catalog file."""
    sample = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 80)).save(sample, format="JPEG")
    image = load_image(sample.getvalue(), name="warm-up")
    letterbox(image, 16)
    make_thumbnail(image)


try:
    warm_up()
except Exception:  # noqa: BLE001 - a fork server that failed here would start no worker at all
    log.debug("the decoder warm-up failed; workers start cold", exc_info=True)
