"""TileLang 0.1.15's Blackwell-only names (sm_100 tcgen05 / tensor memory / cluster launch control /
2-SM TMA and gather4, sm_120 block-scaled mma). tilewise targets sm_80, sm_90a, the CPU and HIP
(gfx942): none of them has the instructions, and imitating them on another instruction set would
pretend to be something the program does not get. So each name exists in `T` (a program that
mentions one fails with a message naming it, never an AttributeError) and raises CompileError
when it is called or, for the emitter and descriptor classes, instantiated."""
from __future__ import annotations

from ..errors import CompileError

_TARGETS = "tilewise targets sm_80/sm_90a/CPU/HIP"


def _message(name: str, arch: str) -> str:
    return f"T.{name} is a Blackwell ({arch}) instruction; {_TARGETS}"


def _refuse(name: str, arch: str = "sm_100"):
    def refuse(*args, **kwargs):
        raise CompileError(_message(name, arch))

    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"TileLang's {name}: a Blackwell ({arch}) construct, a CompileError in tilewise."
    return refuse


def _refused_class(name: str, arch: str = "sm_100"):
    def __init__(self, *args, **kwargs):
        raise CompileError(_message(name, arch))

    return type(name, (), {"__init__": __init__, "__doc__": f"TileLang's {name}: a Blackwell ({arch}) construct, "
                                                          f"a CompileError in tilewise."})


# sm_100 (tcgen05 tensor cores, tensor memory, cluster launch control, 2-SM / gather4 TMA)
SM100_FUNCTIONS = (
    "alloc_tcgen05_instr_desc", "alloc_tcgen05_instruction_desc", "alloc_tcgen05_smem_desc", "alloc_tmem",
    "deallocate_tmem", "initialize_tcgen05_descriptor", "compute_umma_descriptor",
    "tcgen05_after_thread_sync", "tcgen05_before_thread_sync", "tcgen05_cp_warpx4", "tcgen05_gemm",
    "tcgen05_gemm_blockscaled", "tcgen05_gemm_sp", "tcgen05_mma", "tcgen05_mma_arrive", "tcgen05_mma_blockscaled",
    "tcgen05_sf_warp_transpose", "ptx_tcgen05_mma_ss", "ptx_tcgen05_mma_ts", "ptx_tcgen05_mma_blockscaled_ss",
    "gemm_blockscaled", "mma_gemm_blockscaled", "make_blockscaled_gemm_layout",
    "clc_try_cancel", "clc_try_cancel_multicast", "clc_is_canceled", "clc_get_first_ctaid_x",
    "clc_get_first_ctaid_y", "clc_get_first_ctaid_z",
    "tma_load_2sm", "tma_gather4", "tma_scatter4", "tma_gather4_bytes",
)
SM100_CLASSES = ("TCGEN05DescriptorParams", "TCGEN05TensorCoreIntrinEmitter")
# sm_120 (consumer Blackwell): the block-scaled warp mma
SM120_FUNCTIONS = ("ptx_mma_block_scale",)
SM120_CLASSES = ("TensorCoreIntrinEmitterSM120",)


def blackwell_names() -> dict[str, object]:
    """{name: a callable raising CompileError} for every Blackwell-only name of TileLang 0.1.15."""
    out: dict[str, object] = {n: _refuse(n) for n in SM100_FUNCTIONS}
    out.update({n: _refused_class(n) for n in SM100_CLASSES})
    out.update({n: _refuse(n, "sm_120") for n in SM120_FUNCTIONS})
    out.update({n: _refused_class(n, "sm_120") for n in SM120_CLASSES})
    return out
