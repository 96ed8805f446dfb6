"""Hopper intrinsics of the thread IR (docs/THREAD_IR.md, "Hopper") through the CUDA renderer,
tw_cuda.h and NVRTC: what the source says, that it compiles for sm_90a (wgmma) and sm_90 (TMA,
mbarriers), not for older GPUs, and the SASS instructions it becomes (HGMMA / IGMMA / QGMMA,
UTMALDG / UTMASTG, SYNCS)."""
from __future__ import annotations

import re

import pytest
from hopper_kernels import intrin, tma_roundtrip, wgmma_gemm

from tilewise.backend.cuda import inspect as sass_tools
from tilewise.backend.cuda.nvrtc import NvrtcError, nvrtc_compile
from tilewise.backend.cuda.renderer import render_cuda
from tilewise.backend.cuda.wgmma_variants import device_function, device_functions, wgmma_variant
from tilewise.errors import InternalError
from tilewise.ir import Buffer, Kernel, PrimFunc, SeqStmt, Var
from tilewise.ir.tensor_map import TensorMap

# ---------------------------------------------------------------------------- wgmma variants


def test_wgmma_variant_table():
    v = wgmma_variant("m64n128k16", "float16", "float16", "float32")
    assert (v.n, v.k, v.a, v.b, v.c, v.d_regs) == (128, 16, "f16", "f16", "f32", 64)
    assert v.ptx == "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16"
    assert v.function == "tw::wgmma_m64n128k16_f32_f16_f16_ss" and v.transposable
    assert wgmma_variant("m64n128k16", "float16", "float16", "float16").d_regs == 32  # packed half pairs
    tf = wgmma_variant("m64n8k8", "float32", "float32", "float32", a_regs=True)
    assert (tf.a, tf.b, tf.function) == ("tf32", "tf32", "tw::wgmma_m64n8k8_f32_tf32_tf32_rs")
    assert not tf.transposable
    assert wgmma_variant("m64n24k32", "float8_e4m3", "float8_e5m2", "float16").d_regs == 6
    assert wgmma_variant("m64n48k32", "int8", "uint8", "int32").integer
    for shape, a, c, msg in [
        ("m64n40k32", "int8", "int32", "N = 40"),  # integer N skips the odd multiples of 8 above 24
        ("m64n264k16", "float16", "float32", "N = 264"),
        ("m64n64k32", "float16", "float32", "needs k16"),
        ("m64n64k16", "bfloat16", "float16", "a f32 accumulator"),
        ("m128n64k16", "float16", "float32", "is not m64"),
    ]:
        with pytest.raises(InternalError, match=msg):
            wgmma_variant(shape, a, a, c)
    with pytest.raises(InternalError, match="no variant with A f16 and B bf16"):
        wgmma_variant("m64n64k16", "float16", "bfloat16", "float32")


def _operands(text: str) -> tuple[int, list[int]]:
    """(number of asm operands, the %n the asm text names) of one generated function."""
    ops = text.split('"memory"')[0]
    n = len(re.findall(r'"[+=]?[frln]"\(', ops))
    return n, [int(x) for x in re.findall(r"%(\d+)", text)]


@pytest.mark.parametrize(
    "shape, a, c, a_regs, n_ops, tail",
    [
        ("m64n256k16", "float16", "float32", False, 128 + 5, ", 1, 1, %131, %132;"),  # desc A, B, scale, 2 trans
        ("m64n256k16", "bfloat16", "float32", True, 128 + 4 + 3, ", 1, 1, %134;"),  # 4 A regs, B, scale, trans-b
        ("m64n64k16", "float16", "float16", False, 16 + 5, ", 1, 1, %19, %20;"),
        ("m64n32k8", "float32", "float32", True, 16 + 6, "tw_scale_d, 1, 1;"),  # tf32: no transposes
        ("m64n32k32", "int8", "int32", False, 16 + 3, "%17, tw_scale_d;"),  # integers: scale-d alone
    ],
)
def test_wgmma_operand_lists(shape, a, c, a_regs, n_ops, tail):
    v = wgmma_variant(shape, a, a, c, a_regs)
    text = device_function(v)
    n, named = _operands(text)
    assert n == n_ops
    assert sorted(set(named)) == list(range(max(named) + 1))  # every operand appears, in order
    assert tail in text
    assert ("template <int TransA, int TransB>" in text) == v.transposable
    assert ('"+f"(D[0])' in text) == (c == "float32")
    assert f"(D[{v.d_regs - 1}])" in text and f"D[{v.d_regs}]" not in text


