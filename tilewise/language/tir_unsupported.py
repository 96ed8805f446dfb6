"""Names TileLang 0.1.15 exports in `T` for constructs tilewise's IR does not have. Each is a
callable that raises a CompileError naming the construct and, where there is one, what to write
instead: importing or referring to the name works (as TileLang's modules do), using it is the
error, never an AttributeError and never silently ignored."""
from __future__ import annotations

from ..errors import CompileError

_LAUNCH = "threads are launched by `with T.Kernel(grid..., threads=n) as (bx, ...)`, their indices are " \
          "T.get_thread_binding(dim)"
_BLOCKS = "TVM's schedulable blocks (T.sblock, reads/writes regions) are not part of tilewise's IR; write the loops " \
          "and tile operators directly"
_LANES = "TVM's vector halves, combinations and scalable vectors are not supported; tilewise's vector lanes " \
         "(T.Ramp, T.Broadcast, T.float32x4(...), language/vector_values.py) are fixed lanes of scalars: take lanes " \
         "with T.extract_lane and build the vector you need from them"
_RUNTIME = "it belongs to TVM's host-side runtime ABI (packed functions, DLTensor stacks, workspaces), which " \
           "tilewise's kernels do not use"
_WMMA = "wmma fragments (nvcuda::wmma) are not modelled; write the tensor-core code with T.ptx_ldmatrix / T.ptx_mma " \
        "or TensorCoreIntrinEmitter, or use T.gemm"
_WGMMA = "not supported; hand-driven wgmma is T.alloc_wgmma_desc + T.initialize_wgmma_descriptor + " \
         "T.ptx_wgmma_ss / rs between T.warpgroup_arrive and T.warpgroup_commit_batch / T.warpgroup_wait (the " \
         "accumulators are not read before the wait), or T.gemm on sm_90a"
_LLVM = "LLVM intrinsics are not available: tilewise generates C++ (g++) and CUDA C++ (NVRTC), not LLVM IR; " \
        "use T.call_extern for a device function"

MESSAGES: dict[str, str] = {
    # threads and loops bound to them by hand
    "launch_thread": _LAUNCH, "env_thread": _LAUNCH, "iter_var": _LAUNCH,
    "axis": _BLOCKS, "sblock": _BLOCKS, "sblock_attr": _BLOCKS, "sblock_alloc_buffer": _BLOCKS, "reads": _BLOCKS,
    "writes": _BLOCKS, "block_name_suffix_context": _BLOCKS,
    # vector lanes
    "vectorlow": _LANES, "vectorhigh": _LANES, "vectorcombine": _LANES,
    "vscale": _LANES,
    # the function's signature by hand
    "arg": "parameters are declared in the Python signature (`A: T.Tensor(shape, dtype)`, `a: T.handle`)",
    "func_name": "the kernel is named after the Python function", "func_ret": "kernels return nothing (outputs are "
    "parameters, or T.empty tensors returned at the end)",
    "buffer_var": "pointer variables are T.handle / T.ptr parameters, with T.match_buffer / T.make_tensor",
    "index_map": "TVM's IndexMap is not supported; a layout is T.Layout(shape, forward_fn) / T.Fragment",
    "CUDASourceCodeKernel": "launching a kernel from CUDA source text is not supported; write the kernel in T, or "
                            "call hand-written device functions with T.import_source + T.call_extern",
    "call_kernel": "launching an external kernel from inside a prim_func is not supported; call it from Python",
    "CallEffectKind": "call effect kinds are TVM's; tilewise's intrinsics carry their own effects",
    "undef": "an undefined value has no meaning in tilewise's IR; initialise the variable",
    # TVM runtime ABI
    **{n: _RUNTIME for n in (
        "TVMBackendAllocWorkspace", "TVMBackendFreeWorkspace", "anylist_getitem", "anylist_resetitem",
        "anylist_setitem_call_cpacked", "anylist_setitem_call_packed", "call_cpacked", "call_cpacked_lowered",
        "call_packed", "call_packed_lowered", "tvm_call_cpacked", "tvm_call_cpacked_lowered", "tvm_call_packed",
        "tvm_call_packed_lowered", "tvm_stack_alloca", "tvm_stack_make_array", "tvm_stack_make_shape",
        "tvm_struct_get", "tvm_struct_set", "tvm_throw_last_error", "tvm_tuple", "lookup_param",
        "handle_add_byte_offset", "isnullptr", "start_profile_intrinsic", "end_profile_intrinsic")},
    "tvm_thread_invariant": "a TVM analysis hint; tilewise decides thread invariance itself",
    # wmma
    **{n: _WMMA for n in ("tvm_load_matrix_sync", "tvm_store_matrix_sync", "tvm_mma_sync", "tvm_bmma_sync",
                          "tvm_fill_fragment")},
    # wgmma by hand
    **{n: _WGMMA for n in ("warpgroup_fence_operand", "compute_gmma_descriptor")},
    # sparse tensor-core instructions
    "ptx_mma_sp": "sparse mma.sp is not emitted by tilewise; 2:4 sparse GEMM is T.gemm_sp",
    "ptx_wgmma_sp_ss": "sparse wgmma is not emitted by tilewise; 2:4 sparse GEMM is T.gemm_sp",
    "ptx_wgmma_sp_rs": "sparse wgmma is not emitted by tilewise; 2:4 sparse GEMM is T.gemm_sp",
    "wgmma_gemm_sp": "sparse wgmma is not emitted by tilewise, and this form must not fall back to another "
                     "instruction; T.gemm_sp computes the same product (as a dense gemm)",
    "ptx_arrive_cluster_barrier": "an arrival on another CTA's mbarrier needs a thread-block cluster, which tilewise "
                                  "does not launch; arrive on this block's barrier with T.ptx_arrive_barrier",
    # LLVM
    "call_llvm_intrin": _LLVM, "call_llvm_pure_intrin": _LLVM, "llvm_lookup_intrinsic_id": _LLVM,
}


def _refusal(name: str, why: str):
    def refuse(*args, **kwargs):
        raise CompileError(f"T.{name}: {why}")

    refuse.__name__ = name
    refuse.__qualname__ = name
    refuse.__doc__ = f"Not supported by tilewise: {why}."
    return refuse


def refusals() -> dict:
    """{name: a callable raising the CompileError} for every name of MESSAGES."""
    return {n: _refusal(n, why) for n, why in MESSAGES.items()}
