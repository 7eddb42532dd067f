# PyInstaller runtime hook: runs in the bundle before the app's own code.
# Arms the torchvision shim (see torchvision_ops_shim.py); it stays idle until torchvision is imported.
from torchvision_ops_shim import install

install()
