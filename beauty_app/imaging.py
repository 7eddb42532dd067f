"""The one image loader used for catalog images and query photos.

Every picture that enters the app goes through :func:`load_image`, which turns whatever the user
dropped (phone photo with EXIF rotation, iPhone HEIC, AVIF, CMYK print JPEG, 16-bit PNG, transparent
product cut-out, animated GIF) into a plain 8-bit RGB image of bounded size, or raises
:class:`ImageLoadError` with one sentence naming the file and the reason. PIL's global settings are
never changed here; the one global step is registering pi-heif's HEIF opener with PIL, on first use.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from beauty_app.errors import ImageLoadError

if TYPE_CHECKING:  # torch is imported lazily: the CLI's quick commands should not pay for it
    import torch

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
"""File extensions (lower case, with the dot) that catalogs and file dialogs treat as images."""

UNSUPPORTED_IMAGE_EXTENSIONS: dict[str, str] = {
    ".jxl": "JPEG XL", ".jp2": "JPEG 2000",
    ".svg": "SVG", ".psd": "Photoshop PSD", ".dng": "camera raw", ".cr2": "camera raw", ".nef": "camera raw",
    ".arw": "camera raw",
}
"""Extensions of image formats people keep photos in that the app cannot decode, with their names.

Catalogs report such files as skipped with a reason instead of passing over them in silence."""

MAX_PIXELS: int = 80_000_000
"""Images that would decode to more pixels than this are rejected as decompression bombs.

Checked from the header, before pixel memory is allocated. A JPEG counts at the reduced scale
libjpeg decodes it at when a ``max_side`` is given, so a very large photo still loads cheaply."""

MIN_SIDE: int = 8
"""Images whose width or height is below this are rejected as too small to describe a product."""

WHITE: tuple[int, int, int] = (255, 255, 255)

# Only the formats behind IMAGE_EXTENSIONS (plus DIB, BMP's headerless twin; camera MPO files come
# through the JPEG opener) are decoded. Restricting PIL's format probing also keeps plugins such as
# EPS, which shells out to Ghostscript, away from files a user drops on the app. HEIF (HEIC, the
# iPhone's default) is pi-heif's opener; AVIF is Pillow's own (its wheels carry libavif from 11.3).
_ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "GIF", "TIFF", "HEIF", "AVIF")

# Magic numbers of formats people commonly try; used only to word the error message.
_HEIF_BRANDS: dict[bytes, str] = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
# Sniffed names of formats that the loader does decode, with the PIL format that opens them.
_DECODABLE_CONTAINERS: dict[str, str] = {"HEIC": "HEIF", "HEIF": "HEIF", "AVIF": "AVIF"}
_MAGIC_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "PostScript"),
    (b"8BPS", "Photoshop PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"II\xbc", "JPEG XR"),
)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;16LS", "I;16BS", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    max_side: int | None = 1024,
    name: str | None = None,
) -> Image.Image:
    """Decode an image file (or its bytes) into an 8-bit RGB picture.

    EXIF orientation is applied; transparency is composited onto white (as catalog images are);
    palette, grayscale, 1-bit, CMYK, 16-bit and float images are converted; animated files give
    their first frame. JPEGs are decoded at a reduced scale when that suffices, and the result is
    downscaled so that its longer side is at most ``max_side``.

    Args:
        source: A file path, or the encoded bytes of an image (e.g. from a drag and drop).
        max_side: Longest side of the returned image in pixels; ``None`` keeps the full size.
        name: How to call the image in error messages when ``source`` is bytes.

    Returns:
        A new RGB image, detached from any file.

    Raises:
        ImageLoadError: The file is missing, unreadable, empty, not an image, in an unsupported
            format, truncated or corrupt, too large (decompression bomb) or too small.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")

    if isinstance(source, (bytes, bytearray, memoryview)):
        label = f'Image "{name}"' if name else "The image data"
        data = bytes(source)
        if not data:
            raise ImageLoadError(f"{label} is empty (0 bytes).")
        with io.BytesIO(data) as stream:
            return _decode(stream, label, max_side)

    path = Path(source)
    label = f'Image file "{path}"'
    _check_path(path, label)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the pixels are decoded
    except PermissionError:
        raise ImageLoadError(f"{label} cannot be read (permission denied).") from None
    except FileNotFoundError:
        raise ImageLoadError(f"{label} does not exist.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{label} is a folder, not an image.") from None
    except OSError as exc:
        raise ImageLoadError(f"{label} cannot be read ({_os_reason(exc)}).") from None
    with fh:
        return _decode(fh, label, max_side)


