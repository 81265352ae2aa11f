"""Runners: how the batches of an epoch reach ``partial_fit``.

- :class:`LocalRunner` (``local.py``): on this machine, blocks computed ahead
  by a bounded stream, a checkpoint to undo a failed batch.
- :class:`ClusterRunner` (``cluster.py``): on a dask.distributed cluster, the
  model travels to the workers holding the blocks.
- :class:`MergeRunner` (``merge.py``): for estimators whose states merge
  (``_merge``), batches fitted apart on every core, states merged in a
  fixed tree.

All follow the protocol in ``base.py``: one :class:`EpochJob` in, ``report``
after each batch, one :class:`FitError` out. A new way of running a fit is a
new module here, chosen by :func:`choose_runner`.
"""

from __future__ import annotations

from .. import _dask_compat
from .._merge import Merge
from .base import (
    EpochJob,
    FitError,
    Report,
    Runner,
    interrupts_between_blocks,
    partial_fit_batch,
)
from .cluster import ClusterRunner, cluster_threads
from .local import LocalRunner
from .merge import MergeRunner


def choose_runner(merge: Merge | None = None) -> Runner:
    """The runner for the scheduler dask computes with now; ``merge``: how the
    estimator's states merge, when they should be merged."""
    client = _dask_compat.current_client()
    if client is not None:
        return ClusterRunner(client, merge)
    return LocalRunner() if merge is None else MergeRunner(merge)


__all__ = [
    "ClusterRunner",
    "EpochJob",
    "FitError",
    "LocalRunner",
    "MergeRunner",
    "Report",
    "Runner",
    "choose_runner",
    "cluster_threads",
    "interrupts_between_blocks",
    "partial_fit_batch",
]
