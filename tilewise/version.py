"""The package version (below everything, so that cache keys can include it)."""
__version__ = "0.1.0"
