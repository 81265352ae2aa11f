"""A search on a dask.distributed cluster: the candidates travel, the blocks stay.

The search's stream of training batches is computed on the workers (a
bounded number of positions ahead), and never gathered here. At each
position the live candidates are cut into groups, one task per group fits
its candidates on the batch, and the scheduler runs each task on a worker
holding the batch's blocks (a block is far bigger than a few models). The
fitted candidates come back here, where the schedule scores them and
decides; scoring runs next to the validation blocks too (``Validation``).

:class:`ClusterSource` and :class:`ClusterFitter` take the place of
``BatchSource`` and ``Fitter`` in ``run_search``: same walk, same order of
``partial_fit`` calls for every candidate, so the same ``cv_results_`` as
on one machine. Worker processes also free a ``partial_fit`` that holds
the GIL from the one-at-a-time of threads: on one machine, a
``LocalCluster`` of processes is how to get that.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._blocks import (
    Batch,
    Blocks,
    check_block_rows,
    cut_batch,
    describe_batch,
    num_rows,
)
from .._runners.cluster import block_failed, blocks_on_cluster
from ._runner import Fed, FeedError, computing_note, split_groups
from ._schedule import StreamOrder


@dataclass
class RemoteBatch:
    """The batch at ``position``: its blocks' futures on the cluster."""

    position: int
    batch: Batch
    computed: dict[int, dict[str, Any]]
    where: str


class ClusterSource:
    """The batch at each position of ``order``, set computing on the workers
    up to ``prefetch`` positions ahead (none past ``limit``, the last
    position the search can need, when known).

    A block is counted as read when it is set computing while no position
    held ahead needs it already; a position asked for again (a candidate
    behind the others) is computed again, and counted.
    """

    def __init__(
        self,
        client: Any,
        blocks: Blocks,
        order: StreamOrder,
        prefetch: int,
        limit: int | None = None,
    ):
        self.client, self.blocks, self.order = client, blocks, order
        self.prefetch, self.limit = max(1, prefetch), limit
        self.reads = 0
        self._ahead: dict[int, RemoteBatch] = {}
        self._next = 0  # the next position to set computing

    def where(self, position: int) -> str:
        """Human words for the batch at ``position``."""
        return describe_batch(self.blocks, self.order.batch(position))

    def _submit(self, position: int) -> RemoteBatch:
        batch = self.order.batch(position)
        held = {b for ahead in self._ahead.values() for b, _ in ahead.batch}
        self.reads += len({b for b, _ in batch} - held)
        computed = blocks_on_cluster(self.client, self.blocks, batch)
        return RemoteBatch(position, batch, computed, self.where(position))

    def at(self, position: int) -> RemoteBatch:
        """The batch at ``position``; later ones start computing behind it."""
        if position >= self._next:
            for dropped in [p for p in self._ahead if p < position]:
                del self._ahead[dropped]
            self._next = position
            stop = position + self.prefetch
            if self.limit is not None and self.limit > position:
                stop = min(stop, self.limit)
            while self._next < stop:
                self._ahead[self._next] = self._submit(self._next)
                self._next += 1
        remote = self._ahead.pop(position, None)
        if remote is None:  # a position already passed: compute it again
            remote = self._submit(position)
        return remote

    def close(self) -> None:
        """Drop every batch held; nothing of the stream is kept after this.

        The blocks' futures are dropped, not cancelled: their keys may be the
        user's too."""
        self._ahead.clear()


def fit_group_remote(
    fit: Callable, models: tuple, batch: Batch, computed: dict, where: str
) -> list[tuple[bool, Any, float]]:
    """Fit copies of ``models`` on one batch, in order, next to its blocks.

    One entry per model: ``(True, fitted copy, seconds)``, or
    ``(False, the error partial_fit raised, 0.0)``; a batch whose parts do
    not line up raises at once.
    """
    rows = cut_batch(batch, computed)
    models = copy.deepcopy(models)  # the arguments may be the caller's objects
    if num_rows(rows["X"]) == 0:
        return [(True, model, 0.0) for model in models]
    check_block_rows(rows, where)
    out = []
    for model in models:
        start = time.perf_counter()
        try:
            fit(model, rows)
        except Exception as error:
            out.append((False, error, 0.0))
            continue
        out.append((True, model, time.perf_counter() - start))
    return out


class ClusterFitter:
    """Feed one batch to many models on the cluster, in ``groups`` tasks at
    most (one per worker thread), each next to the batch's blocks."""

    def __init__(self, client: Any, fit: Callable[[Any, dict], None], groups: int):
        self.client, self.fit = client, fit
        self.n_groups = max(1, groups)
        self.pool = None  # scoring runs on the cluster, not in local threads

    def feed(self, models: Sequence[Any], batch: RemoteBatch) -> Fed:
        """The models fitted on ``batch`` (copies), and the seconds each took.

        If some fail, :class:`FeedError` names the first failing model in
        order; if the batch's blocks cannot be computed, that error is raised
        with a note naming the batch.
        """
        groups = split_groups(list(models), self.n_groups)
        futures = [
            self.client.submit(
                fit_group_remote,
                self.fit,
                group,
                batch.batch,
                batch.computed,
                batch.where,
                pure=False,
            )
            for group in groups
        ]
        try:
            results = self.client.gather(futures)
        except Exception as error:
            failed = block_failed(batch.computed)
            del futures
            if failed:
                raise computing_note(error, batch.where, batch.position) from None
            raise
        flat = [entry for group in results for entry in group]
        for index, (ok, value, _) in enumerate(flat):
            if not ok:
                raise FeedError(index, value)
        return Fed([value for _, value, _ in flat], [s for _, _, s in flat])

    def close(self) -> None:
        pass
