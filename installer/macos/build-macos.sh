#!/usr/bin/env bash
# Build BeautyLens.app (and a .dmg) on macOS.
# UNTESTED: written without a Mac (see installer/README.md).
#
#   installer/macos/build-macos.sh
#
# Needs Python 3.11 from python.org or Homebrew. PyPI's torch for macOS is the CPU/MPS build.
# The spec's BUNDLE step makes dist/BeautyLens.app; its main executable is `beautylens` (the window)
# and `Contents/MacOS/beauty-app` is the command line. For distribution outside your own machine the
# app must be signed and notarised (codesign --deep --options runtime, then notarytool): not done here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/build/installer"
VENV="$OUT/venv-macos"

rm -rf "$VENV"
python3.11 -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "torch==2.13.0" "torchvision==0.28.0"
"$VENV/bin/python" -m pip install "$ROOT" "pyinstaller>=6.10,<7"

(cd "$ROOT" && "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$OUT/dist" --workpath "$OUT/work" installer/beautylens.spec)

APP="$OUT/dist/BeautyLens.app"
# User data goes to ~/Library/Application Support/BeautyLens and ~/Library/Caches/BeautyLens.
"$APP/Contents/MacOS/beauty-app" --self-test

VERSION="$("$VENV/bin/python" -c 'import beauty_app; print(beauty_app.__version__)')"
hdiutil create -volname BeautyLens -srcfolder "$APP" -ov -format UDZO "$OUT/BeautyLens-$VERSION-macos.dmg"
echo "Built $APP and $OUT/BeautyLens-$VERSION-macos.dmg"
