"""Fit on this machine: blocks computed ahead, ``partial_fit`` in this thread.

The batches come from a :class:`~incremental._stream.BlockStream` (bounded
prefetch, grouped scheduler calls, overlapped with fitting when that pays).
Before each batch a :class:`~incremental._checkpoint.Checkpoint` may copy the
model, so a batch whose ``partial_fit`` raises part-way is undone: the model
comes back to its state before that batch.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import dask

from .. import _dask_compat
from .._blocks import check_block_rows, configured_get, num_rows
from .._checkpoint import Checkpoint
from .._stream import BlockComputeError, BlockStream
from .base import EpochJob, FitError, Report, interrupts_between_blocks


class LocalRunner:
    """Fit an epoch's batches in order in this thread (see the module).

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import SGDRegressor
    >>> from incremental._blocks import make_blocks
    >>> from incremental._runners import EpochJob, LocalRunner
    >>> blocks = make_blocks(da.ones((6, 2), chunks=2), da.ones(6, chunks=2))
    >>> job = EpochJob(blocks, [[(i, None)] for i in range(3)],
    ...                lambda m, b: m.partial_fit(b["X"], b["y"]), 2, 1)
    >>> seen = []
    >>> LocalRunner().run(SGDRegressor(), job, lambda model, rows: seen.append(rows))
    >>> seen
    [2, 2, 2]
    """

    def __init__(self, get: Any = None):
        self.get = get  # a dask scheduler's get; by default as configured

    def run(self, model: Any, job: EpochJob, report: Report) -> None:
        # Without a scheduler named by the user, each reader thread computes
        # its group itself: the readers are the parallelism, and a thread
        # pool per reader would only add hand-offs.
        get = self.get or configured_get() or dask.local.get_sync
        # Readers call it at once from several threads: see with_callbacks_given.
        get = _dask_compat.with_callbacks_given(get)
        stream = BlockStream(
            partial(job.assemble, get=get),
            range(len(job.batches)),
            prefetch=job.prefetch,
            group=job.group,
            readers=job.readers,
            overlap=job.overlap,
        )
        checkpoint = Checkpoint()
        with interrupts_between_blocks() as interrupted:
            try:
                for position, batch in stream:
                    rows = num_rows(batch["X"])
                    if rows == 0:
                        continue  # empty partitions carry nothing to learn
                    self._fit_one(model, job, position, batch, checkpoint, get)
                    report(model, rows)
                    if interrupted():
                        raise FitError(
                            KeyboardInterrupt(), position=position, phase="interrupted"
                        )
            except BlockComputeError as failure:
                raise FitError(
                    failure.error, position=failure.index, phase="computing"
                ) from None
            except KeyboardInterrupt as error:  # a second Ctrl-C, while computing
                raise FitError(error, position=None, phase="interrupted") from None

    def _fit_one(
        self,
        model: Any,
        job: EpochJob,
        position: int,
        batch: dict[str, Any],
        checkpoint: Checkpoint,
        get: Any,
    ) -> None:
        """Fit one batch; on failure undo it and raise :class:`FitError`."""
        try:
            check_block_rows(batch, partial(job.describe, position))
        except ValueError as error:  # nothing fitted yet: nothing to undo
            raise FitError(error, position=position, phase="fitting") from None
        checkpoint.maybe_save(model, position)
        start = time.perf_counter()
        try:
            job.fit(model, batch)
        except BaseException as error:
            restored = checkpoint.restore(partial(_replay, job, get=get), position)
            raise FitError(
                error,
                position=position,
                phase="fitting",
                model=restored,
                consistent=restored is not None,
            ) from None
        checkpoint.add_fit_seconds(time.perf_counter() - start)


def _replay(job: EpochJob, model: Any, positions: range, get: Any) -> None:
    """Fit ``model`` again on the batches at ``positions``, in order."""
    stream = BlockStream(partial(job.assemble, get=get), positions, prefetch=2, group=1)
    for _, batch in stream:
        if num_rows(batch["X"]):
            job.fit(model, batch)
