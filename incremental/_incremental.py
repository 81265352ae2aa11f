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
from functools import partial
from typing import Any

import dask
import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state, get_tags

from ._blocks import (
    Blocks,
    check_block_rows,
    is_dask_array,
    is_dask_frame,
    is_per_sample,
    make_blocks,
    num_rows,
)
from ._postfit import ParallelPostFit
from ._stream import BlockComputeError, BlockStream, interrupts_between_blocks

logger = logging.getLogger("incremental")

# Prefetch, when "auto", keeps about this many bytes of blocks ready.
_PREFETCH_BYTES = 256 * 2**20
_PREFETCH_RANGE = (2, 64)
# Fraction of the fitting time that copies for undoing a failed block may take.
_CHECKPOINT_BUDGET = 0.02


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


def _partial_fit(model: Any, block: dict[str, Any], constant: dict[str, Any]) -> None:
    params = {name: value for name, value in block.items() if name not in ("X", "y")}
    if "y" in block:
        model.partial_fit(block["X"], block["y"], **params, **constant)
    else:
        model.partial_fit(block["X"], **params, **constant)


def _unique(values: Any) -> np.ndarray:
    return np.unique(np.asarray(values))


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
    if y.ndim == 1:
        (labels,) = dask.compute(y if not is_dask_array(y) else _dask_unique(y))
        return _unique(labels)
    columns = [y[:, j] for j in range(y.shape[1])]
    lazy = [_dask_unique(c) if is_dask_array(c) else c for c in columns]
    per_column = [_unique(c) for c in dask.compute(*lazy)]
    if isinstance(estimator, MultiOutputClassifier):
        return per_column
    return np.arange(y.shape[1])


def _dask_unique(y: Any) -> Any:
    # Unique per block, then unique of those: far less to move than y itself.
    return y.map_blocks(np.unique, chunks=(np.nan,), dtype=y.dtype)


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
        keeps about 256 MiB of blocks ready (between 2 and 64 blocks).

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator. Its learned attributes (``coef_``,
        ``classes_``, ``n_features_in_``, ...) are reachable on the wrapper.
    n_blocks_seen_ : int
        Blocks passed to ``partial_fit`` since the last ``fit``. If a block
        fails, ``estimator_`` holds the model after the blocks counted here.

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

    # -- public ------------------------------------------------------------
    def fit(self, X, y=None, **fit_params):
        """Fit a clone of ``estimator`` with one ``partial_fit`` per block of X.

        Parameters
        ----------
        X : dask array or DataFrame, or an in-memory array-like (one block)
        y : array-like, dask array or Series, optional
            Cut into X's row blocks whatever its own chunking.
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
        self.estimator_ = clone(self.estimator)
        self.n_blocks_seen_ = 0
        return self._fit_blocks(X, y, fit_params)

    def partial_fit(self, X, y=None, **fit_params):
        """Continue fitting ``estimator_`` on every block of X (see ``fit``)."""
        self._check_params()
        _check_target(self.estimator, y)
        if "estimator_" not in self.__dict__:
            self.estimator_ = clone(self.estimator)
            self.n_blocks_seen_ = 0
        return self._fit_blocks(X, y, fit_params)

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
    def _fit_blocks(self, X, y, fit_params: dict[str, Any]):
        n_rows = _rows_or_nan(X)
        per_sample = {
            k: v for k, v in fit_params.items() if is_per_sample(k, v, n_rows)
        }
        constant = {k: v for k, v in fit_params.items() if k not in per_sample}
        model = self.estimator_
        if (
            y is not None
            and "classes" not in constant
            and _accepts(model.partial_fit, "classes")
        ):
            known = getattr(model, "classes_", None)
            constant["classes"] = known if known is not None else find_classes(y, model)

        blocks = make_blocks(X, y, **per_sample)
        order = self._block_order(blocks.n_blocks)
        self._fit_order(blocks, order, constant, X)
        return self

    def _block_order(self, n_blocks: int) -> np.ndarray:
        if self.shuffle_blocks:
            return check_random_state(self.random_state).permutation(n_blocks)
        return np.arange(n_blocks)

    def _prefetch_and_group(self, X: Any, n_blocks: int) -> tuple[int, int]:
        if self.prefetch != "auto":
            prefetch = int(self.prefetch)
        else:
            block_bytes = X.nbytes / max(n_blocks, 1) if is_dask_array(X) else math.nan
            if math.isfinite(block_bytes) and block_bytes > 0:
                low, high = _PREFETCH_RANGE
                prefetch = int(min(max(_PREFETCH_BYTES // block_bytes, low), high))
            else:
                prefetch = 4
        return prefetch, max(1, prefetch // 2)

    def _fit_order(self, blocks: Blocks, order, constant: dict[str, Any], X) -> None:
        get = dask.base.get_scheduler() or dask.threaded.get
        compute = partial(blocks.compute, get=get)
        prefetch, group = self._prefetch_and_group(X, blocks.n_blocks)
        stream = BlockStream(compute, order, prefetch=prefetch, group=group)
        checkpoint = _Checkpoint()
        model = self.estimator_
        position, index = 0, None
        with interrupts_between_blocks() as interrupted:
            try:
                for position, (index, block) in enumerate(stream):
                    check_block_rows(block, blocks.describe(index))
                    checkpoint.maybe_save(model, position)
                    start = time.perf_counter()
                    try:
                        _partial_fit(model, block, constant)
                    except BaseException:
                        self._undo(
                            checkpoint, position, blocks, order, constant, compute
                        )
                        raise
                    checkpoint.fit_seconds += time.perf_counter() - start
                    self.n_blocks_seen_ += 1
                    if interrupted():
                        raise KeyboardInterrupt
            except BlockComputeError as failure:
                error = failure.error
                _note(
                    error,
                    f"incremental: raised while computing {blocks.describe(failure.index)}",
                )
                self._note_progress(error)
                raise error from None
            except BaseException as error:
                if index is not None:
                    _note(
                        error,
                        f"incremental: raised while fitting {blocks.describe(index)}",
                    )
                self._note_progress(error)
                raise

    def _note_progress(self, error: BaseException) -> None:
        _note(
            error,
            f"incremental: estimator_ holds the model after the {self.n_blocks_seen_} "
            "blocks fitted before (n_blocks_seen_); partial_fit can continue from it",
        )

    def _undo(self, checkpoint, position, blocks, order, constant, compute) -> None:
        """Put ``estimator_`` back to its state before the block at ``position``."""
        if checkpoint.model is None:
            return  # cannot copy this estimator; it keeps what partial_fit left
        model = checkpoint.model
        replay = [int(i) for i in order[checkpoint.position : position]]
        for _, block in BlockStream(compute, replay, prefetch=2, group=1):
            _partial_fit(model, block, constant)
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
