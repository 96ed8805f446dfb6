"""PartialFragment: TileLang 0.1.15's layout of a reducer's per-thread partials
(`tilelang.layout.PartialFragment`, `T.PartialFragment`).

It is a Fragment (the same map logical index -> (thread, register), the same constructor) whose
replicas are read differently: a Fragment's replicas are equal copies of a finished value, a
PartialFragment's are addends that T.finalize_reducer still has to combine. `combine` (default:
`replicate`) splits the replica index by TileLang's low-bits convention: `rep % combine` counts
the addend lanes, `rep // combine` groups of equal-value copies of those partials.

`T.annotate_layout({acc: T.PartialFragment(...)})` pins the layout of a T.alloc_reducer buffer
(TileLang refuses a plain Fragment there). tilewise's reducers combine every replica of an
element (tileop/reducer.py: each thread accumulates the iterations it runs), which is the
PartialFragment whose replicas are all addend lanes (combine == replicate); copy groups
(combine < replicate) are a CompileError when annotated on a reducer."""
from __future__ import annotations

from ..errors import CompileError
from ..ir import dtype as _dt
from ..ir.expr import Var
from .fragment import Fragment


class PartialFragment(Fragment):
    """`T.PartialFragment(shape, forward_fn=None, forward_thread_fn=None, replicate=1,
    forward_index_fn=None, combine=None)`: Fragment's constructor, plus the width of the addend
    (combine) part of the replica index."""

    _partial = True

    def __init__(self, shape, forward_fn=None, forward_thread_fn=None, replicate: int = 1, forward_index_fn=None,
                 combine: int | None = None, **kw):
        if combine is None:
            combine = replicate
        if isinstance(combine, bool) or not isinstance(combine, int) or not isinstance(replicate, int) \
                or combine < 1 or replicate % combine != 0:
            raise CompileError(
                f"PartialFragment: combine ({combine}) must be >= 1 and evenly divide replicate ({replicate}); "
                "`_rep % combine` are addend lanes, `_rep // combine` are equal-value copy groups.")
        super().__init__(shape, forward_fn, forward_thread_fn, replicate, forward_index_fn, **kw)
        self.combine = combine

    @property
    def combine_size(self) -> int:
        """TileLang's name (CombineSize) for `combine`."""
        return self.combine

    @staticmethod
    def from_fragment(fragment: Fragment) -> PartialFragment:
        """The same map read as per-thread partials: every replica an addend lane."""
        if not isinstance(fragment, Fragment):
            raise CompileError(f"PartialFragment.from_fragment expects a Fragment, got {type(fragment).__name__}")
        return PartialFragment(fragment.shape, replicate=int(fragment.replicate), combine=int(fragment.replicate),
                               forward_thread=fragment.forward_thread, forward_index=list(fragment.forward_index),
                               vars_=list(fragment.vars), rep_var=fragment.rep_var)

    def as_post_collective(self) -> Fragment:
        """The same map read as a plain Fragment: the layout of the combined values after the
        finalize (every replica then holds the result)."""
        return Fragment(self.shape, replicate=int(self.replicate), forward_thread=self.forward_thread,
                        forward_index=list(self.forward_index), vars_=list(self.vars), rep_var=self.rep_var)

    def is_equal(self, other) -> bool:
        """A partial never equals a plain Fragment (TileLang's kind-aware equality); two partials
        compare their maps and their combine width."""
        return isinstance(other, PartialFragment) and other.combine == self.combine and super().is_equal(other)

    def __repr__(self) -> str:
        return "Partial" + super().__repr__()[:-1] + f", combine={self.combine})"


def make_fully_replicated_partial_fragment(shape, thread_extent: int) -> PartialFragment:
    """TileLang's wide plan: each of `thread_extent` threads holds one whole partial of `shape`
    (row-major in its registers), every one an addend."""
    if hasattr(shape, "shape"):  # a buffer
        shape = shape.shape
    shape = [int(d) for d in shape]
    if isinstance(thread_extent, bool) or not isinstance(thread_extent, int) or thread_extent < 1:
        raise CompileError(f"make_fully_replicated_partial_fragment: thread_extent must be a positive int, "
                           f"got {thread_extent!r}")
    vars_ = [Var(f"_i{k}", _dt.int32) for k in range(len(shape))]
    flat = 0
    for v, d in zip(vars_, shape):
        flat = flat * d + v
    rep = Var("_rep", _dt.int32)
    return PartialFragment(shape, replicate=thread_extent, forward_thread=rep, forward_index=[flat], vars_=vars_,
                           rep_var=rep)
