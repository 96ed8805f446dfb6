"""TileLang 0.1.15's dtype predicates and GEMM operand check (language/dtype_predicates.py)."""
import numpy as np
import pytest

import tilewise.language as T
from tilewise.errors import CompileError


def test_predicates_recognise_fp4_and_the_f8f6f4_family():
    assert T.is_float4(T.float4_e2m1fn) and T.is_float4_e2m1fn("float4_e2m1fn")
    assert T.is_float4(T.float4_e2m1_unpacked) and T.is_float4_e2m1_unpacked(T.float4_e2m1_unpacked)
    assert not T.is_float4_e2m1fn(T.float4_e2m1_unpacked)
    assert T.is_float4("custom[float4_e2m1_unpacked]8") and T.is_float4("float4_e2m1fn")
    assert not T.is_float4(T.float16) and not T.is_float4(np.float32)
    for dt in (T.float8_e4m3fn, T.float8_e5m2, T.float6_e2m3fn, T.float6_e3m2fn, T.float4_e2m1fn):
        assert T.is_f8f6f4_family(dt), dt
    for dt in (T.float16, T.bfloat16, T.int8, "float32"):
        assert not T.is_f8f6f4_family(dt), dt


def test_validate_gemm_ab_dtypes():
    T.validate_gemm_ab_dtypes(T.float16, "float16")
    T.validate_gemm_ab_dtypes(T.float8_e4m3fn, T.float4_e2m1fn, allow_f8f6f4_mixed=True)
    T.validate_gemm_ab_dtypes(T.float16, T.int8, a_in_tmem=True)
    with pytest.raises(ValueError, match="A=float16, B=bfloat16"):
        T.validate_gemm_ab_dtypes(T.float16, T.bfloat16)
    with pytest.raises(ValueError):
        T.validate_gemm_ab_dtypes(T.float8_e4m3fn, T.float4_e2m1fn)


def test_unpacked_fp4_is_a_blackwell_error():
    with pytest.raises(CompileError, match="tcgen05"):
        T.float4_e2m1_unpacked()
