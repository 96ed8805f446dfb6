"""Global-memory races: non-atomic conflicting accesses to one element of a global buffer by
different threads of one launch, with no __syncthreads between them (same block) or in
different blocks (nothing orders those). Atomics and a thread's own repeated accesses are not
races. The report names the parameter, the element, both threads and both source lines."""
import numpy as np
import pytest
from ir_builders import addr, intrin, kernel, located

from tilewise.emulator import RaceError, run
from tilewise.ir import Buffer, BufferLoad, BufferStore, IfThenElse
from tilewise.ir import dtype as dt

T = 64


def _neighbour(barrier: bool):
    """Each thread writes G[t], then reads G[(t + 1) % T] of its own block's row."""
    G = Buffer("G", (2, T), "float32")
    O = Buffer("O", (2, T), "float32")

    def build(b, t):
        tx = t[0]
        out = [located(BufferStore(G, [b[0], tx], dt.float32(1.0) + tx))]  # the write
        if barrier:
            out.append(intrin("syncthreads"))
        out.append(located(BufferStore(O, [b[0], tx], BufferLoad(G, [b[0], (tx + 1) % T]))))  # the read
        return out

    return kernel([G, O], [2], [T], build)


def test_same_block_write_then_read_without_barrier():
    g, o = np.zeros((2, T), np.float32), np.zeros((2, T), np.float32)
    with pytest.raises(RaceError) as err:
        run(_neighbour(False), [g, o])
    msg = str(err.value)
    assert "global-memory race on G[0, 1] (parameter G, element 1)" in msg
    assert "thread (1, 0, 0) of block (0, 0, 0) wrote it" in msg
    assert "thread (0, 0, 0) of block (0, 0, 0) reads it" in msg
    assert "# the write" in msg and "# the read" in msg
    assert "no __syncthreads between them" in msg
    run(_neighbour(True), [g, o])  # a barrier orders them
    np.testing.assert_array_equal(o, [np.roll(np.arange(T) + 1.0, -1)] * 2)


def _blocks_write_one_row(same_value: bool = False):
    O = Buffer("O", (T,), "float32")

    def build(b, t):
        value = dt.float32(1.0) if same_value else dt.float32(b[0]) + 1.0
        return [located(BufferStore(O, [t[0]], value))]  # every block's store

    return kernel([O], [3], [T], build)


@pytest.mark.parametrize("max_lanes", [3 * T, T])
def test_blocks_writing_the_same_value_is_not_a_race(max_lanes):
    # whichever store lands last, memory holds that value: TileLang programs have every thread of
    # a reduction group store its identical result
    o = np.zeros(T, np.float32)
    run(_blocks_write_one_row(same_value=True), [o], max_lanes=max_lanes)
    np.testing.assert_array_equal(o, np.ones(T))


@pytest.mark.parametrize("max_lanes", [3 * T, T])  # blocks in one batch, or one batch each
def test_blocks_writing_one_element(max_lanes):
    o = np.zeros(T, np.float32)
    with pytest.raises(RaceError) as err:
        run(_blocks_write_one_row(), [o], max_lanes=max_lanes)
    msg = str(err.value)
    assert "global-memory race on O[0] (parameter O, element 0)" in msg
    assert "thread (0, 0, 0) of block (0, 0, 0)" in msg and "thread (0, 0, 0) of block (1, 0, 0) writes it" in msg
    assert "# every block's store" in msg
    assert "different blocks of one launch" in msg


def test_read_in_one_block_write_in_another():
    """Block 0 reads X[t] while block 1 overwrites it: a race even though each element is
    written once (and the barrier inside each block does not order the blocks)."""
    X = Buffer("X", (T,), "float32")
    O = Buffer("O", (T,), "float32")

    def build(b, t):
        tx = t[0]
        return [IfThenElse(b[0] == 0, located(BufferStore(O, [tx], BufferLoad(X, [tx])))),  # block 0 reads
                intrin("syncthreads"),
                IfThenElse(b[0] == 1, located(BufferStore(X, [tx], dt.float32(0.0))))]  # block 1 writes

    with pytest.raises(RaceError, match=r"X\[0\].*block \(0, 0, 0\) read it.*block 0 reads.*"
                                        r"block \(1, 0, 0\) writes it.*block 1 writes"):
        run(kernel([X, O], [2], [T], build), [np.ones(T, np.float32), np.zeros(T, np.float32)])


def test_atomics_and_a_threads_own_accesses_are_not_races():
    O = Buffer("O", (4,), "int32")
    P = Buffer("P", (3, T), "int32")

    def build(b, t):
        tx = t[0]
        return [intrin("atomic_add", addr(O, tx % 4), dt.int32(1)),  # every block, every thread
                BufferStore(P, [b[0], tx], dt.int32(1)),
                BufferStore(P, [b[0], tx], BufferLoad(P, [b[0], tx]) + 1)]  # the same thread again

    o, p = np.zeros(4, np.int32), np.zeros((3, T), np.int32)
    for max_lanes in (3 * T, T):
        o[:] = 0
        run(kernel([O, P], [3], [T], build), [o, p], max_lanes=max_lanes)
        np.testing.assert_array_equal(o, [3 * T // 4] * 4)
        np.testing.assert_array_equal(p, 2)


def test_plain_write_against_an_atomic_of_another_block():
    O = Buffer("O", (1,), "int32")

    def build(b, t):
        tx = t[0]
        return [IfThenElse((b[0] == 0) & (tx == 0), located(BufferStore(O, [0], dt.int32(5)))),  # plain
                intrin("syncthreads"),
                IfThenElse(b[0] == 1, located(intrin("atomic_add", addr(O, 0), dt.int32(1))))]  # atomic

    with pytest.raises(RaceError, match=r"O\[0\].*block \(0, 0, 0\) wrote it.*block \(1, 0, 0\) atomically updates"):
        run(kernel([O], [2], [T], build), [np.zeros(1, np.int32)])


def test_checks_can_be_switched_off():
    o = np.zeros(T, np.float32)
    run(_blocks_write_one_row(), [o], check_races=False)
    assert set(np.unique(o)) <= {1.0, 2.0, 3.0}  # one block's value, whichever ran last