def _check_path(path: Path, label: str) -> None:
    """Reject paths that are not readable regular, non-empty files, before PIL sees them."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(f"{label} does not exist.") from None
    except PermissionError:
        raise ImageLoadError(f"{label} cannot be read (permission denied).") from None
    except OSError as exc:
        raise ImageLoadError(f"{label} cannot be read ({_os_reason(exc)}).") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(f"{label} is a folder, not an image.")
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO or a device would block or stream forever.
        raise ImageLoadError(f"{label} is not a regular file.")
    if st.st_size == 0:
        raise ImageLoadError(f"{label} is empty (0 bytes).")


MAX_DECODE_BYTES: int = 512 * 2**20
"""Memory one image may take while it is decoded and converted to 8-bit RGB (see _check_decode_size)."""

# PIL warns on stderr from Image.open for images over its own limit (89 megapixels); ours is lower
# and checked before decoding, so the warning would only print before our own sentence.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _decode_bytes_per_pixel(img: Image.Image) -> int:
    """Peak bytes a pixel of `img` takes from decoding to 8-bit RGB, by its decoded mode."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        # 2 or 4 bytes decoded, then _stretch_to_8bit holds three float64 copies and the 8-bit result.
        return (2 if mode.startswith("I;16") else 4) + 3 * 8 + 1 + 3
    try:
        bands = Image.getmodebands(mode)
    except (KeyError, ValueError):  # a mode PIL decodes but does not list: assume the widest 8-bit one
        bands = 4
    if mode in _ALPHA_MODES or "transparency" in img.info:
        return bands + 4 + 3  # decoded, converted to RGBA, pasted on an RGB canvas
    return bands + (0 if mode == "RGB" else 3)


def _check_decode_size(img: Image.Image, label: str, size: tuple[int, int]) -> None:
    """Refuse, from the header, an image whose decode would pass MAX_PIXELS or MAX_DECODE_BYTES.

    Memory is pixels times bytes per pixel, not pixels alone: a 154 KB 16-bit 8900x8900 PNG
    is under the pixel limit yet took 2.8 GB to decode and stretch to 8 bits.
    """
    pixels = img.width * img.height
    if pixels > MAX_PIXELS:
        raise ImageLoadError(_bomb_message(label, size))
    needed = pixels * _decode_bytes_per_pixel(img)
    if needed > MAX_DECODE_BYTES:
        raise ImageLoadError(
            f"{label} is too large to decode safely ({size[0]}x{size[1]} pixels in {img.mode} mode would take "
            f"{needed / 2**20:,.0f} MiB, more than {MAX_DECODE_BYTES / 2**20:,.0f} MiB; possible decompression bomb).")


def _bomb_message(label: str, size: tuple[int, int] | None = None) -> str:
    dims = f"{size[0]}x{size[1]} pixels, " if size else ""
    return f"{label} is too large ({dims}more than {MAX_PIXELS:,} pixels; possible decompression bomb)."


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or exc.__class__.__name__).lower()


@functools.cache
def _open_formats() -> tuple[str, ...]:
    _register_heif()
    # Image.open raises KeyError for a listed format whose plugin this PIL build lacks.
    Image.init()
    return tuple(fmt for fmt in _ALLOWED_FORMATS if fmt in Image.OPEN)


