"""Fuzzing the one image loader: whatever bytes arrive, it returns a bounded RGB image or says why not.

Inputs are valid images of every accepted format and colour mode, mutated the ways files really
break (cut short, bits flipped, bytes overwritten, inserted or deleted, header fields rewritten),
plus raw random bytes. Anything but a picture or one :class:`ImageLoadError` sentence (another
exception, or a hang) fails the test.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from beauty_app.errors import ImageLoadError
from beauty_app.imaging import load_image

MAX_SIDE = 48


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8), "L"))
    sixteen = Image.fromarray(rng.integers(0, 65536, (24, 32), dtype=np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 8
    variants = [
        (rgb, "JPEG", {"quality": 70}),
        (rgb, "JPEG", {"progressive": True, "exif": exif.tobytes()}),
        (rgb.convert("CMYK"), "JPEG", {}),
        (rgb, "PNG", {}),
        (rgba, "PNG", {}),
        (rgb.convert("P"), "PNG", {"transparency": 3}),
        (rgb.convert("LA"), "PNG", {}),
        (sixteen, "PNG", {}),
        (rgb, "GIF", {"save_all": True, "append_images": [rgb.rotate(90)], "duration": 50}),
        (rgb, "WEBP", {"quality": 60}),
        (rgba, "WEBP", {"lossless": True}),
        (rgb, "BMP", {}),
        (rgb.convert("1"), "BMP", {}),
        (rgb, "TIFF", {"compression": "tiff_lzw"}),
        (rgb.convert("F"), "TIFF", {}),
    ]
    seeds = []
    for img, fmt, options in variants:
        buffer = io.BytesIO()
        img.save(buffer, fmt, **options)
        seeds.append(buffer.getvalue())
    return seeds


SEEDS = _seed_images()


@st.composite
def broken_files(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["cut", "flip", "overwrite", "insert", "delete", "header"]))
        if how == "cut":
            del data[at:]
        elif how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:  # rewrite a byte of the header, where sizes, modes and offsets live
            data[min(at, 63) if len(data) > 63 else at] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL's notes on the corrupt TIFF/EXIF it was fed
@settings(max_examples=4000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=broken_files())
def test_loader_returns_a_bounded_rgb_image_or_one_sentence(data: bytes) -> None:
    started = time.perf_counter()
    try:
        image = load_image(data, max_side=MAX_SIDE, name="fuzzed.bin")
    except ImageLoadError as exc:
        message = str(exc)
        assert message and "\n" not in message and "fuzzed.bin" in message
        event("refused")
    else:
        event("decoded")
        assert image.mode == "RGB"
        assert 1 <= min(image.size) and max(image.size) <= MAX_SIDE
        assert np.asarray(image).shape == (image.height, image.width, 3)
    assert time.perf_counter() - started < 10, "one input took more than 10 s"


def test_seeds_are_valid_images() -> None:
    """The fuzzer starts from files the loader accepts, so its mutations probe real decoding paths."""
    for data in SEEDS:
        assert load_image(data, max_side=MAX_SIDE).mode == "RGB"
