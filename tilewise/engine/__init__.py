"""Compilation hooks TileLang exposes as tilelang.engine."""
