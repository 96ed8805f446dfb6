"""TileLang 0.1.15's thread-block-cluster names: `T.ClusterKernel(*blocks, cluster_dims=, threads=,
prelude=)`, `T.get_cluster_dims / get_cluster_size / get_cluster_id(dim) / get_cluster_ids /
get_cluster_extent(dim) / get_cluster_extents`, `T.block_rank_in_cluster()`, `T.cluster_sync()`,
`T.cluster_arrive()`, `T.cluster_arrive_relaxed()`, `T.cluster_wait()`,
`T.alloc_cluster_barrier(arrive_count)` and `T.copy_cluster(src, dst, ...)`.

tilewise launches no thread block clusters (its sm_90a support has TMA, mbarriers and wgmma, not
cluster launch or distributed shared memory; docs/API.md). What a cluster means without them is
kept exactly:

- The cluster queries are program-space arithmetic, as TileLang defines them on every target: the
  cluster of a block along dim d is `block_id // cluster_dims[d]`, the number of clusters
  `ceil(grid / cluster_dims)`, the rank `sum((b_d % c_d) * prod(c_<d))`. `T.Kernel` has clusters
  of one block ([1, 1, 1]); `T.ClusterKernel` records its `cluster_dims` (the grid must be a
  multiple of them, as CUDA requires) and launches the same grid.
- The cluster barrier of a cluster of one block is a barrier of that block: `T.cluster_sync()`
  is `__syncthreads()`, and so is `T.cluster_wait()`; `T.cluster_arrive()` /
  `T.cluster_arrive_relaxed()` (the arrival half) then do nothing of their own — the wait is a full
  barrier, stronger than the split one, which no correct program can tell apart.
- `T.alloc_cluster_barrier` is an mbarrier of the block (T.alloc_barrier; arrivals from other
  blocks are refused by the mbarrier primitives), `T.copy_cluster(src, dst)` without a remote
  block is T.copy.

In a cluster of more than one block, the barrier and the copy to another block's shared memory
would need a real cluster launch: they are CompileErrors naming the construct."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.builder import require_kernel
from ..ir.expr import Const, Expr, as_expr
from .loops import Kernel, KernelSpec, py_scalar


class ClusterGrid(list):
    """A T.ClusterKernel's grid extents (a list, as T.Kernel's) carrying its cluster dimensions."""

    def __init__(self, grid, cluster_dims):
        super().__init__(grid)
        self.cluster_dims = list(cluster_dims)


def _dims3(cluster_dims) -> list[int]:
    d = py_scalar(cluster_dims)
    d = [d] if isinstance(d, int) else list(d)
    if not 1 <= len(d) <= 3 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in d):
        raise CompileError(f"T.ClusterKernel: cluster_dims must be 1 to 3 positive integers, got {cluster_dims!r}")
    return d + [1] * (3 - len(d))


def ClusterKernel(*blocks, cluster_dims, threads=None, prelude=None) -> KernelSpec:  # noqa: N802 - TileLang's name
    """T.Kernel with thread-block clusters of `cluster_dims` blocks (see the module doc)."""
    spec = Kernel(*blocks, threads=threads, prelude=prelude)
    dims = _dims3(cluster_dims)
    for d, g in enumerate(spec.grid):
        g = py_scalar(g)
        if isinstance(g, int) and g % dims[d]:
            raise CompileError(f"T.ClusterKernel: grid dimension {d} ({g}) is not a multiple of the cluster "
                               f"dimension {dims[d]}")
    if any(c > 1 for c in dims[len(spec.grid):]):
        raise CompileError(f"T.ClusterKernel: cluster_dims {dims} extend a grid dimension the kernel does not have")
    spec.grid = ClusterGrid(spec.grid, dims)
    return spec


def _kernel(what: str):
    return require_kernel(what)


def get_cluster_dims() -> list[int]:
    """[x, y, z] cluster dimensions of the enclosing kernel ([1, 1, 1] for T.Kernel)."""
    return list(getattr(_kernel("T.get_cluster_dims").grid, "cluster_dims", [1, 1, 1]))


def get_cluster_size() -> int:
    """The number of blocks per cluster."""
    x, y, z = get_cluster_dims()
    return x * y * z


def get_cluster_id(dim: int = 0):
    """The cluster of the current block along `dim`: block_id // cluster_dims[dim]."""
    k = _kernel("T.get_cluster_id")
    if dim >= len(k.block_vars):
        return Const(0, _dt.int32)
    c = get_cluster_dims()[dim]
    b = k.block_vars[dim]
    return b if c == 1 else b // c


