"""`run`: launch one kernel of a PTX module on numpy arrays.

Arguments follow the kernel's parameter order: a numpy array for a pointer parameter (its data is
copied into the interpreter's global memory and written back afterwards, in place), a Python or
numpy number for a scalar parameter (encoded as the parameter's PTX type), raw `bytes` for a
parameter declared as a byte array (`.param .align 2 .b8 x[2]`: the bits of a half, for
example), or a `TensorMapDesc` for a TMA tensor map (`.param .align 64 .b8 m[128]`, a
`__grid_constant__ CUtensorMap`): the arguments cuTensorMapEncodeTiled would be given, in place of
the opaque bytes it would return (tensor_map.py). Decoded kernels are cached per PTX text and name."""
from __future__ import annotations

import functools
import hashlib
import struct

import numpy as np

from .errors import PtxLaunchError
from .executor import Launch, Program, run_program
from .memory import GLOBAL_BASE, GlobalMemory, fill_variables, layout_global, span_bytes
from .parser import parse
from .syntax import TYPE_BITS
from .tensor_map import PARAM_BYTES, TensorMapDesc, encode_param


@functools.lru_cache(maxsize=64)
def _parsed(key: str, text: str):
    return parse(text)


@functools.lru_cache(maxsize=128)
def _program(key: str, text: str, name: str) -> Program:
    return Program(_parsed(key, text), name)


def program(ptx: str, name: str) -> Program:
    """The decoded kernel `name` of a PTX module (cached)."""
    key = hashlib.sha1(ptx.encode()).hexdigest()
    return _program(key, ptx, name)


def kernel_names(ptx: str) -> list[str]:
    key = hashlib.sha1(ptx.encode()).hexdigest()
    mod = _parsed(key, ptx)
    return [f.name for f in mod.functions.values() if f.kind == "entry" and f.body is not None]


def _dim3(x, what: str) -> tuple[int, int, int]:
    if isinstance(x, int):
        x = (x,)
    x = tuple(int(v) for v in x)
    if not 1 <= len(x) <= 3 or any(v < 0 for v in x):
        raise PtxLaunchError(f"{what} must be 1 to 3 non-negative extents, got {x}")
    return x + (1,) * (3 - len(x))


