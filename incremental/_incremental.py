"""``Incremental``: the scikit-learn face of fitting block by block.

This module owns what a scikit-learn user sees: the parameters and their
checks, ``fit`` and ``partial_fit``, ``history_``, early stopping and the
notes on errors. It knows nothing of schedulers: a fit is cut into blocks
(``_blocks``), planned (``_plan``), and each epoch is handed to a runner
(``_runners``), which reports back after every batch.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.metadata_routing import UNUSED
from sklearn.utils.metaestimators import available_if

from . import _dask_compat
from ._blocks import (
    Blocks,
    check_input,
    compute_row_chunks,
    cores,
    make_blocks,
    rows_or_nan,
    whole_rows,
)
from ._cache import CACHE, resolve_budget
from ._classes import find_classes
from ._conventions import (
    current_config,
    is_frozen,
    refuses_sample_weight,
    run_in_config,
    shows_sample_weight,
)
from ._merge import merge_for
from ._plan import (
    FitPlan,
    classes_source,
    make_plan,
    merge_batches,
    overlap_for,
    prefetch_and_group,
    readers_for,
    split_fit_params,
)
from ._postfit import ParallelPostFit, can_partial_fit
from ._progress import Progress
from ._quirks import quirks_of
from ._runners import (
    EpochJob,
    FitError,
    Runner,
    choose_runner,
    cluster_threads,
    partial_fit_batch,
)
from ._scoring import check_scoring
from ._validation import EarlyStopping, check_validation_data, validation_scorer

logger = logging.getLogger("incremental")

_ACTIONS = {
    "computing": "raised while computing",
    "fitting": "raised while fitting",
    "interrupted": "interrupted after",
}


def _check_target(estimator: Any, y: Any) -> None:
    """Raise scikit-learn's error when a supervised estimator is given no y."""
    if y is not None:
        return
    try:
        required = get_tags(estimator).target_tags.required
    except AttributeError:  # an estimator without scikit-learn's tags
        return
    if required:
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, "
            "but the target y is None"
        )


def _check_int(name: str, value: Any, low: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
    ):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_cache(cache: Any) -> None:
    if cache == "auto" or cache is False or cache is None:
        return
    try:
        budget = resolve_budget(cache, 0)
    except (TypeError, ValueError):
        budget = -1
    if isinstance(cache, bool) or budget < 0:
        raise ValueError(
            "cache must be 'auto', False, or a number of bytes (an integer >= 0 "
            f"or a string such as '4GB'), got {cache!r}"
        )


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _first_batch_rows(batches: list, rows: tuple[int, ...] | None) -> int | None:
    """Rows of the first batch that has any (runners skip empty ones); None
    when the blocks' row counts are not known."""
    if rows is None:
        return None
    for batch in batches:
        n = sum(rows[b] if s is None else s.stop - s.start for b, s in batch)
        if n:
            return n
    return None


