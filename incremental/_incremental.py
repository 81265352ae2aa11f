"""``Incremental``: fit any estimator with ``partial_fit`` block by block.

This module owns the estimator-facing side of fitting: parameter checks,
which fit parameters are per-sample, finding ``classes``, the block order,
and keeping ``estimator_`` consistent when a block fails. Cutting inputs into
blocks is ``_blocks``'s job and delivering them ahead of time is
``_stream``'s; post-fit methods come from ``ParallelPostFit``.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state, get_tags

from ._blocks import (
    Blocks,
    assemble_batches,
    check_block_rows,
    compute_row_chunks,
    default_get,
    describe_batch,
    is_dask_array,
    is_dask_frame,
    is_per_sample,
    make_blocks,
    num_rows,
    plan_batches,
    whole_rows,
)
from ._diagnostics import DaskProgressBars
from ._distributed import BatchFitError, current_client, fit_on_cluster
from ._postfit import ParallelPostFit
from ._scoring import metric_for, score_blocks
from ._stream import BlockComputeError, BlockStream, interrupts_between_blocks

logger = logging.getLogger("incremental")

# Prefetch, when "auto", keeps about this many bytes of blocks ready.
_PREFETCH_BYTES = 256 * 2**20
_PREFETCH_RANGE = (2, 64)
# Blocks computed in one scheduler call share its fixed cost, but the first
# partial_fit waits for the whole first group, and the call's threads compete
# with partial_fit for the cores: groups stop at about this many bytes.
_GROUP_BYTES = 16 * 2**20
# Fraction of the fitting time that copies for undoing a failed block may take.
_CHECKPOINT_BUDGET = 0.005


def _blocks_within(budget: int, block_bytes: float, low: int, high: int) -> int:
    """How many blocks of ``block_bytes`` fit in ``budget`` bytes, kept within
    ``[low, high]``; ``high`` when the block size is unknown."""
    if not (math.isfinite(block_bytes) and block_bytes > 0):
        return high
    return int(min(max(budget // block_bytes, low), high))


def _note(error: BaseException, text: str) -> None:
    """Add a line to the message of ``error`` (shown under its traceback)."""
    error.add_note(text)


class _Checkpoint:
    """A recent copy of the model, so a block that fails mid-update is undone.

    Copies cost time, so one is taken only when the fitting time since the
    last copy is large enough to keep copying under ``_CHECKPOINT_BUDGET`` of
    it. Undoing restores the copy and refits the blocks since it, which gives
    exactly the state before the failed block because fitting the same
    blocks in the same order is deterministic.
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.position = 0
        self.copy_seconds = 0.0
        self.fit_seconds = 0.0
        self.enabled = True

    def maybe_save(self, model: Any, position: int) -> None:
        due = (
            self.model is None
            or self.fit_seconds * _CHECKPOINT_BUDGET >= self.copy_seconds
        )
        if not (self.enabled and due):
            return
        start = time.perf_counter()
        try:
            self.model = copy.deepcopy(model)
        except Exception:  # an estimator that cannot be copied is not undone
            self.enabled, self.model = False, None
            return
        self.copy_seconds = time.perf_counter() - start
        self.position = position
        self.fit_seconds = 0.0


def _fit_checked(model: Any, block: dict[str, Any], constant: dict[str, Any]) -> None:
    """``_partial_fit`` after checking the block's parts have equal row counts."""
    check_block_rows(block, "a block")
    _partial_fit(model, block, constant)


def _partial_fit(model: Any, block: dict[str, Any], constant: dict[str, Any]) -> None:
    params = {name: value for name, value in block.items() if name not in ("X", "y")}
    if "y" in block:
        model.partial_fit(block["X"], block["y"], **params, **constant)
    else:
        model.partial_fit(block["X"], **params, **constant)


def find_classes(y: Any, estimator: Any) -> Any:
    """The classes in y, in one pass over it, as ``partial_fit(classes=...)`` wants.

    A 1-D y gives its sorted unique labels. A 2-D y gives one array per column
    for multi-output classifiers, and ``arange(n_labels)`` for a multilabel
    indicator matrix (the convention of one-vs-rest).
    """
    from sklearn.multioutput import MultiOutputClassifier

    if is_dask_frame(y):
        y = y.to_dask_array()
    elif not is_dask_array(y):
        y = np.asarray(y)  # lists of lists and array-likes without a shape
    if (
        y.ndim == 2
        and y.shape[1] == 1
        and not isinstance(estimator, MultiOutputClassifier)
    ):
        y = y[:, 0]  # a column vector is one output, as scikit-learn reads it
    per_column = _labels_per_column(y)
    if y.ndim == 1:
        return per_column[0]
    if isinstance(estimator, MultiOutputClassifier):
        return per_column
    return np.arange(y.shape[1])