def test_device_functions_once_each_and_guarded():
    v = wgmma_variant("m64n64k16", "float16", "float16", "float32")
    w = wgmma_variant("m64n8k8", "float32", "float32", "float32")
    text = device_functions([v, w, v])
    assert text.count("wgmma_m64n64k16_f32_f16_f16_ss(") == 1 and text.count("wgmma_m64n8k8_f32_tf32_tf32_ss(") == 1
    assert text.startswith("#if !defined(__CUDA_ARCH_FEAT_SM90_ALL)")
    assert device_functions([]) == ""


# ---------------------------------------------------------------------------- rendering


def test_gemm_source():
    mod = render_cuda(wgmma_gemm())
    src = mod.source
    k = mod.kernels[0]
    assert [c for c, _ in k.tensor_maps] == ["B_map", "A_map"] and mod.tensor_map_names == ["B_map", "A_map"]
    # the maps are the last parameters, after the dynamic dimensions
    assert "const int32_t N, const __grid_constant__ CUtensorMap B_map, const __grid_constant__ CUtensorMap A_map)" in src
    assert mod.param_names == ["A", "B", "C", "M", "K", "N"]
    assert mod.readonly == [True, True, False]
    assert "extern __shared__ __align__(1024) uint8_t smem[];" in src
    assert "tw::mbarrier_init((&bar[0]), (uint32_t)(1));" in src and "tw::fence_barrier_init();" in src
    assert "tw::mbarrier_arrive_expect_tx((&bar[0]), (uint32_t)(16384));" in src
    # coordinates innermost first: (k, m) for A stored M x K
    assert "tw::tma_load_2d(&A_map, (&A_tile[0]), (&bar[0]), (int32_t)((ko * 64)), (int32_t)((by * 64)));" in src
    assert "tw::mbarrier_wait((&bar[0]), (uint32_t)((ko & 1)));" in src
    # the tile's descriptor plus the operand's byte offset (one add per descriptor in a loop)
    assert "tw::wgmma_m64n64k16_f32_f16_f16_ss<0, 0>((&acc[0]), tw::wgmma_desc<128, 16, 1024>(A_tile, (int32_t)((32) * 1))" in src
    assert "tw::wgmma_fence();" in src and "tw::wgmma_commit();" in src and "tw::wgmma_wait<0>();" in src
    assert src.count("TW_DEV void wgmma_m64n64k16_f32_f16_f16_ss(") == 1


def test_tma_store_and_register_a_source():
    mod = render_cuda(wgmma_gemm("bfloat16", n_tile=128, a_regs=True, trans_b=True, tma_store=True))
    src = mod.source
    assert mod.readonly == [True, True, False]  # C is written only through its tensor map
    assert "tw::wgmma_m64n128k16_f32_bf16_bf16_rs<0, 1>((&acc[0]), (&a_frag[0]), tw::wgmma_desc<128, 8192, 1024>(" in src
    assert "tw::tma_store_2d(&C_map, (&C_tile[0]), (int32_t)((bx * 128)), (int32_t)((by * 64)));" in src
    assert "tw::fence_proxy_async();" in src and "tw::tma_store_commit();" in src
    assert "tw::tma_store_wait<0>();" in src
    assert "A_map" not in src  # A comes from registers


