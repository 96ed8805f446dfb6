"""User T.Fragment layouts (T.annotate_layout) on fragments and on T.alloc_local buffers: the
same results on the CPU and on the CUDA target (emulator, cross-checked by the PTX interpreter;
NVRTC for sm_80 and sm_90a), conflicts with what an operator needs reported naming both lines,
and fragment copies between tiles that differ in unit dimensions or take a slice."""
from __future__ import annotations

import numpy as np
import pytest

import tilewise
import tilewise.language as T

B, S, D = 2, 4, 64


def combine_kernel():
    """The shape of TileLang's split-KV combine kernels: a [splits, 128] fragment laid out one
    column per thread (thread j, register i), its column maxima one per thread, and a [16, D]
    tile with a hand-written thread map over fewer threads than the block."""

    @T.prim_func
    def combine(glse: T.Tensor((B, S), "float32"), A: T.Tensor((B, 16, D), "float32"),
                Mx: T.Tensor((B, 128), "float32"), Out: T.Tensor((B, 16, D), "float32")):
        with T.Kernel(B, threads=128) as bz:
            lse_local = T.alloc_fragment([S, 128], "float32")
            lse_max = T.alloc_fragment([128], "float32")
            o = T.alloc_fragment([16, D], "float32")
            acc = T.alloc_local([1], "float32")
            T.annotate_layout({
                lse_local: T.Fragment(lse_local.shape, forward_fn=lambda i, j: (j, i)),
                lse_max: T.Fragment(lse_max.shape, forward_thread_fn=lambda i: i),
                o: T.Fragment(o.shape, forward_thread_fn=lambda i, j: i % 8 * 4 + j // 16),
                acc: T.Fragment(acc.shape, forward_thread_fn=lambda i: i),
            })
            for k, j in T.Parallel(S, 128):
                lse_local[k, j] = glse[bz, k] + j
            T.reduce_max(lse_local, lse_max, dim=0, clear=True)
            T.copy(lse_max, Mx[bz, :])
            T.clear(acc)
            for k in T.serial(S):
                acc[0] += glse[bz, k]
            T.copy(A[bz, :, :], o)
            for i, j in T.Parallel(16, D):
                o[i, j] = o[i, j] * 2 + i + acc[0]
            T.copy(o, Out[bz, :, :])

    return combine


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_custom_fragments_compute_the_same_everywhere(target, emu, rng):
    func = combine_kernel()
    k = emu(func) if target == "emulator" else tilewise.compile(func, target="cpu")
    g = rng.standard_normal((B, S)).astype(np.float32)
    a = rng.standard_normal((B, 16, D)).astype(np.float32)
    m = np.zeros((B, 128), np.float32)
    o = np.zeros((B, 16, D), np.float32)
    k(g, a, m, o)
    np.testing.assert_allclose(m, g.max(1)[:, None] + np.arange(128)[None], rtol=1e-6)
    np.testing.assert_allclose(o, a * 2 + np.arange(16)[None, :, None] + g.sum(1)[:, None, None], rtol=1e-5,
                               atol=1e-5)


def test_custom_fragments_compile_for_sm80_and_sm90a(nvrtc_check):
    nvrtc_check(combine_kernel())


def test_the_annotation_is_the_layout_cuda_uses(emu):
    k = emu(combine_kernel())
    src = k.get_kernel_source()
    # thread j holds column j of lse_local (4 registers), element tx of lse_max, and the 16 x 64
    # tile over 32 threads is replicated over the other 96 (only replica 0 stores it)
    assert "float lse_local[4];" in src and "float lse_max[1];" in src and "float o[32];" in src
    assert "Mx[bz * 128 + tx]" in src


def _gemm_kernel(thread_fn):
    @T.prim_func
    def g(A: T.Tensor((32, 32), "float16"), Bm: T.Tensor((32, 32), "float16"), C: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=128):
            As = T.alloc_shared((32, 32), "float16")
            Bs = T.alloc_shared((32, 32), "float16")
            Cl = T.alloc_fragment((32, 32), "float32")
            T.annotate_layout({Cl: thread_fn(Cl)})
            T.copy(A, As)
            T.copy(Bm, Bs)
            T.clear(Cl)
            T.gemm(As, Bs, Cl)
            T.copy(Cl, C)

    return g


def test_a_fragment_fed_to_gemm_must_have_the_mma_layout(emu):
    with pytest.raises(tilewise.CompileError) as err:
        emu(_gemm_kernel(lambda c: T.Fragment(c.shape, forward_thread_fn=lambda i, j: i * 4 + j // 8)))
    text = str(err.value)
    assert "layout conflict for fragment Cl" in text and "T.annotate_layout at" in text
    assert "T.gemm(As, Bs, Cl)" in text and "T.annotate_layout({Cl:" in text  # both lines shown


def test_an_annotation_matching_the_mma_layout_is_accepted(emu, rng):
    """The annotation fixes which thread holds each element; the gemm's register order is
    taken (TileLang's forward_index is storage order, invisible to results)."""
    from tilewise.layout.tv import mma_c_tv

    want = mma_c_tv(32, 32, 2, 2, 128)  # what T.gemm picks for a 32 x 32 tile over 4 warps
    assert np.array_equal(_mma_like(want, reverse=False).thread_table(), want.thread_table())
    k = emu(_gemm_kernel(lambda c: _mma_like(c, reverse=True)))
    a = rng.standard_normal((32, 32)).astype(np.float16)
    b = rng.standard_normal((32, 32)).astype(np.float16)
    c = np.zeros((32, 32), np.float32)
    k(a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), rtol=1e-3, atol=1e-3)


def _mma_like(c, reverse: bool):
    """The m16n8 accumulator layout over a 2 x 2 warp grid (warp = wm * 2 + wn; each warp a
    16 x 16 tile of two m16n8 tiles), registers numbered backwards when `reverse`."""
    def thread(i, j):
        wm, wn = i // 16, j // 16
        return (wm * 2 + wn) * 32 + (i % 8) * 4 + (j % 8) // 2

    def index(i, j):
        r = (j % 2) + ((i % 16) // 8) * 2 + ((j % 16) // 8) * 4
        return 7 - r if reverse else r

    return T.Fragment(c.shape, forward_thread_fn=thread, forward_index_fn=index)


def test_elementwise_loop_over_fragments_of_different_layouts_is_a_conflict(emu):
    @T.prim_func
    def p(A: T.Tensor((32, 32), "float32"), C: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=128):
            X = T.alloc_fragment((32, 32), "float32")
            Y = T.alloc_fragment((32, 32), "float32")
            T.annotate_layout({X: T.Fragment(X.shape, forward_thread_fn=lambda i, j: i * 4 + j // 8),
                               Y: T.Fragment(Y.shape, forward_thread_fn=lambda i, j: j * 4 + i // 8)})
            T.copy(A, X)
            for i, j in T.Parallel(32, 32):
                Y[i, j] = X[i, j] + 1
            T.copy(Y, C)

    with pytest.raises(tilewise.CompileError) as err:
        emu(p)
    text = str(err.value)
    assert "layout conflict for fragment" in text and "T.annotate_layout at" in text
    assert "for i, j in T.Parallel(32, 32):" in text and "T.annotate_layout({X:" in text


def test_compatible_layouts_in_one_loop_are_fine(emu, rng):
    """A [32] row vector laid out as the rows of a [32, 32] tile's threads (replicated over the
    threads sharing a row) works with it in one loop."""
    @T.prim_func
    def p(A: T.Tensor((32, 32), "float32"), v: T.Tensor((32,), "float32"), C: T.Tensor((32, 32), "float32")):
        with T.Kernel(1, threads=128):
            X = T.alloc_fragment((32, 32), "float32")
            r = T.alloc_fragment((32,), "float32")
            T.annotate_layout({X: T.Fragment(X.shape, forward_thread_fn=lambda i, j: i * 4 + j // 8),
                               r: T.Fragment(r.shape, forward_thread_fn=lambda i, rep: i * 4 + rep, replicate=4)})
            T.copy(A, X)
            T.copy(v, r)
            for i, j in T.Parallel(32, 32):
                X[i, j] = X[i, j] * r[i]
            T.copy(X, C)

    k = emu(p)
    a = rng.standard_normal((32, 32)).astype(np.float32)
    vv = rng.standard_normal(32).astype(np.float32)
    c = np.zeros((32, 32), np.float32)
    k(a, vv, c)
    np.testing.assert_allclose(c, a * vv[:, None], rtol=1e-6)


def test_a_fragment_annotation_must_be_a_valid_fragment():
    with pytest.raises(tilewise.CompileError, match="two elements in one register"):
        @T.prim_func
        def p(A: T.Tensor((8,), "float32")):
            with T.Kernel(1, threads=32):
                X = T.alloc_fragment((8,), "float32")
                T.annotate_layout({X: T.Fragment(X.shape, forward_thread_fn=lambda i: i // 2,
                                                 forward_index_fn=lambda i: 0)})
                T.copy(A, X)


def test_a_layout_outside_the_digit_form_is_named_on_cuda(emu):
    @T.prim_func
    def p(A: T.Tensor((8,), "float32"), C: T.Tensor((8,), "float32")):
        with T.Kernel(1, threads=32):
            X = T.alloc_fragment((8,), "float32")
            T.annotate_layout({X: T.Fragment(X.shape, forward_thread_fn=lambda i: (i * 3) % 8,
                                             forward_index_fn=lambda i: 0)})
            T.copy(A, X)
            T.copy(X, C)

    with pytest.raises(tilewise.CompileError, match="sum of digits") as err:
        emu(p)
    assert "T.annotate_layout" in str(err.value)
    k = tilewise.compile(p, target="cpu")  # the CPU has no threads to honour it for
    a = np.arange(8, dtype=np.float32)
    c = np.zeros(8, np.float32)
    k(a, c)
    np.testing.assert_array_equal(c, a)


# ---------------------------------------------------------------------------- fragment copies


def _issue_1719_kernel():
    """TileLang issue 1719, test 7: T.copy(tmp1[k, :], tmp2) from a [1, 32] half fragment to a
    [32] float fragment next to a reduction over the unit dimension."""

    @T.prim_func
    def f(A: T.Tensor((1, 32), "float16"), C: T.Tensor((32,), "float32")):
        with T.Kernel(1, threads=32):
            tmp1 = T.alloc_fragment([1, 32], "float16")
            tmp2 = T.alloc_fragment([32], "float32")
            tmp3 = T.alloc_fragment([32], "float32")
            tmp4 = T.alloc_fragment([32], "float32")
            T.copy(A, tmp1)
            T.reduce_max(tmp1, tmp4, dim=0)
            k = 0
            T.copy(tmp1[k, :], tmp2)
            T.clear(tmp3)
            for i in T.Parallel(32):
                tmp3[i] += tmp2[i] - tmp4[i] + tmp2[i]
            T.copy(tmp3, C)

    return f


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_copy_between_fragments_differing_in_unit_dims(target, emu):
    f = _issue_1719_kernel()
    k = emu(f) if target == "emulator" else tilewise.compile(f, target="cpu")
    a = (np.arange(32) - 7).astype(np.float16).reshape(1, 32)
    c = np.zeros(32, np.float32)
    k(a, c)
    np.testing.assert_array_equal(c, a[0].astype(np.float32))


def _slice_kernel(split_layout):
    @T.prim_func
    def f(G: T.Tensor((4, 64), "float32"), C: T.Tensor((4, 64), "float32")):
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment([4, 64], "float32")
            row = T.alloc_fragment([64], "float32")
            acc = T.alloc_fragment([64], "float32")
            if split_layout:
                T.annotate_layout({F: T.Fragment(F.shape, forward_fn=lambda i, j: (j, i))})
            T.copy(G, F)
            T.clear(acc)
            for k in T.serial(4):
                T.copy(F[k, :], row)
                for j in T.Parallel(64):
                    acc[j] += row[j] * (k + 1)
                T.copy(acc, C[k, :])

    return f


@pytest.mark.parametrize("target", ["cpu", "emulator"])
def test_copy_of_a_fragment_row_slice(target, emu, rng):
    """T.copy(F[k, :], row) with k a loop variable: register to register when F keeps its rows
    in each thread's registers (TileLang's combine kernels)."""
    f = _slice_kernel(True)
    k = emu(f) if target == "emulator" else tilewise.compile(f, target="cpu")
    g = rng.standard_normal((4, 64)).astype(np.float32)
    c = np.zeros((4, 64), np.float32)
    k(g, c)
    np.testing.assert_allclose(c, np.cumsum(g * np.arange(1, 5)[:, None], axis=0), rtol=1e-5, atol=1e-6)


def _serial_read_kernel(layout):
    @T.prim_func
    def f(G: T.Tensor((2, 8), "float32"), C: T.Tensor((1,), "float32")):
        with T.Kernel(1, threads=64):
            m = T.alloc_fragment([2, 8], "float32")
            T.annotate_layout({m: layout(m)})
            T.copy(G, m)
            C[0] = m[1, 3] + m[0, 7]

    return f


def test_serial_reads_need_a_replicated_fragment(emu):
    from tilewise.layout import make_fully_replicated_layout_fragment

    with pytest.raises(tilewise.CompileError, match="element by element outside T.Parallel") as err:
        emu(_serial_read_kernel(lambda m: T.Fragment(m.shape, forward_thread_fn=lambda i, j: i * 8 + j)))
    assert "T.annotate_layout({m:" in str(err.value) and "C[0] = m[1, 3] + m[0, 7]" in str(err.value)
    k = emu(_serial_read_kernel(lambda m: make_fully_replicated_layout_fragment(m, 64)))
    g = np.arange(16, dtype=np.float32).reshape(2, 8)
    c = np.zeros(1, np.float32)
    k(g, c)
    assert c[0] == g[1, 3] + g[0, 7]


def test_fragment_copies_compile_for_sm80_and_sm90a(nvrtc_check):
    nvrtc_check(_issue_1719_kernel())
    nvrtc_check(_slice_kernel(True))