def _encode(p, value, name: str) -> bytes:
    size = p.size
    if isinstance(value, (bytes, bytearray)):
        if len(value) != size:
            raise PtxLaunchError(f"argument {name}: {len(value)} bytes for a {size}-byte parameter")
        return bytes(value)
    if p.count is not None:  # a byte-array parameter (a struct such as tw::half): the value's bits
        if isinstance(value, np.generic):
            raw = value.tobytes()
        elif isinstance(value, int):
            raw = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        else:
            raise PtxLaunchError(f"argument {name}: give the {size} bytes of the value (or an int or numpy scalar)")
        if len(raw) != size:
            raise PtxLaunchError(f"argument {name}: a {len(raw)}-byte value for a {size}-byte parameter")
        return raw
    t = p.type
    if t in ("f32", "f64"):
        return struct.pack("<f" if t == "f32" else "<d", float(value))
    if t == "pred":
        return bytes([1 if value else 0])
    bits = TYPE_BITS[t]
    if isinstance(value, (float, np.floating)):
        raise PtxLaunchError(f"argument {name}: a float for the integer parameter .{t}")
    v = int(value)
    if not -(1 << (bits - 1)) <= v < (1 << bits):
        raise PtxLaunchError(f"argument {name}: {v} does not fit in .{t}")
    return (v & ((1 << bits) - 1)).to_bytes(bits // 8, "little")


class RunResult:
    """What a launch printed (device printf), for tests."""

    def __init__(self, printed: list[str]):
        self.printed = printed


def run(ptx: str, kernel_name: str, grid, block, args, dynamic_shared_bytes: int = 0, *, line_info=None,
        atomic_seed: int | None = None, check_races: bool = True, batch_threads: int = 4096,
        pointer_tables=()) -> RunResult:
    """Execute `kernel_name` of the PTX module `ptx` for every thread of every block.

    grid, block: extents (x[, y[, z]]). args: one per kernel parameter (see the module doc); arrays
    are updated in place. `line_info(loc) -> str` adds source lines to error messages (loc is
    the `.loc` (file, line) of the failing instruction). `atomic_seed` shuffles the order in
    which conflicting atomics apply (GPU-like nondeterminism); None applies them in thread order.
    `check_races` reports shared-memory accesses of two threads with no bar.sync between them.
    `pointer_tables`: indices of array arguments holding 64-bit host addresses (T.make_tensor
    from a pointer table): see `_translate_pointer_tables`."""
    prog = program(ptx, kernel_name)
    grid3 = _dim3(grid, "grid")
    block3 = _dim3(block, "block")
    if block3[0] * block3[1] * block3[2] == 0:
        raise PtxLaunchError("a block needs at least one thread")
    if block3[0] * block3[1] * block3[2] > 1024:
        raise PtxLaunchError(f"{block3} is more than 1024 threads per block")
    params = prog.fn.params
    if len(args) != len(params):
        raise PtxLaunchError(f"{kernel_name} takes {len(params)} parameters, got {len(args)} arguments")
    buffers = []
    for p, a in zip(params, args):
        if isinstance(a, np.ndarray):
            if p.type not in ("u64", "b64", "s64"):
                raise PtxLaunchError(f"parameter {p.name} (.{p.type}) cannot take an array")
            raw = span_bytes(a)
            buffers.append((p.name, raw, raw.size))
    maps = []  # (parameter, desc, index of its tensor in `buffers`)
    for p, a in zip(params, args):
        if isinstance(a, TensorMapDesc):
            if p.size != PARAM_BYTES or p.count is None:
                raise PtxLaunchError(f"parameter {p.name} (.{p.type}, {p.size} bytes) cannot take a tensor map, "
                                     f"which is a {PARAM_BYTES}-byte parameter")
            raw = span_bytes(a.tensor)
            maps.append((p, a, len(buffers)))
            buffers.append((f"{p.name} (the tensor of a tensor map)", raw, raw.size))
    regions, var_addr, arg_addr, end = layout_global(prog.global_vars, buffers)
    mem = GlobalMemory(regions, end)
    fill_variables(mem, prog.global_vars, var_addr)
    if pointer_tables:
        order = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        _translate_pointer_tables(mem, [arg_addr[order.index(i)] for i in pointer_tables])
    raw = bytearray(prog.param_bytes)
    k = 0
    tensor_maps = [(desc, arg_addr[j], p.name) for p, desc, j in maps]
    map_index = {id(p): i for i, (p, _, _) in enumerate(maps)}
    for p, a, off in zip(params, args, prog.param_offsets):
        if isinstance(a, np.ndarray):
            enc = arg_addr[k].to_bytes(8, "little")
            k += 1
        elif isinstance(a, TensorMapDesc):
            enc = encode_param(map_index[id(p)])
        else:
            enc = _encode(p, a, p.name)
        raw[off : off + len(enc)] = enc
    launch = Launch(prog, grid3, block3, mem, bytes(raw), int(dynamic_shared_bytes), line_info,
                    check_races=check_races, tensor_maps=tensor_maps)
    if atomic_seed is None:
        launch.atomic_order = lambda n: None
    else:
        rng = np.random.default_rng(atomic_seed)
        launch.atomic_order = lambda n: rng.permutation(n)
    if any("grid_barrier_state" in getattr(v, "name", "") for v in prog.global_vars):
        # tw_cuda.h's grid barrier (T.sync_grid) spins until every block of the launch arrives: the
        # blocks can only get there together if they run in one batch
        batch_threads = max(batch_threads, grid3[0] * grid3[1] * grid3[2] * block3[0] * block3[1] * block3[2])
    run_program(launch, batch_threads)
    mem.write_back()
    return RunResult(launch.printed)


def _translate_pointer_tables(mem: GlobalMemory, tables: list[int]) -> None:
    """The heap copies of pointer tables (arrays of 64-bit host addresses, e.g. `t.data_ptr()`
    of tensors also passed as arguments) rewritten to the heap addresses of the bytes they point
    at, as a GPU's table holds device addresses. An address inside no array argument stays as it
    is: a load through it is then reported as outside every kernel buffer, naming the address.
    The table's region is not written back (the caller keeps its host addresses)."""
    spans = []
    for r in mem.regions:
        if r.array is not None and r.size:
            spans.append((int(r.array.__array_interface__["data"][0]), r.size, r.start))
    for addr in tables:
        region = mem.region_of(addr)
        if region is None or not region.size:
            continue
        region.writable = False
        o = addr - GLOBAL_BASE
        vals = mem.bytes[o : o + region.size - (addr - region.start)]
        vals = vals[: vals.size // 8 * 8].view(np.uint64)
        for k in range(vals.size):
            v = int(vals[k])
            for host, size, heap in spans:
                if host <= v < host + size:
                    vals[k] = np.uint64(heap + (v - host))
                    break
