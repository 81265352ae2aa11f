"""Deliver computed blocks in a chosen order, a bounded number ahead.

``BlockStream`` owns ordering, grouping and prefetch: blocks are computed a
group at a time (one scheduler call per group, so small blocks do not pay the
scheduler's fixed cost each), either inline between the consumer's blocks or
by reader threads while the consumer works (several groups at once, so
decompressing uses every core the consumer leaves free), delivered in order,
never more than ``prefetch`` blocks held at once. Whether to move to the thread is decided by
:func:`overlap_pays`, a pure function of the costs measured so far. The
stream knows nothing of scikit-learn; it is given a function that computes a
list of blocks by index.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


class BlockComputeError(Exception):
    """Carries an exception raised while computing a block to the consumer."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(index, error)
        self.index = index
        self.error = error


def order_groups(order: Sequence[int], group: int) -> list[list[int]]:
    """Cut ``order`` into consecutive groups of at most ``group`` indices.

    >>> order_groups([3, 1, 2, 0, 4], 2)
    [[3, 1], [2, 0], [4]]
    """
    order = list(order)
    return [order[i : i + group] for i in range(0, len(order), group)]


@dataclass
class StreamCosts:
    """What a stream has measured so far, computing inline.

    ``computing`` and ``consuming`` are seconds spent computing groups and in
    the consumer between blocks; ``last_seconds`` and ``last_blocks`` describe
    the group just computed.
    """

    groups_computed: int = 0
    groups_left: int = 0
    blocks_computed: int = 0
    computing: float = 0.0
    consuming: float = 0.0
    last_seconds: float = 0.0
    last_blocks: int = 0


# Below this, computing a block is mostly the Python of dask and of the
# storage library (measured: 0.15 ms for a task on 200 rows in memory, 1.2 ms
# for 200 rows from zarr on disk), and overlapping slowed fits on 1,000 such
# blocks by 10-20%: a second Python thread cannot overlap Python through the
# GIL. Reading 50,000 rows takes 5 ms or more.
OVERLAP_BLOCK_SECONDS = 0.002
# Overlap pays only when computing is at least this share of consuming.
OVERLAP_WORTH = 0.10
# Groups measured inline before deciding on the general rule; the first
# carries warm-up.
MEASURED_GROUPS = 2
# A group this slow to compute (and not merely many blocks: see
# OVERLAP_BLOCK_SECONDS) is large data: the thread's cost through the GIL (a
# few microseconds of Python per block) is negligible beside it, so the rest
# is computed in the thread from the first group on, without measuring more.
SLOW_GROUP_SECONDS = 0.02


def overlap_pays(costs: StreamCosts) -> bool:
    """Whether to compute the remaining groups in a thread, from now on.

    Asked after each group computed inline, before it is consumed.

    Examples
    --------
    >>> overlap_pays(StreamCosts(1, 9, 1, last_seconds=0.05, last_blocks=1))
    True
    >>> overlap_pays(StreamCosts(1, 9, 40, last_seconds=0.05, last_blocks=40))
    False
    """
    if costs.groups_left == 0:
        return False
    if costs.groups_computed == 1:
        return (
            costs.last_seconds >= SLOW_GROUP_SECONDS
            and costs.last_seconds >= OVERLAP_BLOCK_SECONDS * costs.last_blocks
        )
    if costs.groups_computed <= MEASURED_GROUPS:
        return False
    return (
        costs.computing > OVERLAP_WORTH * costs.consuming
        and costs.computing >= OVERLAP_BLOCK_SECONDS * costs.blocks_computed
    )


