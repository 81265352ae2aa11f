"""Fit on a dask.distributed cluster: the model travels, the blocks stay.

For each batch in order, one task fits a copy of the previous model on the
batch. The task depends on the previous model and on the batch's blocks, so
the scheduler runs it on the worker that holds the blocks (a block is far
bigger than a model), and the chain of model futures keeps the order exact.
At most ``prefetch`` batches are computed ahead of the fit that uses them,
and at most ``prefetch`` fits wait unsettled. If a worker dies, dask
recomputes what it held from the task graph; fitting is deterministic, so the
result is the same.
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from .._blocks import Batch, check_block_rows, cut_batch, num_rows
from .base import EpochJob, FitError, Report, interrupts_between_blocks

# How often a wait for a fit looks whether Ctrl-C was pressed.
_POLL_SECONDS = 0.1


def _fit_remote(fit: Callable, previous: tuple, batch: Batch, computed: dict):
    """Fit a copy of the previous model on one batch: ``(model, rows)``."""
    # The previous model is a task result that a recomputation may need
    # again: fit a copy, never the stored object itself.
    model = copy.deepcopy(previous[0])
    rows = cut_batch(batch, computed)
    n = num_rows(rows["X"])
    if n:
        check_block_rows(rows, "a block")
        fit(model, rows)
    return model, n


class ClusterRunner:
    """Fit an epoch's batches in order on a dask.distributed cluster."""

    def __init__(self, client: Any):
        self.client = client

    def run(self, model: Any, job: EpochJob, report: Report) -> None:
        with interrupts_between_blocks() as interrupted:
            _Chain(self.client, job, model, report, interrupted).run()


class _Chain:
    """The chain of fit futures of one epoch, settled in order."""

    def __init__(self, client, job: EpochJob, model, report: Report, interrupted):
        self.client, self.job, self.report = client, job, report
        self.interrupted = interrupted
        self.token = uuid.uuid4().hex[:12]
        self.ahead: dict[int, dict] = {}  # position -> its blocks' futures
        self.chain: deque = deque()  # (position, fit future, block futures)
        self.current: Any = (model, 0)  # the last fit submitted (or the start)
        self.submitted = 0
        self.last_position: int | None = None

    def run(self) -> None:
        n = len(self.job.batches)
        try:
            for position in range(n):
                while self.submitted < min(position + self.job.prefetch, n):
                    self.ahead[self.submitted] = self._blocks_of(self.submitted)
                    self.submitted += 1
                self._submit_fit(position)
                while len(self.chain) > self.job.prefetch:
                    self._settle()
                if self.interrupted():
                    self._stop()
            while self.chain:
                self._settle()
        finally:
            # After an error or Ctrl-C no fit keeps running. The blocks'
            # futures are only dropped, not cancelled: their keys may be the
            # user's too.
            self.client.cancel([future for _, future, _ in self.chain])
            self.chain.clear()
            self.ahead.clear()
            self.current = None

    def _blocks_of(self, position: int) -> dict[int, dict[str, Any]]:
        """Futures (or in-memory values) for the blocks of one batch."""
        blocks = self.job.blocks
        computed = {}
        for b, _ in self.job.batches[position]:
            keys = blocks.keys([b])
            futures = {}
            if keys:
                graph = blocks.graph_for(keys)
                futures = dict(zip(keys, self.client.get(graph, keys, sync=False)))
            (computed[b],) = blocks.fill([b], futures)
        return computed

    def _submit_fit(self, position: int) -> None:
        computed = self.ahead.pop(position)
        self.current = self.client.submit(
            _fit_remote,
            self.job.fit,
            self.current,
            self.job.batches[position],
            computed,
            key=f"incremental-fit-{self.token}-{position}",
        )
        self.chain.append((position, self.current, computed))

    def _settle(self, interruptible: bool = True) -> None:
        """Wait for the oldest fit and report it; Ctrl-C meanwhile stops."""
        if interruptible and not self._wait_for_oldest():
            self._stop()
        position, future, computed = self.chain.popleft()
        try:
            model, rows = future.result()
        except Exception as error:
            phase = _phase(computed)
            # The error's traceback keeps this frame: let it hold no futures,
            # which would keep their results on the cluster.
            del future, computed
            raise FitError(error, position=position, phase=phase) from None
        self.last_position = position
        self.report(model, rows)

    def _wait_for_oldest(self) -> bool:
        """Wait for the oldest fit to finish; False if Ctrl-C came first."""
        from distributed import wait

        while not self.chain[0][1].done():
            if self.interrupted():
                return False
            try:
                wait(self.chain[0][1], timeout=_POLL_SECONDS)
            except TimeoutError:
                continue
        return True

    def _stop(self) -> None:
        """Ctrl-C: as on this machine, the fit under way is finished (the
        oldest one not yet settled: each waits for the one before), the ones
        already done are kept, the rest are cancelled."""
        if self.chain:
            self._settle(interruptible=False)
        while self.chain and self.chain[0][1].done():
            self._settle(interruptible=False)
        raise FitError(
            KeyboardInterrupt(), position=self.last_position, phase="interrupted"
        )


def _phase(computed: dict[int, dict[str, Any]]) -> str:
    """``"computing"`` if a block future of the batch failed, else ``"fitting"``."""
    for parts in computed.values():
        for value in parts.values():
            if getattr(value, "status", None) == "error":
                return "computing"
    return "fitting"
