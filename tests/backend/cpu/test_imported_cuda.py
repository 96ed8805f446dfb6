"""Imported CUDA code (T.import_source with `__device__` functions and inline PTX, T.call_extern)
on the CPU target (issue #14).

g++ cannot compile CUDA device code or PTX and the emulator does not know what an imported
function computes, so such a kernel runs as its CUDA program (sm_80) in the PTX interpreter,
with a one-time warning saying so; C++ imported into a tile-level kernel still compiles natively.
Imported code NVRTC rejects is a CompileError with NVRTC's error lines."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import _warned

# a ^ b ^ c through lop3 (truth table 0x96), as TileLang's fast int4 decoders use it
LOP3 = """
__device__ __forceinline__ uint xor3(uint a, uint b, uint c) {
    uint d;
    asm volatile("lop3.b32 %0, %1, %2, %3, 0x96;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
"""
CPP = "static inline uint32_t xor3(uint32_t a, uint32_t b, uint32_t c) { return a ^ b ^ c; }\n"


def tile_level(src):
    @T.prim_func
    def xor_tiles(a: T.Tensor((128,), T.uint32), b: T.Tensor((128,), T.uint32), c: T.Tensor((128,), T.uint32),
                  d: T.Tensor((128,), T.uint32)):
        T.import_source(src)
        with T.Kernel(2, threads=64) as bx:
            for i in T.Parallel(64):
                d[bx * 64 + i] = T.call_extern(T.uint32, "xor3", a[bx * 64 + i], b[bx * 64 + i], c[bx * 64 + i])

    return xor_tiles


def thread_level(src):
    @T.prim_func
    def xor_threads(a: T.Tensor((128,), T.uint32), b: T.Tensor((128,), T.uint32), c: T.Tensor((128,), T.uint32),
                    d: T.Tensor((128,), T.uint32)):
        T.import_source(src)
        with T.Kernel(2, threads=64) as bx:
            tx = T.get_thread_binding()
            r = T.alloc_local((1,), T.uint32)
            r[0] = T.call_extern(T.uint32, "xor3", a[bx * 64 + tx], b[bx * 64 + tx], c[bx * 64 + tx])
            d[bx * 64 + 63 - tx] = r[0]

    return xor_threads


def _inputs():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 2**32, 128, dtype=np.uint32) for _ in range(3)]


def _forget_warnings():
    for key in [k for k in _warned if isinstance(k, tuple) and k[0] == "thread-exact-ptx"]:
        _warned.discard(key)


@pytest.mark.parametrize("make, reverse", [(tile_level, False), (thread_level, True)], ids=["tiles", "threads"])
def test_inline_ptx_runs_in_the_ptx_interpreter_with_one_warning(make, reverse):
    _forget_warnings()
    with pytest.warns(UserWarning, match=r"with inline PTX \(xor3.*PTX interpreter"):
        k = tilewise.compile(make(LOP3), target="cpu")
    assert k.execution_backend == "ptx"
    a, b, c = _inputs()
    d = np.zeros_like(a)
    k(a, b, c, d)
    ref = a ^ b ^ c
    np.testing.assert_array_equal(d, ref.reshape(2, 64)[:, ::-1].reshape(-1) if reverse else ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per kernel and process
        tilewise.compile(make(LOP3), target="cpu")


def test_cpp_source_in_a_tile_level_kernel_stays_native():
    k = tilewise.compile(tile_level(CPP), target="cpu")
    assert k.execution_backend == "native"
    a, b, c = _inputs()
    d = np.zeros_like(a)
    k(a, b, c, d)
    np.testing.assert_array_equal(d, a ^ b ^ c)


def test_source_nvrtc_rejects_is_a_compile_error():
    """A thread-level kernel runs as CUDA on the CPU target: a host-only C++ function there is a
    CompileError naming the construct and NVRTC's error, not a g++ or NVRTC dump."""
    _forget_warnings()
    with pytest.warns(UserWarning, match="PTX interpreter"):
        with pytest.raises(tilewise.CompileError, match=r"(?s)T.import_source.*must be CUDA device code.*error") as e:
            tilewise.compile(thread_level(CPP), target="cpu")
    assert "generated source at the error lines" not in str(e.value)
