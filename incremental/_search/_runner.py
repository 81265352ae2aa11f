"""Run a search: one stream of batches feeds every candidate; many models scored
per read of each validation block.

- :class:`BatchSource` delivers the batch at each position of the stream
  (``_schedule.StreamOrder``), computed ahead by a
  :class:`~incremental._stream.BlockStream` over ``Blocks.compute``: each
  position is read once however many models take it.
- :class:`Fitter` passes one batch to many models, in parallel threads.
- :class:`Validation` scores many models in one pass over the validation
  blocks: one task per block and group of models, next to the block, with a
  streaming metric; only the small statistics travel.
- :func:`run_search` walks the schedule (``_schedule.Schedule``): feed,
  score, let the brackets decide, until every bracket is done or Ctrl-C.

Where the work runs: on one machine, blocks are computed by the stream's
reader threads with the scheduler dask is configured with, and
``partial_fit`` runs in this process, in a pool of threads (one per core,
``num_workers`` when dask's config sets it; one with the synchronous
scheduler). With a ``dask.distributed`` Client, ``_cluster`` takes the
place of the source and the fitter: the candidates travel to the workers
holding each batch and nothing is gathered here. Threads pay for
estimators whose ``partial_fit`` frees the GIL (scikit-learn's SGD models,
anything spending its time in NumPy on large blocks); a ``partial_fit`` in
pure Python gains little from them. Blocks the block cache holds
(``Blocks.cache``) are not read again, and are not counted as reads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial, reduce
from typing import Any, NamedTuple

import dask
import numpy as np

from .._blocks import (
    Blocks,
    assemble_batches,
    blocks_of,
    check_block_rows,
    cores,
    cull_present,
    describe_batch,
    num_rows,
)
from .._conventions import current_config, run_in_config
from .._runners import interrupts_between_blocks
from .._scoring import StreamingMetric
from .._stream import BlockComputeError, BlockStream
from ._schedule import ModelState, Schedule, StreamOrder


def search_threads(get: Callable | None) -> int:
    """Threads that run ``partial_fit``: 1 with the synchronous scheduler,
    dask's ``num_workers`` when set, else one per core."""
    if get is dask.local.get_sync:
        return 1
    return cores()


def uncached(blocks: Blocks, indices: Sequence[int]) -> int:
    """How many of the blocks at ``indices`` the block cache does not hold
    (all of them without a cache): the reads that computing them costs."""
    if blocks.cache is None:
        return len(indices)
    return sum(
        not keys or any(blocks.cache.lookup(k, count=False) is None for k in keys)
        for keys in (blocks.keys([i]) for i in indices)
    )


