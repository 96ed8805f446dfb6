"""TileLang's random numbers: `T.rng_init(seed, seq=None, off=0, generator=...)`, `T.rng_rand()`,
`T.rng_rand_float(bit=32, dist="uniform")`.

TileLang calls curand; tilewise implements the generator itself, Philox4x32-10 (Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC'11) with the counter arithmetic curand
documents for `curandStatePhilox4_32_10_t`, in backend/include/tw_philox.h for the GPU headers
(CUDA and HIP) and with numpy in the emulator
(emulator/rng.py), so one seed gives the same numbers on every target. The state is per thread:
`rng_init` sets the 128-bit counter to `seq << 64` plus `off / 4` and the key to the 64-bit seed,
and the next `rng_rand` returns word `off % 4` of the block Philox makes of the counter; each
following call the next word, the counter advancing by one per 4 words. `seq` defaults, as in
TileLang, to `tx + bx * threads_x`.

- `T.rng_rand()`: the next uint32.
- `T.rng_rand_float()`: uniform float32 in (0, 1]: `x * 2^-32 + 2^-33` of the next word x,
  rounded to float32; `bit=64`: uniform float64 from two words x, y:
  `(x ^ (y << 21)) * 2^-53 + 2^-54`.
- `dist="normal"`: Box-Muller on two uniforms u, v (float32: two words; float64: four):
  `sqrt(-2 ln u) * sin(2 pi v)`, and the next call of the same kind returns the pair's
  `... * cos(2 pi v)` without drawing (as curand caches it).

Integers and uniforms are bit-exact across targets; normals agree to a few ulp (each target's own
log / sin / cos). The generator needs every thread of a block (its state is a thread's), so on
the CPU target a kernel using it runs thread-exactly in the emulator.

`generator="curandStateMRG32k3a_t"` is curand's MRG32k3a instead (rng/mrg32k3a.py says
what it computes; backend/include/tw_curand.h, included only by kernels that use it): the state
words are its six, `seq` skips seq * 2^76 steps, `off` off steps, and `rng_rand` /
`rng_rand_float` are curand's `curand` / `curand_uniform(_double)`; normals as above on its
uniforms. `generator="curandStateXORWOW_t"` is curand's XORWOW (rng/xorwow.py; the same
header, with jump tables the renderer writes into the kernel's source): `seq` skips seq * 2^67
steps, `off` off steps; `rng_rand` its word, the floats Philox's conversions of its words. A kernel
has one generator."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.buffer import Buffer
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Call, Const, Expr, cast
from ..ir.stmt import Allocate, Evaluate
from .loops import py_scalar

PHILOX = "curandStatePhilox4_32_10_t"
MRG32K3A = "curandStateMRG32k3a_t"
XORWOW = "curandStateXORWOW_t"
CURAND_GENERATORS = (PHILOX, MRG32K3A, XORWOW)
STATE_WORDS = 16  # the per-thread state: docs/THREAD_IR.md, "rng_init"


def _state_addr(k) -> Call:
    return Call("address_of", [BufferLoad(k.rng_state, [Const(0, _dt.int32)])], _dt.handle)


def _u64(v, what: str) -> Expr:
    v = py_scalar(v)
    if isinstance(v, bool) or not isinstance(v, (int, Expr)):
        raise CompileError(f"{what} must be an integer, got {v!r}")
    if isinstance(v, int):
        if v < 0 or v >= 1 << 64:
            raise CompileError(f"{what} must be from 0 to 2**64 - 1, got {v}")
        return Const(v, _dt.uint64)
    if not v.dtype.is_int:
        raise CompileError(f"{what} must be an integer, got {v} of type {v.dtype}")
    return cast(v, _dt.uint64)


def rng_init(seed, seq=None, off=0, generator: str = PHILOX) -> None:
    """Initialise this thread's generator (see the module doc)."""
    what = "T.rng_init"
    k = require_kernel(what)
    if generator not in CURAND_GENERATORS:
        raise CompileError(f"{what}: generator={generator!r} is not one of {', '.join(CURAND_GENERATORS)}")
    if k.rng_generator not in (None, generator):
        raise CompileError(f"{what}: generator={generator!r}, but this kernel's generator is already "
                           f"{k.rng_generator!r} (one generator per kernel: its state is one register buffer)")
    k.rng_generator = generator
    if seq is None:
        ex = k.threads[0]
        seq = k.thread_vars[0] + k.block_vars[0] * ex if k.block_vars else k.thread_vars[0]
    args = [_u64(seed, f"{what}: seed"), _u64(seq, f"{what}: seq"), _u64(off, f"{what}: off")]
    k.thread_binding_used = True  # a state per thread: see the module doc
    if k.rng_state is None:
        k.rng_state = Buffer("rng_state", (STATE_WORDS,), _dt.uint32, "local")
        k.body_frame.insert(0, Allocate(k.rng_state, None))
    emit(Evaluate(Call("rng_init", [_state_addr(k), *args], _dt.handle, {"generator": generator})))


def _state(what: str):
    k = require_kernel(what)
    if k.rng_state is None:
        raise CompileError(f"{what} needs the generator state T.rng_init(seed, ...) sets up earlier in the kernel")
    return k


def rng_rand() -> Call:
    """The next 32-bit unsigned random integer of this thread's generator."""
    k = _state("T.rng_rand")
    return Call("rng_rand", [_state_addr(k)], _dt.uint32, {"generator": k.rng_generator})


def rng_rand_float(bit: int = 32, dist: str = "uniform") -> Call:
    """The next uniform (0, 1] or standard normal float32 (`bit=32`) or float64 (`bit=64`)."""
    what = "T.rng_rand_float"
    if bit not in (32, 64):
        raise CompileError(f"{what}: bit must be 32 or 64, got {bit!r}")
    if dist not in ("uniform", "normal"):
        raise CompileError(f"{what}: dist must be 'uniform' or 'normal', got {dist!r}")
    dt = _dt.float32 if bit == 32 else _dt.float64
    k = _state(what)
    return Call("rng_rand_float", [_state_addr(k)], dt, {"dist": dist, "generator": k.rng_generator})


__all__ = ["rng_init", "rng_rand", "rng_rand_float"]
