"""TileLang's `tilelang.language.tir` module path (its TIR operator wrappers); tilewise's
operators live in tilewise.language itself."""
