"""The one image loader: every odd file a user may drop either loads as RGB or fails politely."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from beauty_app import imaging
from beauty_app.errors import ImageLoadError
from beauty_app.imaging import (
    IMAGE_EXTENSIONS,
    image_to_tensor,
    letterbox,
    letterbox_box,
    load_image,
)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _save(img: Image.Image, path: Path, **kwargs: object) -> Path:
    img.save(path, **kwargs)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims the given size (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _expect_error(path: Path, *words: str) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    message = str(info.value)
    assert path.name in message
    for word in words:
        assert word in message.lower(), message
    assert "\n" not in message
    return message


# --- accepted inputs ------------------------------------------------------------------------------


def test_extensions_are_lowercase_with_dot() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif",
            ".avif"} == set(IMAGE_EXTENSIONS)


def test_plain_rgb_png_round_trips_exactly(tmp_path: Path) -> None:
    src = _noise(40, 30)
    out = load_image(_save(src, tmp_path / "a.png"))
    assert out.mode == "RGB" and out.size == (40, 30)
    assert np.array_equal(np.asarray(out), np.asarray(src))


def test_bytes_source_and_name_in_message() -> None:
    buf = io.BytesIO()
    _noise(16, 16).save(buf, "PNG")
    assert load_image(buf.getvalue()).size == (16, 16)
    with pytest.raises(ImageLoadError, match="clipboard.png"):
        load_image(b"hello, not an image", name="clipboard.png")
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(b"")


def test_very_wide_image_is_accepted_and_downscaled(tmp_path: Path) -> None:
    path = _save(_noise(20000, 10), tmp_path / "wide.png")
    out = load_image(path, max_side=1024)
    assert out.mode == "RGB"
    assert out.size == (1024, 1)


def test_max_side_none_keeps_full_size(tmp_path: Path) -> None:
    path = _save(_noise(300, 120), tmp_path / "big.png")
    assert load_image(path, max_side=None).size == (300, 120)
    assert load_image(path, max_side=100).size == (100, 40)


def test_large_jpeg_is_decoded_in_draft_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import JpegImagePlugin

    path = _save(_noise(1600, 800), tmp_path / "photo.jpg", quality=80)
    original = JpegImagePlugin.JpegImageFile.draft
    decoded_sizes: list[tuple[int, int]] = []

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):
        result = original(self, mode, size)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = load_image(path, max_side=200)
    assert decoded_sizes == [(400, 200)]  # libjpeg decoded at 1/4 scale, not 1600x800
    assert out.size == (200, 100)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    # Pure magenta + yellow ink = red.
    path = _save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), tmp_path / "print.jpg", quality=95)
    arr = np.asarray(load_image(path)).astype(int)
    r, g, b = arr[..., 0].mean(), arr[..., 1].mean(), arr[..., 2].mean()
    assert r > 200 and g < 60 and b < 60


def test_16bit_png_with_small_range_is_stretched_not_clipped(tmp_path: Path) -> None:
    values = (1000 + (np.arange(64 * 64) % 200)).reshape(64, 64).astype(np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "scan16.png")
    assert Image.open(path).mode in ("I;16", "I")
    arr = np.asarray(load_image(path))
    assert arr.min() == 0 and arr.max() == 255  # the real range maps onto the full 8 bits
    assert len(np.unique(arr)) > 100  # the gradient survives


def test_16bit_big_endian_and_float_images(tmp_path: Path) -> None:
    values = (np.arange(32 * 32).reshape(32, 32) * 3 + 500).astype(">u2")
    img16b = Image.fromarray(values)
    assert img16b.mode == "I;16B"
    out = imaging._to_rgb(img16b)
    arr = np.asarray(out)
    assert out.mode == "RGB" and arr.min() == 0 and arr.max() == 255

    floats = np.linspace(0.0, 0.25, 32 * 32, dtype=np.float32).reshape(32, 32)
    path = _save(Image.fromarray(floats, "F"), tmp_path / "float.tif")
    arr = np.asarray(load_image(path))
    assert arr.min() == 0 and arr.max() == 255

    int32 = Image.fromarray((np.arange(32 * 32).reshape(32, 32) * 100_000).astype(np.int32), "I")
    arr = np.asarray(imaging._to_rgb(int32))
    assert arr.min() == 0 and arr.max() == 255


def test_palette_png_transparency_becomes_white(tmp_path: Path) -> None:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    for x in range(8):
        for y in range(16):
            img.putpixel((x, y), 1)  # left half red, right half index 0 = transparent black
    path = _save(img, tmp_path / "pal.png", transparency=0)
    arr = np.asarray(load_image(path))
    assert tuple(arr[0, 0]) == (255, 0, 0)
    assert tuple(arr[0, 15]) == (255, 255, 255)


def test_palette_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (16, 16), 1)
    img.putpalette([0, 0, 0, 0, 128, 255] + [0] * (254 * 3))
    assert tuple(np.asarray(load_image(_save(img, tmp_path / "p.gif")))[3, 3]) == (0, 128, 255)


def test_rgba_and_la_are_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (16, 16), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 8, 16))
    arr = np.asarray(load_image(_save(rgba, tmp_path / "cut.png")))
    assert tuple(arr[0, 0]) == (0, 0, 255)
    assert tuple(arr[0, 15]) == (255, 255, 255)

    half = Image.new("RGBA", (16, 16), (0, 0, 0, 128))
    grey = np.asarray(load_image(_save(half, tmp_path / "half.png")))[0, 0]
    assert all(120 <= c <= 135 for c in grey)  # 50 % black over white

    la = Image.new("LA", (16, 16), (0, 0))
    la.paste((0, 255), (0, 0, 8, 16))
    arr = np.asarray(load_image(_save(la, tmp_path / "la.png")))
    assert tuple(arr[0, 0]) == (0, 0, 0)
    assert tuple(arr[0, 15]) == (255, 255, 255)


def test_grayscale_and_bilevel_become_rgb(tmp_path: Path) -> None:
    out = load_image(_save(Image.new("L", (16, 16), 77), tmp_path / "g.png"))
    assert out.mode == "RGB" and tuple(np.asarray(out)[5, 5]) == (77, 77, 77)
    bits = Image.new("1", (16, 16), 1)
    out = load_image(_save(bits, tmp_path / "b.bmp"))
    assert tuple(np.asarray(out)[0, 0]) == (255, 255, 255)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    r, _, b = np.asarray(load_image(path))[8, 8]
    assert r > 200 and b < 50


def test_animated_webp_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), (0, 255, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    _, g, b = np.asarray(load_image(path))[8, 8]
    assert g > 200 and b < 50


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red stripe on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(img, tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.size == (20, 40)
    top = np.asarray(out)[2, 10].astype(int)
    assert top[0] > 200 and top[1] < 80  # the left stripe is now at the top


# --- rejected inputs ------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.jpg", "does not exist")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _expect_error(folder, "folder")


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_text_file_with_image_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are my shopping notes\nlipstick, mascara\n")
    _expect_error(path, "not an image")


def test_random_binary_is_not_recognised(tmp_path: Path) -> None:
    path = tmp_path / "blob.png"
    path.write_bytes(bytes(range(256)) * 4)
    _expect_error(path, "not a recognised image")


def test_broken_heic_is_named_as_heic(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.HEIC.jpg"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200)
    _expect_error(path, "unreadable heic file", "damaged")


def test_jpeg_xl_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 200)
    _expect_error(path, "unsupported", "jpeg xl")


def test_eps_is_never_handed_to_ghostscript(tmp_path: Path) -> None:
    path = tmp_path / "evil.jpg"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n")
    _expect_error(path, "unsupported", "postscript")


def test_truncated_jpeg(tmp_path: Path) -> None:
    full = _save(_noise(128, 128), tmp_path / "full.jpg", quality=90).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(full[: len(full) // 2])
    _expect_error(path, "truncated")


def test_truncated_png(tmp_path: Path) -> None:
    full = _save(_noise(128, 128), tmp_path / "full.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(full[: len(full) // 2])
    message = _expect_error(path)
    assert "truncated" in message or "corrupt" in message


def test_corrupt_png_data(tmp_path: Path) -> None:
    data = bytearray(_save(_noise(64, 64), tmp_path / "ok.png").read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 200] = b"\xff" * 200
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt")


def test_decompression_bomb_header_rejected_by_pil(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    _expect_error(path, "too large", "decompression bomb")


def test_decompression_bomb_rejected_by_own_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(_noise(64, 64), tmp_path / "ok.png")
    monkeypatch.setattr(imaging, "MAX_PIXELS", 1000)
    message = _expect_error(path, "too large", "64x64")
    assert "1,000" in message


def test_decompression_bomb_warning_as_error(tmp_path: Path) -> None:
    # Between PIL's warning and error thresholds; with warnings turned into errors PIL raises the
    # warning from Image.open, which must still come out as an ImageLoadError.
    path = tmp_path / "warnbomb.png"
    path.write_bytes(_png_header_only(10_000, 10_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        _expect_error(path, "too large")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _expect_error(path, "too large", "10000x10000")


def test_tiny_image_rejected_with_size(tmp_path: Path) -> None:
    _expect_error(_save(Image.new("RGB", (1, 1)), tmp_path / "dot.png"), "too small", "1x1")
    _expect_error(_save(Image.new("RGB", (100, 7)), tmp_path / "line.png"), "100x7")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(_noise(16, 16), tmp_path / "secret.png")
    if os.geteuid() != 0:
        path.chmod(0)
        try:
            _expect_error(path, "permission denied")
        finally:
            path.chmod(0o644)

    # Root can read mode-000 files, so also simulate the refusal the OS gives other users.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(imaging, "open", refuse, raising=False)
    _expect_error(path, "permission denied")


def test_unexpected_decoder_exception_becomes_image_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(_noise(16, 16), tmp_path / "odd.png")

    def boom(self: object) -> None:
        raise ValueError("decoder exploded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    _expect_error(path, "decoder exploded")


def test_unexpected_open_exception_becomes_image_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(_noise(16, 16), tmp_path / "odd2.png")

    def boom(*args: object, **kwargs: object) -> None:
        raise struct.error("unpack requires a buffer")

    monkeypatch.setattr(imaging.Image, "open", boom)
    _expect_error(path, "corrupt")


def test_pil_global_state_untouched(tmp_path: Path) -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    path = tmp_path / "cut.png"
    path.write_bytes(_save(_noise(64, 64), tmp_path / "x.png").read_bytes()[:300])
    with pytest.raises(ImageLoadError):
        load_image(path)
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == before


# --- letterbox and tensors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "h", "size", "expected"),
    [(200, 100, 100, (0, 25, 100, 50)), (100, 200, 100, (25, 0, 50, 100)), (50, 50, 64, (0, 0, 64, 64))],
)
def test_letterbox_box(w: int, h: int, size: int, expected: tuple[int, int, int, int]) -> None:
    assert letterbox_box(w, h, size) == expected


def test_letterbox_pads_white_and_matches_box() -> None:
    img = Image.new("RGB", (200, 100), (10, 20, 30))
    out = letterbox(img, 64)
    assert out.size == (64, 64) and out.mode == "RGB"
    left, top, new_w, new_h = letterbox_box(200, 100, 64)
    arr = np.asarray(out)
    assert tuple(arr[0, 0]) == (255, 255, 255)  # padding
    assert tuple(arr[top + new_h // 2, left + new_w // 2]) == (10, 20, 30)  # image
    assert tuple(arr[top + new_h, 32]) == (255, 255, 255)  # just below the image
    assert tuple(letterbox(img, 64, fill=(0, 0, 0)).getpixel((0, 0))) == (0, 0, 0)


def test_image_to_tensor_normalises() -> None:
    import torch

    img = Image.new("RGB", (5, 4), (255, 0, 51))
    mean, std = (0.5, 0.5, 0.2), (0.5, 0.25, 0.1)
    t = image_to_tensor(img, mean, std)
    assert t.shape == (3, 4, 5) and t.dtype == torch.float32 and t.is_contiguous()
    assert torch.allclose(t[:, 0, 0], torch.tensor([1.0, -2.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError):
        image_to_tensor(img, mean, (1.0, 0.0, 1.0))
