"""BlockStream: order, bound, failures, and the overlap policy.

No test sleeps: the costs that "auto" decides on come from a fake clock that
the test advances, and waits between threads are on events (with generous
timeouts that only a broken stream reaches).
"""

import gc
import os
import sys
import threading
import weakref

import pytest

from incremental._stream import (
    MEASURED_GROUPS,
    OVERLAP_BLOCK_SECONDS,
    SLOW_GROUP_SECONDS,
    BlockComputeError,
    BlockStream,
    StreamCosts,
    order_groups,
    overlap_pays,
)

WAIT = 10.0  # seconds; reached only when the stream misbehaves


class FakeClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            return self.now

    def advance(self, seconds):
        with self.lock:
            self.now += seconds


def test_order_groups_cuts_in_order():
    assert order_groups([3, 1, 2, 0, 4], 2) == [[3, 1], [2, 0], [4]]
    assert order_groups([], 3) == []


@pytest.mark.parametrize("overlap", [True, False, "auto"])
@pytest.mark.parametrize("prefetch,group", [(1, 1), (2, 1), (4, 2), (8, 8)])
def test_stream_yields_every_block_in_order(prefetch, group, overlap):
    order = [5, 3, 0, 1, 4, 2]
    calls = []

    def compute(indices):
        calls.append(list(indices))
        return [i * 10 for i in indices]

    stream = BlockStream(
        compute, order, prefetch=prefetch, group=group, overlap=overlap
    )
    assert list(stream) == [(i, i * 10) for i in order]
    if overlap != "auto":
        assert stream.overlapped == overlap
    assert all(len(c) <= min(group, prefetch) for c in calls)
    assert [i for c in calls for i in c] == order


@pytest.mark.parametrize("readers", [1, 2, 3])
def test_stream_never_holds_more_than_prefetch_blocks(readers):
    computed, consumed, ahead = [], [], []
    changed = threading.Condition()

    def compute(indices):
        with changed:
            computed.extend(indices)
            ahead.append(len(computed) - len(consumed))
            changed.notify_all()
        return list(indices)

    prefetch, group, n = 5, 2, 40
    # The readers stop when the next whole group no longer fits the budget.
    reachable = prefetch - group + 1
    stream = BlockStream(
        compute,
        range(n),
        prefetch=prefetch,
        group=group,
        overlap=True,
        readers=readers,
    )
    for index, _ in stream:
        # A slow consumer: let the readers run as far ahead as they may.
        with changed:
            changed.wait_for(
                lambda: (
                    len(computed) - len(consumed) >= reachable or len(computed) == n
                ),
                timeout=WAIT,
            )
            consumed.append(index)
    # computed but not consumed: being computed, waiting, and the block the
    # consumer holds, all within the budget
    assert max(ahead) <= prefetch
    assert max(ahead) >= reachable  # it did run ahead
    assert consumed == list(range(n))


def test_readers_compute_groups_at_once_and_deliver_in_order():
    started = threading.Barrier(3, timeout=WAIT)  # three readers meet here

    def compute(indices):
        if indices[0] < 3:
            started.wait()  # only passes if three groups are computed at once
        return list(indices)

    stream = BlockStream(
        compute, range(12), prefetch=6, group=1, overlap=True, readers=3
    )
    assert [i for i, _ in stream] == list(range(12))


@pytest.mark.parametrize("overlap", [True, False])
def test_error_names_the_failing_block_and_delivers_the_ones_before(overlap):
    def compute(indices):
        if 7 in indices:
            raise OSError("disk gone")
        return list(indices)

    got = []
    with pytest.raises(BlockComputeError) as info:
        for index, _ in BlockStream(
            compute, range(10), prefetch=4, group=4, overlap=overlap
        ):
            got.append(index)
    assert info.value.index == 7
    assert isinstance(info.value.error, OSError)
    assert got == [0, 1, 2, 3, 4, 5, 6]


def test_abandoned_stream_stops_its_producer():
    started = threading.Event()

    def compute(indices):
        started.set()
        return list(indices)

    stream = iter(BlockStream(compute, range(1000), prefetch=2, group=1, overlap=True))
    next(stream)
    stream.close()
    # closing waits for the producer: nothing of the stream runs on after it
    assert not any(t.name == "incremental-prefetch" for t in threading.enumerate())
    assert started.is_set()


def test_prefetch_must_be_positive():
    with pytest.raises(ValueError, match="prefetch"):
        BlockStream(lambda i: i, [0], prefetch=0)


# -- the overlap policy, as a pure function ---------------------------------------


