"""What the three search classes share: ``fit`` and the fitted attributes.

``fit`` checks everything it can before reading a block (the parameters,
the candidates, the scoring, the data's shape and the validation split),
then hands the schedule to the runner and turns what it did into
dask-ml's attributes. The subclasses say only which brackets of candidates
to build, with which rule, and what ``metadata`` is.

After ``fit``, the search is a :class:`~incremental.ParallelPostFit` of its
best model: ``predict``, ``predict_proba``, ``transform``, ``score``, ...
run block by block on ``best_estimator_`` and exist exactly when it has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import dask
import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.metadata_routing import UNUSED
from sklearn.utils.metaestimators import available_if

from .. import _dask_compat
from .._blocks import (
    Blocks,
    check_input,
    compute_row_chunks,
    configured_get,
    cores,
    default_get,
    make_blocks,
    rows_or_nan,
    whole_rows,
)
from .._cache import CACHE, resolve_budget
from .._classes import find_classes
from .._conventions import current_config, run_in_config

# Incremental's checks, so both give the same messages.
from .._incremental import _check_cache, _check_target
from .._plan import (
    classes_source,
    prefetch_and_group,
    readers_for,
    split_fit_params,
)
from .._postfit import ParallelPostFit
from .._runners import partial_fit_batch
from .._runners.cluster import cluster_threads
from .._scoring import metric_for, streaming_score
from .._validation import check_validation_data
from ._cluster import ClusterFitter, ClusterSource
from ._params import (
    check_estimator,
    check_int,
    check_parameters,
    check_test_size,
    check_verbose,
)
from ._progress import SearchProgress
from ._results import best_index, cv_results, model_history
from ._runner import (
    BatchSource,
    Fitter,
    SearchRun,
    Validation,
    run_search,
    search_threads,
)
from ._schedule import (
    Schedule,
    StreamOrder,
    held_out_blocks,
    planned_positions,
)


@dataclass(frozen=True)
class StreamingScorer:
    """``scorer_``: ``scorer_(estimator, X, y)`` with the search's ``scoring``,
    reduced from per-block statistics (X is never gathered).

    It keeps the name, not the metric, so that a fitted search pickles.
    """

    scoring: str | None

    def __call__(self, estimator: Any, X: Any, y: Any = None, sample_weight=None):
        metric = metric_for(estimator, self.scoring)
        return streaming_score(estimator, metric, X, y, sample_weight)


@dataclass
class SearchData:
    """The blocks of a search, none read yet: what is trained on, in which
    order, and what validates."""

    blocks: Blocks
    order: StreamOrder
    held_out: np.ndarray | None
    validation: Blocks
    validation_indices: np.ndarray
    constant: dict[str, Any]
    batch_bytes: float | None = None

    def close(self) -> None:
        """The search ended: what the block cache kept for it may make room."""
        self.blocks.close()
        self.validation.close()


class BaseSearch(ParallelPostFit):
    """The machinery of the search classes; not public. Subclasses define
    ``_make_brackets()`` (checking their own parameters) and ``metadata``."""

    _with_bracket = False
    # Metadata given to fit is handed to the candidates' partial_fit;
    # validation_data is the search's own, never routed.
    _CALLS = {"fit": "partial_fit"}
    __metadata_request__fit = {"sample_weight": UNUSED, "validation_data": UNUSED}

    @available_if(lambda self: False)
    def partial_fit(  # pragma: no cover - never available
        self, X, y=None, *, sample_weight=None, **fit_params
    ):
        """A search has no ``partial_fit``: its candidates learn in ``fit``."""

    # -- the parameters' meta for the post-fit methods ---------------------------
    def _meta_for(self, method: str) -> Any:
        return getattr(self, f"{method}_meta", None)

    # -- fit -----------------------------------------------------------------------
    def fit(self, X, y=None, *, sample_weight=None, validation_data=None, **fit_params):
        """Search the candidates, each trained with ``partial_fit`` on the blocks
        of X, and keep the best.

        Parameters
        ----------
        X : dask array or DataFrame, or in-memory array-like (one block)
            Its row blocks are the units of ``max_iter``.
        y : array-like, dask array or Series, optional
            Cut into X's row blocks.
        sample_weight : array-like or dask array, optional
            One weight per row of X, cut into X's blocks and passed to every
            ``partial_fit`` call (with metadata routing on: when the
            estimator's ``partial_fit`` requests it).
        validation_data : tuple (X_val, y_val), optional
            Score the candidates on these instead of holding out blocks of X
            (then ``test_size`` must be None).
        **fit_params
            Passed to every ``partial_fit`` call; per-sample ones
            (``sample_weight``) are cut into X's blocks. ``classes`` is found
            from y (one pass) when the estimator needs it and it is not given.

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            On Ctrl-C, after the block under way: the fitted attributes then
            hold the search so far (see the class's notes).
        """
        self._forget_last_fit()
        check_estimator(self.estimator)
        check_parameters(self.parameters, self.estimator)
        check_verbose(self.verbose)
        _check_cache(self.cache)
        metric = metric_for(self.estimator, self.scoring)
        schedule = Schedule(self._make_brackets())
        models = {
            m.id: clone(self.estimator).set_params(**m.params) for m in schedule.models
        }
        limit = planned_positions(schedule.brackets)
        if sample_weight is not None:
            fit_params["sample_weight"] = sample_weight
        data = self._data(X, y, fit_params, validation_data, limit)
        try:
            source = classes_source(self.estimator, y is not None, data.constant, True)
            if source == "y":
                data.constant["classes"] = find_classes(y, self.estimator)
            run = self._run(schedule, models, data, metric, limit)
        finally:
            data.close()
        self._set_results(run)
        if run.interrupted:
            raise self._interrupted(run)
        return self

    def _data(self, X, y, fit_params, validation_data, limit) -> SearchData:
        """Blocks, validation split and stream order; nothing computed."""
        check_input(X)
        _check_target(self.estimator, y)
        test_size = check_test_size(self.test_size)
        batch_size = self.batch_size
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, 1)
        per_sample, constant = split_fit_params(fit_params, rows_or_nan(X))
        if validation_data is not None:
            if test_size is not None:
                raise ValueError(
                    "give either test_size (hold out blocks of X) or "
                    "validation_data=(X_val, y_val), not both"
                )
            validation_data = check_validation_data(validation_data, X)
        blocks = make_blocks(X, y, **per_sample)
        rng = check_random_state(self.random_state)
        if validation_data is None:
            train, held = held_out_blocks(blocks.n_blocks, test_size, rng)
        else:
            train, held = np.arange(blocks.n_blocks), None
        rows, batch_bytes = None, None
        if batch_size is not None:
            rows = blocks.row_counts() or compute_row_chunks(whole_rows(X))
            if sum(rows):
                batch_bytes = blocks.nbytes / sum(rows) * batch_size
        order = StreamOrder(train, rng, rows, batch_size)
        revisits = limit is None or limit > order.start(1)
        blocks, validation = self._cached(
            blocks, (X, y, per_sample), validation_data, revisits
        )
        indices = held if held is not None else np.arange(validation.n_blocks)
        return SearchData(
            blocks, order, held, validation, indices, constant, batch_bytes
        )

    def _cached(self, blocks: Blocks, data: tuple, validation_data, revisits: bool):
        """``(training blocks, validation blocks)``, with the block cache where
        it serves: for the validation blocks, read at every scoring, and for
        the training blocks when the stream passes over them more than once.
        Not on a dask.distributed cluster (as ``Incremental``)."""
        budget = 0
        if _dask_compat.current_client() is None:
            budget = resolve_budget(self.cache, CACHE.held)
        if budget <= 0:
            if validation_data is None:
                return blocks, blocks
            return blocks, make_blocks(*validation_data)
        X, y, per_sample = data
        if validation_data is None:
            cached = make_blocks(X, y, cache_budget=budget, **per_sample)
            return (cached if revisits else blocks), cached
        validation = make_blocks(*validation_data, cache_budget=budget)
        if revisits:
            blocks = make_blocks(X, y, cache_budget=budget, **per_sample)
        return blocks, validation

    def _run(self, schedule: Schedule, models, data: SearchData, metric, limit):
        client = _dask_compat.current_client()
        on_cluster = None if client is None else cluster_threads(client)
        prefetch, group = prefetch_and_group(
            "auto", data.blocks.block_bytes, data.batch_bytes, on_cluster, cores()
        )
        # partial_fit runs in the fitter's threads (or the cluster's
        # workers), in this thread's scikit-learn configuration.
        fit = partial(
            run_in_config,
            current_config(),
            partial(partial_fit_batch, constant=data.constant),
        )
        if client is not None:
            # The candidates travel to the blocks (see _cluster).
            source = ClusterSource(client, data.blocks, data.order, prefetch, limit)
            threads = on_cluster
            fitter = ClusterFitter(client, fit, threads)
        else:
            # Without a scheduler named by the user, each reader thread
            # computes its group itself (as Incremental's local runner does).
            configured = configured_get()
            source = BatchSource(
                data.blocks,
                data.order,
                # Readers call it from several threads at once: see
                # with_callbacks_given.
                _dask_compat.with_callbacks_given(configured or dask.local.get_sync),
                prefetch,
                group,
                limit,
                readers=readers_for(prefetch, group, cores()),
            )
            threads = search_threads(configured)
            fitter = Fitter(fit, threads)
        validation = Validation(
            metric,
            data.validation,
            data.validation_indices,
            default_get(),
            threads,
            fitter.pool,
        )
        self.train_blocks_ = data.order.train
        self.validation_blocks_ = data.held_out
        try:
            with SearchProgress(self.verbose, self.prefix) as progress:
                self._log_brackets(progress, schedule, len(data.order.train))
                return run_search(
                    schedule,
                    models,
                    source,
                    fitter,
                    validation,
                    progress,
                    self._with_bracket,
                )
        finally:
            source.close()
            fitter.close()
            self.train_block_reads_ = source.reads
            self.validation_block_reads_ = validation.reads

    def _log_brackets(
        self, progress: SearchProgress, schedule: Schedule, n_train: int
    ) -> None:
        for bracket in schedule.brackets:
            where = bracket.id if self._with_bracket else None
            progress.created(where, len(bracket.models), n_train)

    # -- what fit leaves -----------------------------------------------------------
    def _forget_last_fit(self) -> None:
        """Drop what an earlier ``fit`` left, so a failed fit leaves none of it."""
        for name in [
            n for n in self.__dict__ if n.endswith("_") and not n.startswith("_")
        ]:
            del self.__dict__[name]

    def _set_results(self, run: SearchRun) -> None:
        schedule = run.schedule
        self.cv_results_ = cv_results(schedule, run.records, self._with_bracket)
        self.history_ = run.records
        self.model_history_ = model_history(run.records)
        index = best_index(schedule)
        self.best_index_ = int(index)
        self.best_estimator_ = run.models[schedule.models[index].id]
        self.best_score_ = self.cv_results_["test_score"][index]
        self.best_params_ = self.cv_results_["params"][index]
        # The post-fit methods of ParallelPostFit use estimator_.
        self.estimator_ = self.best_estimator_
        self.scorer_ = StreamingScorer(self.scoring)
        self.n_splits_ = 1
        self.multimetric_ = False
        self.metadata_ = self._fitted_metadata(schedule)

    def _interrupted(self, run: SearchRun) -> KeyboardInterrupt:
        error = KeyboardInterrupt()
        scored = len({r["model_id"] for r in run.records})
        error.add_note(
            f"incremental: the search stopped on Ctrl-C after {len(run.records)} "
            f"scores of {scored} candidates; best_estimator_ (score "
            f"{self.best_score_:.6g}), cv_results_ and history_ hold the search "
            "so far (models trained since their last score were scored again)"
        )
        return error
