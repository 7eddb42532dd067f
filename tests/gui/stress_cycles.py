"""Issue 19's stress: repeat the Training tab's mine / start / cancel / resume cycle and the Catalog tab's
build / cancel / resume cycle in fresh main windows, closing (and deleting) each window after its cycle.

Run as a script in a child process by ``test_stress.py`` (so a segmentation fault is a failed test, not a
dead pytest): ``python -X faulthandler tests/gui/stress_cycles.py WORKDIR CYCLES``. Exit status 0 when
every cycle ended as expected; an exception or a crash otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

STEP_TIMEOUT_S = 240


def wait_until(app: QApplication, predicate, what: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
    """Run the event loop (deferred deletes included) until `predicate()` holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def training_cycle(app, window, catalog_csv: Path, work: Path) -> None:
    tab = window.train_tab
    tab.min_images.setValue(2)
    tab.start_mining(str(catalog_csv), str(work / "mined"))
    wait_until(app, lambda: tab.mode == "idle", "mining")
    assert (work / "mined" / "train.csv").is_file(), tab.log_view.toPlainText()

    out = work / "run.pt"
    tab.out_edit.setText(str(out))
    form = tab.form
    form.set_choice(form.backbone, "tiny")
    form.iterations.setValue(500)
    form.stage1_iterations.setValue(2)
    form.batch_size.setValue(4)
    form.input_size.setValue(64)
    form.workers.setValue(0)
    form.checkpoint_every.setValue(0)
    form.device.setCurrentText("cpu")
    steps = []
    tab.process.eventReceived.connect(lambda event: steps.append(event) if event.get("event") == "step" else None)
    tab.start()
    wait_until(app, lambda: bool(steps) or tab.mode == "idle", "the first training step")
    tab.cancel()
    wait_until(app, lambda: tab.mode == "idle", "training to stop")
    assert tab.resume_button.isEnabled(), tab.log_view.toPlainText()
    form.iterations.setValue(2)
    tab.resume()
    wait_until(app, lambda: tab.mode == "idle", "the resumed training")
    assert out.is_file(), tab.log_view.toPlainText()


def catalog_cycle(app, window, catalog: Path, checkpoint: Path, out: Path, cancel_at_once: bool) -> None:
    tab = window.catalog_tab
    tab.catalog_edit.setText(str(catalog))
    tab.model_combo.setCurrentText(str(checkpoint))
    tab.out_edit.setText(str(out))
    assert tab.start_build("build")
    if not cancel_at_once:  # otherwise the cancel arrives before the worker has started the job
        wait_until(app, lambda: tab.progress.bar.value() > 0 or not tab.busy, "the first indexed batch")
    tab.cancel()
    wait_until(app, lambda: not tab.busy, "the build to stop")
    if (out / "catalog.sqlite").is_file():
        assert tab.start_build("resume")
    else:  # cancelled before anything was written
        assert tab.start_build("build")
    wait_until(app, lambda: not tab.busy, "the resumed build")
    assert "Index ready" in tab.message.text(), tab.message.text()


def main(workdir: str, cycles: int) -> int:
    from beauty_app.demo.products import generate_demo
    from beauty_app.gui.main_window import MainWindow
    from beauty_app.gui.settings import Settings
    from tests.conftest import make_tiny_checkpoint

    app = QApplication.instance() or QApplication(sys.argv[:1])
    root = Path(workdir)
    demo = generate_demo(root / "demo", n_products=20, seed=5, image_size=128)
    checkpoint = make_tiny_checkpoint(root / "tiny.pt")
    catalog = root / "catalog"
    catalog.mkdir()
    for copy in range(4):  # enough images that a build takes several batches
        for image in sorted((demo.root / "catalog").glob("*.jpg")):
            shutil.copy(image, catalog / f"{image.stem}_{copy}.jpg")

    for cycle in range(cycles):
        started = time.monotonic()
        window = MainWindow(Settings(root / f"settings-{cycle}.ini"), device="cpu")
        window.show()
        training_cycle(app, window, demo.catalog_csv, root / f"train-{cycle}")
        for attempt in range(3):
            catalog_cycle(app, window, catalog, checkpoint, root / f"index-{cycle}-{attempt}",
                          cancel_at_once=attempt % 2 == 0)
        window.close()
        assert not window.client.thread.isRunning(), "the worker thread outlived the window"
        window.deleteLater()
        wait_until(app, lambda: True, "deferred deletes")
        print(f"cycle {cycle + 1}/{cycles} done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