def get_cluster_ids() -> list:
    return [get_cluster_id(d) for d in range(len(_kernel("T.get_cluster_ids").block_vars))]


def get_cluster_extent(dim: int = 0):
    """The number of clusters along `dim`: ceil(grid extent / cluster_dims[dim])."""
    k = _kernel("T.get_cluster_extent")
    c = get_cluster_dims()[dim]
    if dim >= len(k.grid):
        return 1
    g = py_scalar(k.grid[dim])
    if isinstance(g, Const):
        g = g.value
    if isinstance(g, int):
        return -(-g // c)
    return (as_expr(g) + (c - 1)) // c


def get_cluster_extents() -> list:
    return [get_cluster_extent(d) for d in range(3)]


def block_rank_in_cluster() -> Expr:
    """The rank of the current block in its cluster (%cluster_ctarank): x fastest."""
    k = _kernel("T.block_rank_in_cluster")
    dims = get_cluster_dims()
    rank: Expr = Const(0, _dt.int32)
    stride = 1
    for d, b in enumerate(k.block_vars):
        if dims[d] > 1:
            rank = rank + (b % dims[d]) * stride
        stride *= dims[d]
    return rank


def _one_block(what: str) -> None:
    n = get_cluster_size()
    if n != 1:
        raise CompileError(f"{what} in a cluster of {n} blocks: tilewise launches no thread block clusters (its "
                           "sm_90a support has no cluster launch or distributed shared memory); only clusters of "
                           "one block (T.Kernel, or cluster_dims=1) are supported")


def cluster_sync() -> None:
    """The cluster's barrier (arrive and wait): __syncthreads for a cluster of one block."""
    from .hopper import sync_threads

    _one_block("T.cluster_sync")
    sync_threads()


def cluster_arrive() -> None:
    """The arrival half of the cluster barrier; the wait (T.cluster_wait) is the full barrier."""
    _one_block("T.cluster_arrive")


def cluster_arrive_relaxed() -> None:
    """As T.cluster_arrive (without its release ordering, which the full-barrier wait provides anyway)."""
    _one_block("T.cluster_arrive_relaxed")


def cluster_wait() -> None:
    """The waiting half of the cluster barrier: __syncthreads for a cluster of one block."""
    from .hopper import sync_threads

    _one_block("T.cluster_wait")
    sync_threads()


def alloc_cluster_barrier(arrive_count):
    """An mbarrier for cluster-scope use: the block's own (T.alloc_barrier)."""
    from .hopper import alloc_barrier

    return alloc_barrier(arrive_count)


def copy_cluster(src, dst, *, dst_block=None, cluster_mask=None, remote_barrier=None, eviction_policy=None,
                 coalesced_width=None, annotations=None, loop_layout=None):
    """T.copy within the block; a copy to another block of the cluster or a multicast is an error."""
    from ..tileop.copy import copy

    if cluster_mask is not None:
        raise CompileError("T.copy_cluster(cluster_mask=...): a TMA multicast to the blocks of a cluster needs a "
                           "cluster launch, which tilewise does not do")
    if remote_barrier is not None:
        raise CompileError("T.copy_cluster(remote_barrier=...): a copy completing on an mbarrier of the cluster "
                           "needs distributed shared memory, which tilewise does not have")
    if dst_block is not None:
        b = py_scalar(dst_block)
        if not (isinstance(b, int) and b == 0 and get_cluster_size() == 1):
            raise CompileError(f"T.copy_cluster(dst_block={dst_block}): a copy into another block's shared memory "
                               "needs distributed shared memory (a cluster launch), which tilewise does not do")
    kwargs = {}
    if eviction_policy is not None:
        kwargs["eviction_policy"] = eviction_policy
    if coalesced_width is not None:
        kwargs["coalesced_width"] = coalesced_width
    if annotations is not None:
        kwargs["annotations"] = annotations
    if loop_layout is not None:
        kwargs["loop_layout"] = loop_layout
    return copy(src, dst, **kwargs)
