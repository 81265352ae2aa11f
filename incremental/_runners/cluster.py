"""Fit on a dask.distributed cluster: the model travels, the blocks stay.

For each batch in order, one task fits a copy of the previous model on the
batch. The task depends on the previous model and on the batch's blocks, so
the scheduler runs it on the worker that holds the blocks (a block is far
bigger than a model), and the chain of model futures keeps the order exact.
At most ``prefetch`` batches are held at once, from the moment their blocks
are asked for until their fit is settled (the same bound as on one
machine). If a worker dies, dask recomputes what it held from the task
graph; fitting is deterministic, so the result is the same.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from sklearn.base import clone

from .._blocks import Batch, Blocks, check_block_rows, cut_batch, num_rows
from .._merge import FixedTree, Merge, Part, is_fitted, leaf
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


def blocks_on_cluster(
    client: Any, blocks: Blocks, batch: Batch
) -> dict[int, dict[str, Any]]:
    """The blocks of one batch set computing on the cluster: ``block -> parts``,
    each part a future (or its in-memory value). Nothing is gathered here."""
    computed = {}
    for b, _ in batch:
        keys = blocks.keys([b])
        futures = {}
        if keys:
            graph = blocks.graph_for(keys)
            futures = dict(zip(keys, client.get(graph, keys, sync=False)))
        (computed[b],) = blocks.fill([b], futures)
    return computed


class ClusterRunner:
    """Fit an epoch's batches in order on a dask.distributed cluster.

    With ``merge`` (an estimator whose states merge, see ``_merge``), each
    batch is fitted apart on the worker holding its blocks, and the small
    states come back here to be merged in the same fixed tree as on one
    machine: the result is identical. Otherwise the model travels along the
    chain of fits.
    """

    def __init__(self, client: Any, merge: Merge | None = None):
        self.client = client
        self.merge = merge

    def run(self, model: Any, job: EpochJob, report: Report) -> None:
        with interrupts_between_blocks() as interrupted:
            if self.merge is None:
                _Chain(self.client, job, model, report, interrupted).run()
            else:
                _Leaves(self.client, job, model, report, interrupted, self.merge).run()


class _Ordered:
    """Tasks of one epoch, one per batch, settled in order, a bounded number
    ahead; subclasses say what a batch's task is and what its result does."""

    def __init__(self, client, job: EpochJob, report: Report, interrupted):
        self.client, self.job, self.report = client, job, report
        self.interrupted = interrupted
        self.token = uuid.uuid4().hex[:12]
        self.ahead: dict[int, dict] = {}  # position -> its blocks' futures
        self.chain: deque = deque()  # (position, task future, block futures)
        self.submitted = 0  # batches whose blocks were asked for
        self.last_position: int | None = None

    def _submit(self, position: int, computed: dict) -> Any:
        raise NotImplementedError

    def _accept(self, result: Any) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Drop what the subclass holds of the cluster's results."""

    def run(self) -> None:
        n = len(self.job.batches)
        try:
            for position in range(n):
                self._compute_ahead(position, n)
                computed = self.ahead.pop(position)
                future = self._submit(position, computed)
                self.chain.append((position, future, computed))
                if self.interrupted():
                    self._stop()
            while self.chain:
                self._settle()
        finally:
            # After an error or Ctrl-C no task keeps running. The blocks'
            # futures are only dropped, not cancelled: their keys may be the
            # user's too.
            self.client.cancel([future for _, future, _ in self.chain])
            self.chain.clear()
            self.ahead.clear()
            self._release()

    def _compute_ahead(self, position: int, n: int) -> None:
        """Set the blocks of ``position`` and of the ones after it computing.

        A batch's blocks are held from then until its task is settled, so at
        most ``prefetch`` batches are held at once (being read, waiting, or
        being fitted): when that many are, the oldest task is waited for
        before the blocks of one more are asked for.
        """
        while self.submitted < min(position + self.job.prefetch, n):
            # held: asked for and not yet fitted, or fitting unsettled
            if len(self.ahead) + len(self.chain) >= self.job.prefetch:
                if self.submitted > position:
                    return  # this position's blocks are asked for already
                self._settle()
                continue
            self.ahead[self.submitted] = self._blocks_of(self.submitted)
            self.submitted += 1

    def _blocks_of(self, position: int) -> dict[int, dict[str, Any]]:
        return blocks_on_cluster(
            self.client, self.job.blocks, self.job.batches[position]
        )

    def _settle(self, interruptible: bool = True) -> None:
        """Wait for the oldest fit and report it; Ctrl-C meanwhile stops."""
        if interruptible and not self._wait_for_oldest():
            self._stop()
        position, future, computed = self.chain.popleft()
        try:
            result = future.result()
        except Exception as error:
            phase = _phase(computed)
            # The error's traceback keeps this frame: let it hold no futures,
            # which would keep their results on the cluster.
            del future, computed
            raise FitError(error, position=position, phase=phase) from None
        self.last_position = position
        self._accept(result)

    def _wait_for_oldest(self) -> bool:
        """Wait for the oldest fit to finish; False if Ctrl-C came first.

        The future's own callback ends the wait. (Waiting with a timeout
        raised an exception at each look at Ctrl-C, whose traceback kept
        this frame, and so the blocks of the batch being settled, alive
        in a reference cycle until the garbage collector ran: workers held
        blocks well past ``prefetch``.)
        """
        future = self.chain[0][1]
        finished = threading.Event()
        future.add_done_callback(lambda _: finished.set())
        while not finished.wait(_POLL_SECONDS):
            if self.interrupted():
                return False
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