def _with_call(func, name, **changes):
    """The first `name` call of func's kernel, with attributes replaced."""
    from tilewise.ir.visitor import Visitor

    class Find(Visitor):
        hit = None

        def visit_Call(self, e):
            if e.name == name and Find.hit is None:
                Find.hit = e
            self.generic_visit(e)

    Find().visit(func.body)
    Find.hit.attrs.update(changes)
    return func


def test_render_errors():
    with pytest.raises(InternalError, match="names the tensor map 'nope'"):
        render_cuda(_with_call(wgmma_gemm(), "tma_load", map="nope"))
    f = wgmma_gemm()
    f.body.attrs["tensor_maps"][0].box = (64, 64, 1)
    with pytest.raises(InternalError, match="2 coordinates for the rank-3 tensor map B_map"):
        render_cuda(f)
    with pytest.raises(InternalError, match="K-major operands only"):
        render_cuda(_with_call(wgmma_gemm("float32", n_tile=32), "wgmma", trans_b=1))
    with pytest.raises(InternalError, match="cannot transpose A"):
        render_cuda(_with_call(wgmma_gemm(a_regs=True), "wgmma", trans_a=1))
    with pytest.raises(InternalError, match="swizzle 96"):
        render_cuda(_with_call(wgmma_gemm(), "wgmma_desc", swizzle=96))
    with pytest.raises(InternalError, match="lbo = 8"):
        render_cuda(_with_call(wgmma_gemm(), "wgmma_desc", lbo=8))
    X, Y = Buffer("X", (64, 64), "float16"), Buffer("Y", (64, 64), "float16")
    bx, tx = Var("bx"), Var("tx")
    k = Kernel([bx], [1], [128], [tx], intrin("tma_store_commit"), attrs={"tensor_maps": [TensorMap("m", Y, (8, 64))]})
    with pytest.raises(InternalError, match="Y is not a parameter"):
        render_cuda(PrimFunc("bad", [X], k))


# ---------------------------------------------------------------------------- NVRTC and SASS


def _ops(sass: str, kernel: str, names) -> dict[str, list[str]]:
    instrs = sass_tools.parse_sass(sass)[kernel]
    return {n: [i.opcode for i in instrs if i.op == n] for n in names}


def test_gemm_sass():
    mod = render_cuda(wgmma_gemm())
    out = nvrtc_compile(mod.source, "sm_90a")
    assert "serializ" not in out.log  # ptxas did not serialize the wgmmas
    sass = sass_tools.get_sass(out.cubin)
    ops = _ops(sass, mod.kernels[0].name, ("HGMMA", "UTMALDG", "SYNCS", "WARPGROUP", "HMMA", "LDGSTS", "LDSM"))
    assert ops["HGMMA"] == ["HGMMA.64x64x16.F32"] * 4
    assert ops["UTMALDG"] == ["UTMALDG.2D"] * 2
    assert {"SYNCS.EXCH.64", "SYNCS.ARRIVE.TRANS64", "SYNCS.PHASECHK.TRANS64.TRYWAIT"} <= set(ops["SYNCS"])
    assert {"WARPGROUP.ARRIVE", "WARPGROUP.DEPBAR.LE"} <= set(ops["WARPGROUP"])
    assert ops["HMMA"] == ops["LDGSTS"] == ops["LDSM"] == []
    use = sass_tools.resource_usage(out.cubin)
    assert use["spill_bytes"] == 0 and use["registers"] <= 96
    loop = sass_tools.steady_state_loop(sass, key="HGMMA")
    assert loop is not None and loop.mix(("HGMMA",))["HGMMA"] == 4


