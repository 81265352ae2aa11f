"""dask's ProgressBar around a fit: one bar per epoch, not one per scheduler call.

A fit computes its blocks in many scheduler calls (one per group of blocks),
and dask's ProgressBar draws a bar for each call: tens of bars for one fit.
While a fit runs, the ProgressBars that are active are taken out of dask's
callbacks and driven through the ``Callback`` protocol (``_start``,
``_pretask``, ``_finish``) as if the epoch were one computation whose tasks
are its batches. Profilers and other callbacks are left alone: they still
see every block computation.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("incremental")


class DaskProgressBars:
    """Active ``dask.diagnostics.ProgressBar``\\ s, shown once per epoch.

    Use as a context manager around the whole fit; nothing happens when no
    ProgressBar is active. No scheduler call may run when it is entered or
    left (dask swaps its callbacks while one runs).

    Examples
    --------
    >>> import io
    >>> from dask.diagnostics import ProgressBar
    >>> out = io.StringIO()
    >>> with ProgressBar(out=out), DaskProgressBars() as bars:
    ...     bars.start(2)
    ...     bars.done()
    ...     bars.done()
    ...     bars.finish()
    >>> out.getvalue().count("100% Completed")
    1
    """

    def __init__(self) -> None:
        self.entries: list[tuple] = []
        self.state: dict[str, list] | None = None

    def __enter__(self) -> DaskProgressBars:
        try:
            from dask.callbacks import Callback
            from dask.diagnostics import ProgressBar
        except ImportError:  # pragma: no cover - dask without diagnostics
            return self
        for entry in list(Callback.active):
            owner = next((getattr(f, "__self__", None) for f in entry if f), None)
            if isinstance(owner, ProgressBar):
                self.entries.append(entry)
        Callback.active.difference_update(self.entries)
        return self

    def __exit__(self, *exc: Any) -> None:
        from dask.callbacks import Callback

        if self.state is not None:
            self.finish(errored=True)
        Callback.active.update(self.entries)

    def _call(self, slot: int, *args: Any) -> None:
        for entry in self.entries:
            if entry[slot] is None:
                continue
            try:
                entry[slot](*args)
            except Exception as error:  # a bar must never break a fit
                logger.debug("dask ProgressBar callback failed: %r", error)

    def start(self, n_tasks: int) -> None:
        """A new bar over ``n_tasks`` batches."""
        if not self.entries:
            return
        if self.state is not None:
            self.finish()
        # The shape of the local scheduler's state, which ProgressBar reads.
        self.state = {
            "waiting": list(range(n_tasks)),
            "ready": [],
            "running": [],
            "finished": [],
        }
        self._call(0, None)  # _start(dsk)
        self._call(2, None, None, self.state)  # _pretask(key, dsk, state)

    def done(self) -> None:
        """One more batch finished."""
        if self.state is not None and self.state["waiting"]:
            self.state["finished"].append(self.state["waiting"].pop())

    def finish(self, errored: bool = False) -> None:
        """Close the bar: at 100% when not ``errored``."""
        if self.state is None:
            return
        state, self.state = self.state, None
        self._call(4, None, state, errored)  # _finish(dsk, state, errored)
