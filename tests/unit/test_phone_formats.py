"""Phone photo formats in the one image loader: HEIC/HEIF (pi-heif) and AVIF (Pillow), upright."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pillow_heif  # writes the HEIC files; pi-heif, which the app uses, only decodes
import pytest
from PIL import Image

from beauty_app import imaging
from beauty_app.catalog_io import read_catalog
from beauty_app.errors import ImageLoadError
from beauty_app.imaging import IMAGE_EXTENSIONS, load_image

RED, BLUE = (220, 20, 20), (20, 20, 220)
ROTATE_TO_DISPLAY_CLOCKWISE = 6  # EXIF orientation of a phone held upright: rotate 90° clockwise to show


def _half_red_half_blue(width: int = 96, height: int = 48) -> Image.Image:
    """Red on the left, blue on the right: after a 90° clockwise turn, red on top, blue below."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _write_heic(path: Path, image: Image.Image, orientation: int) -> Path:
    pillow_heif.from_pillow(image).save(path, quality=95, exif=_exif(orientation))
    return path


def _write_avif(path: Path, image: Image.Image, orientation: int) -> Path:
    image.save(path, format="AVIF", quality=95, exif=_exif(orientation))
    return path


WRITERS = {".heic": _write_heic, ".heif": _write_heic, ".avif": _write_avif}


def _close(pixel, colour, tolerance: int = 40) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, colour))


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_phone_photo_decodes_upright_with_its_colours(tmp_path, suffix):
    path = WRITERS[suffix](tmp_path / f"IMG_0001{suffix}", _half_red_half_blue(), ROTATE_TO_DISPLAY_CLOCKWISE)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (48, 96)  # portrait, as the phone showed it
    pixels = np.asarray(image)
    assert _close(pixels[12, 24], RED) and _close(pixels[84, 24], BLUE)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_photo_without_rotation_stays_as_stored(tmp_path, suffix):
    path = WRITERS[suffix](tmp_path / f"flat{suffix}", _half_red_half_blue(), 1)
    image = load_image(path)
    assert image.size == (96, 48)
    pixels = np.asarray(image)
    assert _close(pixels[24, 12], RED) and _close(pixels[24, 84], BLUE)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_photo_bytes_and_downscaling(tmp_path, suffix):
    path = WRITERS[suffix](tmp_path / f"big{suffix}", _half_red_half_blue(256, 128), ROTATE_TO_DISPLAY_CLOCKWISE)
    image = load_image(path.read_bytes(), max_side=64, name=path.name)
    assert image.size == (32, 64)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_size_guard_applies_to_phone_formats(tmp_path, monkeypatch, suffix):
    path = WRITERS[suffix](tmp_path / f"bomb{suffix}", _half_red_half_blue(), 1)
    monkeypatch.setattr(imaging, "MAX_PIXELS", 96 * 48 - 1)
    with pytest.raises(ImageLoadError, match="too large .*decompression bomb"):
        load_image(path)
    monkeypatch.setattr(imaging, "MAX_PIXELS", 96 * 48)
    assert load_image(path).size == (96, 48)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_truncated_phone_photo_is_one_sentence(tmp_path, suffix):
    path = WRITERS[suffix](tmp_path / f"cut{suffix}", _half_red_half_blue(), 1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message
    assert any(word in message for word in ("truncated", "corrupt", "unreadable"))


def test_folder_catalog_takes_phone_formats(tmp_path):
    assert {".heic", ".heif", ".avif"} <= IMAGE_EXTENSIONS
    root = tmp_path / "photos"
    root.mkdir()
    _write_heic(root / "a.HEIC", _half_red_half_blue(), 1)
    _write_heic(root / "b.heif", _half_red_half_blue(), 1)
    _write_avif(root / "c.avif", _half_red_half_blue(), 1)
    _half_red_half_blue().save(root / "d.png")
    catalog = read_catalog(root)
    assert [entry.path.name for entry in catalog.entries] == ["a.HEIC", "b.heif", "c.avif", "d.png"]
