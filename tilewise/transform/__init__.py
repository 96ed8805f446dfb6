"""IR passes. TileLang users import `PassConfigKey` from here."""
from .pass_config import PassConfigKey  # noqa: F401
