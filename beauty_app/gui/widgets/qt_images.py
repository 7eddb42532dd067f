"""Conversions between numpy / PIL images and Qt images (the only place that knows both)."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage, QPixmap


def numpy_to_qimage(rgb: np.ndarray) -> QImage:
    """(H,W,3) uint8 RGB -> QImage (a deep copy, safe after the array is gone)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def pil_to_qimage(image: Image.Image) -> QImage:
    return numpy_to_qimage(np.asarray(image.convert("RGB")))


def qimage_to_pil(image: QImage) -> Image.Image:
    """QImage (any format) -> RGB PIL image (pasted clipboard images)."""
    converted = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = converted.width(), converted.height()
    buffer = converted.constBits()
    stride = converted.bytesPerLine()
    array = np.frombuffer(buffer, dtype=np.uint8, count=stride * height).reshape(height, stride)
    return Image.fromarray(array[:, : width * 3].reshape(height, width, 3).copy())


def bytes_to_pixmap(data: bytes | None) -> QPixmap:
    pixmap = QPixmap()
    if data:
        pixmap.loadFromData(data)
    return pixmap
