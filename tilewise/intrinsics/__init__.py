"""tilelang.intrinsics: the expert (thread-level) tier. `TensorCoreIntrinEmitter` drives mma.sync
warp by warp (mma_macro_generator.py); the index maps of the mma fragments and ldmatrix are in
mma_layout.py; `get_swizzle_layout` / `make_mma_swizzle_layout` give the shared-tile swizzle."""
from __future__ import annotations

from . import mma_layout, mma_macro_generator, utils
from .mma_layout import get_swizzle_layout, make_mma_swizzle_layout
from .mma_macro_generator import TensorCoreIntrinEmitter, TensorCoreIntrinEmitterWithLadderTransform
from .utils import get_ldmatrix_offset, get_mma_micro_size, mma_store_index_map

__all__ = ["TensorCoreIntrinEmitter", "TensorCoreIntrinEmitterWithLadderTransform", "get_ldmatrix_offset", "get_mma_micro_size", "get_swizzle_layout",
           "make_mma_swizzle_layout", "mma_layout", "mma_macro_generator", "mma_store_index_map", "utils"]

# the names TileLang's `T` (tilelang.language) also exports; tilewise/__init__.py puts them in
# tilewise.language, which sits below this package in the layer order (tests/package/test_layers.py)
from . import unsupported_emitters  # noqa: E402

T_EXPORTS = {
    "TensorCoreIntrinEmitter": TensorCoreIntrinEmitter,
    "TensorCoreIntrinEmitterWithLadderTransform": TensorCoreIntrinEmitterWithLadderTransform,
    "get_ldmatrix_offset": get_ldmatrix_offset,
    "get_mma_micro_size": get_mma_micro_size,
    "get_swizzle_layout": get_swizzle_layout,
    "make_mma_swizzle_layout": make_mma_swizzle_layout,
    "mma_store_index_map": mma_store_index_map,
    **{n: getattr(unsupported_emitters, n) for n in unsupported_emitters.__all__},
}
