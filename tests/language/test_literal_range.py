"""Typed Python literals the type cannot hold (TileLang 0.1.13's test_alloc_var_rejects_unrepresentable_
float32_initializer; TVM's IntImm / FloatImm range check): a ValueError, not a wrapped or infinite
value. A literal next to an operand is typed as TVM types it (int32 / float32) and the operation
promoted, not squeezed into the operand's type (`int8_x + 300` and `int8_x + 100` compute in int32,
`half_x * 1.5` in float32, as TileLang's IR shows)."""
from __future__ import annotations

import pytest
import torch

import tilewise
import tilewise.language as T
from tilewise import tvm
from tilewise.ir.dtype import as_dtype

HOW = [dict(target="cpu"), dict(target="cuda", execution_backend="emulator")]

OUT_OF_RANGE = [("float32", 1e300, "exceeds maximum of float32"), ("float16", -1e6, "exceeds minimum of float16"),
                ("bfloat16", 1e39, "exceeds maximum of bfloat16"), ("int8", 300, "exceeds maximum of int8"),
                ("int16", -40000, "exceeds minimum of int16"), ("uint8", -1, "negative for unsigned"),
                ("int32", 2**31, "exceeds maximum of int32"), ("float8_e4m3fn", 500.0, "exceeds maximum of float8_e4m3fn")]


@pytest.mark.parametrize("dtype,value,msg", OUT_OF_RANGE)
def test_typed_literal_out_of_range(dtype, value, msg):
    with pytest.raises(ValueError, match=msg):
        getattr(T, dtype)(value)
    with pytest.raises(ValueError, match=msg):
        tvm.tir.const(value, dtype)
    with pytest.raises(ValueError, match=msg):
        @T.prim_func
        def init(A: T.Tensor((1,), dtype)):
            with T.Kernel(1):
                v = T.alloc_var(dtype, init=value)
                A[0] = v
    with pytest.raises(ValueError, match=msg):
        @T.prim_func
        def store(A: T.Tensor((1,), dtype)):
            with T.Kernel(1):
                A[0] = value


@pytest.mark.parametrize("dtype,value", [("float32", float("inf")), ("float16", float("-inf")), ("float32", float("nan")),
                                         ("float32", 3.4028234663852886e38), ("float16", 65504.0), ("int8", -128),
                                         ("uint32", 2**32 - 1), ("int64", -(2**63)), ("float8_e4m3fn", -448.0)])
def test_typed_literal_at_the_edges(dtype, value):
    c = getattr(T, dtype)(value)
    assert c.dtype == as_dtype(dtype)


@pytest.mark.parametrize("how", HOW)
def test_float64_initializer_keeps_its_value(how):
    @T.prim_func
    def k(A: T.Tensor((1,), "float64")):
        with T.Kernel(1):
            v = T.alloc_var(T.float64, init=1e300)
            A[0] = v

    a = torch.zeros(1, dtype=torch.float64)
    tilewise.compile(k, **how)(a)
    assert a.item() == 1e300


@pytest.mark.parametrize("how", HOW)
def test_literal_next_to_a_narrow_operand_widens_the_operation(how):
    @T.prim_func
    def k(A: T.Tensor((4,), "int8"), U: T.Tensor((4,), "uint8"), H: T.Tensor((4,), "float16"),
          I: T.Tensor((4,), "int32"), O: T.Tensor((4, 6), "float64")):
        with T.Kernel(1, threads=4) as _:
            for i in T.Parallel(4):
                O[i, 0] = T.cast(A[i] + 300, "float64")
                O[i, 1] = T.cast(U[i] - 1000, "float64")
                O[i, 2] = T.cast(H[i] * 1e6, "float64")
                O[i, 3] = T.cast(I[i] + 2**40, "float64")
                O[i, 4] = T.cast(A[i] + 100, "float64")  # an int literal is an int32: C's promotion
                O[i, 5] = T.cast(H[i] * 1.5 + H[i], "float64")  # a float literal is a float32: rounded once

    a = torch.tensor([1, -5, 100, -128], dtype=torch.int8)
    u = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    h = torch.tensor([1.0, -0.5, 2.0, 0.25], dtype=torch.float16)
    i32 = torch.tensor([0, -1, 7, 2**31 - 1], dtype=torch.int32)
    o = torch.zeros(4, 6, dtype=torch.float64)
    tilewise.compile(k, **how)(a, u, h, i32, o)
    assert o[:, 0].tolist() == (a.long() + 300).double().tolist()
    assert o[:, 1].tolist() == (u.long() - 1000).double().tolist()
    assert o[:, 2].tolist() == (h.float() * 1e6).double().tolist()
    assert o[:, 3].tolist() == (i32.long() + 2**40).double().tolist()
    assert o[:, 4].tolist() == (a.long() + 100).double().tolist()  # 200, not int8's -56
    assert o[:, 5].tolist() == (h.float() * 1.5 + h.float()).double().tolist()
