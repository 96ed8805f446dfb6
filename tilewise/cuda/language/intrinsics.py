"""tilelang.cuda.language.intrinsics (TileLang 0.1.15): the tensor-core emitters and their
helpers under the path TileLang's atom-level tests import them from. TensorCoreIntrinEmitter is
tilewise's mma.sync emitter (mma / mma_atom / mma_num_inst_m / mma_num_inst_n / stmatrix);
the wgmma and tcgen05 (Blackwell) emitters are importable, and constructing one is a CompileError naming
what tilewise does instead (intrinsics/unsupported_emitters.py, language/blackwell.py)."""
from __future__ import annotations

from ...intrinsics import (
    TensorCoreIntrinEmitter,
    TensorCoreIntrinEmitterWithLadderTransform,
    get_ldmatrix_offset,
    get_mma_micro_size,
    get_swizzle_layout,
    make_mma_swizzle_layout,
    mma_store_index_map,
)
from ...intrinsics.unsupported_emitters import (
    SparseTensorCoreIntrinEmitter,
    TensorCoreIntrinEmitterSM120,
    WGMMADescriptorParams,
    WGMMATensorCoreIntrinEmitter,
    WGSparseTensorCoreIntrinEmitter,
)
from ...language.blackwell import blackwell_names

# sm_100's emitter and its descriptor: the same refusing classes as T.TCGEN05TensorCoreIntrinEmitter
TCGEN05TensorCoreIntrinEmitter = blackwell_names()["TCGEN05TensorCoreIntrinEmitter"]
TCGEN05DescriptorParams = blackwell_names()["TCGEN05DescriptorParams"]

__all__ = [
    "SparseTensorCoreIntrinEmitter", "TCGEN05DescriptorParams", "TCGEN05TensorCoreIntrinEmitter",
    "TensorCoreIntrinEmitter", "TensorCoreIntrinEmitterSM120", "TensorCoreIntrinEmitterWithLadderTransform",
    "WGMMADescriptorParams", "WGMMATensorCoreIntrinEmitter", "WGSparseTensorCoreIntrinEmitter",
    "get_ldmatrix_offset", "get_mma_micro_size", "get_swizzle_layout", "make_mma_swizzle_layout",
    "mma_store_index_map",
]  # fmt: skip
