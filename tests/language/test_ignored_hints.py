"""TileLang keywords that tilewise accepts but cannot use are said once, by name (issue 14 item 7);
unknown keywords are errors; the ones tilewise honours take effect without a warning."""
import warnings

import numpy as np
import pytest

import tilewise as tl
import tilewise.errors as errors
import tilewise.language as T


def _kernel(**copy_kw):
    @T.prim_func
    def main(A: T.Tensor((64,), "float32"), B: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            T.copy(A, S, **copy_kw)
            for i in T.Parallel(64, coalesced_width=2):
                S[i] = S[i] + 1
            T.copy(S, B)

    return main


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(errors, "_warned", set())


def _messages(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [str(x.message) for x in w]


@pytest.mark.parametrize("kw, name", [
    ({"coalesced_width": 4}, "coalesced_width"),
    ({"eviction_policy": "evict_first"}, "eviction_policy"),
    ({"annotations": {"coalesced_width": 4}}, "coalesced_width"),
    ({"annotations": {"some_hint": 1}}, "annotations['some_hint']"),
    ({"prefer_instruction": "ldsm"}, "prefer_instruction"),
])
def test_unused_copy_hints_warn_once_by_name(kw, name):
    msgs = _messages(lambda: [_kernel(**kw) for _ in range(2)])
    ours = [m for m in msgs if f"T.copy({name}=...)" in m]
    assert len(ours) == 1, msgs
    assert any("T.Parallel(coalesced_width=...)" in m for m in msgs)
    k = tl.compile(_kernel(**kw), out_idx=[1], target="cpu")
    a = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(k(a), a + 1)


def test_honoured_hints_do_not_warn():
    msgs = _messages(lambda: _kernel(disable_tma=True, annotations={"disable_tma": True}))
    assert not [m for m in msgs if "T.copy(" in m], msgs


def test_unknown_copy_keyword_is_an_error():
    with pytest.raises(Exception, match="no_such"):
        _kernel(no_such=1)