class BlockStream:
    """Iterate ``(index, block)`` over ``order``, computing ahead of the consumer.

    Parameters
    ----------
    compute : callable
        ``compute(indices) -> list of blocks``: one scheduler call. With
        ``readers`` > 1 it is called from several threads at once.
    order : sequence of int
        Block indices in the order they are delivered.
    prefetch : int
        At most this many blocks are being computed, waiting for the
        consumer, or being consumed at once (besides the first group when
        "auto" moves to threads after computing it inline).
    group : int
        Blocks computed per scheduler call (``1 <= group <= prefetch``).
    overlap : bool or "auto", default="auto"
        Compute in background threads while the consumer works (True), or
        in the consumer's thread between its blocks (False). "auto" starts
        inline and moves to threads when :func:`overlap_pays` says so.
        Overlapping pays only for work that frees the GIL (reading,
        decompressing, NumPy on large arrays).
    clock : callable, default=time.perf_counter
        Seconds, for measuring the costs that "auto" decides on.
    readers : int, default=1
        Threads computing groups at once when overlapping, so reading and
        decompressing use the cores that the consumer leaves free. Blocks
        are still delivered in ``order``.

    Examples
    --------
    >>> stream = BlockStream(lambda idx: [i * 10 for i in idx], [2, 0, 1],
    ...                      prefetch=2, group=2)
    >>> list(stream)
    [(2, 20), (0, 0), (1, 10)]
    """

    def __init__(
        self,
        compute: Callable[[Sequence[int]], list[Any]],
        order: Sequence[int],
        prefetch: int = 2,
        group: int = 1,
        overlap: bool | str = "auto",
        clock: Callable[[], float] = time.perf_counter,
        readers: int = 1,
    ):
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        if readers < 1:
            raise ValueError(f"readers must be at least 1, got {readers}")
        self.compute = compute
        self.order = list(order)
        self.prefetch = prefetch
        self.group = max(1, min(group, prefetch))
        self.overlap = overlap
        self.clock = clock
        self.readers = readers
        self.overlapped = False  # whether threads were used, for diagnostics

    def _blocks_of(self, indices: list[int]) -> Iterator[tuple[int, Any]]:
        """The computed blocks of one group; a failure names its block.

        When the group's call fails, its blocks are computed one by one so
        the good ones before the failing block are still delivered and no
        finished work is lost.
        """
        try:
            blocks = self.compute(indices)
        except BaseException as error:
            if len(indices) == 1:
                raise BlockComputeError(indices[0], error) from error
            for index in indices:
                try:
                    (block,) = self.compute([index])
                except BaseException as error:
                    raise BlockComputeError(index, error) from error
                yield index, block
            return
        yield from zip(indices, blocks)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        groups = order_groups(self.order, self.group)
        if self.overlap is True:
            yield from self._overlapped(groups)
            return
        costs = StreamCosts()
        for done, indices in enumerate(groups):
            started = self.clock()
            items, failure = [], None
            try:
                items.extend(self._blocks_of(indices))
            except BlockComputeError as error:
                failure = error  # raised after the good blocks before it
            costs.last_seconds = self.clock() - started
            costs.last_blocks = len(indices)
            costs.computing += costs.last_seconds
            costs.blocks_computed += len(indices)
            costs.groups_computed = done + 1
            costs.groups_left = len(groups) - done - 1
            if self.overlap == "auto" and failure is None and overlap_pays(costs):
                # The rest is computed while this group is being consumed.
                yield from self._overlapped(groups[done + 1 :], first=items)
                return
            for item in items:
                started = self.clock()
                yield item
                costs.consuming += self.clock() - started
            if failure is not None:
                raise failure
            del items

    def _overlapped(
        self, groups: list[list[int]], first: list | None = None
    ) -> Iterator[tuple[int, Any]]:
        """Deliver ``first`` (already computed), then ``groups`` from the readers.

        ``first`` is emptied as it is delivered, so the caller's list does not
        keep its blocks alive for the rest of the stream.
        """
        self.overlapped = True
        readers = _Readers(self._blocks_of, groups, self.readers, self.prefetch)
        try:
            while first:
                yield first.pop(0)
            for index in range(len(groups)):
                items, failure = readers.take(index)
                for item in items:
                    yield item
                    readers.release(1)
                if failure is not None:
                    raise failure
        finally:
            # Nothing of this stream runs on after it ends (dask swaps its
            # global callbacks during a call), and what was read ahead is
            # dropped so its memory is freed now.
            readers.close()


