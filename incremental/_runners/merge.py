"""Fit mergeable estimators in parallel: batches apart, states merged in order.

Each batch is fitted on a fresh copy of the (unfitted) estimator where it
is computed, in the stream's reader threads, so reading and fitting use
every core; only the small fitted states reach this thread, which merges
them in a fixed tree (``_merge.FixedTree``) and onto the model the epoch
started from. After each batch the model so far is reported, so the caller's
model and counters agree whenever the fit stops.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import dask
from sklearn.base import clone

from .. import _dask_compat
from .._blocks import configured_get, num_rows
from .._merge import FixedTree, Merge, Part, is_fitted, leaf
from .._stream import BlockComputeError, BlockStream
from .base import EpochJob, FitError, Report, interrupts_between_blocks


class _LeafError(Exception):
    """A batch's own ``partial_fit`` failed (not the computing of its blocks)."""

    def __init__(self, error: BaseException):
        super().__init__(error)
        self.error = error


def _leaves(
    job: EpochJob, template: Any, merge: Merge, get: Any, positions
) -> list[tuple[Part | None, int]]:
    """The batches at ``positions``, each fitted apart: ``(part, rows)``."""
    out = []
    for batch in job.assemble(positions, get):
        rows = num_rows(batch["X"])
        if rows == 0:
            out.append((None, 0))  # empty partitions carry nothing to learn
            continue
        try:
            out.append((leaf(template, batch, job.fit, merge), rows))
        except Exception as error:
            raise _LeafError(error) from error
    return out


class MergeRunner:
    """Fit an epoch's batches apart and merge their states (see the module)."""

    def __init__(self, merge: Merge, get: Any = None):
        self.merge = merge
        self.get = get

    def _merged(self, tree: FixedTree, part: Part, start: Part | None) -> Part:
        """The state after the batches so far (and the model started from)."""
        tree.add(part)
        merged = tree.result()
        return merged if start is None else self.merge.merge(start, merged)

    def run(self, model: Any, job: EpochJob, report: Report) -> None:
        get = self.get or configured_get() or dask.local.get_sync
        # Readers call it at once from several threads: see with_callbacks_given.
        get = _dask_compat.with_callbacks_given(get)
        start = Part(model, None) if is_fitted(model) else None
        stream = BlockStream(
            partial(_leaves, job, clone(model), self.merge, get),
            range(len(job.batches)),
            prefetch=job.prefetch,
            group=job.group,
            readers=job.readers,
            overlap=job.overlap,
        )
        tree = FixedTree(self.merge.merge)
        with interrupts_between_blocks() as interrupted:
            try:
                for position, (part, rows) in stream:
                    if part is None:
                        continue
                    try:
                        merged = self._merged(tree, part, start)
                    except Exception as error:  # the loop would refuse this batch
                        raise FitError(
                            error, position=position, phase="fitting"
                        ) from None
                    report(merged.model, rows)
                    if interrupted():
                        raise FitError(
                            KeyboardInterrupt(), position=position, phase="interrupted"
                        )
            except BlockComputeError as failure:
                error, phase = failure.error, "computing"
                if isinstance(error, _LeafError):
                    error, phase = error.error, "fitting"
                raise FitError(error, position=failure.index, phase=phase) from None
            except KeyboardInterrupt as error:  # a second Ctrl-C, while computing
                raise FitError(error, position=None, phase="interrupted") from None
