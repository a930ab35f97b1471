__version__ = "0.9.0"  # the project version (CHANGELOG.md), written into export sidecars
