"""The version of tootlake (a leaf module: any layer may read it)."""

__version__ = "0.1.0"
