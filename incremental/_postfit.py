"""Run a fitted estimator's methods block by block: ``ParallelPostFit``.

One function, ``apply_blockwise``, serves every post-fit method (``predict``,
``predict_proba``, ``transform``, ...): dask array in gives a lazy dask array
out through ``map_blocks``; dask DataFrame in gives a lazy dask array through
``map_partitions``; anything else gives the estimator's own result. The
wrapper's methods are generated from one template, and each exists exactly
when the wrapped estimator has it.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import dask
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._blocks import is_dask_array, is_dask_frame, num_rows, whole_rows

POSTFIT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "inverse_transform",
    "score_samples",
)


def _apply_block(block, estimator, *, method, empty, kwargs, item=None):
    """``estimator.method(block)`` (its ``item``-th output if it returns a list).

    An empty block gives ``empty``: scikit-learn rejects zero-row inputs, but
    dask collections routinely have empty partitions.
    """
    if num_rows(block) == 0:
        return empty
    result = getattr(estimator, method)(block, **kwargs)
    return result if item is None else result[item]


def _sample_rows(X: Any) -> Any:
    """One synthetic row shaped and typed like X, to learn a method's output."""
    if is_dask_frame(X):
        return X._meta_nonempty.iloc[:1]
    shape = (1,) + X.shape[1:]
    if sp.issparse(X._meta):
        return type(X._meta)(shape, dtype=X.dtype)
    if X.dtype.kind in "OSU":
        return np.full(shape, "", dtype=X.dtype)
    return np.zeros(shape, dtype=X.dtype)


def _probe(estimator: Any, method: str, X: Any, kwargs: dict) -> Any:
    """The method's output on one row, to learn its type, dtype and width.

    A synthetic row of zeros is tried first; an estimator that rejects it
    (a categorical model that never saw category 0, say) is probed on the
    first row of X instead, which computes that row.
    """
    func = getattr(estimator, method)
    # Only the output's type and shape are kept, so warnings about the values
    # (a zero row gives 0/0 in MiniBatchNMF.transform) would only mislead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return func(_sample_rows(X), **kwargs)
        except Exception:
            first = X.head(1) if is_dask_frame(X) else X[:1].compute()
            return func(first, **kwargs)


def _empty_like(result: Any) -> Any:
    if isinstance(result, list):
        return [_empty_like(r) for r in result]
    if hasattr(result, "iloc"):
        return result.iloc[:0]
    return result[:0]


def _array_options(X: Any, result: Any, meta: Any) -> dict[str, Any]:
    """``map_blocks`` keywords giving the output's chunks, dtype and meta."""
    if meta is None:
        meta = _empty_like(result)
    options: dict[str, Any] = {"dtype": meta.dtype, "meta": meta}
    if result.ndim == 1 and X.ndim == 2:
        options["drop_axis"] = 1
    elif result.ndim == 2:
        options["chunks"] = (X.chunks[0], (result.shape[1],))
        if X.ndim == 1:
            options["new_axis"] = 1
    return options


def apply_blockwise(estimator: Any, method: str, X: Any, meta: Any = None, **kwargs):
    """``estimator.method(X)``, lazily and block by block for dask inputs.

    Parameters
    ----------
    estimator : fitted estimator
    method : str
        Name of the method, for example ``"predict"``.
    X : dask array, dask DataFrame, or anything the estimator accepts
    meta : array, optional
        An empty array of the output's type and dtype; by default it is
        learned by calling the method on one row.
    **kwargs
        Passed to the method on every block.

    Returns
    -------
    A lazy dask array for dask input (a list of them where the method returns
    a list, as multi-output ``predict_proba`` does); the estimator's own result
    otherwise.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import LinearRegression
    >>> X = da.arange(12.0, chunks=4).reshape(6, 2).rechunk(2)
    >>> model = LinearRegression().fit(X.compute(), X[:, 0].compute())
    >>> out = apply_blockwise(model, "predict", X)
    >>> out.chunks
    ((2, 2, 2),)
    >>> out.compute().round(6).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """
    if not (is_dask_array(X) or is_dask_frame(X)):
        return getattr(estimator, method)(X, **kwargs)
    # The fitted estimator enters the graph once, as one key all tasks share.
    estimator_key = dask.delayed(estimator, pure=False)
    if is_dask_array(X):
        X = whole_rows(X)
    result = _probe(estimator, method, X, kwargs)
    items = list(enumerate(result)) if isinstance(result, list) else [(None, result)]
    outputs = []
    for item, one in items:
        one_meta = meta if item is None else None
        common = {"method": method, "kwargs": kwargs, "item": item}
        if is_dask_frame(X):
            one_meta = _empty_like(one) if one_meta is None else one_meta
            out = X.map_partitions(
                _apply_block,
                estimator_key,
                empty=one_meta,
                meta=one_meta,
                enforce_metadata=False,
                **common,
            )
        else:
            out = X.map_blocks(
                _apply_block,
                estimator_key,
                empty=_empty_like(one),
                **common,
                **_array_options(X, one, one_meta),
            )
        outputs.append(out)
    return outputs if isinstance(result, list) else outputs[0]


def _has_method(name: str):
    """``available_if`` check: the fitted (else the given) estimator has ``name``."""

    def check(self) -> bool:
        return hasattr(self._delegate(), name)

    return check


def _postfit_method(name: str):
    """The wrapper's version of post-fit method ``name``, dispatched blockwise."""

    def method(self, X, **kwargs):
        check_is_fitted(self)
        return apply_blockwise(
            self.estimator_, name, X, meta=self._meta_for(name), **kwargs
        )

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"""Call the fitted estimator's ``{name}`` on X, block by block.

        Parameters
        ----------
        X : dask array, dask DataFrame, or anything the estimator accepts
        **kwargs
            Passed to ``{name}`` on every block.

        Returns
        -------
        A lazy dask array for dask input (computed with ``.compute()`` or
        written with ``.to_zarr(...)``), else the estimator's own result.
        """
    return available_if(_has_method(name))(method)


