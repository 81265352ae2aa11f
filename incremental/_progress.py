"""What a long fit shows while it runs: progress bars and log records.

:class:`Progress` shows a tqdm bar per epoch (with ``verbose``), logs one
record per epoch to ``logging.getLogger("incremental")`` at INFO (the
history record as the log record's ``incremental_epoch`` attribute), and drives
the user's active dask ``ProgressBar``\\ s as one bar per epoch.

Why the dask bars are driven by hand: a fit computes its blocks in many
scheduler calls (one per group of blocks), and a dask ``ProgressBar`` draws a
bar for each call: tens of bars for one fit. While a fit runs, the active
bars are taken out of dask's callbacks and driven through the ``Callback``
protocol (``_start``, ``_pretask``, ``_finish``) as if each epoch were one
computation whose tasks are its batches. Profilers and other callbacks are
left alone: they still see every block computation.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from . import _dask_compat

logger = logging.getLogger("incremental")


class DaskProgressBars:
    """The user's active dask ``ProgressBar``\\ s, one bar per epoch.

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
        self.bars: list[Any] = []
        self.state: dict[str, list] | None = None
        self._suspended: Any = None

    def __enter__(self) -> DaskProgressBars:
        self._suspended = _dask_compat.suspended_progress_bars()
        self.bars = self._suspended.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.state is not None:
            self.finish(errored=True)
        self._suspended.__exit__(*exc)

    def _call(self, method: str, *args: Any) -> None:
        for bar in self.bars:
            try:
                getattr(bar, method)(*args)
            except Exception as error:  # a bar must never break a fit
                logger.debug("dask ProgressBar %s failed: %r", method, error)

    def start(self, n_tasks: int) -> None:
        """A new bar over ``n_tasks`` batches."""
        if not self.bars:
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
        self._call("_start", None)
        self._call("_pretask", None, None, self.state)

    def done(self) -> None:
        """One more batch finished."""
        if self.state is not None and self.state["waiting"]:
            self.state["finished"].append(self.state["waiting"].pop())

    def finish(self, errored: bool = False) -> None:
        """Close the bar: at 100% when not ``errored``."""
        if self.state is None:
            return
        state, self.state = self.state, None
        self._call("_finish", None, state, errored)


class Progress(contextlib.AbstractContextManager):
    """A tqdm bar over the batches of each epoch (when ``verbose``), a log
    record per epoch, and the user's dask ProgressBars.

    Parameters
    ----------
    verbose : int
        0: no bar; 1: a bar per epoch, the last one kept; 2: all kept.
    max_epochs : int
        Shown in the bar's label (``epoch 2/5``).
    """

    def __init__(self, verbose: int, max_epochs: int):
        self.verbose = int(verbose)
        self.max_epochs = max_epochs
        self.bar: Any = None
        self._tqdm: Any = None
        self.dask_bars = DaskProgressBars()
        if self.verbose:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                logger.warning("verbose needs tqdm (pip install tqdm); logging only")
            else:
                self._tqdm = tqdm

    def __enter__(self) -> Progress:
        self.dask_bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        self.dask_bars.__exit__(*exc)

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.rows, self.started, self.shown = 0, time.perf_counter(), 0.0
        self.dask_bars.start(n_batches)
        if self._tqdm is not None:
            self.bar = self._tqdm(
                total=n_batches,
                desc=f"epoch {epoch + 1}/{self.max_epochs}",
                unit="batch",
                leave=self.verbose > 1 or epoch + 1 == self.max_epochs,
            )

    def batch_done(self, rows: int) -> None:
        self.dask_bars.done()
        if self.bar is None:
            return
        self.rows += rows
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.shown > 0.5:  # the rate, at most twice a second
            self.shown = now
            rate = self.rows / max(now - self.started, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} rows/s", refresh=False)

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.dask_bars.finish()
        rate = record["n_samples"] / max(record["seconds"], 1e-9)
        score = (
            ""
            if record["score"] is None
            else f", validation score {record['score']:.6g}"
        )
        text = (
            f"epoch {record['epoch'] + 1}: {record['n_batches']} batches, "
            f"{record['n_samples']:,} rows in {record['seconds']:.2f} s "
            f"({rate:,.0f} rows/s){score}"
        )
        # The record itself travels too, for handlers that want the figures.
        logger.info(text, extra={"incremental_epoch": record})
        if self.bar is not None:
            self.bar.set_postfix_str(text.split(": ", 1)[1], refresh=True)
            self.bar.close()
            self.bar = None