# -- the stream ------------------------------------------------------------------------------
class BatchSource:
    """The batch at each position of ``order``, computed ahead, each read once.

    Positions are asked for in increasing order; each pass over the training
    blocks is one :class:`BlockStream` (``readers`` threads computing groups
    at once). A position asked for again (a model behind the others) is
    computed again, and counted. ``limit`` (the last position the search can
    need, when known) stops computing ahead there.
    """

    def __init__(
        self,
        blocks: Blocks,
        order: StreamOrder,
        get: Callable,
        prefetch: int,
        group: int,
        limit: int | None = None,
        readers: int = 1,
    ):
        self.blocks, self.order, self.get = blocks, order, get
        self.prefetch, self.group, self.limit = prefetch, group, limit
        self.readers = readers
        self.reads = 0  # training blocks read (not served by the cache)
        self._lock = threading.Lock()
        self._stream: Any = None
        self._start = 0  # position of index 0 of the open stream
        self._next = 0  # position the open stream delivers next

    def compute(self, batches: Sequence[Any]) -> list[dict[str, Any]]:
        """The batches, their blocks computed in one scheduler call."""
        reads = uncached(self.blocks, blocks_of(batches))
        with self._lock:
            self.reads += reads
        return assemble_batches(self.blocks, batches, self.get)

    def _open(self, position: int) -> None:
        """A stream from ``position`` to the end of its pass (or ``limit``)."""
        epoch, offset = self.order.locate(position)
        batches = self.order.epoch(epoch)
        self._start = self.order.start(epoch)
        stop = len(batches)
        if self.limit is not None and self.limit > position:
            stop = min(stop, self.limit - self._start)
        self._stream = iter(
            BlockStream(
                lambda indices: self.compute([batches[i] for i in indices]),
                range(offset, stop),
                prefetch=self.prefetch,
                group=self.group,
                readers=self.readers,
            )
        )

    def at(self, position: int) -> dict[str, Any]:
        """The batch at ``position`` (a dict of ``X``, ``y``, ...), its parts
        checked to have one row each."""
        batch = self._computed(position)
        check_block_rows(batch, lambda: self.where(position))
        return batch

    def _computed(self, position: int) -> dict[str, Any]:
        if position < self._next:
            return self._read(
                position, lambda: self.compute([self.order.batch(position)])[0]
            )
        while True:
            if self._stream is None:
                self._open(self._next)
            try:
                index, batch = self._read(self._next, lambda: next(self._stream))
            except StopIteration:
                self._stream = None
                continue
            self._next = self._start + index + 1
            if self._next - 1 == position:
                return batch

    def where(self, position: int) -> str:
        """Human words for the batch at ``position``."""
        return describe_batch(self.blocks, self.order.batch(position))

    def _read(self, position: int, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except BlockComputeError as failure:
            error = failure.error
        raise computing_note(error, self.where(position), position)

    def close(self) -> None:
        """Stop computing ahead; nothing of the stream runs on after this."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def computing_note(error: BaseException, where: str, position: int) -> BaseException:
    """``error``, noted as raised while computing the batch at ``position``."""
    error.add_note(
        f"incremental: raised while computing {where}, position {position} of "
        "the search's stream of training batches"
    )
    return error


# -- fitting many models --------------------------------------------------------------------------
class Fed(NamedTuple):
    """What feeding one batch to many models left: the models after their
    ``partial_fit`` (the same objects, or on a cluster the fitted copies that
    came back), and the seconds each call took."""

    models: list
    seconds: list[float]


def _fit_timed(fit: Callable, model: Any, batch: dict[str, Any]) -> float:
    start = time.perf_counter()
    fit(model, batch)
    return time.perf_counter() - start


class FeedError(Exception):
    """``partial_fit`` of the model at ``index`` (in the order fed) raised ``error``."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(index, error)
        self.index, self.error = index, error


class Fitter:
    """``fit(model, batch)`` for many models on one batch, in ``threads`` threads.

    Each model is touched by one thread at a time and every model sees its
    batches in the stream's order, so the threads change no result.
    """

    def __init__(self, fit: Callable[[Any, dict], None], threads: int):
        self.fit = fit
        self.pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="incremental-search")
            if threads > 1
            else None
        )

    def feed(self, models: Sequence[Any], batch: dict[str, Any]) -> Fed:
        """Each model's ``partial_fit`` on ``batch``, in place; the seconds each took.

        An empty batch (an empty partition) counts as a call, with nothing
        to fit. If some fail, :class:`FeedError` names the first failing
        model in order, once the others have finished.
        """
        models = list(models)
        if num_rows(batch["X"]) == 0:
            return Fed(models, [0.0] * len(models))
        if self.pool is None or len(models) == 1:
            seconds = [self._fit_one(i, model, batch) for i, model in enumerate(models)]
            return Fed(models, seconds)
        futures = [self.pool.submit(_fit_timed, self.fit, m, batch) for m in models]
        wait(futures)
        for index, future in enumerate(futures):
            if future.exception() is not None:
                raise FeedError(index, future.exception())
        return Fed(models, [future.result() for future in futures])

    def _fit_one(self, index: int, model: Any, batch: dict[str, Any]) -> float:
        try:
            return _fit_timed(self.fit, model, batch)
        except Exception as error:
            raise FeedError(index, error) from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


# -- scoring many models ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelGroup:
    """Models scored by one task (held in a graph as one opaque value)."""

    models: tuple