class _Chain(_Ordered):
    """The chain of fits: each fits a copy of the previous one's model."""

    def __init__(self, client, job: EpochJob, model, report: Report, interrupted):
        super().__init__(client, job, report, interrupted)
        self.current: Any = (model, 0)  # the last fit submitted (or the start)

    def _submit(self, position: int, computed: dict) -> Any:
        self.current = self.client.submit(
            _fit_remote,
            self.job.fit,
            self.current,
            self.job.batches[position],
            computed,
            key=f"incremental-fit-{self.token}-{position}",
        )
        return self.current

    def _accept(self, result: Any) -> None:
        model, rows = result
        self.report(model, rows)

    def _release(self) -> None:
        self.current = None


class _Leaves(_Ordered):
    """Each batch fitted apart next to its blocks; states merged here."""

    def __init__(self, client, job, model, report, interrupted, merge: Merge):
        super().__init__(client, job, report, interrupted)
        self.merge = merge
        self.template = clone(model)
        self.start = Part(model) if is_fitted(model) else None
        self.tree = FixedTree(merge.merge)

    def _submit(self, position: int, computed: dict) -> Any:
        return self.client.submit(
            _leaf_remote,
            self.template,
            self.job.batches[position],
            computed,
            self.job.fit,
            self.merge,
            key=f"incremental-leaf-{self.token}-{position}",
        )

    def _accept(self, result: Any) -> None:
        part, rows = result
        if part is None:
            return
        self.tree.add(part)
        merged = self.tree.result()
        if self.start is not None:
            merged = self.merge.merge(self.start, merged)
        self.report(merged.model, rows)


def _leaf_remote(template, batch: Batch, computed: dict, fit, merge: Merge):
    """One batch fitted apart, next to its blocks: ``(part, rows)``."""
    rows = cut_batch(batch, computed)
    n = num_rows(rows["X"])
    if not n:
        return None, 0
    check_block_rows(rows, "a block")
    return leaf(template, rows, fit, merge), n


def cluster_threads(client: Any) -> int:
    """Threads over all of the cluster's workers (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def block_failed(computed: dict[int, dict[str, Any]]) -> bool:
    """Whether a block future of the batch failed (computing it raised)."""
    return any(
        getattr(value, "status", None) == "error"
        for parts in computed.values()
        for value in parts.values()
    )


def _phase(computed: dict[int, dict[str, Any]]) -> str:
    """``"computing"`` if a block future of the batch failed, else ``"fitting"``."""
    return "computing" if block_failed(computed) else "fitting"