class Incremental(ParallelPostFit):
    """Fit any estimator that has ``partial_fit`` on data larger than memory.

    ``fit`` clones ``estimator`` into ``estimator_`` and calls its
    ``partial_fit`` once per row block of X (a dask array's row chunks or a
    dask DataFrame's partitions), so only a few blocks are in memory at once.
    The next blocks are computed while ``partial_fit`` runs on the current
    one. The fitted model is the same, bit for bit, as the plain loop
    ``for Xb, yb in blocks: est.partial_fit(Xb, yb)`` over the same blocks in
    the same order. Prediction, transformation and scoring then run block by
    block in parallel, as in :class:`ParallelPostFit`.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        Any scikit-learn (or compatible) estimator that learns in batches.
    scoring : str or callable, optional
        Metric used by ``score``; by default the estimator's own.
    shuffle_blocks : bool, default=True
        Visit the blocks in a random order drawn from ``random_state``:
        ``check_random_state(random_state).permutation(n_blocks)``. With False,
        blocks are visited in storage order.
    random_state : int, RandomState instance or None, default=None
        Seed of the block order.
    assume_equal_chunks : bool, default=True
        Accepted for compatibility with dask-ml; ``y`` and per-sample fit
        parameters are always aligned to X's row blocks, so it changes nothing.
    predict_meta, predict_proba_meta, transform_meta : array, optional
        See :class:`ParallelPostFit`.
    prefetch : int or "auto", default="auto"
        At most this many blocks are held at once: being read, waiting for
        ``partial_fit``, and being fitted. "auto" holds at most about
        512 MiB (between 2 and 64 blocks) and at most one scheduler call's
        blocks more than there are cores (on a dask.distributed cluster,
        than the workers have threads): each core reading or fitting, one
        call's blocks waiting. Up to half of them are computed per scheduler
        call, which spreads its fixed cost over small blocks; large blocks
        (over 8 MiB) are computed one per call, by reader threads, from the
        start.
    batch_size : int, optional
        Re-cut the stream into batches of this many rows, whatever the
        storage chunks: large blocks are split and small ones joined, in
        visiting order. The model then equals the plain loop over those
        batches. Needs the row count of each block (one pass over a dask
        DataFrame whose partition lengths are unknown).
    max_epochs : int, default=1
        Passes over the data. Epoch ``e`` visits the blocks in the order of
        the ``e``-th ``rng.permutation(train_blocks)`` with
        ``rng = check_random_state(random_state)`` (storage order without
        ``shuffle_blocks``). Without early stopping exactly this many run.
    early_stopping : bool, default=False
        After each epoch score the model on validation data (``validation_data``
        given to ``fit``, else ``validation_fraction`` of the blocks, drawn
        from ``random_state`` and never trained on) with ``scoring`` through
        the streaming scorer; stop when the score has not improved by ``tol``
        for ``n_iter_no_change`` epochs, and keep the model of the best epoch.
    validation_fraction : float, default=0.1
        Share of the blocks held out for early stopping (at least one).
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping early.
    tol : float, default=1e-4
        Improvement of the validation score that counts as one.
    verbose : int, default=0
        1 shows a progress bar (tqdm) per epoch with rows per second and the
        validation score; 2 also keeps the bars of finished epochs. One log
        record per epoch goes to ``logging.getLogger("incremental")`` at INFO
        whatever ``verbose`` says.

    cache : "auto", False, int or str, default="auto"
        Keep the blocks a fit computes in memory, so that what reads them
        again reads no storage for what is kept. "auto" keeps them for the
        fit's own later epochs (``max_epochs > 1``, early stopping), within
        half the memory available when the fit starts. A budget in bytes
        (an integer, or a string such as ``"4GB"``) also keeps them for
        what reads them after the fit: the next stage of a pipeline (which
        fits on a transform of these blocks) and a repeated fit on the same
        data (a search over ``alpha``). Not the default, because keeping
        costs memory and time that re-reading can beat: see the README.
        False keeps nothing. Data larger than the budget: the first blocks
        are kept, the rest read again. Kept blocks are read-only and go when
        the dask collection that made them is deleted, or with
        ``incremental.clear_cache()``; they never change a result. Not used
        on a dask.distributed cluster.

    merge : "auto", True or False, default="auto"
        For estimators whose fitted states can be merged (StandardScaler,
        MinMaxScaler, MaxAbsScaler and the naive Bayes family; see
        ``incremental.MERGEABLE`` and ``incremental.register_merge``): fit
        each batch apart, on every core, and merge their states in a fixed
        tree. The result is identical whatever the cores or scheduler, and
        equal to the serial loop of ``partial_fit`` within floating-point
        rounding (minima, maxima and integer counts bit for bit). "auto"
        merges batches known to hold 2 MiB or more of X (a DataFrame's are
        not known: pass True); False always runs the serial loop.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator. Its learned attributes (``coef_``,
        ``classes_``, ``n_features_in_``, ...) are reachable on the wrapper.
    n_blocks_seen_ : int
        Blocks (batches, with ``batch_size``) passed to ``partial_fit`` since
        the last ``fit``. If a block fails, ``estimator_`` holds the model
        after the blocks counted here.
    n_epochs_ : int
        Epochs run since the last ``fit``.
    history_ : list of dict
        One record per epoch: ``epoch``, ``n_batches``, ``n_samples``,
        ``seconds``, the validation ``score`` (None without early stopping)
        and ``runner``, where ``partial_fit`` ran: ``"local"`` (in the calling
        thread), ``"merge"`` (batches apart in the stream's reader threads,
        their states merged in the calling thread) or ``"cluster"``.
    best_score_ : float
        With early stopping: the best validation score, whose model is kept.

    See Also
    --------
    ParallelPostFit : fit in memory, then predict and score in parallel; its
        methods (``predict``, ``transform``, ``score``, ...) are this class's.
    NotStreamableError : raised when ``scoring`` cannot be reduced block by
        block where it must be (early stopping).

    Notes
    -----
    An estimator fitted elsewhere predicts, transforms and scores through the
    wrapper without ``fit``, as in :class:`ParallelPostFit`; ``fit`` and the
    first ``partial_fit`` start from ``clone(estimator)``. A
    ``FrozenEstimator`` is refused: its ``partial_fit`` would change the
    frozen model (use ``ParallelPostFit(FrozenEstimator(model))``).

    With ``sklearn.set_config(enable_metadata_routing=True)``, metadata such
    as ``sample_weight`` reaches the estimator's ``partial_fit`` (cut into
    X's blocks) when it asked for it there:
    ``SGDClassifier().set_partial_fit_request(sample_weight=True)``, also for
    ``Incremental.fit``. ``classes`` is the wrapper's own and never routed.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import SGDClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from incremental import Incremental
    >>> rng = da.random.default_rng(0)
    >>> X = rng.normal(size=(100_000, 20), chunks=(10_000, 20))
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> pipe = make_pipeline(
    ...     Incremental(StandardScaler(), shuffle_blocks=False),
    ...     Incremental(SGDClassifier(random_state=0), random_state=0),
    ... )
    >>> pipe = pipe.fit(X, y)
    >>> pipe[-1].n_blocks_seen_, pipe[-1].classes_.tolist()
    (10, [0, 1])
    >>> pipe.predict(X)
    dask.array<_apply_block, shape=(100000,), dtype=int64, chunksize=(10000,), chunktype=numpy.ndarray>
    >>> pipe.score(X, y) > 0.95
    True
    """

    _CALLS = {"fit": "partial_fit", "partial_fit": "partial_fit"}
    # Options of the wrapper, not metadata for scikit-learn to route.
    __metadata_request__fit = {"sample_weight": UNUSED, "validation_data": UNUSED}
    __metadata_request__partial_fit = {
        "sample_weight": UNUSED,
        "validation_data": UNUSED,
    }

    def __init__(
        self,
        estimator: Any = None,
        *,
        scoring: Any = None,
        shuffle_blocks: bool = True,
        random_state: Any = None,
        assume_equal_chunks: bool = True,
        predict_meta: Any = None,
        predict_proba_meta: Any = None,
        transform_meta: Any = None,
        prefetch: int | str = "auto",
        batch_size: int | None = None,
        max_epochs: int = 1,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        tol: float = 1e-4,
        verbose: int = 0,
        cache: Any = "auto",
        merge: bool | str = "auto",
    ):
        super().__init__(
            estimator,
            scoring=scoring,
            predict_meta=predict_meta,
            predict_proba_meta=predict_proba_meta,
            transform_meta=transform_meta,
        )
        self.shuffle_blocks = shuffle_blocks
        self.random_state = random_state
        self.assume_equal_chunks = assume_equal_chunks
        self.prefetch = prefetch
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.verbose = verbose
        self.cache = cache
        self.merge = merge

    # -- public ------------------------------------------------------------
    @shows_sample_weight("partial_fit")
    def fit(self, X, y=None, *, sample_weight=None, validation_data=None, **fit_params):
        """Fit a clone of ``estimator`` with one ``partial_fit`` per block of X.

        Parameters
        ----------
        X : dask array or DataFrame, or an in-memory array-like (one block)
        y : array-like, dask array or Series, optional
            Cut into X's row blocks whatever its own chunking.
        sample_weight : array-like, dask array or Series, optional
            Cut into X's row blocks and passed to each ``partial_fit``; only
            in the signature when the estimator's ``partial_fit`` takes it.
        validation_data : tuple (X_val, y_val), optional
            With ``early_stopping=True``: score on these after each epoch
            instead of holding out ``validation_fraction`` of the blocks.
        **fit_params
            Passed to every ``partial_fit`` call (with metadata routing on,
            what the estimator's ``partial_fit`` requested). Those with one
            entry per row (dask collections) are cut into X's row blocks;
            ``classes`` is found from y when needed and not given.

        Returns
        -------
        self
        """
        fit_params = self._fit_params("fit", sample_weight, fit_params)
        self._check_params("fit", X, y, fit_params)
        self._start()
        return self._fit(X, y, fit_params, validation_data)

    @shows_sample_weight("partial_fit")
    @available_if(can_partial_fit)
    def partial_fit(
        self, X, y=None, *, sample_weight=None, validation_data=None, **fit_params
    ):
        """Continue fitting ``estimator_`` on the blocks of X (see ``fit``).

        Each call runs ``max_epochs`` epochs (one by default) and adds them to
        ``history_``. The first call starts from a clone of ``estimator``.
        Exists exactly when the wrapped estimator has ``partial_fit``.

        Returns
        -------
        self
        """
        fit_params = self._fit_params("partial_fit", sample_weight, fit_params)
        self._check_params("partial_fit", X, y, fit_params)
        if "estimator_" not in self.__dict__:
            self._start()
        return self._fit(X, y, fit_params, validation_data)

    def _start(self) -> None:
        self.estimator_ = clone(self.estimator)
        self.n_blocks_seen_ = 0
        self.n_epochs_ = 0
        self.history_ = []

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The wrapped estimator's tags describe its fit; Incremental only
        # calls partial_fit, which may refuse what fit takes.
        if quirks_of(self.estimator).sparse_partial_fit is False:
            tags.input_tags.sparse = False
        return tags

    # -- checks ------------------------------------------------------------
    def _check_params(
        self, method: str, X: Any, y: Any, fit_params: dict[str, Any]
    ) -> None:
        """Check every parameter, and X and y as far as it costs nothing."""
        self._check_estimator_fits_blockwise(method, fit_params)
        check_scoring(self.scoring)
        _check_bool("shuffle_blocks", self.shuffle_blocks)
        _check_bool("early_stopping", self.early_stopping)
        check_random_state(self.random_state)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, 1)
        _check_int("max_epochs", self.max_epochs, 1)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)
        verbose = int(self.verbose) if isinstance(self.verbose, bool) else self.verbose
        _check_int("verbose", verbose, 0)
        if not (
            isinstance(self.validation_fraction, numbers.Real)
            and 0 < self.validation_fraction < 1
        ):
            raise ValueError(
                "validation_fraction must be in (0, 1), got "
                f"{self.validation_fraction!r}"
            )
        if not isinstance(self.tol, numbers.Real) or not math.isfinite(self.tol):
            raise ValueError(f"tol must be a finite number, got {self.tol!r}")
        prefetch = self.prefetch
        if prefetch != "auto" and (
            isinstance(prefetch, bool)
            or not isinstance(prefetch, numbers.Integral)
            or prefetch < 1
        ):
            raise ValueError(
                f"prefetch must be 'auto' or an integer >= 1, got {prefetch!r}"
            )
        _check_cache(self.cache)
        if self.merge not in ("auto", True, False):
            raise ValueError(f"merge must be 'auto', True or False, got {self.merge!r}")
        check_input(X)
        if y is not None:
            check_input(y, "y")
        _check_target(self.estimator, y)

    def _check_estimator_fits_blockwise(
        self, method: str, fit_params: dict[str, Any]
    ) -> None:
        self._check_estimator()
        name = type(self.estimator).__name__
        if not hasattr(self.estimator, "partial_fit"):
            raise TypeError(
                f"{name} has no partial_fit method, so it "
                "cannot learn block by block; use an estimator with partial_fit, "
                "or ParallelPostFit to fit in memory and predict in parallel"
            )
        self._refuse_frozen(method)
        if "sample_weight" in fit_params and refuses_sample_weight(
            self.estimator, "partial_fit"
        ):
            raise TypeError(f"{name}.partial_fit does not take sample_weight")

    def _refuse_frozen(self, method: str) -> None:
        """Raise if ``method`` would change a frozen estimator (which clone()
        gives back as it is) by calling its ``partial_fit``."""
        if is_frozen(self.estimator):
            name = type(self.estimator).__name__
            raise TypeError(
                f"{type(self).__name__}.{method} would change the {name}'s model: "
                f"it calls partial_fit, and clone() gives a {name} back as it is. "
                f"To predict, transform or score with it, use "
                f"ParallelPostFit({name}(model)), or ParallelPostFit(model) "
                "without fit; to train a copy, use Incremental(model)"
            )

    def _check_first_batch(self, batches: list, rows: tuple[int, ...] | None):
        """Refuse, before reading any block, a first batch smaller than the
        estimator's first ``partial_fit`` accepts (``_quirks``)."""
        param = quirks_of(self.estimator).first_batch_rows
        if param is None or self.n_blocks_seen_:
            return
        needed = self.estimator.get_params().get(param)
        n = _first_batch_rows(batches, rows)
        if isinstance(needed, numbers.Integral) and n is not None and n < needed:
            raise ValueError(
                f"{type(self.estimator).__name__}'s first partial_fit needs at "
                f"least {param}={needed} rows, but the first batch has {n} "
                f"sample{'' if n == 1 else 's'}; use larger blocks, "
                f"batch_size >= {needed}, or a smaller {param}"
            )

    # -- the fit -------------------------------------------------------------
    def _fit(self, X, y, fit_params: dict[str, Any], validation_data=None):
        per_sample, constant = split_fit_params(fit_params, rows_or_nan(X))
        if validation_data is not None:
            if not self.early_stopping:
                raise ValueError(
                    "validation_data is only used with early_stopping=True"
                )
            validation_data = check_validation_data(validation_data, X)
        self._add_classes(constant, y)
        on_cluster = _dask_compat.current_client() is not None
        budget = 0 if on_cluster else self._cache_budget()
        blocks = make_blocks(
            X,
            y,
            cache_budget=budget,
            reread=self.max_epochs > 1 or bool(self.early_stopping),
            # a budget given in bytes: keep for a pipeline's next stage, a
            # repeated fit; "auto" keeps only for this fit's own epochs
            read_later=self.cache != "auto",
            **per_sample,
        )
        try:
            return self._fit_blocks(blocks, X, constant, validation_data)
        finally:
            blocks.close()

    def _fit_blocks(self, blocks, X, constant, validation_data):
        """Plan the fit of ``blocks`` and run it, epoch by epoch."""
        plan = self._plan(blocks, X, held_out=validation_data is None)
        self._check_first_batch(plan.batches(0), plan.rows or blocks.row_counts())
        prefetch, group, batch_bytes = self._prefetch_and_group(blocks, plan)
        merge = merge_for(self.estimator_)
        use_merge = merge_batches(self.merge, merge is not None, batch_bytes)
        runner = choose_runner(merge if use_merge else None)
        check_score, stopping = None, None
        if self.early_stopping:
            check_score = validation_scorer(
                self.estimator, self.scoring, blocks, plan.held_out, validation_data
            )
            stopping = EarlyStopping(self.n_iter_no_change, self.tol)
        readers = readers_for(prefetch, group, cores())
        # partial_fit may run in another thread (a reader thread when merging,
        # a cluster's worker): it runs in the scikit-learn configuration of
        # this one.
        fit = partial(
            run_in_config,
            current_config(),
            partial(partial_fit_batch, constant=constant),
        )
        with Progress(self.verbose, self.max_epochs) as progress:
            for epoch in range(plan.n_epochs):
                job = EpochJob(
                    blocks,
                    plan.batches(epoch),
                    fit,
                    prefetch,
                    group,
                    epoch,
                    readers,
                    overlap_for(batch_bytes),
                )
                record = self._run_epoch(runner, job, progress)
                record["score"] = (
                    None if check_score is None else check_score(self.estimator_)
                )
                self.history_.append(record)
                self.n_epochs_ = len(self.history_)
                progress.end_epoch(record)
                if stopping is not None and self._stop_early(stopping, record):
                    break
        if stopping is not None and stopping.best_model is not None:
            self.estimator_ = stopping.best_model  # the best validation score's
        return self

    def _cache_budget(self) -> int:
        return resolve_budget(self.cache, CACHE.held)

    def _add_classes(self, constant: dict[str, Any], y: Any) -> None:
        """Put ``classes`` among the constant fit parameters when it is needed."""
        source = classes_source(
            self.estimator_, y is not None, constant, self.n_blocks_seen_ == 0
        )
        if source == "fitted":
            constant["classes"] = self.estimator_.classes_
        elif source == "y":
            constant["classes"] = find_classes(y, self.estimator_)

    def _plan(self, blocks: Blocks, X: Any, held_out: bool) -> FitPlan:
        rows = None
        if self.batch_size is not None:
            rows = blocks.row_counts() or compute_row_chunks(whole_rows(X))
        hold_out = (
            self.validation_fraction if self.early_stopping and held_out else None
        )
        return make_plan(
            blocks.n_blocks,
            check_random_state(self.random_state),
            max_epochs=self.max_epochs,
            shuffle=bool(self.shuffle_blocks),
            hold_out_fraction=hold_out,
            rows=rows,
            batch_size=self.batch_size,
        )

    def _prefetch_and_group(
        self, blocks: Blocks, plan: FitPlan
    ) -> tuple[int, int, float]:
        """Blocks computed ahead, blocks per scheduler call, and the bytes of
        X in a batch (NaN when unknown)."""
        batch_bytes = None
        if self.batch_size is not None and plan.rows:
            total_rows = sum(plan.rows)
            if total_rows:
                batch_bytes = blocks.nbytes / total_rows * self.batch_size
        client = _dask_compat.current_client()
        prefetch, group = prefetch_and_group(
            self.prefetch,
            blocks.block_bytes,
            batch_bytes,
            None if client is None else cluster_threads(client),
            cores(),
        )
        if batch_bytes is None:
            batch_bytes = blocks.block_bytes
        return prefetch, group, batch_bytes

    def _run_epoch(self, runner: Runner, job: EpochJob, progress: Progress) -> dict:
        """One pass of ``partial_fit`` over ``job.batches``; its history record."""
        progress.start_epoch(job.epoch, len(job.batches))
        started = time.perf_counter()
        n_samples = 0

        def report(model: Any, rows: int) -> None:
            # estimator_ and n_blocks_seen_ move together, so whatever stops
            # the fit (an error, Ctrl-C) leaves them in agreement.
            nonlocal n_samples
            self.estimator_ = model
            if rows:
                self.n_blocks_seen_ += 1
                n_samples += rows
                progress.batch_done(rows)

        failure = None
        try:
            runner.run(self.estimator_, job, report)
        except FitError as caught:
            failure = caught
        if failure is not None:
            # Raised here, outside the handler, so that the user's error does
            # not carry the runner's frames (and the blocks they hold) along
            # as its context.
            error = self._annotated(failure, job)
            del failure
            raise error
        if n_samples == 0:  # skipping empty blocks must not hide an empty X
            raise ValueError(
                "Found array with 0 sample(s): every block of X is empty, "
                "so there is nothing to fit"
            )
        return {
            "epoch": job.epoch,
            "n_batches": len(job.batches),
            "n_samples": n_samples,
            "seconds": time.perf_counter() - started,
            "runner": type(runner).__name__.removesuffix("Runner").lower(),
        }

    def _stop_early(self, stopping: EarlyStopping, record: dict) -> bool:
        stop = stopping.update(record["score"], self.estimator_)
        self.best_score_ = stopping.best_score
        if stop:
            logger.info(
                "early stop after epoch %d: no improvement of %s over %g for %d epochs",
                record["epoch"] + 1,
                self.scoring or "score",
                self.tol,
                stopping.no_change,
            )
        return stop

    def _annotated(self, failure: FitError, job: EpochJob) -> BaseException:
        """The cause of ``failure``, with notes saying where it happened and
        what ``estimator_`` now holds (which this sets)."""
        if failure.model is not None:
            self.estimator_ = failure.model
        error = failure.error
        if failure.position is not None:
            error.add_note(
                f"incremental: {_ACTIONS[failure.phase]} "
                f"{job.describe(failure.position)} in epoch {job.epoch + 1} of at "
                f"most {self.max_epochs}"
            )
        if "read-only" in str(error) and self._cache_budget() > 0:
            error.add_note(
                "incremental: blocks kept in memory for later reads are read-only, "
                "so that no partial_fit can change them; this estimator writes "
                "into its input: fit with cache=False"
            )
        if failure.consistent:
            error.add_note(
                "incremental: estimator_ holds the model after the "
                f"{self.n_blocks_seen_} blocks fitted before (n_blocks_seen_); "
                "partial_fit can continue from it"
            )
        else:
            error.add_note(
                "incremental: the estimator could not be copied, so the failed "
                "batch was not undone: estimator_ may hold part of it on top of "
                f"the {self.n_blocks_seen_} blocks fitted before (n_blocks_seen_); "
                "fit again to be sure of the model"
            )
        return error