# Blocks of y computed per scheduler call when looking for classes: small
# blocks of y go many to a call and share one np.unique, so the pass costs
# little more than reading y; large ones go a few at a time (memory).
_CLASSES_GROUP = 256
_CLASSES_GROUP_BYTES = 32 * 2**20


def _labels_per_column(y: Any) -> list[np.ndarray]:
    """Sorted unique labels of each column of y (one pass, block by block)."""

    def uniques(values: Any) -> list[np.ndarray]:
        values = np.asarray(values)
        values = values.reshape(len(values), -1)
        return [np.unique(values[:, j]) for j in range(values.shape[1])]

    if not is_dask_array(y):
        return uniques(y)
    blocks = make_blocks(y)
    found: list[np.ndarray] | None = None
    get = default_get()
    block_bytes = y.nbytes / max(blocks.n_blocks, 1)
    step = _blocks_within(_CLASSES_GROUP_BYTES, block_bytes, 1, _CLASSES_GROUP)
    for start in range(0, blocks.n_blocks, step):
        group = range(start, min(start + step, blocks.n_blocks))
        parts = [part["X"] for part in blocks.compute(group, get)]
        parts = [np.asarray(part) for part in parts if num_rows(part)]
        if not parts:
            continue
        # One unique over the group: small blocks cost little each.
        labels = uniques(np.concatenate(parts) if len(parts) > 1 else parts[0])
        found = labels if found is None else list(map(np.union1d, found, labels))
    if found is None:
        raise ValueError("cannot find classes in an empty y")
    return found


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


def _accepts(method: Any, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _takes_classes(model: Any) -> bool:
    """Whether ``model.partial_fit`` wants ``classes``: by name, or through the
    ``**kwargs`` a meta-estimator (SelectFromModel) hands to its estimator."""
    if _accepts(model.partial_fit, "classes"):
        return True
    inner = getattr(model, "estimator", None)
    try:
        forwards = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(model.partial_fit).parameters.values()
        )
    except (TypeError, ValueError):
        return False
    return forwards and hasattr(inner, "partial_fit") and _takes_classes(inner)


@dataclass
class _FitContext:
    """What the epochs of one fit share: blocks, constant params, scheduler."""

    blocks: Blocks
    constant: dict[str, Any]
    get: Callable
    prefetch: int
    group: int

    def assemble(self, batches, positions) -> list[dict[str, Any]]:
        return assemble_batches(self.blocks, [batches[p] for p in positions], self.get)

    def describe(self, batch) -> str:
        return describe_batch(self.blocks, batch)


class _Progress:
    """A progress bar over the batches of each epoch (when verbose) and log records.

    Log records go to ``logging.getLogger("incremental")`` at INFO, one per
    epoch, whatever ``verbose`` says.
    """

    def __init__(self, verbose: int, max_epochs: int):
        self.verbose = int(verbose)
        self.max_epochs = max_epochs
        self.bar: Any = None
        self._tqdm: Any = None
        if self.verbose:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                logger.warning("verbose needs tqdm (pip install tqdm); logging only")
            else:
                self._tqdm = tqdm

    def __enter__(self) -> _Progress:
        self.dask_bars = DaskProgressBars().__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        self.dask_bars.__exit__(*exc)

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.rows, self.started, self.shown = 0, time.perf_counter(), 0.0
        self.dask_bars.start(n_batches)
        if self._tqdm is not None:
            self.bar = self._tqdm(
                total=n_batches,
                desc=f"epoch {epoch + 1}/{self.max_epochs}",
                unit="batch",
                leave=self.verbose > 1 or epoch + 1 == self.max_epochs,
            )

    def batch_done(self, rows: int) -> None:
        self.dask_bars.done()
        if self.bar is None:
            return
        self.rows += rows
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.shown > 0.5:  # the rate, at most twice a second
            self.shown = now
            rate = self.rows / max(now - self.started, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} rows/s", refresh=False)

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.dask_bars.finish()
        rate = record["n_samples"] / max(record["seconds"], 1e-9)
        score = (
            ""
            if record["score"] is None
            else f", validation score {record['score']:.6g}"
        )
        text = (
            f"epoch {record['epoch'] + 1}: {record['n_batches']} batches, "
            f"{record['n_samples']:,} rows in {record['seconds']:.2f} s "
            f"({rate:,.0f} rows/s){score}"
        )
        logger.info(text)
        if self.bar is not None:
            self.bar.set_postfix_str(text.split(": ", 1)[1], refresh=True)
            self.bar.close()
            self.bar = None


