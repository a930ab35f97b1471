__version__ = "0.1.0"  # the project version written into export sidecars
