; Inno Setup script for the Windows installer of BeautyLens.
; UNTESTED: written without a Windows machine (see installer/README.md). Build the bundle first with
; installer\windows\build.ps1, which then runs `iscc` on this file.
;
; Installs the PyInstaller folder (beautylens.exe = the window, beauty-app.exe = the command line) to
; Program Files (or the user's programs folder), with a Start-menu entry and an optional desktop icon.
; The app keeps indexes, logs and settings in %LOCALAPPDATA%\BeautyLens (platformdirs), never in {app};
; uninstalling leaves them, so a reinstall finds the user's indexes again.

#define AppVersion GetEnv("BEAUTYLENS_VERSION")
#if AppVersion == ""
  #define AppVersion "0.1.0"
#endif
#define BundleDir "..\..\build\installer\dist\BeautyLens"

[Setup]
AppId={{6F3C2B1E-5B7A-4E0B-9C51-BEA7713E2D01}
AppName=BeautyLens
AppVersion={#AppVersion}
AppPublisher=BeautyLens
DefaultDirName={autopf}\BeautyLens
DefaultGroupName=BeautyLens
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\build\installer
OutputBaseFilename=BeautyLens-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
UninstallDisplayIcon={app}\beautylens.exe
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\BeautyLens"; Filename: "{app}\beautylens.exe"
Name: "{autodesktop}\BeautyLens"; Filename: "{app}\beautylens.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\beautylens.exe"; Description: "{cm:LaunchProgram,BeautyLens}"; Flags: nowait postinstall skipifsilent
