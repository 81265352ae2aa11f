"""Memory measured by the benchmarks: a process's peak, and the peak of a stretch.

Peaks are read from the operating system, not from dask's ResourceProfiler,
whose figure also counts its own tracking process.
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes.

    On Linux this is ``VmHWM`` of ``/proc/self/status``. ``ru_maxrss`` is
    not used there because a process started by a big one (``subprocess``,
    ``multiprocessing``) inherits the big one's peak: the kernel carries it
    over the fork and the exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS


class PeakMemory:
    """Sample this process's RSS in a thread; ``peak_bytes`` is the highest seen.

    :func:`peak_rss_bytes` tells the peak of the whole life of the process;
    this tells the peak of one stretch of it. ``peak_bytes`` is None without
    psutil. dask's ``ResourceProfiler`` is not used for this because its
    figure also counts the memory of its own tracking process.

    Examples
    --------
    >>> with PeakMemory() as memory:
    ...     block = bytearray(50 * 2**20)
    >>> memory.peak_bytes is None or memory.peak_bytes > 50 * 2**20
    True
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes or 0, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        try:
            import psutil
        except ImportError:
            return self
        self._process = psutil.Process()
        self._sample()

        def sample_until_stopped() -> None:
            while not self._stop.wait(self.interval):
                self._sample()

        self._thread = threading.Thread(target=sample_until_stopped, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()