@pytest.mark.parametrize(
    "a, c, shape, op",
    [
        ("bfloat16", "float32", "m64n128k16", "HGMMA.64x128x16.F32.BF16"),
        ("float16", "float16", "m64n256k16", "HGMMA.64x256x16.F16"),
        ("float32", "float32", "m64n64k8", "HGMMA.64x64x8.F32.TF32"),
        ("float8_e4m3", "float32", "m64n64k32", "QGMMA.64x64x32.F32.E4M3.E4M3"),
        ("int8", "int32", "m64n64k32", "IGMMA.64x64x32.S8.S8"),
    ],
)
def test_wgmma_types_compile(a, c, shape, op):
    v = wgmma_variant(shape, a, a, c)
    mod = render_cuda(wgmma_gemm(a, c, v.n))
    assert v.ptx in nvrtc_compile(mod.source, "sm_90a", ptx=True).ptx
    if a in ("float8_e4m3", "int8"):  # the SASS of the last two (cuobjdump costs 0.5 s a cubin)
        sass = sass_tools.get_sass(nvrtc_compile(mod.source, "sm_90a").cubin)
        assert op in {i.opcode for i in sass_tools.parse_sass(sass)[mod.kernels[0].name]}


def test_register_a_and_tma_store_sass():
    mod = render_cuda(wgmma_gemm("float16", n_tile=128, a_regs=True, trans_b=True, tma_store=True))
    out = nvrtc_compile(mod.source, "sm_90a")
    assert "serializ" not in out.log
    ops = _ops(sass_tools.get_sass(out.cubin), mod.kernels[0].name, ("HGMMA", "UTMALDG", "UTMASTG", "FENCE"))
    assert len(ops["HGMMA"]) == 4 and all(o.startswith("HGMMA.64x128x16.F32") for o in ops["HGMMA"])
    assert ops["UTMALDG"] == ["UTMALDG.2D"] * 2 and ops["UTMASTG"] == ["UTMASTG.2D"]
    assert "FENCE.VIEW.ASYNC.S" in ops["FENCE"]  # fence.proxy.async.shared::cta
    assert sass_tools.resource_usage(out.cubin)["spill_bytes"] == 0


def tma_all_ranks() -> PrimFunc:
    """One function, five kernels: the TMA round trip of ranks 1 to 5 (one cubin to inspect)."""
    funcs = [
        tma_roundtrip(1, "float32", (64,), 0),
        tma_roundtrip(2, "float16", (16, 64), 128),
        tma_roundtrip(3, "int8", (2, 4, 32), 32),
        tma_roundtrip(4, "bfloat16", (2, 2, 4, 32), 64),
        tma_roundtrip(5, "float32", (2, 2, 2, 2, 8), 32),
    ]
    params = [p for f in funcs for p in f.params]
    return PrimFunc("tma_all", params, SeqStmt([f.body for f in funcs]))


@pytest.mark.parametrize("arch", ["sm_90", "sm_90a"])
def test_tma_and_mbarrier_compile_without_wgmma(arch):
    mod = render_cuda(tma_all_ranks())
    assert [len(k.tensor_maps) for k in mod.kernels] == [2] * 5
    assert "#error" not in mod.source  # no wgmma: sm_90 will do
    out = nvrtc_compile(mod.source, arch)
    if arch == "sm_90a":
        return
    sass = sass_tools.get_sass(out.cubin)
    for r, k in enumerate(mod.kernels, start=1):
        ops = _ops(sass, k.name, ("UTMALDG", "UTMASTG", "SYNCS", "UTMACMDFLUSH", "DEPBAR"))
        assert ops["UTMALDG"] == [f"UTMALDG.{r}D"] and ops["UTMASTG"] == [f"UTMASTG.{r}D"]
        assert {"SYNCS.EXCH.64", "SYNCS.ARRIVE.TRANS64", "SYNCS.PHASECHK.TRANS64.TRYWAIT"} <= set(ops["SYNCS"])
        assert ops["UTMACMDFLUSH"] and ops["DEPBAR"]  # the store's commit and wait_group.read


def test_older_architectures_reject_hopper_code():
    with pytest.raises(NvrtcError, match="wgmma needs sm_90a"):
        nvrtc_compile(render_cuda(wgmma_gemm()).source, "sm_90")
    with pytest.raises(NvrtcError, match="tma_load_1d"):  # the Hopper section of tw_cuda.h is sm_90+ only
        nvrtc_compile(render_cuda(tma_roundtrip(1, "float32", (64,), 0)).source, "sm_80")