class _Readers:
    """Threads that compute groups of blocks ahead, in order, within a budget.

    Each of ``n`` threads takes the next group not yet taken, computes it, and
    leaves it for the consumer, which takes the groups back in order. Blocks
    being computed, computed and waiting, and being consumed all count
    against ``budget``: a thread starts a group only when the whole group
    fits. Since groups are handed out in order, the group the consumer waits
    for is always either being computed or the next to start, so the
    consumer never waits on a budget held by later groups.
    """

    def __init__(
        self,
        blocks_of: Callable[[list[int]], Iterator[tuple[int, Any]]],
        groups: list[list[int]],
        n: int,
        budget: int,
    ):
        self.blocks_of = blocks_of
        self.groups = groups
        self.budget = budget
        self.in_use = 0
        self.next_group = 0
        self.done: dict[int, tuple[list, BlockComputeError | None]] = {}
        self.stopped = False
        self.changed = threading.Condition()
        self.threads = [
            threading.Thread(
                target=self._read, name="incremental-prefetch", daemon=True
            )
            for _ in range(max(1, min(n, len(groups))))
        ]
        for thread in self.threads:
            thread.start()

    def _claim(self) -> int | None:
        """The next group to compute, once it fits the budget; None: stop."""
        with self.changed:
            while True:
                if self.stopped or self.next_group >= len(self.groups):
                    return None
                size = len(self.groups[self.next_group])
                if self.in_use + size <= self.budget or self.in_use == 0:
                    self.next_group += 1
                    self.in_use += size
                    return self.next_group - 1
                self.changed.wait()

    def _read(self) -> None:
        yielded = False
        while (index := self._claim()) is not None:
            if index > 0 and not yielded:
                # The first group is the one the consumer waits for from the
                # start: its reader keeps full priority until it is read.
                _yield_to_consumer()
                yielded = True
            items, failure = [], None
            try:
                items.extend(self.blocks_of(self.groups[index]))
            except BlockComputeError as error:
                failure = error  # delivered after the good blocks before it
            with self.changed:
                # Blocks the failure kept from being computed free their room.
                self.in_use -= len(self.groups[index]) - len(items)
                self.done[index] = (items, failure)
                self.changed.notify_all()

    def take(self, index: int) -> tuple[list, BlockComputeError | None]:
        """The blocks of group ``index`` (waiting for them), and its failure."""
        with self.changed:
            while index not in self.done:
                self.changed.wait()
            return self.done.pop(index)

    def release(self, n: int) -> None:
        """``n`` blocks were consumed: their room goes back to the budget."""
        with self.changed:
            self.in_use -= n
            self.changed.notify_all()

    def close(self) -> None:
        with self.changed:
            self.stopped = True
            self.done.clear()
            self.changed.notify_all()
        for thread in self.threads:
            thread.join()
        self.done.clear()


#: How much lower than the consumer's the readers' scheduling priority is
#: (a Unix nice increment, per thread on Linux).
READER_NICENESS = 5


def _yield_to_consumer() -> None:
    """Lower this reader thread's priority below the consumer's.

    The consumer's chain of ``partial_fit`` calls is the critical path: each
    waits for the one before. Readers sharing the cores with it at equal
    priority slow every call of the chain; at a lower priority they take the
    cores it leaves free. The reader of the first group waits until it has
    read it: the consumer waits for that group from the start, and at equal
    priority it gets a core to itself (measured, one pass over 20M x 20
    zstd zarr on 2 cores: the first ``partial_fit`` started after 0.14 s
    instead of 0.29 s, medians of 5). Only this thread changes (Linux gives
    each thread its own niceness); elsewhere this does nothing.

    Not lower than this: at niceness 19 the one pass took 3% less time on an
    idle machine, but beside two busy processes a one pass over 10M rows
    took 44-85 s instead of 8 s: the readers all but stopped.
    """
    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICENESS)
    except OSError:  # not allowed here: readers keep the consumer's priority
        pass
