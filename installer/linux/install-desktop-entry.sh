#!/usr/bin/env sh
# Add BeautyLens to the desktop's application menu for the current user (no root needed):
# a .desktop entry pointing at this folder's `beautylens`, and the icon. Run it from the unpacked
# bundle; `--remove` takes both out again. The bundle itself stays where it is and is never written to.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ICONS="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"

if [ "${1:-}" = "--remove" ]; then
    rm -f "$APPS/beautylens.desktop" "$ICONS/beautylens.png"
    echo "Removed the BeautyLens menu entry."
    exit 0
fi

mkdir -p "$APPS" "$ICONS"
cp "$HERE/beautylens.png" "$ICONS/beautylens.png"
# The shipped entry runs `beautylens` from PATH; point it at this bundle instead.
target="$(printf '%s' "$HERE/beautylens" | sed 's/[&|\\]/\\&/g')"  # escaped for sed's replacement
sed "s|^Exec=beautylens|Exec=\"$target\"|" "$HERE/beautylens.desktop" > "$APPS/beautylens.desktop"
command -v update-desktop-database > /dev/null 2>&1 && update-desktop-database "$APPS" || true
echo "Added BeautyLens to the application menu ($APPS/beautylens.desktop)."
