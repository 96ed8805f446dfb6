"""tilelang.contrib: the helpers TileLang's examples import from it (`nvcc`)."""