def _register_heif() -> None:
    """Let PIL open HEIC/HEIF through pi-heif (decoder only; libheif applies the rotation itself)."""
    try:
        import pi_heif
    except ImportError:  # a dependency; without it HEIC files are reported as unsupported
        logger.warning("pi-heif is not installed: HEIC/HEIF photos cannot be opened")
        return
    # Phone HEICs carry thumbnails and depth maps that a search never uses; don't decode them.
    pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _decode(stream: io.BufferedIOBase | io.BytesIO, label: str, max_side: int | None) -> Image.Image:
    """Open, guard, fully decode and normalise one image from an open binary stream."""
    try:
        img = Image.open(stream, formats=_open_formats())
    except Image.DecompressionBombError:
        raise ImageLoadError(_bomb_message(label)) from None
    except Image.DecompressionBombWarning:
        # Only raised as an exception when the caller turned warnings into errors.
        raise ImageLoadError(_bomb_message(label)) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label} {_describe_unknown(stream)}.") from None
    except MemoryError:
        raise ImageLoadError(f"{label} is too large to decode in memory.") from None
    except Exception as exc:  # any PIL parser failure is a bad file, not a crash
        logger.debug("Image.open failed for %s", label, exc_info=True)
        raise ImageLoadError(f"{label} is corrupt and cannot be decoded ({_exc_reason(exc)}).") from None

    try:
        return _finish(img, label, max_side)
    finally:
        img.close()


def _finish(img: Image.Image, label: str, max_side: int | None) -> Image.Image:
    width, height = img.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageLoadError(
            f"{label} is too small ({width}x{height} pixels; both sides must be at least {MIN_SIDE})."
        )

    try:
        if getattr(img, "is_animated", False):
            img.seek(0)
        if max_side is not None and img.format in ("JPEG", "MPO"):
            # libjpeg can decode at 1/2, 1/4 or 1/8 scale; draft keeps the result >= max_side.
            img.draft("RGB", (max_side, max_side))
        # Checked on the size that will be decoded, before any pixel memory is allocated.
        _check_decode_size(img, label, (width, height))
        img.load()  # forces the full decode so truncated or corrupt data fails here
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(f"{label} is too large to decode in memory.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(_bomb_message(label)) from None
    except Exception as exc:  # OSError, SyntaxError, EOFError, ValueError from decoders
        logger.debug("Decoding failed for %s", label, exc_info=True)
        reason = _exc_reason(exc)
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            raise ImageLoadError(
                f"{label} is truncated (the file ends before the image data does)."
            ) from None
        raise ImageLoadError(f"{label} is corrupt and cannot be decoded ({reason}).") from None

    try:
        oriented = _apply_orientation(img, label)
        # Downscaling first means a large image is never copied at full size.
        result = _downscale(_to_rgb(oriented), max_side)
        if result is img:
            result = img.copy()  # detach from the file handle that the caller is about to close
        return result
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(f"{label} is too large to convert in memory.") from None
    except Exception as exc:  # unexpected PIL conversion failure
        logger.debug("Converting %s to RGB failed", label, exc_info=True)
        raise ImageLoadError(
            f"{label} has a colour format that cannot be converted to RGB ({img.mode}: {_exc_reason(exc)})."
        ) from None


def _apply_orientation(img: Image.Image, label: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not cost the user the picture
        logger.warning("Ignoring unreadable EXIF orientation of %s", label, exc_info=True)
        return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent areas become white."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in _SIXTEEN_BIT_MODES:
        return _stretch_to_8bit(img).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _stretch_to_8bit(img: Image.Image) -> Image.Image:
    """Map a 16/32-bit or float grayscale image to 8-bit L by its actual value range.

    Clipping would turn most 16-bit scans white and 12-bit sensor data black; stretching keeps the
    picture visible whatever range the encoder used.
    """
    with np.errstate(invalid="ignore"):  # signalling NaNs in float files; masked out just below
        arr = np.asarray(img).astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return Image.new("L", img.size, 0)
    lo = float(arr[finite].min())
    hi = float(arr[finite].max())
    arr = np.where(finite, arr, lo)
    if hi > lo:
        scaled = (arr - lo) * (255.0 / (hi - lo))
    else:
        # A flat image has no range to stretch: keep its level relative to the nominal range.
        nominal = 255.0 if img.mode == "F" and hi <= 1.0 else (65535.0 if hi > 255.0 else 255.0)
        scaled = np.full_like(arr, min(max(lo, 0.0), nominal) * 255.0 / nominal)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _downscale(img: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is None:
        return img
    width, height = img.size
    longest = max(width, height)
    if longest <= max_side:
        return img
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap lets PIL shrink by integer factors first: fast and memory-light, same quality.
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _describe_unknown(stream: io.BufferedIOBase | io.BytesIO) -> str:
    """Word why PIL could not identify a file: a known but unsupported format, or not an image."""
    try:
        stream.seek(0)
        head = stream.read(64)
    except (OSError, ValueError):  # only used for wording; a closed or odd stream reads as empty
        head = b""
    fmt = _sniff_format(head)
    if fmt in _DECODABLE_CONTAINERS and _DECODABLE_CONTAINERS[fmt] in _open_formats():
        return f"is an unreadable {fmt} file (damaged, or a kind of {fmt} this app cannot decode)"
    if fmt:
        return f"is in an unsupported image format ({fmt}); convert it to JPEG or PNG first"
    if head and _looks_like_text(head):
        return "is not an image (it contains text)"
    return "is not a recognised image file"


def _sniff_format(head: bytes) -> str | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12], "ISO media (HEIF/MP4)")
    for magic, fmt in _MAGIC_FORMATS:
        if head.startswith(magic):
            return fmt
    stripped = head.lstrip().lower()
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in head.lower()):
        return "SVG"
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sample.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\r\n\t\ufeff" for ch in text)


