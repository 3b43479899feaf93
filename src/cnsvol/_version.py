"""The installed version of cnsvol."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cnsvol")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
