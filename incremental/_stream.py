"""Deliver computed blocks in a chosen order, a bounded number ahead.

``BlockStream`` owns ordering, grouping and prefetch: a producer thread
computes the next groups of blocks (one scheduler call per group, so small
blocks do not pay the scheduler's fixed cost each) while the consumer works on
the current block, and it never gets more than ``prefetch`` blocks ahead. The
stream knows nothing of scikit-learn; it is given a function that computes a
list of blocks by index.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# How long the producer waits on a full queue before looking whether the
# consumer has gone away; short enough that an abandoned stream ends quickly.
_POLL_SECONDS = 0.05


class BlockComputeError(Exception):
    """Carries an exception raised while computing a block to the consumer."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(index, error)
        self.index = index
        self.error = error


class _End:
    pass


def order_groups(order: Sequence[int], group: int) -> list[list[int]]:
    """Cut ``order`` into consecutive groups of at most ``group`` indices."""
    order = list(order)
    return [order[i : i + group] for i in range(0, len(order), group)]


class BlockStream:
    """Iterate ``(index, block)`` over ``order``, computing ahead of the consumer.

    Parameters
    ----------
    compute : callable
        ``compute(indices) -> list of blocks``: one scheduler call.
    order : sequence of int
        Block indices in the order they are delivered.
    prefetch : int
        At most this many computed blocks wait for the consumer. The producer
        additionally holds at most one group while handing it over, so no more
        than ``prefetch + group + 1`` blocks are in memory at once.
    group : int
        Blocks computed per scheduler call (``1 <= group <= prefetch``).

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
    ):
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.compute = compute
        self.order = list(order)
        self.prefetch = prefetch
        self.group = max(1, min(group, prefetch))

    def _produce(self, out: queue.Queue, stop: threading.Event) -> None:
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=_POLL_SECONDS)
                    return True
                except queue.Full:
                    continue
            return False

        for indices in order_groups(self.order, self.group):
            if stop.is_set():
                return
            try:
                blocks = self.compute(indices)
            except BaseException as error:
                if len(indices) == 1:  # handed to the consumer, who raises it
                    put(BlockComputeError(indices[0], error))
                    return
                # Find the failing block one by one, delivering the good ones
                # before it so that no finished work is lost.
                for index in indices:
                    try:
                        (block,) = self.compute([index])
                    except BaseException as error:
                        put(BlockComputeError(index, error))
                        return
                    if not put((index, block)):
                        return
                continue
            for index, block in zip(indices, blocks):
                if not put((index, block)):
                    return
            del blocks
        put(_End)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        producer = threading.Thread(
            target=self._produce,
            args=(out, stop),
            name="incremental-prefetch",
            daemon=True,
        )
        producer.start()
        try:
            while True:
                item = out.get()
                if item is _End:
                    return
                if isinstance(item, BlockComputeError):
                    raise item
                yield item
        finally:
            stop.set()
            # Drop what was prefetched so its memory is freed now, not when the
            # producer notices it has been abandoned.
            while True:
                try:
                    out.get_nowait()
                except queue.Empty:
                    break


@contextmanager
def interrupts_between_blocks() -> Iterator[Callable[[], bool]]:
    """Hold Ctrl-C until the current block is done.

    Yields a function telling whether Ctrl-C was pressed; the consumer checks
    it between blocks and stops there, so a block is never half-consumed. A
    second Ctrl-C interrupts at once. Outside the main thread (where signals
    cannot be handled) this does nothing.
    """
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
