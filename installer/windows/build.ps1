# Build the Windows bundle and installer of BeautyLens.
# UNTESTED: written without a Windows machine (see installer/README.md).
#
#   powershell -ExecutionPolicy Bypass -File installer\windows\build.ps1
#
# Needs Python 3.11 (the `py` launcher) and, for the installer, Inno Setup 6 (`iscc` on PATH).
# PyPI's torch for Windows is the CPU build, so no special index is needed.
$ErrorActionPreference = "Stop"
$Root = (Resolve-Path "$PSScriptRoot\..\..").Path
$Out = "$Root\build\installer"
$Venv = "$Out\venv-windows"

if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
py -3.11 -m venv $Venv
$Py = "$Venv\Scripts\python.exe"
& $Py -m pip install --upgrade pip
& $Py -m pip install "torch==2.13.0" "torchvision==0.28.0"
& $Py -m pip install $Root "pyinstaller>=6.10,<7"

Push-Location $Root
& "$Venv\Scripts\pyinstaller.exe" --noconfirm --clean --log-level WARN `
    --distpath "$Out\dist" --workpath "$Out\work" installer\beautylens.spec
Pop-Location

# The bundle's own check; user data goes to %LOCALAPPDATA%\BeautyLens, not into the bundle.
& "$Out\dist\BeautyLens\beauty-app.exe" --self-test
if ($LASTEXITCODE -ne 0) { throw "The bundle's self-test failed." }

$Version = & $Py -c "import beauty_app; print(beauty_app.__version__)"
$env:BEAUTYLENS_VERSION = $Version
if (Get-Command iscc -ErrorAction SilentlyContinue) {
    iscc "$PSScriptRoot\beautylens.iss"
} else {
    Write-Warning "Inno Setup's iscc is not on PATH; the bundle is in $Out\dist\BeautyLens but no installer was made."
}
