"""T.print on the CPU: scalars and whole buffers or slices, once per block, in the documented line
format, typed (floats with %g, integers exactly, bools as true/false), and one call's lines never
interleaved with another block's. The kernel writes to the C stdout, so capfd captures it."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise import CompileError

GRID = (4, 2)
MSG = 'say "hi" \\ ü'


@pytest.fixture(scope="module")
def print_kernel():
    @T.prim_func
    def main(A: T.Tensor((8, 8), "float32"), H: T.Tensor((2,), "float16"), U: T.Tensor((2,), "uint8")):
        with T.Kernel(*GRID) as (bx, by):
            a = T.alloc_fragment((4, 8), "float32")
            n = T.alloc_var("int32")
            n = bx * 10 + by
            T.copy(A[by * 4, 0], a)
            T.print(a, msg="tile")
            T.print(a[1, 2:5])
            T.print(n, msg=MSG)
            T.print(H[1] * 2, msg="half")
            T.print(U[0] + U[1], msg="uint8")
            T.print(T.int64(1) << 40, msg="int64")
            T.print(A[0, 0] > 0, msg="bool")

    return tilewise.compile(main, target="cpu")


def expected_lines(a: np.ndarray, h: np.ndarray, u: np.ndarray, bx: int, by: int) -> dict:
    blk = f"block ({bx}, {by}, 0)"
    tile = a[by * 4 : by * 4 + 4]
    return {
        "tile": [f"tile: {blk} a[{i}, {j}] = {tile[i, j]:g}" for i in range(4) for j in range(8)],
        "slice": [f"{blk} a[1, {j}] = {tile[1, j]:g}" for j in range(2, 5)],
        "msg": [f"{MSG}: {blk} n = {bx * 10 + by}"],
        "half": [f"half: {blk} H[1] * T.float16(2.0) = {float(h[1] * np.float16(2)):g}"],
        "uint8": [f"uint8: {blk} U[0] + U[1] = {(int(u[0]) + int(u[1])) % 256}"],
        "int64": [f"int64: {blk} T.int64(1) << T.int64(40) = {1 << 40}"],
        "bool": [f"bool: {blk} A[0, 0] > 0.0 = {'true' if a[0, 0] > 0 else 'false'}"],
    }


def test_print_lines(print_kernel, capfd, rng):
    a = (rng.standard_normal((8, 8)) * 100).astype(np.float32)
    a[0, 0] = -1.5
    h = np.array([1.25, -3.5], np.float16)
    u = np.array([200, 100], np.uint8)  # wraps in uint8
    capfd.readouterr()
    print_kernel(a, h, u)
    out = capfd.readouterr().out.splitlines()
    want = []
    per_block = {}
    for bx in range(GRID[0]):
        for by in range(GRID[1]):
            per_block[bx, by] = expected_lines(a, h, u, bx, by)
            for lines in per_block[bx, by].values():
                want.extend(lines)
    assert Counter(out) == Counter(want)
    # one call's lines are contiguous although blocks run on several threads
    for groups in per_block.values():
        for lines in groups.values():
            k = out.index(lines[0])
            assert out[k : k + len(lines)] == lines


def test_print_label_format(print_kernel):
    src = print_kernel.get_kernel_source()
    assert re.search(r'tw::print_tile\("tile", "a", bx, by, 0, \(&a\[0\]\), \{4, 8\}, \{8, 1\}, \{0, 0\}\)', src), src
    assert '"say \\042hi\\042 \\134 \\303\\274"' in src  # quotes, backslash, UTF-8 as octal escapes


def test_print_errors():
    with pytest.raises(CompileError, match="T.print: msg must be a string"):

        @T.prim_func
        def bad_msg(A: T.Tensor((4,), "float32")):
            with T.Kernel(1):
                T.print(A[0], msg=3)

    with pytest.raises(CompileError, match="T.print: expected a scalar expression, a buffer or a slice"):

        @T.prim_func
        def bad_obj(A: T.Tensor((4,), "float32")):
            with T.Kernel(1):
                T.print("text")

    with pytest.raises(CompileError, match=r"inside `with T.Kernel"):

        @T.prim_func
        def outside(A: T.Tensor((4,), "float32")):
            T.print(A)


@pytest.mark.parametrize("how", [dict(target="cpu"), dict(target="cuda", execution_backend="emulator")])
def test_print_message_only(capfd, how):
    """TileLang's T.print(msg="...") without a value: the message and the block, once per block."""

    @T.prim_func
    def main(A: T.Tensor((2,), "float32")):
        with T.Kernel(2, threads=32) as _:
            tx = T.get_thread_binding()
            if tx == 0:
                T.print(msg="hello world")

    kernel = tilewise.compile(main, **how)
    capfd.readouterr()
    kernel(np.zeros(2, np.float32))
    out = capfd.readouterr().out.splitlines()
    assert sorted(out) == ["hello world: block (0, 0, 0)", "hello world: block (1, 0, 0)"]
    with pytest.raises(CompileError, match="give a value to print or a msg"):
        @T.prim_func
        def bad(A: T.Tensor((2,), "float32")):
            with T.Kernel(1) as _:
                T.print()


def test_print_message_only_native_cpu_and_nvrtc(capfd, nvrtc_check):
    @T.prim_func
    def main(A: T.Tensor((2,), "float32")):
        with T.Kernel(2, threads=32) as _:
            T.print(msg="tick")

    kernel = tilewise.compile(main, target="cpu")
    assert "tw::print_msg(" in kernel.get_kernel_source()
    capfd.readouterr()
    kernel(np.zeros(2, np.float32))
    assert sorted(capfd.readouterr().out.splitlines()) == ["tick: block (0, 0, 0)", "tick: block (1, 0, 0)"]
    nvrtc_check(main, allow_stack=True)  # printf's argument buffer