def test_large_first_group_overlaps_at_once():
    slow = StreamCosts(1, 5, 1, SLOW_GROUP_SECONDS, 0, SLOW_GROUP_SECONDS, 1)
    assert overlap_pays(slow)
    # ... unless it is slow only for being many quick blocks
    many = StreamCosts(1, 5, 100, SLOW_GROUP_SECONDS, 0, SLOW_GROUP_SECONDS, 100)
    assert not overlap_pays(many)
    # ... and never when nothing is left to compute
    assert not overlap_pays(StreamCosts(1, 0, 1, 1.0, 0, 1.0, 1))


def test_later_groups_overlap_when_computing_is_a_real_share():
    def costs(groups, computing, consuming, blocks=None):
        blocks = groups if blocks is None else blocks
        return StreamCosts(groups, 10, blocks, computing, consuming, 0.0, 1)

    n = MEASURED_GROUPS + 1
    per_block = OVERLAP_BLOCK_SECONDS * 2
    assert not overlap_pays(costs(MEASURED_GROUPS, 1.0, 1.0))  # still measuring
    assert overlap_pays(costs(n, n * per_block, 0.0))
    assert not overlap_pays(costs(n, n * per_block, 100.0))  # fitting dominates
    # computing is a large share, but each block is only Python (the GIL)
    assert not overlap_pays(costs(n, n * OVERLAP_BLOCK_SECONDS / 2, 0.0))


# -- the policy in the stream, with a fake clock -------------------------------------


def test_auto_overlaps_when_computing_is_slow_next_to_consuming():
    clock = FakeClock()

    def slow_compute(indices):
        clock.advance(0.01 * len(indices))  # like reading from disk
        return list(indices)

    # 0.01 s per group is under SLOW_GROUP_SECONDS: the general rule decides
    stream = BlockStream(slow_compute, range(20), prefetch=2, group=1, clock=clock)
    assert [i for i, _ in stream] == list(range(20))
    assert stream.overlapped

    cheap = BlockStream(
        lambda idx: list(idx), range(20), prefetch=2, group=1, clock=clock
    )
    for _ in cheap:
        clock.advance(0.005)  # a consumer far slower than computing
    assert not cheap.overlapped


def test_auto_stays_inline_when_each_block_is_quick_to_compute():
    # Many cheap blocks: computing is a large share of the time, but it is
    # the Python of a scheduler call, which a second thread cannot overlap.
    clock = FakeClock()

    def busy_compute(indices):
        clock.advance(0.0003 * len(indices))
        return list(indices)

    stream = BlockStream(busy_compute, range(400), prefetch=40, group=40, clock=clock)
    assert [i for i, _ in stream] == list(range(400))
    assert not stream.overlapped


def test_auto_overlaps_from_the_first_group_when_blocks_are_large():
    # A group slower than SLOW_GROUP_SECONDS is large data: the rest is
    # computed while the consumer works on the first group, within the bound.
    clock = FakeClock()
    second_group_done = threading.Event()
    lock = threading.Lock()
    computed = []

    def compute(indices):
        clock.advance(SLOW_GROUP_SECONDS * 1.5)
        with lock:
            computed.extend(indices)
        if list(indices) == [2, 3]:
            second_group_done.set()
        return list(indices)

    prefetch, group = 2, 2
    stream = BlockStream(
        compute, range(12), prefetch=prefetch, group=group, clock=clock
    )
    consumed = []
    for index, _ in stream:
        if index == 0:
            # the second group is computed while the first block is consumed
            assert second_group_done.wait(WAIT)
        with lock:
            consumed.append(index)
            assert len(computed) - len(consumed) <= prefetch + 2 * group
    assert consumed == list(range(12))
    assert stream.overlapped


def test_first_group_is_released_once_consumed_when_overlapping_early():
    class Block:
        pass

    clock = FakeClock()
    refs = {}

    def compute(indices):
        clock.advance(SLOW_GROUP_SECONDS * 1.5)  # large blocks
        blocks = [Block() for _ in indices]
        refs.update({i: weakref.ref(b) for i, b in zip(indices, blocks)})
        return blocks

    stream = BlockStream(compute, range(6), prefetch=2, group=2, clock=clock)
    for index, block in stream:
        del block
        if index == 2:
            gc.collect()
            assert refs[0]() is None and refs[1]() is None
    assert stream.overlapped


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's"
)
def test_readers_yield_to_the_consumer_except_for_the_first_group():
    from incremental._stream import READER_NICENESS

    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    own = niceness()
    seen = {}

    def compute(indices):
        seen[indices[0]] = niceness()
        return list(indices)

    stream = BlockStream(
        compute, range(6), prefetch=3, group=1, overlap=True, readers=3
    )
    assert [i for i, _ in stream] == list(range(6))
    if own + READER_NICENESS > 19:
        pytest.skip("this process already runs at the lowest priority")
    assert seen[0] == own  # the group the consumer waits for first
    assert all(seen[i] == own + READER_NICENESS for i in range(1, 6))
    assert niceness() == own  # the consumer's own priority is untouched
