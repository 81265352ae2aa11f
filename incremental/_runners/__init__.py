"""Runners: how the batches of an epoch reach ``partial_fit``.

- :class:`LocalRunner` (``local.py``): on this machine, blocks computed ahead
  by a bounded stream, a checkpoint to undo a failed batch.
- :class:`ClusterRunner` (``cluster.py``): on a dask.distributed cluster, the
  model travels to the workers holding the blocks.

All follow the protocol in ``base.py``: one :class:`EpochJob` in, ``report``
after each batch, one :class:`FitError` out. A new way of running a fit is a
new module here, chosen by :func:`choose_runner`.
"""

from __future__ import annotations

from .. import _dask_compat
from .base import (
    EpochJob,
    FitError,
    Report,
    Runner,
    interrupts_between_blocks,
    partial_fit_batch,
)
from .cluster import ClusterRunner
from .local import LocalRunner


def choose_runner() -> Runner:
    """The runner for the scheduler dask computes with now."""
    client = _dask_compat.current_client()
    return LocalRunner() if client is None else ClusterRunner(client)


__all__ = [
    "ClusterRunner",
    "EpochJob",
    "FitError",
    "LocalRunner",
    "Report",
    "Runner",
    "choose_runner",
    "interrupts_between_blocks",
    "partial_fit_batch",
]
