"""Guards against a Qt binding that corrupts Python's reference counts (PySide6 6.12.0 on Python 3.11)."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_void_qt_calls_do_not_leak_references_to_none(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(500):
        label.setText("x")
        label.update()
    # A healthy binding leaves None's count where it was (within noise); the broken one drops it by 1000.
    assert abs(sys.getrefcount(None) - before) < 50
