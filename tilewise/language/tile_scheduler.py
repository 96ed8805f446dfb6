"""TileLang 0.1.15's tile schedulers: `T.BaseTileScheduler` and `T.PersistentTileScheduler(
num_m_tiles, num_n_tiles, num_workers=None, swizzle_size=1, column_major=True, cluster_size=1,
stateful=True, name=None)`, the persistent grid-strided walk over a 2-D grid of output tiles.

Worker w (a block, or a cluster of `cluster_size` blocks along M) takes the linear tile indices
w, w + num_workers, ... below the number of tiles; index t is decoded into (m, n) with M fastest
(`column_major=True`) or N fastest, in panels of `swizzle_size` tiles along the slow axis (a full
sweep of the fast axis per panel; a narrower last panel when it does not divide). With
`cluster_size` > 1 the M axis counts clusters (the caller adds the block's rank in its cluster).

- `sched.init(worker_id)`, `sched.next_tile()` update the state (registers: T.alloc_var, named
  `{name}_m_idx` ... when `name` is given); `sched.valid()` is the condition of the persistent
  `while` loop; `sched.m_idx`, `sched.n_idx`, `sched.linear_idx`, `sched.current_iter` read it.
- `sched.coord(tile_id)` is the pure decode, which is all a `stateful=False` scheduler offers.

num_workers defaults, as TileLang's, to the number of SMs of the CUDA device // cluster_size; on
a machine without one, pass it. The methods emit ordinary stores and expressions into the kernel
being parsed, so the scheduler works on every target."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.builder import emit, require_kernel
from ..ir.expr import BufferLoad, Const, as_expr
from ..ir.stmt import BufferStore
from .alloc import alloc_var
from .math import ceildiv
from .math import max as _max
from .math import min as _min

_ZERO = [Const(0, _dt.int32)]


def _num_sms() -> int:
    """The CUDA device's SM count (TileLang's default number of workers), read as
    tilelang.carver.arch.driver.get_num_sms reads it: through torch."""
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).multi_processor_count)
    except ImportError:
        pass
    raise CompileError("T.PersistentTileScheduler: num_workers defaults to the CUDA device's SM count, and there is "
                       "no CUDA device here; pass num_workers=")


class BaseTileScheduler:
    """The state and the init / next_tile / valid skeleton; subclasses decode linear indices."""

    def __init__(self, stateful: bool = True, name: str | None = None):
        self._stateful = stateful
        self._total_tiles = 0
        if stateful:
            require_kernel(type(self).__name__)
            for field in ("m_idx", "n_idx", "linear_idx", "current_iter"):
                buf = alloc_var(_dt.int32)
                if name is not None:
                    buf.name = f"{name}_{field}"
                    buf.auto_named = False
                setattr(self, f"_{field}", buf)

    def _state(self, field: str):
        if not self._stateful:
            raise CompileError(f"{type(self).__name__}(stateful=False) has no {field}: it only decodes (coord)")
        return getattr(self, f"_{field}")

    def _read(self, field: str):
        return BufferLoad(self._state(field), _ZERO)

    def _write(self, field: str, value) -> None:
        emit(BufferStore(self._state(field), _ZERO, as_expr(value, _dt.int32)))

    @property
    def m_idx(self):
        return self._read("m_idx")

    @property
    def n_idx(self):
        return self._read("n_idx")

    @property
    def linear_idx(self):
        return self._read("linear_idx")

    @property
    def current_iter(self):
        return self._read("current_iter")

    def update_current_idx(self, linear_idx) -> None:
        raise NotImplementedError("Subclasses must implement update_current_idx")

    def init(self, linear_init) -> None:
        self._write("current_iter", 0)
        self._write("linear_idx", linear_init)
        self.update_current_idx(self.linear_idx)

    def next_tile(self, step) -> None:
        self._write("current_iter", self.current_iter + 1)
        self._write("linear_idx", self.linear_idx + step)
        self.update_current_idx(self.linear_idx)

    def valid(self):
        return self.linear_idx < self._total_tiles


class PersistentTileScheduler(BaseTileScheduler):
    """The persistent, grid-strided scheduler with L2 swizzle and clustering (module doc)."""

    def __init__(self, num_m_tiles, num_n_tiles, num_workers=None, swizzle_size: int = 1, column_major: bool = True,
                 cluster_size: int = 1, stateful: bool = True, name: str | None = None):
        if not isinstance(swizzle_size, int) or swizzle_size < 1:
            raise CompileError(f"T.PersistentTileScheduler: swizzle_size must be a positive int, got {swizzle_size!r}")
        if not isinstance(cluster_size, int) or cluster_size < 1:
            raise CompileError(f"T.PersistentTileScheduler: cluster_size must be a positive int, got {cluster_size!r}")
        super().__init__(stateful=stateful, name=name)
        if num_workers is None:
            num_workers = _num_sms() // cluster_size
        self.cluster_size = cluster_size
        self.num_workers = num_workers
        self.swizzle_size = swizzle_size
        self._column_major = column_major
        m_clusters = ceildiv(num_m_tiles, cluster_size)
        self._total_tiles = m_clusters * num_n_tiles
        self._primary, self._secondary = (m_clusters, num_n_tiles) if column_major else (num_n_tiles, m_clusters)

    def coord(self, tile_id):
        """(m_idx, n_idx) of the linear tile index `tile_id` (expressions; no state)."""
        primary, secondary, swizzle = self._primary, self._secondary, self.swizzle_size
        group = tile_id // (primary * swizzle)
        base = group * swizzle
        width = _max(1, _min(swizzle, secondary - base))  # the last panel may be narrower
        in_group = tile_id - group * (primary * swizzle)
        fast = in_group // width
        slow = base + in_group % width
        return (fast, slow) if self._column_major else (slow, fast)

    def update_current_idx(self, linear_idx) -> None:
        m, n = self.coord(linear_idx)
        self._write("m_idx", m)
        self._write("n_idx", n)

    def next_tile(self) -> None:  # the stride is the number of workers
        super().next_tile(self.num_workers)