def score_group(
    metric: StreamingMetric, group: ModelGroup, X: Any, y: Any = None, **rest: Any
) -> list[tuple[np.ndarray, float]] | None:
    """One validation block's statistics for each model of ``group``, and the
    seconds each took; None for an empty block."""
    n = num_rows(X)
    if n == 0:
        return None
    weight = rest.get("sample_weight")
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=float).reshape(n)
    out = []
    for model in group.models:
        start = time.perf_counter()
        stats = metric.stats(model, X, y, w)
        out.append((stats, time.perf_counter() - start))
    return out


def split_groups(items: Sequence[Any], n_groups: int) -> list[tuple]:
    """``items`` cut into at most ``n_groups`` consecutive groups of near-equal size."""
    bounds = np.linspace(0, len(items), min(n_groups, len(items)) + 1).round()
    return [tuple(items[int(a) : int(b)]) for a, b in zip(bounds[:-1], bounds[1:])]


class Validation:
    """Scores many models in one pass over the validation blocks.

    ``blocks`` and ``indices``: the held-out blocks of X, or all blocks of
    ``validation_data``. Each pass computes each block once. Without a block
    cache, one scheduler call runs one task per block and group of models,
    next to the block (on a cluster, where it is); with one, the blocks are
    computed here (or found in the cache, as they are after the first pass)
    and the groups are scored in ``pool``'s threads.
    """

    def __init__(
        self,
        metric: StreamingMetric,
        blocks: Blocks,
        indices: Sequence[int],
        get: Callable,
        groups: int,
        pool: ThreadPoolExecutor | None = None,
        config: dict | None = None,
    ):
        self.metric, self.blocks, self.get = metric, blocks, get
        self.indices = [int(i) for i in indices]
        self.n_groups = max(1, groups)
        self.pool = pool
        self.reads = 0  # validation blocks read (not served by the cache)
        # Scoring runs in other threads (or workers) under the scikit-learn
        # configuration of the thread that started the search.
        self.score_group = partial(
            run_in_config, current_config() if config is None else config, score_group
        )

    def score(self, models: Sequence[Any]) -> list[tuple[float, float]]:
        """``(score, seconds scoring)`` for each model, in order."""
        groups = split_groups(models, self.n_groups)
        self.reads += uncached(self.blocks, self.indices)
        if self.blocks.cache is None:
            per_group = self._next_to_blocks(groups)
        else:
            per_group = self._here(groups)
        results = []
        for group, per_block in zip(groups, per_group):
            per_block = [stats for stats in per_block if stats is not None]
            if not per_block:
                raise ValueError("the validation blocks have no rows to score on")
            for j in range(len(group)):
                total = reduce(
                    self.metric.combine, [block[j][0] for block in per_block]
                )
                seconds = sum(block[j][1] for block in per_block)
                results.append((float(self.metric.finish(total)), seconds))
        return results

    def _next_to_blocks(self, groups: list[tuple]) -> list[list]:
        """Each group's statistics on each block, from one scheduler call."""
        graph: dict = {}
        keys: list[list[Hashable]] = []
        for group in groups:
            part, out = self.blocks.map_graph(
                self.score_group, self.metric, ModelGroup(group), indices=self.indices
            )
            graph.update(part)
            keys.append(out)
        flat = [key for out in keys for key in out]
        values = dict(zip(flat, self.get(cull_present(graph, flat), flat)))
        return [[values[key] for key in out] for out in keys]

    def _here(self, groups: list[tuple]) -> list[list]:
        """The same, from blocks computed (or kept) here, scored in threads."""
        parts = self.blocks.compute(self.indices, self.get)

        def run(group: tuple, block: dict) -> Any:
            return self.score_group(self.metric, ModelGroup(group), **block)

        if self.pool is None:
            return [[run(g, block) for block in parts] for g in groups]
        futures = [[self.pool.submit(run, g, block) for block in parts] for g in groups]
        return [[future.result() for future in row] for row in futures]


