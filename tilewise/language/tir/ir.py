"""`tilelang.language.tir.ir`: T.cast and its rounding-mode names, at TileLang's module path."""
from ..math import CAST_ROUNDING_MODES as _VALID_CAST_ROUNDING_MODES  # noqa: F401
from ..math import cast  # noqa: F401
