"""Scratch buffers that reads reuse while a block stream runs.

Reading a compressed chunk needs a buffer for the stored bytes, used only
until they are decompressed into the block. A fresh buffer of this size
(tens of MB) is a fresh mapping from the kernel, faulted in page by page
and unmapped after use; on the machine we measured that cost about as much
kernel CPU as the copy of the file into it. While a stream runs, the same
few buffers serve every block instead (one pass over 20M x 20 zstd zarr,
40 chunks of 77 MB read in turn: 3.5 s instead of 4.1-4.7 s of CPU).

The buffers live only while some stream runs (:func:`reusing`): when the
last one ends they are dropped, so nothing is held after a fit. At most as
many are kept as were in use at once, one per read running at a time.
Outside a stream, :func:`scratch` gives a fresh buffer each time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_lock = threading.Lock()
_free: list[np.ndarray] = []
_streams = 0

#: Extra room a new buffer gets, so chunks a little larger than the one it
#: was made for (compressed sizes vary) reuse it.
HEADROOM = 1 / 16


@contextmanager
def reusing() -> Iterator[None]:
    """Keep scratch buffers for reuse until this, and every other, ends.

    Examples
    --------
    >>> with reusing():
    ...     with scratch(1000) as first:
    ...         pass
    ...     with scratch(900) as second:
    ...         reused = np.shares_memory(first, second)
    >>> reused, kept()
    (True, 0)
    """
    global _streams
    with _lock:
        _streams += 1
    try:
        yield
    finally:
        with _lock:
            _streams -= 1
            if _streams == 0:
                _free.clear()


@contextmanager
def scratch(nbytes: int) -> Iterator[np.ndarray]:
    """A uint8 array of ``nbytes``, yours until the block ends.

    Its contents are whatever was there before. Reused from, and given back
    to, the buffers kept while a stream runs; fresh otherwise.

    Examples
    --------
    >>> with scratch(4) as buffer:
    ...     buffer[:] = 7
    ...     buffer.dtype, buffer.size
    (dtype('uint8'), 4)
    """
    buffer = _take(nbytes)
    try:
        yield buffer[:nbytes]
    finally:
        _give(buffer)


def kept() -> int:
    """How many scratch buffers are kept for reuse now."""
    return len(_free)


def _take(nbytes: int) -> np.ndarray:
    with _lock:
        if _streams:
            fitting = [i for i, buffer in enumerate(_free) if buffer.size >= nbytes]
            if fitting:
                smallest = min(fitting, key=lambda i: _free[i].size)
                return _free.pop(smallest)
            if _free:
                # Replaced by a larger one: at most one per read at a time.
                _free.remove(min(_free, key=lambda buffer: buffer.size))
            nbytes += int(nbytes * HEADROOM)
    return _fresh(nbytes)


def _fresh(nbytes: int) -> np.ndarray:
    return np.empty(nbytes, np.uint8)


def _give(buffer: np.ndarray) -> None:
    with _lock:
        if _streams:
            _free.append(buffer)