# -- the search ----------------------------------------------------------------------------
@dataclass
class SearchRun:
    """What a search did: its records (one per score, in order), the models
    still alive (None for those dropped), and whether Ctrl-C stopped it."""

    schedule: Schedule
    models: dict[Hashable, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


class _Quiet:
    """An observer that shows nothing."""

    def position_started(self, position: int, schedule: Schedule) -> None:
        pass

    def position_done(self, position: int, schedule: Schedule) -> None:
        pass

    def scored(self, records: list[dict], schedule: Schedule) -> None:
        pass


class _Search:
    """One walk of a schedule; see :func:`run_search`."""

    def __init__(self, run, source, fitter, validation, observer, with_bracket):
        self.run, self.source, self.fitter = run, source, fitter
        self.validation, self.observer = validation, observer
        self.with_bracket = with_bracket
        self.started = time.perf_counter()
        self.last_fit: dict[Hashable, float] = {}

    def step(self, position: int) -> None:
        """Feed the batch at ``position``, then score and decide."""
        schedule = self.run.schedule
        self.observer.position_started(position, schedule)
        feeding = schedule.to_feed(position)
        batch = self.source.at(position)
        fed = self.feed(feeding, batch, position)
        del batch
        for model, fitted, seconds in zip(feeding, fed.models, fed.seconds):
            self.run.models[model.id] = fitted
            self.last_fit[model.id] = seconds
        schedule.fed(feeding)
        self.score(schedule.due(), decide=True)
        for model in schedule.models:  # dropped models are never trained again
            if not model.alive:
                self.run.models[model.id] = None
        self.observer.position_done(position, schedule)

    def where(self, position: int) -> str:
        return self.source.where(position)

    def feed(self, feeding: list[ModelState], batch: Any, position: int) -> Fed:
        try:
            return self.fitter.feed([self.run.models[m.id] for m in feeding], batch)
        except FeedError as failure:
            error, model = failure.error, feeding[failure.index]
        error.add_note(
            f"incremental: raised by partial_fit of candidate {model.id!r} "
            f"{model.params} at its call {model.calls + 1}, on {self.where(position)}"
        )
        raise error

    def score(self, due: list[ModelState], decide: bool) -> None:
        """Score ``due`` in one pass over the validation blocks; record it."""
        if not due:
            return
        try:
            scored = self.validation.score([self.run.models[m.id] for m in due])
        except Exception as error:
            names = ", ".join(repr(m.id) for m in due[:5]) + (
                ", ..." if len(due) > 5 else ""
            )
            error.add_note(
                f"incremental: raised while scoring {len(due)} candidates ({names}) "
                "on the validation blocks"
            )
            raise
        elapsed = time.perf_counter() - self.started
        records = [
            self.record(model, score, seconds, elapsed)
            for model, (score, seconds) in zip(due, scored)
        ]
        self.run.records.extend(records)
        scores = {r["model_id"]: r["score"] for r in records}
        self.run.schedule.scored(scores, decide=decide)
        self.observer.scored(records, self.run.schedule)

    def record(self, model: ModelState, score: float, seconds: float, elapsed: float):
        """dask-ml's record of one score."""
        record = {
            "model_id": model.id,
            "params": model.params,
            "partial_fit_calls": model.calls,
            "partial_fit_time": self.last_fit.get(model.id, math.nan),
            "score": score,
            "score_time": seconds,
            "elapsed_wall_time": elapsed,
        }
        if self.with_bracket:
            record["bracket"] = model.bracket
        return record


def run_search(
    schedule: Schedule,
    models: dict[Hashable, Any],
    source: BatchSource,
    fitter: Fitter,
    validation: Validation,
    observer: Any = None,
    with_bracket: bool = False,
) -> SearchRun:
    """Walk ``schedule`` to its end: feed each position's batch to the models
    at that position, score those that reached their target, let the
    brackets decide.

    Ctrl-C stops after the current position: the models trained since their
    last score are scored (so every model kept has a score of its own state),
    and the run says it was interrupted.
    """
    run = SearchRun(schedule, models)
    search = _Search(
        run, source, fitter, validation, observer or _Quiet(), with_bracket
    )
    with interrupts_between_blocks() as interrupted:
        while (position := schedule.next_position()) is not None:
            search.step(position)
            if interrupted():
                run.interrupted = True
                search.score(schedule.unscored(), decide=False)
                break
    return run
