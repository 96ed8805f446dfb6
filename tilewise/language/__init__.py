"""The T namespace kernels are written in: `import tilewise.language as T`."""
# ruff: noqa: F401, A001, A004
from ..ir.buffer import Buffer as _BufferClass
from ..ir.dtype import DataTypeFactory as dtype  # T.dtype("float16"); isinstance(x, T.dtype) for every dtype
from ..ir.dtype import as_dtype as _as_dtype
from ..ir.dtype import (
    bfloat16,
    float4_e2m1fn,
    float6_e2m3fn,
    float6_e3m2fn,
    float8_e4m3,
    float8_e4m3fnuz,
    float8_e5m2,
    float8_e5m2fnuz,
    float8_e8m0fnu,
    float16,
    float32,
    float64,
    int4,
    int8,
    int16,
    int32,
    int64,
    tfloat32,
    uint4,
    uint8,
    uint16,
    uint32,
    uint64,
)
from ..ir.dtype import bool_ as bool
from ..ir.expr import Var
from ..layout import Fragment, Layout, PartialFragment
from ..tileop.async_copy import async_copy
from ..tileop.atomic_add import atomic_add, atomic_max, atomic_min
from ..tileop.atomic_ext import atomic_addx2, atomic_addx4, atomic_load, atomic_or, atomic_store
from ..tileop.copy import copy
from ..tileop.cummax import cummax
from ..tileop.cumsum import cumsum
from ..tileop.fill import clear, fill
from ..tileop.gemm import GemmWarpPolicy, gemm
from ..tileop.gemm_sp import gemm_sp
from ..tileop.print import print
from ..tileop.reduce import (
    reduce,
    reduce_absmax,
    reduce_abssum,
    reduce_bitand,
    reduce_bitor,
    reduce_bitxor,
    reduce_max,
    reduce_min,
    reduce_sum,
)
from ..tileop.reducer import alloc_reducer, finalize_reducer, reducer_init, reducer_update
from ..tileop.thread_allreduce import comm_reducer, tvm_thread_allreduce
from ..tileop.transpose import transpose
from ..tileop.wgmma_gemm import wgmma_gemm
from ..tileop.wgmma_gemm import wgmma_gemm as wgmma_mma  # TileLang 0.1.15's alias
from .alloc import (
    FragmentBuffer,
    LocalBuffer,
    SharedBuffer,
    StridedTensor,
    Tensor,
    alloc_buffer,
    alloc_fragment,
    alloc_local,
    alloc_shared,
    alloc_var,
    make_tensor,
    make_tensor_from_addr,
    reshape,
    symbolic,
    view,
)
from .annotate import (
    annotate_l2_hit_ratio,
    annotate_layout,
    annotate_min_blocks_per_sm,
    annotate_padding,
    annotate_safe_value,
    disable_warp_group_reg_alloc,
    use_swizzle,
)
from .any_all import all_of, any_of
from .bit_find import __ffs, __fns  # noqa: F401 - TileLang's dunder names
from .blackwell import blackwell_names as _blackwell_names
from .cluster import (
    ClusterKernel,
    alloc_cluster_barrier,
    block_rank_in_cluster,
    cluster_arrive,
    cluster_arrive_relaxed,
    cluster_sync,
    cluster_wait,
    copy_cluster,
    get_cluster_dims,
    get_cluster_extent,
    get_cluster_extents,
    get_cluster_id,
    get_cluster_ids,
    get_cluster_size,
)
from .control import (
    Else,
    If,
    Then,
    While,
    attr,
    break_loop,
    continue_loop,
    device_assert,
    evaluate,
    get_block_extent,
    get_block_extents,
    get_thread_extent,
    get_thread_extents,
    index_to_coordinates,
    let,
    loop_break,
)
from .dtype_names import dtype_names as _dtype_names
from .eager import Ref, annotate_compile_flags, annotate_pass_configs, const, dynamic, empty, inline
from .extern import access_ptr, address_of, call_extern, import_source
from .float_ops import fma, fmul, ieee_add, ieee_fdiv, ieee_fmaf, ieee_frcp, ieee_frsqrt, ieee_fsqrt, ieee_mul, ieee_sub
from .global_vector import ldg32, ldg64, ldg128, ldg256, stg32, stg64, stg128, stg256, vector_dtypes
from .hopper import (
    WarpSpecialize,
    alloc_barrier,
    annotate_consumer_reg_alloc,
    annotate_producer_reg_dealloc,
    barrier_arrive,
    barrier_wait,
    create_list_of_mbarrier,
    dec_max_nreg,
    fence_proxy_async,
    get_lane_idx,
    get_mbarrier,
    get_warp_group_idx,
    get_warp_idx,
    get_warp_idx_sync,
    inc_max_nreg,
    mbarrier_arrive,
    mbarrier_arrive_expect_tx,
    mbarrier_expect_tx,
    mbarrier_wait_parity,
    named_barrier_arrive,
    no_set_max_nreg,
    set_max_nreg,
    shuffle_elect,
    sync_threads,
    tma_copy,
    tma_load_im2col,
    tma_store_arrive,
    tma_store_wait,
    wait_wgmma,
    warpgroup_arrive,
    warpgroup_commit_batch,
    warpgroup_wait,
    ws,
)
from .im2col import c2d_im2col, im2col
from .int_ops import align_up, cdiv, q_multiply_shift, q_multiply_shift_per_axis
from .launch_sync import pdl_sync, pdl_trigger, sync_grid
from .loops import (
    Kernel,
    Parallel,
    Pipelined,
    get_block_binding,
    get_block_bindings,
    get_thread_binding,
    get_thread_bindings,
    grid,
    parallel,
    serial,
    thread_extent,
    unroll,
    vectorized,
)
from .math import (
    And,
    Cast,
    Not,
    Or,
    abs,
    acos,
    asin,
    atan,
    bitwise_and,
    bitwise_or,
    bitwise_xor,
    cast,
    ceil,
    ceildiv,
    clamp,
    cos,
    cosh,
    dp4a,
    erf,
    exp,
    exp2,
    exp10,
    expm1,
    floor,
    floordiv,
    floormod,
    fmod,
    if_then_else,
    infinity,
    log,
    log1p,
    log2,
    log10,
    max,
    max_value,
    min,
    min_value,
    nearbyint,
    pow,
    rcp,
    reinterpret,
    round,
    rsqrt,
    shift_left,
    shift_right,
    sigmoid,
    sin,
    sinh,
    sqrt,
    tan,
    tanh,
    trunc,
    truncdiv,
    truncmod,
)
from .meta_class import meta_class
from .packed_math import abs2, add2, fma2, max2, min2, mul2, sub2
from .param_aliasing import annotate_restrict_buffers
from .parser import Macro, macro, prim_func
from .persistent import Persistent
from .prim_expr import PrimExpr
from .rng import rng_init, rng_rand, rng_rand_float
from .shared_vector import lds32, lds64, lds128, sts32, sts64, sts128
from .thread_binding import thread_binding
from .tile_scheduler import BaseTileScheduler, PersistentTileScheduler
from .tir_math import (
    acosh,
    asinh,
    assume,
    atan2,
    atanh,
    bitwise_not,
    clz,
    copysign,
    fabs,
    fast_rcp,
    hypot,
    isfinite,
    isinf,
    isnan,
    ldexp,
    likely,
    nextafter,
    popcount,
)
from .tir_math import fast_cos as __cos
from .tir_math import fast_exp as __exp
from .tir_math import fast_exp10 as __exp10
from .tir_math import fast_log as __log
from .tir_math import fast_log2 as __log2
from .tir_math import fast_log10 as __log10
from .tir_math import fast_sin as __sin
from .tir_math import fast_tan as __tan
from .tir_math import ldg as __ldg
from .tir_statements import (
    Assert,
    get_active_lane_mask,
    ignore_loop_partition,
    init,
    ret,
    thread_return,
    where,
)
from .tma_descriptor import create_tma_descriptor, tma_load, tma_store
from .warp import (  # the expert tier: warp shuffles and reductions (language/warp.py)
    shfl_down,
    shfl_sync,
    shfl_up,
    shfl_xor,
    sync_warp,
    tvm_warp_shuffle,
    tvm_warp_shuffle_down,
    tvm_warp_shuffle_up,
    warp_reduce_bitand,
    warp_reduce_bitor,
    warp_reduce_max,
    warp_reduce_min,
    warp_reduce_sum,
)
from .warp_vote import (
    activemask,
    all_sync,
    any_sync,
    ballot,
    ballot_sync,
    match_all_sync,
    match_any_sync,
    syncthreads_and,
    syncthreads_count,
    syncthreads_or,
)
from .workspace import alloc_global
from .ws_annotations import annotate_ws_pipeline_depth, annotate_ws_schedule, ws_op