def _exc_reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text if text else exc.__class__.__name__


def letterbox_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """Where an image of ``width`` x ``height`` lands inside a ``size`` x ``size`` letterbox.

    Args:
        width: Width of the source image in pixels.
        height: Height of the source image in pixels.
        size: Side of the square canvas.

    Returns:
        ``(left, top, new_w, new_h)``: offset and size of the resized image on the canvas.
    """
    if width < 1 or height < 1 or size < 1:
        raise ValueError(f"letterbox needs positive sizes, got {width}x{height} into {size}")
    scale = size / max(width, height)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    return (size - new_w) // 2, (size - new_h) // 2, new_w, new_h


def letterbox(img: Image.Image, size: int, fill: tuple[int, int, int] = WHITE) -> Image.Image:
    """Resize keeping the aspect ratio so the longer side is ``size``, then pad to a square.

    Catalog images are products on white, so the padding is white by default; the network then
    sees padded queries the way it saw padded catalog images.

    Args:
        img: An RGB image (other modes are converted).
        size: Side of the square result.
        fill: Padding colour.

    Returns:
        A new ``size`` x ``size`` RGB image; :func:`letterbox_box` tells where ``img`` landed.
    """
    if img.mode != "RGB":
        img = _to_rgb(img)
    left, top, new_w, new_h = letterbox_box(img.width, img.height, size)
    resized = img if (new_w, new_h) == img.size else img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), tuple(fill))
    canvas.paste(resized, (left, top))
    return canvas


def image_to_tensor(img: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Turn an RGB image into a normalised float32 tensor of shape (3, H, W).

    Args:
        img: An RGB image (other modes are converted).
        mean: Per-channel mean on the 0..1 scale.
        std: Per-channel standard deviation on the 0..1 scale; must be non-zero.

    Returns:
        ``(pixels / 255 - mean) / std`` as a contiguous float32 tensor.
    """
    import torch

    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std must have three values (R, G, B)")
    if any(s == 0 for s in std):
        raise ValueError("std must not contain zeros")
    if img.mode != "RGB":
        img = _to_rgb(img)
    arr = np.asarray(img, dtype=np.uint8)
    tensor = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return tensor.sub_(mean_t).div_(std_t).contiguous()
