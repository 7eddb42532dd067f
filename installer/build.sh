#!/usr/bin/env bash
# Build the Linux bundle of BeautyLens: a folder with `beautylens` (window) and `beauty-app` (CLI),
# a .tar.gz of it, and an AppImage when `appimagetool` is on PATH. Then check the built bundle:
# `beauty-app --self-test`, the window starting under QT_QPA_PLATFORM=offscreen, and nothing written
# into the bundle by either.
#
#   installer/build.sh [--out DIR] [--reuse-venv] [--no-tar] [--no-checks]
#
# Everything happens in a clean virtual environment made for the build (DIR/venv), never in the
# project's own .venv. By default torch is the CPU-only build (BEAUTYLENS_TORCH, default torch==2.13.0,
# which pip takes from a CPU wheel where one is offered: this machine's disk, or an index given in
# PIP_EXTRA_INDEX_URL); a CUDA build works too but makes the bundle several GB larger.
#
# Environment: PYTHON (the interpreter for the venv), BEAUTYLENS_TORCH, BEAUTYLENS_TORCHVISION
# (torchvision matching that torch, default torchvision==0.28.0), BEAUTYLENS_PYINSTALLER.
# Exit status: 0 built and checked, 1 a step failed, 3 not enough free disk space.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/build/installer"
REUSE_VENV=0
MAKE_TAR=1
CHECKS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
        --reuse-venv) REUSE_VENV=1; shift ;;
        --no-tar) MAKE_TAR=0; shift ;;
        --no-checks) CHECKS=0; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
done

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_SPEC="${BEAUTYLENS_TORCH:-torch==2.13.0}"
TORCHVISION_SPEC="${BEAUTYLENS_TORCHVISION:-torchvision==0.28.0}"
PYINSTALLER_SPEC="${BEAUTYLENS_PYINSTALLER:-pyinstaller>=6.10,<7}"
NEED_GB=7  # venv ~1.3 GB, PyInstaller work files ~1.5 GB, bundle ~1.2 GB, archive ~0.5 GB, margin

VENV="$OUT/venv"
DIST="$OUT/dist"
WORK="$OUT/work"
BUNDLE="$DIST/BeautyLens"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step_started=0
declare -a TIMINGS=()
step() { step_started=$SECONDS; echo; echo "==> $*"; }
done_step() { TIMINGS+=("$1=$((SECONDS - step_started))"); echo "    ($1: $((SECONDS - step_started)) s)"; }

mkdir -p "$OUT"
free_gb=$(df -Pk "$OUT" | awk 'NR==2 {print int($4 / 1048576)}')
if [ "$free_gb" -lt "$NEED_GB" ]; then
    echo "build.sh: only ${free_gb} GB free under $OUT; the build needs about ${NEED_GB} GB." >&2
    exit 3
fi
BUILD_STARTED=$SECONDS

# --------------------------------------------------------------------------------------- venv
step "Clean build environment in $VENV ($("$PYTHON" --version 2>&1))"
if [ "$REUSE_VENV" = 1 ] && [ -x "$VENV/bin/pyinstaller" ]; then
    echo "    reusing it (--reuse-venv); refreshing the app itself"
    "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$ROOT"
else
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    PIP=("$VENV/bin/python" -m pip install --quiet)
    "${PIP[@]}" --upgrade pip
    # torch first and on its own, so the CPU build is the one the other packages then accept.
    "${PIP[@]}" "$TORCH_SPEC"
    "${PIP[@]}" "$TORCHVISION_SPEC"
    "${PIP[@]}" "$ROOT" "$PYINSTALLER_SPEC"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# torchvision beside a CPU torch needs the shim (see installer/torchvision_ops_shim.py), also for
# PyInstaller's hooks, which import the bundled packages in this environment.
cp "$ROOT/installer/torchvision_ops_shim.py" "$SITE/"
echo "import torchvision_ops_shim; torchvision_ops_shim.install()" > "$SITE/beautylens_torchvision_shim.pth"
"$VENV/bin/python" - <<'EOF'
import torch, torchvision, timm, faiss, PySide6
print(f"    torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU only'}), "
      f"torchvision {torchvision.__version__}, timm {timm.__version__}, faiss {faiss.__version__}, "
      f"PySide6 {PySide6.__version__}")
EOF
done_step venv_s

# --------------------------------------------------------------------------------------- freeze
step "PyInstaller ($("$VENV/bin/pyinstaller" --version))"
rm -rf "$BUNDLE"
(cd "$ROOT" && "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" installer/beautylens.spec)
# Desktop integration files beside the executables (the app reads its own copies from _internal/).
cp "$ROOT/resources/beautylens.desktop" "$ROOT/resources/icons/beautylens.png" "$BUNDLE/"
cp "$ROOT/installer/linux/install-desktop-entry.sh" "$BUNDLE/"
chmod +x "$BUNDLE/install-desktop-entry.sh"
done_step pyinstaller_s

VERSION="$("$VENV/bin/python" -c 'import beauty_app; print(beauty_app.__version__)')"
ARCH="$(uname -m)"