Buffer = Tensor
globals().update(vector_dtypes())  # T.float32x4, T.float16x8, ... (language/global_vector.py)
del vector_dtypes
ptr = _as_dtype("handle")  # a raw pointer parameter, for T.make_tensor
float = float32
int = int32
short = int16  # TileLang's C-style names
long = int64
uint = uint32
ulong = uint64
half = float16
double = float64
e4m3_float8 = float8_e4m3
e5m2_float8 = float8_e5m2
float8_e4m3fn = float8_e4m3
Select = if_then_else
Serial = serial  # TileLang's capitalised aliases of the loop constructors
Unroll = unroll
Vectorized = vectorized
# the expert tier's TIR-level names (branch texpert: ptx_*.py, wgmma_intrinsics.py, tir_*.py)
from .dtype_predicates import *  # noqa: E402, F403
from .ptx_barriers import *  # noqa: E402, F403
from .ptx_intrinsics import *  # noqa: E402, F403
from .tir_builder import *  # noqa: E402, F403
from .tir_nodes import *  # noqa: E402, F403
from .tir_unsupported import refusals as _refusals  # noqa: E402
from .vector_values import Broadcast, Ramp, extract_lane  # noqa: E402 - vector values (language/vector_values.py)
from .vector_values import Broadcast as broadcast  # noqa: E402 - TVM's builder spellings
from .vector_values import Ramp as ramp  # noqa: E402
from .wgmma_intrinsics import *  # noqa: E402, F403

globals().update(_blackwell_names())  # tcgen05_*, alloc_tmem, clc_*, ...: CompileError (language/blackwell.py)
globals().update(_dtype_names())  # T.boolean, T.void, packed fp4/fp6 vectors, float8_e3m4 (language/dtype_names.py)
globals().update({_n: _f for _n, _f in _refusals().items() if _n not in globals()})
