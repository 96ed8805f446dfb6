"""curand's MRG32k3a and XORWOW generators defined in Python (seeding, exact skip-ahead tables,
draws): the emulator runs them and the GPU renderers write their tables into kernels, so they sit
below both (docs/DESIGN.md)."""
