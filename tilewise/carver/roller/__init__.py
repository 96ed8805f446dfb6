"""Importing this module is an error that names what is missing (see tilewise/carver/__init__.py)."""
raise ImportError("tilelang.carver's roller and its templates (tile sizes from TVM's schedule analysis) are not "
                  "implemented in tilewise; give the configurations to @autotune(configs=...) directly")
