"""How an epoch of a fit is run: the protocol every runner follows.

A runner is handed a model and an :class:`EpochJob` (the blocks, the
epoch's batches in order, and the function that fits one batch) and fits the
batches in order, calling ``report(model, rows)`` after each one, so the
caller's model and counters move in step with the work done. Whatever stops
it early (a block that cannot be computed, a ``partial_fit`` that raises,
Ctrl-C) comes out as one exception type, :class:`FitError`, which says which
batch, in which phase and epoch, and what model the caller should keep; the
caller writes the user-facing notes once, for every runner.

The runners themselves live beside this module; ``choose_runner`` in the
package's ``__init__`` picks one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from .._blocks import Batch, Blocks, assemble_batches, describe_batch


@dataclass
class EpochJob:
    """One epoch's work: fit ``batches`` of ``blocks`` in order with ``fit``.

    ``fit(model, batch)`` calls ``partial_fit`` on one batch (a dict of
    ``X``, ``y`` and per-sample parameters), with the constant parameters
    bound. ``prefetch`` bounds the batches computed ahead of the fit;
    ``group`` is how many are computed per scheduler call, ``readers`` how
    many groups at once, and ``overlap`` whether to compute in threads
    (``BlockStream``'s parameter).
    """

    blocks: Blocks
    batches: list[Batch]
    fit: Callable[[Any, dict[str, Any]], None]
    prefetch: int
    group: int
    epoch: int = 0
    readers: int = 1
    overlap: bool | str = "auto"

    def describe(self, position: int) -> str:
        """Human words for the batch at ``position``: its block and rows."""
        return describe_batch(self.blocks, self.batches[position])

    def assemble(
        self, positions: Sequence[int], get: Callable | None = None
    ) -> list[dict[str, Any]]:
        """The batches at ``positions``, computed in one scheduler call."""
        return assemble_batches(self.blocks, [self.batches[p] for p in positions], get)


def partial_fit_batch(
    model: Any, batch: dict[str, Any], constant: dict[str, Any]
) -> None:
    """``model.partial_fit`` on one batch, with the constant fit parameters.

    Bind ``constant`` with ``functools.partial`` to make an ``EpochJob.fit``
    that can travel to a cluster's workers.
    """
    params = {name: value for name, value in batch.items() if name not in ("X", "y")}
    if "y" in batch:
        model.partial_fit(batch["X"], batch["y"], **params, **constant)
    else:
        model.partial_fit(batch["X"], **params, **constant)


class FitError(Exception):
    """Why a runner stopped before the end of an epoch.

    Attributes
    ----------
    error : BaseException
        The cause (``KeyboardInterrupt`` for Ctrl-C).
    position : int or None
        The batch it stopped at, in the epoch's order.
    phase : {"computing", "fitting", "interrupted"}
        Computing the batch's blocks, fitting it, or stopped by Ctrl-C after it.
    model : estimator or None
        The model the caller must keep now, when it is not the one last
        reported (a failed batch undone from a checkpoint); None otherwise.
    consistent : bool
        False when the failed batch could not be undone: the model last
        reported may hold part of it.
    """

    def __init__(
        self,
        error: BaseException,
        *,
        position: int | None,
        phase: str,
        model: Any = None,
        consistent: bool = True,
    ):
        super().__init__(error, position, phase)
        self.error = error
        self.position = position
        self.phase = phase
        self.model = model
        self.consistent = consistent


Report = Callable[[Any, int], None]


class Runner(Protocol):
    """Fits one epoch; see the module's docstring."""

    def run(self, model: Any, job: EpochJob, report: Report) -> None:
        """Fit ``model`` on ``job.batches`` in order.

        Calls ``report(model, rows)`` after each batch with the model after
        it (the same object on this machine, a new one from a cluster).
        Raises :class:`FitError` when it stops early.
        """
        ...


@contextmanager
def interrupts_between_blocks() -> Iterator[Callable[[], bool]]:
    """Hold Ctrl-C until the current block is done.

    Yields a function telling whether Ctrl-C was pressed; the runner checks
    it between blocks and stops there, so a block is never half-consumed. A
    second Ctrl-C interrupts at once. Outside the main thread (where signals
    cannot be handled) this does nothing.
    """
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