class ParallelPostFit(MetaEstimatorMixin, BaseEstimator):
    """Fit in memory, then predict, transform and score dask data in parallel.

    Wraps a scikit-learn estimator. ``fit`` fits it as usual (on data that
    fits in memory); ``predict``, ``predict_proba``, ``predict_log_proba``,
    ``decision_function``, ``transform``, ``inverse_transform`` and
    ``score_samples`` then run block by block: a dask array in gives a lazy
    dask array out (``map_blocks``), a dask DataFrame in gives a lazy dask
    array (``map_partitions``), and other input gives the estimator's own
    result. Each method exists exactly when the wrapped estimator has it.
    ``score`` on dask input reduces per-block statistics and never gathers X.

    Parameters
    ----------
    estimator : estimator
        The scikit-learn estimator to wrap.
    scoring : str or callable, optional
        Used by ``score``; by default the estimator's own metric (accuracy
        for classifiers, R^2 for regressors). Names that are reduced block by
        block: see ``incremental.STREAMING_METRICS``.
    predict_meta, predict_proba_meta, transform_meta : array, optional
        An empty array of the type and dtype the method returns, to skip
        learning it from one row (as in dask-ml).

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator. Its learned attributes (``coef_``,
        ``classes_``, ...) are also reachable on the wrapper.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import LogisticRegression
    >>> from incremental import ParallelPostFit
    >>> X = da.random.default_rng(0).normal(size=(10_000, 3), chunks=1_000)
    >>> y = X[:, 0] > 0
    >>> clf = ParallelPostFit(LogisticRegression())
    >>> clf = clf.fit(X[:1_000].compute(), y[:1_000].compute())
    >>> clf.predict(X)
    dask.array<_apply_block, shape=(10000,), dtype=bool, chunksize=(1000,), chunktype=numpy.ndarray>
    >>> clf.score(X, y) > 0.99
    True
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        scoring: Any = None,
        predict_meta: Any = None,
        predict_proba_meta: Any = None,
        transform_meta: Any = None,
    ):
        self.estimator = estimator
        self.scoring = scoring
        self.predict_meta = predict_meta
        self.predict_proba_meta = predict_proba_meta
        self.transform_meta = transform_meta

    # -- fitting ---------------------------------------------------------
    def fit(self, X, y=None, **fit_params):
        """Fit a clone of ``estimator`` on X (which must fit in memory)."""
        self._check_estimator()
        X, y, fit_params = dask.compute(X, y, fit_params)
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        return self

    def _check_estimator(self) -> None:
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__} needs an estimator; got None")

    # -- delegation --------------------------------------------------------
    def _delegate(self) -> Any:
        return self.__dict__.get("estimator_", self.estimator)

    def _meta_for(self, method: str) -> Any:
        return {
            "predict": self.predict_meta,
            "predict_proba": self.predict_proba_meta,
            "transform": self.transform_meta,
        }.get(method)

    def __getattr__(self, name: str) -> Any:
        # Learned attributes of the fitted estimator (coef_, classes_, ...) read
        # through the wrapper. Only names ending in "_" are forwarded, so that
        # parameters and dunder lookups (pickle, copy) are never affected.
        if name.endswith("_") and not name.startswith("__"):
            fitted = self.__dict__.get("estimator_")
            if fitted is not None:
                try:
                    return getattr(fitted, name)
                except AttributeError:
                    pass
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def __sklearn_is_fitted__(self) -> bool:
        return "estimator_" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.estimator is None:
            return tags
        wrapped = copy.deepcopy(get_tags(self.estimator))
        wrapped.requires_fit = True
        return wrapped

    # -- post-fit methods, all through one dispatch ------------------------
    predict = _postfit_method("predict")
    predict_proba = _postfit_method("predict_proba")
    predict_log_proba = _postfit_method("predict_log_proba")
    decision_function = _postfit_method("decision_function")
    transform = _postfit_method("transform")
    inverse_transform = _postfit_method("inverse_transform")
    score_samples = _postfit_method("score_samples")

    @available_if(_has_method("transform"))
    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then ``transform`` X (block by block for dask input).

        Every scikit-learn transformer has ``fit_transform``; this one exists
        exactly when the wrapped estimator has ``transform``.
        """
        return self.fit(X, y, **fit_params).transform(X)

    @available_if(_has_method("fit_predict"))
    def fit_predict(self, X, y=None, **fit_params):
        """Fit, then ``predict`` X (block by block for dask input).

        Exists exactly when the wrapped estimator has ``fit_predict``
        (clusterers and outlier detectors).
        """
        return self.fit(X, y, **fit_params).predict(X)

    def _can_score(self) -> bool:
        return self.scoring is not None or hasattr(self._delegate(), "score")

    @available_if(_can_score)
    def score(self, X, y=None, sample_weight=None):
        """Score on X and y with ``scoring`` (default: the estimator's metric).

        On dask input each block's statistics are computed where the block is
        and then combined, so X is never gathered. Metrics that cannot be
        combined that way (see ``incremental.STREAMING_METRICS``) gather only
        ``y`` and the predictions, never X.

        Parameters
        ----------
        X : dask array, dask DataFrame, or anything the estimator accepts
        y : array-like, optional
        sample_weight : array-like, optional

        Returns
        -------
        score : float
        """
        from ._scoring import score

        check_is_fitted(self)
        return score(self.estimator_, X, y, sample_weight, scoring=self.scoring)
