"""tilelang.cuda.intrinsics: TileLang's newer home of tilelang.intrinsics, with its modules in
`macro/` (the emitters) and `layout/` (the fragment index maps). The modules are tilewise's
(tilewise/intrinsics); this package gives them TileLang's newer import paths."""
from __future__ import annotations

import sys
import types

from ...intrinsics import *  # noqa: F403
from ...intrinsics import __all__ as _names
from ...intrinsics import mma_layout, mma_macro_generator, utils


def _package(name: str, doc: str, **modules: types.ModuleType) -> types.ModuleType:
    """A subpackage whose modules are tilewise's own, importable under TileLang's paths."""
    pkg = types.ModuleType(f"{__name__}.{name}", doc)
    pkg.__path__ = []  # a package: `import a.b.c` finds c in sys.modules
    for mod_name, mod in modules.items():
        setattr(pkg, mod_name, mod)
        sys.modules[f"{pkg.__name__}.{mod_name}"] = mod
        for attr in getattr(mod, "__all__", ()):
            setattr(pkg, attr, getattr(mod, attr))
    sys.modules[pkg.__name__] = pkg
    return pkg


macro = _package("macro", "TileLang's tilelang.cuda.intrinsics.macro: the mma emitters.",
                 mma_macro_generator=mma_macro_generator)
layout = _package("layout", "TileLang's tilelang.cuda.intrinsics.layout: the mma index maps.",
                  mma_layout=mma_layout, utils=utils)

__all__ = [*_names, "layout", "macro"]