# --------------------------------------------------------------------------------------- checks
SELF_TEST_OK=null
GUI_OK=null
if [ "$CHECKS" = 1 ]; then
    step "Checks on the built bundle"
    CHECK_HOME="$(mktemp -d "$OUT/check-home.XXXXXX")"
    # The bundle's user folders go to a scratch home, so the check neither sees nor leaves user data.
    export XDG_CACHE_HOME="$CHECK_HOME/cache" XDG_DATA_HOME="$CHECK_HOME/data" \
        XDG_CONFIG_HOME="$CHECK_HOME/config" XDG_STATE_HOME="$CHECK_HOME/state"
    snapshot() { (cd "$BUNDLE" && find . -printf '%p %s %T@\n' | sort); }
    dangling="$(find "$BUNDLE" -xtype l)"
    if [ -n "$dangling" ]; then
        echo "build.sh: the bundle has links to files it lacks:" >&2
        echo "$dangling" | head -20 >&2
        exit 1
    fi
    snapshot > "$OUT/bundle-before.txt"

    echo "--- beauty-app --self-test"
    if "$BUNDLE/beauty-app" --self-test 2>&1 | tee "$OUT/self-test.txt"; then
        SELF_TEST_OK=true
    else
        SELF_TEST_OK=false
    fi

    echo "--- beautylens (the window, offscreen, 25 s)"
    set +e
    QT_QPA_PLATFORM=offscreen timeout 25 "$BUNDLE/beautylens" > "$OUT/gui.txt" 2>&1
    gui_rc=$?
    set -e
    gui_log="$XDG_STATE_HOME/BeautyLens/log/beautylens.log"
    # Still running when stopped (124) and a log file without a crash: the window came up.
    if [ "$gui_rc" = 124 ] && [ -f "$gui_log" ] && ! grep -q "uncaught exception\|Traceback" "$gui_log" "$OUT/gui.txt"; then
        GUI_OK=true
        echo "    the window ran until stopped; log: $(wc -l < "$gui_log") lines, no errors"
    else
        GUI_OK=false
        echo "    the window did not start (exit $gui_rc):" >&2
        tail -n 30 "$OUT/gui.txt" "$gui_log" 2>/dev/null >&2 || true
    fi

    snapshot > "$OUT/bundle-after.txt"
    if ! diff -q "$OUT/bundle-before.txt" "$OUT/bundle-after.txt" > /dev/null; then
        echo "build.sh: running the bundle changed files inside it:" >&2
        diff "$OUT/bundle-before.txt" "$OUT/bundle-after.txt" | head -20 >&2
        SELF_TEST_OK=false
    fi
    rm -rf "$CHECK_HOME"
    unset XDG_CACHE_HOME XDG_DATA_HOME XDG_CONFIG_HOME XDG_STATE_HOME
    done_step checks_s
fi

# --------------------------------------------------------------------------------------- archives
TARBALL=""
if [ "$MAKE_TAR" = 1 ]; then
    step "Archive"
    TARBALL="$OUT/BeautyLens-$VERSION-linux-$ARCH.tar.gz"
    tar -C "$DIST" -czf "$TARBALL" BeautyLens
    echo "    $TARBALL"
    done_step tar_s
fi

APPIMAGE=""
if command -v appimagetool > /dev/null; then
    step "AppImage"
    APPDIR="$OUT/BeautyLens.AppDir"
    rm -rf "$APPDIR" && mkdir -p "$APPDIR/usr"
    cp -a "$BUNDLE" "$APPDIR/usr/BeautyLens"
    cp "$ROOT/resources/beautylens.desktop" "$ROOT/resources/icons/beautylens.png" "$APPDIR/"
    printf '#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/usr/BeautyLens/beautylens" "$@"\n' > "$APPDIR/AppRun"
    chmod +x "$APPDIR/AppRun"
    APPIMAGE="$OUT/BeautyLens-$VERSION-$ARCH.AppImage"
    ARCH="$ARCH" appimagetool "$APPDIR" "$APPIMAGE"
    done_step appimage_s
else
    echo; echo "==> AppImage skipped: appimagetool is not on PATH"
fi

# --------------------------------------------------------------------------------------- report
TOTAL=$((SECONDS - BUILD_STARTED))
BUNDLE_BYTES=$(du -sb "$BUNDLE" | cut -f1)
TAR_BYTES=$([ -n "$TARBALL" ] && stat -c %s "$TARBALL" || echo null)
{
    echo "{"
    echo "  \"version\": \"$VERSION\", \"arch\": \"$ARCH\", \"bundle\": \"$BUNDLE\","
    echo "  \"bundle_bytes\": $BUNDLE_BYTES, \"tar\": \"$TARBALL\", \"tar_bytes\": $TAR_BYTES,"
    echo "  \"appimage\": \"$APPIMAGE\", \"self_test_ok\": $SELF_TEST_OK, \"gui_ok\": $GUI_OK,"
    for t in "${TIMINGS[@]}"; do echo "  \"${t%%=*}\": ${t#*=},"; done
    echo "  \"total_s\": $TOTAL"
    echo "}"
} > "$OUT/build-info.json"
echo
echo "Bundle: $BUNDLE ($((BUNDLE_BYTES / 1048576)) MiB)"
[ -n "$TARBALL" ] && echo "Archive: $TARBALL ($((TAR_BYTES / 1048576)) MiB)"
echo "Build time: ${TOTAL} s (${TIMINGS[*]}); details in $OUT/build-info.json"
if [ "$SELF_TEST_OK" = false ] || [ "$GUI_OK" = false ]; then
    echo "build.sh: the bundle was built but its checks failed (self-test: $SELF_TEST_OK, window: $GUI_OK)." >&2
    exit 1
fi
