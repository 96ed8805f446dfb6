"""TileLang 0.1.15's other user-tier names: T.gemm_sp against numpy (CPU, emulator + PTX
interpreter), the cluster names, T.annotate_restrict_buffers, T.Assert / T.extract_lane, the dtype
names, and the names that are clear errors (Blackwell, TIR blocks, packed fp4 vectors)."""
import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.errors import CompileError
from tilewise.tileop.gemm_sp import e_factor

pytestmark = pytest.mark.filterwarnings("ignore:.*programs its threads:UserWarning")
TARGETS = [("cpu", None), ("cuda", "emulator")]

# ------------------------------------------------------------------ T.gemm_sp


def semi_sparse(rng, m, k, dtype, group=4, kept=2):
    a = rng.standard_normal((m, k)).astype(dtype)
    for r in range(m):
        for g in range(k // group):
            drop = rng.choice(group, group - kept, replace=False)
            a[r, g * group + drop] = 0
    return a


def compress(a, meta_dtype):
    """numpy form of TileLang's ordered-metadata compression (examples/gemm_sp/sparse_utils.py)."""
    m, k = a.shape
    if a.dtype == np.float32:  # 1 of each 2: nibble 0b0100 (first kept) or 0b1110 (second)
        ef = e_factor("float32", meta_dtype)
        sp = np.zeros((m, k // 2), a.dtype)
        meta = np.zeros((m, k // ef), np.int64)
        for r in range(m):
            for g in range(k // 2):
                second = a[r, 2 * g] == 0 and a[r, 2 * g + 1] != 0
                sp[r, g] = a[r, 2 * g + int(second)]
                meta[r, 2 * g // ef] |= (0b1110 if second else 0b0100) << (4 * (g % (ef // 2)))
    else:
        ef = e_factor("float16", meta_dtype)
        sp = np.zeros((m, k // 2), a.dtype)
        meta = np.zeros((m, k // ef), np.int64)
        for r in range(m):
            for g in range(k // 4):
                nz = [i for i in range(4) if a[r, 4 * g + i] != 0]
                nz = {0: [0, 1], 1: [0, 1] if nz == [0] else [0] + nz}.get(len(nz), nz)
                for i in range(2):
                    sp[r, 2 * g + i] = a[r, 4 * g + nz[i]]
                    meta[r, 4 * g // ef] |= nz[i] << (4 * (g % (ef // 4)) + 2 * i)
    bits = np.dtype(meta_dtype).itemsize * 8
    return sp, (meta & ((1 << bits) - 1)).astype(f"uint{bits}").view(meta_dtype)


def _gemm_sp_kernel(M, N, K, dtype, meta, accum, transpose_A=False, transpose_E=False, bm=64, bn=64, bk=64):
    ef = e_factor(dtype, meta)
    a_shape, a_tile = ((K // 2, M), (bk // 2, bm)) if transpose_A else ((M, K // 2), (bm, bk // 2))
    e_shape, e_tile = ((K // ef, M), (bk // ef, bm)) if transpose_E else ((M, K // ef), (bm, bk // ef))

    @T.prim_func
    def k(A: T.Tensor(a_shape, dtype), E: T.Tensor(e_shape, meta), B: T.Tensor((K, N), dtype),
          C: T.Tensor((M, N), accum)):
        with T.Kernel(N // bn, M // bm, threads=128) as (bx, by):
            As = T.alloc_shared(a_tile, dtype)
            Es = T.alloc_shared(e_tile, meta)
            Bs = T.alloc_shared((bk, bn), dtype)
            Cl = T.alloc_fragment((bm, bn), accum)
            T.clear(Cl)
            for ko in T.Pipelined(K // bk, num_stages=2):
                if transpose_A:
                    T.copy(A[ko * bk // 2, by * bm], As)
                else:
                    T.copy(A[by * bm, ko * bk // 2], As)
                if transpose_E:
                    T.copy(E[ko * bk // ef, by * bm], Es)
                else:
                    T.copy(E[by * bm, ko * bk // ef], Es)
                T.copy(B[ko * bk, bx * bn], Bs)
                T.gemm_sp(As, Es, Bs, Cl, transpose_A=transpose_A, transpose_E=transpose_E)
            T.copy(Cl, C[by * bm, bx * bn])

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("meta", ["int16", "int32", "int8"])
def test_gemm_sp_float16(meta, target, backend, rng):
    M, N, K = 64, 64, 128
    a = semi_sparse(rng, M, K, np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    sp, e = compress(a, meta)
    c = tilewise.compile(_gemm_sp_kernel(M, N, K, "float16", meta, "float32"), out_idx=[3], target=target,
                         execution_backend=backend)(sp, e, b)
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("target,backend", TARGETS)
def test_gemm_sp_transposed_operands_and_int8(target, backend, rng):
    M, N, K = 64, 64, 128
    a = semi_sparse(rng, M, K, np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    sp, e = compress(a, "int16")
    k = _gemm_sp_kernel(M, N, K, "float16", "int16", "float32", transpose_A=True, transpose_E=True)
    c = tilewise.compile(k, out_idx=[3], target=target, execution_backend=backend)(sp.T.copy(), e.T.copy(), b)
    np.testing.assert_allclose(c, a.astype(np.float32) @ b.astype(np.float32), rtol=1e-5, atol=1e-4)

    ai = semi_sparse(rng, M, K, np.float32).round().clip(-8, 8).astype(np.int8)
    bi = rng.integers(-8, 8, (K, N)).astype(np.int8)
    spi, ei = compress(ai, "int32")
    ci = tilewise.compile(_gemm_sp_kernel(M, N, K, "int8", "int32", "int32"), out_idx=[3], target=target,
                          execution_backend=backend)(spi, ei, bi)
    np.testing.assert_array_equal(ci, ai.astype(np.int32) @ bi.astype(np.int32))


def test_gemm_sp_float32_one_of_two(rng):
    M, N, K = 64, 64, 64
    a = semi_sparse(rng, M, K, np.float32, group=2, kept=1)
    b = rng.standard_normal((K, N)).astype(np.float32)
    sp, e = compress(a, "int16")
    c = tilewise.compile(_gemm_sp_kernel(M, N, K, "float32", "int16", "float32", bk=32), out_idx=[3],
                         target="cpu")(sp, e, b)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_gemm_sp_checks_the_metadata_shape():
    with pytest.raises(CompileError, match="E .* must be"):
        @T.prim_func
        def k(A: T.Tensor((64, 32), "float16"), E: T.Tensor((64, 8), "int16"), B: T.Tensor((64, 64), "float16"),
              C: T.Tensor((64, 64), "float32")):
            with T.Kernel(1, threads=128):
                As = T.alloc_shared((64, 32), "float16")
                Es = T.alloc_shared((64, 8), "int16")
                Bs = T.alloc_shared((64, 64), "float16")
                Cl = T.alloc_fragment((64, 64), "float32")
                T.gemm_sp(As, Es, Bs, Cl)


# ------------------------------------------------------------------ clusters


def _cluster_kernel(dims):
    @T.prim_func
    def k(X: T.Tensor((64,), "float32"), Y: T.Tensor((64,), "float32"), C: T.Tensor((4, 2, 6), "int32")):
        with T.ClusterKernel(4, 2, cluster_dims=dims, threads=32) as (bx, by):
            s = T.alloc_shared((8,), "float32")
            for i in T.Parallel(8):
                s[i] = X[(bx * 2 + by) * 8 + i]
            if T.get_cluster_size() == 1:
                T.cluster_arrive()
                T.cluster_wait()
                T.cluster_sync()
            for i in T.Parallel(8):
                Y[(bx * 2 + by) * 8 + i] = s[7 - i] * 2
            C[bx, by, 0] = T.get_cluster_id(0)
            C[bx, by, 1] = T.get_cluster_id(1)
            C[bx, by, 2] = T.block_rank_in_cluster()
            C[bx, by, 3] = T.get_cluster_size()
            C[bx, by, 4] = T.get_cluster_extent(0)
            C[bx, by, 5] = T.get_cluster_extents()[1]

    return k


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("dims", [(2, 1, 1), (2, 2), 1])
def test_cluster_queries_are_program_space_arithmetic(dims, target, backend):
    cx, cy = (dims, 1) if isinstance(dims, int) else (dims[0], dims[1])
    x = np.arange(64, dtype=np.float32)
    y, c = tilewise.compile(_cluster_kernel(dims), out_idx=[1, 2], target=target, execution_backend=backend)(x)
    np.testing.assert_array_equal(y, (x.reshape(8, 8)[:, ::-1] * 2).reshape(-1))
    bx, by = np.meshgrid(np.arange(4), np.arange(2), indexing="ij")
    want = np.stack([bx // cx, by // cy, bx % cx + (by % cy) * cx, np.full_like(bx, cx * cy),
                     np.full_like(bx, 4 // cx), np.full_like(bx, 2 // cy)], -1)
    np.testing.assert_array_equal(c, want)


def test_cluster_barriers_of_real_clusters_are_errors():
    with pytest.raises(CompileError, match="cluster of 2 blocks"):
        @T.prim_func
        def k(X: T.Tensor((64,), "float32")):
            with T.ClusterKernel(4, cluster_dims=2, threads=32):
                T.cluster_sync()
    with pytest.raises(CompileError, match="not a multiple"):
        T.ClusterKernel(3, cluster_dims=2, threads=32)


# ------------------------------------------------------------------ restrict, Assert, extract_lane


def test_annotate_restrict_buffers_drops_restrict_on_cuda_and_cpu():
    @T.prim_func
    def k(X: T.Tensor((64,), "float32"), Y: T.Tensor((64,), "float32"), Z: T.Tensor((64,), "float32")):
        T.annotate_restrict_buffers(X, Y)
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                Y[i] = X[i] + 1
                Z[i] = X[i]

    x = np.arange(64, dtype=np.float32)
    for target, backend in TARGETS:
        kk = tilewise.compile(k, out_idx=[1, 2], target=target, execution_backend=backend)
        y, z = kk(x)
        np.testing.assert_array_equal(y, x + 1)
        src = kk.get_kernel_source()
        assert "__restrict__ Z" in src or "__restrict__ tw_" in src or "* __restrict__" in src
        for name in ("X", "Y"):
            assert f"* __restrict__ {name}" not in src and f"*__restrict__ {name}" not in src, (target, name)


def test_assert_and_extract_lane(rng):
    @T.prim_func
    def k(X: T.Tensor((64,), "float32"), Y: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=32):
            t = T.get_thread_binding()
            T.Assert(t < 32, ["lane ", "out of range"])
            v = T.reinterpret(T.ldg64(X[t * 2:t * 2 + 2]), T.float32x2)
            Y[t * 2] = T.extract_lane(v, 1)
            Y[t * 2 + 1] = T.extract_lane(v, 0)

    x = rng.standard_normal(64).astype(np.float32)
    y = tilewise.compile(k, out_idx=[1], target="cuda", execution_backend="emulator")(x)
    np.testing.assert_array_equal(y, x.reshape(32, 2)[:, ::-1].reshape(-1))


# ------------------------------------------------------------------ names that are clear errors


@pytest.mark.parametrize("name", ["tcgen05_gemm", "alloc_tmem", "clc_try_cancel", "tma_load_2sm", "gemm_blockscaled",
                                  "tcgen05_mma_arrive", "tma_gather4", "ptx_tcgen05_mma_ss"])
def test_blackwell_names_are_compile_errors(name):
    with pytest.raises(CompileError, match=r"Blackwell \(sm_100\) instruction; tilewise targets sm_80/sm_90a/CPU/HIP"):
        getattr(T, name)(1, 2)


def test_blackwell_classes_and_sm120_are_compile_errors():
    with pytest.raises(CompileError, match="Blackwell"):
        T.TCGEN05TensorCoreIntrinEmitter(a_dtype="float16")
    with pytest.raises(CompileError, match=r"sm_120"):
        T.TensorCoreIntrinEmitterSM120()


def test_dtype_names():
    assert T.boolean == T.bool and T.void == "handle"
    for name in ("float4_e2m1fnx2", "float6_e3m2fnx8", "float8_e3m4", "float8_e4m3b11fnuzx4"):
        d = getattr(T, name)
        assert str(d) == name
        with pytest.raises(CompileError, match=name):
            d(0)
        with pytest.raises(ValueError, match=f"unknown dtype '?{name}"):
            T.Tensor((4,), d)


@pytest.mark.parametrize("name", ["where", "init", "thread_return", "ret", "get_active_lane_mask",
                                  "annotate_ws_schedule"])
def test_tir_constructs_without_a_tilewise_form_are_errors(name):
    with pytest.raises(CompileError, match=name):
        getattr(T, name)(1)


def test_the_user_tier_names_of_tilelang_0_1_15_exist():
    names = """cdiv fma fmul abs2 add2 sub2 mul2 max2 min2 fma2 ieee_add ieee_sub ieee_mul ieee_fdiv ieee_fmaf
    ieee_frcp ieee_frsqrt ieee_fsqrt q_multiply_shift q_multiply_shift_per_axis align_up activemask ballot
    ballot_sync any_sync all_sync match_any_sync match_all_sync syncthreads_and syncthreads_or syncthreads_count
    lds32 lds64 lds128 sts32 sts64 sts128 gemm_sp ClusterKernel cluster_sync cluster_arrive cluster_arrive_relaxed
    cluster_wait get_cluster_id get_cluster_ids get_cluster_dims get_cluster_extent get_cluster_extents
    get_cluster_size block_rank_in_cluster alloc_cluster_barrier copy_cluster annotate_restrict_buffers
    annotate_ws_pipeline_depth annotate_ws_schedule Assert extract_lane where init thread_return ret
    get_active_lane_mask boolean void float8_e3m4 float8_e4m3b11fnuz""".split()
    missing = [n for n in names if not hasattr(T, n)]
    assert not missing


# ------------------------------------------------------------------ T.PersistentTileScheduler

MT, NT, WORKERS = 5, 7, 4


def _persistent(swizzle, column_major):
    @T.prim_func
    def k(O: T.Tensor((MT, NT, 2), "int32")):
        with T.Kernel(WORKERS, threads=32) as wid:
            sched = T.PersistentTileScheduler(MT, NT, num_workers=WORKERS, swizzle_size=swizzle,
                                              column_major=column_major, name="sched")
            sched.init(wid)
            while sched.valid():
                for i in T.Parallel(2):
                    O[sched.m_idx, sched.n_idx, i] = T.if_then_else(i == 0, wid, sched.current_iter)
                sched.next_tile()

    return k


def _persistent_reference(swizzle, column_major):
    """Worker w takes tiles w, w + W, ...; tile t decodes as TileLang's PersistentTileScheduler.coord."""
    o = np.full((MT, NT, 2), -1)
    prim, sec = (MT, NT) if column_major else (NT, MT)
    for w in range(WORKERS):
        for it, t in enumerate(range(w, MT * NT, WORKERS)):
            g = t // (prim * swizzle)
            width = max(1, min(swizzle, sec - g * swizzle))
            f, s = (t - g * prim * swizzle) // width, g * swizzle + (t - g * prim * swizzle) % width
            o[(f, s) if column_major else (s, f)] = (w, it)
    return o


@pytest.mark.parametrize("target,backend", TARGETS)
@pytest.mark.parametrize("swizzle,column_major", [(1, True), (3, True), (2, False)])
def test_persistent_tile_scheduler_visits_every_tile_once(swizzle, column_major, target, backend):
    o = tilewise.compile(_persistent(swizzle, column_major), out_idx=[0], target=target, execution_backend=backend)()
    assert (o[..., 0] >= 0).all()  # every tile written (by exactly one worker: the reference's)
    np.testing.assert_array_equal(o, _persistent_reference(swizzle, column_major))


def test_stateless_scheduler_only_decodes():
    with pytest.raises(CompileError, match="stateful=False"):
        @T.prim_func
        def k(O: T.Tensor((4,), "int32")):
            with T.Kernel(1, threads=32):
                s = T.PersistentTileScheduler(2, 2, num_workers=1, stateful=False)
                O[0] = s.m_idx


# ------------------------------------------------------------------ T.meta_class


@T.meta_class
class _Counter:
    def __init__(self, start, name=None):
        self._n = T.alloc_var(T.int32)
        self.start = start

    @property
    def n(self):
        return self._n[0]

    def reset(self):  # stores: inlined into the kernel
        self._n[0] = self.start

    def bump(self, k):
        self._n[0] = self._n[0] + k

    def doubled(self):  # no store: plain Python building an expression
        return self._n[0] * 2


@pytest.mark.parametrize("target,backend", TARGETS)
def test_meta_class_state_in_registers(target, backend):
    @T.prim_func
    def k(O: T.Tensor((2,), "int32")):
        with T.Kernel(1, threads=32):
            c = _Counter(5, name="ctr")
            c.reset()
            c.bump(3)
            O[0] = c.n
            c.bump(1)
            O[1] = c.doubled()

    kk = tilewise.compile(k, out_idx=[0], target=target, execution_backend=backend)
    np.testing.assert_array_equal(kk(), [8, 18])
    assert "ctr_n" in kk.get_kernel_source()


def test_hints_without_effect_warn_and_keep_the_program(rng):
    @T.prim_func
    def k(X: T.Tensor((64,), "float32"), Y: T.Tensor((64,), "float32")):
        T.annotate_ws_pipeline_depth({X: 2})
        with T.Kernel(1, threads=64):
            with T.ws_op("scale"):
                for i in T.Parallel(64):
                    Y[i] = T.if_then_else(T.ignore_loop_partition(i < 32), X[i] * 2, X[i])

    x = rng.standard_normal(64).astype(np.float32)
    y = tilewise.compile(k, out_idx=[1], target="cpu")(x)
    np.testing.assert_array_equal(y, np.where(np.arange(64) < 32, x * 2, x))
    with pytest.raises(CompileError, match="positive int"):
        @T.prim_func
        def bad(X: T.Tensor((64,), "float32")):
            T.annotate_ws_pipeline_depth({X: 0})
