"""A recent copy of the model, so a batch that fails mid-update can be undone.

``partial_fit`` may change a model and then raise (a NaN found half-way, a
worker's memory error), leaving a half-updated model. The local runner keeps
a :class:`Checkpoint`: a copy of the model and the position it was taken at.
Undoing restores the copy and fits again the batches since it; fitting the
same batches in the same order is deterministic, so that gives exactly the
state before the failed batch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

#: Share of the fitting time that taking copies may cost.
CHECKPOINT_BUDGET = 0.005


class Checkpoint:
    """A copy of the model taken at some batch position, refreshed cheaply.

    A new copy is taken only when the fitting time since the last copy is
    large enough to keep copying under :data:`CHECKPOINT_BUDGET` of it. An
    estimator that cannot be copied keeps the last copy that worked (undo
    then fits again from there); if none ever worked, :attr:`model` is None
    and nothing can be undone.

    Examples
    --------
    >>> checkpoint = Checkpoint()
    >>> checkpoint.maybe_save([1, 2], position=0)
    >>> checkpoint.model, checkpoint.position
    ([1, 2], 0)
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.model: Any = None
        self.position = 0
        self.copy_seconds = 0.0
        self.fit_seconds = 0.0
        self.copyable = True
        self.clock = clock

    def maybe_save(self, model: Any, position: int) -> None:
        """Copy ``model`` (the state before batch ``position``) if it is due."""
        due = (
            self.model is None
            or self.fit_seconds * CHECKPOINT_BUDGET >= self.copy_seconds
        )
        if not (self.copyable and due):
            return
        start = self.clock()
        try:
            saved = copy.deepcopy(model)
        except Exception:
            # Copying stopped working (its state now holds something that
            # cannot be copied): keep the last good copy, try no more.
            self.copyable = False
            return
        self.model, self.position = saved, position
        self.copy_seconds = self.clock() - start
        self.fit_seconds = 0.0

    def add_fit_seconds(self, seconds: float) -> None:
        self.fit_seconds += seconds

    def restore(self, replay: Callable[[Any, range], None], position: int) -> Any:
        """The model as it was before batch ``position``, or None if unknown.

        ``replay(model, positions)`` fits ``model`` on the batches at
        ``positions`` again, in order.
        """
        if self.model is None:
            return None
        model, self.model = self.model, None  # handed over: not reused
        replay(model, range(self.position, position))
        return model
