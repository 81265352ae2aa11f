import threading
import time

import pytest

from incremental._stream import BlockComputeError, BlockStream, order_groups


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


def test_stream_never_runs_more_than_prefetch_ahead():
    computed = []
    consumed = []
    ahead = []
    lock = threading.Lock()

    def compute(indices):
        with lock:
            computed.extend(indices)
            ahead.append(len(computed) - len(consumed))
        return list(indices)

    prefetch, group = 3, 2
    stream = BlockStream(
        compute, range(40), prefetch=prefetch, group=group, overlap=True
    )
    for index, _ in stream:
        time.sleep(0.002)  # a slow consumer lets the producer run as far as it may
        with lock:
            consumed.append(index)
    # computed-but-not-consumed blocks: the queue, the group being handed over,
    # and the block the consumer holds.
    assert max(ahead) <= prefetch + group + 1
    assert consumed == list(range(40))


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


def test_auto_overlaps_when_computing_is_slow_next_to_consuming():
    def slow_compute(indices):
        time.sleep(0.01)  # like reading from disk: the GIL is free meanwhile
        return list(indices)

    stream = BlockStream(slow_compute, range(20), prefetch=2, group=1)
    assert [i for i, _ in stream] == list(range(20))
    assert stream.overlapped

    cheap = BlockStream(lambda idx: list(idx), range(20), prefetch=2, group=1)
    for _ in cheap:
        time.sleep(0.005)  # a consumer far slower than computing
    assert not cheap.overlapped


def test_auto_stays_inline_when_each_block_is_quick_to_compute():
    # Many cheap blocks: computing is a large share of the time, but it is
    # the Python of a scheduler call, which a second thread cannot overlap.
    def busy_compute(indices):
        deadline = time.perf_counter() + 0.0003 * len(indices)
        while time.perf_counter() < deadline:
            pass
        return list(indices)

    stream = BlockStream(busy_compute, range(400), prefetch=40, group=40)
    assert [i for i, _ in stream] == list(range(400))
    assert not stream.overlapped


def test_auto_overlaps_from_the_first_group_when_blocks_are_large():
    # A group slower than SLOW_GROUP_SECONDS is large data: the rest is
    # computed while the consumer works on the first group, within the bound.
    events = []
    lock = threading.Lock()

    def compute(indices):
        time.sleep(BlockStream.SLOW_GROUP_SECONDS * 1.5)
        with lock:
            events.append(("computed", list(indices)))
        return list(indices)

    prefetch, group = 2, 2
    stream = BlockStream(compute, range(12), prefetch=prefetch, group=group)
    consumed = []
    for index, _ in stream:
        if index == 0:
            time.sleep(BlockStream.SLOW_GROUP_SECONDS * 4)  # a slow first block
        with lock:
            consumed.append(index)
            computed = sum(len(ix) for kind, ix in events if kind == "computed")
            ahead = computed - len(consumed)
            assert ahead <= prefetch + 2 * group
            events.append(("consumed", index))
    assert consumed == list(range(12))
    assert stream.overlapped
    # the second group was computed before the first block was consumed
    assert events.index(("computed", [2, 3])) < events.index(("consumed", 0))


def test_first_group_is_released_once_consumed_when_overlapping_early():
    import gc
    import weakref

    class Block:
        pass

    refs = {}

    def compute(indices):
        time.sleep(BlockStream.SLOW_GROUP_SECONDS * 1.5)  # large blocks
        blocks = [Block() for _ in indices]
        refs.update({i: weakref.ref(b) for i, b in zip(indices, blocks)})
        return blocks

    stream = BlockStream(compute, range(6), prefetch=2, group=2)
    for index, block in stream:
        del block
        if index == 2:
            gc.collect()
            assert refs[0]() is None and refs[1]() is None
    assert stream.overlapped