def _check_int(name: str, value: Any, low: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
    ):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


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
        At most this many computed blocks wait for ``partial_fit``; "auto"
        keeps about 256 MiB of blocks ready (between 2 and 64 blocks). Up to
        half of them are computed per scheduler call, which spreads its
        fixed cost over small blocks; large blocks (over 8 MiB) are computed
        one per call, so the first ``partial_fit`` starts early.
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
        ``seconds`` and the validation ``score`` (None without early stopping).
    best_score_ : float
        With early stopping: the best validation score, whose model is kept.

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

    # -- public ------------------------------------------------------------
    def fit(self, X, y=None, *, validation_data=None, **fit_params):
        """Fit a clone of ``estimator`` with one ``partial_fit`` per block of X.

        Parameters
        ----------
        X : dask array or DataFrame, or an in-memory array-like (one block)
        y : array-like, dask array or Series, optional
            Cut into X's row blocks whatever its own chunking.
        validation_data : tuple (X_val, y_val), optional
            With ``early_stopping=True``: score on these after each epoch
            instead of holding out ``validation_fraction`` of the blocks.
        **fit_params
            Passed to every ``partial_fit`` call. Those with one entry per row
            (``sample_weight``, dask collections) are cut into X's row blocks;
            ``classes`` is found from y when needed and not given.

        Returns
        -------
        self
        """
        self._check_params()
        _check_target(self.estimator, y)
        self._start()
        return self._fit_blocks(X, y, fit_params, validation_data)

    def partial_fit(self, X, y=None, *, validation_data=None, **fit_params):
        """Continue fitting ``estimator_`` on the blocks of X (see ``fit``).

        Each call runs ``max_epochs`` epochs (one by default) and adds them to
        ``history_``.
        """
        self._check_params()
        _check_target(self.estimator, y)
        if "estimator_" not in self.__dict__:
            self._start()
        return self._fit_blocks(X, y, fit_params, validation_data)

    def _start(self) -> None:
        self.estimator_ = clone(self.estimator)
        self.n_blocks_seen_ = 0
        self.n_epochs_ = 0
        self.history_ = []

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The wrapped estimator's tags describe its fit; Incremental only calls
        # partial_fit, and IncrementalPCA's partial_fit rejects sparse input
        # that its fit densifies batch by batch.
        from sklearn.decomposition import IncrementalPCA

        if isinstance(self.estimator, IncrementalPCA):
            tags.input_tags.sparse = False
        return tags

    # -- checks ------------------------------------------------------------
    def _check_params(self) -> None:
        self._check_estimator()
        if not hasattr(self.estimator, "partial_fit"):
            raise TypeError(
                f"{type(self.estimator).__name__} has no partial_fit method, so it "
                "cannot learn block by block; use an estimator with partial_fit, "
                "or ParallelPostFit to fit in memory and predict in parallel"
            )
        if not isinstance(self.shuffle_blocks, (bool, np.bool_)):
            raise ValueError(
                f"shuffle_blocks must be True or False, got {self.shuffle_blocks!r}"
            )
        check_random_state(self.random_state)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, 1)
        _check_int("max_epochs", self.max_epochs, 1)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)
        _check_int(
            "verbose",
            int(self.verbose) if isinstance(self.verbose, bool) else self.verbose,
            0,
        )
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(
                f"early_stopping must be True or False, got {self.early_stopping!r}"
            )
        if not (
            isinstance(self.validation_fraction, numbers.Real)
            and 0 < self.validation_fraction < 1
        ):
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        if not isinstance(self.tol, numbers.Real) or not math.isfinite(self.tol):
            raise ValueError(f"tol must be a finite number, got {self.tol!r}")
        prefetch = self.prefetch
        if not (
            prefetch == "auto"
            or (
                isinstance(prefetch, numbers.Integral)
                and not isinstance(prefetch, bool)
                and prefetch >= 1
            )
        ):
            raise ValueError(
                f"prefetch must be 'auto' or an integer >= 1, got {prefetch!r}"
            )

    # -- the fit loop ------------------------------------------------------
    def _fit_blocks(self, X, y, fit_params: dict[str, Any], validation_data=None):
        n_rows = _rows_or_nan(X)
        per_sample = {
            k: v for k, v in fit_params.items() if is_per_sample(k, v, n_rows)
        }
        constant = {k: v for k, v in fit_params.items() if k not in per_sample}
        model = self.estimator_
        if y is not None and "classes" not in constant and _takes_classes(model):
            known = getattr(model, "classes_", None)
            if known is not None:
                constant["classes"] = known
            elif self.n_blocks_seen_ == 0:
                # Only the first partial_fit needs classes; later blocks may
                # lack some, and meta-estimators (MultiOutputClassifier,
                # SelectFromModel) keep no classes_ of their own to pass.
                constant["classes"] = find_classes(y, model)

        blocks = make_blocks(X, y, **per_sample)
        rows = None
        if self.batch_size is not None:
            offsets = blocks.offsets
            rows = np.diff(offsets) if offsets else compute_row_chunks(whole_rows(X))
        rng = check_random_state(self.random_state)
        train, check_score = self._validation(blocks, rng, validation_data)
        prefetch, group = self._prefetch_and_group(X, blocks.n_blocks)
        get = default_get()
        context = _FitContext(blocks, constant, get, prefetch, group)

        best_model, best_score, no_change = None, -np.inf, 0
        with _Progress(self.verbose, self.max_epochs) as progress:
            for epoch in range(self.max_epochs):
                order = rng.permutation(train) if self.shuffle_blocks else train
                batches = plan_batches(order, rows, self.batch_size)
                progress.start_epoch(epoch, len(batches))
                started = time.perf_counter()
                n_samples = self._fit_epoch(context, batches, epoch, progress)
                if n_samples == 0:  # skipping empty blocks must not hide empty X
                    raise ValueError(
                        "Found array with 0 sample(s): every block of X is empty, "
                        "so there is nothing to fit"
                    )
                record = {
                    "epoch": epoch,
                    "n_batches": len(batches),
                    "n_samples": n_samples,
                    "seconds": time.perf_counter() - started,
                    "score": None
                    if check_score is None
                    else check_score(self.estimator_),
                }
                self.history_.append(record)
                self.n_epochs_ = len(self.history_)
                progress.end_epoch(record)
                if check_score is None:
                    continue
                score = record["score"]
                no_change = no_change + 1 if score < best_score + self.tol else 0
                if score > best_score:
                    best_score, best_model = score, copy.deepcopy(self.estimator_)
                self.best_score_ = best_score
                if no_change >= self.n_iter_no_change:
                    logger.info(
                        "early stop after epoch %d: no improvement of %s over %g "
                        "for %d epochs",
                        epoch + 1,
                        self._metric_name(),
                        self.tol,
                        no_change,
                    )
                    break
        if best_model is not None:
            self.estimator_ = best_model  # the epoch with the best validation score
        return self

    def _metric_name(self) -> str:
        return str(self.scoring or "score")

    def _validation(self, blocks: Blocks, rng, validation_data):
        """Blocks to train on, and a function scoring the model on held-out data."""
        all_blocks = np.arange(blocks.n_blocks)
        if not self.early_stopping:
            if validation_data is not None:
                raise ValueError(
                    "validation_data is only used with early_stopping=True"
                )
            return all_blocks, None
        metric = metric_for(self.estimator, self.scoring)
        if validation_data is not None:
            X_val, y_val = validation_data
            held = make_blocks(X_val, y_val)
            return all_blocks, lambda model: score_blocks(model, metric, held)
        n_held = max(1, int(round(self.validation_fraction * blocks.n_blocks)))
        if n_held >= blocks.n_blocks:
            raise ValueError(
                f"early stopping holds out {n_held} of {blocks.n_blocks} blocks for "
                "validation, leaving none to train on; give validation_data=(X, y), "
                "more blocks, or a smaller validation_fraction"
            )
        held_out = np.sort(rng.permutation(blocks.n_blocks)[:n_held])
        train = np.setdiff1d(all_blocks, held_out)
        return train, lambda model: score_blocks(model, metric, blocks, held_out)

    def _prefetch_and_group(self, X: Any, n_blocks: int) -> tuple[int, int]:
        """Blocks to compute ahead, and blocks per scheduler call."""
        block_bytes = math.nan
        if is_dask_array(X):
            block_bytes = X.nbytes / max(n_blocks, 1)
            if self.batch_size is not None and X.shape[0] > 0:
                block_bytes = min(block_bytes, X.nbytes / X.shape[0] * self.batch_size)
        if not block_bytes > 0:
            block_bytes = math.nan  # empty X: the size says nothing
        if self.prefetch != "auto":
            prefetch = int(self.prefetch)
        elif math.isfinite(block_bytes):
            prefetch = _blocks_within(_PREFETCH_BYTES, block_bytes, *_PREFETCH_RANGE)
        else:
            prefetch = 4
        half = max(1, prefetch // 2)
        return prefetch, _blocks_within(_GROUP_BYTES, block_bytes, 1, half)

    def _fit_epoch(self, context: _FitContext, batches, epoch: int, progress) -> int:
        """One pass of ``partial_fit`` over ``batches``; returns the rows seen."""
        client = current_client()
        if client is not None:
            return self._fit_epoch_on_cluster(client, context, batches, epoch, progress)
        stream = BlockStream(
            partial(context.assemble, batches),
            range(len(batches)),
            prefetch=context.prefetch,
            group=context.group,
        )
        checkpoint = _Checkpoint()
        model = self.estimator_
        n_samples, position = 0, None
        where = f"in epoch {epoch + 1} of at most {self.max_epochs}"
        with interrupts_between_blocks() as interrupted:
            try:
                for position, batch in stream:
                    rows = num_rows(batch["X"])
                    if rows == 0:
                        continue  # empty partitions carry nothing to learn
                    check_block_rows(
                        batch, partial(context.describe, batches[position])
                    )
                    checkpoint.maybe_save(model, position)
                    start = time.perf_counter()
                    try:
                        _partial_fit(model, batch, context.constant)
                    except BaseException:
                        self._undo(checkpoint, position, context, batches)
                        raise
                    checkpoint.fit_seconds += time.perf_counter() - start
                    self.n_blocks_seen_ += 1
                    n_samples += rows
                    progress.batch_done(rows)
                    if interrupted():
                        raise KeyboardInterrupt
            except BlockComputeError as failure:
                error = failure.error
                what = context.describe(batches[failure.index])
                _note(error, f"incremental: raised while computing {what} {where}")
                self._note_progress(error)
                raise error from None
            except BaseException as error:
                if position is not None:
                    what = context.describe(batches[position])
                    _note(error, f"incremental: raised while fitting {what} {where}")
                self._note_progress(error)
                raise
        return n_samples

    def _fit_epoch_on_cluster(self, client, context, batches, epoch, progress) -> int:
        """``_fit_epoch`` on a dask.distributed cluster: partial_fit runs where
        the blocks are and the model travels between workers."""
        seen = [0]

        def done(position: int, rows: int, model: Any) -> None:
            # estimator_ and n_blocks_seen_ move together, so whatever stops
            # the fit (an error, Ctrl-C) leaves them in agreement.
            self.estimator_ = model
            if rows:
                self.n_blocks_seen_ += 1
                seen[0] += rows
                progress.batch_done(rows)

        fit_one = partial(_fit_checked, constant=context.constant)
        where = f"in epoch {epoch + 1} of at most {self.max_epochs}"
        with interrupts_between_blocks() as interrupted:
            try:
                fit_on_cluster(
                    client,
                    context.blocks,
                    batches,
                    self.estimator_,
                    fit_one,
                    in_flight=context.prefetch,
                    on_batch_done=done,
                    interrupted=interrupted,
                )
            except BatchFitError as failure:
                error = failure.error
                what = context.describe(batches[failure.position])
                _note(
                    error,
                    f"incremental: raised while computing or fitting {what} {where}",
                )
                self._note_progress(error)
                raise error from None
        return seen[0]

    def _note_progress(self, error: BaseException) -> None:
        _note(
            error,
            f"incremental: estimator_ holds the model after the {self.n_blocks_seen_} "
            "blocks fitted before (n_blocks_seen_); partial_fit can continue from it",
        )

    def _undo(self, checkpoint, position, context: _FitContext, batches) -> None:
        """Put ``estimator_`` back to its state before the batch at ``position``."""
        if checkpoint.model is None:
            return  # cannot copy this estimator; it keeps what partial_fit left
        model = checkpoint.model
        replay = range(checkpoint.position, position)
        compute = partial(context.assemble, batches)
        for _, batch in BlockStream(compute, replay, prefetch=2, group=1):
            if num_rows(batch["X"]):
                _partial_fit(model, batch, context.constant)
        self.estimator_ = model


def _rows_or_nan(X: Any) -> float:
    if is_dask_array(X):
        return X.shape[0]
    if is_dask_frame(X):
        return math.nan
    try:
        return num_rows(X)
    except TypeError:
        return math.nan
