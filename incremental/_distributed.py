"""Fit on a dask.distributed cluster: the model travels, the blocks stay.

``fit_on_cluster`` submits, for each batch in order, one task that fits a copy
of the previous model on the batch. The task depends on the previous model
and on the batch's blocks, so the scheduler runs it on the worker that holds
the blocks (a block is far bigger than a model), and the chain of model
futures keeps the order exact. At most ``in_flight`` batches are computed
ahead of the fit that uses them. If a worker dies, dask recomputes what it
held from the task graph; fitting is deterministic, so the result is the same.

This module knows nothing of scikit-learn: it is given the function that fits
one batch.
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import dask

from ._blocks import Batch, Blocks, _Key, cull_present, cut_batch, num_rows


def current_client() -> Any:
    """The dask.distributed Client that dask computes with now, if any."""
    client = getattr(dask.base.get_scheduler(), "__self__", None)
    try:
        from distributed import Client
    except ImportError:
        return None
    return client if isinstance(client, Client) else None


class BatchFitError(Exception):
    """Carries an exception raised by the fit of the batch at ``position``."""

    def __init__(self, position: int, error: BaseException):
        super().__init__(position, error)
        self.position = position
        self.error = error


def _fit_remote(fit_one: Callable, previous: tuple, batch: Batch, computed: dict):
    """Fit a copy of the previous model on one batch: ``(model, rows)``."""
    # The previous model is a task result that a recomputation may need
    # again: fit a copy, never the stored object itself.
    model = copy.deepcopy(previous[0])
    rows = cut_batch(batch, computed)
    n = num_rows(rows["X"])
    if n:
        fit_one(model, rows)
    return model, n


def _submit_blocks(client, blocks: Blocks, batch: Batch) -> dict[int, dict[str, Any]]:
    """Futures (or in-memory values) for the parts of every block of a batch."""
    computed = {}
    for b, _ in batch:
        parts = blocks.parts[b]
        keys = [ref.key for ref in parts.values() if isinstance(ref, _Key)]
        futures = {}
        if keys:
            subgraph = cull_present(blocks.graph, keys)
            futures = dict(zip(keys, client.get(subgraph, keys, sync=False)))
        computed[b] = {
            name: futures[ref.key] if isinstance(ref, _Key) else ref
            for name, ref in parts.items()
        }
    return computed


def fit_on_cluster(
    client,
    blocks: Blocks,
    batches: Sequence[Batch],
    model: Any,
    fit_one: Callable[[Any, dict[str, Any]], None],
    *,
    in_flight: int,
    on_batch_done: Callable[[int, int, Any], None],
    interrupted: Callable[[], bool],
) -> Any:
    """Fit ``batches`` in order on the cluster; return the final model.

    ``on_batch_done(position, rows, model)`` is called as each fit completes,
    in order, with the model after it. If a fit fails, ``BatchFitError`` is
    raised whose ``model`` attribute holds the model after the last batch
    that succeeded. When ``interrupted()`` turns true, the fit under way
    finishes, it and the fits already finished are kept (reported through
    ``on_batch_done``), the others are cancelled, and ``KeyboardInterrupt``
    is raised.
    """
    token = uuid.uuid4().hex[:12]
    ahead: dict[int, dict] = {}
    chain: deque = deque()
    current: Any = (model, 0)
    last_good: Any = model
    submitted = 0

    def settle() -> None:
        nonlocal last_good
        position, future = chain.popleft()
        try:
            model, rows = future.result()
        except Exception as error:
            failure = BatchFitError(position, error)
            failure.model = last_good
            raise failure from None
        last_good = model
        on_batch_done(position, rows, model)

    try:
        for position, batch in enumerate(batches):
            while submitted < min(position + in_flight, len(batches)):
                ahead[submitted] = _submit_blocks(client, blocks, batches[submitted])
                submitted += 1
            computed = ahead.pop(position)
            current = client.submit(
                _fit_remote,
                fit_one,
                current,
                batch,
                computed,
                key=f"incremental-fit-{token}-{position}",
            )
            chain.append((position, current))
            while len(chain) > in_flight:
                settle()
            if interrupted():
                # As in a local fit, the block under way is finished: the
                # oldest fit not yet settled is running or about to (each
                # waits for the one before). Later fits are kept if done.
                if chain:
                    settle()
                while chain and chain[0][1].done():
                    settle()
                raise KeyboardInterrupt
        while chain:
            settle()
    finally:
        # After an error or Ctrl-C no fit keeps running. The blocks' futures
        # are only dropped, not cancelled: their keys may be the user's too.
        client.cancel([future for _, future in chain])
        chain.clear()
        ahead.clear()
    return last_good


__all__ = ["BatchFitError", "current_client", "fit_on_cluster"]
