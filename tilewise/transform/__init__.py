"""IR passes. TileLang users import `PassConfigKey` from here."""
from .pass_config import PassConfigKey  # noqa: F401
from .simplify_api import apply_simplify, simplify_prim_func  # noqa: F401
